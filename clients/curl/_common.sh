# _common.sh - sourced by the example scripts: base URL, a POST helper, readable output.
# LOSSD_URL (default http://127.0.0.1:8080); LOSSD_TOKEN adds the bearer header.
set -eu
LOSSD_URL=${LOSSD_URL:-http://127.0.0.1:8080}

pretty() {
  if command -v jq >/dev/null 2>&1; then jq .; elif command -v python3 >/dev/null 2>&1; then
    python3 -m json.tool; else cat; fi
}

# call METHOD PATH [BODY]: prints the answer readably; exits non-zero on an HTTP error.
call() {
  method=$1 path=$2 body=${3:-}
  set -- -sS --fail-with-body -X "$method" -H 'Content-Type: application/json'
  [ -n "${LOSSD_TOKEN:-}" ] && set -- "$@" -H "Authorization: Bearer $LOSSD_TOKEN"
  [ -n "$body" ] && set -- "$@" --data-binary "$body"
  out=$(curl "$@" "$LOSSD_URL$path") || { printf '%s\n' "$out" >&2; exit 1; }
  printf '%s\n' "$out" | pretty
}
