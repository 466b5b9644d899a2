/* lift.h - tensor data taken out of a request body before jansson parses the rest. */
#ifndef LOSSD_LIFT_H
#define LOSSD_LIFT_H

#include "loss.h"

#include <stddef.h>
#include <stdint.h>

#define LIFT_MAX_BLOBS 64

typedef enum { LIFT_B64, LIFT_NUMBERS } lift_kind_t;

typedef struct {
  lift_kind_t kind;
  void *data; /* owned until a tensor takes it (then NULL) */
  /* LIFT_B64: the decoded byte count, or -1 for invalid base64. */
  long bytes;
  /* LIFT_NUMBERS: a rectangular nested array of JSON numbers, row-major. data holds int64 values
   * when every number was an integer literal (all_int), doubles otherwise, each exactly what
   * jansson would have made of the literal. Past max_elems nothing is stored (too_big). */
  int all_int, too_big, rank;
  size_t shape[LOSS_MAX_RANK], count;
} lift_blob_t;

typedef struct {
  lift_blob_t b[LIFT_MAX_BLOBS];
  int count;
  /* 8 random hex digits drawn per body: placeholders carry them, so that a client cannot write
   * one (a forged placeholder would alias another tensor of its own request and turn an invalid
   * request into a valid one). Never shown to clients; 32 bits keep placeholders short enough
   * for small arrays. */
  char nonce[9];
} lift_blobs_t;

/* Take tensor data out of the JSON text body[0..len), in place, and return the new length:
 *  - a "b64" string of at least 4096 characters is decoded and replaced by "#<nonce>k";
 *  - a rectangular array of numbers that is the value of "data" or of a key of an "inputs" or
 *    "params" object is parsed and replaced by the string "\u0001<nonce>k" (when its text is long
 *    enough to hold that placeholder: [1, 2, 3] stays). A string, not an object: jansson
 *    makes one value of it instead of an object, its table, its key and an integer.
 * Anything else, including every malformed array, is left for jansson and the codec, whose
 * errors are then the same as without lifting. At most LIFT_MAX_BLOBS are lifted. */
size_t lift_body(char *body, size_t len, size_t max_elems, lift_blobs_t *blobs);
/* The blob a placeholder names, or NULL when it is not one of this body's: the string (decoded)
 * for either kind. */
lift_blob_t *lift_numbers_ref(lift_blobs_t *blobs, const char *text);
lift_blob_t *lift_b64_ref(lift_blobs_t *blobs, const char *text);
void lift_blobs_free(lift_blobs_t *blobs);

/* Parse the JSON number at p[0..n): strict JSON grammar, the whole text. Sets *is_int for an
 * integer literal (then *ival holds it) and *dval to the correctly rounded double (for an integer,
 * (double)*ival). Returns -1 where jansson would reject the literal (grammar, integer outside
 * int64, real overflow). */
int lift_number(const char *p, size_t n, int *is_int, int64_t *ival, double *dval);

#endif /* LOSSD_LIFT_H */
