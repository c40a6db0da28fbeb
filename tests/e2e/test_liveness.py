"""Time limits and liveness (issue 10): a worker that stops beating (SIGSTOP)
is killed and its job requeued, then runs to DONE on a fresh worker while the
queue behind it moves; a job past its time limit is killed and FAILS with the
reason; the administrator's max_job_seconds lowers a larger request."""

import os
import signal
import time

import pytest

import neuroq
from conftest import (LONG_JOB, assert_gsn_sane, make_data, wait_all, wait_state,
                      worker_pids)

from neuroq.client import encode_array

# a gsn job that computes well past 2 s on this machine, however fast
SLOW_JOB = (4000, 60, 4)
HB = 3  # the test daemon's heartbeat_timeout_s


def _gone(pid):
    """The process is dead: gone, or a zombie the daemon is about to reap
    (a stopped process is state T, a running one R or S)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _submit(c, data, **fields):
    rep = c.call("submit", type="gsn", params={}, inputs={"data": encode_array(data)},
                 device="cpu", **fields)
    return rep


def test_stopped_worker_is_killed_and_job_requeued(daemon_factory):
    d = daemon_factory(conf={"heartbeat_timeout_s": HB})
    c = d.client()
    a = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=1)}, idem="hb-a")
    b_data = make_data(40, 20, 3, seed=2)
    b = c.submit("gsn", inputs={"data": b_data}, idem="hb-b")
    wait_state(c, a.id, ("RUNNING",), timeout=30)
    deadline = time.monotonic() + 10
    while not (pids := worker_pids(d.state, a.id)):
        assert time.monotonic() < deadline, "no worker process for the job"
        time.sleep(0.02)
    t0 = time.monotonic()
    for p in pids:
        os.kill(p, signal.SIGSTOP)  # never SIGCONT
    assert c.status(b.id)["state"] == "QUEUED"

    # the daemon notices within the timeout (+ its 0.5 s check), kills the
    # stopped process and starts the job again on a new worker
    deadline = time.monotonic() + HB + 15
    while not all(_gone(p) for p in pids):
        assert time.monotonic() < deadline, "the stopped worker was left behind"
        time.sleep(0.05)
    killed_after = time.monotonic() - t0
    # its last line came at most ~1 s (one beat) before the SIGSTOP
    assert killed_after >= HB - 1.5, f"killed after {killed_after:.1f} s, before the timeout"

    # attempt 2 is not stopped: its gsn "biconvex" stage prints no progress
    # line for longer than HB (4.6 s by hand on the loaded 2-core dev box), yet it lives: the
    # heartbeat thread beats through it
    final = wait_all(c, [a.id, b.id], timeout=120)
    assert final[a.id]["state"] == "DONE", final[a.id]
    assert final[a.id]["attempts"] == 2
    assert final[b.id]["state"] == "DONE", final[b.id]
    assert final[b.id]["attempts"] == 1
    assert_gsn_sane(c.result(b.id), b_data)
    assert set(c.result(a.id)) >= {"mnN", "ncsnr"}
    # no worker of this daemon is left, stopped or not
    assert worker_pids(d.state) == []
    log = d.log_path.read_text()
    assert f"worker not responding id={a.id}" in log
    assert f"worker hung id={a.id} signal=9 attempt=1 action=requeue" in log
    c.close()


def test_long_stage_without_progress_keeps_beating(daemon_factory):
    """gsn's biconvex stage prints no progress line for seconds (4.6 s by
    hand for LONG_JOB on the loaded dev box): with a 2 s timeout the job
    still runs once, to DONE, on its heartbeats alone."""
    d = daemon_factory(conf={"heartbeat_timeout_s": 2, "max_attempts": 1})
    c = d.client()
    x = make_data(*LONG_JOB, seed=11)
    a = c.submit("gsn", inputs={"data": x})
    j = wait_state(c, a.id, ("DONE", "FAILED"), timeout=120)
    assert j["state"] == "DONE", j
    assert j["attempts"] == 1
    assert "worker not responding" not in d.log_path.read_text()
    c.close()


def test_hung_every_attempt_fails_with_reason(daemon_factory):
    d = daemon_factory(conf={"heartbeat_timeout_s": HB, "max_attempts": 1})
    c = d.client()
    a = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=3)})
    b = c.submit("gsn", inputs={"data": make_data(30, 10, 3, seed=4)})
    wait_state(c, a.id, ("RUNNING",), timeout=30)
    deadline = time.monotonic() + 10
    while not (pids := worker_pids(d.state, a.id)):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    j = wait_state(c, a.id, ("FAILED", "DONE"), timeout=HB + 20)
    assert j["state"] == "FAILED"
    assert j["error"] == f"worker stopped responding (no heartbeat for {HB} s); 1 attempt"
    assert j["error_code"] == 24  # EFAILED
    # the spool records the daemon's verdict too (neuroqd --recover reads it)
    err = (d.state / "jobs" / str(a.id) / "error").read_text().splitlines()
    assert err[0] == "24 EFAILED" and err[1] == j["error"]
    assert wait_state(c, b.id, ("DONE",), timeout=60)["state"] == "DONE"
    assert all(_gone(p) for p in pids)
    c.close()


def test_time_limit_fails_the_job(daemon_factory):
    d = daemon_factory()
    c = d.client()
    rep = _submit(c, make_data(*SLOW_JOB, seed=5), time_limit_s=2)
    assert rep["time_limit_s"] == 2
    a = rep["id"]
    b_data = make_data(40, 20, 3, seed=6)
    b = c.submit("gsn", inputs={"data": b_data}).id
    j = wait_state(c, a, ("RUNNING", "DONE", "FAILED"), timeout=30)
    if j["state"] == "RUNNING":
        assert c.status(a)["time_limit_s"] in (2, 0)  # 0: it just ended
    j = wait_state(c, a, ("DONE", "FAILED", "CANCELED"), timeout=30)
    assert j["state"] == "FAILED", j
    assert j["error"] == "time limit of 2 s exceeded"
    assert j["error_code"] == 62  # ETIMEDOUT
    assert j["attempts"] == 1  # not requeued
    ran = j["finished"] - j["started"]
    assert 2.0 <= ran < 8.0, f"killed after {ran:.2f} s"
    assert j["time_limit_s"] == 0  # no longer running
    # the slot is free: the next job runs
    jb = wait_state(c, b, ("DONE", "FAILED"), timeout=60)
    assert jb["state"] == "DONE", jb
    assert_gsn_sane(c.result(b), b_data)
    assert worker_pids(d.state) == []
    c.close()


def test_admin_max_clamps_and_default(daemon_factory):
    d = daemon_factory(conf={"max_job_seconds": 3})
    c = d.client()
    # asked for more than the max: lowered to it (and said so)
    rep = _submit(c, make_data(*SLOW_JOB, seed=7), time_limit_s=1000)
    assert rep["time_limit_s"] == 3
    # not asked: the default (at least 600 s), lowered to the max too
    rep2 = _submit(c, make_data(20, 10, 3, seed=8))
    assert rep2["time_limit_s"] == 3
    j = wait_state(c, rep["id"], ("RUNNING", "DONE", "FAILED"), timeout=30)
    if j["state"] == "RUNNING":
        assert c.status(rep["id"])["time_limit_s"] in (3, 0)
    j = wait_state(c, rep["id"], ("DONE", "FAILED"), timeout=30)
    assert j["state"] == "FAILED" and j["error"] == "time limit of 3 s exceeded", j
    assert wait_state(c, rep2["id"], ("DONE",), timeout=60)["state"] == "DONE"
    c.close()


def test_default_limit_and_bad_values(shared_daemon):
    c = shared_daemon.client()
    small = make_data(20, 10, 3, seed=9)
    # the default for a small job: the 10-minute floor (max_job_seconds 7 days)
    rep = _submit(c, small)
    assert rep["time_limit_s"] == 600
    for bad in (0, -1, 2**31):
        with pytest.raises(neuroq.NeuroqError) as e:
            _submit(c, small, time_limit_s=bad)
        assert "time_limit_s" in str(e.value)
    with pytest.raises(neuroq.NeuroqError) as e:
        _submit(c, small, time_limit_s="60")
    assert "time_limit_s" in str(e.value)
    wait_state(c, rep["id"], ("DONE",), timeout=60)
    c.close()


def test_cancel_of_a_hung_worker_cancels(daemon_factory):
    """A cancel asked while the worker is stopped: its SIGTERM cannot be
    taken, the heartbeat check leaves the worker to the cancel's grace period
    (SIGKILL after 10 s) — the job ends CANCELED, it is not requeued as a
    hung worker's job would be to run again. (The exit callback also puts a
    cancel before the hung/crash verdicts, for a cancel that arrives after
    the heartbeat check's SIGKILL.)"""
    d = daemon_factory(conf={"heartbeat_timeout_s": HB})
    c = d.client()
    a = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=3)})
    wait_state(c, a.id, ("RUNNING",), timeout=30)
    deadline = time.monotonic() + 10
    while not (pids := worker_pids(d.state, a.id)):
        assert time.monotonic() < deadline, "no worker process for the job"
        time.sleep(0.02)
    for p in pids:
        os.kill(p, signal.SIGSTOP)  # never SIGCONT
    c.cancel(a.id)
    final = wait_all(c, [a.id], timeout=HB + 30)
    assert final[a.id]["state"] == "CANCELED", final[a.id]
    assert final[a.id]["attempts"] == 1
    assert all(_gone(p) for p in pids)
    time.sleep(1.5)  # a requeued job would be RUNNING again by now
    assert c.status(a.id)["state"] == "CANCELED"
    assert worker_pids(d.state) == []
    c.close()
