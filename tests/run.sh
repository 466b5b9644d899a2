#!/bin/sh
# run.sh BUILD PYTHON [lib] - run every test program (each in its own process, with a timeout),
# then the integration tests against the real server, and print one summary line.
set -u
build=$1
python=${2:-/usr/bin/python3}
only=${3:-all}
passed=0
failed=0
failures=""
for t in "$build"/tests/lib/test_* "$build"/tests/server/test_*; do
  case "$t" in *.o | *'*'*) continue ;; esac
  [ "$only" = lib ] && case "$t" in */tests/server/*) continue ;; esac
  [ -x "$t" ] || continue
  if timeout 300 "$t" >"$t.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $(basename "$t")"
  else
    failed=$((failed + 1))
    failures="$failures $(basename "$t")"
    echo "FAIL $(basename "$t") (log: $t.log)"
    tail -n 30 "$t.log"
  fi
done
if [ "$only" != lib ] && [ "$python" != none ] && [ -d tests/integration ]; then
  if "$python" -c 'import sys' 2>/dev/null; then
    if LOSSD_BIN="$build/lossd" timeout 1200 "$python" -m unittest discover -s tests/integration \
      -p 'test_*.py' >"$build/integration.log" 2>&1; then
      passed=$((passed + 1))
      echo "ok   integration ($(grep -E '^Ran ' "$build/integration.log"))"
    else
      failed=$((failed + 1))
      failures="$failures integration"
      echo "FAIL integration (log: $build/integration.log)"
      tail -n 60 "$build/integration.log"
    fi
  else
    echo "skip integration: $python not found"
  fi
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failed:$failures"; exit 1; }
