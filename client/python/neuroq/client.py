"""Client of neuroqd: one REQ socket for requests, a SUB socket for progress.

Wire format (proto/PROTOCOL.md): every message is one msgpack map; arrays
travel as ``{"dtype": "<f8", "shape": [...], "data": <bin>}``, little-endian,
C order.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from types import TracebackType
from typing import Any, Dict, Iterable, List, Mapping, Union

import msgpack
import numpy as np
import numpy.typing as npt
import pynng

from . import _ssh, errors

PROTOCOL_VERSION = 1
TERMINAL = ("DONE", "FAILED", "CANCELED")
_BIG_REQUEST = 1 << 20
#: EBUSY retries: the first wait (s), doubled up to the last, each times a
#: random 0.5..1 so that refused clients do not come back together
_BUSY_FIRST, _BUSY_MAX = 0.2, 5.0
_DTYPES = {"<f8", "<f4", "<i2", "<i4", "<i8", "|u1", "|b1"}
#: the device names the daemon knows, and the aliases the client accepts
_DEVICES = {"auto": "auto", "cpu": "cpu", "cuda": "cuda", "gpu": "cuda"}

#: a map as the daemon sends it (a reply, a job map, a device map)
WireMap = Dict[str, Any]
#: what a job id may be given as
JobId = Union[int, str]


def default_url() -> str:
    """NEUROQ_URL, else ipc://$XDG_RUNTIME_DIR/neuroq/neuroq.sock, else
    ipc:///run/neuroq/neuroq.sock (the same rule as the CLI)."""
    env = os.environ.get("NEUROQ_URL")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return f"ipc://{xdg}/neuroq/neuroq.sock"
    return "ipc:///run/neuroq/neuroq.sock"


# ---- arrays <-> wire

def _device(device: str | None) -> str:
    """A device argument as the daemon's name: 'auto' (also for None),
    'cpu', 'cuda' (also 'gpu') or 'cuda:N' (N is the daemon's to check);
    anything else raises ValueError."""
    d = "auto" if device is None else str(device)
    if d.startswith("cuda:"):
        return d
    if d not in _DEVICES:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not {d!r}")
    return _DEVICES[d]


def encode_array(arr: npt.ArrayLike) -> WireMap:
    """A numpy array as the wire's array map (little-endian, C order)."""
    a = np.asarray(arr)
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not np.little_endian):
        a = a.astype(a.dtype.newbyteorder("<"))
    a = np.ascontiguousarray(a)
    dt = a.dtype.str
    if dt not in _DTYPES:
        raise errors.BadArray(7, "EBADARRAY",
                              f"dtype {a.dtype} is not supported "
                              f"(use one of {sorted(_DTYPES)})")
    # memoryview cannot cast a view with a zero in its shape
    data = a.data.cast("B") if a.size else b""
    return {"dtype": dt, "shape": list(a.shape), "data": data}


def _is_wire_array(v: Any) -> bool:
    return (isinstance(v, dict) and len(v) == 3 and "dtype" in v and "shape" in v
            and isinstance(v.get("data"), (bytes, bytearray)))


def decode_value(v: Any) -> Any:
    """Wire value -> Python: array maps become numpy arrays (writable)."""
    if _is_wire_array(v):
        dt = np.dtype(v["dtype"])
        a = np.frombuffer(v["data"], dtype=dt).reshape(v["shape"])
        return a.astype(dt.newbyteorder("="), copy=True)  # native, writable
    if isinstance(v, dict):
        return {k: decode_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode_value(x) for x in v]
    return v


def _encode_param(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return encode_array(v)
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_encode_param(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _encode_param(x) for k, x in v.items()}
    return v


def _umask() -> int:
    """The caller's umask, sent with submit: the job runs as the caller and
    makes its files with it.  Read from /proc (os.umask can only read it by
    setting it, which races with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8) & 0o777
    except (OSError, ValueError, IndexError):
        pass
    um = os.umask(0o022)
    os.umask(um)
    return um & 0o777


class Client:
    """A connection to neuroqd.

    ``url`` defaults to :func:`default_url`; ``timeout`` (seconds) bounds each
    request.  ``events_url`` is the daemon's PUB socket for progress events; by
    default the one the daemon announces in ``hello`` (if any) is used, and
    ``Job.wait`` falls back to polling ``status`` without it.  An
    ``ssh://[user@]host[:port][/remote.sock]`` URL goes through the user's
    own SSH login (see ``neuroq._ssh``; the events socket is forwarded too).

    A request of 1 MiB or more first asks the daemon for room in its
    ``max_upload_bytes`` (the ``reserve`` op, proto/PROTOCOL.md §9), so its
    bytes are sent only when the daemon will keep them. A refusal (EBUSY,
    of the reservation or of the request) is tried again after a growing,
    randomised pause (0.1-0.2 s, doubling, at most 5 s) for up to
    ``busy_timeout`` seconds (0: never), then :class:`errors.Busy` is
    raised; ``busy_refusals`` counts the refusals so far.
    """

    def __init__(self, url: str | None = None, timeout: float = 30.0,
                 events_url: str | None = None, busy_timeout: float = 300.0) -> None:
        self.url: str = url or default_url()
        self.timeout = float(timeout)
        self.busy_timeout = float(busy_timeout)
        self.busy_refusals = 0
        self._can_reserve = True  # False once a daemon did not know it
        self._events_url = events_url
        self._hello: WireMap | None = None
        self._lock = threading.Lock()
        self._ssh = _ssh.Tunnels(self.url, self.timeout) if _ssh.is_ssh(self.url) else None
        ms = int(self.timeout * 1000)
        self._sock = pynng.Req0(recv_timeout=ms, send_timeout=ms)
        # results are N x N covariances: no receive cap from our side
        self._sock.recv_max_size = 0
        try:
            self._sock.dial(self._ssh.control_url if self._ssh else self.url, block=True)
        except pynng.NNGException as e:
            self.close()
            raise errors.Unreachable(None, "EUNREACHABLE",
                                     f"cannot reach the daemon at {self.url}: {e}") from None

    # -- plumbing

    def close(self) -> None:
        self._sock.close()
        if self._ssh is not None:
            self._ssh.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def call(self, op: str, **fields: Any) -> WireMap:
        """Send one request; return the reply map or raise its error
        (EBUSY only once ``busy_timeout`` has passed: see the class)."""
        req: WireMap = {"v": PROTOCOL_VERSION, "op": op}
        req.update(fields)
        body = msgpack.packb(req, use_bin_type=True)
        if len(body) > _BIG_REQUEST and op != "hello":
            # far over the cap NNG drops the pipe and we would only see a
            # timeout: ask the daemon's limit first and say what is wrong
            limit = (self._hello or self.hello()).get("max_message_bytes")
            if isinstance(limit, int) and 0 < limit < len(body):
                raise errors.TooBig(2, "ETOOBIG",
                                    f"request of {len(body)} bytes exceeds the daemon's "
                                    f"max_message_bytes {limit}")
        deadline = time.monotonic() + self.busy_timeout
        pause = _BUSY_FIRST
        reserve = None
        if len(body) >= _BIG_REQUEST and op not in ("hello", "reserve"):
            reserve = msgpack.packb({"v": PROTOCOL_VERSION, "op": "reserve",
                                     "bytes": len(body)}, use_bin_type=True)
        while True:
            try:
                if reserve is not None and self._can_reserve:
                    try:
                        self._send(reserve)
                    except errors.BadOp:
                        self._can_reserve = False  # an older daemon
                return self._send(body)
            except errors.Busy:
                wait = pause * random.uniform(0.5, 1.0)
                if time.monotonic() + wait > deadline:
                    raise
                self.busy_refusals += 1
                time.sleep(wait)
                pause = min(2 * pause, _BUSY_MAX)

    def _send(self, body: bytes) -> WireMap:
        """One request's bytes out, its reply in: the map, or its error."""
        with self._lock:
            try:
                self._sock.send(body)
                raw: bytes = self._sock.recv()
            except pynng.Timeout:
                raise errors.TimedOut(62, "ETIMEDOUT",
                                      f"no reply from the daemon at {self.url} "
                                      f"within {self.timeout:g} s") from None
            except pynng.NNGException as e:
                raise errors.Unreachable(None, "EUNREACHABLE",
                                         f"{self.url}: {e}") from None
        try:
            reply = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except Exception as e:  # noqa: BLE001 -- any decode failure is EPROTO
            raise errors.Proto(1, "EPROTO", f"malformed reply: {e}") from None
        if not isinstance(reply, dict):
            raise errors.Proto(1, "EPROTO", "reply is not a map")
        if reply.get("ok") is not True:
            raise errors.from_reply(reply)
        reply_map: WireMap = reply
        return reply_map

    # -- ops

    def hello(self) -> WireMap:
        """{version, daemon, uid, job_types, ...}"""
        self._hello = self.call("hello")
        return self._hello

    def describe(self, type: str | None = None) -> list[WireMap]:
        """The job types' tables: a list of one map per type (only ``type``'s
        when given; an unknown one raises ``errors.BadType``).

        Each map: ``name``, ``summary``, ``nil`` ("default": a None param
        means its default; "refused"), ``symbols`` (shape symbol -> meaning),
        ``params`` [{name, type, default or default_text, min/max, choices,
        doc}], ``inputs`` [{name, dtypes, shape, required, doc}], ``outputs``
        [{name, type, dtypes, shape, when, doc}] (proto/PROTOCOL.md,
        describe). ``neuroq._jobtypes`` holds the same tables as of this
        client's build, for use without a daemon.
        """
        f: WireMap = {} if type is None else {"type": type}
        types: list[WireMap] = self.call("describe", **f)["types"]
        return types

    def devices(self) -> list[WireMap]:
        """List of device maps (name, kind, mem_total, mem_free, ...)."""
        devs: list[WireMap] = self.call("devices")["devices"]
        return devs

    def jobs(self, state: str | None = None, all_users: bool = False,
             limit: int | None = None) -> JobList:
        """Job maps, newest first as the daemon orders them (a list).

        With ``all_users`` an administrator gets everyone's jobs; anyone else
        gets their own, and the list's ``others`` attribute holds the counts
        of the other users' jobs, ``{"queued": n, "running": m}`` (None when
        the daemon sent none).
        """
        f: WireMap = {"all_users": bool(all_users)}
        if state is not None:
            f["state"] = state
        if limit is not None:
            f["limit"] = int(limit)
        rep = self.call("list", **f)
        jobs = JobList(rep["jobs"])
        others = rep.get("others")
        jobs.others = dict(others) if isinstance(others, dict) else None
        return jobs

    def job(self, job_id: JobId) -> Job:
        """A handle on an existing job."""
        return Job(self, int(job_id))

    def submit(self, type: str, inputs: Mapping[str, npt.ArrayLike] | None = None,
               params: Mapping[str, Any] | None = None, device: str = "auto",
               priority: int = 0, idem: str | None = None) -> Job:
        """Submit a job; returns a :class:`Job`.

        ``inputs`` maps names to numpy arrays, ``params`` to plain values
        (numbers, bools, strings, lists, maps).  ``idem`` is an idempotency
        key; a fresh one is made when None, so a request resent by the
        transport never makes a second job.
        """
        ins = {str(k): encode_array(v) for k, v in (inputs or {}).items()}
        ps = {str(k): _encode_param(v) for k, v in (params or {}).items()}
        rep = self.call("submit", type=type, params=ps, inputs=ins,
                        device=device, priority=int(priority),
                        idem=idem if idem is not None else "py-" + uuid.uuid4().hex,
                        umask=_umask())
        job = Job(self, int(rep["id"]))
        job.existing = bool(rep.get("existing", False))
        return job

    def status(self, job_id: JobId) -> WireMap:
        """The job map of a job."""
        job: WireMap = self.call("status", id=int(job_id))["job"]
        return job

    def cancel(self, job_id: JobId) -> str:
        """Cancel a job; returns its state after the request."""
        return str(self.call("cancel", id=int(job_id))["state"])

    def result(self, job_id: JobId, names: Iterable[str] | None = None) -> dict[str, Any]:
        """A job's outputs: arrays as numpy, scalars as Python values."""
        f: WireMap = {"id": int(job_id)}
        if names is not None:
            f["names"] = list(names)
        outputs: dict[str, Any] = decode_value(self.call("result", **f)["outputs"])
        return outputs

    def logs(self, job_id: JobId) -> str:
        """A job's log text."""
        return str(self.call("logs", id=int(job_id))["text"])

    def queue(self) -> WireMap:
        """What ``neuroq top`` shows: the daemon's plan (the ``queue`` op,
        proto/PROTOCOL.md §5), as a dict of the reply's fields:

        - ``now`` (float, unix s), ``draining`` (bool: the daemon is
          stopping), ``admin`` (bool: you see every user's jobs);
        - ``devices``: one map per device (``name``, ``kind``, ``mem_total``,
          ``capacity``, ``mem_reserved``, ``slots``, ``running_count``);
        - ``running``: RUNNING jobs, oldest first; ``queue``: QUEUED jobs in
          the order the scheduler would start them (at most 200), each with
          ``position`` (1-based, among every user's queued jobs), ``reason``
          (why it waits) and ``reason_device``; ``queue_total``: how many
          are queued in all; ``recent``: finished jobs, latest first (at
          most 12). Each job: ``id``, ``type``, ``state``, ``owner``,
          ``priority``, ``device``, ``progress``, ``stage``, ``eta_s``,
          ``elapsed_s``, ``submitted``, ``started``, ``finished``,
          ``error_code``;
        - ``others`` (only when you are not an administrator): the other
          users' jobs as counts, ``{"queued": n, "running": m}``; the lists
          then hold only your own jobs.
        """
        rep = dict(self.call("queue"))
        rep.pop("v", None)
        rep.pop("ok", None)
        return rep

    def events_url(self) -> str | None:
        """The PUB URL to subscribe to, or None."""
        if self._events_url is not None:
            return self._events_url
        try:
            h = self._hello or self.hello()
        except errors.NeuroqError:
            return None
        ev = h.get("events")
        if self._ssh is not None:
            return self._ssh.events_url(ev)  # forwarded, or None
        return ev if isinstance(ev, str) and ev else None


class JobList(List[WireMap]):
    """:meth:`Client.jobs`'s list of job maps, with ``others``: the counts of
    other users' jobs (``{"queued": n, "running": m}``) the daemon gives a
    user who asked for all users' jobs but is not an administrator."""

    others: WireMap | None = None


class Job:
    """A job of a :class:`Client`."""

    def __init__(self, client: Client, job_id: int) -> None:
        self.client = client
        self.id = job_id
        self.existing = False
        self.events_seen = 0  # progress events received by the last wait()

    def __repr__(self) -> str:
        return f"<neuroq.Job {self.id}>"

    def status(self) -> WireMap:
        """The job map: id, type, state, progress, stage, times, error …"""
        return self.client.status(self.id)

    def cancel(self) -> str:
        """Cancel; returns the state after the request."""
        return self.client.cancel(self.id)

    def logs(self) -> str:
        """The job's log text."""
        return self.client.logs(self.id)

    def result(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Outputs as a dict: arrays as numpy, scalars as Python values."""
        return self.client.result(self.id, names)

    def wait(self, progress: bool = True, timeout: float | None = None,
             poll: float = 0.25, cancel_on_interrupt: bool = False,
             raise_on_error: bool = True) -> WireMap:
        """Block until the job ends; returns its final job map.

        ``progress``: a tqdm bar (stage, percent) fed by the daemon's PUB
        events, with ``status`` polls as the truth (and as the only source when
        no event socket is known).  ``timeout`` (s) raises
        :class:`neuroq.errors.TimedOut`.  Ctrl-C stops waiting (the job keeps
        running) unless ``cancel_on_interrupt``.  A FAILED job raises the
        exception of its error code, a CANCELED one ``Canceled``, unless
        ``raise_on_error`` is False.
        """
        t0 = time.monotonic()
        bar: Any = None
        sub: Any = None
        self.events_seen = 0
        ev_url = self.client.events_url()
        if ev_url:
            try:
                sub = pynng.Sub0(recv_timeout=int(poll * 1000))
                sub.subscribe(f"job.{self.id}.".encode())
                sub.dial(ev_url, block=False)
            except pynng.NNGException:
                if sub is not None:
                    sub.close()
                sub = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=100, desc=f"job {self.id}", unit="%",
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}")
        last_poll = -1e9
        job: WireMap | None = None
        try:
            while True:
                now = time.monotonic()
                # events are hints: poll status every second anyway, and
                # every `poll` seconds when there is no event stream
                if job is None or now - last_poll >= (1.0 if sub else poll):
                    try:
                        job = self.status()
                    except (errors.TimedOut, errors.Unreachable):
                        # a restarting daemon requeues the job: wait it out
                        if job is None and timeout is None:
                            raise
                        job = job or {"state": "?"}
                    last_poll = now
                    self._draw(bar, job.get("progress", 0.0), job.get("stage", ""),
                               job.get("state", ""))
                    if job.get("state") in TERMINAL:
                        break
                if timeout is not None and now - t0 >= timeout:
                    raise errors.TimedOut(62, "ETIMEDOUT",
                                          f"job {self.id} still {job.get('state')} "
                                          f"after {timeout:g} s")
                if sub is not None:
                    ev = self._next_event(sub)
                    if ev is not None:
                        self.events_seen += 1
                        self._draw(bar, ev.get("progress", 0.0), ev.get("stage", ""),
                                   ev.get("state", ""))
                        if ev.get("state") in TERMINAL:
                            last_poll = -1e9  # confirm with status now
                else:
                    time.sleep(poll)
        except KeyboardInterrupt:
            if cancel_on_interrupt:
                try:
                    self.cancel()
                except errors.NeuroqError:
                    pass
            raise
        finally:
            if bar is not None:
                bar.close()
            if sub is not None:
                sub.close()
        if raise_on_error and job["state"] == "FAILED":
            code = job.get("error_code") or 24
            raise errors.error_for(int(code), job.get("error", "") or "job failed")
        if raise_on_error and job["state"] == "CANCELED":
            raise errors.Canceled(23, "ECANCELED", f"job {self.id} was canceled")
        return job

    def _next_event(self, sub: Any) -> WireMap | None:
        try:
            raw = sub.recv()
        except pynng.Timeout:
            return None
        except pynng.NNGException:
            return None
        topic = f"job.{self.id}.".encode()
        if not raw.startswith(topic):
            return None
        try:
            ev = msgpack.unpackb(raw[len(topic):], raw=False)
        except Exception:  # noqa: BLE001 -- a bad hint is just dropped
            return None
        return ev if isinstance(ev, dict) else None

    @staticmethod
    def _draw(bar: Any, frac: Any, stage: str, state: str) -> None:
        if bar is None:
            return
        try:
            pct = max(0.0, min(100.0, 100.0 * float(frac)))
        except (TypeError, ValueError):
            pct = 0.0
        if state == "DONE":
            pct = 100.0
        bar.n = round(pct, 1)
        bar.set_postfix_str(f"{state} {stage}".strip(), refresh=False)
        bar.refresh()
