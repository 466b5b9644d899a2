#!/bin/sh
# Focal losses: torchvision's sigmoid focal loss and the softmax (multi-class) focal loss.
. "$(dirname "$0")/_common.sh"
echo "== sigmoid_focal (alpha 0.25, gamma 2; reduction none as torchvision)"
call POST /v1/losses/sigmoid_focal '{"inputs": {"logits": [[3.0, -2.0, 0.5]], "target": [[1.0, 0.0, 1.0]]}}'
echo "== softmax_focal, per-class alpha, mean"
call POST /v1/losses/softmax_focal '{"inputs": {"logits": [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]],
  "target": [0, 2]}, "params": {"alpha": [0.25, 0.5, 1.0], "gamma": 2}}'
