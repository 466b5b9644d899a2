#!/bin/sh
# Entropic optimal transport: value, plan and envelope gradients (POT's doc example).
. "$(dirname "$0")/_common.sh"
echo "== sinkhorn on a cost matrix, with the plan"
call POST /v1/losses/sinkhorn '{"inputs": {"a": [0.5, 0.5], "b": [0.5, 0.5], "cost": [[0, 1], [1, 0]]},
  "params": {"reg": 1.0, "return_plan": true}}'
echo "== sinkhorn between point clouds (gradients for x and y)"
call POST /v1/losses/sinkhorn '{"inputs": {"a": [0.5, 0.5], "b": [0.25, 0.75], "x": [[0, 0], [1, 0]],
  "y": [[0, 1], [1, 1]]}, "params": {"reg": 0.1}, "grad": ["x", "y"]}'
