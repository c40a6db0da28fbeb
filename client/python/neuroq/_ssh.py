"""ssh:// URLs: reach a remote neuroqd through the user's own SSH login.

``ssh://[user@]host[:port][/remote/control.sock]`` (remote socket default
``/run/neuroq/neuroq.sock``).  OpenSSH forwards a local Unix socket to the
daemon's (``ssh -N -L LOCAL:REMOTE``); sshd connects to the daemon's socket
as the logged-in user, so the daemon sees that user's uid: the jobs are
theirs, as over a local ``ipc://`` socket.  The events socket that ``hello``
names is forwarded the same way (a second ssh, on first use).

The local sockets live in a private directory (0700), removed, and the ssh
processes stopped, on :meth:`Tunnels.close`, on garbage collection and at
interpreter exit.  ssh runs with ``BatchMode=yes`` (no prompts: use a key,
an agent, or ``-o BatchMode=no`` in ``NEUROQ_SSH_OPTS``).  ``NEUROQ_SSH`` names
the ssh program (default ``ssh``); ``NEUROQ_SSH_OPTS`` holds extra arguments,
split on blanks (no quoting), placed first so that an ``-o`` there wins.
The same rules as the CLI (client/cli/ssh_tunnel.c).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref

from . import errors

DEFAULT_REMOTE = "/run/neuroq/neuroq.sock"

_URL = re.compile(r"^ssh://(?:(?P<user>[^@/]+)@)?"
                  r"(?:\[(?P<host6>[^\]/]+)\]|(?P<host>[^:/\[\]@]+))"
                  r"(?::(?P<port>\d{1,5}))?(?P<path>/.*)?$")


def is_ssh(url: object) -> bool:
    return isinstance(url, str) and url.startswith("ssh://")


def parse_url(url: str) -> tuple[str | None, str, str | None, str]:
    """(user or None, host, port or None, remote socket path)."""
    m = _URL.match(url or "")
    host: str = (m.group("host6") or m.group("host") or "") if m else ""
    port: str | None = m.group("port") if m else None
    path: str = (m.group("path") if m else None) or "/"
    if (not m or not host or host.startswith("-") or ":" in path
            or (port is not None and not 0 < int(port) < 65536)):
        raise errors.Unreachable(None, "EUNREACHABLE",
                                 f"bad URL {url} (want ssh://[user@]host[:port]"
                                 f"[/remote/socket], the socket path without ':')")
    return m.group("user"), host, port, DEFAULT_REMOTE if path == "/" else path


def ssh_argv(user: str | None, host: str, port: str | None, remote: str, local: str,
             connect_timeout: float) -> list[str]:
    """The ssh command line forwarding the local socket to the remote one."""
    argv = [os.environ.get("NEUROQ_SSH") or "ssh"]
    argv += os.environ.get("NEUROQ_SSH_OPTS", "").split()  # first: they win
    argv += ["-N", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
             "-o", "StreamLocalBindUnlink=yes", "-o", "ControlPath=none",
             "-o", "ServerAliveInterval=15",
             "-o", f"ConnectTimeout={max(1, int(connect_timeout + 0.999))}"]
    if user:
        argv += ["-l", user]
    if port:
        argv += ["-p", port]
    return argv + ["-L", f"{local}:{remote}", "--", host]


def _probe(path: str, wait: float) -> int:
    """1: the daemon's first bytes came through (an NNG pipe sends its SP
    header at once); 0: not listening yet; -1: the remote end closed;
    -2: connected, no answer yet."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(max(0.01, wait))
        try:
            s.connect(path)
        except OSError:
            return 0
        try:
            return 1 if s.recv(8) else -1
        except socket.timeout:
            return -2
        except OSError:
            return -1
    finally:
        s.close()


def _ssh_err(path: str) -> str:
    """What ssh printed, on one line, minus the known-hosts chatter."""
    try:
        with open(path, "rb") as f:
            text = f.read()[-2048:].decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines()]
    return "; ".join(ln for ln in lines
                     if ln and not ln.startswith("Warning: Permanently added"))


def _cleanup(procs: list[subprocess.Popen[bytes]], path: str) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(1.0)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)  # one forward's socket
        except OSError:
            pass


class Tunnels:
    """The ssh forwards of one Client: control now, events on first use."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.ssh_url = url
        self.user, self.host, self.port, remote = parse_url(url)
        self.timeout = float(timeout)
        tmp = os.environ.get("TMPDIR") or "/tmp"
        if len(tmp) > 60:  # sun_path is ~108 bytes
            tmp = "/tmp"
        self.dir = tempfile.mkdtemp(prefix="neuroq-ssh-", dir=tmp)  # 0700
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._events: dict[str, str | None] = {}  # remote events URL -> local URL or None
        self._finalizer = weakref.finalize(self, _cleanup, self._procs, self.dir)
        try:
            self.control_url = self._forward(remote, "ctl.sock")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop ssh, remove the private directory (idempotent)."""
        self._finalizer()

    def events_url(self, remote_url: object) -> str | None:
        """The local URL forwarded to the daemon's events URL, or None when
        it cannot be forwarded (not ipc://, or ssh failed: Job.wait then
        polls status)."""
        if not (isinstance(remote_url, str) and remote_url.startswith("ipc://")):
            return None
        with self._lock:
            if remote_url not in self._events:
                try:
                    self._events[remote_url] = self._forward(
                        remote_url[len("ipc://"):], f"ev{len(self._events)}.sock")
                except errors.NeuroqError:
                    self._events[remote_url] = None
            return self._events[remote_url]

    def _forward(self, remote: str, name: str) -> str:
        local = os.path.join(self.dir, name)
        errpath = os.path.join(self.dir, name + ".err")
        argv = ssh_argv(self.user, self.host, self.port, remote, local, self.timeout)
        with open(errpath, "wb") as err:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err,
                                        close_fds=True, start_new_session=True)
            except OSError as e:
                raise self._fail(f"cannot run {argv[0]}: {e}") from None
        self._procs.append(proc)
        try:
            return self._wait_up(proc, remote, local, errpath)
        except BaseException:
            _cleanup([proc], local)  # this forward only; the dir stays
            raise

    def _wait_up(self, proc: subprocess.Popen[bytes], remote: str, local: str,
                 errpath: str) -> str:
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            pr = _probe(local, min(2.0, max(0.01, left)))
            if pr == 1:
                return "ipc://" + local
            rc = proc.poll()
            if rc is not None:
                raise self._fail(f"ssh to {self.host} failed (exit {rc}): "
                                 f"{_ssh_err(errpath) or 'no message'}")
            if pr == -1:
                time.sleep(0.1)  # let ssh say why
                raise self._fail(f"ssh to {self.host} is up but {remote} on "
                                 f"{self.host} did not answer (is neuroqd running there, "
                                 f"and may you open its socket?): "
                                 f"{_ssh_err(errpath) or 'connection closed'}")
            if time.monotonic() >= deadline:
                msg = _ssh_err(errpath)
                raise self._fail(f"the ssh tunnel to {self.host} did not come up "
                                 f"within {self.timeout:g} s" + (f": {msg}" if msg else ""),
                                 timed_out=True)
            if pr == 0:
                time.sleep(0.02)

    def _fail(self, msg: str, timed_out: bool = False) -> errors.NeuroqError:
        if timed_out:
            return errors.TimedOut(62, "ETIMEDOUT",
                                   f"cannot reach the daemon at {self.ssh_url}: {msg}")
        return errors.Unreachable(None, "EUNREACHABLE",
                                  f"cannot reach the daemon at {self.ssh_url}: {msg}")
