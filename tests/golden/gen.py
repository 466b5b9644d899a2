#!/usr/bin/python3
"""Golden vectors for every lossd loss, computed by the reference implementations.

Run with Debian's interpreter: /usr/bin/python3 tests/golden/gen.py tests/golden
(python3-torch, python3-numpy, python3-pot, python3-torchvision). Each output file
<family>.json is a list of cases: {"name", "request" (an API.md §4 body plus "loss"),
"expect": {"loss", "grads", "extra"}, "rtol", "atol"}. Values come from autograd on the
reference formulas; where lossd deliberately differs from a reference (LOSSES.md §7) the case
says so in "note" and the expectation is lossd's documented behaviour.
"""
import base64
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
F64 = torch.float64
RTOL64, ATOL64 = 1e-9, 1e-12
RTOL32, ATOL32 = 1e-5, 1e-6


def tj(x, b64=False):
    """A tensor in the API's tensor form with an explicit dtype."""
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    if a.dtype == np.float32:
        dt = "float32"
    elif a.dtype == np.float64:
        dt = "float64"
    else:
        a = a.astype(np.int64)
        dt = "int64"
    if b64:
        return {"shape": list(a.shape), "dtype": dt,
                "b64": base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).decode()}
    data = [float(v) if dt.startswith("float") else int(v) for v in a.ravel()]
    return {"shape": list(a.shape), "dtype": dt, "data": data}


def num(v):
    v = float(v)
    return v if math.isfinite(v) else None


def flat(x):
    return [num(v) for v in x.detach().reshape(-1).tolist()]


class Family:
    def __init__(self, name):
        self.name, self.cases = name, []

    def add(self, name, loss, inputs, expect_loss, grads, params=None, reduction=None,
            grad=None, extra=None, f32=False, rtol=None, atol=None, note=None, b64=()):
        req = {"loss": loss, "inputs": {k: tj(v, k in b64) for k, v in inputs.items()}}
        if params:
            req["params"] = {k: (tj(v) if torch.is_tensor(v) else v) for k, v in params.items()}
        if reduction is not None:
            req["reduction"] = reduction
        if grad is not None:
            req["grad"] = grad
        if torch.is_tensor(expect_loss) and expect_loss.dim() > 0:
            el = {"shape": list(expect_loss.shape), "data": flat(expect_loss)}
        else:
            el = num(expect_loss)
        case = {"name": name, "request": req, "expect": {
            "loss": el,
            "grads": {k: {"shape": list(v.shape), "data": flat(v)} for k, v in grads.items()},
            "extra": {k: (v if not torch.is_tensor(v) else
                          (num(v) if v.dim() == 0 else {"shape": list(v.shape), "data": flat(v)}))
                      for k, v in (extra or {}).items()}},
            "rtol": rtol if rtol is not None else (RTOL32 if f32 else RTOL64),
            "atol": atol if atol is not None else (ATOL32 if f32 else ATOL64)}
        if note:
            case["note"] = note
        self.cases.append(case)


def run(fn, diff, go=None):
    """Evaluate fn on leaves `diff` (dict name -> tensor); return (loss, grads)."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in diff.items()}
    out = fn(**leaves)
    loss = out[0] if isinstance(out, tuple) else out
    if loss.dim() == 0:
        loss.backward()
    else:
        loss.backward(go if go is not None else torch.ones_like(loss))
    grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in leaves.items()}
    return (out if isinstance(out, tuple) else loss), grads


# ---------------------------------------------------------------------------------------------
def cross_entropy(fam):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, 4, generator=g) * 2
    z[2] = torch.tensor([50.0, -50.0, 10.0, 0.0])
    y = torch.tensor([0, 3, -100, 1, 2])
    w = torch.tensor([0.5, 1.0, 2.0, 1.5])
    for ls in (0.0, 0.1):
        for red in ("mean", "sum", "none"):
            for wt in (None, w):
                params = {"label_smoothing": ls}
                if wt is not None:
                    params["weight"] = wt
                l, gr = run(lambda logits: F.cross_entropy(logits, y, weight=wt, reduction=red,
                                                           label_smoothing=ls), {"logits": z})
                fam.add(f"index ls={ls} {red} weight={wt is not None}", "cross_entropy",
                        {"logits": z, "target": y}, l, gr, params, red)
    go = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.25])
    l, gr = run(lambda logits: F.cross_entropy(logits, y, reduction="none", label_smoothing=0.1),
                {"logits": z}, go)
    fam.add("index none grad_output", "cross_entropy",
            {"logits": z, "target": y, "grad_output": go}, l, gr, {"label_smoothing": 0.1}, "none")
    # K-dim with ignore positions, weighted mean.
    zk = torch.randn(2, 3, 2, 2, generator=g)
    yk = torch.tensor([[[0, 2], [-100, 1]], [[1, -100], [2, 0]]])
    wk = torch.tensor([1.0, 2.0, 0.5])
    for ls in (0.0, 0.2):
        l, gr = run(lambda logits: F.cross_entropy(logits, yk, weight=wk, label_smoothing=ls),
                    {"logits": zk})
        fam.add(f"kdim weighted ls={ls}", "cross_entropy", {"logits": zk, "target": yk}, l, gr,
                {"weight": wk, "label_smoothing": ls})
    # All ignored: NaN value, zero gradient (lossd's zero; torch's smoothing path is 0/0 too).
    ya = torch.full((3,), -100)
    za = torch.randn(3, 4, generator=g)
    for ls in (0.0, 0.1):
        l = F.cross_entropy(za, ya, label_smoothing=ls)
        fam.add(f"all ignored ls={ls}", "cross_entropy", {"logits": za, "target": ya}, l,
                {"logits": torch.zeros_like(za)}, {"label_smoothing": ls},
                note="NaN value (torch), zero gradient")
    # Probability targets with weight and smoothing, extras entropy and kl.
    zp = torch.randn(3, 5, generator=g)
    tp = torch.softmax(torch.randn(3, 5, generator=g), 1)
    wp = torch.tensor([1.0, 0.5, 2.0, 1.0, 3.0])
    for red in ("mean", "sum", "none"):
        for wt in (None, wp):
            params = {"label_smoothing": 0.2}
            if wt is not None:
                params["weight"] = wt
            l, gr = run(lambda logits: F.cross_entropy(logits, tp, weight=wt, reduction=red,
                                                       label_smoothing=0.2), {"logits": zp})
            ts = 0.8 * tp + 0.2 / 5
            ent = -(ts * ts.log()).sum(1)
            kl = (ts * (ts.log() - torch.log_softmax(zp, 1))).sum(1)
            if red == "mean":
                ent, kl = ent.mean(), kl.mean()
            elif red == "sum":
                ent, kl = ent.sum(), kl.sum()
            fam.add(f"probs {red} weight={wt is not None}", "cross_entropy",
                    {"logits": zp, "target": tp}, l, gr, params, red,
                    extra={"entropy": ent, "kl": kl})
    # One-hot floats vs indices with weights: documented mean mismatch (divides by N).
    yi = torch.tensor([1, 0, 4])
    oh = F.one_hot(yi, 5).to(F64)
    l, gr = run(lambda logits: F.cross_entropy(logits, oh, weight=wp), {"logits": zp})
    fam.add("one-hot probs weighted mean divides by N", "cross_entropy",
            {"logits": zp, "target": oh}, l, gr, {"weight": wp})
    l, gr = run(lambda logits: F.cross_entropy(logits, yi, weight=wp), {"logits": zp})
    fam.add("indices weighted mean divides by sum w", "cross_entropy",
            {"logits": zp, "target": yi}, l, gr, {"weight": wp})
    # 1-D logits, scalar target.
    z1 = torch.randn(6, generator=g)
    l, gr = run(lambda logits: F.cross_entropy(logits, torch.tensor(3)), {"logits": z1})
    fam.add("1-D logits", "cross_entropy", {"logits": z1, "target": torch.tensor(3)}, l, gr)
    # float32: the vector kernel, with a tail that is not a multiple of 8.
    for (n, c, ls, wt) in ((16, 1000, 0.0, False), (8, 33, 0.1, False), (6, 19, 0.1, True)):
        z32 = (torch.randn(n, c, generator=g) * 3).float()
        y32 = torch.randint(0, c, (n,), generator=g)
        y32[1] = -100
        w32 = torch.rand(c, generator=g).float() + 0.5 if wt else None
        l, gr = run(lambda logits: F.cross_entropy(logits, y32, weight=w32, label_smoothing=ls),
                    {"logits": z32})
        params = {"label_smoothing": ls}
        if wt:
            params["weight"] = w32.double()
        fam.add(f"float32 [{n},{c}] ls={ls} weight={wt}", "cross_entropy",
                {"logits": z32, "target": y32}, l, gr, params, f32=True)


def bce(fam):
    xs = torch.tensor([-100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 100.0])
    for yv in (0.0, 0.3, 1.0):
        y = torch.full_like(xs, yv)
        for red in ("mean", "sum", "none"):
            l, gr = run(lambda logits: F.binary_cross_entropy_with_logits(logits, y, reduction=red),
                        {"logits": xs})
            fam.add(f"grid y={yv} {red}", "binary_cross_entropy_with_logits",
                    {"logits": xs, "target": y}, l, gr, reduction=red)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, generator=g) * 3
    y = torch.rand(3, 4, generator=g)
    pw = torch.tensor([1.0, 2.0, 0.5, 3.0])
    w = torch.rand(3, 4, generator=g) + 0.5
    for red in ("mean", "sum"):
        l, gr = run(lambda logits: F.binary_cross_entropy_with_logits(
            logits, y, weight=w, pos_weight=pw, reduction=red), {"logits": x})
        fam.add(f"weight pos_weight {red}", "binary_cross_entropy_with_logits",
                {"logits": x, "target": y}, l, gr, {"weight": w, "pos_weight": pw}, red)
    for wb in (torch.tensor([0.5, 1.0, 2.0, 1.5]), torch.tensor([[2.0], [1.0], [0.5]])):
        l, gr = run(lambda logits: F.binary_cross_entropy_with_logits(logits, y, weight=wb),
                    {"logits": x})
        fam.add(f"weight broadcast {list(wb.shape)}", "binary_cross_entropy_with_logits",
                {"logits": x, "target": y}, l, gr, {"weight": wb})


def kl_div(fam):
    g = torch.Generator().manual_seed(3)
    x = torch.log_softmax(torch.randn(4, 3, generator=g), 1)
    p0 = F.one_hot(torch.tensor([0, 2, 1, 1]), 3).to(F64)
    pp = torch.softmax(torch.randn(4, 3, generator=g), 1)
    for red in ("mean", "batchmean", "sum", "none"):
        l, gr = run(lambda input: F.kl_div(input, p0, reduction=red), {"input": x})
        fam.add(f"one-hot target {red}", "kl_div", {"input": x, "target": p0}, l, gr,
                reduction=red, grad=["input"])
        l, gr = run(lambda input, target: F.kl_div(input, target, reduction=red),
                    {"input": x, "target": pp})
        fam.add(f"positive target {red}", "kl_div", {"input": x, "target": pp}, l, gr,
                reduction=red)
        lt = pp.log()
        l, gr = run(lambda input, target: F.kl_div(input, target, reduction=red, log_target=True),
                    {"input": x, "target": lt})
        fam.add(f"log_target {red}", "kl_div", {"input": x, "target": lt}, l, gr,
                {"log_target": True}, red)
    # At p = 0 lossd defines the target gradient as 0 (torch: non-finite).
    l, gr = run(lambda input: F.kl_div(input, p0, reduction="sum"), {"input": x})
    gt = torch.where(p0 > 0, p0.log() + 1 - x, torch.zeros_like(x))
    fam.add("target gradient at p=0 is 0", "kl_div", {"input": x, "target": p0}, l,
            {"input": gr["input"], "target": gt}, reduction="sum",
            note="lossd returns 0 where torch's d/dtarget is not finite")
    x32 = torch.log_softmax(torch.randn(7, 37, generator=g), 1).float()
    p32 = torch.softmax(torch.randn(7, 37, generator=g) * 2, 1).float()
    p32[0, :5] = 0
    l, gr = run(lambda input: F.kl_div(input, p32, reduction="batchmean"), {"input": x32})
    fam.add("float32 batchmean", "kl_div", {"input": x32, "target": p32}, l, gr,
            reduction="batchmean", grad=["input"], f32=True)


def entropy(fam):
    from torch.distributions import Categorical

    def H(logits):
        return Categorical(logits=logits).entropy()
    g = torch.Generator().manual_seed(4)
    for name, z in (("uniform", torch.zeros(2, 5)), ("random", torch.randn(4, 6, generator=g) * 2),
                    ("one large logit", torch.tensor([[1e4, 0.0, 1.0], [0.0, 0.5, -0.5]]))):
        for red in ("mean", "sum", "none"):
            l, gr = run(lambda logits: {"mean": H(logits).mean(), "sum": H(logits).sum(),
                                        "none": H(logits)}[red], {"logits": z})
            fam.add(f"{name} {red}", "entropy", {"logits": z}, l, gr, reduction=red)
    zm = torch.randn(3, 5, generator=g)
    zm[0, 1] = -math.inf
    zm[2, 0] = zm[2, 4] = -math.inf
    l, gr = run(lambda logits: H(logits).mean(), {"logits": zm})
    fam.add("masked -inf classes (b64)", "entropy", {"logits": zm}, l, gr, b64=("logits",))


def focal(fam):
    from torchvision.ops import sigmoid_focal_loss
    xs = torch.tensor([-30.0, -5.0, 0.0, 5.0, 30.0])
    for yv in (0.0, 1.0, 0.3):
        for gm in (0.0, 0.5, 2.0):
            for al in (0.25, -1.0):
                y = torch.full_like(xs, yv)
                l, gr = run(lambda logits: sigmoid_focal_loss(logits, y, al, gm, "none"),
                            {"logits": xs})
                fam.add(f"sigmoid y={yv} gamma={gm} alpha={al}", "sigmoid_focal",
                        {"logits": xs, "target": y}, l, gr, {"alpha": al, "gamma": gm},
                        rtol=1e-8, atol=1e-13)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, generator=g) * 3
    y = (torch.rand(4, 3, generator=g) > 0.5).to(F64)
    for red in ("mean", "sum"):
        l, gr = run(lambda logits: sigmoid_focal_loss(logits, y, reduction=red), {"logits": x})
        fam.add(f"sigmoid defaults {red}", "sigmoid_focal", {"logits": x, "target": y}, l, gr,
                reduction=red)

    def mfocal(logits, target, alpha, gamma, red):
        lp = torch.log_softmax(logits, 1).gather(1, target[:, None])[:, 0]
        a = alpha[target] if torch.is_tensor(alpha) else alpha
        l = -a * (1 - lp.exp()) ** gamma * lp
        return {"mean": l.mean(), "sum": l.sum(), "none": l}[red]
    z = torch.randn(4, 5, generator=g) * 2
    t = torch.tensor([0, 3, 4, 1])
    av = torch.tensor([0.25, 0.5, 1.0, 0.75, 2.0])
    for red in ("mean", "sum", "none"):
        for al, gm in ((av, 2.0), (0.5, 0.5), (1.0, 0.0)):
            l, gr = run(lambda logits: mfocal(logits, t, al, gm, red), {"logits": z})
            fam.add(f"softmax alpha={'vec' if torch.is_tensor(al) else al} gamma={gm} {red}",
                    "softmax_focal", {"logits": z, "target": t}, l, gr,
                    {"alpha": al, "gamma": gm}, red)


def pairwise_cos_sim(a, b):
    return (F.normalize(a, p=2, dim=1) * F.normalize(b, p=2, dim=1)).sum(-1)


def pairwise_angle_sim(x, y):  # sentence-transformers util/similarity.py
    a, b = torch.chunk(x, 2, dim=1)
    c, d = torch.chunk(y, 2, dim=1)
    z = torch.sum(c ** 2 + d ** 2, dim=1, keepdim=True)
    re = (a * c + b * d) / z
    im = (b * c - a * d) / z
    dz = torch.sum(a ** 2 + b ** 2, dim=1, keepdim=True) ** 0.5
    de = torch.sum(c ** 2 + d ** 2, dim=1, keepdim=True) ** 0.5
    re = re / (dz / de)
    im = im / (dz / de)
    return torch.abs(torch.sum(torch.concat((re, im), dim=1), dim=1))


def cosent_ref(scores, labels, scale=20.0):  # sentence-transformers CoSENTLoss
    scores = scores * scale
    scores = scores[:, None] - scores[None, :]
    labels = (labels[:, None] < labels[None, :]).to(scores.dtype)
    scores = scores - (1 - labels) * 1e12
    scores = torch.cat((torch.zeros(1, dtype=scores.dtype), scores.view(-1)), dim=0)
    return torch.logsumexp(scores, dim=0)


def ranking(fam):
    g = torch.Generator().manual_seed(6)
    a = torch.randn(4, 6, generator=g)
    b = torch.randn(4, 6, generator=g)
    lab = torch.tensor([0.0, 1.0, 1.0, 2.0])
    l, gr = run(lambda a, b: cosent_ref(pairwise_cos_sim(a, b), lab), {"a": a, "b": b})
    fam.add("cosent embeddings with a tie", "cosent", {"a": a, "b": b, "labels": lab}, l, gr)
    s = torch.rand(12, generator=g) * 2 - 1
    ls = torch.randint(0, 4, (12,), generator=g).to(F64)
    for sc in (20.0, 7.5):
        l, gr = run(lambda scores: cosent_ref(scores, ls, sc), {"scores": s})
        fam.add(f"cosent scores scale={sc}", "cosent", {"scores": s, "labels": ls}, l, gr,
                {"scale": sc})
    l, gr = run(lambda scores: cosent_ref(scores, torch.ones(12)), {"scores": s})
    fam.add("cosent all labels equal", "cosent", {"scores": s, "labels": torch.ones(12)}, l, gr)
    s2 = torch.tensor([0.99, -0.99, 0.98, -0.97])
    l2 = torch.tensor([0.0, 1.0, 0.0, 1.0])
    l, gr = run(lambda scores: cosent_ref(scores, l2), {"scores": s2})
    fam.add("cosent near-opposite cosines (scale*diff ~ 40)", "cosent",
            {"scores": s2, "labels": l2}, l, gr)
    ab = torch.randn(5, 8, generator=g)
    bb = torch.randn(5, 8, generator=g)
    lb = torch.tensor([0.1, 0.5, 0.2, 0.9, 0.5])
    l, gr = run(lambda a, b: cosent_ref(pairwise_angle_sim(a, b), lb), {"a": ab, "b": bb})
    fam.add("angle", "angle", {"a": ab, "b": bb, "labels": lb}, l, gr)
    l, gr = run(lambda a, b: cosent_ref(pairwise_angle_sim(a, b), lb, 5.0), {"a": ab, "b": bb})
    fam.add("angle scale=5", "angle", {"a": ab, "b": bb, "labels": lb}, l, gr, {"scale": 5.0})

    def circle_ref(emb, labels, m=0.4, gamma=80.0):  # pytorch-metric-learning CircleLoss
        e = F.normalize(emb, p=2, dim=1)
        mat = e @ e.t()
        same = labels[:, None] == labels[None, :]
        pos = same & ~torch.eye(len(labels), dtype=torch.bool)
        neg = ~same
        op, on, dp, dn = 1 + m, -m, 1 - m, m
        new = torch.zeros_like(mat)
        new = torch.where(pos, -gamma * torch.relu(op - mat.detach()) * (mat - dp), new)
        new = torch.where(neg, gamma * torch.relu(mat.detach() - on) * (mat - dn), new)

        def lse(keep):
            x = new.masked_fill(~keep, torch.finfo(new.dtype).min)
            out = torch.logsumexp(x, dim=1)
            return out.masked_fill(~keep.any(1), 0)
        losses = F.softplus(lse(pos) + lse(neg))
        keep = (pos.any(1) & neg.any(1)).to(losses.dtype)
        losses = losses * keep
        nz = losses > 0
        return losses[nz].mean() if nz.any() else losses.sum() * 0
    e = torch.randn(6, 4, generator=g)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    l, gr = run(lambda embeddings: circle_ref(embeddings, y), {"embeddings": e})
    fam.add("circle defaults", "circle", {"embeddings": e, "labels": y}, l, gr)
    y2 = torch.tensor([0, 0, 1, 1, 2, 3])
    l, gr = run(lambda embeddings: circle_ref(embeddings, y2), {"embeddings": e})
    fam.add("circle anchors without positives", "circle", {"embeddings": e, "labels": y2}, l, gr)
    e3 = torch.tensor([[1.0, 0.01], [1.0, -0.01], [-1.0, 0.02], [-1.0, -0.02]])
    y3 = torch.tensor([0, 0, 1, 1])
    l, gr = run(lambda embeddings: circle_ref(embeddings, y3, 0.25, 256.0), {"embeddings": e3})
    fam.add("circle gamma=256 near +-1 (alpha_n = 0)", "circle", {"embeddings": e3, "labels": y3},
            l, gr, {"m": 0.25, "gamma": 256.0})


def rope_b4k(x):
    """bert4keras SinusoidalPositionEmbedding('zero') + apply_rotary_position_embeddings on
    x [B, L, (H,) D], positions along dim 1."""
    L, D = x.shape[1], x.shape[-1]
    pos = torch.arange(L, dtype=F64)[:, None]
    idx = torch.arange(D // 2, dtype=F64)
    th = pos * torch.pow(torch.tensor(10000.0), -2 * idx / D)
    emb = torch.stack([torch.sin(th), torch.cos(th)], -1).reshape(L, D)
    cos_pos = emb[:, 1::2].repeat_interleave(2, -1)
    sin_pos = emb[:, ::2].repeat_interleave(2, -1)
    if x.dim() == 4:
        cos_pos, sin_pos = cos_pos[:, None], sin_pos[:, None]
    x2 = torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)
    return x * cos_pos + x2 * sin_pos


def mcce_head(y_true, y_pred):  # bert4keras multilabel_categorical_crossentropy (HEAD)
    y_mask = y_pred > -math.inf
    y_neg = torch.where(y_mask, y_pred, torch.full_like(y_pred, -math.inf)) + torch.log(1 - y_true)
    y_pos = torch.where(y_mask, -y_pred, torch.full_like(y_pred, -math.inf)) + torch.log(y_true)
    zeros = torch.zeros_like(y_pred[..., :1])
    return (torch.logsumexp(torch.cat([y_neg, zeros], -1), -1) +
            torch.logsumexp(torch.cat([y_pos, zeros], -1), -1))


def gp_mask(s, mask, tril):
    B, H, L, _ = s.shape
    keep = torch.ones(B, 1, L, L, dtype=torch.bool)
    if mask is not None:
        mk = mask != 0
        keep = keep & mk[:, None, :, None] & mk[:, None, None, :]
    if tril:
        keep = keep & torch.triu(torch.ones(L, L, dtype=torch.bool))
    return torch.where(keep, s, torch.full_like(s, -math.inf))


def gp_expect(s, labels, threshold=0.0):
    keep = s > -math.inf
    pred = (s > threshold) & keep
    y = labels * keep
    tp = (y * pred).sum()
    npred, ngold = pred.sum(), y.sum()
    prec = tp / npred if npred > 0 else torch.tensor(0.0)
    rec = tp / ngold if ngold > 0 else torch.tensor(0.0)
    f1 = 2 * tp / (npred + ngold) if npred + ngold > 0 else torch.tensor(0.0)
    ents = [[int(b), int(h), int(m), int(n), float(s[b, h, m, n])]
            for b, h, m, n in pred.nonzero().tolist()]
    return {"entities": ents, "f1": f1, "precision": prec, "recall": rec}


def global_pointer(fam):
    g = torch.Generator().manual_seed(7)
    B, H, L, D = 2, 2, 5, 4
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]).to(F64)
    spans = torch.tensor([[0, 0, 1, 2], [0, 1, 0, 0], [1, 0, 2, 2], [1, 1, 0, 1]])
    labels = torch.zeros(B, H, L, L)
    for b, h, m, n in spans.tolist():
        labels[b, h, m, n] = 1

    def loss_scores(scores):
        s = gp_mask(scores, mask, True)
        return mcce_head(labels.reshape(B * H, -1), s.reshape(B * H, -1)).mean()
    sc = torch.randn(B, H, L, L, generator=g) * 2
    sc[0, 0, 1, 2] = 3.0
    l, gr = run(loss_scores, {"scores": sc})
    fam.add("scores + mask, mcce, labels", "global_pointer",
            {"scores": sc, "labels": labels, "mask": mask}, l, gr,
            extra=gp_expect(gp_mask(sc, mask, True), labels))
    fam.add("scores + mask, mcce, spans", "global_pointer",
            {"scores": sc, "spans": spans, "mask": mask}, l, gr,
            extra=gp_expect(gp_mask(sc, mask, True), labels))
    soft = labels * 0.7 + 0.1 * (torch.rand(B, H, L, L, generator=g) > 0.8)
    l, gr = run(lambda scores: mcce_head(soft.reshape(B * H, -1),
                                         gp_mask(scores, mask, True).reshape(B * H, -1)).mean(),
                {"scores": sc})
    fam.add("soft labels", "global_pointer", {"scores": sc, "labels": soft, "mask": mask}, l, gr)

    def bce_loss(scores):
        s = gp_mask(scores, mask, True)
        keep = s > -math.inf
        return F.binary_cross_entropy_with_logits(s[keep], labels[keep])
    l, gr = run(bce_loss, {"scores": sc})
    fam.add("variant bce", "global_pointer", {"scores": sc, "labels": labels, "mask": mask}, l, gr,
            {"variant": "bce"})
    # -inf cells in the scores form (b64) are masked, even when labelled.
    sci = sc.clone()
    sci[1, 0, 2, 2] = -math.inf
    sci[0, 1, 0, 3] = -math.inf
    l, gr = run(lambda scores: mcce_head(labels.reshape(B * H, -1),
                                         gp_mask(scores, None, False).reshape(B * H, -1)).mean(),
                {"scores": sci})
    fam.add("-inf scores, no tril", "global_pointer", {"scores": sci, "labels": labels}, l, gr,
            {"tril_mask": False}, b64=("scores",),
            extra=gp_expect(gp_mask(sci, None, False), labels, 0.5), )
    fam.cases[-1]["request"]["params"]["threshold"] = 0.5
    # q/k per head with RoPE.
    q = torch.randn(B, L, H, D, generator=g)
    k = torch.randn(B, L, H, D, generator=g)
    for rope in (True, False):
        def loss_qk(q, k):
            qq, kk = (rope_b4k(q), rope_b4k(k)) if rope else (q, k)
            s = torch.einsum("bmhd,bnhd->bhmn", qq, kk) / D ** 0.5
            s = gp_mask(s, mask, True)
            return mcce_head(labels.reshape(B * H, -1), s.reshape(B * H, -1)).mean()
        l, gr = run(loss_qk, {"q": q, "k": k})
        fam.add(f"q/k rope={rope}", "global_pointer",
                {"q": q, "k": k, "spans": spans, "mask": mask}, l, gr, {"rope": rope})
    # Efficient GlobalPointer.
    qe = torch.randn(B, L, D, generator=g)
    ke = torch.randn(B, L, D, generator=g)
    hb = torch.randn(B, L, 2 * H, generator=g)

    def loss_eff(q, k, head_bias):
        base = torch.einsum("bmd,bnd->bmn", rope_b4k(q), rope_b4k(k)) / D ** 0.5
        bias = head_bias.transpose(1, 2)  # [B, 2H, L]
        s = base[:, None] + bias[:, ::2, None] + bias[:, 1::2, :, None]
        s = gp_mask(s, mask, True)
        return mcce_head(labels.reshape(B * H, -1), s.reshape(B * H, -1)).mean()
    l, gr = run(loss_eff, {"q": qe, "k": ke, "head_bias": hb})
    fam.add("efficient", "global_pointer",
            {"q": qe, "k": ke, "head_bias": hb, "labels": labels, "mask": mask}, l, gr)

    # sparse MCCE = dense MCCE over the same positives (mask_zero drops class 0).
    sp = torch.randn(2, 3, 10, generator=g) * 2
    # Without mask_zero positives are unique per row; with it, index 0 pads.
    pos_plain = torch.tensor([[[1, 4, 0], [2, 6, 5], [9, 3, 4]], [[0, 1, 2], [7, 8, 6], [1, 2, 3]]])
    pos_padded = torch.tensor([[[1, 4, 0], [2, 0, 0], [9, 3, 5]], [[0, 0, 0], [7, 8, 6], [1, 2, 3]]])
    for mz, posx in ((False, pos_plain), (True, pos_padded)):
        def dense(scores, posx=posx, mz=mz):
            y = torch.zeros_like(scores)
            y.scatter_(-1, posx, 1.0)
            sc_, y_ = (scores[..., 1:], y[..., 1:]) if mz else (scores, y)
            return mcce_head(y_, sc_)
        for red in ("mean", "sum", "none"):
            l, gr = run(lambda scores: {"mean": dense(scores).mean(), "sum": dense(scores).sum(),
                                        "none": dense(scores)}[red], {"scores": sp})
            fam.add(f"sparse_mcce mask_zero={mz} {red}", "sparse_mcce",
                    {"scores": sp, "positives": posx}, l, gr, {"mask_zero": mz}, red)
    # Positives dominate: the reference's 1e-7 clip changes the value; lossd is exact.
    sd = torch.tensor([[30.0, 31.0, -5.0, -6.0]])
    pd = torch.tensor([[0, 1]])

    def dense_d(scores):
        y = torch.zeros_like(scores)
        y.scatter_(-1, pd, 1.0)
        return mcce_head(y, scores).mean()
    l, gr = run(dense_d, {"scores": sd})
    fam.add("sparse_mcce positives dominate (exact, no clip)", "sparse_mcce",
            {"scores": sd, "positives": pd}, l, gr,
            note="bert4keras clips 1 - exp(aux) at 1e-7; lossd computes the exact value")


def sinkhorn(fam):
    import ot
    cases = []
    cases.append(("doc 2x2", np.array([.5, .5]), np.array([.5, .5]),
                  np.array([[0.0, 1.0], [1.0, 0.0]]), 1.0))
    rng = np.random.default_rng(8)
    M = rng.random((3, 4))
    a = np.array([.5, .3, .2])
    b = np.array([.1, .4, .25, .25])
    cases.append(("3x4 reg=0.5", a, b, M, 0.5))
    cases.append(("small reg=0.01", a, b, M, 0.01))
    for name, a, b, M, reg in cases:
        for rt in ("kl", "entropy"):
            T, log = ot.sinkhorn(a, b, M, reg, method="sinkhorn_log", numItermax=1000,
                                 stopThr=1e-9, log=True, warn=False)
            lu, lv = log["log_u"], log["log_v"]
            lin = float((T * M).sum())
            if rt == "kl":
                val = lin + reg * float((T * (np.log(T) - np.log(a)[:, None] - np.log(b)[None, :])).sum())
                f, gg = reg * (lu - np.log(a)), reg * (lv - np.log(b))
            else:
                val = lin + reg * float((T * np.log(T)).sum())
                f, gg = reg * lu, reg * lv
            f, gg = f - f.mean(), gg - gg.mean()
            t = lambda v: torch.tensor(v)
            fam.add(f"{name} {rt}", "sinkhorn", {"a": t(a), "b": t(b), "cost": t(M)}, t(val),
                    {"a": t(f), "b": t(gg), "cost": t(T)},
                    {"reg": reg, "reg_type": rt, "return_plan": True},
                    extra={"value_linear": t(lin), "plan": t(T), "f": t(f), "g": t(gg),
                           "iterations": int(log["niter"]) + 1,
                           "converged": bool(log["err"][-1] < 1e-9)},
                    rtol=1e-7, atol=1e-10)
    # Point clouds, each metric: dC/dx by autograd of <T*, C(x, y)> (envelope).
    x = rng.standard_normal((4, 3))
    y = rng.standard_normal((5, 3))
    a = np.full(4, 0.25)
    b = np.full(5, 0.2)
    for metric in ("sqeuclidean", "euclidean", "cosine"):
        M = ot.dist(x, y, metric=metric)
        T, log = ot.sinkhorn(a, b, M, 0.1, method="sinkhorn_log", stopThr=1e-9, log=True)
        Tt = torch.tensor(T)

        def value(x, y):
            if metric == "sqeuclidean":
                C = ((x[:, None] - y[None]) ** 2).sum(-1)
            elif metric == "euclidean":
                C = ((x[:, None] - y[None]) ** 2).sum(-1).sqrt()
            else:
                C = 1 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()
            return (Tt * C).sum()
        lin, gr = run(value, {"x": torch.tensor(x), "y": torch.tensor(y)})
        val = float(lin) + 0.1 * float((T * (np.log(T) - np.log(a)[:, None] - np.log(b)[None, :])).sum())
        fam.add(f"point clouds {metric}", "sinkhorn",
                {"a": torch.tensor(a), "b": torch.tensor(b), "x": torch.tensor(x), "y": torch.tensor(y)},
                torch.tensor(val), gr, {"reg": 0.1, "metric": metric}, grad=["x", "y"],
                extra={"value_linear": lin}, rtol=1e-7, atol=1e-10)


def emo(fam):
    g = torch.Generator().manual_seed(9)

    def emo_ref(logits, labels, E, mode):  # DRSY/EMO emo_patch.py
        mask = (labels != -100).to(F64)
        lab = labels.clamp(min=0)
        q = torch.softmax(logits, -1)
        onehot = F.one_hot(lab, logits.shape[-1]).to(F64)
        En = E / E.norm(dim=-1, keepdim=True)
        p_repr = (onehot + 1e-15) / (onehot + 1e-15).sum(-1, keepdim=True) @ En
        q_final = q - (q * onehot).detach()
        emo_v = 1 - (p_repr * (q_final @ En)).sum(-1)
        mle = F.cross_entropy(logits, labels, reduction="none", ignore_index=-100)
        emd = (q * (1 - En @ En[lab].t()).t()).sum(-1)
        if mode == "1":
            l = 0.5 * (mle + (mle / (emo_v + 1e-10)).detach() * emo_v)
        elif mode == "2":
            l = (emo_v / (mle + 1e-10)).detach() * mle + emo_v
        else:
            l = emd
        den = 1e-15 + mask.sum()
        return (l * mask).sum() / den, (emd * mask).sum() / den, (mle * mask).sum() / den
    V, d = 5, 3
    E = torch.randn(V, d, generator=g)
    z = torch.randn(6, V, generator=g) * 2
    y = torch.tensor([0, 4, -100, 2, 2, 1])
    for mode in ("emd", "1", "2"):
        (l, emd_, mle_), gr = run(lambda logits: emo_ref(logits, y, E, mode), {"logits": z})
        fam.add(f"embeddings mode={mode}", "emo", {"logits": z, "target": y, "embeddings": E},
                l, gr, {"mode": mode}, extra={"emd": emd_, "mle": mle_})
        En = E / E.norm(dim=-1, keepdim=True)
        C = 1 - En @ En.t()
        fam.add(f"cost matrix mode={mode}", "emo", {"logits": z, "target": y, "cost": C},
                l, gr, {"mode": mode}, extra={"emd": emd_, "mle": mle_})
    E2 = E.clone()
    E2[3] = E2[1] * 2
    (l, emd_, mle_), gr = run(lambda logits: emo_ref(logits, y, E2, "1"), {"logits": z})
    fam.add("duplicate embedding rows (cost-free mass)", "emo",
            {"logits": z, "target": y, "embeddings": E2}, l, gr, extra={"emd": emd_, "mle": mle_})


def multitask(fam):
    L = torch.tensor([0.5, 2.0])
    s = torch.tensor([-0.5, 0.3])
    for form in ("libmtl", "kendall"):
        def total(losses, log_vars):
            if form == "libmtl":
                return (losses / (2 * log_vars.exp()) + log_vars / 2).sum()
            return ((-log_vars).exp() * losses + log_vars).sum()
        l, gr = run(total, {"losses": L, "log_vars": s})
        w = 1 / (2 * s.exp()) if form == "libmtl" else (-s).exp()
        fam.add(f"uncertainty {form}", "multitask", {"losses": L, "log_vars": s}, l, gr,
                {"method": "uncertainty", "form": form}, extra={"weights": w})
    w = torch.tensor([0.3, 1.7])
    l, gr = run(lambda losses: (w * losses).sum(), {"losses": L})
    fam.add("static weights", "multitask", {"losses": L}, l, gr, {"weights": w},
            extra={"weights": w})


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    fams = [("cross_entropy", cross_entropy), ("bce", bce), ("kl_div", kl_div),
            ("entropy", entropy), ("focal", focal), ("ranking", ranking),
            ("global_pointer", global_pointer), ("sinkhorn", sinkhorn), ("emo", emo),
            ("multitask", multitask)]
    for name, fn in fams:
        fam = Family(name)
        fn(fam)
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(fam.cases, f, indent=None, separators=(",", ":"))
            f.write("\n")
        print(f"{name}: {len(fam.cases)} cases")


if __name__ == "__main__":
    main()
