/* dtoa.h - shortest round-trip text of a finite double or float, for JSON output. */
#ifndef LOSSD_DTOA_H
#define LOSSD_DTOA_H

/* Write v (finite) to out (at least 32 bytes) as JSON number text that reads back to exactly v:
 * the fewest significant digits that do (at most 17), and of those the closest to v (Python's
 * repr digits), with a fraction or exponent so that it reads as a real ("2.0", "0.1",
 * "1.0e-7", "-0.0"). Returns the length. */
int lossd_dtoa(double v, char *out);

/* The same for a float32: text that reads back to exactly v when read as a float32 (correctly
 * rounded, as strtof or numpy.float32 do), at most 9 significant digits: 0.1f is "0.1". */
int lossd_ftoa(float v, char *out);

#endif
