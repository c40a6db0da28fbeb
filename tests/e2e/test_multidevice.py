"""Memory-aware scheduling across several devices, end to end, without GPUs.

The daemon is started with test devices (`--devices fake:N:SIZE`): each is
admitted by the scheduler as GPU N with SIZE bytes, and its jobs run on the
cpu backend. Device sizes are set from the jobs' own estimates
(`neuroq-worker check` prints them), so the tests say "room for three", not
byte counts that drift with the estimator. Running jobs are held stopped
(Frozen) while the ledger is looked at, so nothing depends on this machine's
speed.
"""

import subprocess
import tempfile
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

import neuroq
from conftest import (LONG_JOB, WORKER, Frozen, assert_same_result, make_data, run_worker,
                      wait_all, wait_state)

NO_HEADROOM = {"headroom_bytes": 0, "gpu_slots": 4}


def estimate(data, params=None):
    """(host_bytes, device_bytes) of a gsn job, as the daemon will estimate
    it: the job type's check run by neuroq-worker on a staged dir."""
    with tempfile.TemporaryDirectory(prefix="nq-est-", dir="/tmp") as d:
        sd = Path(d)
        (sd / "in").mkdir()
        (sd / "params.mp").write_bytes(msgpack.packb(params or {}, use_bin_type=True))
        np.save(sd / "in" / "data.npy", np.ascontiguousarray(data, dtype="<f8"))
        r = subprocess.run([str(WORKER), "check", "--type", "gsn", "--dir", str(sd)],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    ok, host, dev, _flops = r.stdout.split()
    assert ok == "ok"
    return int(host), int(dev)


def device(c, name):
    return next(d for d in c.devices() if d["name"] == name)


def hold(d, c, ids):
    """Freeze each job's worker once it runs; returns the Frozen handles."""
    return [Frozen(d, c, i) for i in ids]


def thaw(frozen):
    for f in frozen:
        f.thaw()


def test_fake_devices_are_listed_as_fake(daemon_factory):
    d = daemon_factory(devices="cpu,fake:0:8GiB,fake:1:4GiB", conf=NO_HEADROOM)
    c = d.client()
    devs = {x["name"]: x for x in c.devices()}
    assert set(devs) == {"cpu", "fake:0", "fake:1"}
    assert devs["fake:0"]["kind"] == "cuda" and devs["fake:0"]["mem_total"] == 8 << 30
    assert devs["fake:1"]["capacity"] == 4 << 30 and devs["fake:1"]["slots"] == 4
    out = d.cli("devices")
    assert out.returncode == 0, out.stderr
    rows = {ln.split()[0]: ln.split() for ln in out.stdout.splitlines()[1:]}
    assert rows["fake:0"][1] == "cuda" and rows["fake:1"][1] == "cuda"
    log = d.log_path.read_text()
    assert "fake device: a test device" in log and "id=fake:1" in log
    c.close()


@pytest.mark.parametrize("spec, why", [
    ("cpu,fake:0", "not a test device fake:N:SIZE"),
    ("cpu,fake:0:0", "not a test device fake:N:SIZE"),
    ("cpu,fake:0:lots", "not a test device fake:N:SIZE"),
    ("cpu,fake:0:1G,fake:0:2G", "fake:0 and fake:0 are both GPU 0"),
])
def test_bad_fake_devices_stop_the_start(daemon_factory, spec, why):
    d = daemon_factory(devices=spec, start=False)
    with pytest.raises(RuntimeError) as e:
        d.start()
    assert why in str(e.value)


def test_small_jobs_share_a_device(daemon_factory):
    """Three jobs run at once on one device, the fourth waits for memory
    (not for a slot: there are four), and all give the cpu's numbers."""
    datas = [make_data(*LONG_JOB, seed=10 + k) for k in range(4)]
    _, e = estimate(datas[0])
    cap = 3 * e + e // 2
    d = daemon_factory(devices=f"cpu,fake:0:{cap}", conf=NO_HEADROOM)
    c = d.client()
    ids = [c.submit("gsn", inputs={"data": x}, device="cuda").id for x in datas]
    frozen = hold(d, c, ids[:3])
    try:
        dev = device(c, "fake:0")
        assert sorted(dev["running"]) == ids[:3]
        assert dev["mem_reserved"] == 3 * e
        assert all(c.status(i)["est_device_bytes"] == e for i in ids)
        time.sleep(0.5)
        assert c.status(ids[3])["state"] == "QUEUED"
    finally:
        thaw(frozen)
    final = wait_all(c, ids)
    assert [final[i]["state"] for i in ids] == ["DONE"] * 4
    assert all(final[i]["device"] == "fake:0" for i in ids)
    # the fourth started only when one of the three had ended
    first_end = min(final[i]["finished"] for i in ids[:3])
    assert final[ids[3]]["started"] >= first_end - 1e-3
    assert_same_result(c.result(ids[3]), run_worker(datas[3]))
    log = c.logs(ids[0])
    assert "fake device: a test device" in log
    # the worker is granted the job's device estimate (what a job type may size itself to)
    assert f"device=fake:0 grant={e} " in log
    assert device(c, "fake:0")["mem_reserved"] == 0
    c.close()


def test_big_job_waits_for_memory(daemon_factory):
    small = make_data(*LONG_JOB, seed=20)
    big = make_data(1800, 20, 3, seed=21)
    _, es = estimate(small)
    _, eb = estimate(big)
    assert eb > es
    cap = eb + es // 2  # the big one fits alone, not beside the small one
    d = daemon_factory(devices=f"cpu,fake:0:{cap}", conf=NO_HEADROOM)
    c = d.client()
    s = c.submit("gsn", inputs={"data": small}, device="cuda:0").id
    frozen = hold(d, c, [s])
    try:
        b = c.submit("gsn", inputs={"data": big}, device="cuda:0").id
        time.sleep(1.0)
        jb = c.status(b)
        assert jb["state"] == "QUEUED" and jb["error"] == ""
        assert device(c, "fake:0")["mem_reserved"] == es
    finally:
        thaw(frozen)
    final = wait_all(c, [s, b])
    assert final[s]["state"] == "DONE" and final[b]["state"] == "DONE", final
    assert final[b]["started"] >= final[s]["finished"] - 1e-3
    assert final[b]["device"] == "fake:0"
    c.close()


def test_job_bigger_than_any_device_is_refused_at_submit(daemon_factory):
    x = make_data(*LONG_JOB, seed=30)
    _, e = estimate(x)
    big, small = e - (e >> 4), e >> 1  # both devices too small
    d = daemon_factory(devices=f"cpu,fake:0:{big},fake:1:{small}", conf=NO_HEADROOM)
    c = d.client()
    with pytest.raises(neuroq.errors.TooLarge) as err:
        c.submit("gsn", inputs={"data": x}, device="cuda")
    msg = str(err.value)
    assert f"{e} bytes" in msg  # the job's estimate
    assert f"cuda {big / 2**20:.1f} MiB" in msg, msg  # the largest GPU
    assert c.jobs(all_users=True) == []
    # one that fits is taken (on the larger device: the most free memory)
    ok = c.submit("gsn", inputs={"data": make_data(200, 20, 3, seed=31)}, device="cuda")
    assert wait_state(c, ok.id, ("DONE",), timeout=120)["device"] == "fake:0"
    c.close()


def test_jobs_spread_across_devices(daemon_factory):
    datas = [make_data(*LONG_JOB, seed=40 + k) for k in range(2)]
    d = daemon_factory(devices="cpu,fake:0:4GiB,fake:1:4GiB", conf=NO_HEADROOM)
    c = d.client()
    ids = []
    frozen = []
    try:
        for x in datas:  # one after the other: each goes where most is free
            ids.append(c.submit("gsn", inputs={"data": x}, device="cuda").id)
            frozen += hold(d, c, ids[-1:])
        on = {c.status(i)["device"] for i in ids}
        assert on == {"fake:0", "fake:1"}
        for name in ("fake:0", "fake:1"):
            assert len(device(c, name)["running"]) == 1
    finally:
        thaw(frozen)
    # a named device is honoured, by its cuda:N or its fake:N name
    tiny = make_data(50, 10, 3, seed=42)
    pinned = [c.submit("gsn", inputs={"data": tiny}, device=r).id
              for r in ("cuda:1", "fake:1", "fake:0")]
    final = wait_all(c, ids + pinned)
    assert all(final[i]["state"] == "DONE" for i in ids + pinned)
    assert [final[i]["device"] for i in pinned] == ["fake:1", "fake:1", "fake:0"]
    assert_same_result(c.result(ids[1]), run_worker(datas[1]))
    c.close()
