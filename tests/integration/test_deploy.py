"""deploy/nginx.conf for real: three lossd replicas on loopback and Debian's nginx in front."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import ROOT, Server

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MT = "/v1/multitask/sessions"
CE = {"inputs": {"logits": [[2.0, 0.5, -1.0]], "target": [0]}}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


@unittest.skipUnless(os.path.exists(NGINX), "needs nginx (nginx-light)")
class Deploy(unittest.TestCase):
    def setUp(self):
        self.replicas = [Server("--drain-delay", "300") for _ in range(3)]
        self.tmp = tempfile.mkdtemp(prefix="lossd-nginx-")
        os.chmod(self.tmp, 0o777)
        with open(os.path.join(ROOT, "deploy", "nginx.conf")) as f:
            conf = f.read()
        for i, r in enumerate(self.replicas, 1):
            conf = conf.replace(f"lossd-{i}:8080", f"127.0.0.1:{r.port}")
        self.port = free_port()
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
        conf = re.sub(r"/tmp/lossd-nginx", self.tmp + "/nginx", conf)
        path = os.path.join(self.tmp, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.nginx = subprocess.Popen([NGINX, "-c", path, "-p", self.tmp, "-g", "daemon off;"],
                                      stderr=subprocess.PIPE)
        self.front = Server.__new__(Server)  # a request helper bound to nginx's port
        self.front.port = self.port
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)

    def tearDown(self):
        self.nginx.send_signal(signal.SIGQUIT)
        self.nginx.wait(10)
        for r in self.replicas:
            if r.proc.poll() is None:
                r.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def count(self, r, pattern):
        return sum(1 for l in r.read_log().splitlines() if pattern in l)

    def test_routing_and_drain(self):
        front = self.front
        # stateless calls spread over every replica
        for _ in range(60):
            st, _, b = Server.request(front, "POST", "/v1/losses/cross_entropy", CE)
            self.assertEqual(st, 200, b)
        spread = [self.count(r, "/v1/losses/cross_entropy") for r in self.replicas]
        self.assertTrue(all(n > 0 for n in spread), spread)
        # all requests of a session reach one replica; two ranks complete 50 steps through nginx
        st, _, _ = Server.request(front, "PUT", f"{MT}/job-nginx", {"method": "uncertainty", "tasks": ["a", "b"],
                                                                    "world_size": 2})
        self.assertEqual(st, 201)
        errors = []

        def rank(k):
            c = Server.conn(front, 30)
            for t in range(50):
                body = json.dumps({"step": t, "rank": k, "losses": [1.0 + k, 2.0 / (t + 1)]})
                c.request("POST", f"{MT}/job-nginx/steps", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    errors.append((k, t, r.status))
                    return
        ts = [threading.Thread(target=rank, args=(k,)) for k in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        owners = [self.count(r, "/v1/multitask/sessions/job-nginx") for r in self.replicas]
        self.assertEqual(sorted(owners)[:2], [0, 0], owners)
        self.assertEqual(max(owners), 101)
        # SIGTERM one replica under load: no stateless request fails
        failures, done = [], threading.Event()

        def load():
            c = Server.conn(front, 30)
            while not done.is_set():
                try:
                    c.request("POST", "/v1/losses/cross_entropy", json.dumps(CE), {"Content-Type": "application/json"})
                    r = c.getresponse()
                    r.read()
                    if r.status != 200:
                        failures.append(r.status)
                except OSError as e:
                    failures.append(repr(e))
                    c = Server.conn(front, 30)
        ts = [threading.Thread(target=load) for _ in range(4)]
        for t in ts:
            t.start()
        time.sleep(0.5)
        victim = self.replicas[1]
        victim.signal(signal.SIGTERM)
        self.assertEqual(victim.proc.wait(20), 0)
        time.sleep(1.0)
        done.set()
        for t in ts:
            t.join()
        self.assertEqual(failures, [])


if __name__ == "__main__":
    unittest.main()
