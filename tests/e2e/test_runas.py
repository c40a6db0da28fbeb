"""neuroq-worker as the job's owner (issue 9): `check` and `run --owner` by
hand, on job dirs laid out the way the daemon's spool is, as root with two
test users. What a job may open is what its owner may open; no user path
leads into the service's directories; a planted symlink is never followed.

Needs root (useradd, setuid); skips otherwise.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import msgpack
import numpy as np
import pytest

from conftest import WORKER, _need_binaries, unix_groups, unix_users

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spikesort"))
from gen_gt import FS, generate  # noqa: E402

USERS = ("nq-own-a", "nq-own-b")
GROUP = "nq-own-svc"
N_CH = 8
SECRET = b"SECRET-OF-B-0123"  # 16 bytes: a whole int16 × 8 sample

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root (useradd, setuid)")


@pytest.fixture(scope="module")
def world():
    """Users A and B, the service group, a 0755 base with the worker copied
    in (the build tree may sit under a 0700 dir), a 0700 "state dir"."""
    _need_binaries()
    with unix_groups(GROUP), unix_users(*USERS):
        yield from _world()


def _world():
    base = Path(tempfile.mkdtemp(prefix="nq-runas-", dir="/tmp"))
    os.chmod(base, 0o755)
    (base / "bin").mkdir(mode=0o755)
    worker = base / "bin" / "neuroq-worker"
    shutil.copy2(WORKER, worker)
    os.chmod(worker, 0o755)
    state = base / "state"
    state.mkdir(mode=0o700)
    (state / "jobs").mkdir(mode=0o700)
    w = {"base": base, "worker": worker, "state": state,
         "gid": grp.getgrnam(GROUP).gr_gid, "n": 0}
    for u in USERS:
        pw = pwd.getpwnam(u)
        home = base / u
        home.mkdir(mode=0o755)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        w[u] = (pw.pw_uid, pw.pw_gid, home)
    # A's recording, world-readable; B's, 0600 and full of a secret
    uid, gid, home = w["nq-own-a"]
    rec = home / "rec.bin"
    generate(str(rec), n_channels=N_CH, n_units=3, duration_s=6.0, seed=5)
    os.chown(rec, uid, gid)
    os.chmod(rec, 0o644)
    w["rec_a"] = rec
    uid, gid, home = w["nq-own-b"]
    rec = home / "rec.bin"
    rec.write_bytes(SECRET * 4096)
    os.chown(rec, uid, gid)
    os.chmod(rec, 0o600)
    w["rec_b"] = rec
    try:
        yield w
    finally:
        shutil.rmtree(base, ignore_errors=True)


def job_dir(w, params):
    """A job dir as the daemon lays it out: <state>/jobs/N, root:svc 02770,
    params.mp and in/ written by the service user."""
    w["n"] += 1
    jd = w["state"] / "jobs" / str(w["n"])
    jd.mkdir()
    (jd / "in").mkdir()
    (jd / "params.mp").write_bytes(msgpack.packb(params, use_bin_type=True))
    for p in (jd, jd / "in"):
        os.chown(p, 0, w["gid"])
    os.chmod(jd, 0o2770)
    os.chmod(jd / "in", 0o2750)
    os.chmod(jd / "params.mp", 0o640)
    os.chown(jd / "params.mp", 0, w["gid"])
    return jd


def owner_args(w, user, umask="022"):
    return ["--owner", str(w[user][0]), "--service-gid", str(w["gid"]),
            "--umask", umask, "--deny", str(w["state"])]


def check(w, jd, user, *extra):
    r = subprocess.run([str(w["worker"]), "check", "--type", "spikesort",
                        "--dir", str(jd), *owner_args(w, user), *extra],
                       capture_output=True, text=True, timeout=120)
    return r


def run(w, jd, user, umask="022"):
    r = subprocess.run([str(w["worker"]), "run", "--type", "spikesort",
                        "--dir", str(jd), "--device", "cpu",
                        *owner_args(w, user, umask)],
                       capture_output=True, text=True, timeout=600)
    err = (jd / "error").read_text() if (jd / "error").exists() else ""
    return r, err


def params(rec, out=None, **kw):
    p = {"recording": str(rec), "n_channels": N_CH, "sample_rate": FS,
         "seed": 1}
    if out is not None:
        p["output_dir"] = str(out)
    p.update(kw)
    return p


def test_own_recording_sorts_as_owner(world):
    """(a) A's own recording: check says ok with the file's real estimate;
    the run's phy files belong to A with A's umask, and a symlink planted at
    every old fixed temporary name (and at a final name) is not followed:
    the victims are untouched. (d)"""
    w = world
    uid, gid, home = w["nq-own-a"]
    out = home / "sorted"
    out.mkdir()
    os.chown(out, uid, gid)
    victim = w["base"] / "victim.mp"
    victim.write_bytes(b"another job's result")
    os.chown(victim, 0, w["gid"])
    os.chmod(victim, 0o660)  # writable by the service group, as spool files
    names = ["cluster_KSLabel.tsv", "cluster_group.tsv", "cluster_ContamPct.tsv",
             "cluster_Amplitude.tsv", "params.py", "recording.dat"]
    for n in names:
        os.symlink(victim, out / (n + ".tmp"))
    os.symlink(victim, out / "spike_times.npy")
    for n in names + ["spike_times.npy"]:
        p = out / (n + ".tmp") if n != "spike_times.npy" else out / n
        os.lchown(p, uid, gid)

    jd = job_dir(w, params(w["rec_a"], out))
    r = check(w, jd, "nq-own-a")
    assert r.returncode == 0, r.stdout + r.stderr
    ok, host, dev, flops = r.stdout.split()
    assert ok == "ok" and int(host) > 0 and int(dev) > 0 and float(flops) > 0

    r, err = run(w, jd, "nq-own-a", umask="027")
    assert r.returncode == 0, err + r.stderr
    assert victim.read_bytes() == b"another job's result"
    st = os.lstat(out / "spike_times.npy")
    assert stat.S_ISREG(st.st_mode)
    for f in ("spike_times.npy", "params.py", "cluster_group.tsv",
              "pc_features.npy", "template_features.npy",
              "_phy_spikes_subset.waveforms.npy"):
        st = os.stat(out / f)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, 0o640), f
    # the spool: results readable and removable by the service group
    res = json.loads((jd / "out" / "result.json").read_text())
    assert res["output_dir"] == str(out) and res["n_spikes"] > 0
    st = os.stat(jd / "out")
    assert stat.S_IMODE(st.st_mode) == 0o2770 and st.st_gid == w["gid"]
    for f in (jd / "out").iterdir():
        st = os.stat(f)
        assert stat.S_IMODE(st.st_mode) == 0o660, f
        assert st.st_uid == uid and st.st_gid == w["gid"], f
    assert stat.S_IMODE(os.stat(jd / "ckpt").st_mode) == 0o2770


def test_other_users_recording_refused(world):
    """(b) B's 0600 recording, submitted by A: refused, the message names the
    parameter and says permission denied, and nothing of it leaks."""
    w = world
    jd = job_dir(w, params(w["rec_b"]))
    r = check(w, jd, "nq-own-a")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith("error EBADPARAM ")
    assert "recording" in r.stdout and "permission denied" in r.stdout.lower()
    r2, err = run(w, jd, "nq-own-a")
    assert r2.returncode == 1
    assert "recording" in err and "permission denied" in err.lower()
    log = (jd / "log").read_text()
    for text in (r.stdout, r.stderr, r2.stdout, r2.stderr, err, log):
        assert SECRET.decode() not in text
    assert not (jd / "out").exists()
    # B itself may (into B's own folder: as another user than the service,
    # output_dir is required, the spool being out of B's reach)
    r = check(w, job_dir(w, params(w["rec_b"], w["nq-own-b"][2] / "phy-b")), "nq-own-b")
    assert r.stdout.startswith("ok "), r.stdout


def test_output_dir_into_state_refused(world):
    """(c) output_dir through ".." or a symlink into the state dir:
    refused, and nothing is made there."""
    w = world
    uid, gid, home = w["nq-own-a"]
    link = home / "state-link"
    os.symlink(w["state"] / "jobs", link)
    os.lchown(link, uid, gid)
    target = job_dir(w, params(w["rec_a"]))  # another job's dir
    before = sorted(p.name for p in target.iterdir())
    for out in (home / ".." / "state" / "jobs" / target.name / "out",
                link / target.name / "out",
                link / target.name):
        jd = job_dir(w, params(w["rec_a"], out))
        r = check(w, jd, "nq-own-a")
        assert r.returncode == 1, (out, r.stdout)
        assert r.stdout.startswith("error EBADPARAM output_dir"), r.stdout
        r, err = run(w, jd, "nq-own-a")
        assert r.returncode == 1 and "output_dir" in err, err
        # the same without the owner's missing rights: the deny list alone
        r = subprocess.run([str(w["worker"]), "check", "--type", "spikesort",
                            "--dir", str(jd), "--deny", str(w["state"])],
                           capture_output=True, text=True, timeout=120)
        assert r.stdout.startswith("error EBADPARAM output_dir"), r.stdout
        assert "not allowed" in r.stdout
    assert sorted(p.name for p in target.iterdir()) == before


def test_bad_owner_usage(world):
    w = world
    jd = job_dir(w, params(w["rec_a"]))
    r = subprocess.run([str(w["worker"]), "check", "--type", "spikesort",
                        "--dir", str(jd), "--owner", "x"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    r = subprocess.run([str(w["worker"]), "check", "--type", "spikesort",
                        "--dir", str(jd), "--owner", "3999999"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stdout.startswith("error EPERM uid 3999999 has no passwd entry")
