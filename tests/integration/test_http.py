"""The real lossd over HTTP: routes, tensor forms, errors, limits, concurrency, auth, drain."""
import base64
import glob
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import unittest

from harness import ROOT, Server, close_to, raw_http, raw_request, status_of

CE_BODY = {"inputs": {"logits": [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], "target": [0, 2]},
           "params": {"label_smoothing": 0.1}}


def b64(fmt, vals):
    return base64.b64encode(struct.pack("<" + fmt * len(vals), *vals)).decode()


def unb64(t):
    fmt = {"float32": "f", "float64": "d", "int32": "i", "int64": "q"}[t["dtype"]]
    raw = base64.b64decode(t["b64"])
    return list(struct.unpack("<" + fmt * (len(raw) // struct.calcsize(fmt)), raw))


def post_all_at_once(port, bodies):
    """POST each body to cross_entropy on its own connection, all sent before any answer is
    read; returns the raw responses in order."""
    socks = []
    for body in bodies:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"POST /v1/losses/cross_entropy HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                  % len(body) + body)
        socks.append(s)
    return [recv_all(s) for s in socks]


def recv_all(s):
    """Everything the server sends until it closes the connection; closes the socket."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


class Http(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A queue deeper than the 500 requests the concurrency tests send at once: under ASan
        # they can all be waiting together, and shedding load (503) has its own test.
        cls.s = Server("--max-body", "1048576", "--max-elements", "100000", "--idle-timeout", "2",
                       "--queue-depth", "1024")

    @classmethod
    def tearDownClass(cls):
        cls.assertEqual(cls, cls.s.stop(), 0) if False else cls.s.stop()

    def test_health_ready_info(self):
        st, h, b = self.s.get("/healthz")
        self.assertEqual((st, b), (200, {"status": "ok"}))
        st, _, b = self.s.get("/readyz")
        self.assertEqual((st, b["status"]), (200, "ready"))
        st, _, b = self.s.get("/v1/info")
        self.assertEqual(st, 200)
        self.assertEqual(b["limits"]["max_body"], 1048576)
        self.assertEqual(b["losses"], 14)

    def test_catalogue(self):
        st, _, b = self.s.get("/v1/losses")
        self.assertEqual(st, 200)
        names = [d["name"] for d in b["losses"]]
        for n in ("cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "entropy",
                  "sigmoid_focal", "softmax_focal", "cosent", "angle", "circle", "global_pointer",
                  "sparse_mcce", "sinkhorn", "emo", "multitask"):
            self.assertIn(n, names)
        ce = b["losses"][names.index("cross_entropy")]
        self.assertEqual([p["default"] for p in ce["params"]], [None, -100, 0])
        self.assertEqual(ce["grads"], ["logits"])
        st, _, one = self.s.get("/v1/losses/sinkhorn")
        self.assertEqual(st, 200)
        self.assertTrue(any(p["name"] == "reg" and p.get("required") for p in one["params"]))

    def test_openapi(self):
        st, h, text = self.s.get("/openapi.yaml")
        self.assertEqual(st, 200)
        self.assertIn("yaml", h["content-type"])
        with open(os.path.join(ROOT, "proto", "openapi.yaml")) as f:
            self.assertEqual(text, f.read())

    def test_metrics(self):
        self.s.post("/v1/losses/cross_entropy", CE_BODY)
        st, h, text = self.s.get("/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/plain"))
        for m in ("lossd_http_requests_total{route=\"loss\",code=\"200\"}",
                  "lossd_http_request_duration_seconds_bucket", "lossd_inflight_requests",
                  "lossd_queue_depth", "lossd_loss_evaluations_total{loss=\"cross_entropy\"}",
                  "lossd_multitask_sessions", "process_resident_memory_bytes",
                  "lossd_pool_items_total", "lossd_pool_requests_total"):
            self.assertIn(m, text)

    def test_api_example(self):
        st, _, b = self.s.post("/v1/losses/cross_entropy", CE_BODY)
        self.assertEqual(st, 200)
        self.assertTrue(close_to(b["loss"], 0.34545638058931, 1e-13))
        self.assertEqual(b["grads"]["logits"]["shape"], [2, 3])
        self.assertEqual(b["extra"], {})

    def test_tensor_forms_agree(self):
        z = [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]
        flat = [v for row in z for v in row]
        forms = [
            {"logits": z, "target": [0, 2]},
            {"logits": {"shape": [2, 3], "data": flat}, "target": {"shape": [2], "data": [0, 2]}},
            {"logits": {"shape": [2, 3], "dtype": "float64", "b64": b64("d", flat)},
             "target": {"shape": [2], "dtype": "int64", "b64": b64("q", [0, 2])}},
            {"logits": {"shape": [2, 3], "dtype": "float64", "b64": b64("d", flat)},
             "target": {"shape": [2], "dtype": "int32", "b64": b64("i", [0, 2])}},
        ]
        ref = None
        for f in forms:
            st, _, b = self.s.post("/v1/losses/cross_entropy", {"inputs": f})
            self.assertEqual(st, 200, b)
            if ref is None:
                ref = b
            self.assertEqual(b["loss"], ref["loss"])
            self.assertEqual(b["grads"], ref["grads"])
        # float32 b64 in, b64 out in the input's dtype
        st, _, b = self.s.post("/v1/losses/cross_entropy", {
            "inputs": {"logits": {"shape": [2, 3], "dtype": "float32", "b64": b64("f", flat)},
                       "target": [0, 2]}, "encoding": "b64"})
        self.assertEqual(st, 200)
        g = b["grads"]["logits"]
        self.assertEqual((g["dtype"], g["shape"]), ("float32", [2, 3]))
        self.assertTrue(close_to(unb64(g), ref["grads"]["logits"]["data"], 1e-5, 1e-7))
        # float32 b64 in, JSON out: the shortest text of each float32, which reads back to the
        # same bits as the b64 answer (issue 3: it was printf's %.9g, 3.5x slower)
        rnd = random.Random(5)
        zf = [rnd.gauss(0, 3) for _ in range(4 * 250)]
        inputs = {"logits": {"shape": [4, 250], "dtype": "float32", "b64": b64("f", zf)},
                  "target": [0, 7, 99, 249]}
        st, _, bj = self.s.post("/v1/losses/cross_entropy", {"inputs": inputs}, raw=True)
        st2, _, bb = self.s.post("/v1/losses/cross_entropy", {"inputs": inputs, "encoding": "b64"})
        self.assertEqual((st, st2), (200, 200))
        text = bj.decode()
        data = json.loads(text)["grads"]["logits"]["data"]
        self.assertEqual(struct.pack("<1000f", *data), base64.b64decode(bb["grads"]["logits"]["b64"]))
        arr = text[text.index('"data":[') + 8:text.index("]", text.index('"data":['))]
        digits = [len(t.split("e")[0].lstrip("-").replace(".", "").strip("0")) for t in arr.split(",")]
        self.assertLessEqual(max(digits), 9)  # float32 text: 9 significant digits at most
        # scalar form and reduction none with grad_output
        st, _, b = self.s.post("/v1/losses/multitask", {"inputs": {"losses": [1.5, 2]}})
        self.assertEqual((st, b["loss"]), (200, 3.5))
        st, _, b = self.s.post("/v1/losses/cross_entropy", {
            "inputs": {"logits": z, "target": [0, 2], "grad_output": [2.0, 0.0]},
            "reduction": "none", "encoding": "b64"})
        self.assertEqual(st, 200)
        self.assertEqual(b["loss"]["dtype"], "float64")
        self.assertEqual(unb64(b["grads"]["logits"])[3:], [0.0, 0.0, 0.0])

    def test_large_b64_split_matches_small_requests(self):
        """A float32 tensor of 5 MB in b64 (6.8 MB of text) is decoded, and its 5 MB gradient
        encoded, in two halves on two threads (server/b64.c, from 4 MiB); its answer must equal,
        bit for bit, the rows' answers from small requests coded on one thread."""
        rows, cols = 64, 20000
        rnd = random.Random(9)
        z = [rnd.gauss(0, 2) for _ in range(rows * cols)]
        tgt = [rnd.randrange(cols) for _ in range(rows)]
        with Server("--max-body", "16777216", "--max-elements", "2000000") as s:
            st, _, big = s.post("/v1/losses/cross_entropy", {
                "inputs": {"logits": {"shape": [rows, cols], "dtype": "float32", "b64": b64("f", z)},
                           "target": tgt}, "reduction": "sum", "encoding": "b64"}, timeout=120)
            self.assertEqual(st, 200, big)
            grad = base64.b64decode(big["grads"]["logits"]["b64"])
            self.assertEqual(len(grad), rows * cols * 4)
            total, k = 0.0, 4
            for r in range(0, rows, k):
                st, _, part = s.post("/v1/losses/cross_entropy", {
                    "inputs": {"logits": {"shape": [k, cols], "dtype": "float32",
                                          "b64": b64("f", z[r * cols:(r + k) * cols])},
                               "target": tgt[r:r + k]}, "reduction": "sum", "encoding": "b64"})
                self.assertEqual(st, 200, part)
                total += part["loss"]
                self.assertEqual(base64.b64decode(part["grads"]["logits"]["b64"]),
                                 grad[r * cols * 4:(r + k) * cols * 4], f"rows {r}..{r + k - 1}")
            self.assertAlmostEqual(big["loss"], total, delta=1e-9 * abs(total))

    def test_grad_selection_and_nan(self):
        st, _, b = self.s.post("/v1/losses/kl_div", {
            "inputs": {"input": [-1.0, -0.5], "target": [0.3, 0.7]}, "grad": ["target"]})
        self.assertEqual(list(b["grads"]), ["target"])
        st, _, b = self.s.post("/v1/losses/kl_div", {
            "inputs": {"input": [-1.0, -0.5], "target": [0.3, 0.7]}, "grad": False})
        self.assertEqual(b["grads"], {})
        st, _, b = self.s.post("/v1/losses/cross_entropy", {
            "inputs": {"logits": [[1.0, 2.0]], "target": [-100]}})
        self.assertEqual(st, 200)
        self.assertIsNone(b["loss"])  # NaN, as torch, is JSON null
        self.assertEqual(b["grads"]["logits"]["data"], [0.0, 0.0])

    def test_global_pointer_entities(self):
        st, _, b = self.s.post("/v1/losses/global_pointer", {
            "inputs": {"scores": [[[[1.0, -2.0], [0.5, 3.0]]]], "spans": [[0, 0, 0, 1], [0, 0, 1, 1]]}})
        self.assertEqual(st, 200, b)
        self.assertEqual(b["extra"]["entities"], [[0, 0, 0, 0, 1.0], [0, 0, 1, 1, 3.0]])
        self.assertTrue(close_to(b["extra"]["precision"], 0.5))
        self.assertTrue(close_to(b["extra"]["recall"], 0.5))

    def test_batch(self):
        st, _, b = self.s.post("/v1/batch", {"calls": [
            dict(CE_BODY, loss="cross_entropy"),
            {"loss": "cosent", "inputs": {"scores": [0.1, 0.9], "labels": [1, 0]}},
            {"loss": "nope", "inputs": {}},
            {"loss": "cross_entropy", "inputs": {"logits": [[1.0]], "target": [3]}}]})
        self.assertEqual(st, 200)
        r = b["results"]
        self.assertTrue(close_to(r[0]["loss"], 0.34545638058931, 1e-13))
        self.assertIn("scores", r[1]["grads"])
        self.assertEqual(r[2]["error"]["code"], "not_found")
        self.assertEqual(r[3]["error"]["code"], "invalid_input")

    def test_proto_examples(self):
        files = sorted(glob.glob(os.path.join(ROOT, "proto", "examples", "*.request.json")))
        self.assertGreaterEqual(len(files), 14)
        for f in files:
            name = os.path.basename(f).split(".")[0]
            with open(f) as fh:
                req = json.load(fh)
            with open(f.replace(".request.", ".response.")) as fh:
                want = json.load(fh)
            st, _, got = self.s.post("/v1/losses/" + name, req)
            self.assertEqual(st, 200, (name, got))
            self.assertTrue(close_to(got["loss"], want["loss"], 1e-7, 1e-10), name)
            self.assertTrue(close_to(got["grads"], want["grads"], 1e-7, 1e-10), name)
            for k, v in want["extra"].items():  # the listed extras; others may be present
                self.assertTrue(close_to(got["extra"][k], v, 1e-7, 1e-10), (name, k))

    def test_readme_example(self):
        """README.md's curl example answers what README.md shows, to the last few ulps (the
        shown text is one build's; another CPU's kernel path may differ in the last digit)."""
        with open(os.path.join(ROOT, "README.md")) as fh:
            readme = fh.read()
        cmd = readme.split("```sh\ncurl ", 1)[1].split("```", 1)[0]
        path = cmd.split()[1].replace("localhost:8080", "")
        body = json.loads(cmd.split("-d '", 1)[1].rsplit("'", 1)[0])
        shown = json.loads(readme.split("```json\n", 1)[1].split("```", 1)[0])
        st, _, got = self.s.post(path, body)
        self.assertEqual(st, 200, got)
        self.assertTrue(close_to(got, shown, 1e-14, 1e-17), (got, shown))

    def test_invalid_corpus(self):
        files = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "http", "invalid", "*.json")))
        self.assertGreaterEqual(len(files), 100)
        bad = []
        for f in files:
            with open(f) as fh:
                c = json.load(fh)
            body = c.get("body")
            if body is None and "body_json" in c:
                body = json.dumps(c["body_json"])
            st, h, b = raw_request(self.s.port, c["method"], c["path"], body or b"",
                                   headers=c.get("headers"))
            code = b.get("error", {}).get("code") if isinstance(b, dict) else None
            if st != c["status"] or code != c["code"]:
                bad.append((os.path.basename(f), st, code, b))
            if st == 405:
                self.assertIn("allow", h)
        self.maxDiff = None
        self.assertEqual(bad, [])
        # The server survived all of it.
        self.assertEqual(self.s.get("/healthz")[0], 200)

    def test_body_too_large_chunked(self):
        body = b"{\"inputs\":{\"logits\":[" + b"1," * 700000 + b"1]}}"
        chunks = b""
        for i in range(0, len(body), 65536):
            part = body[i:i + 65536]
            chunks += b"%x\r\n" % len(part) + part + b"\r\n"
        req = (b"POST /v1/losses/cross_entropy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
               b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        self.assertEqual(status_of(raw_http(self.s.port, req)), 413)
        req = (b"POST /v1/losses/cross_entropy HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        self.assertEqual(status_of(raw_http(self.s.port, req)), 413)

    def test_chunked_bodies_small_and_growing(self):
        """Bodies without a Content-Length start in the request's own 2 KiB buffer and move to
        the heap when they outgrow it; answers whose text outgrows the request's 4 KiB buffer
        move too. Each answer equals the one for the same body sent with a Content-Length."""
        rnd = random.Random(3)
        big = {"inputs": {"logits": [[rnd.gauss(0, 2) for _ in range(30)] for _ in range(40)],
                          "target": [rnd.randrange(30) for _ in range(40)]}}
        for body, piece in ((CE_BODY, 7), (big, 1000)):
            raw = json.dumps(body).encode()
            chunks = b"".join(b"%x\r\n" % len(raw[i:i + piece]) + raw[i:i + piece] + b"\r\n"
                              for i in range(0, len(raw), piece))
            req = (b"POST /v1/losses/cross_entropy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + chunks + b"0\r\n\r\n")
            out = raw_http(self.s.port, req)
            self.assertEqual(status_of(out), 200, out[:300])
            st, _, want = self.s.post("/v1/losses/cross_entropy", body)
            self.assertEqual(st, 200)
            self.assertEqual(json.loads(out.partition(b"\r\n\r\n")[2]), want)
        self.assertGreater(len(json.dumps(want)), 4096)

    def test_body_sizes_around_the_inline_buffer(self):
        """Bodies of 2046 to 2050 bytes (the request's own buffer holds 2047 and a terminator),
        with a Content-Length and chunked in 100-byte pieces, all give CE_BODY's answer."""
        st, _, want = self.s.post("/v1/losses/cross_entropy", CE_BODY)
        self.assertEqual(st, 200)
        raw = json.dumps(CE_BODY).encode()
        for size in range(2046, 2051):
            body = raw + b" " * (size - len(raw))
            st, _, got = raw_request(self.s.port, "POST", "/v1/losses/cross_entropy", body)
            self.assertEqual((st, got), (200, want), size)
            chunks = b"".join(b"%x\r\n" % len(body[i:i + 100]) + body[i:i + 100] + b"\r\n"
                              for i in range(0, len(body), 100))
            out = raw_http(self.s.port, b"POST /v1/losses/cross_entropy HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\nContent-Type: application/json\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
            self.assertEqual(status_of(out), 200, size)
            self.assertEqual(json.loads(out.partition(b"\r\n\r\n")[2]), want, size)

    def test_long_path(self):
        name = "x" * 150  # longer than the request's own 64-byte path buffer
        st, _, b = self.s.request("GET", "/v1/losses/" + name)
        self.assertEqual(st, 404)
        self.assertIn(name, b["error"]["message"])

    def test_500_concurrent(self):
        body = json.dumps(CE_BODY).encode()
        ok = sum(status_of(d) == 200 and b"0.3454563805893" in d
                 for d in post_all_at_once(self.s.port, [body] * 500))
        self.assertEqual(ok, 500)

    def test_batched_answers_match_their_requests(self):
        """Requests that arrive together go to the pool in batches: 300 distinct ones at once,
        some invalid and some with bodies too large to batch, each answered with its own loss
        (a mixed-up batch would hand one client another's answer)."""
        import math
        bodies, want = [], []
        for i in range(300):
            z, t = [i * 0.01, 0.5, -0.3], i % 3
            if i % 37 == 5:  # out of range: a 422 inside a batch
                t = 7
            body = json.dumps({"inputs": {"logits": [z], "target": [t]}}).encode()
            if i % 50 == 7:  # 24 KiB of spaces: above the batch size, goes alone
                body = body[:-1] + b" " * 24576 + b"}"
            bodies.append(body)
            m = max(z)
            want.append(None if t == 7 else m + math.log(sum(math.exp(v - m) for v in z)) - z[t])
        before = self.pool_counts()
        for data, w in zip(post_all_at_once(self.s.port, bodies), want):
            if w is None:
                self.assertEqual(status_of(data), 422)
                continue
            self.assertEqual(status_of(data), 200, data[:200])
            got = json.loads(data.split(b"\r\n\r\n", 1)[1])["loss"]
            self.assertTrue(close_to(got, w, 1e-12), (got, w))
        items, reqs = (a - b for a, b in zip(self.pool_counts(), before))
        self.assertEqual(reqs, 300)
        self.assertLess(items, reqs)  # some requests shared a pool item
        self.assertGreaterEqual(items, 6)  # the six large bodies went alone

    def pool_counts(self):
        text = self.s.get("/metrics")[2]
        val = {ln.split()[0]: int(ln.split()[1]) for ln in text.splitlines()
               if ln.startswith("lossd_pool_")}
        return val["lossd_pool_items_total"], val["lossd_pool_requests_total"]

    def test_long_request_does_not_hold_batched_ones(self):
        """A small body can ask for much work (Sinkhorn's iterations): such a request goes to
        the pool alone (tests/server/test_catalog.c checks which losses may share a pool item),
        and small requests arriving with it are answered while it runs. Every request is sent
        but its last byte, then the last bytes in a burst."""
        rng = random.Random(3)
        pts = [[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in range(150)]
        slow = json.dumps({"inputs": {"a": [1 / 150] * 150, "b": [1 / 150] * 150, "x": pts,
                                      "y": pts[::-1]},
                           "params": {"reg": 0.05, "max_iter": 60000, "tol": 0}}).encode()
        ce = json.dumps(CE_BODY).encode()

        def request(path, body):
            return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n" % (path, len(body)) + body)

        with Server("--threads", "2") as srv:
            reqs = [request(b"/v1/losses/sinkhorn", slow)] + [request(b"/v1/losses/cross_entropy", ce)] * 40
            socks = []
            for q in reqs:
                c = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
                c.sendall(q[:-1])
                socks.append(c)
            time.sleep(0.2)
            for c, q in zip(socks, reqs):
                c.sendall(q[-1:])
            small = [recv_all(c) for c in socks[1:]]
            socks[0].setblocking(False)
            try:
                running = socks[0].recv(1) == b"x"  # any byte would be the answer
            except BlockingIOError:
                running = True  # no answer yet
            socks[0].setblocking(True)
            self.assertTrue(all(status_of(d) == 200 for d in small))
            self.assertTrue(running, "the small requests waited for the Sinkhorn request")
            self.assertEqual(status_of(recv_all(socks[0])), 200)

    def test_slow_client_does_not_block(self):
        s = socket.create_connection(("127.0.0.1", self.s.port))
        s.sendall(b"POST /v1/losses/cross_entropy HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"in")
        t0 = time.time()
        for _ in range(20):
            self.assertEqual(self.s.post("/v1/losses/cross_entropy", CE_BODY)[0], 200)
        self.assertLess(time.time() - t0, 2.0)
        s.close()

    def test_idle_timeout_closes(self):
        s = socket.create_connection(("127.0.0.1", self.s.port))
        s.settimeout(10)
        t0 = time.time()
        self.assertEqual(s.recv(10), b"")  # closed by the server after --idle-timeout 2
        self.assertLess(time.time() - t0, 6)
        s.close()


class Operations(unittest.TestCase):
    def test_auth(self):
        tok = os.path.join(ROOT, "build", "test-token")
        with open(tok, "w") as f:
            f.write("s3cret-token\n")
        with Server("--token-file", tok) as s:
            self.assertEqual(s.get("/healthz")[0], 200)
            self.assertEqual(s.get("/readyz")[0], 200)
            self.assertEqual(s.get("/metrics")[0], 200)
            st, _, b = s.post("/v1/losses/cross_entropy", CE_BODY)
            self.assertEqual((st, b["error"]["code"]), (401, "unauthorized"))
            st, _, _ = s.post("/v1/losses/cross_entropy", CE_BODY, headers={"Authorization": "Bearer nope"})
            self.assertEqual(st, 401)
            st, _, _ = s.post("/v1/losses/cross_entropy", CE_BODY,
                              headers={"Authorization": "Bearer s3cret-token"})
            self.assertEqual(st, 200)
        with Server(env={"LOSSD_TOKEN": "envtok"}) as s:
            self.assertEqual(s.get("/v1/info")[0], 401)
            self.assertEqual(s.get("/v1/info", headers={"Authorization": "Bearer envtok"})[0], 200)

    def test_queue_full_503(self):
        big = {"inputs": {"logits": {"shape": [2000, 100], "data": [0.5] * 200000},
                          "target": [1] * 2000}}
        with Server("--threads", "1", "--queue-depth", "1", "--max-elements", "1000000") as s:
            results = []

            def call():
                st, h, _ = s.post("/v1/losses/cross_entropy", big)
                results.append((st, h.get("retry-after")))
            ts = [threading.Thread(target=call) for _ in range(12)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            codes = sorted(r[0] for r in results)
            self.assertIn(200, codes)
            self.assertIn(503, codes)
            self.assertTrue(all(r[1] == "1" for r in results if r[0] == 503))

    def test_sigterm_drains_in_flight(self):
        big = json.dumps({"inputs": {"logits": {"shape": [3000, 100], "data": [0.25] * 300000},
                                     "target": [3] * 3000}})
        # The 16 clients run in a child process (issue 3: this test was flaky): in this one they
        # would hold the GIL (parsing 300k-number answers) and the /readyz below could come
        # after the drain delay. The child says "sent" once every body is written, so every
        # connection has been accepted.
        client = textwrap.dedent("""
            import http.client, json, sys, threading
            port, body = int(sys.argv[1]), sys.stdin.buffer.read()
            results, sent, lock = [], [0], threading.Lock()
            def call():
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    c.request("POST", "/v1/losses/cross_entropy", body=body,
                              headers={"Content-Type": "application/json"})
                    with lock:
                        sent[0] += 1
                        if sent[0] == 16:
                            print("sent", flush=True)
                    r = c.getresponse()
                    r.read()
                    results.append(r.status)
                except Exception as e:  # a lost request is a failure
                    results.append(repr(e))
            ts = [threading.Thread(target=call) for _ in range(16)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            print(json.dumps(results), flush=True)
        """)
        with Server("--threads", "1", "--drain-delay", "1500", "--max-elements", "1000000") as s:
            child = subprocess.Popen([sys.executable, "-c", client, str(s.port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            child.stdin.write(big)
            child.stdin.close()
            self.assertEqual(child.stdout.readline().strip(), "sent")
            s.signal(signal.SIGTERM)
            # Readiness goes to 503 while the server still serves, within the drain delay (the
            # loop handles the signal between two runs of libmicrohttpd; under ASan, with both
            # cores busy with the 16 uploads and their computation, that took over 100 ms once).
            t0 = time.time()
            while s.get("/readyz")[0] != 503:
                self.assertLess(time.time() - t0, 1.2, "/readyz still 200 long after SIGTERM")
                time.sleep(0.02)
            self.assertEqual(s.get("/healthz")[0], 200)
            results = json.loads(child.stdout.readline())
            child.wait(30)
            self.assertEqual(results, [200] * 16)
            self.assertEqual(s.proc.wait(30), 0)
            log = s.read_log()
            self.assertIn("\"event\":\"draining\"", log)
            self.assertIn("\"event\":\"stopped\"", log)
            # after the drain, new connections are refused
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", s.port), timeout=2).sendall(b"x")

    def test_help_lists_every_flag(self):
        import subprocess
        from harness import BIN
        out = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
        for flag, env in (("--listen", "LOSSD_LISTEN"), ("--threads", "LOSSD_THREADS"),
                          ("--max-body", "LOSSD_MAX_BODY"), ("--token-file", "LOSSD_TOKEN_FILE"),
                          ("--state-dir", "LOSSD_STATE_DIR"), ("--drain-delay", "LOSSD_DRAIN_DELAY")):
            self.assertIn(flag, out)
            self.assertIn(env, out)
        self.assertNotEqual(subprocess.run([BIN, "--bogus"], capture_output=True).returncode, 0)

    def test_openapi_is_generated_from_the_descriptors(self):
        import subprocess
        from harness import BIN
        out = subprocess.run([BIN, "--openapi"], capture_output=True, text=True, check=True).stdout
        with open(os.path.join(ROOT, "proto", "openapi.yaml")) as f:
            self.assertEqual(out, f.read(), "regenerate: build/lossd --openapi > proto/openapi.yaml")
        with Server() as s:
            names = [d["name"] for d in s.get("/v1/losses")[2]["losses"]]
        for n in names:
            self.assertIn("/v1/losses/%s:" % n, out)

    def test_access_log(self):
        with Server() as s:
            s.get("/healthz")
            s.stop()
            lines = [json.loads(l) for l in s.read_log().splitlines() if l.startswith("{\"ts\"")]
            self.assertTrue(any(l["path"] == "/healthz" and l["status"] == 200 and "us" in l and
                                "bytes" in l for l in lines))


if __name__ == "__main__":
    unittest.main()
