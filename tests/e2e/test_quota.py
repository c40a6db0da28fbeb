"""Per-user quotas (issue 9): queued jobs and spool bytes, checked at submit,
refused with EQUOTA and a message that says the limit and the current use.

The spool bytes of a user are what their jobs hold in the spool: the submit's
size from submit on, the measured job dir once a job ended, nothing once
retention purged it; the figure is kept per job in the store, so it is the
same after a restart. hello's `quota` shows it.
"""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

import neuroq
from conftest import LONG_JOB, Frozen, make_data, unix_users, wait_state

SMALL = (20, 10, 4)
MEMBER = "nq-quota-user"


def _dir_bytes(path):
    total = 0
    for root, dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total


def test_defaults(daemon):
    with daemon.client() as c:
        q = c.hello()["quota"]
    assert q == {"queued": 0, "max_queued": 1000, "spool_bytes": 0,
                 "max_spool_bytes": 100 << 30}


def test_queued_jobs_limit(daemon_factory):
    d = daemon_factory(conf={"max_queued_jobs_per_user": 3})
    x = make_data(*SMALL, seed=1)
    with d.client() as c:
        blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=2)})
        frozen = Frozen(d, c, blocker.id)  # RUNNING: not counted
        try:
            ids = [c.submit("gsn", inputs={"data": x}, idem=f"k{i}").id for i in range(3)]
            assert c.hello()["quota"]["queued"] == 3
            with pytest.raises(neuroq.errors.QuotaExceeded) as e:
                c.submit("gsn", inputs={"data": x})
            assert e.value.code == 46 and e.value.name == "EQUOTA"
            assert e.value.message == ("you have 3 queued jobs; the limit is 3 "
                                       "(max_queued_jobs_per_user): wait for some to "
                                       "start or cancel some")
            assert isinstance(e.value, neuroq.errors.ResourceError)
            # a resend of a submit that made its job is not refused
            again = c.submit("gsn", inputs={"data": x}, idem="k1")
            assert again.existing and again.id == ids[1]
            # the CLI says the same
            np.save(d.dir / "x.npy", x)
            r = d.cli("submit", "gsn", "--data", d.dir / "x.npy")
            assert r.returncode == 1
            assert r.stderr.startswith("neuroq: EQUOTA: you have 3 queued jobs; "
                                       "the limit is 3"), r.stderr
            # one canceled: room for one more
            c.cancel(ids[0])
            ids.append(c.submit("gsn", inputs={"data": x}).id)
            with pytest.raises(neuroq.errors.QuotaExceeded):
                c.submit("gsn", inputs={"data": x})
            assert len(c.jobs(state="QUEUED")) == 3
        finally:
            c.cancel(blocker.id)
            frozen.thaw()
        for i in ids[1:]:
            wait_state(c, i, ("DONE",), timeout=120)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: submits as another user")
def test_queued_limit_is_per_user(daemon_factory):
    with unix_users(MEMBER):
        d = daemon_factory(world=True, conf={"max_queued_jobs_per_user": 2})
        p = d.dir / "x.npy"
        np.save(p, make_data(*SMALL, seed=3))
        os.chmod(p, 0o644)
        with d.client() as c:
            blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=4)})
            frozen = Frozen(d, c, blocker.id)
            try:
                for _ in range(2):
                    c.submit("gsn", inputs={"data": make_data(*SMALL, seed=5)})
                with pytest.raises(neuroq.errors.QuotaExceeded):
                    c.submit("gsn", inputs={"data": make_data(*SMALL, seed=5)})
                # root is at its limit; the member has their own
                for _ in range(2):
                    r = d.cli("submit", "gsn", "--data", p, user=MEMBER)
                    assert r.returncode == 0, r.stderr
                r = d.cli("submit", "gsn", "--data", p, user=MEMBER)
                assert r.returncode == 1
                assert "EQUOTA: you have 2 queued jobs; the limit is 2" in r.stderr
            finally:
                c.cancel(blocker.id)
                frozen.thaw()


def test_spool_bytes_limit(daemon_factory):
    limit = 1 << 20
    d = daemon_factory(conf={"max_spool_bytes_per_user": "1M"})
    x = make_data(50, 50, 30, seed=6)  # 600 kB of float64
    with d.client() as c:
        j1 = c.submit("gsn", inputs={"data": x})
        q = c.hello()["quota"]
        assert q["max_spool_bytes"] == limit
        held = q["spool_bytes"]
        assert x.nbytes < held < x.nbytes + 4096  # the submit's message size
        with pytest.raises(neuroq.errors.QuotaExceeded) as e:
            c.submit("gsn", inputs={"data": x})
        m = e.value.message
        assert m.startswith(f"your jobs hold {held} bytes (")
        assert " in the spool and this submit adds " in m
        added = int(m.split("this submit adds ")[1].split(" ")[0])
        assert x.nbytes < added < x.nbytes + 4096 and held + added > limit
        assert f"the limit is {limit} bytes (1.0 MiB, max_spool_bytes_per_user)" in m
        # a small one still fits
        j2 = c.submit("gsn", inputs={"data": make_data(*SMALL, seed=7)})
        j1.wait(progress=False, timeout=300)
        j2.wait(progress=False, timeout=300)
        # ended: the jobs' dirs as they are now, inputs and outputs
        want = sum(_dir_bytes(d.dir / "jobs" / str(j.id)) for j in (j1, j2))
        assert want > x.nbytes
        assert c.hello()["quota"]["spool_bytes"] == want
    # the figure is in the store: the same after a restart
    d.stop()
    d.start()
    with d.client() as c:
        assert c.hello()["quota"]["spool_bytes"] == want
    # purged jobs hold nothing: age j1 by 2 days, retention 1 day, restart
    d.stop()
    db = sqlite3.connect(d.dir / "neuroq.db")
    db.execute("UPDATE jobs SET finished_us = finished_us - 2 * 86400000000 WHERE id = ?",
               (j1.id,))
    db.commit()
    db.close()
    d.conf["retention_days"] = 1
    d.start()
    with d.client() as c:
        assert c.status(j1.id)["purged"]
        assert c.hello()["quota"]["spool_bytes"] == _dir_bytes(d.dir / "jobs" / str(j2.id))
        # room again
        c.submit("gsn", inputs={"data": x}).wait(progress=False, timeout=300)


def test_unlimited(daemon_factory):
    d = daemon_factory(conf={"max_queued_jobs_per_user": 0, "max_spool_bytes_per_user": 0})
    with d.client() as c:
        q = c.hello()["quota"]
        assert q["max_queued"] == 0 and q["max_spool_bytes"] == 0
        c.submit("gsn", inputs={"data": make_data(*SMALL, seed=8)}).wait(progress=False,
                                                                         timeout=120)
