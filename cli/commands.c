// The subcommand table: `hubert NAME ...` runs hb_commands[i].run. Each command's options live in
// its own file, in the table it passes to cli_parse().
#include <stddef.h>

#include "cli/cli.h"
#include "cli/commands.h"

const hb_command hb_commands[] = {
    {"manifest", "scan a folder for audio and write fairseq manifests (train/valid .tsv)",
     "DIR --out train.tsv [--valid-out valid.tsv --valid-percent P] [options]", NULL, cmd_manifest},
    {"mfcc", "Kaldi MFCC + deltas (39-d, fairseq's HuBERT iteration-1 features) into an HDF5 feature file",
     "--out FILE.h5 [options] INPUT...", NULL, cmd_mfcc},
    {"fbank", "Kaldi log mel filterbank features (80-d) into an HDF5 feature file",
     "--out FILE.h5 [options] INPUT...", NULL, cmd_fbank},
    {"kmeans", "k-means units: fit centroids on features, apply them to label frames", "fit|apply [options] FEATS.h5...", NULL, cmd_kmeans},
    {"topics", "LDA topics of unit sequences (HuBERTopic): fit a topic model, apply it to label utterances", "fit|apply [options] LABELS.h5...", NULL, cmd_topics},
    {"info", "print a model folder's configuration and parameter counts", "--model DIR", NULL, cmd_info},
    {"extract", "extract hidden states of every (or chosen) layer into an HDF5 feature file",
     "--model DIR --out FILE.h5 [options] INPUT...", NULL, cmd_extract},
    {"export-hf", "write a Hugging Face folder (HubertModel / HubertForCTC) that transformers.from_pretrained loads",
     "--model DIR --out DIR [--dtype f32|bf16]", NULL, cmd_export_hf},
    {"init", "write a randomly initialised model folder from a config (json or a preset name)",
     "--config base|large|tiny|FILE.json --out DIR [options]", NULL, cmd_init},
    {"bench", "benchmarks (extract: HuBERT forward)", "WHAT [options]", NULL, cmd_bench},
    {"shard", "write HDF5 training shards (audio + labels + topics + meta); 'shard check FILE...' validates",
     "--out DIR --manifest train.tsv [--labels NAME=L.h5 ...] [options] | check FILE.h5...", NULL, cmd_shard},
    {"labels", "fairseq .km label import/export ('labels import --help', 'labels export --help')",
     "import|export [options]", NULL, cmd_labels},
    {"train", "pretrain HuBERT (masked prediction + topic head) from a config; checkpoints, resume, JSONL log", "CONFIG.yaml [section.key=value ...] [--resume auto|PATH|none]", NULL, cmd_train},
    {"finetune", "CTC fine-tuning of a pretrained model on characters (ltr) or phones (phn); WER/CER/PER", "CONFIG.yaml [section.key=value ...] [--resume auto|PATH|none]", NULL, cmd_finetune},
    {"units-eval", "unit quality (phone purity, cluster purity, PNMI) of frame labels against aligned phones", "--meta meta.tsv [--name LABELSET] UNITS.h5|SHARD.h5...", NULL, cmd_units_eval},
    {"probe", "SUPERB-style probes on frozen features: phone accuracy/PER, speaker/language/keyword ID, per layer + weighted sum", "--meta meta.tsv [options] NAME=FEATS.h5[,FEATS.h5...]...", NULL, cmd_probe},
    {"config", "trainer configs: list every key (--list), or resolve CONFIG.yaml + overrides (--print)", "--list | CONFIG.yaml [section.key=value ...] [--print] [--out FILE.yaml]", NULL, cmd_config},
};
const int hb_num_commands = (int)(sizeof hb_commands / sizeof hb_commands[0]);
