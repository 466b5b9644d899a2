#!/bin/sh
# embed.sh NAME < file > header: a file as a NUL-terminated C byte array (the OpenAPI document).
# A byte array, not a string literal: C limits portable string literals to 4095 characters.
set -eu
printf 'static const unsigned char %s[] = {\n' "$1"
od -An -v -tx1 | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
printf '0x00};\n'
