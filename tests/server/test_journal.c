/* test_journal.c - record framing, checksums, torn tails (server/journal.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "journal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count_cb(void *ctx, const char *p, size_t n)
{
  (void)p;
  (*(size_t *)ctx) += n;
  return 0;
}

static void crc_known_value(void **state)
{
  (void)state;
  assert_int_equal(journal_crc32c("123456789", 9), 0xE3069283u); /* CRC-32C check value */
}

static void torn_and_corrupt_tails(void **state)
{
  (void)state;
  char dir[] = "/tmp/lossd-journal-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/j.log", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  size_t total = 0;
  for (int i = 0; i < 5; i++) {
    char payload[64];
    int n = snprintf(payload, sizeof payload, "{\"step\":%d}", i);
    size_t len;
    char *f = journal_frame(payload, (size_t)n, &len);
    assert_int_equal(journal_append(fd, f, len), 0);
    total += len;
    free(f);
  }
  close(fd);
  long end;
  size_t bytes = 0;
  assert_int_equal(journal_scan(path, count_cb, &bytes, &end), 5);
  assert_int_equal(end, (long)total);
  /* a torn last record */
  assert_int_equal(truncate(path, (off_t)total - 3), 0);
  assert_int_equal(journal_scan(path, NULL, NULL, &end), 4);
  long four = end;
  /* a flipped byte in record 3 stops the scan before it */
  fd = open(path, O_RDWR);
  assert_int_equal(pwrite(fd, "X", 1, four - 20), 1);
  close(fd);
  assert_true(journal_scan(path, NULL, NULL, &end) < 4);
  assert_true(end < four);
  /* a missing file is empty */
  snprintf(path, sizeof path, "%s/none.log", dir);
  assert_int_equal(journal_scan(path, NULL, NULL, &end), 0);
  assert_int_equal(journal_write_file(dir, "snap.json", "{}", 2), 0);
  snprintf(path, sizeof path, "%s/snap.json", dir);
  assert_int_equal(access(path, F_OK), 0);
  unlink(path);
  snprintf(path, sizeof path, "%s/j.log", dir);
  unlink(path);
  rmdir(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(crc_known_value),
                                     cmocka_unit_test(torn_and_corrupt_tails)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
