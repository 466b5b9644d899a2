#!/bin/sh
# GlobalPointer: span scores, gold spans, padding mask; answers the loss, its gradient, the
# decoded entities [b, h, start, end, score] and precision / recall / F1.
. "$(dirname "$0")/_common.sh"
echo "== global_pointer on scores [1, 1, 3, 3] with two gold spans and one pad token"
call POST /v1/losses/global_pointer '{"inputs": {
  "scores": [[[[2.0, -1.0, 0.5], [-3.0, -0.5, 1.5], [0.0, 0.0, 0.0]]]],
  "spans": [[0, 0, 0, 0], [0, 0, 1, 1]], "mask": [[1, 1, 0]]}}'
echo "== sparse_mcce (multi-label, positives by index)"
call POST /v1/losses/sparse_mcce '{"inputs": {"scores": [[2.0, -1.0, 0.5, -3.0]], "positives": [[0, 2]]}}'
