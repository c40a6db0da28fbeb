"""The Python package against the real daemon."""

import threading
import time

import numpy as np
import pytest

import neuroq
from conftest import (GSN_ARRAYS, LONG_JOB, Frozen, assert_gsn_sane, assert_same_result,
                      make_data, run_worker)
from neuroq import errors


def test_hello_devices(shared_daemon):
    with shared_daemon.client() as c:
        h = c.hello()
        assert h["version"] == 1 and "gsn" in h["job_types"] and isinstance(h["uid"], int)
        devs = c.devices()
        assert devs[0]["kind"] == "cpu" and devs[0]["mem_total"] > 0


def test_perform_gsn_equals_worker(shared_daemon):
    x = make_data(12, 30, 4, seed=21)
    opt = {"wantshrinkage": 1, "wantverbose": 0, "backend": "numpy",
           "returns": ["cN", "cS", "cNb", "cSb", "eigvals_signal", "eigvecs_signal"]}
    with shared_daemon.client() as c:
        res = neuroq.perform_gsn(x, opt, client=c, device="cpu")
    direct = run_worker(x, {"wantshrinkage": True, "returns": opt["returns"]})
    assert_same_result(res, direct, names=GSN_ARRAYS + ("eigvals_signal", "eigvecs_signal",
                                                        "shrinklevelN", "shrinklevelD",
                                                        "numiters"))
    assert_gsn_sane(res, x)
    assert set(res) == {"mnN", "mnS", "ncsnr", "cN", "cS", "cNb", "cSb", "shrinklevelN",
                        "shrinklevelD", "numiters", "eigvals_signal", "eigvecs_signal"}
    assert type(res["numiters"]) is int and type(res["shrinklevelN"]) is float
    assert res["mnN"].shape == (1, 12) and res["ncsnr"].shape == (12,)
    assert res["eigvecs_signal"].shape == (12, 12) and res["eigvals_signal"].shape == (12,)
    w = res["eigvals_signal"]
    assert np.all(np.diff(w) <= 1e-12)  # descending
    np.testing.assert_allclose(np.sort(w), np.linalg.eigvalsh(res["cSb"]), atol=1e-9)
    v = res["eigvecs_signal"]  # column i is vector i, largest-|.| entry positive
    np.testing.assert_allclose(res["cSb"] @ v, v * w, atol=1e-9 * max(1, abs(w).max()))
    np.testing.assert_allclose(v.T @ v, np.eye(12), atol=1e-9)
    big = v[np.abs(v).argmax(axis=0), np.arange(12)]
    assert np.all(big > 0)


def test_perform_gsn_options(shared_daemon):
    x = make_data(6, 20, 3, seed=22)
    with shared_daemon.client() as c:
        r = neuroq.perform_gsn(x, {"wantshrinkage": 0, "wantverbose": 0}, client=c)
        assert r["shrinklevelN"] == 1.0 and r["shrinklevelD"] == 1.0
        r = neuroq.perform_gsn(x, {"returns": "cSb", "wantverbose": 0}, client=c)
        assert "cSb" in r and "cN" not in r and "cS" not in r
        r = neuroq.perform_gsn(x.astype(np.float32), {"wantverbose": 0}, client=c)
        assert r["cSb"].dtype == np.float32
        with pytest.raises(ValueError):
            neuroq.perform_gsn(x, {"backend": "jax"}, client=c)
        with pytest.raises(ValueError):
            neuroq.perform_gsn(x, {"returns": ["cX"]}, client=c)
        with pytest.raises(ValueError, match="at least 2"):
            neuroq.perform_gsn(x[:, :, :1], client=c)
        with pytest.raises(ValueError):
            neuroq.perform_gsn(x[:, :, 0], client=c)
        with pytest.raises(ValueError):  # a condition without any trial: daemon's EBADDATA
            y = x.copy()
            y[:, 0, :] = np.nan
            neuroq.perform_gsn(y, {"wantverbose": 0}, client=c)


def test_lifecycle(shared_daemon):
    x = make_data(8, 20, 3, seed=23)
    with shared_daemon.client() as c:
        job = c.submit("gsn", inputs={"data": x}, params={"wantshrinkage": True},
                       priority=3)
        assert isinstance(job.id, int) and not job.existing
        st = job.status()
        assert st["id"] == job.id and st["priority"] == 3 and st["owner"] == c.hello()["uid"]
        final = job.wait(progress=False, timeout=120)
        assert final["state"] == "DONE" and final["progress"] == pytest.approx(1.0)
        assert final["finished"] >= final["started"] >= final["submitted"] > 0
        res = job.result()
        assert_gsn_sane(res, x)
        assert res["cN"].flags.writeable
        sub = job.result(names=["cN"])
        assert "cN" in sub and "cSb" not in sub
        assert job.id in [j["id"] for j in c.jobs()]
        assert job.id in [j["id"] for j in c.jobs(state="DONE")]
        assert job.id not in [j["id"] for j in c.jobs(state="QUEUED")]
        assert isinstance(job.logs(), str)
        same = c.submit("gsn", inputs={"data": x}, idem="py-lifecycle")
        again = c.submit("gsn", inputs={"data": x}, idem="py-lifecycle")
        assert again.id == same.id and again.existing


def test_exceptions_carry_code_and_message(shared_daemon):
    with shared_daemon.client() as c:
        with pytest.raises(errors.NoJob) as ei:
            c.job(987654).status()
        e = ei.value
        assert (e.code, e.name) == (20, "ENOJOB") and e.message
        assert isinstance(e, neuroq.JobError) and isinstance(e, neuroq.NeuroqError)
        with pytest.raises(errors.BadParam) as ei:
            c.submit("gsn", inputs={"data": make_data(3, 5, 2)},
                     params={"shrinklevels": [2.0]})
        assert ei.value.code == 6 and "shrinklevels" in ei.value.message
        with pytest.raises(errors.BadData):
            y = make_data(3, 5, 2)
            y[0, 0, 0] = np.inf
            c.submit("gsn", inputs={"data": y})
    with pytest.raises(errors.Unreachable):
        neuroq.Client("ipc:///tmp/no-such-neuroq-dir/x.sock", timeout=1)


@pytest.mark.parametrize("shape", [(0, 5, 2), (3, 0, 2), (3, 5, 0)])
def test_submit_empty_array_gets_the_daemons_answer(shared_daemon, shape):
    # an array with a zero in its shape is encoded (no memoryview TypeError)
    # and refused by the daemon's validation with a neuroq error
    with shared_daemon.client() as c:
        with pytest.raises(errors.NeuroqError) as ei:
            c.submit("gsn", inputs={"data": np.zeros(shape)})
        assert ei.value.code in (7, 8) and "data" in ei.value.message


def test_progress_events_and_bar(daemon_factory, capsys):
    d = daemon_factory()
    # c2 finds the event socket through hello's "events"
    with d.client() as c, neuroq.Client(d.url) as c2:
        # queue the job behind a held one, so the waiter is subscribed
        # before the job starts: no event can be missed by timing
        blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=26)})
        frozen = Frozen(d, c, blocker.id)
        job = c2.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=24)})
        out = {}
        t = threading.Thread(target=lambda: out.update(j=job.wait(progress=True, timeout=300)))
        t.start()
        time.sleep(1.0)
        c.cancel(blocker.id)
        frozen.thaw()
        t.join(300)
        assert out["j"]["state"] == "DONE"
        assert job.events_seen > 0, "no progress event arrived on the PUB socket"
    err = capsys.readouterr().err
    assert f"job {job.id}" in err and "100%" in err


def test_wait_timeout_interrupt_and_cancel(daemon_factory, monkeypatch):
    d = daemon_factory()
    x = make_data(*LONG_JOB, seed=25)
    with d.client() as c:
        job = c.submit("gsn", inputs={"data": x})
        frozen = Frozen(d, c, job.id)
        with pytest.raises(errors.TimedOut):
            job.wait(progress=False, timeout=0.5)

        # Ctrl-C stops waiting; the job keeps running
        calls = {"n": 0}
        real_status = neuroq.Job.status

        def interrupting(self):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            return real_status(self)

        monkeypatch.setattr(neuroq.Job, "status", interrupting)
        with pytest.raises(KeyboardInterrupt):
            job.wait(progress=False, poll=0.05)
        assert real_status(job)["state"] == "RUNNING"
        # ... unless asked to cancel
        calls["n"] = 0
        with pytest.raises(KeyboardInterrupt):
            job.wait(progress=False, poll=0.05, cancel_on_interrupt=True)
        frozen.thaw()
        monkeypatch.undo()
        with pytest.raises(errors.Canceled):
            job.wait(progress=False, timeout=60)
        assert job.status()["state"] == "CANCELED"
        assert job.wait(progress=False, raise_on_error=False)["state"] == "CANCELED"


@pytest.mark.gpu
def test_cuda_matches_cpu(daemon_factory):
    """On a machine with a GPU: the same job on cuda and on cpu agree."""
    d = daemon_factory(devices=None)
    with d.client() as c:
        if not any(dv["kind"] == "cuda" for dv in c.devices()):
            pytest.skip("no cuda device")
        x = make_data(300, 80, 4, seed=27)
        opt = {"wantverbose": 0}
        on_gpu = neuroq.perform_gsn(x, opt, client=c, device="cuda")
        on_cpu = neuroq.perform_gsn(x, opt, client=c, device="cpu")
    assert_same_result(on_gpu, on_cpu, rtol=1e-9)
    assert_gsn_sane(on_gpu, x)
