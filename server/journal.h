/* journal.h - append-only record files: [u32 length][u32 crc32c][payload], little-endian.
 * A torn or corrupt tail (short header, short payload, checksum mismatch) ends the valid part. */
#ifndef LOSSD_JOURNAL_H
#define LOSSD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_MAX_RECORD (16u << 20)

uint32_t journal_crc32c(const void *p, size_t n);
/* A framed record in a malloc'd buffer of *out_len bytes; NULL on ENOMEM. */
char *journal_frame(const char *payload, size_t len, size_t *out_len);
/* Call cb for each whole, valid record of the file in order until cb returns nonzero. Sets
 * *valid_end to the byte offset after the last valid record. Returns the number of records,
 * or -1 if the file cannot be read (a missing file is 0 records). */
typedef int (*journal_cb)(void *ctx, const char *payload, size_t len);
long journal_scan(const char *path, journal_cb cb, void *ctx, long *valid_end);
/* write(2) all of it, then fdatasync; 0 or -errno. */
int journal_append(int fd, const char *buf, size_t len);
/* Write a file atomically and durably: tmp, fsync, rename, fsync the directory. 0 or -errno. */
int journal_write_file(const char *dir, const char *name, const char *data, size_t len);
/* fsync a directory. */
int journal_sync_dir(const char *dir);

#endif
