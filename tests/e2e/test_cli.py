"""The neuroq CLI against the real daemon: the whole life of a gsn job."""

import json
import subprocess
import time

import numpy as np
import pytest

from conftest import (CLI, GSN_ARRAYS, GSN_SCALARS, LONG_JOB, Frozen, assert_gsn_sane,
                      assert_same_result, make_data, read_out_dir, run_worker)


def _submit(d, *args):
    r = d.cli("submit", "gsn", *args)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def test_version_and_devices(daemon):
    r = daemon.cli("version")
    assert r.returncode == 0, r.stderr
    assert "neuroq " in r.stdout and "neuroqd" in r.stdout
    r = daemon.cli("--json", "version")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    assert v["version"] == 1 and "gsn" in v["job_types"]
    r = daemon.cli("devices", "--json")
    assert r.returncode == 0, r.stderr
    devs = json.loads(r.stdout)["devices"]
    assert [d["kind"] for d in devs] == ["cpu"]
    assert devs[0]["slots"] >= 1
    r = daemon.cli("devices")
    assert r.returncode == 0 and "cpu" in r.stdout


def test_gsn_lifecycle(daemon, tmp_path):
    data = make_data(8, 20, 3, seed=1)
    np.save(tmp_path / "x.npy", data)
    jid = _submit(daemon, "--data", tmp_path / "x.npy", "--param", "wantshrinkage=true",
                  "--priority", "5")

    r = daemon.cli("--json", "status", jid)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["id"] == jid and st["type"] == "gsn" and st["priority"] == 5
    assert st["state"] in ("QUEUED", "RUNNING", "DONE")

    r = daemon.cli("wait", jid, "--timeout", "120")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "DONE"

    r = daemon.cli("status", jid)
    assert r.returncode == 0 and "DONE" in r.stdout

    out = tmp_path / "res"
    r = daemon.cli("result", jid, "--out", out)
    assert r.returncode == 0, r.stderr
    res = read_out_dir(out)
    for k in GSN_ARRAYS:
        assert (out / f"{k}.npy").exists(), k
    scal = json.loads((out / "result.json").read_text())
    assert isinstance(scal["numiters"], int) and isinstance(scal["shrinklevelN"], float)
    # the same file as the daemon's own out/result.json, byte for byte
    spooled = daemon.state / "jobs" / str(jid) / "out" / "result.json"
    assert (out / "result.json").read_bytes() == spooled.read_bytes()

    assert_gsn_sane(res, data)
    direct = run_worker(data, {"wantshrinkage": True})
    assert_same_result(res, direct)

    r = daemon.cli("--json", "list")
    assert r.returncode == 0, r.stderr
    jobs = json.loads(r.stdout)
    assert [j["id"] for j in jobs if j["id"] == jid] == [jid]
    r = daemon.cli("list", "--state", "DONE")
    assert r.returncode == 0 and str(jid) in r.stdout
    r = daemon.cli("--json", "list", "--state", "QUEUED")
    assert r.returncode == 0 and jid not in [j["id"] for j in json.loads(r.stdout)]

    r = daemon.cli("logs", jid)
    assert r.returncode == 0, r.stderr


def test_params_reach_the_job(daemon, tmp_path):
    """--param parsing: a comma list of floats and a string list."""
    data = make_data(6, 15, 3, seed=2)
    np.save(tmp_path / "x.npy", data)
    jid = _submit(daemon, "--data", tmp_path / "x.npy", "--param", "shrinklevels=0,0.5,1",
                  "--param", "returns=cN,cSb")
    r = daemon.cli("wait", jid, "--timeout", "120")
    assert r.returncode == 0, r.stderr
    r = daemon.cli("result", jid, "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    res = read_out_dir(tmp_path / "o")
    assert res["shrinklevelN"] in (0.0, 0.5, 1.0) and res["shrinklevelD"] in (0.0, 0.5, 1.0)
    assert "cN" in res and "cSb" in res and "cS" not in res and "cNb" not in res
    direct = run_worker(data, {"shrinklevels": [0.0, 0.5, 1.0], "returns": ["cN", "cSb"]})
    assert_same_result(res, direct, names=("cN", "cSb", "mnS", "ncsnr") + GSN_SCALARS)


def test_cancel_queued_and_running(daemon, tmp_path):
    big = make_data(*LONG_JOB, seed=3)
    small = make_data(5, 12, 3, seed=4)
    np.save(tmp_path / "big.npy", big)
    np.save(tmp_path / "small.npy", small)
    c = daemon.client()
    b = _submit(daemon, "--data", tmp_path / "big.npy")
    frozen = Frozen(daemon, c, b)
    s = _submit(daemon, "--data", tmp_path / "small.npy")
    assert c.status(s)["state"] == "QUEUED"  # one cpu slot, taken by b

    r = daemon.cli("cancel", s)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "CANCELED"
    r = daemon.cli("wait", s, "--timeout", "30")
    assert r.returncode == 4 and r.stdout.strip() == "CANCELED"

    assert c.status(b)["state"] == "RUNNING"
    frozen.thaw()
    t0 = time.monotonic()
    r = daemon.cli("cancel", b)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("CANCELED", "RUNNING")  # a running job stops at a safe point
    r = daemon.cli("wait", b, "--timeout", "60")
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert time.monotonic() - t0 < 30
    j = c.status(b)
    assert j["state"] == "CANCELED"
    # the slot is free again: a new job runs to the end
    s2 = _submit(daemon, "--data", tmp_path / "small.npy")
    assert daemon.cli("wait", s2, "--timeout", "60").returncode == 0
    c.close()


def test_failed_job_exit_code(daemon, tmp_path):
    """A job whose input turns bad in the spool fails at run time: exit 3."""
    big = make_data(*LONG_JOB, seed=5)
    np.save(tmp_path / "big.npy", big)
    np.save(tmp_path / "small.npy", make_data(5, 12, 3, seed=6))
    c = daemon.client()
    b = _submit(daemon, "--data", tmp_path / "big.npy")
    frozen = Frozen(daemon, c, b)
    s = _submit(daemon, "--data", tmp_path / "small.npy")
    spooled = daemon.dir / "jobs" / str(s) / "in" / "data.npy"
    if spooled.exists():
        spooled.write_bytes(b"\x93NUMPY garbage")
    c.cancel(b)
    frozen.thaw()
    if not spooled.exists():
        pytest.skip(f"spool layout differs from daemon/README.md ({spooled})")
    r = daemon.cli("wait", s, "--timeout", "60")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert r.stdout.strip() == "FAILED"
    assert "neuroq: job" in r.stderr and "failed" in r.stderr
    r = daemon.cli("--json", "status", s)
    j = json.loads(r.stdout)
    assert j["state"] == "FAILED" and j["error_code"] != 0 and j["error"]
    c.close()


def test_exit_codes(daemon, tmp_path):
    r = daemon.cli("frobnicate")
    assert r.returncode == 2 and "unknown command" in r.stderr
    r = daemon.cli("status")
    assert r.returncode == 2
    r = daemon.cli("status", "abc")
    assert r.returncode == 2
    r = daemon.cli("submit", "gsn", "--data", tmp_path / "missing.npy")
    assert r.returncode == 2 and "missing.npy" in r.stderr

    r = daemon.cli("status", "999999")
    assert r.returncode == 1
    assert r.stderr.startswith("neuroq: ENOJOB: ")
    r = daemon.cli("--json", "status", "999999")
    assert r.returncode == 1 and json.loads(r.stdout)["code"] == 20

    np.save(tmp_path / "x.npy", make_data(4, 10, 3))
    r = daemon.cli("submit", "gsn", "--data", tmp_path / "x.npy", "--param", "nosuchparam=1")
    assert r.returncode == 1 and r.stderr.startswith("neuroq: EBADPARAM: ")
    r = daemon.cli("submit", "nosuchtype", "--data", tmp_path / "x.npy")
    assert r.returncode == 1 and r.stderr.startswith("neuroq: EBADTYPE: ")
    r = daemon.cli("submit", "gsn", "--data", tmp_path / "x.npy", "--device", "tpu:7")
    assert r.returncode == 1 and ("EBADDEVICE" in r.stderr or "ENODEV" in r.stderr)

    r = daemon.cli("--url", f"ipc://{tmp_path}/nobody.sock", "version")
    assert r.returncode == 5 and "cannot reach" in r.stderr

    r = daemon.cli("--help")
    assert r.returncode == 0
    for code in "012345":
        assert f"\n  {code}  " in r.stdout


def test_idempotent_submit(daemon, tmp_path):
    np.save(tmp_path / "x.npy", make_data(4, 10, 3))
    a = _submit(daemon, "--data", tmp_path / "x.npy", "--idem", "once-only")
    b = _submit(daemon, "--data", tmp_path / "x.npy", "--idem", "once-only")
    r = daemon.cli("--json", "submit", "gsn", "--data", tmp_path / "x.npy", "--idem", "once-only")
    rep = json.loads(r.stdout)
    assert a == b == rep["id"] and rep["existing"] is True
    c = _submit(daemon, "--data", tmp_path / "x.npy")
    assert c != a


def test_wait_reports_progress_and_eta(daemon, tmp_path):
    """status carries the daemon's ETA (extrapolated from progress since the
    start); `neuroq wait` without a terminal logs a line per state/stage
    change or 10 % of progress, each with the ETA while RUNNING."""
    np.save(tmp_path / "big.npy", make_data(*LONG_JOB, seed=7))
    jid = _submit(daemon, "--data", tmp_path / "big.npy")
    waiter = subprocess.Popen([str(CLI), "--url", daemon.url, "wait", str(jid), "--timeout", "120"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_eta = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        before = time.time()
        r = daemon.cli("--json", "status", jid)
        after = time.time()
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout)
        if j["state"] == "DONE":
            break
        p = j["progress"]
        if j["state"] == "RUNNING" and p >= 0.01:
            # the daemon computed it between `before` and `after`
            lo = (before - j["started"]) * (1 - p) / p
            hi = (after - j["started"]) * (1 - p) / p
            assert lo - 1e-3 <= j["eta_s"] <= hi + 1e-3, (j, lo, hi)
            seen_eta = True
        else:
            assert j["eta_s"] == -1, j
        time.sleep(0.05)
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err
    assert out.strip() == "DONE"
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"job {jid} DONE 100%"), err
    assert len(lines) == len(set(lines)), err  # a line per change, not per poll
    j = json.loads(daemon.cli("--json", "status", jid).stdout)
    assert j["eta_s"] == 0
    if seen_eta:
        assert any(ln.startswith(f"job {jid} RUNNING") and " eta " in ln for ln in lines), err
