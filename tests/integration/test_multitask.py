"""Multitask sessions over HTTP: trajectories against the torch reference, the barrier with many
ranks, timeouts, conflicts, disconnects, durability across kill -9 and torn journals."""
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest

from harness import ROOT, Server, close_to

MT = "/v1/multitask/sessions"
TRAJ = os.path.join(ROOT, "tests", "golden", "multitask_trajectories.json")


def report(s, sid, step, rank, losses, grad_norms=None, timeout=60):
    body = {"step": step, "rank": rank, "losses": losses}
    if grad_norms is not None:
        body["grad_norms"] = grad_norms
    return s.post(f"{MT}/{sid}/steps", body, timeout=timeout)


def run_step(s, sid, step, ranks, norms=None):
    """Every rank reports concurrently; returns the list of (status, body) by rank."""
    out = [None] * len(ranks)

    def go(k):
        try:
            st, _, b = report(s, sid, step, k, ranks[k], norms[k] if norms else None)
            out[k] = (st, b)
        except OSError as e:  # the server was killed under this rank
            out[k] = (None, repr(e))
    ts = [threading.Thread(target=go, args=(k,)) for k in range(len(ranks))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


class Trajectories(unittest.TestCase):
    def test_every_method_matches_reference(self):
        with open(TRAJ) as f:
            cases = json.load(f)
        with Server() as s:
            for i, c in enumerate(cases):
                sid = f"traj-{i}"
                st, _, b = s.request("PUT", f"{MT}/{sid}", c["config"])
                self.assertEqual(st, 201, b)
                for t, ranks in enumerate(c["ranks"]):
                    res = run_step(s, sid, t, ranks, c["grad_norms"][t] if "grad_norms" in c else None)
                    self.assertEqual(res[0][0], 200, res[0][1])
                    self.assertEqual(res[0][1], res[1][1])  # every rank gets the same answer
                    want = c["expect"][t]
                    got = res[0][1]
                    self.assertEqual(got["step"], t)
                    self.assertTrue(close_to(got["weights"], want["weights"], 1e-10, 1e-13),
                                    (c["name"], t, got["weights"], want["weights"]))
                    self.assertTrue(close_to(got["total"], want["total"], 1e-10, 1e-13), (c["name"], t))
                    self.assertEqual(got["grad"], got["weights"])
                st, _, g = s.get(f"{MT}/{sid}")
                self.assertEqual(len(g["history"]), len(c["ranks"]))
                self.assertEqual(g["step"], len(c["ranks"]))


class Promptness(unittest.TestCase):
    def test_waiting_rank_answered_without_other_traffic(self):
        """Regression: a rank resumed from inside the completing rank's handler waited for the
        idle timeout (the kick was overwritten by MHD_get_timeout's re-arm on 0.9.75)."""
        with Server("--idle-timeout", "30") as s:
            s.request("PUT", f"{MT}/quiet", {"method": "static", "tasks": ["a"], "world_size": 2})
            conns = [s.conn(20), s.conn(20)]  # one keep-alive connection per rank, as trainers do

            def rep(k, t, out):
                body = json.dumps({"step": t, "rank": k, "losses": [1.0 + k]})
                conns[k].request("POST", f"{MT}/quiet/steps", body, {"Content-Type": "application/json"})
                r = conns[k].getresponse()
                r.read()
                out[k] = r.status
            for t in range(10):
                t0 = time.time()
                res = {}
                th = threading.Thread(target=rep, args=(0, t, res))
                th.start()
                time.sleep(0.05)
                rep(1, t, res)
                th.join()
                self.assertEqual((res[0], res[1]), (200, 200))
                self.assertLess(time.time() - t0, 2.0, f"step {t} was slow")


class Barrier(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Server()

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()

    def test_eight_ranks_200_steps(self):
        s = self.s
        st, _, _ = s.request("PUT", f"{MT}/eight", {"method": "uncertainty", "tasks": ["a", "b", "c"],
                                                    "world_size": 8, "params": {"optimizer": "adam"}})
        self.assertEqual(st, 201)
        answers = [[None] * 200 for _ in range(8)]
        errors = []

        def rank(k):
            c = s.conn(60)  # one keep-alive connection per rank, as a training loop would
            for t in range(200):
                body = json.dumps({"step": t, "rank": k, "losses": [1.0 + k * 0.1 + t * 0.01, 2.0 / (t + 1), 0.5]})
                c.request("POST", f"{MT}/eight/steps", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                data = json.loads(r.read())
                if r.status != 200:
                    errors.append((k, t, r.status, data))
                    return
                answers[k][t] = data["weights"]
            c.close()
        ts = [threading.Thread(target=rank, args=(k,)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        for t in range(200):
            self.assertTrue(all(answers[k][t] == answers[0][t] for k in range(8)), t)

    def test_conflicts(self):
        s = self.s
        cfg = {"method": "dwa", "tasks": ["x", "y"], "world_size": 2, "step_timeout_ms": 20000}
        self.assertEqual(s.request("PUT", f"{MT}/conf", cfg)[0], 201)
        self.assertEqual(s.request("PUT", f"{MT}/conf", cfg)[0], 200)  # joined
        st, _, b = s.request("PUT", f"{MT}/conf", dict(cfg, world_size=3))
        self.assertEqual((st, b["error"]["code"]), (409, "conflict"))
        # a future step, then a duplicate report while waiting, then a past step
        self.assertEqual(report(s, "conf", 1, 0, [1.0, 2.0])[0], 409)
        res = {}

        def r0():
            res["r0"] = report(s, "conf", 0, 0, [1.0, 2.0])
        t = threading.Thread(target=r0)
        t.start()
        time.sleep(0.2)
        st, _, b = report(s, "conf", 0, 0, [1.0, 2.0])
        self.assertEqual((st, b["error"]["field"]), (409, "rank"))
        self.assertEqual(report(s, "conf", 0, 1, [3.0, 4.0])[0], 200)
        t.join()
        self.assertEqual(res["r0"][0], 200)
        self.assertEqual(report(s, "conf", 0, 1, [3.0, 4.0])[0], 409)
        self.assertEqual(report(s, "conf", 1, 2, [3.0, 4.0])[0], 422)  # rank >= world_size
        self.assertEqual(report(s, "conf", 1, 0, [3.0])[0], 422)  # wrong task count

    def test_timeout_then_retry(self):
        s = self.s
        self.assertEqual(s.request("PUT", f"{MT}/slow", {"method": "static", "tasks": ["a"], "world_size": 2,
                                                          "step_timeout_ms": 300})[0], 201)
        t0 = time.time()
        st, _, b = report(s, "slow", 0, 0, [1.0])
        self.assertEqual((st, b["error"]["code"]), (504, "timeout"))
        self.assertLess(time.time() - t0, 3)
        # the partial step was discarded: both ranks can report step 0 again
        res = run_step(s, "slow", 0, [[1.0], [3.0]])
        self.assertEqual([r[0] for r in res], [200, 200])
        self.assertEqual(res[0][1]["total"], 2.0)

    def test_disconnected_rank_does_not_block(self):
        s = self.s
        self.assertEqual(s.request("PUT", f"{MT}/drop", {"method": "static", "tasks": ["a"], "world_size": 2,
                                                          "step_timeout_ms": 20000})[0], 201)
        body = json.dumps({"step": 0, "rank": 0, "losses": [1.0]}).encode()
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.sendall(b"POST " + f"{MT}/drop/steps".encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.2)
        sock.close()  # rank 0 goes away while waiting; its report stands
        time.sleep(0.6)
        st, _, b = report(s, "drop", 0, 1, [3.0], timeout=10)
        self.assertEqual((st, b["total"]), (200, 2.0))
        # a rank that reconnects after dropping takes its report over
        sock = socket.create_connection(("127.0.0.1", s.port))
        body = json.dumps({"step": 1, "rank": 0, "losses": [5.0]}).encode()
        sock.sendall(b"POST " + f"{MT}/drop/steps".encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.1)
        sock.close()
        time.sleep(0.1)
        res = {}

        def again():
            res[0] = report(s, "drop", 1, 0, [7.0], timeout=10)
        th = threading.Thread(target=again)
        th.start()
        time.sleep(0.3)  # the re-report is in before rank 1 completes the step
        res[1] = report(s, "drop", 1, 1, [9.0], timeout=10)
        th.join()
        self.assertEqual([res[0][0], res[1][0]], [200, 200])
        self.assertEqual(res[0][2]["total"], 8.0)

    def test_create_list_get_delete(self):
        s = self.s
        st, _, b = s.post(MT, {"method": "gradnorm", "tasks": ["a", "b"], "world_size": 1})
        self.assertEqual(st, 201)
        sid = b["id"]
        self.assertTrue(sid.startswith("mt-"))
        self.assertEqual(b["params"]["alpha"], 1.5)
        st, _, lst = s.get(MT)
        self.assertIn(sid, [x["id"] for x in lst["sessions"]])
        self.assertEqual(report(s, sid, 0, 0, [1.0, 2.0])[0], 422)  # gradnorm needs grad_norms
        self.assertEqual(report(s, sid, 0, 0, [1.0, 2.0], [0.5, 0.5])[0], 200)
        st, _, g = s.get(f"{MT}/{sid}")
        self.assertEqual((g["step"], len(g["history"])), (1, 1))
        self.assertEqual(g["state"]["initial_losses"], [1.0, 2.0])
        self.assertEqual(s.request("DELETE", f"{MT}/{sid}")[0], 200)
        self.assertEqual(s.get(f"{MT}/{sid}")[0], 404)
        st, _, text = s.get("/metrics")
        self.assertIn("lossd_multitask_steps_total{method=\"gradnorm\"}", text)
        self.assertIn("lossd_multitask_barrier_wait_seconds_bucket", text)


class Durability(unittest.TestCase):
    CFG = {"method": "uncertainty", "tasks": ["a", "b"], "world_size": 2, "params": {"optimizer": "adam", "lr": 0.05}}

    def losses(self, t):
        return [[1.0 + 0.5 / (t + 1), 2.0 - 0.01 * t], [1.2 + 0.3 / (t + 1), 1.9 - 0.01 * t]]

    def reference(self, n):
        with Server() as s:
            s.request("PUT", f"{MT}/job", self.CFG)
            return [run_step(s, "job", t, self.losses(t))[0][1] for t in range(n)]

    def test_kill9_loses_no_acknowledged_step(self):
        ref = self.reference(60)
        state = tempfile.mkdtemp(prefix="lossd-state-")
        try:
            acked = []
            s = Server("--state-dir", state, "--snapshot-every", "7")
            self.assertEqual(s.request("PUT", f"{MT}/job", self.CFG)[0], 201)
            stop = threading.Event()

            def trainer():
                t = 0
                while not stop.is_set() and t < 60:
                    try:
                        res = run_step(s, "job", t, self.losses(t))
                    except OSError:
                        return
                    if all(r and r[0] == 200 for r in res):
                        acked.append(res[0][1])
                        t += 1
                    else:
                        return
            th = threading.Thread(target=trainer)
            th.start()
            while len(acked) < 23:
                time.sleep(0.005)
            s.kill9()  # in the middle of the run
            stop.set()
            th.join()
            n = len(acked)
            self.assertGreaterEqual(n, 23)
            s2 = Server("--state-dir", state, "--snapshot-every", "7")
            st, _, g = s2.get(f"{MT}/job")
            self.assertEqual(st, 200)
            # Every acknowledged step is there; a step cut before its answer may be there too.
            self.assertIn(g["step"], (n, n + 1))
            for t in range(g["step"], 60):  # continue as if uninterrupted
                res = run_step(s2, "job", t, self.losses(t))
                self.assertEqual(res[0][1], ref[t], t)
            for t in range(n):
                self.assertEqual(acked[t], ref[t])
            st, _, g = s2.get(f"{MT}/job")
            self.assertEqual([h["weights"] for h in g["history"]], [r["weights"] for r in ref])
            self.assertEqual(s2.stop(), 0)
        finally:
            shutil.rmtree(state)

    def test_torn_journal_recovers_last_whole_record(self):
        state = tempfile.mkdtemp(prefix="lossd-state-")
        try:
            with Server("--state-dir", state, "--snapshot-every", "1000") as s:
                s.request("PUT", f"{MT}/job", self.CFG)
                for t in range(10):
                    run_step(s, "job", t, self.losses(t))
            journal = os.path.join(state, "sessions", "job", "journal.log")
            size = os.path.getsize(journal)
            with open(journal, "r+b") as f:
                f.truncate(size - 5)  # tear the last record
            with Server("--state-dir", state) as s:
                st, _, g = s.get(f"{MT}/job")
                self.assertEqual(g["step"], 9)
                self.assertIn("journal_truncated", s.read_log())
                res = run_step(s, "job", 9, self.losses(9))
                self.assertEqual(res[0][0], 200)
            # corrupt a byte in the middle: recovery stops at the last good record before it
            with open(journal, "r+b") as f:
                f.seek(size // 2)
                f.write(b"\xff")
            with Server("--state-dir", state) as s:
                st, _, g = s.get(f"{MT}/job")
                self.assertLess(g["step"], 10)
                self.assertGreaterEqual(g["step"], 1)
        finally:
            shutil.rmtree(state)

    def test_create_and_delete_are_durable(self):
        state = tempfile.mkdtemp(prefix="lossd-state-")
        try:
            with Server("--state-dir", state) as s:
                self.assertEqual(s.request("PUT", f"{MT}/keep", self.CFG)[0], 201)
                self.assertEqual(s.request("PUT", f"{MT}/gone", self.CFG)[0], 201)
                self.assertEqual(s.request("DELETE", f"{MT}/gone")[0], 200)
                s.kill9()
            with Server("--state-dir", state) as s:
                self.assertEqual(s.get(f"{MT}/keep")[0], 200)
                self.assertEqual(s.get(f"{MT}/gone")[0], 404)
        finally:
            shutil.rmtree(state)


if __name__ == "__main__":
    unittest.main()
