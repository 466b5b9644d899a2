/* lift.c - tensor data taken out of a request body before jansson parses the rest.
 *
 * jansson turns every JSON number into its own allocated node, through a locale-aware strtod,
 * and the codec then copies the nodes into one buffer: for a small cross-entropy request that is
 * four fifths of the parsing time. This pass finds the tensor data in the text (long base64
 * strings, and numeric arrays where the API puts tensors), decodes it straight into the buffer
 * the tensor will keep, and leaves a small placeholder, so jansson parses only the envelope.
 * It lifts only what it fully validates; everything else is left as it was, so malformed input
 * gets exactly the errors it got before. */
#include "lift.h"

#include "b64.h"
#include "pow5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define LIFT_MAX_DEPTH 64
#define B64_MIN_CHARS  4096

/* ---- numbers ------------------------------------------------------------------------------- */

static int digit(char c)
{
  return c >= '0' && c <= '9';
}

/* The value of eight ASCII digits loaded little-endian, or UINT32_MAX if one is not a digit
 * (SWAR: two multiplies combine the digits pairwise, then in fours). */
static uint32_t eight_digits(uint64_t v)
{
  if ((v & 0xf0f0f0f0f0f0f0f0ull) != 0x3030303030303030ull ||
      ((v + 0x0606060606060606ull) & 0xf0f0f0f0f0f0f0f0ull) != 0x3030303030303030ull)
    return UINT32_MAX;
  v -= 0x3030303030303030ull;
  v = v * 10 + (v >> 8); /* each even byte: two digits */
  v = ((v & 0x000000ff000000ffull) * (100 + (1000000ull << 32)) +
       ((v >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32))) >>
      32;
  return (uint32_t)v;
}

/* w * 10^q for 0 < w < 2^64 by the Eisel-Lemire method (Lemire 2021, section 5): w times a
 * 128-bit truncation of 5^q gives the 54 leading bits of the result and, from the bits below,
 * whether the truncation could have moved them; -1 when it could, when the result would be
 * subnormal or overflow, or when it lies too near a tie to round without the exact value. The
 * caller then asks strtod, so every value returned is the correctly rounded double. */
static int eisel_lemire(uint64_t w, long q, double *out)
{
  __extension__ typedef unsigned __int128 u128;
  if (q < POW5_QMIN || q > POW5_QMAX) return -1;
  const uint64_t *t = pow5_128[q - POW5_QMIN];
  int lz = __builtin_clzll(w);
  w <<= lz;
  u128 p = (u128)w * t[0];
  uint64_t hi = (uint64_t)(p >> 64), lo = (uint64_t)p;
  if ((hi & 0x1ff) == 0x1ff && lo + w < lo) { /* the low half of 5^q may carry into hi */
    u128 p2 = (u128)w * t[1];
    uint64_t lo2 = (uint64_t)p2, mid = lo + (uint64_t)(p2 >> 64);
    if (mid < lo) hi++;
    if (mid + 1 == 0 && (hi & 0x1ff) == 0x1ff && lo2 + w < lo2) return -1;
    lo = mid;
  }
  uint64_t upper = hi >> 63, m = hi >> (upper + 9);
  lz += (int)(1 ^ upper);
  if (lo == 0 && (hi & 0x1ff) == 0 && (m & 3) == 1) return -1; /* maybe a tie */
  m += m & 1;                                                  /* round half up ... */
  m >>= 1;
  if (m >= (1ull << 53)) { /* ... into the next binade */
    m = 1ull << 52;
    lz--;
  }
  int64_t e = ((217706 * (int64_t)q) >> 16) + 1024 + 63 - lz; /* floor(q log2 10): biased */
  if (e < 1 || e > 2046) return -1;
  uint64_t bits = (m & ~(1ull << 52)) | (uint64_t)e << 52;
  memcpy(out, &bits, sizeof bits);
  return 0;
}

/* Correctly rounded w * 10^q for a significand of at most 19 digits (truncated: digits beyond
 * were dropped, not all zero). Where w < 2^53 and |q| <= 22, one IEEE multiply or divide of two
 * exact values rounds correctly (Clinger's fast path); otherwise Eisel-Lemire, which settles
 * all but rare near-ties; the rest go to strtod on the literal. */
static int real_value(uint64_t w, long q, int truncated, int neg, const char *p, size_t n,
                      double *out)
{
  static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  if (w == 0) {
    *out = neg ? -0.0 : 0.0;
    return 0;
  }
  if (!truncated && w <= (1ull << 53) && q >= -22 && q <= 22) {
    double d = (double)w;
    d = q >= 0 ? d * pow10[q] : d / pow10[-q];
    *out = neg ? -d : d;
    return 0;
  }
  if (!truncated && !eisel_lemire(w, q, out)) {
    if (neg) *out = -*out;
    return 0;
  }
  char buf[128];
  if (n >= sizeof buf) return -1; /* left to jansson */
  memcpy(buf, p, n);
  buf[n] = 0;
  *out = strtod(buf, NULL);
  return isinf(*out) ? -1 : 0; /* jansson rejects overflow, not underflow */
}

/* The JSON number at the start of p[0..n), in one pass: its length, or 0 when the grammar is
 * broken or jansson would reject the value (an integer outside int64, a real overflowing). */
static size_t number_at(const char *p, size_t n, int *is_int, int64_t *ival, double *dval)
{
  size_t i = 0;
  int neg = n && p[0] == '-', nd = 0, truncated = 0, real = 0;
  uint64_t w = 0; /* the first 19 significant digits (an integer literal's value, if it has
                   * no more: JSON allows no leading zero, so its digits are all significant) */
  long q = 0;     /* value = w * 10^q, before the exponent */
  i += (size_t)neg;
  if (i >= n || !digit(p[i]) || (p[i] == '0' && i + 1 < n && digit(p[i + 1]))) return 0;
  for (; i < n && digit(p[i]); i++) {
    unsigned d = (unsigned)(p[i] - '0');
    if (nd < 19) {
      if (w || d) w = w * 10 + d, nd++;
    } else {
      truncated |= d != 0;
      q++;
    }
  }
  if (i < n && p[i] == '.') {
    size_t s = ++i;
    if (!w) /* a value below 1: its leading zeros are not significant digits */
      for (; i < n && p[i] == '0'; i++) q--;
    /* eight significant digits at a time while they fit in w (the first is not a 0 when w is) */
    while (nd <= 11 && i + 8 <= n) {
      uint64_t v;
      memcpy(&v, p + i, 8);
      uint32_t e8 = eight_digits(v);
      if (e8 == UINT32_MAX) break;
      w = w * 100000000u + e8, nd += 8, q -= 8, i += 8;
    }
    for (; i < n && digit(p[i]); i++) {
      unsigned d = (unsigned)(p[i] - '0');
      if (nd < 19) {
        if (w || d) w = w * 10 + d, nd++;
        q--;
      } else {
        truncated |= d != 0;
      }
    }
    if (i == s) return 0;
    real = 1;
  }
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    int eneg = 0;
    long e = 0;
    if (++i < n && (p[i] == '+' || p[i] == '-')) eneg = p[i++] == '-';
    size_t s = i;
    for (; i < n && digit(p[i]); i++)
      if (e < 100000) e = e * 10 + (p[i] - '0');
    if (i == s) return 0;
    q += eneg ? -e : e;
    real = 1;
  }
  *is_int = !real;
  if (!real) { /* as jansson's strtoll: int64 or rejected (20 digits or more: q > 0) */
    if (q > 0 || w > (uint64_t)INT64_MAX + (uint64_t)neg) return 0;
    *ival = neg ? (w == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)w) : (int64_t)w;
    *dval = (double)*ival;
    return i;
  }
  return real_value(w, q, truncated, neg, p, i, dval) ? 0 : i;
}

int lift_number(const char *p, size_t n, int *is_int, int64_t *ival, double *dval)
{
  return n && number_at(p, n, is_int, ival, dval) == n ? 0 : -1;
}

/* ---- numeric arrays ------------------------------------------------------------------------ */

/* Values go to a buffer on the stack first (LOCAL_VALUES of them) and move to the heap only when
 * they outgrow it; a small array ends in one allocation of its exact size, which glibc serves
 * from its per-thread cache, instead of a 2 KiB block that its arenas serve under a lock. */
#define LOCAL_VALUES 256

typedef struct {
  const char *p;
  size_t n, i, max;
  lift_blob_t *b;
  size_t cap;
  int seen[LOSS_MAX_RANK];
  uint64_t local[LOCAL_VALUES];
} scan_t;

static int is_ws(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline void skip_ws(scan_t *s)
{
  while (s->i < s->n && is_ws(s->p[s->i])) s->i++;
}

/* Append one value: int64 while every number so far was an integer, doubles from the first
 * real on (the integers before it converted, as jansson's json_number_value would). */
static int store(scan_t *s, int is_int, int64_t iv, double dv)
{
  lift_blob_t *b = s->b;
  if (b->count >= s->max) {
    b->too_big = 1;
    b->count++;
    return 0;
  }
  if (b->count == s->cap) {
    size_t cap = s->cap * 2;
    if (cap > s->max) cap = s->max;
    void *d = b->data == s->local ? malloc(cap * 8) : realloc(b->data, cap * 8);
    if (!d) return -1;
    if (b->data == s->local) memcpy(d, s->local, sizeof s->local);
    b->data = d, s->cap = cap;
  }
  if (b->all_int && !is_int) {
    int64_t *iv64 = b->data;
    double *dv64 = b->data;
    for (size_t k = 0; k < b->count; k++) dv64[k] = (double)iv64[k];
    b->all_int = 0;
  }
  if (b->all_int)
    ((int64_t *)b->data)[b->count++] = iv;
  else
    ((double *)b->data)[b->count++] = dv;
  return 0;
}

/* One array at depth d (at its '['); the rank is known from the leading brackets. */
static int scan_level(scan_t *s, int d)
{
  size_t k = 0;
  s->i++;
  for (;;) {
    skip_ws(s);
    if (s->i >= s->n) return -1;
    if (d + 1 < s->b->rank) {
      if (s->p[s->i] != '[' || scan_level(s, d + 1)) return -1;
    } else {
      int is_int;
      int64_t iv;
      double dv;
      size_t len = number_at(s->p + s->i, s->n - s->i, &is_int, &iv, &dv);
      if (!len || store(s, is_int, iv, dv)) return -1;
      s->i += len; /* what follows is checked below: whitespace, ',' or ']' */
    }
    k++;
    skip_ws(s);
    if (s->i >= s->n) return -1;
    if (s->p[s->i] == ']') break;
    if (s->p[s->i] != ',') return -1;
    s->i++;
  }
  s->i++;
  if (!s->seen[d]) {
    s->seen[d] = 1;
    s->b->shape[d] = k;
  } else if (s->b->shape[d] != k) {
    return -1; /* not rectangular */
  }
  return 0;
}

/* Parse the array at p[i] into b; its end, or 0 when it is not a rectangular numeric array (b is
 * then left empty). */
static size_t scan_array(const char *p, size_t n, size_t i, size_t max, lift_blob_t *b)
{
  memset(b, 0, sizeof *b);
  b->kind = LIFT_NUMBERS;
  b->all_int = 1;
  size_t j = i;
  int rank = 0;
  while (j < n && (p[j] == '[' || is_ws(p[j]))) rank += p[j++] == '[';
  if (rank > LOSS_MAX_RANK || j >= n || p[j] == ']') return 0; /* empty arrays stay in the text */
  b->rank = rank;
  scan_t s = {.p = p, .n = n, .i = i, .max = max, .b = b, .cap = LOCAL_VALUES};
  b->data = s.local;
  int bad = scan_level(&s, 0);
  if (!bad && b->data == s.local) { /* the values fit on the stack: move them at their size */
    size_t bytes = (b->count < s.max ? b->count : s.max) * 8; /* too_big: the first max */
    void *d = malloc(bytes ? bytes : 1);
    if (d) memcpy(d, s.local, bytes);
    bad = !d;
    b->data = d;
  }
  if (bad) {
    if (b->data != s.local) free(b->data);
    memset(b, 0, sizeof *b);
    return 0;
  }
  return s.i;
}

/* ---- the body ------------------------------------------------------------------------------ */

typedef enum { KEY_OTHER, KEY_DATA, KEY_INPUTS, KEY_PARAMS, KEY_B64 } key_t_;

static key_t_ classify(const char *k, size_t n)
{
  if (n == 4 && !memcmp(k, "data", 4)) return KEY_DATA;
  if (n == 6 && !memcmp(k, "inputs", 6)) return KEY_INPUTS;
  if (n == 6 && !memcmp(k, "params", 6)) return KEY_PARAMS;
  if (n == 3 && !memcmp(k, "b64", 3)) return KEY_B64;
  return KEY_OTHER;
}

/* The index of the first '"' or '\\' in p[j..n), or n, 64 bytes a step: one linear pass where
 * memchr finds one byte (a memchr for the quote per escape would be quadratic in a string of
 * escapes). Long base64 strings are scanned by their decoder instead (lift_b64). */
static size_t quote_or_backslash(const char *p, size_t n, size_t j)
{
  typedef unsigned char v16 __attribute__((vector_size(16)));
  const v16 q = {'"', '"', '"', '"', '"', '"', '"', '"', '"', '"', '"', '"', '"', '"', '"', '"'};
  const v16 b = {'\\', '\\', '\\', '\\', '\\', '\\', '\\', '\\',
                 '\\', '\\', '\\', '\\', '\\', '\\', '\\', '\\'};
  for (; j + 64 <= n; j += 64) {
    v16 x0, x1, x2, x3;
    memcpy(&x0, p + j, 16), memcpy(&x1, p + j + 16, 16);
    memcpy(&x2, p + j + 32, 16), memcpy(&x3, p + j + 48, 16);
    v16 m = (v16)(((x0 == q) | (x0 == b)) | ((x1 == q) | (x1 == b)) | ((x2 == q) | (x2 == b)) |
                  ((x3 == q) | (x3 == b)));
    uint64_t h[2];
    memcpy(h, &m, sizeof h);
    if (h[0] | h[1]) break;
  }
  for (; j < n; j++)
    if (p[j] == '"' || p[j] == '\\') return j;
  return n;
}

/* The closing quote of the string whose opening quote is at p[i], or n. */
static size_t string_end(const char *p, size_t n, size_t i)
{
  for (size_t j = i + 1;;) {
    j = quote_or_backslash(p, n, j);
    if (j >= n || p[j] == '"') return j;
    j += 2; /* the backslash and the character it escapes (no escape holds a quote after that) */
  }
}

typedef struct {
  char type;     /* '{' or '[' */
  key_t_ parent; /* the key this container is the value of */
  key_t_ key;    /* objects: the key whose value comes next */
  int want_key;  /* objects: a key (not a value) comes next */
} frame_t;

typedef struct {
  char *p;
  size_t w, done; /* text up to done is settled; it ends at w after compaction */
} out_t;

/* Move p[done..upto) to p[w..), then append the placeholder text. */
static void emit(out_t *o, size_t upto, const char *text, size_t resume)
{
  memmove(o->p + o->w, o->p + o->done, upto - o->done);
  o->w += upto - o->done;
  size_t len = strlen(text);
  memcpy(o->p + o->w, text, len);
  o->w += len;
  o->done = resume;
}

/* Placeholder text without printf (it runs for every array of every request): pre, the nonce,
 * k in decimal (0 <= k < 100), post. Returns the length; ph holds at least 40 bytes. */
_Static_assert(LIFT_MAX_BLOBS <= 100, "placeholders name blobs with one or two digits");
static int placeholder(char *ph, const char *pre, const char *nonce, int k, const char *post)
{
  int n = 0;
  for (const char *t = pre; *t; t++) ph[n++] = *t;
  memcpy(ph + n, nonce, 8), n += 8;
  if (k >= 10) ph[n++] = (char)('0' + k / 10);
  ph[n++] = (char)('0' + k % 10);
  for (const char *t = post; *t; t++) ph[n++] = *t;
  ph[n] = 0;
  return n;
}

/* A long base64 string, decoded as it is found (one pass over its text, which may be most of
 * the body): the string that opens at p[i], when it is whole quads of the alphabet, at most one
 * padded quad and the closing quote, and at least B64_MIN_CHARS long. Returns its closing
 * quote, or 0 with b empty: short, escaped ("\/" is a '/' to jansson) or not base64, all left
 * to jansson and the codec, which say the same. The buffer is sized from the rest of the body
 * (only the pages written are touched) and shrunk to the bytes decoded. */
static size_t lift_b64(out_t *o, size_t n, size_t i, lift_blob_t *b, int k, const char *nonce)
{
  memset(b, 0, sizeof *b);
  const char *s = o->p + i + 1;
  size_t avail = n - i - 1;
  if (quote_or_backslash(s, avail < B64_MIN_CHARS ? avail : B64_MIN_CHARS, 0) < B64_MIN_CHARS)
    return 0; /* short or escaped early: not worth a buffer of the body's size */
  unsigned char *d = malloc(avail / 4 * 3 + 1);
  if (!d) return 0;
  size_t end = b64_decode_run(s, avail, d), bytes = end / 4 * 3;
  if (end + 4 < avail && s[end + 3] == '=') { /* the padded last quad */
    long r = b64_decode(s + end, 4, d + bytes, 3);
    if (r > 0) bytes += (size_t)r, end += 4;
  }
  if (end >= avail || s[end] != '"') {
    free(d);
    return 0;
  }
  unsigned char *fit = realloc(d, bytes ? bytes : 1);
  b->kind = LIFT_B64;
  b->data = fit ? fit : d;
  b->bytes = (long)bytes;
  char ph[40];
  placeholder(ph, "#", nonce, k, ""); /* fits: the string was >= 4096 characters */
  emit(o, i + 1, ph, i + 1 + end);
  return i + 1 + end;
}

/* 64 bits from a per-thread splitmix64 stream seeded from the kernel's random source. */
static uint64_t nonce64(void)
{
  static _Thread_local uint64_t state;
  static _Thread_local int seeded;
  if (!seeded) {
    if (getrandom(&state, sizeof state, 0) != (ssize_t)sizeof state)
      state = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&state;
    seeded = 1;
  }
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The blob of this kind that text names (mark, the body's nonce, then the index in decimal, as
 * placeholder() writes it), or NULL: a client cannot know the nonce, so it cannot forge one. */
static lift_blob_t *ref(lift_blobs_t *blobs, const char *text, char mark, lift_kind_t kind)
{
  if (!blobs || !blobs->count || text[0] != mark) return NULL; /* the nonce is set by a lift */
  size_t nl = strlen(blobs->nonce);
  if (strncmp(text + 1, blobs->nonce, nl)) return NULL;
  const char *d = text + 1 + nl;
  int k = 0, digits = 0;
  for (; *d >= '0' && *d <= '9' && digits < 2; d++, digits++) k = 10 * k + (*d - '0');
  if (*d || !digits || k >= blobs->count) return NULL;
  lift_blob_t *b = &blobs->b[k];
  return b->kind == kind && b->data ? b : NULL;
}

lift_blob_t *lift_numbers_ref(lift_blobs_t *blobs, const char *text)
{
  return ref(blobs, text, '\x01', LIFT_NUMBERS);
}

lift_blob_t *lift_b64_ref(lift_blobs_t *blobs, const char *text)
{
  return ref(blobs, text, '#', LIFT_B64);
}

size_t lift_body(char *p, size_t n, size_t max_elems, lift_blobs_t *out)
{
  out->count = 0;
  uint32_t x = (uint32_t)nonce64();
  for (int j = 0; j < 8; j++) out->nonce[j] = "0123456789abcdef"[(x >> (28 - 4 * j)) & 15];
  out->nonce[8] = 0;
  frame_t stk[LIFT_MAX_DEPTH];
  int depth = 0;
  out_t o = {p, 0, 0};
  size_t i = 0;
  while (i < n && out->count < LIFT_MAX_BLOBS) {
    char c = p[i];
    frame_t *f = depth ? &stk[depth - 1] : NULL;
    int in_value = f && f->type == '{' && !f->want_key;
    if (c == '"') {
      size_t e = in_value && f->key == KEY_B64
                     ? lift_b64(&o, n, i, &out->b[out->count], out->count, out->nonce)
                     : 0;
      if (e) {
        out->count++;
      } else {
        e = string_end(p, n, i);
        if (e >= n) break;
        if (f && f->type == '{' && f->want_key) {
          f->key = classify(p + i + 1, e - i - 1);
          f->want_key = 0;
        }
      }
      i = e + 1;
    } else if (c == '[' && in_value &&
               (f->key == KEY_DATA || f->parent == KEY_INPUTS || f->parent == KEY_PARAMS)) {
      lift_blob_t *b = &out->b[out->count];
      size_t end = scan_array(p, n, i, max_elems, b);
      char ph[40];
      int phl = placeholder(ph, "\"\\u0001", out->nonce, out->count, "\"");
      if (end && end - i < (size_t)phl) { /* no room in place: short arrays stay */
        free(b->data);
        end = 0;
      }
      if (end) {
        out->count++;
        emit(&o, i, ph, end);
        i = end;
      } else {
        if (depth == LIFT_MAX_DEPTH) break;
        stk[depth++] = (frame_t){'[', KEY_OTHER, KEY_OTHER, 0};
        i++;
      }
    } else if (c == '{' || c == '[') {
      if (depth == LIFT_MAX_DEPTH) break;
      stk[depth++] = (frame_t){c, in_value ? f->key : KEY_OTHER, KEY_OTHER, c == '{'};
      i++;
    } else if (c == '}' || c == ']') {
      depth -= depth > 0;
      i++;
    } else {
      if (c == ',' && f && f->type == '{') f->want_key = 1;
      i++;
    }
  }
  emit(&o, n, "", n);
  return o.w;
}

void lift_blobs_free(lift_blobs_t *b)
{
  for (int i = 0; i < b->count; i++) free(b->b[i].data);
  b->count = 0;
}
