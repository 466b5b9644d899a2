"""lossd client: loss values and gradients from a lossd server, and shared multitask sessions.

Standard library only. With NumPy installed, array inputs travel as base64 (float32, float64,
int32, int64 kept) and results come back as ndarrays; without it, nested lists in and out.

    from lossd import Client
    c = Client("http://127.0.0.1:8080")
    r = c.loss("cross_entropy", logits=logits, target=target, params={"label_smoothing": 0.1})
    r.loss, r.grads["logits"], r.extra
"""
from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.parse
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

try:  # optional
    import numpy as _np
except ImportError:  # pragma: no cover - exercised by the no-NumPy test
    _np = None

__all__ = ["Client", "LossdError", "Result", "Session", "StepResult", "HAVE_NUMPY"]
__version__ = "0.1.0"

HAVE_NUMPY = _np is not None
_DTYPES = {"float32": "<f4", "float64": "<f8", "int32": "<i4", "int64": "<i8"}


class LossdError(Exception):
    """An error answered by lossd (API.md §1), or a transport failure (status 0)."""

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None):
        super().__init__(f"{status} {code}: {message}" + (f" ({field})" if field else ""))
        self.status, self.code, self.message, self.field = status, code, message, field


class Result:
    """One loss call: `loss` (float, None when not finite, or an array for reduction "none"),
    `grads` {input name: array or nested list}, `extra` {name: value}."""

    def __init__(self, loss: Any, grads: Dict[str, Any], extra: Dict[str, Any]):
        self.loss, self.grads, self.extra = loss, grads, extra

    def __repr__(self) -> str:
        return f"Result(loss={self.loss!r}, grads={list(self.grads)}, extra={list(self.extra)})"


class StepResult:
    """A completed multitask step: the weights every rank uses for it, the total, d total /
    d losses (`grad`) and the session's state after the update."""

    def __init__(self, d: Mapping[str, Any]):
        self.step: int = d["step"]
        self.weights: List[float] = d["weights"]
        self.total: float = d["total"]
        self.grad: List[float] = d["grad"]
        self.state: Dict[str, Any] = d["state"]

    def __repr__(self) -> str:
        return f"StepResult(step={self.step}, weights={self.weights}, total={self.total})"


def _encode_tensor(x: Any) -> Any:
    """A value in one of the API's tensor forms."""
    if _np is not None and isinstance(x, _np.ndarray):
        if x.dtype == _np.float16 or x.dtype == _np.bool_:
            x = x.astype(_np.float32)
        kind = {"f": "float", "i": "int", "u": "int"}.get(x.dtype.kind)
        if kind is None:
            raise TypeError(f"cannot send an array of dtype {x.dtype}")
        if x.dtype.itemsize not in (4, 8):
            x = x.astype(_np.int64 if kind == "int" else _np.float32)
        name = f"{kind}{x.dtype.itemsize * 8}"
        data = _np.ascontiguousarray(x, dtype=_DTYPES[name]).tobytes()
        return {"shape": list(x.shape), "dtype": name, "b64": base64.b64encode(data).decode()}
    if _np is not None and isinstance(x, _np.generic):
        return x.item()
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        return _encode_tensor(x.detach().cpu().numpy()) if _np is not None else x.tolist()
    return x


def _decode_tensor(t: Any) -> Any:
    if not isinstance(t, dict) or "shape" not in t:
        return t
    if "b64" in t:
        raw = base64.b64decode(t["b64"])
        if _np is not None:
            return _np.frombuffer(raw, dtype=_DTYPES[t["dtype"]]).reshape(t["shape"]).copy()
        import struct
        fmt = {"float32": "f", "float64": "d", "int32": "i", "int64": "q"}[t["dtype"]]
        flat = list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw))
        return _nest(flat, t["shape"])
    if _np is not None:
        return _np.array([float("nan") if v is None else v for v in t["data"]],
                         dtype=_np.float64).reshape(t["shape"])
    return _nest(t["data"], t["shape"])


def _nest(flat: list, shape: Sequence[int]) -> Any:
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _result(d: Mapping[str, Any]) -> Result:
    loss = d["loss"]
    loss = _decode_tensor(loss) if isinstance(loss, dict) else loss
    grads = {k: _decode_tensor(v) for k, v in d.get("grads", {}).items()}
    extra = {k: _decode_tensor(v) for k, v in d.get("extra", {}).items()}
    return Result(loss, grads, extra)


def _error(status: int, body: Any) -> LossdError:
    e = body.get("error") if isinstance(body, dict) else None
    if isinstance(e, dict):
        return LossdError(status, e.get("code", "error"), e.get("message", ""), e.get("field"))
    return LossdError(status, "error", str(body)[:200])


class Client:
    """A connection to one lossd. Thread-safe; one keep-alive connection reused across calls."""

    def __init__(self, url: str = "http://127.0.0.1:8080", token: Optional[str] = None,
                 timeout: float = 30.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https"):
            raise ValueError("url must be http:// or https://")
        self._https = u.scheme == "https"
        self._host, self._port = u.hostname or "127.0.0.1", u.port or (443 if self._https else 80)
        self._base = u.path.rstrip("/")
        self._token, self.timeout = token, timeout
        self._conn: Optional[http.client.HTTPConnection] = None
        self._lock = threading.Lock()
        self._catalogue: Optional[Dict[str, Any]] = None

    # -- transport ---------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout)
        return self._conn

    def request(self, method: str, path: str, body: Any = None,
                timeout: Optional[float] = None) -> Any:
        """Send one request; the parsed JSON answer, or LossdError."""
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        with self._lock:
            for attempt in (0, 1):
                conn = self._connection()
                if timeout is not None and conn.sock is not None:
                    conn.sock.settimeout(timeout)
                conn.timeout = timeout if timeout is not None else self.timeout
                try:
                    conn.request(method, self._base + path, body=data, headers=headers)
                    resp = conn.getresponse()
                    raw = resp.read()
                    status = resp.status
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                        self._conn = None
                    break
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                        http.client.CannotSendRequest) as e:
                    conn.close()
                    self._conn = None
                    if attempt:  # a kept-alive connection the server closed: retry once
                        raise LossdError(0, "connection", str(e)) from e
                except OSError as e:
                    conn.close()
                    self._conn = None
                    raise LossdError(0, "connection", str(e)) from e
        ctype = resp.getheader("Content-Type", "")
        parsed: Any = json.loads(raw) if "json" in ctype and raw else raw.decode(errors="replace")
        if status >= 400:
            raise _error(status, parsed)
        return parsed

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- losses ------------------------------------------------------------------------------
    def losses(self) -> List[Dict[str, Any]]:
        """The catalogue: each loss with its inputs, params (type, default) and outputs."""
        return self.request("GET", "/v1/losses")["losses"]

    def describe(self, name: str) -> Dict[str, Any]:
        if self._catalogue is None:
            self._catalogue = {d["name"]: d for d in self.losses()}
        if name not in self._catalogue:
            raise LossdError(404, "not_found", f"no loss named {name!r}")
        return self._catalogue[name]

    @staticmethod
    def _body(inputs: Mapping[str, Any], params: Optional[Mapping[str, Any]],
              reduction: Optional[str], grad: Union[bool, Sequence[str]]) -> Dict[str, Any]:
        body: Dict[str, Any] = {"inputs": {k: _encode_tensor(v) for k, v in inputs.items()
                                           if v is not None}}
        if params:
            body["params"] = {k: _encode_tensor(v) for k, v in params.items()}
        if reduction is not None:
            body["reduction"] = reduction
        if grad is not True:
            body["grad"] = grad if isinstance(grad, bool) else list(grad)
        if HAVE_NUMPY:
            body["encoding"] = "b64"
        return body

    def loss(self, name: str, *, params: Optional[Mapping[str, Any]] = None,
             reduction: Optional[str] = None, grad: Union[bool, Sequence[str]] = True,
             **inputs: Any) -> Result:
        """Compute loss `name` on `inputs` (keywords named as in the catalogue)."""
        return _result(self.request("POST", f"/v1/losses/{name}",
                                    self._body(inputs, params, reduction, grad)))

    def batch(self, calls: Sequence[Mapping[str, Any]]) -> List[Union[Result, LossdError]]:
        """Several calls in one request: each {"loss", "inputs", "params"?, ...}. Each answer is
        a Result or the LossdError of that call."""
        body = {"calls": []}
        for c in calls:
            b = self._body(c.get("inputs", {}), c.get("params"), c.get("reduction"),
                           c.get("grad", True))
            b["loss"] = c["loss"]
            body["calls"].append(b)
        out: List[Union[Result, LossdError]] = []
        for r in self.request("POST", "/v1/batch", body)["results"]:
            out.append(_error(422, r) if "error" in r else _result(r))
        return out

    # -- multitask ---------------------------------------------------------------------------
    def multitask(self, session_id: str, *, method: str, tasks: Sequence[str],
                  world_size: int = 1, params: Optional[Mapping[str, Any]] = None,
                  step_timeout_ms: Optional[int] = None) -> "Session":
        """Create or join the session `session_id` (PUT): every rank of a job calls this with
        the same id and configuration."""
        body: Dict[str, Any] = {"method": method, "tasks": list(tasks), "world_size": world_size}
        if params:
            body["params"] = dict(params)
        if step_timeout_ms is not None:
            body["step_timeout_ms"] = step_timeout_ms
        info = self.request("PUT", "/v1/multitask/sessions/" + urllib.parse.quote(session_id), body)
        return Session(self, info["id"], info)

    def sessions(self) -> List[Dict[str, Any]]:
        return self.request("GET", "/v1/multitask/sessions")["sessions"]


class Session:
    """A multitask session joined by this process."""

    def __init__(self, client: Client, session_id: str, info: Mapping[str, Any]):
        self.client, self.id, self.info = client, session_id, dict(info)
        self._path = "/v1/multitask/sessions/" + urllib.parse.quote(session_id)

    def step(self, step: int, rank: int, losses: Sequence[float],
             grad_norms: Optional[Sequence[float]] = None) -> StepResult:
        """Report this rank's task losses for `step`; returns when every rank has reported."""
        body: Dict[str, Any] = {"step": int(step), "rank": int(rank),
                                "losses": [float(v) for v in losses]}
        if grad_norms is not None:
            body["grad_norms"] = [float(v) for v in grad_norms]
        wait = self.info.get("step_timeout_ms", 60000) / 1000.0 + self.client.timeout
        return StepResult(self.client.request("POST", self._path + "/steps", body, timeout=wait))

    def state(self) -> Dict[str, Any]:
        """Config, state and the last 1000 steps."""
        return self.client.request("GET", self._path)

    def delete(self) -> None:
        self.client.request("DELETE", self._path)
