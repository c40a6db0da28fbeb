"""End-to-end tests of the spikesort pipeline through the standalone driver
`ss-run` (daemon/jobs/spikesort/ss_run.c): accuracy against synthetic ground
truth, phy folder validity, determinism, resume from checkpoints, and clear
errors.  SS_RUN names the binary (ctest sets it)."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from gen_gt import FS, compare, generate  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "common"))
from nq_build import program  # noqa: E402

N_CH = 32


def ss_run_path():
    return program("daemon/jobs/spikesort/ss-run", override_var="SS_RUN")


def run(rec, out, *extra, n_ch=N_CH, check=True, timeout=600):
    """ss-run on a recording into the phy folder out; with check, asserts
    it succeeded and returns (its result JSON, stderr), else the process."""
    cmd = [ss_run_path(), "--recording", str(rec), "--n-channels",
           str(n_ch), "--sample-rate", str(FS), "--out", str(out)]
    cmd += [str(e) for e in extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout), p.stderr
    return p


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("ss")
    rec = d / "rec.bin"
    times, labels = generate(str(rec), n_channels=N_CH, n_units=10,
                             duration_s=30.0, seed=0)
    return d, rec, times, labels


@pytest.fixture(scope="session")
def sorted_run(dataset):
    d, rec, times, labels = dataset
    out = d / "phy"
    res, log = run(rec, out, "--probe", str(rec) + ".probe.json",
                   "--ckpt", d / "ckpt")
    return out, res, log


def test_accuracy(dataset, sorted_run):
    d, rec, gt_t, gt_l = dataset
    out, res, _ = sorted_run
    t = np.load(out / "spike_times.npy")
    c = np.load(out / "spike_clusters.npy")
    acc = compare(gt_t, gt_l, t, c, delta=int(0.0004 * FS))
    print("accuracy per unit", np.round(acc, 3), "result", res)
    # SpikeForest's "well detected": accuracy ≥ 0.8
    assert np.sum(acc >= 0.8) >= 9, acc
    assert acc.mean() >= 0.9, acc
    assert res["n_units"] <= 14  # not shattered into pieces
    assert res["n_good"] >= 8    # refractory units are labelled good


def test_phy_folder(dataset, sorted_run):
    d, rec, _, _ = dataset
    out, res, _ = sorted_run
    L = {f: np.load(out / f) for f in os.listdir(out) if f.endswith(".npy")}
    for f in ["spike_times.npy", "spike_templates.npy", "spike_clusters.npy",
              "amplitudes.npy", "templates.npy", "channel_map.npy",
              "channel_positions.npy", "whitening_mat.npy",
              "whitening_mat_inv.npy", "similar_templates.npy"]:
        assert f in L, f
    n = L["spike_times.npy"].shape[0]
    assert n == res["n_spikes"] > 0
    assert L["spike_times.npy"].dtype == np.int64
    assert np.all(np.diff(L["spike_times.npy"]) >= 0)
    assert L["spike_times.npy"][-1] < 30 * FS
    for f in ["spike_templates.npy", "spike_clusters.npy"]:
        assert L[f].dtype == np.int32 and L[f].shape == (n,)
    assert L["amplitudes.npy"].dtype == np.float32
    assert L["amplitudes.npy"].shape == (n,)
    assert np.all(L["amplitudes.npy"] > 0)
    K, nt, C = L["templates.npy"].shape
    assert (nt, C) == (61, N_CH) and L["templates.npy"].dtype == np.float32
    assert L["spike_templates.npy"].max() < K
    # the trough of each template is at sample 20 (Kilosort's nt0min)
    tr = np.argmin(L["templates.npy"].min(axis=2), axis=1)
    assert np.all(np.abs(tr - 20) <= 2), tr
    assert L["channel_map.npy"].tolist() == list(range(N_CH))
    assert L["channel_positions.npy"].shape == (N_CH, 2)
    assert np.allclose(L["channel_positions.npy"][:, 1],
                       np.arange(N_CH) * 20)
    W, Wi = L["whitening_mat.npy"], L["whitening_mat_inv.npy"]
    assert W.shape == Wi.shape == (C, C)
    assert np.allclose(W @ Wi, np.eye(C), atol=1e-3)
    S = L["similar_templates.npy"]
    assert S.shape == (K, K) and np.allclose(np.diag(S), 1, atol=1e-5)
    # params.py points at the raw file with the right layout
    ns = {}
    exec((out / "params.py").read_text(), ns)
    assert os.path.samefile(ns["dat_path"], rec)
    assert ns["n_channels_dat"] == N_CH and ns["dtype"] == "int16"
    assert ns["offset"] == 0 and ns["sample_rate"] == FS
    assert ns["hp_filtered"] is False
    used = set(np.unique(L["spike_clusters.npy"]).tolist())
    for name, col in [("cluster_KSLabel.tsv", "KSLabel"),
                      ("cluster_group.tsv", "group"),
                      ("cluster_ContamPct.tsv", "ContamPct"),
                      ("cluster_Amplitude.tsv", "Amplitude")]:
        lines = (out / name).read_text().splitlines()
        assert lines[0] == "cluster_id\t" + col
        ids = {int(x.split("\t")[0]) for x in lines[1:]}
        assert ids == used, name
        if col in ("KSLabel", "group"):
            assert {x.split("\t")[1] for x in lines[1:]} <= {"good", "mua"}


def test_deterministic_and_resume(dataset, sorted_run):
    d, rec, _, _ = dataset
    out, res, _ = sorted_run
    # same parameters, no checkpoint: identical result
    res2, _ = run(rec, d / "phy2", "--probe", str(rec) + ".probe.json")
    for f in ["spike_times.npy", "spike_clusters.npy", "amplitudes.npy"]:
        assert np.array_equal(np.load(out / f), np.load(d / "phy2" / f)), f
    # a rerun on the first run's checkpoints resumes every stage
    assert len(glob.glob(str(d / "ckpt" / "b*.spk"))) == 15
    res3, log = run(rec, d / "phy3", "--probe", str(rec) + ".probe.json",
                    "--ckpt", d / "ckpt")
    assert "stage=whiten resumed=1" in log
    assert "stage=learn resumed=1" in log
    assert "resumed_batches=15" in log
    assert np.array_equal(np.load(out / "spike_times.npy"),
                          np.load(d / "phy3" / "spike_times.npy"))
    # another seed does not reuse the checkpoints
    _, log = run(rec, d / "phy4", "--probe", str(rec) + ".probe.json",
                 "--ckpt", d / "ckpt", "--seed", 7)
    assert "resumed" not in log


def device_bytes_model(C, NT, K, pad=61, fpad=192, rank=3, nt=61):
    """ss_batch_device_bytes (ss_batch.c), as documented in the README's
    "On a device": the batcher's raw and whitened batch and five C x C
    matrices (the whitening, and a batch's four drift-resampled pieces'); the matcher's residual, projections, one group's scores (<= K
    rows), U and V, the templates, their windows, a round's spike list, the
    groups' best gain/amplitude/template per sample, priors, ids and group
    overlaps, and (th_own, the default) the templates' own thresholds."""
    Tb = NT + 2 * pad
    Tf = Tb + 2 * fpad
    RK = rank * K
    return (4 * (C * Tf + C * Tb + 5 * C * C)
            + 4 * (C * Tb + RK * Tb + K * Tb + RK * (C + nt) + K * C * nt + 2 * K)
            + 12 * K * (Tb // nt + 2) + 12 * K * Tb + 4 * (3 * K + 1 + K * K)
            + 4 * K)


def check_traffic(res):
    """The result's host<->device traffic (the backend's copy counters) and
    the modelled device bytes: present, per second of recording, and within
    the model's bounds for the matching pass, which uploads every subtracted
    spike (12 bytes) and downloads it in an accepted list (16 bytes, with an
    8-byte count per round, at least one round per batch) -- and nothing
    else but, on a device, the raw batches up."""
    N, NT, pad, fpad = 30 * FS, 60000, 61, 192
    K, C, dur = res["n_templates"], N_CH, res["duration_s"]
    nb = -(-N // NT)
    Tb = NT + 2 * pad
    assert res["device_bytes_per_batch"] == device_bytes_model(C, NT, K)
    for k in ("h2d", "d2h"):
        assert res[k + "_bytes_per_s"] == pytest.approx(res[k + "_bytes"] / dur, rel=1e-6)
        assert 0 < res["match_" + k + "_bytes_per_s"] <= res[k + "_bytes_per_s"]
    match_up = res["match_h2d_bytes_per_s"] * dur
    match_down = res["match_d2h_bytes_per_s"] * dur
    raw = nb * 4 * C * (Tb + 2 * fpad) if res["device"] != "cpu" else 0
    assert match_down >= 8 * nb + 16 * res["n_spikes"]
    assert match_up >= raw + 12 * res["n_spikes"]
    # spikes found in the pads and dropped, duplicates removed: a few times
    # the kept ones at most, and no batch comes back; scores only once, the
    # first batch's (th_own, the default: each template's noise measured on
    # the host, 4 K (Tb - 60) bytes)
    assert match_down <= (8 * nb * 60 + 16 * 4 * res["n_spikes"]
                          + 4 * K * (Tb - 60))
    # (+ the matcher's templates: U, V, windows, priors; W on a device)
    setup = 4 * 3 * K * (C + 61) + 4 * K * C * 61 + 64 * K + 4096
    assert match_up <= raw + setup + 12 * 4 * res["n_spikes"]


def test_traffic_counters(dataset, sorted_run):
    check_traffic(sorted_run[1])


def test_device_path_on_cpu(dataset, sorted_run):
    """ss-run --device cpu-dev: the cpu's ops behind a device's caps, so the
    sort takes the GPU's path (raw batch uploaded, filtered, whitened by
    gemm, matched on a device residual; nothing read from device memory
    directly). The same spikes as the cpu path; amplitudes differ only by
    the whitening's rounding (gemm vs the host's in-place product)."""
    d, rec, _, _ = dataset
    out, res, _ = sorted_run
    res2, _ = run(rec, d / "phy_dev", "--probe", str(rec) + ".probe.json",
                  "--device", "cpu-dev")
    assert res2["device"] == "cpu-dev"
    check_traffic(res2)
    t1, t2 = np.load(out / "spike_times.npy"), np.load(d / "phy_dev" / "spike_times.npy")
    common, i1, i2 = np.intersect1d(t1, t2, return_indices=True)
    assert len(common) >= 0.995 * max(len(t1), len(t2))
    a1 = np.load(out / "amplitudes.npy")[i1]
    a2 = np.load(d / "phy_dev" / "amplitudes.npy")[i2]
    assert np.max(np.abs(a1 - a2)) <= 1e-4 * np.max(np.abs(a1))
    # on the device path the matching pass uploads every raw batch
    assert res2["match_h2d_bytes_per_s"] > 100 * res["match_h2d_bytes_per_s"]


def test_small_batches_agree(dataset, sorted_run):
    """Batch length is a memory knob, not an accuracy one."""
    d, rec, gt_t, gt_l = dataset
    res, _ = run(rec, d / "phy_b", "--probe", str(rec) + ".probe.json",
                 "--batch", 20000)
    t = np.load(d / "phy_b" / "spike_times.npy")
    c = np.load(d / "phy_b" / "spike_clusters.npy")
    acc = compare(gt_t, gt_l, t, c, delta=int(0.0004 * FS))
    assert np.sum(acc >= 0.8) >= 9, acc


def test_errors(dataset):
    d, rec, _, _ = dataset
    p = run(rec, d / "bad", n_ch=7, check=False)
    assert p.returncode == 1
    assert "not a multiple of 2 × n_channels (7)" in p.stderr
    bad = d / "bad_probe.json"
    bad.write_text(json.dumps({"chanMap": list(range(40)),
                               "xc": [0] * 40, "yc": list(range(40))}))
    p = run(rec, d / "bad", "--probe", bad, check=False)
    assert p.returncode == 1 and "rows 0..31" in p.stderr


def worker_path():
    return program("daemon/neuroq-worker", override_var="NEUROQ_WORKER")


def run_worker_job(job, params, data=None, timeout=600):
    """The spikesort job type through the worker contract, by hand: job/
    with params.mp (and in/data.npy when data is given), `neuroq-worker run`
    on the cpu; asserts it succeeded and returns (out/result.json, process)."""
    import msgpack
    w = worker_path()
    (job / "in").mkdir(parents=True)
    (job / "ckpt").mkdir()
    if data is not None:
        np.save(job / "in" / "data.npy", data)
    (job / "params.mp").write_bytes(msgpack.packb(params))
    p = subprocess.run([w, "run", "--type", "spikesort", "--dir", str(job),
                        "--device", "cpu"], capture_output=True, text=True,
                       timeout=timeout)
    err = (job / "error").read_text() if (job / "error").exists() else ""
    assert p.returncode == 0, err + p.stderr
    return json.loads((job / "out" / "result.json").read_text()), p


def test_worker_inline_data(tmp_path):
    """The job type through the worker contract: params.mp + in/data.npy
    (samples × channels int16), result scalars in out/result.json, the phy
    folder at output_dir. Skips until spikesort is registered."""
    worker_path()  # skips before making data when it is not built
    rec = tmp_path / "small.bin"
    gt_t, gt_l = generate(str(rec), n_channels=16, n_units=4,
                          duration_s=12.0, seed=3)
    data = np.fromfile(rec, dtype=np.int16).reshape(-1, 16)
    job = tmp_path / "job"
    res, p = run_worker_job(job, {"sample_rate": FS, "seed": 2}, data=data)
    assert "progress 1.0000" in p.stdout or "progress 1" in p.stdout
    assert res["n_units"] == 4 and res["duration_s"] == 12.0
    phy = res["output_dir"]
    t = np.load(os.path.join(phy, "spike_times.npy"))
    c = np.load(os.path.join(phy, "spike_clusters.npy"))
    acc = compare(gt_t, gt_l, t, c, delta=int(0.0004 * FS))
    assert np.all(acc >= 0.8), acc
    counts = np.load(job / "out" / "unit_spike_counts.npy")
    assert counts.sum() == t.size
    ns = {}
    exec(open(os.path.join(phy, "params.py")).read(), ns)
    raw = np.fromfile(os.path.join(phy, ns["dat_path"]), dtype=np.int16)
    assert np.array_equal(raw.reshape(-1, 16), data)
