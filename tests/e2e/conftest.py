"""End-to-end fixtures: the real neuroqd on an ipc:// socket in a temp dir.

Binaries come from $NEUROQ_BUILD (default: the repository's build/):
daemon/neuroqd, daemon/neuroq-worker, client/neuroq.
When NEUROQ_BUILD is set and a binary is missing the tests fail; without it
they skip (nothing was built).
"""

from __future__ import annotations

import json
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import numpy as np
import pynng
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "client" / "python"))
sys.path.insert(0, str(REPO / "tests" / "common"))

import neuroq  # noqa: E402
from nq_build import build_dir, require  # noqa: E402

BUILD = build_dir()
NEUROQD = BUILD / "daemon" / "neuroqd"
WORKER = BUILD / "daemon" / "neuroq-worker"
CLI = BUILD / "client" / "neuroq"
START_TIMEOUT = 20.0

TERMINAL = ("DONE", "FAILED", "CANCELED")
GSN_ARRAYS = ("mnN", "mnS", "ncsnr", "cN", "cS", "cNb", "cSb")
GSN_SCALARS = ("shrinklevelN", "shrinklevelD", "numiters")
# a gsn job that runs for a while (~1-5 s on one core, however loaded the box):
# still RUNNING when Frozen stops its worker, so a queue builds up behind it
LONG_JOB = (1500, 60, 4)


def _need_binaries():
    require(NEUROQD, WORKER, CLI)


# ---- data


def make_data(n, c, t, seed=0, rank=3):
    """Low-rank signal plus unit noise, units x conditions x trials (f8)."""
    rng = np.random.default_rng(seed)
    k = max(1, min(rank, n))
    u = rng.standard_normal((n, k)) / np.sqrt(k)
    z = rng.standard_normal((k, c))
    return np.ascontiguousarray((u @ z)[:, :, None] + rng.standard_normal((n, c, t)))


# ---- the daemon


class Daemon:
    """One neuroqd process on a private state dir."""

    def __init__(self, state_dir, cpu_slots=1, conf=None, world=False, devices="cpu"):
        self.dir = Path(state_dir)
        # the daemon keeps its state dir 0700 (issue 9): for other users the
        # sockets and the CLI copy stay in the 0755 dir, the state below it
        self.state = self.dir / "state" if world else self.dir
        self.devices = devices  # None: every device the daemon finds
        self.url = f"ipc://{self.dir}/s.sock"
        self.events = f"ipc://{self.dir}/e.sock"
        self.conf_path = self.dir / "neuroqd.conf"
        self.log_path = self.dir / "daemon.log"
        self.conf = {"cpu_slots": cpu_slots}
        if world:
            self.conf["socket_mode"] = "0666"
        self.conf.update(conf or {})
        self.proc = None
        self._log = None

    def start(self):
        self.conf_path.write_text("".join(f"{k} = {v}\n" for k, v in self.conf.items()))
        self._log = open(self.log_path, "ab")
        dev = ["--devices", self.devices] if self.devices else []
        self.proc = subprocess.Popen(
            [str(NEUROQD), "--state-dir", str(self.state), "--listen", self.url,
             "--events", self.events, *dev, "--config", str(self.conf_path)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"neuroqd exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with neuroq.Client(self.url, timeout=2) as c:
                    c.hello()
                    return self
            except neuroq.NeuroqError as e:
                last = e
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"neuroqd did not answer hello in {START_TIMEOUT} s ({last}):\n"
                           f"{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def kill(self):
        """SIGKILL, as a crash: no chance to clean up."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(15)
        self._close_log()

    def _close_log(self):
        if self._log:
            self._log.close()
            self._log = None

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def client(self, timeout=30):
        return neuroq.Client(self.url, timeout=timeout, events_url=self.events)

    def cli_path(self, user=None):
        """The CLI binary; for another uid a copy in this daemon's (world
        readable) state dir, since the build tree may sit under a 0700
        directory (a `mktemp -d` clone) that other users cannot enter."""
        if user is None:
            return CLI
        copy = Path(self.dir) / "neuroq-cli"
        if not copy.exists():
            shutil.copy2(CLI, copy)
            os.chmod(copy, 0o755)
        return copy

    def cli(self, *args, timeout=120, user=None):
        """Run the CLI against this daemon; returns CompletedProcess (text)."""
        return subprocess.run([str(self.cli_path(user)), "--url", self.url,
                               *map(str, args)],
                              capture_output=True, text=True, timeout=timeout,
                              user=user)


def _state_dir(world=False):
    # ipc paths are limited to ~100 bytes: a short dir under /tmp, not
    # pytest's long per-test paths
    d = tempfile.mkdtemp(prefix="nq-e2e-", dir="/tmp")
    if world:
        os.chmod(d, 0o755)
    return d


@pytest.fixture
def daemon_factory(request):
    """daemon_factory(cpu_slots=1, conf=None, world=False) -> started Daemon
    (stopped and removed at teardown; its log is shown when the test fails)."""
    _need_binaries()
    made = []

    def make(cpu_slots=1, conf=None, world=False, start=True, devices="cpu"):
        d = Daemon(_state_dir(world), cpu_slots=cpu_slots, conf=conf, world=world,
                   devices=devices)
        made.append(d)
        return d.start() if start else d

    yield make
    failed = getattr(request.node, "rep_call", None)
    for d in made:
        if failed is not None and failed.failed:
            sys.stderr.write(f"--- neuroqd log {d.log_path}\n{d.log_tail(80)}\n")
        discard(d)


def discard(d):
    """Stop a test's daemon, kill workers it left behind, remove its state."""
    d.stop()
    _reap_workers(d)
    shutil.rmtree(d.dir, ignore_errors=True)


def _reap_workers(d):
    """A worker a failed test left stopped (SIGSTOP) must not outlive it."""
    for p in worker_pids(d.state):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def daemon(daemon_factory):
    """A fresh daemon, one cpu slot."""
    return daemon_factory()


@pytest.fixture(scope="module")
def shared_daemon():
    """One daemon for a whole module (tests that do not disturb each other)."""
    _need_binaries()
    d = Daemon(_state_dir(), cpu_slots=2)
    d.start()
    yield d
    discard(d)


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skips without one)")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# ---- raw requests (bytes the client would never send)


def raw_call(d, body, timeout=10):
    """Send raw bytes to daemon d on a fresh REQ socket; the decoded reply,
    or None when the daemon dropped the message (no reply in time)."""
    with pynng.Req0(recv_timeout=timeout * 1000, send_timeout=timeout * 1000) as s:
        s.recv_max_size = 0
        s.dial(d.url, block=True)
        s.send(body)
        try:
            raw = s.recv()
        except pynng.Timeout:
            return None
    return msgpack.unpackb(raw, raw=False)


def pack(m):
    """A request map as msgpack bytes."""
    return msgpack.packb(m, use_bin_type=True)


def wire_array(a):
    """An array as the wire's array map, written out by hand (not by the
    client's encode_array: these tests check the daemon, not the client)."""
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


# ---- the worker, run by hand (the oracle for "the daemon changed nothing")


def make_job_dir(jd, data, params=None):
    """A job dir as the daemon stages it: params.mp, in/data.npy, out/, ckpt/."""
    jd = Path(jd)
    (jd / "in").mkdir(parents=True)
    (jd / "out").mkdir()
    (jd / "ckpt").mkdir()
    (jd / "params.mp").write_bytes(msgpack.packb(params or {}, use_bin_type=True))
    np.save(jd / "in" / "data.npy", np.ascontiguousarray(data, dtype="<f8"))
    return jd


def run_worker(data, params=None, job_type="gsn", timeout=300):
    """neuroq-worker run on a hand-made job dir; returns its outputs dict."""
    _need_binaries()
    with tempfile.TemporaryDirectory(prefix="nq-w-", dir="/tmp") as d:
        jd = make_job_dir(d, data, params)
        r = subprocess.run([str(WORKER), "run", "--type", job_type, "--dir", str(jd),
                            "--device", "cpu"], capture_output=True, text=True,
                           timeout=timeout)
        err = (jd / "error").read_text() if (jd / "error").exists() else ""
        assert r.returncode == 0, f"worker exit {r.returncode}: {err}\n{r.stderr[-2000:]}"
        return read_out_dir(jd / "out")


def read_out_dir(out):
    """*.npy + result.json of a result folder (worker's out/ or CLI --out)."""
    out = Path(out)
    res = {p.stem: np.load(p) for p in sorted(out.glob("*.npy"))}
    if (out / "result.json").exists():
        res.update(json.loads((out / "result.json").read_text()))
    return res


# ---- checks


def assert_same_result(a, b, names=GSN_ARRAYS + GSN_SCALARS, rtol=1e-12):
    """Equal up to rounding (the same program on the same data)."""
    for k in names:
        assert k in a and k in b, f"{k} missing ({sorted(a)} vs {sorted(b)})"
        x, y = a[k], b[k]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            x, y = np.asarray(x), np.asarray(y)
            assert x.shape == y.shape, f"{k}: shape {x.shape} != {y.shape}"
            scale = max(1.0, float(np.max(np.abs(y))) if y.size else 1.0)
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * scale, err_msg=k)
        else:
            assert x == y, f"{k}: {x} != {y}"


def _shrink(c, a):
    return a * c + (1 - a) * np.diag(np.diag(c))


def assert_gsn_sane(res, data):
    """Independent checks of a gsn result against numpy (spec §2.4-2.8)."""
    n, c, t = data.shape
    for k in ("cN", "cS", "cNb", "cSb"):
        assert res[k].shape == (n, n), k
        assert res[k].dtype == np.float64, k
        np.testing.assert_allclose(res[k], res[k].T, atol=1e-12 * max(1, np.abs(res[k]).max()))
    assert res["mnN"].shape == (1, n) and res["mnS"].shape == (1, n)
    assert res["ncsnr"].shape == (n,)
    aN, aD = float(res["shrinklevelN"]), float(res["shrinklevelD"])
    assert 0.0 <= aN <= 1.0 and 0.0 <= aD <= 1.0
    assert int(res["numiters"]) == res["numiters"] and 0 <= res["numiters"] <= 100
    # levels come from linspace(0, 1, 51) by default
    assert abs(aN * 50 - round(aN * 50)) < 1e-9 and abs(aD * 50 - round(aD * 50)) < 1e-9
    # noise: pooled within-condition covariance, shrunk at the chosen level
    e = data - data.mean(axis=2, keepdims=True)
    e2 = e.reshape(n, c * t)
    pooled = e2 @ e2.T / ((t - 1) * c)
    tol = 1e-9 * max(1.0, np.abs(pooled).max())
    np.testing.assert_allclose(res["cN"], _shrink(pooled, aN), atol=tol, rtol=0, err_msg="cN")
    # data: covariance of condition means; signal = data - noise / T
    means = data.mean(axis=2).T  # C x N
    cd = _shrink(np.atleast_2d(np.cov(means, rowvar=False)), aD)
    np.testing.assert_allclose(res["cS"], cd - res["cN"] / t, atol=tol, rtol=0, err_msg="cS")
    np.testing.assert_allclose(res["mnS"], means.mean(axis=0, keepdims=True), atol=tol, rtol=0)
    assert np.all(res["mnN"] == 0)
    dS, dN = np.diag(res["cS"]), np.diag(res["cN"])
    want = np.where(dN > 0, np.sqrt(np.maximum(dS, 0)) / np.sqrt(np.where(dN > 0, dN, 1)), 0)
    np.testing.assert_allclose(res["ncsnr"], want, rtol=1e-9, atol=1e-12, err_msg="ncsnr")
    # final covariances are PSD
    for k in ("cSb", "cNb"):
        w = np.linalg.eigvalsh(res[k])
        assert w.min() >= -1e-9 * max(1.0, abs(w).max()), f"{k} not PSD: {w.min()}"
    # closed form of the biconvex step (spec §2.8): cSb = P+(cS)
    w, v = np.linalg.eigh(res["cS"])
    pplus = (v * np.maximum(w, 0)) @ v.T
    np.testing.assert_allclose(res["cSb"], pplus, atol=1e-8 * max(1.0, np.abs(pplus).max()),
                               rtol=0, err_msg="cSb vs P+(cS)")
    # ... and, when the noise argument stays PD, cNb = cN - wD*T*|P-(cS)|
    # and numiters is 0 or 1 by the convergence test of the first pass
    wd = (c - 1) / (c * t * t * (t - 1) + c - 1)
    noise_arg = res["cN"] + wd * t * ((v * np.minimum(w, 0)) @ v.T)
    if n > 1 and np.linalg.eigvalsh(noise_arg).min() > 1e-8 * max(1.0, np.abs(noise_arg).max()):
        np.testing.assert_allclose(res["cNb"], noise_arg,
                                   atol=1e-8 * max(1.0, np.abs(noise_arg).max()), rtol=0,
                                   err_msg="cNb vs closed form")

        def r(a, b):
            return np.corrcoef(a.ravel(), b.ravel())[0, 1]

        converged = r(res["cS"], pplus) > 0.999 and r(res["cN"], noise_arg) > 0.999
        assert res["numiters"] == (0 if converged else 1)


def worker_pids(state_dir, job_id=None):
    """pids of neuroq-worker processes of this state dir (of one job)."""
    jobs = str(Path(state_dir) / "jobs").encode() + b"/"
    want = None if job_id is None else jobs + str(job_id).encode()
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            args = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not args or not args[0].endswith(b"neuroq-worker"):
            continue
        if any(a.startswith(jobs) and (want is None or a.rstrip(b"/") == want) for a in args):
            pids.append(int(p.name))
    return pids


class Frozen:
    """Hold a running job's worker stopped (SIGSTOP), so a queue builds up
    behind it however fast this machine is; thaw() lets it go on."""

    def __init__(self, daemon, client, job_id):
        wait_state(client, job_id, ("RUNNING",), timeout=30)
        deadline = time.monotonic() + 10
        while not (pids := worker_pids(daemon.state, job_id)):
            assert time.monotonic() < deadline, f"no worker process found for job {job_id}"
            time.sleep(0.02)
        self.pids = pids
        for p in pids:
            os.kill(p, signal.SIGSTOP)

    def thaw(self):
        for p in self.pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass


def wait_state(client, job_id, states, timeout=60, poll=0.05):
    """Poll status until the job is in one of `states`; returns the job map."""
    deadline = time.monotonic() + timeout
    while True:
        j = client.status(job_id)
        if j["state"] in states:
            return j
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {j['state']} after {timeout} s "
                                 f"(wanted {states})")
        time.sleep(poll)


def wait_all(client, ids, timeout=120, poll=0.2):
    """Wait until every job ended; returns {id: job map}. Fails when no job
    ended for `timeout` seconds (a stall), not on a slow but moving queue:
    this machine's two cores are shared."""
    pending = set(ids)
    final = {}
    deadline = time.monotonic() + timeout
    while pending:
        for j in client.jobs(all_users=True, limit=0):
            if j["id"] in pending and j["state"] in TERMINAL:
                final[j["id"]] = j
                pending.discard(j["id"])
                deadline = time.monotonic() + timeout
        if not pending:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} jobs not ended, none for {timeout} s")
        time.sleep(poll)
    return final


# ---- real users against a daemon run as an unprivileged service user (issue 9)

SVC_USER = "nq-svc"
LAB_USERS = ("nq-alice", "nq-bob")


def _sh_ok(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True).returncode == 0


@contextlib.contextmanager
def unix_groups(*names):
    """Real Unix groups, made when missing and removed afterwards when made
    here. Needs root (skips otherwise). Yields {name: grp entry}."""
    import grp

    if os.geteuid() != 0 or shutil.which("groupadd") is None:
        pytest.skip("needs root and groupadd to make real groups")
    made = []
    try:
        for g in names:
            try:
                grp.getgrnam(g)
            except KeyError:
                if not _sh_ok("groupadd", g):
                    pytest.skip(f"groupadd {g} failed")
                made.append(g)
        yield {g: grp.getgrnam(g) for g in names}
    finally:
        for g in reversed(made):
            _sh_ok("groupdel", g)


@contextlib.contextmanager
def unix_users(*names, groups=(), shell="/usr/sbin/nologin"):
    """Real Unix users (own group each, no home, the login `shell`, members
    of the supplementary `groups`, which are made when missing), made when
    missing and removed afterwards when made here; a user an earlier run
    left behind is reused and put into `groups`. Needs root (skips
    otherwise). Yields {name: pwd entry}."""
    import pwd

    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to make real users")
    made = []
    with unix_groups(*groups):
        try:
            for u in names:
                try:
                    pwd.getpwnam(u)
                    for g in groups:
                        _sh_ok("gpasswd", "-a", u, g)
                except KeyError:
                    extra = ["-G", ",".join(groups)] if groups else []
                    if not _sh_ok("useradd", "--user-group", "-M", "-d", "/nonexistent",
                                  "-s", shell, *extra, u):
                        pytest.skip(f"useradd {u} failed")
                    made.append(u)
            yield {u: pwd.getpwnam(u) for u in names}
        finally:
            for u in reversed(made):
                _sh_ok("userdel", u)
                _sh_ok("groupdel", u)  # its own group, when userdel left it


def client_copy_for_all(dest):
    """A copy of the Python client at dest/neuroq that every user can read
    (the checkout may sit under a 0700 dir); returns dest."""
    dest = Path(dest)
    if not (dest / "neuroq").exists():
        shutil.copytree(REPO / "client" / "python" / "neuroq", dest / "neuroq")
        subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    return dest


def python_for(user, env, pkg=None):
    """(python, env): a Python that `user` can run with numpy, msgpack and
    pynng (and `neuroq` from the dir `pkg`, when given): ours, else the
    system's of the same version with our site-packages on PYTHONPATH (a
    virtualenv's base interpreter may sit under root's 0700 home). Skips
    when neither works."""
    paths = sorted({str(Path(m.__file__).resolve().parents[1]) for m in (np, msgpack, pynng)})
    front = [str(pkg)] if pkg is not None else []
    probe = "import numpy, msgpack, pynng" + (", neuroq" if pkg is not None else "")
    tried = []
    for exe in (sys.executable, f"/usr/bin/python3.{sys.version_info.minor}"):
        e = {**env, "PYTHONPATH": os.pathsep.join([*front, *paths])}
        try:
            r = subprocess.run([exe, "-c", probe], user=user, env=e, capture_output=True,
                               text=True, timeout=60)
        except OSError as err:
            tried.append(f"{exe}: {err}")
            continue
        if r.returncode == 0:
            return exe, e
        tried.append(f"{exe}: {r.stderr.strip()[-200:]}")
    pytest.skip(f"no Python with numpy/msgpack/pynng that {user} may run: {tried}")


@pytest.fixture(scope="module")
def service_users():
    """The service user nq-svc (its own group) and lab users nq-alice and
    nq-bob in group nq-svc, made when missing (as root; skips otherwise) and
    removed afterwards when this fixture made them. Yields
    {name: (uid, gid)} plus "svc_gid"."""
    if os.geteuid() != 0:
        pytest.skip("needs root (useradd, a daemon run as another user)")
    if shutil.which("setpriv") is None or shutil.which("runuser") is None:
        pytest.skip("needs setpriv and runuser (util-linux)")
    made = []
    try:
        yield _service_users_make(made)
    finally:
        for u in reversed(made):
            _sh_ok("userdel", u)
            _sh_ok("groupdel", u)  # its own group, when userdel left it


def _service_users_make(made):
    import grp
    import pwd

    try:
        pwd.getpwnam(SVC_USER)
    except KeyError:
        if not _sh_ok("useradd", "--system", "--user-group", "-M", "-s",
                      "/usr/sbin/nologin", SVC_USER):
            pytest.skip("useradd failed")
        made.append(SVC_USER)
    for u in LAB_USERS:
        try:
            pwd.getpwnam(u)
        except KeyError:
            if not _sh_ok("useradd", "--user-group", "-M", "-s", "/usr/sbin/nologin",
                          "-G", SVC_USER, u):
                pytest.skip("useradd failed")
            made.append(u)
        if SVC_USER not in [g.gr_name for g in grp.getgrall() if u in g.gr_mem]:
            _sh_ok("usermod", "-aG", SVC_USER, u)
    out = {"svc_gid": grp.getgrnam(SVC_USER).gr_gid}
    for u in (SVC_USER, *LAB_USERS):
        pw = pwd.getpwnam(u)
        out[u] = (pw.pw_uid, pw.pw_gid)
    return out
