"""Job types describe themselves (issue 12): the `describe` op over the wire,
`neuroq describe`, the Python client's copy of the tables, unknown inputs
refused like unknown params, and the generated docs that must match."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, WORKER, make_data, pack, raw_call

import neuroq
from neuroq import _jobtypes, errors

GEN = REPO / "deploy" / "gen-jobdocs.py"


def _by_name(rows):
    return {r["name"]: r for r in rows}


def test_describe_all_types(shared_daemon):
    with neuroq.Client(shared_daemon.url) as c:
        types = c.describe()
        assert [t["name"] for t in types] == c.hello()["job_types"] == ["gsn", "spikesort"]
        assert c.describe("gsn") == [types[0]]
        with pytest.raises(errors.BadType, match="nope"):
            c.describe("nope")
    gsn = types[0]
    assert gsn["nil"] == "default"
    ps = _by_name(gsn["params"])
    assert ps["wantshrinkage"]["type"] == "bool" and ps["wantshrinkage"]["default"] is True
    assert ps["uneven"]["default"] == "fast"
    assert ps["uneven"]["choices"] == ["fast", "missing", "reference"]
    assert ps["returns"]["default"] == ["cN", "cS", "cNb", "cSb"]
    assert ps["shrinklevels"]["min"] == 0 and ps["shrinklevels"]["max"] == 1
    assert "default" not in ps["precision"] and ps["precision"]["default_text"]
    [data] = gsn["inputs"]
    assert data == {"name": "data", "dtypes": ["<f8", "<f4"], "shape": ["N", "C", "T"],
                    "required": True, "doc": data["doc"]}
    outs = _by_name(gsn["outputs"])
    assert outs["mnN"]["shape"] == [1, "N"] and outs["cSb"]["shape"] == ["N", "N"]
    assert outs["numiters"]["type"] == "int" and outs["numiters"]["when"] == "always"

    ss = types[1]
    assert ss["nil"] == "refused"
    sp = _by_name(ss["params"])
    assert sp["th_detect"] == {"name": "th_detect", "type": "float", "default": 4.0, "min": 1.0,
                               "max": 100.0, "doc": sp["th_detect"]["doc"]}
    assert sp["seed"]["max"] == 2**63 - 1 and sp["batch"]["min"] == 244
    assert sp["recording"]["type"] == "path" and "default" not in sp["recording"]
    so = _by_name(ss["outputs"])
    for k in ("n_units", "n_spikes", "n_good", "n_mua", "n_templates", "duration_s",
              "output_dir", "unit_spike_counts", "unit_good", "unit_amplitude", "drift_um"):
        assert k in so, k
    assert so["unit_good"]["dtypes"] == ["|b1"] and so["unit_good"]["shape"] == ["K"]
    assert so["drift_um"]["when"] == "drift is true"
    assert [i["name"] for i in ss["inputs"]] == ["data"] and not ss["inputs"][0]["required"]


def test_describe_bad_requests(shared_daemon):
    rep = raw_call(shared_daemon, pack({"v": 1, "op": "describe", "type": 5}))
    assert rep["ok"] is False and rep["error"] == "EBADPARAM" and "type" in rep["message"]
    rep = raw_call(shared_daemon, pack({"v": 1, "op": "describe", "type": "gsnx"}))
    assert rep["error"] == "EBADTYPE" and "gsnx" in rep["message"]


def test_spikesort_outputs_are_described(shared_daemon):
    """Every result key of a real spikesort job is in its outputs table (and
    every output without a `when` came back)."""
    x = (np.random.RandomState(0).randn(30000, 4) * 20).astype("<i2")
    with neuroq.Client(shared_daemon.url) as c:
        [ss] = c.describe("spikesort")
        job = c.submit("spikesort", inputs={"data": x},
                       params={"sample_rate": 30000.0, "drift": False, "learn_batches": 1})
        job.wait(progress=False, timeout=300)
        res = job.result()
    outs = _by_name(ss["outputs"])
    assert set(res) <= set(outs), set(res) - set(outs)
    assert {k for k, o in outs.items() if o["when"] == "always"} <= set(res)
    for k, v in res.items():
        if outs[k]["type"] == "array":
            assert v.dtype.str in outs[k]["dtypes"], k
            assert v.ndim == len(outs[k]["shape"]), k


def test_gsn_outputs_are_described(shared_daemon):
    with neuroq.Client(shared_daemon.url) as c:
        [gsn] = c.describe("gsn")
        job = c.submit("gsn", inputs={"data": make_data(5, 12, 3)},
                       params={"returns": ["cN", "eigvals_signal"]})
        job.wait(progress=False, timeout=120)
        res = job.result()
    outs = _by_name(gsn["outputs"])
    assert set(res) <= set(outs), set(res) - set(outs)
    assert {k for k, o in outs.items() if o["when"] == "always"} <= set(res)
    sym = {"N": 5, "L": 51}
    for k, v in res.items():
        if outs[k]["type"] == "array":
            assert v.dtype.str in outs[k]["dtypes"], k
            want = tuple(s if isinstance(s, int) else sym[s] for s in outs[k]["shape"])
            assert v.shape == want, (k, v.shape, want)


def test_unknown_input_refused(shared_daemon):
    d = make_data(4, 10, 3)
    with neuroq.Client(shared_daemon.url) as c:
        with pytest.raises(errors.BadParam, match="unknown input 'weights'") as ei:
            c.submit("gsn", inputs={"data": d, "weights": np.ones(4)})
        assert "'data'" in ei.value.message
        with pytest.raises(errors.BadParam, match="unknown input 'extra'"):
            c.submit("spikesort", inputs={"data": np.zeros((1000, 4), "<i2"),
                                          "extra": np.zeros(3)},
                     params={"sample_rate": 30000.0})
        # the table's checks, with today's codes
        with pytest.raises(errors.BadParam, match="unknown parameter 'device'"):
            c.submit("gsn", inputs={"data": d}, params={"device": 1})
        with pytest.raises(errors.BadArray, match="'data' is required"):
            c.submit("gsn", inputs={})
        with pytest.raises(errors.BadArray, match="3-D"):
            c.submit("gsn", inputs={"data": d[0]})
        with pytest.raises(errors.BadParam, match=r"'th_detect' = 0\.5 is out of range \[1, 100\]"):
            c.submit("spikesort", inputs={"data": np.zeros((1000, 4), "<i2")},
                     params={"sample_rate": 30000.0, "th_detect": 0.5})
        with pytest.raises(errors.BadParam, match="hp_hz"):
            c.submit("spikesort", inputs={"data": np.zeros((1000, 4), "<i2")},
                     params={"sample_rate": 1000.0, "hp_hz": 500})
        # gsn: None (nil) is the default; spikesort refuses it
        job = c.submit("gsn", inputs={"data": d}, params={"wantshrinkage": None})
        job.wait(progress=False, timeout=120)
        assert job.result(["shrinklevels"])["shrinklevels"].shape == (51,)
        with pytest.raises(errors.BadParam, match="th_match"):
            c.submit("spikesort", inputs={"data": np.zeros((1000, 4), "<i2")},
                     params={"sample_rate": 30000.0, "th_match": None})


def test_client_tables_match_the_daemon(shared_daemon):
    """neuroq._jobtypes (generated, shipped with the client) is what the
    daemon serves, and what neuroq-worker describe prints."""
    with neuroq.Client(shared_daemon.url) as c:
        served = {t["name"]: t for t in c.describe()}
    assert served == _jobtypes.TYPES
    dumped = json.loads(subprocess.run([str(WORKER), "describe"], check=True,
                                       capture_output=True, text=True).stdout)
    assert {t["name"]: t for t in dumped["types"]} == served
    assert "wantshrinkage  bool     default true" in neuroq.perform_gsn.__doc__
    assert "th_detect" in neuroq.spikesort.__doc__


def test_cli_describe(shared_daemon):
    r = shared_daemon.cli("describe", "gsn")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("gsn: GSN")
    row = next(x for x in lines if x.split()[:1] == ["wantshrinkage"])
    assert row.split()[:3] == ["wantshrinkage", "bool", "true"]
    row = next(x for x in lines if x.split()[:1] == ["uneven"])
    assert "fast | missing | reference" in row
    assert any(x.split()[:4] == ["data", "<f8|<f4", "N", "x"] for x in lines)
    assert "spikesort" not in r.stdout
    r = shared_daemon.cli("describe")
    assert r.returncode == 0 and "\nspikesort: " in r.stdout
    row = next(x for x in r.stdout.splitlines() if x.split()[:1] == ["merge_corr"])
    assert row.split()[:4] == ["merge_corr", "float", "0.9", "[0.5,"]
    r = shared_daemon.cli("describe", "--json")
    assert r.returncode == 0
    with neuroq.Client(shared_daemon.url) as c:
        assert json.loads(r.stdout)["types"] == c.describe()
    r = shared_daemon.cli("describe", "nope")
    assert r.returncode == 1 and r.stderr.startswith("neuroq: EBADTYPE: ")
    r = shared_daemon.cli("describe", "gsn", "spikesort")
    assert r.returncode == 2


def test_docs_match_the_tables(tmp_path):
    """The generated parts of PROTOCOL.md, README.md, the spikesort README
    and neuroq/_jobtypes.py are what the tables give; an edit to one fails
    the check."""
    r = subprocess.run([sys.executable, str(GEN), "--check"], capture_output=True, text=True,
                       env={"NEUROQ_BUILD": str(WORKER.parents[1])})
    assert r.returncode == 0, r.stderr
    # a copy of the tree with one default changed by hand
    for rel in ("proto/PROTOCOL.md", "README.md", "daemon/jobs/spikesort/README.md",
                "client/python/neuroq/_jobtypes.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    doc = tmp_path / "daemon/jobs/spikesort/README.md"
    text = doc.read_text()
    assert "| `th_detect` | float | `4` |" in text
    doc.write_text(text.replace("| `th_detect` | float | `4` |", "| `th_detect` | float | `5` |"))
    r = subprocess.run([sys.executable, str(GEN), "--check", "--root", str(tmp_path),
                        "--build", str(WORKER.parents[1])], capture_output=True, text=True)
    assert r.returncode == 1 and "daemon/jobs/spikesort/README.md" in r.stderr
    assert "PROTOCOL.md" not in r.stderr
    # the generator puts it back
    r = subprocess.run([sys.executable, str(GEN), "--root", str(tmp_path),
                        "--build", str(WORKER.parents[1])], capture_output=True, text=True)
    assert r.returncode == 0 and "| `th_detect` | float | `4` |" in doc.read_text()
