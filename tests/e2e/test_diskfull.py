"""A full state disk (issue 10): the daemon's state_dir on a small real tmpfs,
filled with a filler file. Submits are refused early with ENOSPACE naming the
filesystem, its free bytes and the min_free_bytes watermark; a submit whose
staging hits ENOSPC gets ENOSPACE and leaves no staging dir; a job whose
outputs cannot be written ends FAILED naming ENOSPC; queued jobs stay queued
and run by themselves once the filler is deleted; `list` answers throughout;
the store passes quick_check afterwards.

Needs root (mount -t tmpfs): skips with the reason otherwise. Every wait is
bounded; the tmpfs is unmounted in a finally."""

import contextlib
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (LONG_JOB, Daemon, Frozen, _need_binaries, _reap_workers,
                      assert_same_result, make_data, run_worker, wait_all,
                      wait_state, worker_pids)

import neuroq

ENOSPACE = 47
MiB = 1 << 20
TMPFS_SIZE = 48 * MiB


@contextlib.contextmanager
def tmpfs_daemon(conf=None, size=TMPFS_SIZE):
    """A started Daemon whose state_dir is a fresh tmpfs of `size` bytes (its
    config, log and sockets stay on the ordinary /tmp). Yields (daemon, mount
    point); stops the daemon and unmounts at the end, whatever happened."""
    _need_binaries()
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) on this machine")
    base = Path(tempfile.mkdtemp(prefix="nq-df-", dir="/tmp"))
    mnt = base / "state"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                        str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot mount a tmpfs (needs root): {r.stderr.strip()}")
    d = Daemon(base, cpu_slots=1, conf=conf)
    d.state = mnt
    try:
        d.start()
        yield d, mnt
    except BaseException:
        print(f"--- neuroqd log\n{d.log_tail(60)}")
        raise
    finally:
        d.stop()
        _reap_workers(d)
        for _ in range(50):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(mnt, leave=0):
    """A filler file in mnt until the tmpfs has about `leave` bytes free
    (leave=0: until ENOSPC). Returns its path."""
    filler = Path(mnt) / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while (want := free_bytes(mnt) - leave) > 0 or leave == 0:
            try:
                os.write(fd, b"\xa5" * max(4096, min(MiB, want)))
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
    finally:
        os.close(fd)
    return filler


def free_exactly(filler, mnt, n):
    """Shrink the filler so the tmpfs has about n bytes free (in pages)."""
    for _ in range(20):
        short = n - free_bytes(mnt)
        if short <= 0:
            break
        os.truncate(filler, max(0, os.path.getsize(filler) - short))
    assert n <= free_bytes(mnt) < n + 64 * 1024, (n, free_bytes(mnt))


def quick_check(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA quick_check").fetchall()
    finally:
        con.close()


def rows(db):
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT id, state FROM jobs").fetchall())
    finally:
        con.close()


def staging_dirs(mnt):
    return [p.name for p in (Path(mnt) / "jobs").iterdir() if p.name.startswith(".new-")]


def small(seed):
    return make_data(12, 10, 3, seed=seed)


def test_submit_refused_below_watermark(tmp_path):
    watermark = 6 * MiB
    with tmpfs_daemon({"min_free_bytes": watermark}) as (d, mnt):
        c = d.client()
        ok = c.submit("gsn", inputs={"data": small(1)}, idem="df-1").id
        wait_all(c, [ok], timeout=60)
        filler = fill(mnt, leave=4 * MiB)
        # a resend of a submit that made its job writes nothing: answered
        again = c.submit("gsn", inputs={"data": small(1)}, idem="df-1")
        assert again.id == ok and again.existing
        free = free_bytes(mnt)
        assert free < watermark
        with pytest.raises(neuroq.errors.NoSpace) as ei:
            c.submit("gsn", inputs={"data": small(2)})
        e = ei.value
        assert e.code == ENOSPACE and e.name == "ENOSPACE"
        # the filesystem (its mount point), its free bytes, the watermark
        assert f"filesystem {mnt} " in e.message, e.message
        m = e.message.split(" has ")[1]
        said = int(m.split(" bytes free")[0])
        assert abs(said - free) <= MiB, (said, free)
        assert f"min_free_bytes is {watermark}" in e.message
        assert staging_dirs(mnt) == []
        # list and status still answer
        assert [j["id"] for j in c.jobs(limit=0)] == [ok]
        assert c.status(ok)["state"] == "DONE"
        # space back: submits go through again, no restart
        filler.unlink()
        again = c.submit("gsn", inputs={"data": small(2)}).id
        assert wait_all(c, [again], timeout=60)[again]["state"] == "DONE"
        c.close()
        d.stop()
        assert quick_check(mnt / "neuroq.db") == [("ok",)]


def test_staging_enospc_is_enospace_and_leaves_nothing():
    # no watermark: the early check passes (the message fits), the files
    # with their headers, manifest and per-file pages do not
    with tmpfs_daemon({"min_free_bytes": 0}) as (d, mnt):
        c = d.client()
        data = make_data(64, 64, 32, seed=3)  # 1 MiB of inputs
        before = rows(mnt / "neuroq.db")
        filler = fill(mnt)
        free_exactly(filler, mnt, data.nbytes + 16384)
        with pytest.raises(neuroq.errors.NoSpace) as ei:
            c.submit("gsn", inputs={"data": data})
        e = ei.value
        assert e.code == ENOSPACE
        assert "ENOSPC" in e.message and f"filesystem {mnt} " in e.message, e.message
        assert "cannot write" in e.message and "/jobs/.new-" in e.message
        assert staging_dirs(mnt) == []
        assert c.jobs(limit=0) == []
        assert rows(mnt / "neuroq.db") == before
        filler.unlink()
        j = c.submit("gsn", inputs={"data": small(4)}).id
        assert wait_all(c, [j], timeout=60)[j]["state"] == "DONE"
        c.close()
        d.stop()
        assert quick_check(mnt / "neuroq.db") == [("ok",)]


def test_outputs_enospc_fail_job_queue_survives():
    with tmpfs_daemon({"min_free_bytes": 4 * MiB}) as (d, mnt):
        c = d.client()
        blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=1)}).id
        frozen = Frozen(d, c, blocker)
        queued = [c.submit("gsn", inputs={"data": small(10 + i)}).id for i in range(3)]
        filler = fill(mnt)  # to the last byte
        frozen.thaw()
        # its outputs (and its error file) cannot be written: FAILED, naming
        # ENOSPC and the filesystem, while the disk is still full
        j = wait_state(c, blocker, ("DONE", "FAILED", "CANCELED"), timeout=90, poll=0.2)
        assert j["state"] == "FAILED", j
        assert j["error_code"] == ENOSPACE, j
        assert "ENOSPC" in j["error"] and f"filesystem {mnt} " in j["error"], j["error"]
        # the queue waits, whole, and list answers, for a while of full disk
        t_end = time.monotonic() + 5
        while time.monotonic() < t_end:
            states = {x["id"]: x["state"] for x in c.jobs(limit=0)}
            assert states[blocker] == "FAILED"
            assert all(states[q] == "QUEUED" for q in queued), states
            time.sleep(0.5)
        assert "starts held" in d.log_path.read_text()
        # space back: the queue runs by itself (no restart)
        filler.unlink()
        final = wait_all(c, queued, timeout=90)
        assert all(final[q]["state"] == "DONE" for q in queued), final
        assert_same_result(c.result(queued[0]), run_worker(small(10)))
        assert c.status(blocker)["state"] == "FAILED"
        c.close()
        d.stop()
        db = mnt / "neuroq.db"
        assert quick_check(db) == [("ok",)]
        # the rows themselves (not only the daemon's answers): FAILED, DONE
        r = rows(db)
        assert r[blocker] == 3 and all(r[q] == 2 for q in queued), r
        log = d.log_path.read_text()
        assert "cannot record the job's end" in log or "job finished" in log


def test_end_in_error_file_survives_restart():
    """A job that ended while the store could not say so, then the daemon
    died: its error file is the verdict at the next start (not a rerun)."""
    with tmpfs_daemon({"min_free_bytes": 0}) as (d, mnt):
        c = d.client()
        blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=2)}).id
        Frozen(d, c, blocker)
        c.close()
        d.kill()  # the worker dies with it (PDEATHSIG)
        _reap_workers(d)
        jd = mnt / "jobs" / str(blocker)
        msg = f"cannot write ./out.tmp/cN.npy: No space left on device (ENOSPC: filesystem {mnt} has 0 bytes free)"
        (jd / "error").write_text(f"{ENOSPACE} ENOSPACE\n{msg}\n")
        d.start()
        c = d.client()
        j = c.status(blocker)
        assert j["state"] == "FAILED" and j["error_code"] == ENOSPACE, j
        assert j["error"] == msg
        assert "job end recorded from its error file" in d.log_path.read_text()
        c.close()


def test_done_row_kept_until_it_lands():
    """The worker wrote its outputs, then the disk filled before the daemon
    wrote the DONE row: the end is kept (status says DONE meanwhile) and
    written once space returns; the job is neither RUNNING forever nor
    FAILED with its results on disk."""
    with tmpfs_daemon({"min_free_bytes": 0}, size=160 * MiB) as (d, mnt):
        c = d.client()
        data = make_data(*LONG_JOB, seed=5)
        job = c.submit("gsn", inputs={"data": data}).id
        frozen = Frozen(d, c, job)
        os.kill(d.proc.pid, signal.SIGSTOP)  # the daemon sees nothing now
        try:
            frozen.thaw()
            deadline = time.monotonic() + 120
            while worker_pids(d.state, job):
                assert time.monotonic() < deadline, "worker did not finish"
                time.sleep(0.1)
            assert (mnt / "jobs" / str(job) / "out" / "result.mp").exists()
            filler = fill(mnt)
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        j = wait_state(c, job, ("DONE", "FAILED", "CANCELED"), timeout=30, poll=0.2)
        assert j["state"] == "DONE", j
        log = d.log_path.read_text()
        assert "cannot record the job's end" in log and "state=DONE" in log, log[-2000:]
        assert rows(mnt / "neuroq.db")[job] == 1  # still RUNNING in the store
        filler.unlink()
        deadline = time.monotonic() + 30
        while rows(mnt / "neuroq.db")[job] != 2:
            assert time.monotonic() < deadline, "DONE row never landed"
            time.sleep(0.2)
        res = c.result(job)
        assert res["cN"].shape == (LONG_JOB[0], LONG_JOB[0])
        c.close()
        d.stop()
        assert quick_check(mnt / "neuroq.db") == [("ok",)]


def test_outside_reader_leaves_the_wal(daemon):
    """Another process that opens and closes neuroq.db (an administrator's
    sqlite3, a backup, these tests) must not take the live database for
    unused: it would checkpoint and delete the WAL under the daemon, whose
    later commits then go to an unlinked file and are lost at the next
    start. (Found here: the store's own open()/close() of the file after
    SQLite opened it dropped SQLite's POSIX lock on it.)"""
    c = daemon.client()
    first = c.submit("gsn", inputs={"data": small(20)}).id
    wait_all(c, [first], timeout=60)
    db = daemon.state / "neuroq.db"
    assert rows(db) == {first: 2}
    assert (daemon.state / "neuroq.db-wal").exists()
    second = c.submit("gsn", inputs={"data": small(21)}).id
    wait_all(c, [second], timeout=60)
    assert rows(db) == {first: 2, second: 2}
    c.close()
    daemon.kill()  # no clean close: what is not in the files is gone
    assert rows(db) == {first: 2, second: 2}
