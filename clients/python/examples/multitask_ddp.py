#!/usr/bin/python3
"""Two torch.distributed ranks train one three-task model, weighted by a shared lossd session.

Each rank joins the session by a job-derived id (PUT), reports its three task losses every step
(and, for gradnorm, the norm of each task's gradient at the shared layer), scales its losses by
the weights lossd answers, and steps the optimiser; DDP averages the gradients. Rank 0 prints a
per-step table and writes a PNG of the weights over steps.

    build/lossd &                       # or make run
    /usr/bin/python3 clients/python/examples/multitask_ddp.py --method uncertainty --steps 60

Requires torch (gloo backend, 127.0.0.1) and, for the plot, matplotlib.
"""
import argparse
import json
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lossd import Client  # noqa: E402

TASKS = ["regress", "classify", "scale"]


class Net(torch.nn.Module):
    """A shared trunk and one head per task."""

    def __init__(self):
        super().__init__()
        self.trunk = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh())
        self.heads = torch.nn.ModuleList([torch.nn.Linear(32, 1), torch.nn.Linear(32, 3),
                                          torch.nn.Linear(32, 1)])

    def forward(self, x):
        h = self.trunk(x)
        return h, [head(h) for head in self.heads]


def synthetic(rank, step, n=64):
    """Each rank draws its own batch, deterministically."""
    g = torch.Generator().manual_seed(1000 * rank + step)
    x = torch.randn(n, 8, generator=g)
    y0 = x[:, :2].sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    y1 = (x[:, 2] > 0).long() + (x[:, 3] > 1).long()
    y2 = 10 * x[:, 4:5] ** 2
    return x, (y0, y1, y2)


def task_losses(out, ys):
    return [torch.nn.functional.mse_loss(out[0], ys[0]),
            torch.nn.functional.cross_entropy(out[1], ys[1]),
            torch.nn.functional.mse_loss(out[2], ys[2])]


def worker(rank, args, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)  # the same initial model on both ranks
    model = torch.nn.parallel.DistributedDataParallel(Net())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    client = Client(args.url, timeout=60)
    params = {"lr": 0.05} if args.method != "dwa" else {"window": 2}
    session = client.multitask(args.job, method=args.method, tasks=TASKS, world_size=2,
                               params=params, step_timeout_ms=60000)
    shared = list(model.module.trunk.parameters())
    history = []
    if rank == 0:
        print(f"{'step':>4} " + " ".join(f"{t:>10}" for t in TASKS) + " | " +
              " ".join(f"w_{t:<8}" for t in TASKS) + f" {'total':>9}")
    for step in range(args.steps):
        x, ys = synthetic(rank, step)
        _, out = model(x)
        losses = task_losses(out, ys)
        norms = None
        if args.method == "gradnorm":  # each task's gradient norm at the shared layer
            norms = []
            for L in losses:
                g = torch.autograd.grad(L, shared, retain_graph=True)
                norms.append(float(torch.sqrt(sum((gi ** 2).sum() for gi in g))))
        res = session.step(step, rank, [float(L) for L in losses], norms)
        history.append({"step": step, "weights": res.weights, "losses": [float(L) for L in losses]})
        total = sum(w * L for w, L in zip(res.grad, losses))
        opt.zero_grad()
        total.backward()
        opt.step()
        if rank == 0:
            print(f"{step:>4} " + " ".join(f"{float(L):>10.4f}" for L in losses) + " | " +
                  " ".join(f"{w:>10.4f}" for w in res.weights) + f" {res.total:>9.4f}", flush=True)
    if args.out_json:
        with open(f"{args.out_json}.rank{rank}.json", "w") as f:
            json.dump(history, f)
    if rank == 0 and args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for i, t in enumerate(TASKS):
            ax.plot([h["step"] for h in history], [h["weights"][i] for h in history], label=t)
        ax.set_xlabel("step")
        ax.set_ylabel("task weight")
        ax.set_title(f"lossd {args.method} weights, 2 ranks")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)
        print(f"wrote {args.png}")
    dist.destroy_process_group()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("LOSSD_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--method", choices=["uncertainty", "gradnorm", "dwa"], default="uncertainty")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--job", default=None, help="session id (default: derived from the method)")
    ap.add_argument("--png", default="multitask_weights.png")
    ap.add_argument("--out-json", default=None, help="write each rank's weights to PREFIX.rankN.json")
    args = ap.parse_args()
    args.job = args.job or f"ddp-demo-{args.method}-{os.getpid()}"
    torch.set_num_threads(1)
    mp.spawn(worker, args=(args, free_port()), nprocs=2, join=True)


if __name__ == "__main__":
    main()
