"""SIGKILL the daemon while jobs run and queue; restart on the same state dir;
every job completes, with the results of an uninterrupted run."""

import os
import subprocess
import time

import numpy as np

from conftest import (CLI, GSN_ARRAYS, GSN_SCALARS, LONG_JOB, WORKER, assert_gsn_sane,
                      assert_same_result, Frozen, make_data, make_job_dir, read_out_dir,
                      run_worker,
                      wait_all, worker_pids)


def test_sigkill_and_restart(daemon):
    datasets = [make_data(*LONG_JOB, seed=10)] + [make_data(10 + 4 * i, 20, 3, seed=11 + i)
                                                  for i in range(5)]
    c = daemon.client()
    jobs = []
    first = c.submit("gsn", inputs={"data": datasets[0]}, idem="crash-0")
    jobs.append(first.id)
    frozen = Frozen(daemon, c, first.id)
    for i, x in enumerate(datasets[1:], 1):
        jobs.append(c.submit("gsn", inputs={"data": x}, params={"wantshrinkage": True},
                             idem=f"crash-{i}").id)
    assert c.status(first.id)["state"] == "RUNNING"
    assert all(c.status(j)["state"] == "QUEUED" for j in jobs[1:])
    c.close()

    frozen.thaw()  # computing again when the daemon dies
    daemon.kill()
    # workers die with the daemon (PR_SET_PDEATHSIG), none is left computing
    deadline = time.monotonic() + 10
    while worker_pids(daemon.dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker_pids(daemon.dir) == []

    daemon.start()
    c = daemon.client()
    # a resent submit (same idempotency key) finds the job from before the crash
    again = c.submit("gsn", inputs={"data": datasets[0]}, idem="crash-0")
    assert again.id == first.id and again.existing
    final = wait_all(c, jobs)
    assert [final[j]["state"] for j in jobs] == ["DONE"] * len(jobs)
    assert final[first.id]["attempts"] >= 2
    assert len(c.jobs(all_users=True, limit=1000)) == len(jobs)

    for j, x in zip(jobs, datasets):
        res = c.result(j)
        params = {} if j == first.id else {"wantshrinkage": True}
        assert_same_result(res, run_worker(x, params), names=GSN_ARRAYS + GSN_SCALARS)
        if j != first.id:
            assert_gsn_sane(res, x)
    c.close()
    assert os.path.isdir(daemon.dir / "jobs")


def test_worker_of_a_gone_daemon_exits(tmp_path):
    """The daemon can die between forking a worker and the worker arming its
    parent-death signal. The worker is an orphan then and must not run the
    job, which the restarted daemon runs again: with --parent naming a pid
    that is not its parent it exits 1 at once, the job dir untouched. The
    same job dir with --parent = its real parent runs."""
    x = make_data(10, 20, 3, seed=5)
    other = subprocess.Popen(["sleep", "30"])  # alive, but not the worker's parent
    try:
        for sub in ("run", "check"):
            jd = make_job_dir(tmp_path / sub, x)
            before = sorted(p.relative_to(jd) for p in jd.rglob("*"))
            extra = ["--device", "cpu"] if sub == "run" else []
            r = subprocess.run([str(WORKER), sub, "--type", "gsn", "--dir", str(jd), *extra,
                                "--parent", str(other.pid)],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 1, (sub, r.returncode, r.stdout, r.stderr)
            assert f"the daemon (pid {other.pid}) is gone" in r.stdout + r.stderr
            assert sorted(p.relative_to(jd) for p in jd.rglob("*")) == before, sub
    finally:
        other.kill()
        other.wait()
    for bad in ("0", "1", "-5", "x", "99999999999"):
        r = subprocess.run([str(WORKER), "run", "--type", "gsn", "--dir", str(jd),
                            "--device", "cpu", "--parent", bad],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "bad --parent" in r.stderr, (bad, r)
    jd = make_job_dir(tmp_path / "ok", x)
    r = subprocess.run([str(WORKER), "run", "--type", "gsn", "--dir", str(jd), "--device",
                        "cpu", "--parent", str(os.getpid())],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert_same_result(read_out_dir(jd / "out"), run_worker(x), names=GSN_ARRAYS + GSN_SCALARS)


def test_cli_wait_survives_restart(daemon, tmp_path):
    """`neuroq wait` rides out a daemon crash and restart: exit 0 once DONE."""
    np.save(tmp_path / "x.npy", make_data(*LONG_JOB, seed=30))
    c = daemon.client()
    jid = daemon.cli("submit", "gsn", "--data", tmp_path / "x.npy").stdout.strip()
    frozen = Frozen(daemon, c, int(jid))
    c.close()
    p = subprocess.Popen([str(CLI), "--url", daemon.url, "--timeout", "5", "wait", jid],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    frozen.thaw()
    daemon.kill()
    time.sleep(1.0)
    daemon.start()
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert out.strip() == "DONE"
    with daemon.client() as c:
        assert c.status(int(jid))["attempts"] >= 2
