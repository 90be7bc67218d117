// fairseq interop for frame labels: `.km` files (one line of space-separated unit ids per
// utterance, in manifest order) and `dict.km.txt` ("unit count" per line).
#ifndef HB_KM_IMPORT_H
#define HB_KM_IMPORT_H

// Reads KM (+ optional DICT) against MANIFEST and writes a units label file (labelfile.h).
// Checks as fairseq does: line count == manifest utterances; each line's length matches the
// audio length at `rate` within 0.1 s; every id is in the dictionary (when given) and >= 0.
// k = k_opt when > 0, else (largest dictionary id + 1), else (largest id seen + 1).
int km_import(const char *manifest, const char *km, const char *dict, double rate, int k_opt,
              const char *out);
// Writes the units of a label file, or of label set NAME of a shard (NAME may be NULL when the
// shard has exactly one set), as KM and DICT ("id count" for every id in [0, k)).
int km_export(const char *in, const char *name, const char *km, const char *dict);

#endif
