#!/usr/bin/python3
"""Kernel benchmarks: libloss beside the reference implementation, same data, same run.

make bench  ->  /usr/bin/python3 bench/bench.py --bin build/bench/bench_kernels
Single thread on both sides (torch.set_num_threads(1), OPENBLAS_NUM_THREADS=1). Each side is
timed as value + gradient, median of the same number of runs (--reps) after a warm-up, in
--rounds rounds that alternate lossd and the reference; a case's speedup is the median of its
rounds' ratios. Prints a table and, last, "bench: geomean speedup vs reference X.XX over N cases".
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

# One thread for the references, and the machine's OpenBLAS core-type pin removed for this
# process only (it slows a current NumPy; see the env notes).
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import numpy as np  # noqa: E402

try:
    import torch  # noqa: E402
    import torch.nn.functional as F  # noqa: E402
    torch.set_num_threads(1)
except ImportError:
    torch = None
try:
    import ot  # noqa: E402
except ImportError:
    ot = None


def median_ms(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def bandwidth(binary):
    """(copy GB/s, read GB/s, read GB/s of 8 MiB passed over again and again), measured now by
    the benchmark binary."""
    out = subprocess.run([binary, "bandwidth"], capture_output=True, text=True, check=True).stdout.split()
    return float(out[1]), float(out[3]), float(out[5])


def write(d, name, arr):
    arr = np.ascontiguousarray(arr)
    arr.astype(arr.dtype.newbyteorder("<")).tofile(os.path.join(d, name + ".bin"))
    with open(os.path.join(d, name + ".shape"), "w") as f:
        f.write(" ".join(str(s) for s in arr.shape) + "\n")


def run_c(binary, case, d, reps):
    out = subprocess.run([binary, case, d, str(reps)], capture_output=True, text=True, check=True).stdout
    lines = out.split("\n")
    value = float(lines[0].split()[2])
    return float(lines[1].split()[1]), value


def mcce(y, s):
    y_neg = torch.where(s > -math.inf, s, torch.full_like(s, -math.inf)) + torch.log(1 - y)
    y_pos = torch.where(s > -math.inf, -s, torch.full_like(s, -math.inf)) + torch.log(y)
    z = torch.zeros_like(s[..., :1])
    return torch.logsumexp(torch.cat([y_neg, z], -1), -1) + torch.logsumexp(torch.cat([y_pos, z], -1), -1)


def cases(rng):
    """(name, shape text, target ratio, inputs dict, reference fn) per case."""
    out = []
    for (n, c, ls) in ((512, 32000, 0.0), (4096, 1000, 0.0), (512, 32000, 0.1)):
        z = rng.standard_normal((n, c), dtype=np.float32) * 2
        y = rng.integers(0, c, n)
        zt, yt = torch.from_numpy(z), torch.from_numpy(y)

        def ref(zt=zt, yt=yt, ls=ls):
            x = zt.clone().requires_grad_(True)
            loss = F.cross_entropy(x, yt, label_smoothing=ls)
            loss.backward()
            return float(loss)
        name = "cross_entropy_smoothing" if ls else "cross_entropy"
        target = 6.0 if (n, c, ls) == (512, 32000, 0.0) else 5.0
        out.append((name, f"f32 [{n},{c}]", target, {"logits": z, "target": y}, ref))
    x = np.log(rng.dirichlet(np.ones(32000), 512)).astype(np.float32)
    p = rng.dirichlet(np.ones(32000), 512).astype(np.float32)
    xt, pt = torch.from_numpy(x), torch.from_numpy(p)

    def ref_kl():
        a, b = xt.clone().requires_grad_(True), pt.clone().requires_grad_(True)
        loss = F.kl_div(a, b, reduction="batchmean")
        loss.backward()
        return float(loss)
    out.append(("kl_div", "f32 [512,32000]", 5.0, {"input": x, "target": p}, ref_kl))
    s = rng.uniform(-1, 1, 4096).astype(np.float32)
    lab = rng.integers(0, 6, 4096).astype(np.float32)
    st, lt = torch.from_numpy(s).double(), torch.from_numpy(lab).double()

    def ref_cosent():
        x = st.clone().requires_grad_(True)
        d = x[:, None] * 20 - x[None, :] * 20
        m = (lt[:, None] < lt[None, :]).to(d.dtype)
        d = d - (1 - m) * 1e12
        loss = torch.logsumexp(torch.cat((torch.zeros(1, dtype=d.dtype), d.view(-1))), 0)
        loss.backward()
        return float(loss)
    out.append(("cosent", "N=4096", 100.0, {"scores": s, "labels": lab}, ref_cosent))
    B, H, L = 16, 9, 512
    # Span scores as a trained model gives them: mostly negative, a few cells above 0 (with
    # N(0, 9) half of all cells would be predicted entities and the extra output dominates).
    sc = rng.standard_normal((B, H, L, L), dtype=np.float32) * 3 - 8
    tri = np.triu(np.ones((L, L), dtype=bool))
    lab = np.zeros((B, H, L, L), dtype=np.float32)
    idx = rng.integers(0, L, (B * H * 8, 2))
    for k, (i, j) in enumerate(idx):
        lab[k // (H * 8), (k // 8) % H, min(i, j), max(i, j)] = 1
    sct, labt, trit = torch.from_numpy(sc), torch.from_numpy(lab), torch.from_numpy(tri)

    def ref_gp():
        x = sct.clone().requires_grad_(True)
        s2 = torch.where(trit, x, torch.full_like(x, -math.inf))
        loss = mcce(labt.reshape(B * H, -1), s2.reshape(B * H, -1)).mean()
        loss.backward()
        return float(loss)
    out.append(("global_pointer", "mcce B16 H9 L512 f32", 15.0, {"scores": sc, "labels": lab}, ref_gp))
    n = 1024
    xa, xb = rng.standard_normal((n, 2)), rng.standard_normal((n, 2)) + 1
    M = ((xa[:, None, :] - xb[None, :, :]) ** 2).sum(-1)
    a = np.full(n, 1 / n)
    reg = 0.05 * M.max()
    os.environ["BENCH_REG"] = repr(reg)

    def ref_sinkhorn():
        T = ot.sinkhorn(a, a, M, reg, method="sinkhorn", numItermax=100, stopThr=0, warn=False)
        return float((T * M).sum() + reg * (T * np.log(T / (a[:, None] * a[None, :]))).sum())
    if ot is not None:
        out.append(("sinkhorn", "n=1024 100 its f64", 5.0, {"a": a, "b": a, "cost": M}, ref_sinkhorn))
    xf = rng.standard_normal((4096, 80), dtype=np.float32) * 3
    yf = (rng.random((4096, 80)) < 0.1).astype(np.float32)
    xft, yft = torch.from_numpy(xf), torch.from_numpy(yf)

    def ref_focal():
        x = xft.clone().requires_grad_(True)
        p = torch.sigmoid(x)  # torchvision.ops.sigmoid_focal_loss, reduction mean
        ce = F.binary_cross_entropy_with_logits(x, yft, reduction="none")
        p_t = p * yft + (1 - p) * (1 - yft)
        loss = ce * ((1 - p_t) ** 2)
        loss = (0.25 * yft + 0.75 * (1 - yft)) * loss
        loss = loss.mean()
        loss.backward()
        return float(loss)
    out.append(("sigmoid_focal", "f32 [4096,80]", 5.0, {"logits": xf, "target": yf}, ref_focal))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    if torch is None:
        print("bench: /usr/bin/python3 has no torch; install python3-torch (make deps-bench)")
        return 1
    bw, rbw, rbw8 = bandwidth(args.bin)
    print(f"machine: {os.cpu_count()} cores; measured memory bandwidth {bw:.1f} GB/s copying, "
          f"{rbw:.1f} GB/s reading (1 thread); 8 MiB read over and over {rbw8:.1f} GB/s")
    print(f"{'case':<24} {'shape':<22} {'lossd ms':>10} {'ref ms':>10} {'speedup':>8} {'target':>7}  note")
    rng = np.random.default_rng(0)
    ratios = []
    with tempfile.TemporaryDirectory() as d:
        for name, shape, target, inputs, ref in cases(rng):
            if args.only and args.only not in name:
                continue
            for k, v in inputs.items():
                write(d, k, v)
            # Rounds interleave the two sides, so a drift of the machine's speed (this VM moves
            # by 30% within a minute) reaches both; the ratio is the median of the rounds'.
            rounds = []
            for _ in range(args.rounds):
                ms, value = run_c(args.bin, name, d, args.reps)
                rms = median_ms(ref, args.reps)  # as many timed runs as lossd gets
                rounds.append((rms / ms, ms, rms, bandwidth(args.bin)))
            ratio = median([r[0] for r in rounds])
            ms, rms = median([r[1] for r in rounds]), median([r[2] for r in rounds])
            bw, rbw8 = median([r[3][0] for r in rounds]), median([r[3][2] for r in rounds])
            rv = ref()
            note = "" if math.isclose(value, rv, rel_tol=1e-4, abs_tol=1e-6) else f"value {value:.6g} vs ref {rv:.6g} "
            if name == "cross_entropy" and shape.endswith("[512,32000]"):
                bound = 3 * 512 * 32000 * 4 / (bw * 1e9) * 1e3
                note += f"bandwidth bound {bound:.2f} ms ({ms / bound:.2f}x) "
            if name == "sinkhorn":  # one read of the n x n kernel per iteration, ~5 more around them
                # Its 8 MiB matrix is read 105 times (100 iterations, ~5 for setup and the plan)
                # at the rate of 8 MiB read over and over: from cache where it fits in one.
                # A kernel at that bound would be rms / bound times the reference: the most any
                # float64 Sinkhorn reading its matrix once per iteration can show on this machine.
                bound = (100 + 5) * 1024 * 1024 * 8 / (rbw8 * 1e9) * 1e3
                note += f"read bound {bound:.2f} ms ({ms / bound:.2f}x; at the bound {rms / bound:.2f}x) "
            if len(rounds) > 1:
                note += "rounds " + " ".join(f"{r[0]:.2f}x" for r in rounds)
            ratios.append(ratio)
            ok = "ok" if ratio >= target else "MISS"
            print(f"{name:<24} {shape:<22} {ms:>10.3f} {rms:>10.3f} {ratio:>7.2f}x {target:>6.0f}x  {ok} {note}")
            sys.stdout.flush()
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"bench: geomean speedup vs reference {geo:.2f} over {len(ratios)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
