#include "common/fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

int file_read_all(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return hb_fail("%s: cannot open: %s", path, strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return hb_fail("%s: cannot seek", path); }
  long sz = ftell(f);
  if (sz < 0) { fclose(f); return hb_fail("%s: cannot tell size (not a regular file?)", path); }
  rewind(f);
  char *buf = hb_malloc((size_t)sz + 1);
  if (!buf) { fclose(f); return hb_fail_prefix("%s", path); }
  if (sz > 0 && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
    free(buf);
    fclose(f);
    return hb_fail("%s: short read", path);
  }
  fclose(f);
  buf[sz] = 0;
  *data = buf;
  if (len) *len = (size_t)sz;
  return 0;
}

static int fsync_dir_of(const char *path) {
  char *copy = strdup(path);
  if (!copy) return hb_fail("out of memory");
  const char *dir = dirname(copy);
  int fd = open(dir, O_RDONLY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(copy);
  return 0;
}

int file_commit_rename(const char *tmp_path, const char *final_path) {
  int fd = open(tmp_path, O_RDONLY);
  if (fd < 0) return hb_fail("%s: cannot reopen for fsync: %s", tmp_path, strerror(errno));
  if (fsync(fd) != 0) {
    close(fd);
    return hb_fail("%s: fsync failed: %s", tmp_path, strerror(errno));
  }
  close(fd);
  if (rename(tmp_path, final_path) != 0) return hb_fail("%s: cannot rename to %s: %s", tmp_path, final_path, strerror(errno));
  return fsync_dir_of(final_path);
}

int file_write_atomic(const char *path, const void *data, size_t len) {
  size_t n = strlen(path) + 8;
  char *tmp = hb_malloc(n);
  if (!tmp) return -1;
  snprintf(tmp, n, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    hb_fail("%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return -1;
  }
  if ((len && fwrite(data, 1, len, f) != len) || fflush(f) != 0) {
    hb_fail("%s: write failed: %s", tmp, strerror(errno));
    fclose(f);
    unlink(tmp);
    free(tmp);
    return -1;
  }
  fclose(f);
  int rc = file_commit_rename(tmp, path);
  if (rc) unlink(tmp);
  free(tmp);
  return rc;
}

int file_mkdirs(const char *path) {
  char buf[4096];
  if (strlen(path) >= sizeof buf) return hb_fail("%s: path too long", path);
  strcpy(buf, path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return hb_fail("%s: cannot create directory: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0777) != 0 && errno != EEXIST) return hb_fail("%s: cannot create directory: %s", buf, strerror(errno));
  if (!file_is_dir(buf)) return hb_fail("%s: exists and is not a directory", buf);
  return 0;
}

int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

int file_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
