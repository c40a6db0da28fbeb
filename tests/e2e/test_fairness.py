"""A long queue drains in the scheduler's order: priority, then FIFO for one
owner; round-robin between owners (several uids: root only).

Jobs queue behind a blocker whose worker is held stopped (SIGSTOP) until we
cancel it, so the order the queue drains in does not depend on how fast jobs
were submitted or computed.
"""

import json
import os
import subprocess

import numpy as np
import pytest

from conftest import LONG_JOB, Frozen, make_data, unix_users, wait_all

TINY = (3, 10, 2)


def _drain_order(final):
    """job ids in the order they started (one cpu slot: strictly serial)."""
    done = [j for j in final.values() if j["state"] == "DONE"]
    done.sort(key=lambda j: (j["started"], j["finished"], j["id"]))
    for a, b in zip(done, done[1:]):
        assert b["started"] >= a["finished"] - 1e-3, "two jobs ran at once on one slot"
    return [j["id"] for j in done]


def test_thousand_jobs_priority_then_fifo(daemon):
    c = daemon.client()
    blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=1)})
    frozen = Frozen(daemon, c, blocker.id)
    x = make_data(*TINY, seed=2)
    prios = [0, 0, 5, -3, 0, 10]  # a repeating pattern over 1,000 jobs
    ids = []
    for i in range(1000):
        ids.append(c.submit("gsn", inputs={"data": x}, priority=prios[i % len(prios)]).id)
    prio_of = dict(zip(ids, (prios[i % len(prios)] for i in range(1000))))
    assert c.status(blocker.id)["state"] == "RUNNING"
    c.cancel(blocker.id)
    frozen.thaw()
    final = wait_all(c, ids)
    assert all(final[i]["state"] == "DONE" for i in ids)
    order = _drain_order(final)
    assert order == sorted(ids, key=lambda i: (-prio_of[i], i))
    # results are there and right-shaped for a sample
    for i in (ids[0], ids[-1]):
        r = c.result(i)
        assert r["cSb"].shape == (3, 3) and 0 <= r["shrinklevelN"] <= 1
    c.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to submit as several uids")
def test_owners_interleave(daemon_factory, tmp_path):
    d = daemon_factory(world=True)
    c = d.client()
    blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=3)})
    frozen = Frozen(d, c, blocker.id)
    data = d.dir / "tiny.npy"
    np.save(data, make_data(*TINY, seed=4))
    os.chmod(data, 0o644)
    # real users: a job runs as its owner, who must exist on the server
    with unix_users("nq-fair-a", "nq-fair-b", "nq-fair-c") as pw:
        _owners_interleave(d, c, blocker, frozen, data, [pw[n].pw_uid for n in sorted(pw)])


def _owners_interleave(d, c, blocker, frozen, data, uids):
    counts = dict(zip(uids, (60, 30, 60)))
    procs = []
    # each owner submits a burst, one owner after the other: FIFO would run
    # the first owner's whole burst first
    for uid in uids:
        cli = d.cli_path(user=uid)
        script = " ; ".join([f"{cli} --url {d.url} submit gsn --data {data} || exit 1"]
                            * counts[uid])
        procs.append(subprocess.run(["sh", "-c", script], user=uid, capture_output=True,
                                    text=True, timeout=240))
    for p in procs:
        assert p.returncode == 0, p.stderr
    ids = [int(x) for p in procs for x in p.stdout.split()]
    assert len(ids) == sum(counts.values())
    assert c.status(blocker.id)["state"] == "RUNNING"
    c.cancel(blocker.id)
    frozen.thaw()
    final = wait_all(c, ids)
    owner = {i: final[i]["owner"] for i in ids}
    assert sorted(set(owner.values())) == sorted(uids)
    order = _drain_order(final)
    # owners that both still have queued jobs have been served alike
    served = dict.fromkeys(uids, 0)
    left = dict(counts)
    for k, i in enumerate(order):
        served[owner[i]] += 1
        left[owner[i]] -= 1
        busy = [served[u] for u in uids if left[u] > 0]
        if len(busy) >= 2:
            assert max(busy) - min(busy) <= 2, (k, served, left)
    # a user sees only their own jobs unless asking for everyone's
    r = d.cli("--json", "list", user=uids[1])
    assert r.returncode == 0, r.stderr
    mine = json.loads(r.stdout)
    assert mine and all(j["owner"] == uids[1] for j in mine)
    r = d.cli("cancel", ids[0], user=uids[1])  # the first owner's job
    assert r.returncode == 1 and "EPERM" in r.stderr
    c.close()
