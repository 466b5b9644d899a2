"""Start the real build/lossd on 127.0.0.1 with an ephemeral port; small HTTP helpers.

Standard library only, so the integration tests run wherever /usr/bin/python3 does.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("LOSSD_BIN", os.path.join(ROOT, "build", "lossd"))
if not os.path.isabs(BIN):
    BIN = os.path.join(ROOT, BIN)


class Server:
    """A running lossd. Use as a context manager; stop() returns the exit code."""

    def __init__(self, *args, env=None, start_timeout=10.0):
        self.tmp = tempfile.mkdtemp(prefix="lossd-test-")
        self.port_file = os.path.join(self.tmp, "port")
        self.log_path = os.path.join(self.tmp, "lossd.log")
        self.args = list(args)
        e = dict(os.environ)
        e.update(env or {})
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", "--port-file", self.port_file,
                                      *self.args], stdout=self.log, stderr=self.log, env=e)
        deadline = time.time() + start_timeout
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("lossd exited: " + self.read_log())
            if time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("lossd did not start: " + self.read_log())
            time.sleep(0.01)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def read_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=30, raw=False):
        """(status, headers dict, parsed JSON or text)."""
        c = self.conn(timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if raw:
            return r.status, hdrs, data
        try:
            return r.status, hdrs, json.loads(data)
        except ValueError:
            return r.status, hdrs, data.decode(errors="replace")

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        self.log.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.stop()


def _exchange(port, data, timeout):
    """Send bytes on a fresh connection, tolerating a server that answers early and closes
    while the body is still being sent; read one response (by Content-Length, or to close)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            head, sep, rest = out.partition(b"\r\n\r\n")
            if sep:
                lengths = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                           if l.lower().startswith(b"content-length:")]
                if lengths and len(rest) >= lengths[0]:
                    break
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def raw_http(port, data, timeout=10.0):
    """Send raw bytes on a fresh connection; return the response bytes."""
    return _exchange(port, data, timeout)


def raw_request(port, method, path, body=b"", headers=None, timeout=30.0):
    """One request on its own connection with Connection: close, tolerating a server that
    answers early (413) and closes while the body is still being sent.
    Returns (status, lower-cased headers, parsed JSON or text)."""
    if isinstance(body, str):
        body = body.encode()
    body = body or b""
    h = {"Host": "127.0.0.1", "Connection": "close", "Content-Type": "application/json"}
    h.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path)
    head += "".join("%s: %s\r\n" % kv for kv in h.items())
    head += "Content-Length: %d\r\n\r\n" % len(body)
    out = _exchange(port, head.encode() + body, timeout)
    head, _, payload = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower().decode()] = v.strip().decode()
    try:
        return status, hdrs, json.loads(payload)
    except ValueError:
        return status, hdrs, payload.decode(errors="replace")


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/") else None


def close_to(a, b, rtol=1e-9, atol=1e-12):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(close_to(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, dict):
        return set(a) == set(b) and all(close_to(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, bool) or isinstance(a, str):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)
