"""Multi-user safety end to end (issue 9): neuroqd runs as the unprivileged
service user nq-svc with only CAP_SETUID, CAP_SETGID and CAP_KILL (as
systemd/neuroqd.service starts it); lab members nq-alice and nq-bob (group
nq-svc) use the CLI as themselves. Each attack of the issue must fail, each
with a positive twin that must work: a job acts as its owner, the state dir
is out of reach, user paths are checked at submit as the owner.

Needs root (useradd, setpriv, runuser); skips otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CLI, NEUROQD, WORKER, _need_binaries

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spikesort"))
from gen_gt import FS, generate  # noqa: E402

N_CH = 8
SECRET = b"SECRET-OF-ALICE!"  # 16 bytes: one int16 x 8 sample
CAPS = "+setuid,+setgid,+kill"


def as_user(user, *argv, umask="022", timeout=300):
    """argv as user (runuser: their uid, gid and groups) with that umask."""
    return subprocess.run(["runuser", "-u", user, "--", "sh", "-c",
                           'umask "$0"; exec "$@"', umask, *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout)


class SvcDaemon:
    """neuroqd as nq-svc from a 0755 copy of the binaries."""

    def __init__(self, base, name, caps=True):
        self.base = Path(base)
        self.state = self.base / name
        self.run = self.base / (name + "-run")
        self.url = f"ipc://{self.run}/s.sock"
        self.events = f"ipc://{self.run}/e.sock"
        self.log_path = self.base / (name + ".log")
        self.caps = caps
        self.proc = None

    def start(self, users, retention_days=0, extra=""):
        uid, gid = users["nq-svc"]
        for d in (self.state, self.run):
            d.mkdir(mode=0o750, exist_ok=True)
            os.chown(d, uid, gid)
        conf = self.base / (self.state.name + ".conf")
        conf.write_text("cpu_slots = 1\nsocket_mode = 0660\n"
                        f"retention_days = {retention_days}\n" + extra)
        os.chmod(conf, 0o644)
        caps = []
        if self.caps:
            caps = ["--inh-caps", CAPS, "--ambient-caps", CAPS,
                    "--bounding-set", "-all," + CAPS]
        else:
            caps = ["--inh-caps", "-all", "--bounding-set", "-all"]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid", "nq-svc", "--regid", "nq-svc", "--init-groups",
             *caps, "--", str(self.base / "bin" / "neuroqd"), "--state-dir",
             str(self.state), "--listen", self.url, "--events", self.events,
             "--devices", "cpu", "--config", str(conf)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"neuroqd exited:\n{self.log_tail()}"
            if (self.run / "s.sock").exists() and self.cli("nq-alice", "version").returncode == 0:
                return self
            time.sleep(0.2)
        raise AssertionError(f"neuroqd did not start:\n{self.log_tail()}")

    def stop(self, sig=signal.SIGTERM, wait=30):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode if self.proc else None

    def log_tail(self, n=60):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def cli(self, user, *args, umask="022", timeout=300):
        return as_user(user, self.base / "bin" / "neuroq", "--url", self.url, *args,
                       umask=umask, timeout=timeout)

    def submit(self, user, params, umask="022", job_type="spikesort", extra=()):
        args = ["submit", job_type, *extra]
        for k, v in params.items():
            args += ["--param", f"{k}={v}"]
        return self.cli(user, *args, umask=umask)

    def state_of(self, user, job_id):
        r = self.cli(user, "--json", "status", job_id)
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout)
        return j.get("job", j)["state"]

    def wait(self, user, job_id, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state_of(user, job_id)
            if st in ("DONE", "FAILED", "CANCELED"):
                return st
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} still {st}:\n{self.log_tail()}")

    def worker_pids(self, job_id):
        want = str(self.state / "jobs" / str(job_id)).encode()
        pids = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                args = (p / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"neuroq-worker") and want in args and b"run" in args:
                pids.append(int(p.name))
        return pids


def tree_hashes(root):
    """path -> (kind, mode, uid, sha256 or link target) of everything under root."""
    out = {}
    root = Path(root)
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(dirpath) / n
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                v = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                v = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                v = None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_mode & 0o7777,
                                              st.st_uid, v)
    return out


def sort_params(rec, out=None, **kw):
    p = {"recording": rec, "n_channels": N_CH, "sample_rate": FS, "seed": 1}
    if out is not None:
        p["output_dir"] = out
    p.update(kw)
    return p


@pytest.fixture(scope="module")
def lab(service_users):
    """A 0755 base with the binaries, homes for alice and bob, alice's 0600
    recording, and the daemon as nq-svc; alice's first job (a sort into her
    own folder with umask 027) has run to DONE. Everything goes afterwards,
    also when this setup fails half-way."""
    _need_binaries()
    base = Path(tempfile.mkdtemp(prefix="nq-mu-", dir="/tmp"))
    daemons = []
    try:
        yield _lab_setup(service_users, base, daemons)
    finally:
        for d in daemons:  # its workers die with it (PR_SET_PDEATHSIG)
            d.stop()
        shutil.rmtree(base, ignore_errors=True)


def _lab_setup(users, base, daemons):
    os.chmod(base, 0o755)
    (base / "bin").mkdir(mode=0o755)
    for b in (NEUROQD, WORKER, CLI):
        shutil.copy2(b, base / "bin" / b.name)
        os.chmod(base / "bin" / b.name, 0o755)
    homes = {}
    for u in ("nq-alice", "nq-bob"):
        h = base / u
        h.mkdir(mode=0o755)
        os.chown(h, *users[u])
        homes[u] = h
    rec = homes["nq-alice"] / "rec.bin"
    generate(str(rec), n_channels=N_CH, n_units=3, duration_s=6.0, seed=5)
    os.chown(rec, *users["nq-alice"])
    os.chmod(rec, 0o600)
    secret = homes["nq-alice"] / "notes.txt"
    secret.write_bytes(SECRET * 64)
    os.chown(secret, *users["nq-alice"])
    os.chmod(secret, 0o644)
    d = SvcDaemon(base, "state")
    daemons.append(d)
    d.start(users)
    lab = {"base": base, "d": d, "homes": homes, "rec": rec, "secret": secret,
           "users": users}
    # alice's own sort, into her own folder, umask 027
    out = homes["nq-alice"] / "phy1"
    r = d.submit("nq-alice", sort_params(rec, out), umask="027")
    assert r.returncode == 0, r.stderr + d.log_tail()
    lab["job_a"] = int(r.stdout.split()[0])
    lab["out_a"] = out
    # and a gsn job of hers: a spool with in/ and out/
    data = homes["nq-alice"] / "data.npy"
    np.save(data, np.random.default_rng(0).standard_normal((6, 10, 3)))
    os.chown(data, *users["nq-alice"])
    r = d.cli("nq-alice", "submit", "gsn", "--data", data)
    assert r.returncode == 0, r.stderr + d.log_tail()
    lab["job_g"] = int(r.stdout.split()[0])
    assert d.wait("nq-alice", lab["job_a"]) == "DONE", d.log_tail()
    assert d.wait("nq-alice", lab["job_g"]) == "DONE", d.log_tail()
    return lab


def refused(r, *words):
    assert r.returncode != 0, f"accepted: {r.stdout}"
    for w in words:
        assert w in r.stderr, f"{w!r} not in {r.stderr!r}"
    assert "SECRET" not in r.stderr + r.stdout


# ---- a job acts as its owner


def test_own_job_files_are_the_owners(lab):
    """alice's phy folder: her files, her umask (027: 0640), she can edit
    and delete them (phy saves curation there)."""
    out = lab["out_a"]
    uid = lab["users"]["nq-alice"][0]
    files = [p for p in out.iterdir()]
    assert any(p.name == "params.py" for p in files), [p.name for p in files]
    for p in files:
        st = p.lstat()
        assert st.st_uid == uid, (p, st.st_uid)
        if stat.S_ISREG(st.st_mode):
            assert st.st_mode & 0o777 == 0o640, (p, oct(st.st_mode))
    r = as_user("nq-alice", "sh", "-c", f"echo '# curated' >> {out}/params.py && "
                f"rm {out}/spike_clusters.npy && mkdir {out}/.phy_saved")
    assert r.returncode == 0, r.stderr
    st = lab["d"].state
    # the worker ran as alice: her job's log says so
    assert f"owner uid={uid} umask=027" in (st / "jobs" / str(lab["job_a"]) / "log").read_text()


def test_other_users_recording_refused(lab):
    """bob sorts alice's 0600 recording: refused at submit, permission
    denied for `recording`, no job and none of her data."""
    out = lab["homes"]["nq-bob"] / "steal"
    r = lab["d"].submit("nq-bob", sort_params(lab["rec"], out))
    refused(r, "recording", "ermission denied")
    assert not out.exists()


def test_other_users_recording_positive_twin(lab):
    """... whereas alice may (checked at submit: it is queued)."""
    r = lab["d"].submit("nq-alice", sort_params(lab["rec"], lab["homes"]["nq-alice"] / "phy2"))
    assert r.returncode == 0, r.stderr
    job = r.stdout.split()[0]
    lab["d"].cli("nq-alice", "cancel", job)
    assert lab["d"].wait("nq-alice", job) in ("CANCELED", "DONE")


def test_recording_into_the_spool_refused(lab):
    """bob's recording/probe reach into alice's job dir by `..` and by a
    symlink: refused at submit."""
    d, bob = lab["d"], lab["homes"]["nq-bob"]
    target = d.state / "jobs" / str(lab["job_g"]) / "in" / "data.npy"
    dotdot = Path(str(bob) + "/.." * len(bob.parts[1:])) / str(target).lstrip("/")
    link = bob / "link.bin"
    link.symlink_to(target)
    os.lchown(link, *lab["users"]["nq-bob"])
    before = tree_hashes(d.state / "jobs")
    for path in (dotdot, link):
        r = d.submit("nq-bob", sort_params(path, bob / "o"))
        refused(r, "recording")
        r = d.submit("nq-bob", sort_params(lab["rec"].with_name("nope.bin"), bob / "o",
                                           probe=path))
        refused(r)
    # the probe alone (bob's own recording)
    own = bob / "rec.bin"
    shutil.copy(lab["rec"], own)
    os.chown(own, *lab["users"]["nq-bob"])
    for path in (dotdot, link):
        r = d.submit("nq-bob", sort_params(own, bob / "o", probe=path))
        refused(r, "probe")
    assert tree_hashes(d.state / "jobs") == before


def test_output_dir_into_the_spool_refused(lab):
    """bob's output_dir = alice's job's out/ or in/, the spool, the state
    dir or the socket dir, by `..` and by symlink: refused at submit,
    nothing changed there."""
    d, bob = lab["d"], lab["homes"]["nq-bob"]
    own = bob / "rec.bin"
    if not own.exists():
        shutil.copy(lab["rec"], own)
        os.chown(own, *lab["users"]["nq-bob"])
    jd = d.state / "jobs" / str(lab["job_g"])
    targets = [jd / "out", jd / "in", d.state / "jobs" / str(lab["job_a"]), d.state, d.run]
    before = tree_hashes(d.state)
    before.pop("neuroq.db-wal", None)
    up = "/.." * len(bob.parts[1:])
    for i, t in enumerate(targets):
        link = bob / f"out-link-{i}"
        link.symlink_to(t)
        os.lchown(link, *lab["users"]["nq-bob"])
        for path in (Path(str(bob) + up + str(t)), link):
            r = d.submit("nq-bob", sort_params(own, path))
            refused(r, "output_dir")
    after = tree_hashes(d.state)
    after.pop("neuroq.db-wal", None)
    for k in ("neuroq.db", "neuroq.db-shm"):
        before.pop(k, None)
        after.pop(k, None)
    assert after == before


def test_bad_output_dir_fails_at_submit(lab):
    """A folder the owner cannot write: refused at submit, not after the
    sort (the positive twin is alice's first job)."""
    d = lab["d"]
    ro = lab["homes"]["nq-bob"] / "ro"
    ro.mkdir(exist_ok=True)
    os.chown(ro, *lab["users"]["nq-bob"])
    os.chmod(ro, 0o755)
    t0 = time.monotonic()
    r = d.submit("nq-alice", sort_params(lab["rec"], ro))
    refused(r, "output_dir")
    r = d.submit("nq-alice", sort_params(lab["rec"], ro / "sub"))
    refused(r, "output_dir")
    assert time.monotonic() - t0 < 30
    assert list(ro.iterdir()) == []


def test_output_dir_required_as_another_user(lab):
    """No output_dir: the phy folder would go into the spool, which only
    the service user can enter: refused, with what to do."""
    r = lab["d"].submit("nq-alice", sort_params(lab["rec"]))
    refused(r, "output_dir is required")


def test_planted_symlink_in_own_output_dir(lab):
    """bob plants symlinks at names the phy writer makes, pointing at
    alice's file and at the job database: both unchanged, bob's job writes
    its own files."""
    d, bob = lab["d"], lab["homes"]["nq-bob"]
    own = bob / "rec.bin"
    if not own.exists():
        shutil.copy(lab["rec"], own)
        os.chown(own, *lab["users"]["nq-bob"])
    out = bob / "phy-planted"
    out.mkdir()
    os.chown(out, *lab["users"]["nq-bob"])
    for name, target in (("params.py", lab["secret"]),
                         ("spike_times.npy", d.state / "neuroq.db"),
                         ("params.py.tmp", lab["secret"])):
        (out / name).symlink_to(target)
        os.lchown(out / name, *lab["users"]["nq-bob"])
    secret_before = lab["secret"].read_bytes()
    r = d.submit("nq-bob", sort_params(own, out))
    assert r.returncode == 0, r.stderr
    job = r.stdout.split()[0]
    assert d.wait("nq-bob", job) == "DONE", d.log_tail()
    assert lab["secret"].read_bytes() == secret_before
    assert not (out / "params.py").is_symlink()
    assert (out / "params.py").lstat().st_uid == lab["users"]["nq-bob"][0]
    # the database is intact: the daemon still answers for alice's job
    assert d.state_of("nq-alice", lab["job_a"]) == "DONE"


# ---- the state dir is the service's


def test_state_is_private(lab):
    d = lab["d"]
    assert d.state.stat().st_mode & 0o7777 == 0o700
    assert (d.state / "jobs").stat().st_mode & 0o7777 == 0o700
    for n in ("neuroq.db", "neuroq.db-wal", "neuroq.db-shm"):
        p = d.state / n
        if p.exists():
            assert p.stat().st_mode & 0o777 == 0o600, n
    jd = d.state / "jobs" / str(lab["job_g"])
    assert jd.stat().st_mode & 0o7777 == 0o2770
    assert jd.stat().st_gid == lab["users"]["svc_gid"]
    assert (jd / "params.mp").stat().st_mode & 0o777 == 0o640
    for u in ("nq-alice", "nq-bob"):
        for p in (jd / "params.mp", jd / "out" / "result.json", d.state / "neuroq.db"):
            r = as_user(u, "cat", p)
            assert r.returncode != 0 and "ermission denied" in r.stderr, (u, p)
        assert as_user(u, "ls", d.state / "jobs").returncode != 0


def test_daemon_without_setuid_refuses_other_users(lab):
    """A daemon that cannot become the owner refuses her job with EPERM
    and says why."""
    d2 = SvcDaemon(lab["base"], "nocaps", caps=False).start(lab["users"])
    try:
        r = d2.cli("nq-alice", "submit", "gsn", "--data", lab["homes"]["nq-alice"] / "data.npy")
        refused(r, "CAP_SETUID")
    finally:
        d2.stop()


# ---- cancel and drain reach a worker that is the owner


def _running_worker(d, job, uid):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = d.worker_pids(job)
        if pids:
            status = Path(f"/proc/{pids[0]}/status").read_text()
            uids = [ln for ln in status.splitlines() if ln.startswith("Uid:")][0].split()[1:]
            if all(int(x) == uid for x in uids):
                return pids[0]
        time.sleep(0.05)
    raise AssertionError(f"no worker of job {job} as uid {uid}:\n{d.log_tail()}")


def test_cancel_and_drain_of_owners_worker(lab):
    """alice's running job: its worker is her uid; cancel works (the daemon
    signals it with CAP_KILL), and a drain (SIGTERM) requeues it."""
    d = lab["d"]
    uid = lab["users"]["nq-alice"][0]
    r = d.submit("nq-alice", sort_params(lab["rec"], lab["homes"]["nq-alice"] / "phy-c"))
    assert r.returncode == 0, r.stderr
    job = r.stdout.split()[0]
    pid = _running_worker(d, job, uid)
    os.kill(pid, signal.SIGSTOP)  # hold it: it must still be running when canceled
    try:
        r = d.cli("nq-alice", "cancel", job)
        assert r.returncode == 0, r.stderr
    finally:
        os.kill(pid, signal.SIGCONT)
    assert d.wait("nq-alice", job, timeout=60) == "CANCELED", d.log_tail()

    r = d.submit("nq-alice", sort_params(lab["rec"], lab["homes"]["nq-alice"] / "phy-d"))
    assert r.returncode == 0, r.stderr
    job = r.stdout.split()[0]
    pid = _running_worker(d, job, uid)
    os.kill(pid, signal.SIGSTOP)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    os.kill(pid, signal.SIGCONT)
    assert d.proc.wait(30) == 0, d.log_tail()
    assert f"job requeued id={job} reason=drain" in d.log_tail(200)
    d.start(lab["users"])
    assert d.wait("nq-alice", job) == "DONE", d.log_tail()


def test_retention_removes_owner_made_files(lab):
    """Retention (as nq-svc) removes a job dir whose files the owner's
    worker made (group-writable dirs of the service group)."""
    import sqlite3

    d = lab["d"]
    job = lab["job_g"]
    jd = d.state / "jobs" / str(job)
    uid = lab["users"]["nq-alice"][0]
    assert any(p.lstat().st_uid == uid for p in jd.rglob("*")), "no file of alice's"
    assert d.stop() == 0, d.log_tail()
    db = sqlite3.connect(d.state / "neuroq.db")
    db.execute("UPDATE jobs SET finished_us = 1 WHERE id = ?", (job,))
    db.commit()
    db.close()
    d.start(lab["users"], retention_days=1)
    deadline = time.monotonic() + 20
    while jd.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not jd.exists(), d.log_tail()
    assert "cannot remove" not in d.log_tail(200)
    assert d.state_of("nq-alice", job) == "DONE"


def _children(pid):
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            st = (p / "stat").read_text()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(p.name))
    return out


def test_hung_check_times_out_and_drain_waits(lab):
    """A check that hangs (a worker_path whose `check` never answers) is
    ended after 20 s with ETIMEDOUT and its staging removed; a SIGTERM
    meanwhile waits for it, answers the submit and stops cleanly."""
    base, bob = lab["base"], lab["homes"]["nq-bob"]
    slow = base / "bin" / "slow-worker"
    slow.write_text('#!/bin/sh\nif [ "$1" = check ]; then exec sleep 60; fi\n'
                    'exec "$(dirname "$0")/neuroq-worker" "$@"\n')
    os.chmod(slow, 0o755)
    d = SvcDaemon(base, "slow").start(lab["users"], extra=f"worker_path = {slow}\n")
    try:
        own = bob / "rec.bin"
        if not own.exists():
            shutil.copy(lab["rec"], own)
            os.chown(own, *lab["users"]["nq-bob"])
        args = ["runuser", "-u", "nq-bob", "--", str(base / "bin" / "neuroq"), "--url", d.url,
                "--timeout", "60", "submit", "spikesort"]
        for k, v in sort_params(own, bob / "o-hang").items():
            args += ["--param", f"{k}={v}"]
        sub = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not _children(d.proc.pid):
            assert time.monotonic() < deadline and sub.poll() is None, sub.communicate()
            time.sleep(0.05)
        assert list((d.state / "jobs").glob(".new-*"))  # staged, being checked
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        out, err = sub.communicate(timeout=60)
        assert sub.returncode != 0 and "ETIMEDOUT" in err, (out, err)
        assert d.proc.wait(30) == 0, d.log_tail()
        assert 15 < time.monotonic() - t0 < 40
        assert not list((d.state / "jobs").glob(".new-*"))
    finally:
        d.stop()
