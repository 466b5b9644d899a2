/* journal.c - framing, checksums, scanning and durable writes for the multitask state files. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint32_t journal_crc32c(const void *p, size_t n)
{
  static uint32_t table[256];
  static int init;
  if (!init) { /* benign race: every thread computes the same table */
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      table[i] = c;
    }
    init = 1;
  }
  const unsigned char *b = p;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = table[(c ^ b[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static void put32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

char *journal_frame(const char *payload, size_t len, size_t *out_len)
{
  unsigned char *b = malloc(len + 8);
  if (!b) return NULL;
  put32(b, (uint32_t)len);
  put32(b + 4, journal_crc32c(payload, len));
  memcpy(b + 8, payload, len);
  *out_len = len + 8;
  return (char *)b;
}

long journal_scan(const char *path, journal_cb cb, void *ctx, long *valid_end)
{
  *valid_end = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return errno == ENOENT ? 0 : -1;
  long n = 0, off = 0;
  char *buf = NULL;
  for (;;) {
    unsigned char h[8];
    if (fread(h, 1, 8, f) != 8) break;
    uint32_t len = get32(h), crc = get32(h + 4);
    if (len > JOURNAL_MAX_RECORD) break;
    char *nb = realloc(buf, len + 1);
    if (!nb) break;
    buf = nb;
    if (fread(buf, 1, len, f) != len) break;
    if (journal_crc32c(buf, len) != crc) break;
    buf[len] = 0;
    off += 8 + (long)len;
    n++;
    *valid_end = off;
    if (cb && cb(ctx, buf, len)) break;
  }
  free(buf);
  fclose(f);
  return n;
}

int journal_append(int fd, const char *buf, size_t len)
{
  while (len) {
    ssize_t w = write(fd, buf, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    buf += w;
    len -= (size_t)w;
  }
  return fdatasync(fd) ? -errno : 0;
}

int journal_sync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) ? -errno : 0;
  close(fd);
  return rc;
}

int journal_write_file(const char *dir, const char *name, const char *data, size_t len)
{
  char tmp[1024], dst[1024];
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
  snprintf(dst, sizeof dst, "%s/%s", dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  int rc = journal_append(fd, data, len);
  if (!rc && fsync(fd)) rc = -errno;
  close(fd);
  if (!rc && rename(tmp, dst)) rc = -errno;
  if (!rc) rc = journal_sync_dir(dir);
  if (rc) unlink(tmp);
  return rc;
}
