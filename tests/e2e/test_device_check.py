"""The GPU device check, rehearsed on the cpu (bench/device_check.sh --dry-run), and the size of
what the GPU machine must be sent.

The dry run goes through the check's steps (build check, kernel conformance, the gsn GPU tests,
the gsn benchmark with its cpu reference, spike sorting a generated recording) on the cpu
backend at small sizes; its JSON must have the schema the GPU run will write and every part must
pass (or skip where only a GPU can run it).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BUILD, REPO, _need_binaries

CHECK = REPO / "bench" / "device_check.sh"
LIMIT = 64 << 20  # what the device tool sends at most: tracked tree + carried paths
# Measured 2026-12-06 with `bench/device_check.sh --pack` (this branch): .devcarry/devlibs.tar.xz
# (../shared/device/bundle-libs.sh) and .devcarry/build + .devcarry/lib; used when .devcarry
# is not there to be measured.
PACK_MEASURED = {"devlibs.tar.xz": 8762888, "build+lib": 1627384 + 579792}
MARGIN = 1.5

PARTS = ("env", "build", "kern_test", "gsn_tests", "gsn_bench", "spikesort")
STATUSES = {"pass", "fail", "skip", "error"}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    _need_binaries()
    for p in ("daemon/jobs/spikesort/ss-run", "kernels/kern_cpu_test"):
        if not os.access(BUILD / p, os.X_OK):
            pytest.fail(f"not built: {BUILD / p}")
    out = tmp_path_factory.mktemp("dc")
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(["bash", str(CHECK), "--dry-run", "--build", str(BUILD), "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=env)
    rep = json.loads((out / "device_check.json").read_text())
    return p, rep, out


def test_dry_run_passes(dry_run):
    p, rep, out = dry_run
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert rep["ok"] is True
    assert rep["mode"] == "dry-run" and rep["device"] == "cpu"
    summary = (out / "device_check.txt").read_text()
    assert summary.splitlines()[0].endswith(": OK")
    assert summary in p.stdout  # the same summary ends the output (the tool's output tail)


def test_dry_run_schema(dry_run):
    _, rep, _ = dry_run
    assert rep["schema"] == 1
    for k, t in (("started", str), ("budget_s", (int, float)), ("elapsed_s", (int, float)),
                 ("host", dict), ("parts", dict), ("skipped", list), ("ok", bool)):
        assert isinstance(rep[k], t), k
    assert rep["elapsed_s"] <= rep["budget_s"] + 10
    assert list(rep["parts"]) == list(PARTS)
    for name, part in rep["parts"].items():
        assert part["status"] in STATUSES, name
        assert part["status"] != "skip" or name == "gsn_tests", (name, part)  # only GPU tests skip
        assert isinstance(part["time_s"], (int, float)) and part["time_s"] <= part["budget_s"] + 5
        assert isinstance(part["note"], str)
    assert rep["parts"]["kern_test"]["test"] == "kern_cpu_test"
    assert rep["parts"]["kern_test"]["exit_code"] == 0
    # the gsn GPU tests were found and skipped for want of a device (not "no tests")
    gt = rep["parts"]["gsn_tests"]
    assert gt["skipped"] >= 5 and gt["failed"] == 0 and gt["passed"] == 0


def test_dry_run_gsn_figures(dry_run):
    _, rep, _ = dry_run
    gb = rep["parts"]["gsn_bench"]
    assert gb["status"] == "pass" and gb["skipped"] == []
    assert (gb["C"], gb["T"], gb["returns"]) == (20, 5, ["cSb", "cNb"])
    runs = {(r["N"], r["precision"], r["role"]): r for r in gb["runs"]}
    assert set(runs) == {(n, p, r) for n in gb["sizes"] for p, r in
                         (("float64", "dev"), ("float32", "dev"), ("float64", "ref"))}
    for (n, prec, role), r in runs.items():
        assert r["status"] == "pass" and r["device"] == "cpu"
        assert r["wall_s"] > 0 and 0 < r["compute_s"] <= r["wall_s"]
        assert r["peak_host_mib"] > 1 and r["peak_device_mib"] is None  # no nvidia-smi here
        a_n, a_d, it = r["levels"]
        assert 0 <= a_n <= 1 and 0 <= a_d <= 1 and it >= 0
        if role == "dev":
            v = r["vs_cpu"]
            assert v["same_levels"] is True
            # the cpu against itself: float64 is the same program on the same data
            assert v["max_rel"] == 0.0 if prec == "float64" else 0 < v["max_rel"] < 1e-3
            assert v["speedup"] > 0


def test_dry_run_spikesort_figures(dry_run):
    _, rep, _ = dry_run
    ss = rep["parts"]["spikesort"]
    assert ss["status"] == "pass"
    assert ss["recording"]["channels"] == 32 and ss["recording"]["generate_s"] >= 0
    (r,) = ss["runs"]
    assert r["device"] == "cpu" and r["status"] == "pass"
    assert r["x_realtime"] > 0 and r["result"]["device"] == "cpu"
    assert r["result"]["duration_s"] == pytest.approx(ss["recording"]["seconds"], abs=0.01)
    assert r["gt_units"] == ss["recording"]["units"] and 0 <= r["well_detected"] <= r["gt_units"]
    assert r["well_detected"] >= r["gt_units"] // 2  # it sorted something real
    # the traffic per second of recording and the device model, from the result's counters
    tr = r["traffic"]
    assert tr["model_device_mib_per_batch"] > 0
    assert tr["h2d_mib_per_s"] > 0 and tr["d2h_mib_per_s"] > 0
    assert 0 < tr["match_d2h_mib_per_s"] <= tr["d2h_mib_per_s"]


def test_budget_stops_a_part_and_says_so(tmp_path):
    """A budget too small for the benchmark: the parts are skipped and named, the JSON is still
    written, and the run is not OK only when something failed."""
    _need_binaries()
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(["bash", str(CHECK), "--dry-run", "--build", str(BUILD), "--out", str(tmp_path),
                        "--skip", "gsn_tests", "--skip", "spikesort", "--gsn-sizes", "60,1500",
                        "--budget-s", "25"],
                       capture_output=True, text=True, timeout=120, env=env)
    rep = json.loads((tmp_path / "device_check.json").read_text())
    assert rep["parts"]["gsn_tests"]["status"] == "skip"
    assert rep["parts"]["spikesort"]["status"] == "skip"
    assert any(s.startswith("spikesort: --skip") for s in rep["skipped"])
    gb = rep["parts"]["gsn_bench"]
    done = {r["N"] for r in gb["runs"] if r["status"] == "pass"}
    assert 60 in done and 1500 not in done, gb
    assert any("N=1500" in s for s in gb["skipped"]), gb
    assert "SKIPPED" in p.stdout and "skipped:" in (tmp_path / "device_check.txt").read_text()
    assert p.returncode == 0 and rep["ok"] is True


def _tracked_bytes():
    r = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, timeout=30)
    if r.returncode != 0:
        pytest.skip("not a git checkout: the tracked tree cannot be listed")
    total = 0
    for f in r.stdout.split(b"\0"):
        p = REPO / os.fsdecode(f)
        if f and p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def test_carried_tree_fits_the_device_tool():
    tracked = _tracked_bytes()
    carry = REPO / ".devcarry"
    if carry.is_dir():
        carried = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    else:
        carried = MARGIN * sum(PACK_MEASURED.values())
    assert tracked + carried < LIMIT, (
        f"tracked {tracked / 2**20:.1f} MiB + carried {carried / 2**20:.1f} MiB >= 64 MiB")
    # the tracked tree alone leaves room for the carried build and libraries
    assert tracked < LIMIT - MARGIN * sum(PACK_MEASURED.values())
