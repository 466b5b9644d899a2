#!/bin/sh
# The softmax cross-entropy family: cross_entropy (indices, probabilities), BCE, KL, entropy.
. "$(dirname "$0")/_common.sh"
echo "== cross_entropy, class indices, label smoothing 0.1"
call POST /v1/losses/cross_entropy '{"inputs": {"logits": [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]],
  "target": [0, 2]}, "params": {"label_smoothing": 0.1}}'
echo "== cross_entropy, probability targets (extras entropy + kl = loss)"
call POST /v1/losses/cross_entropy '{"inputs": {"logits": [[2.0, 0.5, -1.0]],
  "target": [[0.7, 0.2, 0.1]]}}'
echo "== binary_cross_entropy_with_logits with pos_weight, per element"
call POST /v1/losses/binary_cross_entropy_with_logits '{"inputs": {"logits": [[0.5, -1.0], [2.0, 0.0]],
  "target": [[1.0, 0.0], [1.0, 1.0]]}, "params": {"pos_weight": [2.0, 1.0]}, "reduction": "none"}'
echo "== kl_div, batchmean"
call POST /v1/losses/kl_div '{"inputs": {"input": [[-1.2, -0.4, -2.3]], "target": [[0.3, 0.6, 0.1]]},
  "reduction": "batchmean"}'
echo "== entropy of categorical logits"
call POST /v1/losses/entropy '{"inputs": {"logits": [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]}}'
