// The INPUT... arguments shared by `hubert extract|mfcc|fbank`: audio files and/or fairseq
// manifests (.tsv: first line the root directory, then "relpath<TAB>num_samples" per line).
#ifndef HB_INPUTS_H
#define HB_INPUTS_H

#include <stdint.h>

typedef struct {
  int n;
  char **path;          // full path of each audio file
  char **utt_id;        // manifest relpath without extension, or file name without extension
  int64_t *num_samples; // from the manifest, -1 for direct files
} hb_input_list;

// Expands args (audio files or .tsv manifests, in order) into one list. Errors name the file and
// line: missing root line, missing tab, bad sample count, empty manifest, duplicate utt ids.
int inputs_collect(int nargs, char **args, hb_input_list *out);
void inputs_free(hb_input_list *l);

typedef struct {
  char *root;
  int n;
  char **relpath;
  int64_t *num_samples;
} hb_manifest;

int manifest_read(const char *path, hb_manifest *m);
int manifest_write(const char *path, const hb_manifest *m);   // atomic
void manifest_free(hb_manifest *m);

#endif
