#!/bin/sh
# Several loss calls in one request; each answer is a result or its own error.
. "$(dirname "$0")/_common.sh"
call POST /v1/batch '{"calls": [
  {"loss": "cross_entropy", "inputs": {"logits": [[2.0, 0.5]], "target": [0]}},
  {"loss": "cosent", "inputs": {"scores": [0.3, 0.8], "labels": [0, 1]}},
  {"loss": "multitask", "inputs": {"losses": [0.5, 2.0]}, "params": {"method": "uncertainty"}}]}'
