#!/usr/bin/python3
"""proto/examples/<loss>.request.json and .response.json, one pair per loss of the catalogue.

Taken from the golden cases (tests/golden/*.json), whose expected answers come from the
reference implementations; tensors are rewritten as nested arrays for reading. The
integration test sends each request to a real lossd and compares the answer (extras: the ones
listed). Run: /usr/bin/python3 proto/make_examples.py
"""
import glob
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "proto", "examples")
PREFER = {"cross_entropy": "index ls=0.1 mean weight=False", "kl_div": "positive target batchmean",
          "global_pointer": "scores + mask, mcce, spans", "sinkhorn": "doc 2x2 kl",
          "emo": "embeddings mode=1", "sparse_mcce": "sparse_mcce mask_zero=True mean",
          "multitask": "uncertainty libmtl", "sigmoid_focal": "sigmoid defaults mean",
          "softmax_focal": "softmax alpha=vec gamma=2.0 mean", "cosent": "cosent embeddings with a tie"}


def nest(flat, shape):
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = len(flat) // shape[0] if shape[0] else 0
    return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def plain(t):
    if isinstance(t, dict) and "data" in t and "b64" not in t:
        return nest(t["data"], t["shape"])
    return t


def main():
    chosen = {}
    for f in sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "*.json"))):
        if f.endswith("multitask_trajectories.json"):
            continue
        for c in json.load(open(f)):
            req = c["request"]
            name = req["loss"]
            if any("b64" in v for v in req["inputs"].values() if isinstance(v, dict)):
                continue
            if name in chosen and PREFER.get(name) != c["name"]:
                continue
            if name in chosen and chosen[name][0] == PREFER.get(name):
                continue
            chosen[name] = (c["name"], c)
    os.makedirs(OUT, exist_ok=True)
    for name, (_, c) in sorted(chosen.items()):
        req = dict(c["request"])
        del req["loss"]
        req["inputs"] = {k: plain(v) for k, v in req["inputs"].items()}
        if "params" in req:
            req["params"] = {k: plain(v) for k, v in req["params"].items()}
        exp = c["expect"]
        resp = {"loss": exp["loss"], "grads": exp["grads"], "extra": exp["extra"]}
        with open(os.path.join(OUT, name + ".request.json"), "w") as fh:
            json.dump(req, fh, indent=1)
            fh.write("\n")
        with open(os.path.join(OUT, name + ".response.json"), "w") as fh:
            json.dump(resp, fh, indent=1)
            fh.write("\n")
    print(f"{len(chosen)} examples")


if __name__ == "__main__":
    main()
