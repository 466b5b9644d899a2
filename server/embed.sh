#!/bin/sh
# embed.sh NAME < file > header: a file as a C string constant (the OpenAPI document).
set -eu
printf 'static const char %s[] =\n' "$1"
od -An -v -tx1 | sed 's/ *$//; s/^ */"/; s/ /\\x/g; s/^"/"\\x/; s/$/"/'
printf ';\n'
