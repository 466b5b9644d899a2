#!/usr/bin/python3
"""Write the invalid-request corpus: one JSON file per malformed or hostile request.

Each file: {"method", "path", "headers" (optional), "body" (a string sent as is) or
"body_json" (serialised), "status", "code"}. The integration test sends each to a real lossd
(started with --max-body 1048576 --max-elements 100000) and checks status and error code.
Run: /usr/bin/python3 tests/data/http/make_invalid.py
"""
import base64
import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "invalid")
CE = "/v1/losses/cross_entropy"
cases = []


def add(name, status, code, path=CE, method="POST", body=None, body_json=None, headers=None):
    c = {"method": method, "path": path, "status": status, "code": code}
    if body is not None:
        c["body"] = body
    if body_json is not None:
        c["body_json"] = body_json
    if headers:
        c["headers"] = headers
    cases.append((name, c))


def ce(inputs=None, **kw):
    b = {"inputs": inputs if inputs is not None else {"logits": [[1.0, 2.0], [0.5, 0.1]], "target": [0, 1]}}
    b.update(kw)
    return b


def b64(fmt, vals):
    return base64.b64encode(struct.pack("<" + fmt * len(vals), *vals)).decode()


# JSON syntax (400)
for i, text in enumerate(["", "{", "}", "[", "nul", "{\"inputs\":}", "{'inputs': 1}", "{\"a\":1,}",
                          "[1,2", "{\"inputs\":{\"logits\":[1,2,]}}", "\x00\x01\x02",
                          "{\"inputs\":{\"logits\":NaN}}", "{\"inputs\":{\"logits\":Infinity}}",
                          "{\"inputs\":{\"logits\":1e400}}", "{\"inputs\":{\"logits\":-1e999}}",
                          "{\"a\":1}{\"b\":2}", "\"just a string\"", "123", "true", "null",
                          "{\"inputs\":{},\"inputs\":{}}", "\ufeff{}"]):
    add(f"syntax-{i:02d}", 400, "bad_request", body=text)
# Wrong structure (400)
add("body-array", 400, "bad_request", body_json=[1, 2])
add("no-inputs", 400, "bad_request", body_json={"params": {}})
add("inputs-not-object", 400, "bad_request", body_json={"inputs": [1, 2]})
add("unknown-field", 400, "bad_request", body_json=ce(extra=1))
add("unknown-input", 400, "bad_request", body_json=ce({"logits": [[1.0]], "target": [0], "bogus": [1]}))
add("unknown-param", 400, "bad_request", body_json=ce(params={"nope": 1}))
add("params-not-object", 400, "bad_request", body_json=ce(params=[1]))
add("param-wrong-type-bool", 400, "bad_request", path="/v1/losses/kl_div",
    body_json={"inputs": {"input": [-1.0], "target": [0.5]}, "params": {"log_target": "yes"}})
add("param-wrong-type-int", 400, "bad_request", body_json=ce(params={"ignore_index": 1.5}))
add("param-wrong-type-real", 400, "bad_request", body_json=ce(params={"label_smoothing": "0.1"}))
add("param-enum-not-string", 400, "bad_request", path="/v1/losses/global_pointer",
    body_json={"inputs": {"scores": [[[[1.0]]]], "spans": []}, "params": {"variant": 1}})
add("reduction-not-string", 400, "bad_request", body_json=ce(reduction=1))
add("reduction-on-scalar-loss", 400, "bad_request", path="/v1/losses/cosent",
    body_json={"inputs": {"scores": [0.1, 0.2], "labels": [0, 1]}, "reduction": "mean"})
add("grad-wrong-type", 400, "bad_request", body_json=ce(grad="logits"))
add("grad-unknown-name", 400, "bad_request", body_json=ce(grad=["target"]))
add("grad-missing-input", 400, "bad_request", path="/v1/losses/cosent",
    body_json={"inputs": {"scores": [0.1, 0.2], "labels": [0, 1]}, "grad": ["a"]})
add("encoding-not-string", 400, "bad_request", body_json=ce(encoding=5))
add("tensor-string", 400, "bad_request", body_json=ce({"logits": "1,2", "target": [0]}))
add("tensor-bool", 400, "bad_request", body_json=ce({"logits": [[True, False]], "target": [0]}))
add("tensor-null-element", 400, "bad_request", body_json=ce({"logits": [[1.0, None]], "target": [0]}))
add("tensor-object-element", 400, "bad_request", body_json=ce({"logits": [[1.0, {}]], "target": [0]}))
add("tensor-obj-unknown-key", 400, "bad_request",
    body_json=ce({"logits": {"shape": [1, 2], "data": [1.0, 2.0], "x": 1}, "target": [0]}))
add("tensor-obj-no-shape", 400, "bad_request", body_json=ce({"logits": {"data": [1.0, 2.0]}, "target": [0]}))
add("tensor-obj-both-data-b64", 400, "bad_request",
    body_json=ce({"logits": {"shape": [1, 2], "data": [1.0, 2.0], "b64": "AAAA", "dtype": "float32"}, "target": [0]}))
add("tensor-obj-shape-not-array", 400, "bad_request",
    body_json=ce({"logits": {"shape": 2, "data": [1.0, 2.0]}, "target": [0]}))
add("tensor-obj-shape-real", 400, "bad_request",
    body_json=ce({"logits": {"shape": [1.5, 2], "data": [1.0, 2.0]}, "target": [0]}))
add("tensor-obj-data-nested", 400, "bad_request",
    body_json=ce({"logits": {"shape": [1, 2], "data": [[1.0, 2.0]]}, "target": [0]}))
add("b64-no-dtype", 400, "bad_request", body_json=ce({"logits": {"shape": [1, 2], "b64": b64("f", [1, 2])}, "target": [0]}))
add("b64-unknown-dtype", 400, "bad_request",
    body_json=ce({"logits": {"shape": [1, 2], "dtype": "float16", "b64": b64("e", [1, 2])}, "target": [0]}))
add("b64-bad-chars", 400, "bad_request",
    body_json=ce({"logits": {"shape": [1, 2], "dtype": "float32", "b64": "AAA*AAAA"}, "target": [0]}))
add("b64-bad-padding", 400, "bad_request",
    body_json=ce({"logits": {"shape": [1, 2], "dtype": "float32", "b64": "AAAAAA=AAAA="}, "target": [0]}))
add("b64-not-string", 400, "bad_request",
    body_json=ce({"logits": {"shape": [1, 2], "dtype": "float32", "b64": 12}, "target": [0]}))
deep = 0.5
for _ in range(70):
    deep = [deep]
add("deep-nesting-70", 400, "bad_request", body_json=ce({"logits": deep, "target": [0]}))
add("cosent-both-forms", 400, "bad_request", path="/v1/losses/cosent",
    body_json={"inputs": {"scores": [0.1], "a": [[1.0]], "b": [[1.0]], "labels": [0]}})
add("gp-labels-and-spans", 400, "bad_request", path="/v1/losses/global_pointer",
    body_json={"inputs": {"scores": [[[[1.0]]]], "labels": [[[[1.0]]]], "spans": [[0, 0, 0, 0]]}})
add("gp-no-labels", 400, "bad_request", path="/v1/losses/global_pointer", body_json={"inputs": {"scores": [[[[1.0]]]]}})
add("sinkhorn-no-cost", 400, "bad_request", path="/v1/losses/sinkhorn",
    body_json={"inputs": {"a": [0.5, 0.5], "b": [0.5, 0.5]}, "params": {"reg": 1.0}})
add("emo-both-costs", 400, "bad_request", path="/v1/losses/emo",
    body_json={"inputs": {"logits": [[1.0, 2.0]], "target": [0], "embeddings": [[1.0], [2.0]], "cost": [[0.0, 1.0], [1.0, 0.0]]}})
add("batch-no-calls", 400, "bad_request", path="/v1/batch", body_json={"x": []})
add("batch-calls-not-array", 400, "bad_request", path="/v1/batch", body_json={"calls": {}})
# Values (422)
add("ragged", 422, "invalid_input", body_json=ce({"logits": [[1.0, 2.0], [3.0]], "target": [0, 0]}))
add("ragged-deep", 422, "invalid_input", body_json=ce({"logits": [[1.0, 2.0], [[3.0], 4.0]], "target": [0, 0]}))
add("data-length-mismatch", 422, "invalid_input",
    body_json=ce({"logits": {"shape": [2, 2], "data": [1.0, 2.0, 3.0]}, "target": [0, 1]}))
add("b64-byte-count", 422, "invalid_input",
    body_json=ce({"logits": {"shape": [2, 2], "dtype": "float32", "b64": b64("f", [1, 2, 3])}, "target": [0, 1]}))
add("b64-nan", 422, "invalid_input",
    body_json=ce({"logits": {"shape": [1, 2], "dtype": "float64", "b64": b64("d", [float("nan"), 1])}, "target": [0]}))
add("b64-inf-f32", 422, "invalid_input",
    body_json=ce({"logits": {"shape": [1, 2], "dtype": "float32", "b64": b64("f", [float("inf"), 1])}, "target": [0]}))
add("target-out-of-range", 422, "invalid_input", body_json=ce({"logits": [[1.0, 2.0]], "target": [2]}))
add("target-negative", 422, "invalid_input", body_json=ce({"logits": [[1.0, 2.0]], "target": [-5]}))
add("target-shape", 422, "invalid_input", body_json=ce({"logits": [[1.0, 2.0]], "target": [0, 1]}))
add("target-probs-shape", 422, "invalid_input", body_json=ce({"logits": [[1.0, 2.0]], "target": [[0.5, 0.25, 0.25]]}))
add("empty-tensor", 422, "invalid_input", body_json=ce({"logits": [], "target": []}))
add("empty-shape-dim", 422, "invalid_input", body_json=ce({"logits": {"shape": [0, 2], "data": []}, "target": []}))
add("negative-shape", 422, "invalid_input", body_json=ce({"logits": {"shape": [-1, 2], "data": []}, "target": [0]}))
add("rank-9", 422, "invalid_input",
    body_json=ce({"logits": {"shape": [1] * 9, "data": [1.0]}, "target": [0]}))
add("label-smoothing-high", 422, "invalid_input", body_json=ce(params={"label_smoothing": 1.5}))
add("label-smoothing-negative", 422, "invalid_input", body_json=ce(params={"label_smoothing": -0.1}))
add("weight-shape", 422, "invalid_input", body_json=ce(params={"weight": [1.0, 2.0, 3.0]}))
add("reduction-unknown", 422, "invalid_input", body_json=ce(reduction="avg"))
add("reduction-batchmean-ce", 422, "invalid_input", body_json=ce(reduction="batchmean"))
add("encoding-unknown", 422, "invalid_input", body_json=ce(encoding="msgpack"))
add("grad-output-with-mean", 422, "invalid_input",
    body_json=ce({"logits": [[1.0, 2.0]], "target": [0], "grad_output": [1.0]}))
add("grad-output-shape", 422, "invalid_input",
    body_json=ce({"logits": [[1.0, 2.0]], "target": [0], "grad_output": [1.0, 2.0]}, reduction="none"))
add("int-target-real-values", 422, "invalid_input", path="/v1/losses/softmax_focal",
    body_json={"inputs": {"logits": [[1.0, 2.0]], "target": [0.5]}})
add("focal-gamma-negative", 422, "invalid_input", path="/v1/losses/sigmoid_focal",
    body_json={"inputs": {"logits": [1.0], "target": [1.0]}, "params": {"gamma": -2}})
add("focal-target-2", 422, "invalid_input", path="/v1/losses/sigmoid_focal",
    body_json={"inputs": {"logits": [1.0], "target": [2.0]}})
add("kl-negative-target", 422, "invalid_input", path="/v1/losses/kl_div",
    body_json={"inputs": {"input": [-1.0], "target": [-0.5]}})
add("entropy-3d", 422, "invalid_input", path="/v1/losses/entropy", body_json={"inputs": {"logits": [[[1.0]]]}})
add("angle-odd-dim", 422, "invalid_input", path="/v1/losses/angle",
    body_json={"inputs": {"a": [[1.0, 2.0, 3.0]], "b": [[1.0, 2.0, 3.0]], "labels": [0]}})
add("circle-labels-real", 422, "invalid_input", path="/v1/losses/circle",
    body_json={"inputs": {"embeddings": [[1.0, 0.0]], "labels": [0.5]}})
add("gp-span-range", 422, "invalid_input", path="/v1/losses/global_pointer",
    body_json={"inputs": {"scores": [[[[1.0]]]], "spans": [[0, 0, 0, 3]]}})
add("gp-variant-unknown", 422, "invalid_input", path="/v1/losses/global_pointer",
    body_json={"inputs": {"scores": [[[[1.0]]]], "spans": []}, "params": {"variant": "softmax"}})
add("sparse-dup", 422, "invalid_input", path="/v1/losses/sparse_mcce",
    body_json={"inputs": {"scores": [[1.0, 2.0, 3.0]], "positives": [[1, 1]]}})
add("sinkhorn-no-reg", 422, "invalid_input", path="/v1/losses/sinkhorn",
    body_json={"inputs": {"a": [0.5, 0.5], "b": [0.5, 0.5], "cost": [[0.0, 1.0], [1.0, 0.0]]}})
add("sinkhorn-unequal", 422, "invalid_input", path="/v1/losses/sinkhorn",
    body_json={"inputs": {"a": [0.5, 0.5], "b": [0.5, 0.7], "cost": [[0.0, 1.0], [1.0, 0.0]]}, "params": {"reg": 1.0}})
add("sinkhorn-zero-mass", 422, "invalid_input", path="/v1/losses/sinkhorn",
    body_json={"inputs": {"a": [1.0, 0.0], "b": [0.5, 0.5], "cost": [[0.0, 1.0], [1.0, 0.0]]}, "params": {"reg": 1.0}})
add("sinkhorn-metric-unknown", 422, "invalid_input", path="/v1/losses/sinkhorn",
    body_json={"inputs": {"a": [1.0], "b": [1.0], "x": [[1.0]], "y": [[1.0]]}, "params": {"reg": 1.0, "metric": "manhattan"}})
add("emo-target-range", 422, "invalid_input", path="/v1/losses/emo",
    body_json={"inputs": {"logits": [[1.0, 2.0]], "target": [5], "embeddings": [[1.0], [2.0]]}})
add("emo-mode-int", 400, "bad_request", path="/v1/losses/emo",
    body_json={"inputs": {"logits": [[1.0, 2.0]], "target": [0], "embeddings": [[1.0], [2.0]]}, "params": {"mode": 1}})
add("multitask-log-vars-static", 422, "invalid_input", path="/v1/losses/multitask",
    body_json={"inputs": {"losses": [1.0, 2.0], "log_vars": [0.0, 0.0]}})
# Size limits (413): the test server runs with --max-body 1048576 --max-elements 100000
add("shape-over-element-cap", 413, "too_large",
    body_json=ce({"logits": {"shape": [100000, 100000], "data": []}, "target": [0]}))
add("shape-overflow", 413, "too_large",
    body_json=ce({"logits": {"shape": [2 ** 62, 2 ** 62], "data": []}, "target": [0]}))
add("nested-over-element-cap", 413, "too_large",
    body_json=ce({"logits": [[0.0] * 400] * 300, "target": [0] * 300}))
add("body-over-limit", 413, "too_large", body="{\"inputs\":{\"logits\":[" + "1," * 600000 + "1]}}")
add("batch-too-many", 413, "too_large", path="/v1/batch", body_json={"calls": [{}] * 1100})
# Routing (404, 405, 415)
add("unknown-route", 404, "not_found", path="/v1/nothing", method="GET")
add("unknown-loss", 404, "not_found", path="/v1/losses/hinge", body_json=ce())
add("root", 404, "not_found", path="/", method="GET")
add("path-traversal", 404, "not_found", path="/v1/losses/../../etc/passwd", method="GET")
add("unknown-session", 404, "not_found", path="/v1/multitask/sessions/none-such", method="GET")
add("post-healthz", 405, "method_not_allowed", path="/healthz", body_json={})
add("delete-losses", 405, "method_not_allowed", path="/v1/losses", method="DELETE")
add("put-loss", 405, "method_not_allowed", method="PUT", body_json=ce())
add("get-batch", 405, "method_not_allowed", path="/v1/batch", method="GET")
add("patch-sessions", 405, "method_not_allowed", path="/v1/multitask/sessions", method="PATCH", body_json={})
add("text-plain", 415, "unsupported_media_type", body="{}", headers={"Content-Type": "text/plain"})
add("form-urlencoded", 415, "unsupported_media_type", body="a=1",
    headers={"Content-Type": "application/x-www-form-urlencoded"})
# Multitask (400/409/422)
MT = "/v1/multitask/sessions"
add("mt-no-method", 400, "bad_request", path=MT, body_json={"tasks": ["a"]})
add("mt-unknown-method", 422, "invalid_input", path=MT, body_json={"method": "pcgrad", "tasks": ["a"]})
add("mt-no-tasks", 400, "bad_request", path=MT, body_json={"method": "static"})
add("mt-dup-tasks", 422, "invalid_input", path=MT, body_json={"method": "static", "tasks": ["a", "a"]})
add("mt-world-zero", 422, "invalid_input", path=MT, body_json={"method": "static", "tasks": ["a"], "world_size": 0})
add("mt-param-other-method", 400, "bad_request", path=MT,
    body_json={"method": "static", "tasks": ["a"], "params": {"alpha": 1.5}})
add("mt-bad-id", 422, "invalid_input", path=MT + "/bad%20id", method="PUT", body_json={"method": "static", "tasks": ["a"]})
add("mt-id-too-long", 422, "invalid_input", path=MT + "/" + "x" * 65, method="PUT",
    body_json={"method": "static", "tasks": ["a"]})

# A required input left out (each loss): 400, never a crash (found by tests/fuzz).
for loss, inputs in (("cross_entropy", {"logits": [[1.0, 2.0]]}), ("cross_entropy", {"target": [0]}),
                     ("binary_cross_entropy_with_logits", {"logits": [1.0]}),
                     ("kl_div", {"input": [-1.0]}), ("kl_div", {"target": [0.5]}), ("entropy", {}),
                     ("sigmoid_focal", {"logits": [1.0]}), ("softmax_focal", {"target": [0]}),
                     ("cosent", {"scores": [0.1]}), ("angle", {"a": [[1.0, 0.0]], "labels": [0]}),
                     ("circle", {"labels": [0]}), ("global_pointer", {"spans": []}),
                     ("sparse_mcce", {"scores": [[1.0, 2.0]]}), ("sinkhorn", {"a": [1.0]}),
                     ("emo", {"logits": [[1.0, 2.0]], "embeddings": [[1.0], [2.0]]}), ("multitask", {})):
    add(f"missing-input-{loss}-{'-'.join(inputs) or 'all'}", 400, "bad_request",
        path="/v1/losses/" + loss, body_json={"inputs": inputs})

os.makedirs(HERE, exist_ok=True)
for f in os.listdir(HERE):
    os.unlink(os.path.join(HERE, f))
for name, c in cases:
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(c, f)
        f.write("\n")
print(f"{len(cases)} invalid requests")
