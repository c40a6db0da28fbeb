"""neuroqd with `executor = slurm` (issue 11) against the loopback cluster of
tests/slurm/cluster.sh (two nodes, two fake GPUs each; conftest.py starts
it once per session and skips everything when it cannot).

What a user depends on: the same results as the local executor, jobs that
run as their owner in Slurm, cancel of pending and running jobs, a time
limit that ends a job FAILED with the reason, jobs that survive a daemon
kill -9 (found again by their Slurm id, collected even after slurmctld
forgot them), a node that dies under a job (requeued, DONE when the node is
back), Slurm's pending reason in `status`, one squeue per poll for all jobs,
and the partition's GPUs in `devices`.

Each test is bounded in time (every wait has its limit); the cluster's
timeouts (SlurmdTimeout 10 s, KillWait 5 s, MinJobAge 10 s) are in
cluster.sh.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import neuroq
from slurmlib import (GSN_ARRAYS, GSN_SCALARS, LONG_JOB, NEUROQD, POLL_S, TERMINAL, Daemon,
                      _state_dir, assert_gsn_sane, assert_same_result, make_data,
                      read_out_dir, unix_users, wait_all, wait_state)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spikesort"))
from gen_gt import FS, generate  # noqa: E402

USER = "nq-slurm-a"


# ---- helpers


def slurm_id(d, c, job_id, timeout=60):
    """The Slurm job id of a neuroq job's current attempt: the job map's
    backend_job_id, else the newest job in squeue named neuroq-<id> that
    runs in this daemon's job dir (every test daemon counts from 1, and
    slurmctld remembers the last tests' jobs for MinJobAge)."""
    deadline = time.monotonic() + timeout
    jd = str(d.job_dir(job_id))
    while True:
        j = c.status(job_id)
        sid = str(j.get("backend_job_id") or "")
        if sid:
            return sid
        mine = [int(i) for i, q in d.cluster.squeue().items()
                if q["name"] == f"neuroq-{job_id}" and q["workdir"].rstrip("/") == jd]
        if mine:
            return str(max(mine))
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} has no Slurm job after {timeout} s: {j}, "
                                 f"squeue {d.cluster.squeue()}")
        time.sleep(0.2)


def slurm_state(d, sid):
    return d.cluster.squeue().get(sid, {}).get("state")


def wait_slurm(d, sid, states, timeout=60):
    """Until Slurm shows job sid in one of `states` (None: forgotten)."""
    deadline = time.monotonic() + timeout
    while (st := slurm_state(d, sid)) not in states:
        if time.monotonic() > deadline:
            raise AssertionError(f"Slurm job {sid} is {st} after {timeout} s, wanted {states}")
        time.sleep(0.2)
    return st


def worker_pids(d, job_id):
    """neuroq-worker processes running job `job_id` out of the spool."""
    jd = str(d.job_dir(job_id)).encode()
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            args = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"neuroq-worker") and any(
                a.rstrip(b"/") == jd or a.startswith(jd + b"/") for a in args):
            pids.append(int(p.name))
    return pids


def freeze(d, c, job_id, timeout=60):
    """SIGSTOP the worker of a job that Slurm runs: it stays RUNNING
    however fast this machine is. Returns the pids."""
    deadline = time.monotonic() + timeout
    while not (pids := worker_pids(d, job_id)):
        j = c.status(job_id)
        assert j["state"] not in TERMINAL, f"job {job_id} ended before it was frozen: {j}"
        assert time.monotonic() < deadline, f"no worker process for job {job_id}"
        time.sleep(0.05)
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    return pids


def thaw(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGCONT)
        except ProcessLookupError:
            pass


def gone(pids):
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(") ", 1)[1][0] not in "ZX":
                    return False
        except (FileNotFoundError, ProcessLookupError):
            pass
    return True


def local_result(data, job_type="gsn"):
    """The same job through a local-executor daemon: the reference."""
    d = Daemon(_state_dir()).start()
    try:
        with d.client() as c:
            j = c.submit(job_type, inputs={"data": data})
            assert wait_state(c, j.id, TERMINAL, timeout=120)["state"] == "DONE"
            return c.result(j.id)
    finally:
        d.stop()


def pending_reason(j):
    return j.get("pending_reason") or ""


# ---- results


def test_gsn_done_same_as_local(slurm_daemon):
    d = slurm_daemon
    data = make_data(40, 20, 3, seed=11)
    t0 = time.time()
    with d.client() as c:
        job = c.submit("gsn", inputs={"data": data})
        sid = slurm_id(d, c, job.id)
        j = wait_state(c, job.id, TERMINAL, timeout=120)
        assert j["state"] == "DONE", j
        assert j["progress"] == 1.0
        assert j["attempts"] == 1
        res = c.result(job.id)
    assert_gsn_sane(res, data)
    assert_same_result(res, local_result(data), GSN_ARRAYS + GSN_SCALARS)
    # it went through Slurm: one sbatch, a job named as neuroq's
    sb = d.calls("sbatch", since=t0)
    assert len(sb) == 1, sb
    comp = jobcomp(d, sid)
    assert comp.get("JobState") == "COMPLETED", comp
    assert "neuroq" in comp.get("Name", ""), comp


def test_spikesort_done_same_as_local(slurm_daemon, tmp_path):
    d = slurm_daemon
    os.chmod(tmp_path, 0o755)
    rec = tmp_path / "rec.bin"
    generate(str(rec), n_channels=16, n_units=6, duration_s=8.0, seed=3)
    outs = {}
    loc = Daemon(_state_dir()).start()
    try:
        for name, daemon in (("slurm", d), ("local", loc)):
            with daemon.client() as c:
                res = neuroq.spikesort(rec, str(rec) + ".probe.json", {"seed": 7},
                                       tmp_path / name, n_channels=16, sample_rate=FS,
                                       client=c, progress=False, timeout=300)
            outs[name] = res
    finally:
        loc.stop()
    a, b = outs["slurm"], outs["local"]
    assert a["n_spikes"] == b["n_spikes"] > 0
    assert a["n_units"] == b["n_units"] > 0
    for f in ("spike_times.npy", "spike_clusters.npy", "amplitudes.npy", "templates.npy"):
        assert np.array_equal(np.load(tmp_path / "slurm" / f), np.load(tmp_path / "local" / f)), f
    assert a["output_dir"] == str(tmp_path / "slurm")


def jobcomp(d, sid, timeout=30):
    """slurmctld's jobcomp/filetxt line of a finished Slurm job, as a dict
    (it outlives the job in squeue: MinJobAge is 10 s)."""
    log = d.cluster.root / "log" / "jobcomp.txt"
    deadline = time.monotonic() + timeout
    while True:
        if log.exists():
            for line in log.read_text().splitlines():
                if line.startswith(f"JobId={sid} "):
                    return dict(w.partition("=")[::2] for w in line.split())
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.2)


def owner_dir(d, name):
    """A dir for the owner's files, under the daemon's 0755 dir (pytest's
    tmp_path is 0700: another user cannot enter it)."""
    p = d.dir / name
    p.mkdir(mode=0o755)
    return p


def submit_as(d, user, data, where):
    """`neuroq submit gsn` as user, of data saved world-readable in where;
    the job id."""
    src = where / "in"
    src.mkdir(mode=0o755)
    np.save(src / "data.npy", data)
    os.chmod(src / "data.npy", 0o644)
    r = d.cli("submit", "gsn", "--data", src / "data.npy", user=user)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def result_as(d, user, jid, where):
    """`neuroq result --out` as user into a new dir under where: (the
    CompletedProcess, the --out path)."""
    out = where / f"res{time.monotonic_ns()}"
    out.mkdir(mode=0o777)
    os.chmod(out, 0o777)
    return d.cli("result", jid, "--out", out / "r", user=user), out / "r"


def test_job_runs_as_its_owner(slurm_daemon):
    """Slurm sees the submitting user (uid and primary group), not root:
    fair-share and accounting charge the real user."""
    d = slurm_daemon
    where = owner_dir(d, "owner")
    with unix_users(USER) as users:
        pw = users[USER]
        data = make_data(30, 10, 3, seed=12)
        jid = submit_as(d, USER, data, where)
        with d.client() as c:
            sid = slurm_id(d, c, jid)
            # the same commands as locally, as the owner
            r = d.cli("wait", jid, "--timeout", "120", user=USER)
            assert r.returncode == 0 and r.stdout.strip() == "DONE", (r.stdout, r.stderr)
            j = c.status(jid)
            assert j["owner"] == pw.pw_uid
        comp = jobcomp(d, sid)
        assert comp.get("UserId") == f"{USER}({pw.pw_uid})", comp
        assert comp.get("GroupId") == f"{USER}({pw.pw_gid})", comp
        r, out = result_as(d, USER, jid, where)
        assert r.returncode == 0, r.stderr
        assert_gsn_sane(read_out_dir(out), data)


def test_owner_cannot_reach_another_jobs_outputs(slurm_daemon):
    """Under Slurm a job's owner owns its job dir on the shared spool. Links
    planted there to another job's outputs (its arrays, result.mp, error,
    log, or out/ itself) never lead `result`, `status` or `logs` to that
    job's data: the daemon refuses the file, and says why."""
    d = slurm_daemon
    where = owner_dir(d, "links")
    with unix_users(USER) as users:
        pw = users[USER]
        secret = make_data(30, 10, 3, seed=31)
        mine = make_data(30, 10, 3, seed=32)
        with d.client() as c:
            other = c.submit("gsn", inputs={"data": secret})
            assert wait_state(c, other.id, TERMINAL, timeout=120)["state"] == "DONE"
            theirs = c.result(other.id)
        jid = submit_as(d, USER, mine, where)
        r = d.cli("wait", jid, "--timeout", "120", user=USER)
        assert r.stdout.strip() == "DONE", (r.stdout, r.stderr)
        jd, od = d.job_dir(jid), d.job_dir(other.id)
        assert os.stat(jd).st_uid == pw.pw_uid  # the owner's own dir

        def as_owner(*cmd):
            p = subprocess.run(["sh", "-c", *cmd], user=USER, capture_output=True,
                               text=True, timeout=30)
            assert p.returncode == 0, p.stderr

        def result_as_owner():
            return result_as(d, USER, jid, where)

        r, _ = result_as_owner()
        assert r.returncode == 0, r.stderr
        # one array, then result.mp, then out/ itself: each a link to theirs
        as_owner(f"ln -sf {od}/out/cSb.npy {jd}/out/cSb.npy")
        r, out = result_as_owner()
        assert r.returncode != 0 and "not a plain file" in r.stderr, (r.stdout, r.stderr)
        assert not (out / "cSb.npy").exists()
        as_owner(f"rm {jd}/out/cSb.npy && ln -s {od}/out/result.mp {jd}/out/x.mp"
                 f" && mv -f {jd}/out/x.mp {jd}/out/result.mp")
        r, _ = result_as_owner()
        assert r.returncode != 0 and "not a plain file" in r.stderr, (r.stdout, r.stderr)
        as_owner(f"mv {jd}/out {jd}/out.mine && ln -s {od}/out {jd}/out")
        r, out = result_as_owner()
        assert r.returncode != 0, r.stdout
        assert not out.exists() or not any(out.iterdir())
        with d.client() as c:
            with pytest.raises(neuroq.errors.NeuroqError):
                c.result(jid)
        # the log: a link reads as no log, never as theirs
        as_owner(f"mv {jd}/log {jd}/log.mine && ln -s {od}/log {jd}/log")
        r = d.cli("logs", jid, user=USER)
        with open(od / "log") as f:
            their_log = f.read()
        assert their_log and their_log not in r.stdout
        # their result is theirs, untouched; ours never equalled it
        with d.client() as c:
            again = c.result(other.id)
        for k in ("cSb", "cNb"):
            assert np.array_equal(again[k], theirs[k])


# ---- cancel


def test_cancel_pending_job(slurm_daemon):
    d = slurm_daemon
    blockers = d.cluster.block()
    try:
        with d.client() as c:
            job = c.submit("gsn", inputs={"data": make_data(30, 10, 3, seed=13)})
            sid = slurm_id(d, c, job.id)
            wait_slurm(d, sid, ("PENDING",), timeout=30)
            t0 = time.monotonic()
            c.cancel(job.id)
            j = wait_state(c, job.id, TERMINAL, timeout=30)
            assert j["state"] == "CANCELED", j
            assert time.monotonic() - t0 < 30
            # Slurm let it go too: cancelled, or already forgotten
            assert wait_slurm(d, sid, ("CANCELLED", None), timeout=30) in ("CANCELLED", None)
    finally:
        d.cluster.unblock(blockers)


def test_cancel_running_job(slurm_daemon):
    d = slurm_daemon
    with d.client() as c:
        job = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=14)})
        sid = slurm_id(d, c, job.id)
        pids = freeze(d, c, job.id)
        assert slurm_state(d, sid) == "RUNNING"
        c.cancel(job.id)
        # a stopped worker ignores the graceful stop: Slurm's SIGKILL
        # (KillWait 5 s) ends it
        j = wait_state(c, job.id, TERMINAL, timeout=60)
        assert j["state"] == "CANCELED", j
        deadline = time.monotonic() + 30
        while not gone(pids):
            assert time.monotonic() < deadline, "the worker outlived its cancelled job"
            time.sleep(0.1)
        assert wait_slurm(d, sid, ("CANCELLED", None), timeout=30) in ("CANCELLED", None)
        # the cluster is free again: the next job runs to DONE
        nxt = c.submit("gsn", inputs={"data": make_data(30, 10, 3, seed=15)})
        assert wait_state(c, nxt.id, TERMINAL, timeout=120)["state"] == "DONE"


# ---- time limit


def test_time_limit_fails_the_job(slurm_daemon):
    """time_limit_s = 5: Slurm's --time is whole minutes at best (0:05 is
    shown as 1:00), so the job ends within ~2 minutes, FAILED with the
    reason, not requeued."""
    d = slurm_daemon
    t0 = time.time()
    with d.client() as c:
        rep = c.call("submit", type="gsn", params={},
                     inputs={"data": neuroq.client.encode_array(make_data(*LONG_JOB, seed=16))},
                     device="auto", time_limit_s=5)
        jid = rep["id"]
        sid = slurm_id(d, c, jid)
        freeze(d, c, jid)
        tl = d.cluster.squeue().get(sid, {}).get("time_limit")
        assert tl and tl != "UNLIMITED", f"sbatch gave no --time: {d.calls('sbatch', t0)}"
        j = wait_state(c, jid, TERMINAL, timeout=180)
        assert j["state"] == "FAILED", j
        assert "time limit" in j["error"], j["error"]
        assert j["error_code"] == 62  # ETIMEDOUT, as locally
        assert j["attempts"] == 1  # not requeued


# ---- the daemon's restart


def test_daemon_kill9_jobs_found_again(slurm_daemon):
    """kill -9 with three jobs in Slurm: two finish while the daemon is
    down (slurmctld forgets them after MinJobAge = 10 s, so only the spool
    has their results), one is still running at the restart. All end DONE,
    none is submitted twice."""
    d = slurm_daemon
    datas = [make_data(30, 10, 3, seed=20 + i) for i in range(2)]
    t0 = time.time()
    with d.client() as c:
        quick = [c.submit("gsn", inputs={"data": x}).id for x in datas]
        slow_data = make_data(*LONG_JOB, seed=22)
        slow = c.submit("gsn", inputs={"data": slow_data}).id
        sids = {j: slurm_id(d, c, j) for j in (*quick, slow)}
        pids = freeze(d, c, slow)
    d.kill()
    # the quick ones finish and are forgotten by slurmctld
    # (slurmctld purges finished jobs older than MinJobAge in a periodic
    # pass: ~60-90 s here)
    for j in quick:
        wait_slurm(d, sids[j], (None,), timeout=180)
    assert slurm_state(d, sids[slow]) == "RUNNING"
    d.start()
    with d.client() as c:
        assert c.status(slow)["state"] == "RUNNING"
        thaw(pids)
        final = wait_all(c, [*quick, slow], timeout=120)
        for j, x in zip(quick, datas):
            assert final[j]["state"] == "DONE", final[j]
            assert final[j]["attempts"] == 1
            assert_gsn_sane(c.result(j), x)
        assert final[slow]["state"] == "DONE", final[slow]
        assert final[slow]["attempts"] == 1
        assert_gsn_sane(c.result(slow), slow_data)
    assert len(d.calls("sbatch", since=t0)) == 3, d.calls("sbatch", since=t0)


def test_daemon_killed_during_sbatch_never_runs_two_attempts(slurm_daemon):
    """kill -9 while sbatch runs: Slurm has the job, the daemon never
    learned its id (an orphan). At the restart the job is submitted again;
    that attempt waits (Dependency) while the orphan runs, so two attempts
    never work in one job dir at once, and the job ends DONE."""
    d = slurm_daemon
    stall = d.dir / "stall-sbatch"
    # the sbatch wrapper waits after the real sbatch while `stall` exists:
    # the job is in Slurm, its id not yet read by the daemon
    (d.slurm_bin / "sbatch").write_text(
        "#!/bin/sh\n"
        f"echo \"$(date +%s.%N) sbatch $*\" >>'{d.calls_log}'\n"
        f"out=$(SLURM_CONF='{d.cluster.conf}' '{shutil.which('sbatch')}' \"$@\")\n"
        "rc=$?\n"
        f"while [ -e '{stall}' ]; do sleep 0.2; done\n"
        "printf '%s\\n' \"$out\"\n"
        "exit $rc\n")
    stall.touch()
    data = make_data(*LONG_JOB, seed=33)
    t0 = time.time()
    with d.client() as c:
        jid = c.submit("gsn", inputs={"data": data}).id
        orphan = slurm_id(d, c, jid)  # from squeue: the map has no id yet
        assert not c.status(jid).get("backend_job_id")
        pids = freeze(d, c, jid)  # the orphan keeps running
    d.kill()
    stall.unlink()
    d.start()
    try:
        with d.client() as c:
            deadline = time.monotonic() + 60
            while (sid := str(c.status(jid).get("backend_job_id") or "")) in ("", orphan):
                assert time.monotonic() < deadline, c.status(jid)
                time.sleep(0.2)
            # while the orphan runs, the new attempt waits for it
            for _ in range(20):
                q = d.cluster.squeue()
                assert q[orphan]["state"] == "RUNNING", q
                assert q[sid]["state"] == "PENDING", q
                time.sleep(0.5)
            assert q[sid]["reason"] == "Dependency", q[sid]
            thaw(pids)
            j = wait_state(c, jid, TERMINAL, timeout=180)
            assert j["state"] == "DONE", j
            assert_gsn_sane(c.result(jid), data)
    finally:
        thaw(pids)
    assert len(d.calls("sbatch", since=t0)) == 2
    # the orphan ended before the new attempt started
    first, second = jobcomp(d, orphan), jobcomp(d, sid)
    assert first.get("EndTime") and second.get("StartTime"), (first, second)
    assert second["StartTime"] >= first["EndTime"], (first, second)


def test_recover_rebuilds_rows_from_the_shared_spool(slurm_daemon):
    """The database lost: `neuroqd --recover` (same config) finds the job
    dirs in slurm_spool_dir, not in the state dir, and gives them their rows
    back with their results; a dir nothing can be made of is set aside on
    the spool's own filesystem."""
    d = slurm_daemon
    datas = [make_data(30, 10, 3, seed=40 + i) for i in range(2)]
    with d.client() as c:
        ids = [c.submit("gsn", inputs={"data": x}).id for x in datas]
        final = wait_all(c, ids, timeout=120)
        assert all(final[j]["state"] == "DONE" for j in ids), final
        before = {j: c.result(j) for j in ids}
    d.stop()
    for p in d.state.glob("neuroq.db*"):
        p.unlink()
    junk = d.spool / "jobs" / "9999"
    junk.mkdir()
    (junk / "params.mp").write_bytes(b"\xc1garbage")
    r = subprocess.run([str(NEUROQD), "--recover", "--state-dir", str(d.state),
                        "--config", str(d.conf_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "done=2" in r.stdout and "set_aside=1" in r.stdout, r.stdout
    assert (d.spool / "recovered-aside" / "9999" / "params.mp").exists()
    d.start()
    with d.client() as c:
        for j, x in zip(ids, datas):
            assert c.status(j)["state"] == "DONE"
            res = c.result(j)
            assert_gsn_sane(res, x)
            assert_same_result(res, before[j], GSN_ARRAYS + GSN_SCALARS)
        # ids go on past the dirs
        nxt = c.submit("gsn", inputs={"data": datas[0]}).id
        assert nxt > 9999


# ---- a node dies


def test_node_fail_requeues_and_finishes(slurm_cluster, slurm_daemon_factory):
    """slurmd and the job's processes killed (the node lost power): Slurm
    ends the job NODE_FAIL once the node misses SlurmdTimeout (10 s); the
    daemon requeues it (attempt 2 of max_attempts) and it runs to DONE when
    the node is back (the other node is kept busy, so it can only run
    there)."""
    d = slurm_daemon_factory(conf={"max_attempts": 3})
    cl = d.cluster
    data = make_data(*LONG_JOB, seed=30)
    with d.client() as c:
        job = c.submit("gsn", inputs={"data": data})
        sid = slurm_id(d, c, job.id)
        wait_slurm(d, sid, ("RUNNING",), timeout=60)
        node = cl.squeue()[sid]["node"]
        # frozen first: blocking the other node may take a scheduling
        # interval (5 s), longer than this job runs on an idle machine
        pids = freeze(d, c, job.id)
        others = [n for n in cl.nodes if n != node]
        blockers = []
        try:
            blockers = cl.block(others) if others else []
            cl.node_stop(node)
            deadline = time.monotonic() + 10
            while not gone(pids):  # SIGKILLed with the node
                assert time.monotonic() < deadline, f"worker {pids} outlived its node"
                time.sleep(0.1)
            # the daemon sees the failure and queues the job again
            deadline = time.monotonic() + 90
            while True:
                j = c.status(job.id)
                assert j["state"] not in TERMINAL, f"ended instead of requeued: {j}"
                if j["attempts"] >= 2 or "requeue" in (j.get("stage") or "").lower():
                    break
                assert time.monotonic() < deadline, f"not requeued after 90 s: {j}"
                time.sleep(0.5)
            cl.node_start(node)
            cl.wait_nodes(("idle", "mix", "alloc"), nodes=[node], timeout=60)
            j = wait_state(c, job.id, TERMINAL, timeout=180)
            assert j["state"] == "DONE", j
            assert j["attempts"] == 2
            assert_gsn_sane(c.result(job.id), data)
        finally:
            cl.unblock(blockers)


# ---- what a user sees while the cluster is full


def test_status_shows_pending_reason(slurm_daemon):
    d = slurm_daemon
    blockers = d.cluster.block()
    try:
        with d.client() as c:
            data = make_data(30, 10, 3, seed=40)
            job = c.submit("gsn", inputs={"data": data})
            sid = slurm_id(d, c, job.id)
            wait_slurm(d, sid, ("PENDING",), timeout=30)
            want = d.cluster.squeue()[sid]["reason"]
            assert want in ("Resources", "Priority"), want
            deadline = time.monotonic() + 10 * POLL_S + 10
            while pending_reason(c.status(job.id)) not in ("Resources", "Priority"):
                assert time.monotonic() < deadline, f"no pending reason: {c.status(job.id)}"
                time.sleep(0.2)
            # the CLI's status says it too
            r = d.cli("status", job.id)
            assert r.returncode == 0, r.stderr
            assert pending_reason(c.status(job.id)) in r.stdout, r.stdout
            d.cluster.unblock(blockers)
            blockers = []
            j = wait_state(c, job.id, TERMINAL, timeout=120)
            assert j["state"] == "DONE", j
            assert pending_reason(j) == ""
            assert_gsn_sane(c.result(job.id), data)
    finally:
        d.cluster.unblock(blockers)


def test_one_squeue_per_poll(slurm_daemon):
    """Eight jobs waiting in Slurm: over 6 s the daemon calls squeue once
    per slurm_poll_s (1 s), not once per job."""
    d = slurm_daemon
    blockers = d.cluster.block()
    try:
        with d.client() as c:
            ids = [c.submit("gsn", inputs={"data": make_data(20, 8, 3, seed=50 + i)}).id
                   for i in range(8)]
            for i in ids:
                wait_slurm(d, slurm_id(d, c, i), ("PENDING",), timeout=30)
            t0 = time.time()
            time.sleep(6.0)
            n = len(d.calls("squeue", since=t0))
            assert 1 <= n <= 6 / POLL_S + 2, f"{n} squeue calls in 6 s for 8 jobs"
            assert not d.calls("sbatch", since=t0)  # nothing submitted twice
            d.cluster.unblock(blockers)
            blockers = []
            final = wait_all(c, ids, timeout=120)
            assert all(j["state"] == "DONE" for j in final.values()), final
    finally:
        d.cluster.unblock(blockers)


# ---- devices


def _partition(c, name):
    sl = c.call("devices").get("slurm")
    assert sl is not None, "no 'slurm' entry in the devices reply"
    parts = {p["name"]: p for p in sl["partitions"]}
    assert name in parts, sl
    return parts[name]


def test_devices_shows_the_partition_and_its_gpus(slurm_daemon):
    """`devices` has the cluster's partition: nodes, GPUs with their type,
    and how many are in use (sinfo, refreshed at most every 10 s)."""
    d = slurm_daemon
    cl = d.cluster
    total = len(cl.nodes) * cl.gpus_per_node
    with d.client() as c:
        # the daemon's first sinfo may still be running just after its start
        deadline = time.monotonic() + 5
        while not c.call("devices").get("slurm", {}).get("partitions"):
            assert time.monotonic() < deadline, c.call("devices")
            time.sleep(0.2)
        p = _partition(c, cl.partition)
        assert p["nodes"] == len(cl.nodes), p
        assert p["gpus"] == total, p
        assert p["gpu_type"] == cl.gres_type, p
        assert p["gpus_used"] == 0, p
        assert p["cpus"] == 2 * len(cl.nodes), p
        blockers = cl.block()
        try:
            deadline = time.monotonic() + 30
            while (p := _partition(c, cl.partition))["gpus_used"] != total:
                assert time.monotonic() < deadline, f"gpus_used never {total}: {p}"
                time.sleep(1)
        finally:
            cl.unblock(blockers)
    r = d.cli("devices")
    assert r.returncode == 0, r.stderr
    assert cl.partition in r.stdout, r.stdout
