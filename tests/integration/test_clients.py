"""The clients against a real lossd: curl scripts, the Python client (with and without NumPy),
RemoteLoss training, and the two-rank DDP demo."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

from harness import ROOT, Server, close_to

PY = os.path.join(ROOT, "clients", "python")
sys.path.insert(0, PY)

try:
    import numpy as np
    import torch
except ImportError:  # pragma: no cover
    np = torch = None


class Curl(unittest.TestCase):
    def test_every_script(self):
        scripts = sorted(glob.glob(os.path.join(ROOT, "clients", "curl", "[!_]*.sh")))
        self.assertGreaterEqual(len(scripts), 8)
        with Server() as s:
            env = dict(os.environ, LOSSD_URL=f"http://127.0.0.1:{s.port}")
            for sc in scripts:
                p = subprocess.run(["sh", sc], capture_output=True, text=True, env=env, timeout=60)
                self.assertEqual(p.returncode, 0, (sc, p.stdout[-500:], p.stderr[-500:]))
                self.assertIn("\"", p.stdout)
            p = subprocess.run(["sh", os.path.join(ROOT, "clients", "curl", "multitask_two_ranks.sh")],
                               capture_output=True, text=True, env=env, timeout=60)
            self.assertGreaterEqual(p.stdout.count("\"step\": 2"), 2)  # both ranks answered step 2
            # an HTTP error makes a script fail
            bad = dict(env, LOSSD_TOKEN="x")
        with Server(env={"LOSSD_TOKEN": "right"}) as s:
            bad["LOSSD_URL"] = f"http://127.0.0.1:{s.port}"
            p = subprocess.run(["sh", os.path.join(ROOT, "clients", "curl", "focal.sh")],
                               capture_output=True, text=True, env=bad, timeout=60)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("unauthorized", p.stderr)


def golden_inputs(case):
    """Golden request inputs as NumPy arrays (b64 forms decoded)."""
    import base64
    out = {}
    for k, t in case["request"]["inputs"].items():
        dt = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32}[t["dtype"]]
        if "b64" in t:
            a = np.frombuffer(base64.b64decode(t["b64"]), dtype=np.dtype(dt).newbyteorder("<"))
        else:
            a = np.array(t["data"], dtype=dt)
        out[k] = a.reshape(t["shape"])
    return out


@unittest.skipIf(np is None, "needs numpy and torch")
class PythonClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Server()
        from lossd import Client
        cls.c = Client(f"http://127.0.0.1:{cls.s.port}")

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.s.stop()

    def test_every_loss_against_torch_goldens(self):
        """The golden cases (torch / torchvision / POT) through the client, NumPy arrays in and
        out, b64 on the wire."""
        seen = set()
        for f in sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "*.json"))):
            if "trajectories" in f:
                continue
            with open(f) as fh:
                cases = json.load(fh)
            for case in cases:
                req = case["request"]
                params = {}
                for k, v in req.get("params", {}).items():
                    params[k] = np.array(v["data"]).reshape(v["shape"]) if isinstance(v, dict) else v
                r = self.c.loss(req["loss"], params=params, reduction=req.get("reduction"),
                                grad=req.get("grad", True), **golden_inputs(case))
                seen.add(req["loss"])
                exp, rt, at = case["expect"], case["rtol"], case["atol"]
                if isinstance(exp["loss"], dict):
                    self.assertTrue(np.allclose(r.loss.ravel(), np.array(exp["loss"]["data"], dtype=float),
                                                rtol=rt, atol=at, equal_nan=True), case["name"])
                elif exp["loss"] is None:
                    self.assertIsNone(r.loss)
                else:
                    self.assertTrue(close_to(r.loss, exp["loss"], rt, at), (case["name"], r.loss))
                self.assertEqual(set(r.grads), set(exp["grads"]), case["name"])
                for k, g in exp["grads"].items():
                    self.assertEqual(list(r.grads[k].shape), g["shape"])
                    self.assertTrue(np.allclose(r.grads[k].ravel().astype(float), np.array(g["data"], dtype=float),
                                                rtol=rt, atol=at), (case["name"], k))
        self.assertEqual(len(seen), 14)

    def test_dtypes_preserved_and_errors(self):
        from lossd import LossdError
        z32 = np.array([[2.0, 0.5, -1.0]], dtype=np.float32)
        r = self.c.loss("cross_entropy", logits=z32, target=np.array([0], dtype=np.int32))
        self.assertEqual(r.grads["logits"].dtype, np.float32)
        r = self.c.loss("cross_entropy", logits=z32.astype(np.float64), target=[0])
        self.assertEqual(r.grads["logits"].dtype, np.float64)
        with self.assertRaises(LossdError) as e:
            self.c.loss("cross_entropy", logits=z32, target=[7])
        self.assertEqual((e.exception.status, e.exception.code, e.exception.field),
                         (422, "invalid_input", "inputs.target"))
        with self.assertRaises(LossdError) as e:
            self.c.loss("no_such_loss", x=[1.0])
        self.assertEqual(e.exception.status, 404)
        res = self.c.batch([{"loss": "cosent", "inputs": {"scores": np.array([0.1, 0.9]), "labels": [0, 1]}},
                            {"loss": "cross_entropy", "inputs": {"logits": [[1.0]], "target": [4]}}])
        self.assertIsInstance(res[1], LossdError)
        self.assertIn("scores", res[0].grads)
        names = [d["name"] for d in self.c.losses()]
        self.assertIn("sinkhorn", names)

    def test_without_numpy(self):
        """A subprocess where `import numpy` fails: nested lists in and out."""
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "numpy.py"), "w") as f:
                f.write("raise ImportError('numpy hidden for this test')\n")
            code = ("import lossd, json\n"
                    "assert not lossd.HAVE_NUMPY\n"
                    f"c = lossd.Client('http://127.0.0.1:{self.s.port}')\n"
                    "r = c.loss('cross_entropy', logits=[[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], target=[0, 2],"
                    " params={'label_smoothing': 0.1})\n"
                    "print(json.dumps({'loss': r.loss, 'g': r.grads['logits']}))\n"
                    "try:\n  c.loss('cross_entropy', logits=[[1.0]], target=[3])\n"
                    "except lossd.LossdError as e:\n  print(e.status, e.code)\n")
            env = dict(os.environ, PYTHONPATH=d + os.pathsep + PY)
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            first, second = p.stdout.strip().split("\n")
            out = json.loads(first)
            self.assertTrue(close_to(out["loss"], 0.34545638058931, 1e-12))
            self.assertEqual(len(out["g"]), 2)
            self.assertIsInstance(out["g"][0], list)
            self.assertEqual(second, "422 invalid_input")

    def test_multitask_session(self):
        import threading
        from lossd import Client
        s0 = self.c.multitask("client-mt", method="dwa", tasks=["a", "b"], world_size=2)
        c1 = Client(f"http://127.0.0.1:{self.s.port}")
        s1 = c1.multitask("client-mt", method="dwa", tasks=["a", "b"], world_size=2)
        out = {}
        th = threading.Thread(target=lambda: out.setdefault(0, s0.step(0, 0, [1.0, 2.0])))
        th.start()
        out[1] = s1.step(0, 1, [3.0, 4.0])
        th.join()
        self.assertEqual(out[0].weights, out[1].weights)
        self.assertEqual(out[0].total, 5.0)
        self.assertEqual(s0.state()["step"], 1)
        s0.delete()
        c1.close()

    def test_remote_loss_trains_like_local(self):
        """20 SGD steps with RemoteLoss give the parameters of 20 steps with the torch loss."""
        from lossd.torch import RemoteLoss
        torch.manual_seed(0)
        x = torch.randn(64, 10)
        y = torch.randint(0, 4, (64,))

        def train(loss_fn):
            torch.manual_seed(1)
            model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
            opt = torch.optim.SGD(model.parameters(), lr=0.5)
            for _ in range(20):
                opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
            return [p.detach().clone() for p in model.parameters()]
        local = train(lambda z, t: torch.nn.functional.cross_entropy(z, t, label_smoothing=0.1))
        remote = train(RemoteLoss(self.c, "cross_entropy", label_smoothing=0.1))
        for a, b in zip(local, remote):
            self.assertTrue(torch.allclose(a, b, rtol=1e-4, atol=1e-5), (a - b).abs().max())

    def test_remote_loss_other_families(self):
        from lossd.torch import RemoteLoss
        torch.manual_seed(2)
        a = torch.randn(6, 8, requires_grad=True)
        b = torch.randn(6, 8, requires_grad=True)
        labels = torch.tensor([0.0, 1.0, 0.5, 0.2, 0.9, 0.1])
        loss = RemoteLoss(self.c, "cosent")(a=a, b=b, labels=labels)
        loss.backward()
        a2, b2 = a.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
        s = (torch.nn.functional.normalize(a2, dim=1) * torch.nn.functional.normalize(b2, dim=1)).sum(1) * 20
        d = s[:, None] - s[None, :] - (1 - (labels[:, None] < labels[None, :]).float()) * 1e12
        ref = torch.logsumexp(torch.cat([torch.zeros(1), d.view(-1)]), 0)
        ref.backward()
        self.assertTrue(torch.allclose(loss, ref, rtol=1e-5))
        self.assertTrue(torch.allclose(a.grad, a2.grad, rtol=1e-4, atol=1e-6))
        # sinkhorn with point clouds: gradients reach x and y
        x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
        y = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
        sk = RemoteLoss(self.c, "sinkhorn", reg=0.5)
        val = sk(torch.full((5,), 0.2, dtype=torch.float64), torch.full((4,), 0.25, dtype=torch.float64), x=x, y=y)
        val.backward()
        self.assertEqual(x.grad.shape, (5, 2))
        self.assertTrue(torch.isfinite(y.grad).all())


@unittest.skipIf(np is None, "needs torch")
class DDPDemo(unittest.TestCase):
    def test_two_ranks_identical_weights_and_png(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("needs matplotlib (python3-matplotlib)")
        with Server() as s, tempfile.TemporaryDirectory() as d:
            png, prefix = os.path.join(d, "w.png"), os.path.join(d, "run")
            for method in ("gradnorm", "uncertainty", "dwa"):
                p = subprocess.run([sys.executable, os.path.join(PY, "examples", "multitask_ddp.py"),
                                    "--url", f"http://127.0.0.1:{s.port}", "--method", method, "--steps", "8",
                                    "--png", png, "--out-json", prefix], capture_output=True, text=True,
                                   timeout=300)
                self.assertEqual(p.returncode, 0, p.stderr[-2000:])
                with open(prefix + ".rank0.json") as f0, open(prefix + ".rank1.json") as f1:
                    h0, h1 = json.load(f0), json.load(f1)
                self.assertEqual(len(h0), 8)
                self.assertEqual([h["weights"] for h in h0], [h["weights"] for h in h1])
                self.assertNotEqual(h0[0]["losses"], h1[0]["losses"])  # different data per rank
                self.assertTrue(os.path.getsize(png) > 1000)


if __name__ == "__main__":
    unittest.main()
