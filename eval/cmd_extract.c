// `hubert extract`: hidden states of chosen layers (and optionally a SUPERB weighted sum of all of
// them) for audio files, manifests or shards, into the concatenated HDF5 feature layout
// (/utt_id, /offsets, /layer_K, /weighted_sum).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "data_prep/audio.h"
#include "data_prep/featfile.h"
#include "data_prep/inputs.h"
#include "data_prep/shard.h"
#include "eval/extractor.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Parses "all", "none" or a comma list of layer indices in [0, nl] into want[0..nl].
static int parse_layers(const char *spec, int nl, int *want) {
  memset(want, 0, sizeof(int) * (size_t)(nl + 1));
  if (!strcmp(spec, "none")) return 0;
  if (!strcmp(spec, "all")) {
    for (int i = 0; i <= nl; i++) want[i] = 1;
    return 0;
  }
  const char *p = spec;
  while (*p) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || v > nl) return hb_fail("--layers: '%s' is not a layer in 0..%d (or 'all')", spec, nl);
    want[v] = 1;
    p = end;
    if (*p == ',') p++;
    else if (*p) return hb_fail("--layers: expected 'all' or a comma-separated list like 0,6,12, got '%s'", spec);
  }
  return 0;
}

// ---- inputs: audio files, fairseq manifests and hubert shards, in command-line order ----------

typedef struct {
  const char *utt_id;
  const char *path;   // audio file, or NULL for a shard utterance
  hb_shard *shard;
  int64_t index;      // utterance index in the shard
} src_item;

typedef struct {
  int n;
  src_item *items;
  int n_lists, n_shards;
  hb_input_list *lists;
  hb_shard **shards;
} src_list;

static int is_shard_path(const char *p) {
  size_t n = strlen(p);
  return (n > 3 && !strcmp(p + n - 3, ".h5")) || (n > 5 && !strcmp(p + n - 5, ".hdf5"));
}

static void sources_free(src_list *s) {
  for (int i = 0; i < s->n_lists; i++) inputs_free(&s->lists[i]);
  for (int i = 0; i < s->n_shards; i++) shard_close(s->shards[i]);
  free(s->lists);
  free(s->shards);
  free(s->items);
  memset(s, 0, sizeof *s);
}

static int sources_collect(int npos, char **pos, src_list *s) {
  memset(s, 0, sizeof *s);
  s->lists = hb_calloc((size_t)npos, sizeof(hb_input_list));
  s->shards = hb_calloc((size_t)npos, sizeof(hb_shard *));
  if (!s->lists || !s->shards) return -1;
  size_t total = 0;
  for (int i = 0; i < npos; i++) {
    if (is_shard_path(pos[i])) {
      HB_TRY(shard_open(pos[i], &s->shards[s->n_shards]));
      total += (size_t)shard_num_utts(s->shards[s->n_shards++]);
    } else {
      HB_TRY(inputs_collect(1, &pos[i], &s->lists[s->n_lists]));
      total += (size_t)s->lists[s->n_lists++].n;
    }
  }
  if (total == 0) return hb_fail("hubert extract: the inputs hold no utterances");
  if (total > 0x7fffffff) return hb_fail("hubert extract: too many utterances (%zu)", total);
  s->items = hb_calloc(total, sizeof(src_item));
  if (!s->items) return -1;
  int li = 0, si = 0;
  for (int i = 0; i < npos; i++) {
    if (is_shard_path(pos[i])) {
      hb_shard *sh = s->shards[si++];
      for (int64_t u = 0; u < shard_num_utts(sh); u++)
        s->items[s->n++] = (src_item){shard_utt_id(sh, u), NULL, sh, u};
    } else {
      const hb_input_list *l = &s->lists[li++];
      for (int u = 0; u < l->n; u++) s->items[s->n++] = (src_item){l->utt_id[u], l->path[u], NULL, 0};
    }
  }
  return 0;
}

// Reads one utterance into a (reused) buffer.
static int source_read(const src_item *it, const hb_audio_opts *aopts, hb_audio *a, size_t *cap) {
  if (it->path) return audio_read_into(it->path, aopts, a, cap);
  const int64_t *off = shard_audio_offsets(it->shard);
  size_t n = (size_t)(off[it->index + 1] - off[it->index]);
  if (n < aopts->min_samples)
    return hb_fail("%s: utterance '%s' has %zu samples, fewer than the model's receptive field (%zu)",
                   shard_path(it->shard), it->utt_id, n, aopts->min_samples);
  if (n > *cap || !a->samples) {
    free(a->samples);
    a->samples = hb_malloc(sizeof(float) * (n ? n : 1));
    *cap = a->samples ? n : 0;
    if (!a->samples) return -1;
  }
  a->n = n;
  a->sample_rate = shard_sample_rate(it->shard);
  if (a->sample_rate != HB_SAMPLE_RATE)
    return hb_fail("%s: sample rate %d, the model needs %d", shard_path(it->shard), a->sample_rate, HB_SAMPLE_RATE);
  return shard_read_audio_f32(it->shard, it->index, a->samples);
}

// ---- the command ---------------------------------------------------------------------------

typedef struct {
  hb_extractor ex;
  src_list src;
  hb_featfile_writer *w;
  int *want_out;         // (NL + 1): layers written
  int *want_fwd;         // (NL + 1): layers computed
  char **names;
  int *dims;
  float *ws_weights;     // (NL + 1) or NULL
  float *ws_out;         // (B * T, H)
  size_t ws_cap;
  const float **data;
  const float **hs;
  int *frames;
  long *lens;
  const float **waves;
  hb_audio *aud;
  size_t *aud_cap;
  int batch;
} extract_run;

static void run_free(extract_run *r) {
  if (r->w) featfile_abort(r->w);
  for (int i = 0; r->names && i <= extractor_num_layers(&r->ex) + 1; i++) free(r->names[i]);
  for (int b = 0; r->aud && b < r->batch; b++) audio_free(&r->aud[b]);
  if (r->ex.have_model || r->ex.have_ctx) extractor_close(&r->ex);
  sources_free(&r->src);
  free(r->want_out);
  free(r->want_fwd);
  free(r->names);
  free(r->dims);
  free(r->ws_weights);
  free(r->ws_out);
  free(r->data);
  free(r->hs);
  free(r->frames);
  free(r->lens);
  free(r->waves);
  free(r->aud);
  free(r->aud_cap);
}

int cmd_extract(const hb_command *cmd, int argc, char **argv) {
  const char *model_dir = NULL, *out = NULL, *layers = "all", *device = "cpu", *ws = NULL;
  const char *precision = "fp32";
  int batch = 1, threads = 0, resample = 0, channel = -1, ws_raw = 0, ws_ln = 0;
  hb_opt opts[] = {
      {"model", 'm', HB_OPT_STR, "DIR", "model folder (config.json + model.safetensors)", &model_dir, 1},
      {"out", 'o', HB_OPT_STR, "FILE.h5", "output feature file", &out, 1},
      {"layers", 'l', HB_OPT_STR, "all|none|0,6,12", "hidden states to write (0 = transformer input, K = output of layer K)", &layers, 0},
      {"weighted-sum", 'w', HB_OPT_STR, "w0,...,wNL",
       "also write /weighted_sum: sum_i softmax(w)_i * layer_i over all NL+1 hidden states (s3prl's Featurizer)", &ws, 0},
      {"weighted-sum-raw", 0, HB_OPT_FLAG, NULL, "use the --weighted-sum weights as given (no softmax)", &ws_raw, 0},
      {"weighted-sum-norm", 0, HB_OPT_FLAG, NULL, "layer-normalise each hidden state before summing (s3prl's upstream_feature_normalize)", &ws_ln, 0},
      {"batch-size", 'b', HB_OPT_INT, "N", "utterances per forward pass, zero-padded (default 1)", &batch, 0},
      {"threads", 't', HB_OPT_INT, "N", "CPU threads (default: OMP_NUM_THREADS or all cores)", &threads, 0},
      {"device", 0, HB_OPT_STR, "cpu|cuda", "backend (default cpu)", &device, 0},
      {"precision", 0, HB_OPT_STR, "fp32|bf16", "bf16: GEMMs in bf16 with fp32 accumulation (cuda only; default fp32)", &precision, 0},
      {"resample", 0, HB_OPT_FLAG, NULL, "resample audio that is not 16 kHz (otherwise an error)", &resample, 0},
      {"channel", 0, HB_OPT_INT, "N", "take channel N of multi-channel audio (otherwise an error)", &channel, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos == 0) return hb_fail("hubert extract: no INPUT given (audio files, .tsv manifests or shard .h5 files)");
  if (batch < 1 || batch > 4096) return hb_fail("--batch-size must be in 1..4096 (got %d)", batch);
  if ((ws_raw || ws_ln) && !ws) return hb_fail("--weighted-sum-raw / --weighted-sum-norm need --weighted-sum");

  const int tty = isatty(fileno(stderr));
  extract_run r;
  memset(&r, 0, sizeof r);
  r.batch = batch;
  rc = -1;
  if (sources_collect(npos, pos, &r.src)) goto done;
  if (extractor_open(&r.ex, model_dir, device, threads)) goto done;
  if (ops_set_precision(&r.ex.ctx, precision)) {
    hb_fail_prefix("hubert extract: --precision");
    goto done;
  }
  const hb_config *c = &r.ex.model.cfg;
  const int NL = c->num_hidden_layers, H = c->hidden_size;
  r.want_out = hb_calloc((size_t)NL + 1, sizeof(int));
  r.want_fwd = hb_calloc((size_t)NL + 1, sizeof(int));
  r.names = hb_calloc((size_t)NL + 2, sizeof(char *));
  r.dims = hb_calloc((size_t)NL + 2, sizeof(int));
  r.data = (const float **)hb_calloc((size_t)NL + 2, sizeof(float *));
  r.hs = (const float **)hb_calloc((size_t)NL + 1, sizeof(float *));
  r.frames = hb_calloc((size_t)batch, sizeof(int));
  r.lens = hb_calloc((size_t)batch, sizeof(long));
  r.waves = (const float **)hb_calloc((size_t)batch, sizeof(float *));
  r.aud = hb_calloc((size_t)batch, sizeof(hb_audio));
  r.aud_cap = hb_calloc((size_t)batch, sizeof(size_t));
  if (!r.want_out || !r.want_fwd || !r.names || !r.dims || !r.data || !r.hs || !r.frames || !r.lens || !r.waves ||
      !r.aud || !r.aud_cap)
    goto done;
  if (parse_layers(layers, NL, r.want_out)) goto done;
  if (ws) {
    r.ws_weights = hb_malloc(sizeof(float) * ((size_t)NL + 1));
    if (!r.ws_weights || extractor_parse_weights(ws, NL + 1, r.ws_weights)) goto done;
  }
  int nd = 0;
  for (int i = 0; i <= NL; i++) {
    r.want_fwd[i] = r.want_out[i] || ws;
    if (!r.want_out[i]) continue;
    r.names[nd] = hb_malloc(32);
    if (!r.names[nd]) goto done;
    snprintf(r.names[nd], 32, "layer_%d", i);
    r.dims[nd++] = H;
  }
  if (ws) {
    r.names[nd] = hb_malloc(32);
    if (!r.names[nd]) goto done;
    snprintf(r.names[nd], 32, "weighted_sum");
    r.dims[nd++] = H;
  }
  if (nd == 0) {
    hb_fail("hubert extract: --layers none without --weighted-sum writes nothing");
    goto done;
  }
  if (extractor_set_layers(&r.ex, r.want_fwd)) goto done;

  const char *keys[] = {"model", "layers", "backend", "weighted_sum", "weighted_sum_mode"};
  char backend[48];
  snprintf(backend, sizeof backend, "%s%s", device, r.ex.ctx.precision == HB_PRECISION_BF16 ? " (bf16 GEMMs)" : "");
  const char *vals[] = {model_dir, layers, backend, ws ? ws : "", ws_raw ? "raw" : ws_ln ? "softmax+layer_norm" : "softmax"};
  hb_featfile_info info = {"hubert", (double)HB_SAMPLE_RATE / config_total_stride(c), ws ? 5 : 3, keys, vals};
  if (featfile_create(out, &info, nd, (const char *const *)r.names, r.dims, &r.w)) goto done;

  hb_audio_opts aopts;
  audio_default_opts(&aopts);
  aopts.resample = resample;
  aopts.channel = channel;
  aopts.min_samples = (size_t)config_receptive_field(c);
  double t_model = 0, t_read = 0, audio_s = 0, t0 = now_s();
  long total_frames = 0;
  const int N = r.src.n;
  for (int start = 0; start < N; start += batch) {
    const int B = N - start < batch ? N - start : batch;
    double tr = now_s();
    for (int b = 0; b < B; b++) {
      if (source_read(&r.src.items[start + b], &aopts, &r.aud[b], &r.aud_cap[b])) goto done;
      r.lens[b] = (long)r.aud[b].n;
      r.waves[b] = r.aud[b].samples;
      audio_s += (double)r.aud[b].n / HB_SAMPLE_RATE;
    }
    t_read += now_s() - tr;
    double tm = now_s();
    int T = 0;
    if (extractor_forward(&r.ex, r.waves, r.lens, B, r.frames, &T)) {
      hb_fail_prefix("%s", r.src.items[start].utt_id);
      goto done;
    }
    t_model += now_s() - tm;
    if (ws) {
      size_t need = (size_t)B * T * H;
      if (need > r.ws_cap) {
        free(r.ws_out);
        r.ws_out = hb_malloc(sizeof(float) * need);
        r.ws_cap = r.ws_out ? need : 0;
        if (!r.ws_out) goto done;
      }
      for (int i = 0; i <= NL; i++) r.hs[i] = extractor_hidden(&r.ex, i);
      extractor_weighted_sum(r.hs, NL + 1, r.ws_weights, ws_raw, ws_ln, (size_t)B * T, H, r.ws_out);
    }
    for (int b = 0; b < B; b++) {
      int k = 0;
      for (int i = 0; i <= NL; i++)
        if (r.want_out[i]) r.data[k++] = extractor_hidden(&r.ex, i) + (size_t)b * T * H;
      if (ws) r.data[k++] = r.ws_out + (size_t)b * T * H;
      if (featfile_append(r.w, r.src.items[start + b].utt_id, r.frames[b], r.data)) goto done;
      total_frames += r.frames[b];
    }
    if (tty) fprintf(stderr, "\rextract: %d/%d utterances", start + B, N);
  }
  if (tty) fprintf(stderr, "\n");
  {
    hb_featfile_writer *tmp = r.w;
    r.w = NULL;
    if (featfile_close(tmp)) goto done;
  }
  double wall = now_s() - t0;
  printf("extract: %d utterances, %.1f s of audio, %ld frames x %d datasets x %d dims -> %s\n", N, audio_s,
         total_frames, nd, H, out);
  printf("extract: backend %s, %d threads, batch %d; model %.2f s, reading %.2f s, total %.2f s\n", r.ex.ctx.be->name,
         omp_get_max_threads(), batch, t_model, t_read, wall);
  printf("throughput: %.1f audio-seconds per second (model only), %.1f audio-seconds per second (end to end)\n",
         audio_s / (t_model > 0 ? t_model : 1e-9), audio_s / (wall > 0 ? wall : 1e-9));
  if (ws) printf("weighted_sum: %s weights %s over hidden states 0..%d%s\n", ws_raw ? "raw" : "softmax of", ws, NL,
                 ws_ln ? ", each layer-normalised" : "");
  rc = 0;
done:
  if (tty && rc) fprintf(stderr, "\n");
  run_free(&r);
  return rc;
}
