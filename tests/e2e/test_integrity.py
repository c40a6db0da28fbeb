"""Integrity of the job store and the spool (issue 10): a damaged database
is refused at start and rebuilt by `neuroqd --recover`; ids never go
backwards, so no job dir is ever replaced; a damaged input fails its job."""

import os
import shutil
import sqlite3
import subprocess

import numpy as np
import pytest

from conftest import (LONG_JOB, NEUROQD, Frozen, assert_same_result, make_data,
                      run_worker, wait_all, wait_state)


def flip_bytes(path, n=64, seed=0):
    """n random bytes over the data part of an .npy file (past its header)."""
    size = os.path.getsize(path)
    rng = np.random.default_rng(seed)
    with open(path, "r+b") as f:
        f.seek(size - n - 8)
        f.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())


def small(seed):
    return make_data(12, 10, 3, seed=seed)


def test_damaged_input_fails_its_job(daemon):
    c = daemon.client()
    blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=1)}).id
    frozen = Frozen(daemon, c, blocker)
    good = c.submit("gsn", inputs={"data": small(2)}).id
    bad = c.submit("gsn", inputs={"data": small(3)}).id
    assert c.status(bad)["state"] == "QUEUED"
    manifest = (daemon.state / "jobs" / str(bad) / "in.sha256").read_text()
    assert manifest.endswith("  in/data.npy\n") and len(manifest.split()[0]) == 64
    flip_bytes(daemon.state / "jobs" / str(bad) / "in" / "data.npy")
    frozen.thaw()
    final = wait_all(c, [blocker, good, bad])
    assert final[blocker]["state"] == "DONE"
    assert final[good]["state"] == "DONE"
    assert final[bad]["state"] == "FAILED"
    assert "in/data.npy" in final[bad]["error"] and "damaged" in final[bad]["error"]
    assert not (daemon.state / "jobs" / str(bad) / "out").exists()
    assert_same_result(c.result(good), run_worker(small(2)))
    c.close()


def _checkpoint(db):
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def _damage(db, how):
    data = bytearray(open(db, "rb").read())
    assert len(data) >= 4 * 4096
    if how == "truncate":
        data = data[:len(data) // 2]
    else:  # garbage over the pages in the middle, past the schema page
        mid = max(4096, (len(data) // 2) // 4096 * 4096)
        rng = np.random.default_rng(7)
        data[mid:mid + 2 * 4096] = rng.integers(0, 256, 2 * 4096, dtype=np.uint8).tobytes()
    open(db, "wb").write(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "garbage"])
def test_damaged_store_refused_then_recovered(daemon_factory, how):
    d = daemon_factory(cpu_slots=1)
    c = d.client()
    done = [c.submit("gsn", inputs={"data": small(10 + i)}).id for i in range(3)]
    wait_all(c, done)
    results = {j: c.result(j) for j in done}
    blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=20)}).id
    frozen = Frozen(d, c, blocker)
    failed = c.submit("gsn", inputs={"data": small(21)}).id
    canceled = c.submit("gsn", inputs={"data": small(22)}).id
    queued = c.submit("gsn", inputs={"data": small(23)}).id
    flip_bytes(d.state / "jobs" / str(failed) / "in" / "data.npy")
    c.cancel(canceled)
    # the damaged input fails once it runs: let the blocker go first
    frozen.thaw()
    wait_state(c, failed, ("FAILED",), timeout=300)
    failed_error = c.status(failed)["error"]
    blocker2 = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=24)}).id
    Frozen(d, c, blocker2)
    queued2 = c.submit("gsn", inputs={"data": small(25)}).id
    # enough rows that half the file loses some
    pads = [c.submit("gsn", inputs={"data": small(30)}, idem=f"pad-{i}", priority=-5).id
            for i in range(40)]
    c.close()
    d.kill()  # blocker2 RUNNING, queued/queued2 and the pads QUEUED
    db = d.state / "neuroq.db"
    _checkpoint(db)
    _damage(db, how)

    with pytest.raises(RuntimeError) as e:
        d.start()
    assert "damaged" in str(e.value) and "neuroqd --recover" in str(e.value)
    # a dir nothing can be made of is set aside, not deleted
    junk = d.state / "jobs" / "9999"
    junk.mkdir()
    (junk / "params.mp").write_bytes(b"\xc1garbage")

    r = subprocess.run([str(NEUROQD), "--recover", "--state-dir", str(d.state)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "set_aside=1" in r.stdout and "damaged database kept in" in r.stdout
    kept = [p for p in d.state.iterdir() if p.name.startswith("damaged-")]
    assert len(kept) == 1 and (kept[0] / "neuroq.db").stat().st_size > 0
    assert (d.state / "recovered-aside" / "9999" / "params.mp").exists()
    assert not junk.exists()

    d.start()
    c = d.client()
    me = os.getuid()
    for j in done:
        s = c.status(j)
        assert s["state"] == "DONE" and s["owner"] == me
        assert_same_result(c.result(j), results[j])
    s = c.status(failed)
    assert s["state"] == "FAILED" and s["error"] == failed_error
    assert c.status(canceled)["state"] == "CANCELED"
    # what had not ended runs again, and the next id is past every dir
    final = wait_all(c, [blocker, blocker2, queued, queued2], timeout=300)
    assert all(final[j]["state"] == "DONE" for j in final)
    assert_same_result(c.result(queued), run_worker(small(23)))
    new = c.submit("gsn", inputs={"data": small(40)}).id
    assert new > 9999
    # the idempotency keys came back with the rows: a client's retry of an
    # acknowledged submit finds its job, it does not queue a second one
    again = c.submit("gsn", inputs={"data": small(30)}, idem="pad-7", priority=-5)
    assert again.existing and again.id == pads[7]
    c.close()


def test_deleted_store_never_reuses_ids(daemon_factory):
    d = daemon_factory()
    c = d.client()
    old = [c.submit("gsn", inputs={"data": small(50 + i)}).id for i in range(3)]
    wait_all(c, old)
    before = {j: c.result(j) for j in old}
    c.close()
    d.stop()
    for sfx in ("", "-wal", "-shm"):
        p = d.state / f"neuroq.db{sfx}"
        if p.exists():
            p.unlink()
    d.start()
    c = d.client()
    new = c.submit("gsn", inputs={"data": small(60)}).id
    assert new == max(old) + 1
    assert f"job dirs have no rows" in d.log_path.read_text()
    assert f"last_row=0 last_dir={max(old)}" in d.log_path.read_text()
    wait_all(c, [new])
    c.close()
    d.stop()
    # the old results are intact, and --recover gives them their rows back
    r = subprocess.run([str(NEUROQD), "--recover", "--state-dir", str(d.state)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "kept=1 done=3" in r.stdout
    d.start()
    with d.client() as c:
        for j in old:
            assert_same_result(c.result(j), before[j])


def test_rolled_back_store_never_reuses_ids(daemon_factory):
    d = daemon_factory()
    c = d.client()
    first = c.submit("gsn", inputs={"data": small(70)}).id
    wait_all(c, [first])
    c.close()
    d.stop()
    saved = d.dir / "saved.db"
    _checkpoint(d.state / "neuroq.db")
    shutil.copy2(d.state / "neuroq.db", saved)
    d.start()
    c = d.client()
    lost = [c.submit("gsn", inputs={"data": small(71 + i)}).id for i in range(3)]
    wait_all(c, lost)
    lost_results = {j: c.result(j) for j in lost}
    c.close()
    d.kill()
    # the database goes back in time (a WAL lost, a backup restored)
    for sfx in ("-wal", "-shm"):
        p = d.state / f"neuroq.db{sfx}"
        if p.exists():
            p.unlink()
    shutil.copy2(saved, d.state / "neuroq.db")
    d.start()
    c = d.client()
    new = c.submit("gsn", inputs={"data": small(80)}).id
    assert new == max(lost) + 1
    wait_all(c, [new])
    c.close()
    for j in lost:  # no dir deleted or replaced
        assert (d.state / "jobs" / str(j) / "out").is_dir()
    d.stop()
    r = subprocess.run([str(NEUROQD), "--recover", "--state-dir", str(d.state)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "kept=2 done=3" in r.stdout, r.stdout
    d.start()
    with d.client() as c:
        for j in lost:
            assert_same_result(c.result(j), lost_results[j])


def test_retention_removes_only_its_own_dir(daemon_factory):
    """A row whose dir is another job's (its `job` file names another owner)
    is never removed by retention."""
    import time
    d = daemon_factory(conf={"retention_days": 30})
    c = d.client()
    mine, other = (c.submit("gsn", inputs={"data": small(90 + i)}).id for i in range(2))
    wait_all(c, [mine, other])
    c.close()
    d.stop()
    con = sqlite3.connect(d.state / "neuroq.db")
    forty_days_ago = int((time.time() - 40 * 86400) * 1e6)
    con.execute("UPDATE jobs SET finished_us = ?", (forty_days_ago,))
    con.execute("UPDATE jobs SET owner = owner + 1 WHERE id = ?", (other,))
    con.commit()
    con.close()
    d.start()  # the start-up retention pass
    with d.client() as c:
        assert c.status(mine)["purged"] is True
        assert not (d.state / "jobs" / str(mine)).exists()
        assert c.status(other)["purged"] is False
    assert (d.state / "jobs" / str(other) / "out").is_dir()
    assert f"retention: not this job's dir, kept id={other}" in d.log_path.read_text()


def test_one_process_per_state_dir(daemon):
    """--recover (and a second neuroqd) refuse a state dir a neuroqd runs on."""
    db = daemon.state / "neuroq.db"
    r = subprocess.run([str(NEUROQD), "--recover", "--state-dir", str(daemon.state)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "a neuroqd is running" in r.stdout
    assert db.exists() and not any(p.name.startswith("damaged-")
                                   for p in daemon.state.iterdir())
    r = subprocess.run([str(NEUROQD), "--state-dir", str(daemon.state),
                        "--listen", f"ipc://{daemon.dir}/other.sock",
                        "--events", f"ipc://{daemon.dir}/other-e.sock", "--devices", "cpu"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "another neuroqd uses this state dir" in r.stdout + r.stderr
    with daemon.client() as c:
        assert c.hello()
