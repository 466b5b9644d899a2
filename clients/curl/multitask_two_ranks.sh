#!/bin/sh
# Two ranks share one uncertainty-weighting session: rank 0 reports in the background and
# waits at the step barrier until rank 1 reports; both get the same weights.
. "$(dirname "$0")/_common.sh"
id=${SESSION_ID:-curl-demo-$$}
echo "== create or join $id (both ranks would PUT the same body)"
call PUT "/v1/multitask/sessions/$id" '{"method": "uncertainty", "tasks": ["seg", "depth"],
  "world_size": 2, "params": {"lr": 0.05}}'
tmp=$(mktemp)
for step in 0 1 2; do
  echo "== step $step"
  ( call POST "/v1/multitask/sessions/$id/steps" "{\"step\": $step, \"rank\": 0,
      \"losses\": [0.8, 2.1]}" > "$tmp" ) &
  rank0=$!
  sleep 0.2
  echo "-- rank 1:"
  call POST "/v1/multitask/sessions/$id/steps" "{\"step\": $step, \"rank\": 1, \"losses\": [0.6, 1.9]}"
  wait "$rank0" || { echo "rank 0 failed" >&2; exit 1; }
  echo "-- rank 0:"
  cat "$tmp"
done
rm -f "$tmp"
echo "== the session: config, state, history"
call GET "/v1/multitask/sessions/$id"
call DELETE "/v1/multitask/sessions/$id"
