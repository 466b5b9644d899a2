#!/bin/sh
# Sentence-embedding ranking losses: CoSENT (scores or embeddings), AnglE, Circle.
. "$(dirname "$0")/_common.sh"
echo "== cosent on cosine scores"
call POST /v1/losses/cosent '{"inputs": {"scores": [0.9, 0.2, 0.6, -0.3], "labels": [1.0, 0.2, 0.8, 0.0]}}'
echo "== cosent on embedding pairs (gradients for a and b)"
call POST /v1/losses/cosent '{"inputs": {"a": [[1, 0, 1], [0, 1, 0]], "b": [[1, 1, 1], [1, 0, 0]],
  "labels": [1, 0]}}'
echo "== angle (even embedding size)"
call POST /v1/losses/angle '{"inputs": {"a": [[1, 0, 1, 0], [0, 1, 0, 1]], "b": [[1, 1, 0, 0], [0, 1, 1, 0]],
  "labels": [1, 0]}}'
echo "== circle (m 0.4, gamma 80)"
call POST /v1/losses/circle '{"inputs": {"embeddings": [[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]],
  "labels": [0, 0, 1, 1]}}'
