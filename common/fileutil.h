// Small file helpers shared by every writer and reader.
#ifndef HB_FILEUTIL_H
#define HB_FILEUTIL_H

#include <stddef.h>

// Reads a whole file (NUL-terminated for convenience; *len excludes the NUL). Errors name the file.
int file_read_all(const char *path, char **data, size_t *len);
// Writes data to PATH.tmp, fsyncs it, renames it over PATH and fsyncs the directory.
int file_write_atomic(const char *path, const void *data, size_t len);
// fsync a file by name, then rename it, then fsync the containing directory.
int file_commit_rename(const char *tmp_path, const char *final_path);
// mkdir -p.
int file_mkdirs(const char *path);
int file_exists(const char *path);
int file_is_dir(const char *path);

#endif
