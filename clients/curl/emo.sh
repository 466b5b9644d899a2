#!/bin/sh
# EMO: earth mover distance to the target token under a cost from token embeddings.
. "$(dirname "$0")/_common.sh"
echo "== emo mode 1 (MLE-emphasised) with embeddings"
call POST /v1/losses/emo '{"inputs": {"logits": [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], "target": [0, -100],
  "embeddings": [[1, 0], [0.8, 0.6], [0, 1]]}, "params": {"mode": "1"}}'
