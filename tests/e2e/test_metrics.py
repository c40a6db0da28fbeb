"""/metrics of the monitoring port (http_listen), parsed by prometheus_client's
own text-format parser as Prometheus would, checked for the values that real
jobs leave behind (not by matching strings).

The port serves a snapshot at most a second old (daemon/http.c): a scrape
right after another may see the earlier state, so the tests wait FRESH
seconds before a scrape whose values they check exactly.
"""

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

import neuroq
from conftest import LONG_JOB, NEUROQD, Frozen, make_data, wait_all, wait_state, worker_pids

prom_parser = pytest.importorskip("prometheus_client.parser")

TINY = (3, 10, 2)
FRESH = 1.1  # s: older than the port's snapshot


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_daemon(factory, **kw):
    """A daemon with the monitoring port on a free localhost port."""
    port = free_port()
    conf = dict(kw.pop("conf", {}) or {})
    conf["http_listen"] = f"127.0.0.1:{port}"
    d = factory(conf=conf, **kw)
    d.http = f"http://127.0.0.1:{port}"
    return d


def scrape(d, wait=FRESH):
    """(families by name, {(sample name, labels): value})."""
    time.sleep(wait)
    with urllib.request.urlopen(d.http + "/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    fams, samples = {}, {}
    for fam in prom_parser.text_string_to_metric_families(text):
        assert fam.name not in fams, f"family {fam.name} twice"
        fams[fam.name] = fam
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"sample {key} twice"
            samples[key] = s.value
    return fams, samples


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def run_s(j):
    return j["finished"] - j["started"]


def test_counts_after_real_jobs_and_a_refused_submit(daemon_factory):
    d = http_daemon(daemon_factory)
    fams, s = scrape(d, wait=0)
    # before any job: the job types' series exist, at zero
    for t in ("gsn", "spikesort"):
        for st in ("queued", "running", "done", "failed", "canceled"):
            assert val(s, "neuroq_jobs", state=st, type=t) == 0
        assert val(s, "neuroq_jobs_submitted_total", type=t) == 0
        assert val(s, "neuroq_job_run_seconds_count", type=t) == 0

    c = d.client()
    ids = [c.submit("gsn", inputs={"data": make_data(*TINY, seed=i)}).id for i in range(2)]
    with pytest.raises(neuroq.NeuroqError) as e:
        c.submit("gsn", inputs={"data": make_data(*TINY)}, device="cuda:7")
    assert e.value.name == "ENODEV"  # a device name this server lacks
    final = wait_all(c, ids)
    assert all(j["state"] == "DONE" for j in final.values())

    fams, s = scrape(d)
    assert fams["neuroq_jobs"].type == "gauge"
    assert fams["neuroq_jobs_submitted"].type == "counter"
    assert fams["neuroq_requests"].type == "counter"
    assert fams["neuroq_job_run_seconds"].type == "histogram"
    assert fams["neuroq_job_queue_wait_seconds"].type == "histogram"

    assert val(s, "neuroq_jobs", state="done", type="gsn") == 2
    for st in ("queued", "running", "failed", "canceled"):
        assert val(s, "neuroq_jobs", state=st, type="gsn") == 0
    assert val(s, "neuroq_jobs_submitted_total", type="gsn") == 2
    assert val(s, "neuroq_requests_total", op="submit", code="OK") == 2
    assert val(s, "neuroq_requests_total", op="submit", code="ENODEV") == 1
    assert not [k for k in s if k[0] == "neuroq_job_errors_total"]

    # the histograms hold the two jobs, with the store's times
    runs = sorted(run_s(j) for j in final.values())
    assert val(s, "neuroq_job_run_seconds_count", type="gsn") == 2
    assert val(s, "neuroq_job_run_seconds_bucket", type="gsn", le="+Inf") == 2
    assert val(s, "neuroq_job_run_seconds_sum", type="gsn") == pytest.approx(sum(runs), abs=1e-3)
    below = [float(dict(k[1])["le"]) for k, v in s.items()
             if k[0] == "neuroq_job_run_seconds_bucket" and dict(k[1])["type"] == "gsn"
             and dict(k[1])["le"] != "+Inf" and v == 2]
    assert below and min(below) >= runs[-1]  # cumulative: the first full bucket holds the longest
    assert val(s, "neuroq_job_queue_wait_seconds_count", type="gsn") == 2

    uid = str(os.getuid())
    assert val(s, "neuroq_user_jobs", uid=uid, state="queued") == 0
    assert val(s, "neuroq_user_jobs", uid=uid, state="running") == 0
    assert val(s, "neuroq_user_device_seconds_total", uid=uid) == pytest.approx(sum(runs), abs=1e-3)

    assert val(s, "neuroq_device_slots", device="cpu") == 1
    assert val(s, "neuroq_device_running_jobs", device="cpu") == 0
    assert val(s, "neuroq_device_memory_granted_bytes", device="cpu") == 0
    assert val(s, "neuroq_device_memory_capacity_bytes", device="cpu") > 0
    assert val(s, "neuroq_device_memory_total_bytes", device="cpu") >= \
        val(s, "neuroq_device_memory_capacity_bytes", device="cpu")
    assert val(s, "neuroq_worker_restarts_total") == 0
    assert val(s, "neuroq_store_size_bytes") > 0
    assert val(s, "neuroq_state_dir_free_bytes") > 0
    version = subprocess.run([str(NEUROQD), "--version"], capture_output=True,
                             text=True).stdout.split()[1]
    assert val(s, "neuroq_build_info", version=version, protocol="1") == 1
    assert abs(val(s, "neuroq_start_time_seconds") - time.time()) < 600

    # the store's counters survive a restart; the process's start over
    d.stop()
    d.start()
    _, s = scrape(d)
    assert val(s, "neuroq_jobs_submitted_total", type="gsn") == 2
    assert val(s, "neuroq_jobs", state="done", type="gsn") == 2
    assert val(s, "neuroq_job_run_seconds_count", type="gsn") == 2
    assert val(s, "neuroq_requests_total", op="submit", code="ENODEV") is None
    c.close()


def test_running_queued_ledger_and_restart(daemon_factory):
    d = http_daemon(daemon_factory)
    c = d.client()
    long_id = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=1)}).id
    frozen = Frozen(d, c, long_id)
    queued = c.submit("gsn", inputs={"data": make_data(*TINY)}).id
    uid = str(os.getuid())
    try:
        _, s = scrape(d)
        assert val(s, "neuroq_jobs", state="running", type="gsn") == 1
        assert val(s, "neuroq_jobs", state="queued", type="gsn") == 1
        assert val(s, "neuroq_user_jobs", uid=uid, state="running") == 1
        assert val(s, "neuroq_user_jobs", uid=uid, state="queued") == 1
        assert val(s, "neuroq_device_running_jobs", device="cpu") == 1
        # the ledger's grant, as the daemon logged it at the start
        grant = [int(w.split("=")[1]) for line in d.log_path.read_text().splitlines()
                 if f"job started id={long_id} " in line
                 for w in line.split() if w.startswith("grant=")]
        assert grant and grant[0] > 0
        assert val(s, "neuroq_device_memory_granted_bytes", device="cpu") == grant[-1]
        # a queued job canceled: one ECANCELED error (a running job's cancel
        # could lose the race to its last stage on a fast machine)
        assert c.cancel(queued) == "CANCELED"

        # a crashed worker: the job starts again and the restart is counted
        for p in frozen.pids:
            os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while c.status(long_id)["attempts"] < 2:
            assert time.monotonic() < deadline, "the crashed job did not start again"
            time.sleep(0.05)
        _, s = scrape(d)
        assert val(s, "neuroq_worker_restarts_total") == 1
    finally:
        frozen.thaw()
        for p in worker_pids(d.dir, long_id):
            os.kill(p, signal.SIGCONT)
    final = wait_all(c, [long_id, queued])
    assert final[long_id]["state"] == "DONE" and final[queued]["state"] == "CANCELED"
    _, s = scrape(d)
    assert val(s, "neuroq_job_errors_total", type="gsn", code="ECANCELED") == 1
    assert val(s, "neuroq_jobs", state="canceled", type="gsn") == 1
    assert val(s, "neuroq_jobs", state="done", type="gsn") == 1
    c.close()


def test_scraped_during_a_thousand_job_run(daemon_factory):
    """Scrapes from a second thread while 1,000 tiny jobs are submitted and
    drain (so the scrapes fall inside the run however fast the machine is):
    each parses, holds the counters' invariants, the counters only go up,
    and at the end they hold every job."""
    d = http_daemon(daemon_factory, cpu_slots=2)
    c = d.client()
    x = make_data(*TINY, seed=5)
    snaps, stop, errs = [], threading.Event(), []

    def scraper():
        try:
            while not stop.is_set():
                snaps.append(scrape(d, wait=0.2)[1])
        except Exception as e:  # reported below, in the test's thread
            errs.append(e)

    t = threading.Thread(target=scraper)
    t.start()
    try:
        ids = [c.submit("gsn", inputs={"data": x}).id for _ in range(1000)]
        final = wait_all(c, ids)
    finally:
        stop.set()
        t.join(30)
    assert not errs, errs
    assert all(j["state"] == "DONE" for j in final.values())
    assert len(snaps) >= 3, len(snaps)
    last_sub = last_done = 0
    for sn in snaps:
        sub = val(sn, "neuroq_jobs_submitted_total", type="gsn")
        done = val(sn, "neuroq_jobs", state="done", type="gsn")
        assert last_sub <= sub <= 1000 and last_done <= done <= sub
        assert val(sn, "neuroq_job_run_seconds_count", type="gsn") == done
        assert done + val(sn, "neuroq_jobs", state="queued", type="gsn") + \
            val(sn, "neuroq_jobs", state="running", type="gsn") == sub
        last_sub, last_done = sub, done
    _, s = scrape(d)
    assert val(s, "neuroq_jobs_submitted_total", type="gsn") == 1000
    assert val(s, "neuroq_jobs", state="done", type="gsn") == 1000
    assert val(s, "neuroq_requests_total", op="submit", code="OK") == 1000
    assert val(s, "neuroq_job_queue_wait_seconds_count", type="gsn") == 1000
    builds = [val(sn, "neuroq_metrics_build_seconds") for sn in snaps]
    print(f"\n{len(snaps)} scrapes; snapshot build with <= 1000 rows: "
          f"max {max(builds) * 1e3:.2f} ms")
    c.close()


def test_off_by_default_and_bad_address(daemon_factory):
    d = daemon_factory()
    assert "http listening" not in d.log_path.read_text()
    bad = daemon_factory(conf={"http_listen": "127.0.0.1:notaport"}, start=False)
    with pytest.raises(RuntimeError, match="http_listen"):
        bad.start()
