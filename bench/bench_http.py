#!/usr/bin/python3
"""End-to-end HTTP benchmarks (make bench-http): wrk against lossd and, in the same run, against
nginx serving a fixed response (this machine's ceiling), in BENCH_ROUNDS (5) interleaved rounds
whose ratios' median is the result; one large b64 request against the kernel time, in
LARGE_ROUNDS (5) rounds timing both; multitask steps/s with and without --state-dir. Loopback
only, bounded in time."""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Server  # noqa: E402

DUR = os.environ.get("BENCH_SECONDS", "5")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
LARGE_ROUNDS = 5


def wrk(url, body=None, conns=64):
    env = dict(os.environ)
    args = ["wrk", "-t2", f"-c{conns}", f"-d{DUR}s", "--latency"]
    if body is not None:
        fd, path = tempfile.mkstemp()
        os.write(fd, body.encode())
        os.close(fd)
        env["BENCH_BODY_FILE"] = path
        args += ["-s", os.path.join(ROOT, "bench", "post.lua")]
    out = subprocess.run(args + [url], capture_output=True, text=True, env=env, timeout=120).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"\s+(50|99)%\s+([\d.]+\w+)", out))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat.get("50", "?"), lat.get("99", "?"), int(errs.group(1)) if errs else 0


def nginx_fixed():
    tmp = tempfile.mkdtemp(prefix="lossd-bench-nginx-")
    os.chmod(tmp, 0o777)
    port = 18000 + os.getpid() % 1000
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; pid {tmp}/pid; error_log stderr;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p;
  server {{ listen 127.0.0.1:{port}; location / {{ default_type application/json;
    return 200 '{{"status":"ok"}}'; }} }} }}\n""")
    p = subprocess.Popen(["nginx", "-c", conf, "-p", tmp, "-g", "daemon off;"])
    time.sleep(0.5)
    return p, port, tmp


def large_request(s):
    """The 87 MB request in LARGE_ROUNDS rounds, each timing it end to end by curl (the body
    prepared in a file, the response received in full) and by Python's http.client, and the
    kernel on the same data (bench_kernels, median of 3), so that a drift of this VM's speed
    reaches both sides of a round's ratio. Returns the medians and each round's curl ratio."""
    import numpy as np
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((512, 32000)) * 2).astype(np.float32)
    y = rng.integers(0, 32000, 512)
    body = json.dumps({"inputs": {"logits": {"shape": [512, 32000], "dtype": "float32",
                                             "b64": base64.b64encode(z.tobytes()).decode()},
                                  "target": y.tolist()}, "encoding": "b64"}).encode()
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "body.json"), "wb") as f:
        f.write(body)
    z.tofile(os.path.join(d, "logits.bin"))
    open(os.path.join(d, "logits.shape"), "w").write("512 32000\n")
    y.astype(np.int64).tofile(os.path.join(d, "target.bin"))
    open(os.path.join(d, "target.shape"), "w").write("512\n")
    url = f"http://127.0.0.1:{s.port}/v1/losses/cross_entropy"

    def by_curl():
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                              "-H", "Content-Type: application/json", "-H", "Expect:",
                              "--data-binary", "@" + os.path.join(d, "body.json"), url],
                             capture_output=True, text=True, timeout=120).stdout.split()
        assert out[0] == "200", out
        return float(out[1]) * 1e3

    def by_python():
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
        t0 = time.perf_counter()
        c.request("POST", "/v1/losses/cross_entropy", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = bytearray(int(r.getheader("Content-Length")))  # received in place, not joined
        got, view = 0, memoryview(data)
        while got < len(data):
            k = r.readinto(view[got:])
            assert k, "short response"
            got += k
        ms = (time.perf_counter() - t0) * 1e3
        assert r.status == 200, bytes(data[:200])
        c.close()
        return ms

    def kernel():
        out = subprocess.run([os.path.join(ROOT, "build", "bench", "bench_kernels"), "cross_entropy",
                              d, "3"], capture_output=True, text=True, check=True).stdout
        return float(out.split("\n")[1].split()[1])

    by_curl()  # warm-up: the server's heap grows to the request's size once
    curl_ms, py_ms, kernel_ms = [], [], []
    for _ in range(LARGE_ROUNDS):
        curl_ms.append(by_curl())
        py_ms.append(by_python())
        kernel_ms.append(kernel())
    shutil.rmtree(d)
    ratios = sorted(c / k for c, k in zip(curl_ms, kernel_ms))
    return (statistics.median(curl_ms), statistics.median(py_ms), statistics.median(kernel_ms),
            len(body), ratios)


def steps_per_s(s, sessions, ranks, steps):
    done = []

    def rank(sid, k):
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        for t in range(steps):
            c.request("POST", f"/v1/multitask/sessions/{sid}/steps",
                      json.dumps({"step": t, "rank": k, "losses": [1.0, 2.0, 0.5]}),
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            assert r.status == 200
        done.append(1)
    tag = f"s{sessions}r{ranks}"
    for i in range(sessions):
        st, _, _ = s.request("PUT", f"/v1/multitask/sessions/{tag}-{i}",
                             {"method": "uncertainty", "tasks": ["a", "b", "c"], "world_size": ranks})
        assert st == 201
    ts = [threading.Thread(target=rank, args=(f"{tag}-{i}", k)) for i in range(sessions) for k in range(ranks)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(done) == sessions * ranks, "a rank failed"
    return sessions * steps / (time.perf_counter() - t0)


def median_row(name, runs):
    """The run with the median rate of a target's rounds."""
    runs = sorted(runs, key=lambda r: r[0])
    return (name, *runs[len(runs) // 2], [r[0] for r in runs])


def main():
    small = json.dumps({"inputs": {"logits": [[0.1 * i + j for i in range(10)] for j in range(8)],
                                   "target": [1, 2, 3, 4, 5, 6, 7, 8]}})
    # The same route with almost nothing to parse, compute or encode: what the request path
    # itself (MHD, suspend, the pool hand-off, resume) costs, i.e. the ceiling for [8,10].
    tiny = json.dumps({"inputs": {"logits": [[0.5, 1.5]], "target": [1]}})
    ng, nport, ntmp = nginx_fixed()
    rows = []
    try:
        with Server("--threads", "2", "--access-log", "false", "--max-body", "268435456") as s:
            base = f"http://127.0.0.1:{s.port}"
            # Rounds interleave the targets, so that this VM's drifts in speed hit all of them.
            runs = {"nginx": [], "healthz": [], "ce": [], "tiny": []}
            for _ in range(ROUNDS):
                runs["nginx"].append(wrk(f"http://127.0.0.1:{nport}/"))
                runs["healthz"].append(wrk(base + "/healthz"))
                runs["ce"].append(wrk(base + "/v1/losses/cross_entropy", small))
                runs["tiny"].append(wrk(base + "/v1/losses/cross_entropy", tiny))
            rows.append(median_row("nginx fixed response", runs["nginx"]))
            rows.append(median_row("lossd /healthz", runs["healthz"]))
            rows.append(median_row("lossd cross_entropy [8,10]", runs["ce"]))
            rows.append(median_row("lossd cross_entropy [1,2]", runs["tiny"]))
            ratios = sorted(c[0] / n[0] for c, n in zip(runs["ce"], runs["nginx"]))
            tiny_ratios = sorted(c[0] / n[0] for c, n in zip(runs["tiny"], runs["nginx"]))
            big_ms, py_ms, kernel_ms, nbytes, big_ratios = large_request(s)
            mt = {}
            mt["1 session x 8 ranks"] = steps_per_s(s, 1, 8, 300)
            mt["100 sessions x 2 ranks"] = steps_per_s(s, 100, 2, 30)
        state = tempfile.mkdtemp(prefix="lossd-bench-state-")
        with Server("--threads", "2", "--access-log", "false", "--state-dir", state) as s:
            mt["1 session x 8 ranks, --state-dir"] = steps_per_s(s, 1, 8, 300)
            mt["100 sessions x 2 ranks, --state-dir"] = steps_per_s(s, 100, 2, 30)
        shutil.rmtree(state)
    finally:
        ng.send_signal(signal.SIGQUIT)
        ng.wait()
        shutil.rmtree(ntmp, ignore_errors=True)
    print(f"wrk -t2 -c64 -d{DUR}s x {ROUNDS} interleaved rounds (the median shown), keep-alive, "
          "127.0.0.1, 2 cores shared by client and server")
    print(f"{'target':<30} {'req/s':>8} {'p50':>9} {'p99':>9} {'non-2xx':>8}  rounds")
    for name, rps, p50, p99, errs, all_rps in rows:
        print(f"{name:<30} {rps:>8.0f} {p50:>9} {p99:>9} {errs:>8}  "
              + " ".join(f"{r:.0f}" for r in all_rps))
    ratio = statistics.median(ratios)
    print(f"small cross_entropy rate = {ratio:.0%} of nginx's fixed response, median of the rounds' "
          f"ratios ({', '.join(f'{r:.0%}' for r in ratios)}; target >= 50%)")
    print(f"request-path ceiling: cross_entropy [1,2] at {statistics.median(tiny_ratios):.0%} of "
          f"nginx ({', '.join(f'{r:.0%}' for r in tiny_ratios)})")
    print(f"large b64 cross_entropy f32 [512,32000] ({nbytes / 1e6:.0f} MB body), {LARGE_ROUNDS} rounds: "
          f"{big_ms:.0f} ms end to end (curl), kernel {kernel_ms:.0f} ms, ratio "
          f"{statistics.median(big_ratios):.1f}x, median of the rounds' ratios "
          f"({', '.join(f'{r:.1f}' for r in big_ratios)}; target <= 8x); Python http.client "
          f"{py_ms:.0f} ms ({py_ms / kernel_ms:.1f}x)")
    for k, v in mt.items():
        print(f"multitask {k:<36} {v:>8.0f} steps/s")


if __name__ == "__main__":
    main()
