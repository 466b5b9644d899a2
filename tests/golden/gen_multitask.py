#!/usr/bin/python3
"""Reference trajectories of the multitask weighting methods (API.md §5), 60 steps each.

Independent of lossd's C: the learned weights are torch parameters updated by torch.optim
(SGD / Adam) from autograd gradients of the stated objectives, as LibMTL does; DWA is NumPy.
Each case lists the per-rank losses every step (2 ranks) and the weights/total lossd must answer.
Run: /usr/bin/python3 tests/golden/gen_multitask.py tests/golden
"""
import json
import math
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
STEPS = 60


def synthetic(T, seed):
    """Per-rank task losses that decay with noise, like a training run."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.5, 3.0, T)
    rates = rng.uniform(0.005, 0.05, T)
    out = []
    for t in range(STEPS):
        cur = base * np.exp(-rates * t)
        out.append([list(cur * rng.uniform(0.8, 1.2, T)) for _ in range(2)])
    return out


def rank_mean(ranks):
    T = len(ranks[0])
    return np.array([(0.0 + ranks[0][i] + ranks[1][i]) / 2 for i in range(T)])


def make_opt(kind, params, lr):
    return torch.optim.SGD(params, lr=lr) if kind == "sgd" else torch.optim.Adam(params, lr=lr)


def uncertainty(form, opt, lr, losses):
    T = len(losses[0][0])
    s = torch.nn.Parameter(torch.full((T,), -0.5 if form == "libmtl" else 0.0))
    o = make_opt(opt, [s], lr)
    steps = []
    for ranks in losses:
        L = torch.tensor(rank_mean(ranks))
        with torch.no_grad():
            w = 1 / (2 * s.exp()) if form == "libmtl" else (-s).exp()
        total = ((L / (2 * s.exp()) + s / 2).sum() if form == "libmtl"
                 else ((-s).exp() * L + s).sum())
        steps.append({"weights": w.tolist(), "total": float(total)})
        o.zero_grad()
        total.backward()
        o.step()
    return steps


def gradnorm(alpha, lr, warmup, losses, norms):
    T = len(losses[0][0])
    logits = torch.nn.Parameter(torch.zeros(T))
    o = torch.optim.Adam([logits], lr=lr)
    L0 = np.zeros(T)
    steps = []
    for t, ranks in enumerate(losses):
        L = rank_mean(ranks)
        n = torch.tensor(rank_mean(norms[t]))
        if t < warmup:
            w = np.ones(T)
            L0 += L
            if t == warmup - 1:
                L0 /= warmup
            steps.append({"weights": w.tolist(), "total": float((w * L).sum())})
            continue
        w = T * torch.softmax(logits, 0)
        G = w * n
        Lt = torch.tensor(L / L0)
        r = Lt / Lt.mean()
        target = (G.mean() * r ** alpha).detach()
        lgrad = (G - target).abs().sum()
        steps.append({"weights": w.detach().tolist(), "total": float((w.detach() * torch.tensor(L)).sum())})
        o.zero_grad()
        lgrad.backward()
        o.step()
    return steps


def dwa(temperature, window, losses):
    T = len(losses[0][0])
    means = []
    cur = np.zeros(T)
    steps = []
    for t, ranks in enumerate(losses):
        L = rank_mean(ranks)
        k = t // window
        if k < 2:
            w = np.ones(T)
        else:
            r = means[k - 1] / means[k - 2]
            e = np.exp(r / temperature - np.max(r / temperature))
            w = T * e / e.sum()
        steps.append({"weights": list(w), "total": float((w * L).sum())})
        cur += L
        if (t + 1) % window == 0:
            means.append(cur / window)
            cur = np.zeros(T)
    return steps


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    cases = []
    l3 = synthetic(3, 1)
    for form in ("libmtl", "kendall"):
        for opt, lr in (("sgd", 0.05), ("adam", 0.01)):
            cases.append({"name": f"uncertainty {form} {opt}",
                          "config": {"method": "uncertainty", "tasks": ["seg", "depth", "normal"],
                                     "world_size": 2,
                                     "params": {"form": form, "optimizer": opt, "lr": lr}},
                          "ranks": l3, "expect": uncertainty(form, opt, lr, l3)})
    norms = synthetic(3, 2)
    for warmup in (1, 5):
        cases.append({"name": f"gradnorm warmup={warmup}",
                      "config": {"method": "gradnorm", "tasks": ["seg", "depth", "normal"],
                                 "world_size": 2,
                                 "params": {"alpha": 1.5, "lr": 0.025, "warmup_steps": warmup}},
                      "ranks": l3, "grad_norms": norms,
                      "expect": gradnorm(1.5, 0.025, warmup, l3, norms)})
    for window in (1, 4):
        cases.append({"name": f"dwa window={window}",
                      "config": {"method": "dwa", "tasks": ["seg", "depth", "normal"],
                                 "world_size": 2, "params": {"temperature": 2.0, "window": window}},
                      "ranks": l3, "expect": dwa(2.0, window, l3)})
    cases.append({"name": "static",
                  "config": {"method": "static", "tasks": ["seg", "depth", "normal"], "world_size": 2,
                             "params": {"weights": [1.0, 0.5, 2.0]}},
                  "ranks": l3,
                  "expect": [{"weights": [1.0, 0.5, 2.0],
                              "total": float((np.array([1.0, 0.5, 2.0]) * rank_mean(r)).sum())}
                             for r in l3]})
    with open(os.path.join(out, "multitask_trajectories.json"), "w") as f:
        json.dump(cases, f, separators=(",", ":"))
        f.write("\n")
    print(f"multitask trajectories: {len(cases)} cases x {STEPS} steps")


if __name__ == "__main__":
    main()
