// One entry point per subcommand; each lives next to the code it drives.
#ifndef HB_COMMANDS_H
#define HB_COMMANDS_H

struct hb_command;
int cmd_manifest(const struct hb_command *cmd, int argc, char **argv);
int cmd_mfcc(const struct hb_command *cmd, int argc, char **argv);
int cmd_fbank(const struct hb_command *cmd, int argc, char **argv);
int cmd_kmeans(const struct hb_command *cmd, int argc, char **argv);
int cmd_topics(const struct hb_command *cmd, int argc, char **argv);
int cmd_info(const struct hb_command *cmd, int argc, char **argv);
int cmd_extract(const struct hb_command *cmd, int argc, char **argv);
int cmd_init(const struct hb_command *cmd, int argc, char **argv);
int cmd_bench(const struct hb_command *cmd, int argc, char **argv);
int cmd_shard(const struct hb_command *cmd, int argc, char **argv);
int cmd_labels(const struct hb_command *cmd, int argc, char **argv);
int cmd_config(const struct hb_command *cmd, int argc, char **argv);
int cmd_train(const struct hb_command *cmd, int argc, char **argv);
int cmd_finetune(const struct hb_command *cmd, int argc, char **argv);
int cmd_export_hf(const struct hb_command *cmd, int argc, char **argv);
int cmd_units_eval(const struct hb_command *cmd, int argc, char **argv);
int cmd_probe(const struct hb_command *cmd, int argc, char **argv);

#endif
