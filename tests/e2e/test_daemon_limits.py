"""Daemon limits and housekeeping: oversized requests get ETOOBIG, a cancel
survives a crash, "auto" keeps big jobs on GPUs, devices figures are fresh,
old results are removed after retention_days.

A fake GPU: the daemon's worker_path points at a script that reports a
"cuda:0" on `probe` (its free memory drops 1 MiB per probe) and runs every job
with the real worker on the cpu.
"""

import sqlite3
import time

import numpy as np
import pytest

import neuroq
from conftest import (LONG_JOB, WORKER, Frozen, make_data, pack, raw_call, wait_state,
                      wire_array, worker_pids)

MiB = 1 << 20
FAKE_GPU_TOTAL = 8 << 30


def submit_body(data):
    return pack({"v": 1, "op": "submit", "type": "gsn", "params": {},
                 "inputs": {"data": wire_array(np.asarray(data, dtype="<f8"))}})


@pytest.fixture
def fresh(daemon_factory):
    """A daemon made by the test (started with start()); stopped at the end."""

    def make(conf=None, devices="cpu", fake_gpu=False, cpu_slots=1):
        d = daemon_factory(cpu_slots=cpu_slots, conf=dict(conf or {}), devices=devices,
                           start=False)
        if fake_gpu:
            d.conf["worker_path"] = str(fake_worker(d.dir))
        return d

    return make


def fake_worker(state_dir):
    fake = state_dir / "fake"
    fake.mkdir()
    script = fake / "neuroq-worker"
    counter = fake / "probes"
    script.write_text(f"""#!/bin/bash
if [ "$1" = probe ]; then
    n=$(cat {counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {counter}
    echo "cpu cpu 68719476736 34359738368"
    echo "cuda:0 cuda {FAKE_GPU_TOTAL} $(({FAKE_GPU_TOTAL} - n * {MiB}))"
    exit 0
fi
args=()
for a in "$@"; do case "$a" in cuda*) args+=(cpu);; *) args+=("$a");; esac; done
exec {WORKER} "${{args[@]}}"
""")
    script.chmod(0o755)
    return script


# ---- 1. oversized requests


def test_oversized_request_gets_etoobig(fresh):
    d = fresh(conf={"max_message_bytes": MiB}).start()
    with d.client() as c:
        assert c.hello()["max_message_bytes"] == MiB
    body = submit_body(np.zeros((100, 100, 20)))  # 1.6 MB
    assert len(body) > MiB
    rep = raw_call(d, body)
    assert rep is not None, "no reply to a request just over max_message_bytes"
    assert rep["ok"] is False and rep["code"] == 2 and rep["error"] == "ETOOBIG", rep
    assert rep["message"] == (f"request of {len(body)} bytes exceeds max_message_bytes "
                              f"{MiB} (send the inputs as several jobs, or ask the admin "
                              f"to raise it)")
    # just under the limit is decoded as usual
    small = submit_body(make_data(5, 10, 2))
    assert raw_call(d, small)["ok"] is True
    # beyond max + 64 MiB the transport drops it without buffering or reply
    huge = b"\x80" + b"\0" * (MiB + (64 << 20) + 4096)
    assert raw_call(d, huge, timeout=3) is None
    with d.client() as c:
        assert c.hello()["version"] == 1
        assert len(c.jobs(all_users=True)) == 1  # the small submit only
    assert d.alive()


# ---- 6. a cancel requested before a crash


def test_cancel_requested_before_crash_ends_canceled(fresh):
    d = fresh().start()
    c = d.client()
    a = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=3)}).id
    frozen = Frozen(d, c, a)  # the worker cannot act on SIGTERM
    b = c.submit("gsn", inputs={"data": make_data(5, 10, 2, seed=4)}).id
    assert c.cancel(a) == "RUNNING"
    assert c.status(a)["cancel_requested"] is True
    c.close()
    d.kill()
    deadline = time.monotonic() + 10
    while worker_pids(d.dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    frozen.thaw()
    d.start()
    with d.client() as c:
        j = c.status(a)
        assert j["state"] == "CANCELED", j
        assert j["error_code"] == 23 and "canceled" in j["error"]
        assert j["attempts"] == 1
        # the other job was not canceled with it
        assert wait_state(c, b, ("DONE", "FAILED", "CANCELED"))["state"] == "DONE"
        time.sleep(0.5)
        assert c.status(a)["state"] == "CANCELED"
        assert c.status(a)["attempts"] == 1
    assert "canceled=1" in d.log_path.read_text()


# ---- 3. "auto" keeps big jobs on GPUs


def test_auto_big_job_waits_for_gpu(fresh):
    d = fresh(conf={"gpu_slots": 1, "auto_cpu_max_flops": "1e8"}, devices=None,
              fake_gpu=True).start()
    c = d.client()
    assert [x["name"] for x in c.devices()] == ["cpu", "cuda:0"]
    a = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=5)}, device="cuda").id
    frozen = Frozen(d, c, a)
    assert c.status(a)["device"] == "cuda:0"
    big = c.submit("gsn", inputs={"data": make_data(300, 40, 4, seed=6)}).id  # ~1e9 flops
    tiny = c.submit("gsn", inputs={"data": make_data(3, 10, 2, seed=7)}).id
    # the small one falls back to the idle cpu; the big one waits for the GPU
    j = wait_state(c, tiny, ("DONE", "FAILED", "CANCELED"))
    assert (j["state"], j["device"]) == ("DONE", "cpu"), j
    time.sleep(0.5)
    assert c.status(big)["state"] == "QUEUED"
    frozen.thaw()
    c.cancel(a)
    assert wait_state(c, a, ("CANCELED",), timeout=30)["state"] == "CANCELED"
    j = wait_state(c, big, ("DONE", "FAILED", "CANCELED"), timeout=120)
    assert (j["state"], j["device"]) == ("DONE", "cuda:0"), j
    c.close()


# ---- 4. devices figures


def test_devices_cpu_figures_are_current(fresh):
    d = fresh().start()
    with d.client() as c:
        t0 = time.time()
        (cpu,) = c.devices()
        assert cpu["name"] == "cpu" and cpu["mem_free"] > 0
        assert abs(cpu["probed_at"] - t0) < 5
        assert cpu["mem_unreserved"] == cpu["capacity"] - cpu["mem_reserved"]
        time.sleep(0.3)
        (again,) = c.devices()
        assert again["probed_at"] > cpu["probed_at"]


def test_devices_gpu_reprobed_in_background(fresh):
    d = fresh(devices=None, fake_gpu=True).start()
    with d.client() as c:
        gpu = c.devices()[1]
        assert gpu["name"] == "cuda:0"
        assert gpu["mem_free"] == FAKE_GPU_TOTAL - MiB  # discovery: probe 1
        assert gpu["capacity"] == FAKE_GPU_TOTAL
        t0 = gpu["probed_at"]
        # within the minimum interval: no new probe
        assert c.devices()[1]["probed_at"] == t0
        time.sleep(5.2)
        # this request starts a probe and answers at once with the old figure
        t = time.monotonic()
        assert c.devices()[1]["mem_free"] == FAKE_GPU_TOTAL - MiB
        assert time.monotonic() - t < 1.0
        deadline = time.monotonic() + 10
        while (g := c.devices()[1])["mem_free"] == FAKE_GPU_TOTAL - MiB:
            assert time.monotonic() < deadline, "the background probe never landed"
            time.sleep(0.1)
        assert g["mem_free"] == FAKE_GPU_TOTAL - 2 * MiB
        assert g["probed_at"] > t0


# ---- 5. retention


def test_retention_removes_old_results(fresh):
    d = fresh(conf={"retention_days": 30}).start()
    with d.client() as c:
        old = c.submit("gsn", inputs={"data": make_data(4, 10, 2, seed=8)}).id
        new = c.submit("gsn", inputs={"data": make_data(4, 10, 2, seed=9)}).id
        for j in (old, new):
            assert wait_state(c, j, ("DONE", "FAILED"))["state"] == "DONE"
    d.stop()
    db = sqlite3.connect(d.dir / "neuroq.db")
    forty_days_ago = int((time.time() - 40 * 86400) * 1e6)
    db.execute("UPDATE jobs SET finished_us = ? WHERE id = ?", (forty_days_ago, old))
    db.commit()
    db.close()
    d.start()  # the start-up pass
    with d.client() as c:
        j = c.status(old)
        assert j["state"] == "DONE" and j["purged"] is True
        with pytest.raises(neuroq.NeuroqError) as ei:
            c.result(old)
        assert ei.value.code == 22
        assert "results were removed after 30 days" in ei.value.message
        assert not (d.dir / "jobs" / str(old)).exists()
        assert c.status(new)["purged"] is False
        assert "cN" in c.result(new)
        assert (d.dir / "jobs" / str(new)).is_dir()
