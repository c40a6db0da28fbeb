#!/usr/bin/env python3
"""neuroq's spikesort job against SpikeInterface ground truth (and MountainSort 5).

    bench/spikesort_bench.py --build BUILD [--recordings 32ch,384ch,drift128,np2drift128,np2static128,lowsnr16,smallbig32,gengt32,gengt64]
                             [--duration S] [--duration-384 S] [--units-384 N]
                             [--duration-gengt S] [--duration-smallbig S]
                             [--with-ms5]
                             [--ms5-train S] [--ms5-timeout S]
                             [--with-si spykingcircus2,tridesclous2] [--si-timeout S]
                             [--ks4-python PY] [--ks4-timeout S]
                             [--seed KIND=SEED ...]
                             [--nq-param K=V ...] [--ref-build BUILD]
                             [--ref-param K=V ...]
                             [--workdir DIR] [--keep] [--json]
    bench/spikesort_bench.py --build BUILD --memory 384ch:60,384ch:300

Needs the packages of bench/requirements-bench.txt (a venv outside the repo).

For each recording: spikeinterface.core.generate_ground_truth_recording
(seeded), written as int16 samples × channels (0.195 µV per bit, as Intan)
plus a probeinterface JSON; neuroq runs through the worker contract
(`neuroq-worker run --type spikesort --device cpu` on a job dir whose
params.mp names recording / n_channels / sample_rate / probe / output_dir);
its phy folder is read back with spikeinterface.extractors.read_kilosort
and scored with compare_sorter_to_ground_truth(delta_time=0.4).
MountainSort 5 (scheme 2, after bandpass 300–6000 Hz + whitening, as its
README; training_duration_sec = --ms5-train, default 60 s) sorts the same
int16 file in a child process and is scored the same way; so do
SpikeInterface's own SpyKING CIRCUS 2 and Tridesclous 2 (--with-si, default
parameters, on the raw int16 file + probe: they filter and whiten
themselves). Wall time and
peak RSS are per child process tree (VmRSS of the child and its descendants
summed, sampled every 20 ms: see wait_child).

Labels: each sorted unit is "well" (best agreement with a GT unit ≥ 0.8),
"fp" (< 0.2: SpikeInterface's false-positive units) or "other"; the second
table gives the share of well-sorted units labelled good and of
false-positive units labelled mua, from the phy folder's KSLabel (neuroq's
cluster_info.tsv carries the metrics too: --json has them per unit).
--ks4-python runs Kilosort 4 (cpu) from another venv on the same file.
--ref-build runs a second neuroq build (e.g. main's, with --ref-param
instead of --nq-param) on the same recordings in the same run, as
neuroq-ref, so a change is measured against what it changes.

--memory RECS runs neuroq only (no scoring) on recordings of the given
lengths (s), generated whole or (--block S) by repeating one generated
block, to show that the peak RSS does not grow with the recording length.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

FS = 30000.0
UV_PER_BIT = 0.195
GT_SEED = {"32ch": 42, "384ch": 7, "drift128": 11, "np2drift128": 11,
           "np2static128": 11, "lowsnr16": 5, "smallbig32": 17,
           "gengt32": 3, "gengt64": 4}
# kinds whose seed --seed changed (their folders are named with it)
SEED_SET = set()
# tests/spikesort/gen_gt.py's recordings (biphasic units, white noise + hum
# + offsets, linear 20 µm probe): kind -> (channels, units)
GENGT = {"gengt32": (32, 10), "gengt64": (64, 20)}


def np1_probe():
    """Neuropixels 1.0 bank 0 (the default IMRO: 384 of 960 sites), from
    probeinterface's bundled ProbeTable specs (no network)."""
    from probeinterface.neuropixels_tools import build_neuropixels_probe
    p = build_neuropixels_probe("NP1000").get_slice(np.arange(384))
    p.set_device_channel_indices(np.arange(384))
    return p


def make_recording(kind, duration, n_units):
    import spikeinterface.core as si
    kw = dict(durations=[float(duration)], sampling_frequency=FS,
              num_units=n_units, seed=GT_SEED[kind])
    if kind == "32ch":
        kw["num_channels"] = 32  # SI's default 2-column, 20 µm probe
    elif kind == "384ch":
        kw["num_channels"] = 384
        kw["probe"] = np1_probe()
    elif kind == "drift128":
        return drifting_recording(duration, n_units)
    elif kind in ("np2drift128", "np2static128"):
        return np2_recording(duration, n_units, kind == "np2drift128")
    elif kind == "smallbig32":
        return smallbig_recording(duration, n_units, GT_SEED[kind])
    elif kind == "lowsnr16":
        # 16 channels (SI's 2-column probe), units of 40–80 µV peak over
        # 5 µV noise (snr ~3–8): where units used to come out split
        kw["num_channels"] = 16
        kw["generate_templates_kwargs"] = dict(
            unit_params=dict(alpha=(40.0, 80.0)))
    else:
        raise SystemExit(f"unknown recording {kind!r} (32ch, 384ch, "
                         "drift128, np2drift128, np2static128, lowsnr16, "
                         "smallbig32)")
    return si.generate_ground_truth_recording(**kw)


def smallbig_recording(duration, n_units, seed):
    """A small unit beside two big ones in a dense 32-channel recording
    (issue #16): tests/spikesort/gen_smallbig.py's generator."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "..", "tests", "spikesort"))
    from gen_smallbig import smallbig_recording as gen
    return gen(duration, n_units, seed)


def drifting_recording(duration, n_units):
    """SpikeInterface's drifting benchmark generator on the first 128 sites
    of a Neuropixels 1.0 probe (1.28 mm, offline geometry): rigid zigzag drift of ±20 µm (40 µm peak to
    peak, two periods over the recording) from the first second."""
    from spikeinterface.generation import generate_drifting_recording
    motion = dict(displacement_sampling_frequency=5.0,
                  drift_start_um=[0, 20], drift_stop_um=[0, -20],
                  drift_step_um=1,
                  motion_list=[dict(drift_mode="zigzag",
                                    non_rigid_gradient=None,
                                    t_start_drift=1.0, t_end_drift=None,
                                    period_s=duration / 2)])
    _, drifting, sorting = generate_drifting_recording(
        num_units=n_units, duration=float(duration), sampling_frequency=FS,
        probe=np1_probe().get_slice(np.arange(128)),
        generate_displacement_vector_kwargs=motion,
        seed=GT_SEED["drift128"])
    return drifting, sorting


def np2_recording(duration, n_units, drift):
    """The first 128 sites of a Neuropixels 2.0 shank (2 columns 32 µm
    apart, 15 µm rows); with drift, a zigzag of ±25 µm (two periods over the
    recording) scaled along depth (non_rigid_gradient 0.8: units move
    10–50 µm peak to peak): non-rigid drift. Without, the same units still."""
    from probeinterface.neuropixels_tools import build_neuropixels_probe
    from spikeinterface.generation import generate_drifting_recording
    probe = build_neuropixels_probe("NP2000").get_slice(np.arange(128))
    probe.set_device_channel_indices(np.arange(128))
    amp = 25 if drift else 0
    motion = dict(displacement_sampling_frequency=5.0,
                  drift_start_um=[0, amp], drift_stop_um=[0, -amp],
                  drift_step_um=1,
                  motion_list=[dict(drift_mode="zigzag",
                                    non_rigid_gradient=0.8 if drift else None,
                                    t_start_drift=1.0, t_end_drift=None,
                                    period_s=duration / 2)])
    static, drifting, sorting = generate_drifting_recording(
        num_units=n_units, duration=float(duration), sampling_frequency=FS,
        probe=probe, generate_displacement_vector_kwargs=motion,
        seed=GT_SEED["np2drift128"])
    return (drifting if drift else static), sorting


def write_int16(rec, path, repeat=1):
    """float µV → int16 counts, in 1 s chunks; repeat > 1 appends the same
    samples again (long recordings for the memory figure)."""
    n = rec.get_num_samples()
    step = int(FS)
    with open(path, "wb") as f:
        for s in range(0, n, step):
            x = rec.get_traces(start_frame=s, end_frame=min(n, s + step))
            np.clip(np.round(x / UV_PER_BIT), -32768, 32767).astype(
                "<i2").tofile(f)
    if repeat > 1:
        with open(path, "ab") as f:
            for _ in range(repeat - 1):
                with open(path, "rb") as g:
                    size = n * rec.get_num_channels() * 2
                    done = 0
                    while done < size:
                        b = g.read(min(1 << 26, size - done))
                        f.write(b)
                        done += len(b)


def prepare_gengt(d, kind, duration, n_units):
    """tests/spikesort/gen_gt.py's generator (int16 in its own units, a
    Kilosort chanMap JSON beside it); ground truth as an NpzSorting."""
    import spikeinterface.core as si
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "..", "tests", "spikesort"))
    from gen_gt import generate
    rec_path = os.path.join(d, "recording.bin")
    n_ch = GENGT[kind][0]
    times, labels = generate(rec_path, n_channels=n_ch, n_units=n_units,
                             duration_s=duration, seed=GT_SEED[kind])
    gt = si.NumpySorting.from_samples_and_labels([times], [labels], FS)
    si.NpzSortingExtractor.write_sorting(gt, os.path.join(d, "gt.npz"))
    shutil.copy(rec_path + ".probe.json", os.path.join(d, "probe.json"))


def prepare(workdir, kind, duration, n_units, repeat=1):
    """The int16 file, probe JSON and ground truth; reused when present."""
    import probeinterface as pi
    import spikeinterface.core as si
    tag = f"{kind}_{n_units}u_{duration:g}s" + (f"_x{repeat}" if repeat > 1
                                                else "")
    if kind in SEED_SET:
        tag += f"_seed{GT_SEED[kind]}"
    d = os.path.join(workdir, tag)
    rec_path = os.path.join(d, "recording.bin")
    probe_path = os.path.join(d, "probe.json")
    gt_path = os.path.join(d, "gt.npz")
    if kind in GENGT and not os.path.exists(os.path.join(d, "done")):
        os.makedirs(d, exist_ok=True)
        prepare_gengt(d, kind, duration, n_units)
        open(os.path.join(d, "done"), "w").write("gen_gt\n")
    if not os.path.exists(os.path.join(d, "done")):
        os.makedirs(d, exist_ok=True)
        t0 = time.time()
        rec, gt = make_recording(kind, duration, n_units)
        write_int16(rec, rec_path, repeat)
        pi.write_probeinterface(probe_path, rec.get_probe())
        si.NpzSortingExtractor.write_sorting(gt, gt_path)
        open(os.path.join(d, "done"), "w").write(
            f"generated in {time.time() - t0:.1f} s\n")
    return d, rec_path, probe_path, gt_path


def tree_rss_kib(pid):
    """Resident KiB of pid and all its descendants now (VmRSS; 0 when gone)."""
    total, todo = 0, [pid]
    while todo:
        q = todo.pop()
        try:
            with open(f"/proc/{q}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for t in os.listdir(f"/proc/{q}/task"):
                with open(f"/proc/{q}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            pass
    return total


def wait_child(cmd, log_path, env=None):
    """Run cmd; wall seconds, peak RSS (MiB) of that child and its
    descendants together, and its exit. The peak is sampled every 20 ms from
    /proc (the sum of VmRSS over the process tree), not wait4's ru_maxrss:
    a child forked from this (large) Python process inherits its parent's
    high-water mark through the exec, so ru_maxrss reported the parent's
    memory for any child smaller than it (1.5 GB for `sleep` after the parent
    touched 1.5 GB)."""
    with open(log_path, "w") as log:
        t0 = time.time()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                             env=env)
        peak = 0
        while True:
            pid, status, _ = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss_kib(p.pid))
            time.sleep(0.02)
        wall = time.time() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, peak / 1024.0, p.returncode


def run_neuroq(build, d, rec_path, probe_path, n_ch, tag="neuroq",
               extra=None):
    import msgpack
    worker = os.path.join(build, "daemon", "neuroq-worker")
    job = os.path.join(d, f"job_{tag}")
    shutil.rmtree(job, ignore_errors=True)
    os.makedirs(os.path.join(job, "in"))
    os.makedirs(os.path.join(job, "ckpt"))
    phy = os.path.join(job, "phy")
    params = {"recording": rec_path, "n_channels": n_ch,
              "sample_rate": FS, "probe": probe_path, "output_dir": phy}
    params.update(extra or {})
    with open(os.path.join(job, "params.mp"), "wb") as f:
        f.write(msgpack.packb(params))
    cmd = [worker, "run", "--type", "spikesort", "--dir", job,
           "--device", "cpu"]
    wall, rss, rc = wait_child(cmd, os.path.join(job, "stdout"))
    res = {}
    if rc != 0:
        err = ""
        if os.path.exists(os.path.join(job, "error")):
            err = open(os.path.join(job, "error")).read().strip()
        return {"ok": False, "error": f"exit {rc}: {err}", "wall_s": wall,
                "rss_mib": rss, "cmd": " ".join(cmd)}
    res = json.load(open(os.path.join(job, "out", "result.json")))
    return {"ok": True, "wall_s": wall, "rss_mib": rss, "result": res,
            "phy": phy, "cmd": " ".join(cmd)}


def ms5_child(rec_path, probe_path, n_ch, out_npz, train_s):
    """Runs in its own process (so its RSS and time are its own)."""
    import mountainsort5 as ms5
    import spikeinterface.core as si
    import spikeinterface.preprocessing as spre
    from mountainsort5.util import create_cached_recording
    rec = si.read_binary(rec_path, sampling_frequency=FS, dtype="int16",
                         num_channels=n_ch, gain_to_uV=UV_PER_BIT,
                         offset_to_uV=0.0)
    rec = with_probe(rec, probe_path, n_ch)
    rec_f = spre.bandpass_filter(rec, freq_min=300, freq_max=6000,
                                 dtype=np.float32)
    rec_w = spre.whiten(rec_f, dtype=np.float32)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out_npz)) as tmp:
        cached = create_cached_recording(rec_w, folder=tmp)
        sorting = ms5.sorting_scheme2(
            recording=cached,
            sorting_parameters=ms5.Scheme2SortingParameters(
                phase1_detect_channel_radius=150, detect_channel_radius=50,
                training_duration_sec=train_s))
    si.NpzSortingExtractor.write_sorting(sorting, out_npz)


def run_ms5(d, rec_path, probe_path, n_ch, train_s, timeout):
    out = os.path.join(d, "ms5_sorting.npz")
    if os.path.exists(out):
        os.unlink(out)
    cmd = [sys.executable, os.path.abspath(__file__), "--_ms5", rec_path,
           probe_path, str(n_ch), out, str(train_s)]
    if timeout > 0:
        cmd = ["timeout", str(int(timeout))] + cmd
    wall, rss, rc = wait_child(cmd, os.path.join(d, "ms5.log"))
    if rc != 0:
        tail = open(os.path.join(d, "ms5.log")).read()[-2000:]
        return {"ok": False, "error": f"exit {rc}: {tail}", "wall_s": wall,
                "rss_mib": rss}
    return {"ok": True, "wall_s": wall, "rss_mib": rss, "npz": out}


def with_probe(rec, probe_path, n_ch):
    """rec with the probe of a probeinterface or chanMap JSON (gengt's) set,
    for the SpikeInterface-run sorters."""
    import probeinterface as pi
    if "probes" in json.load(open(probe_path)):
        pg = pi.read_probeinterface(probe_path)
    else:
        k = ks4_probe(probe_path, n_ch)
        probe = pi.Probe(ndim=2)
        probe.set_contacts(np.stack([k["xc"], k["yc"]], 1), shapes="circle",
                           shape_params={"radius": 6})
        probe.set_device_channel_indices(k["chanMap"])
        pg = pi.ProbeGroup()
        pg.add_probe(probe)
    # set_probegroup returns a new recording in older SI, None in newer
    r2 = rec.set_probegroup(pg)
    return rec if r2 is None else r2


def si_child(name, rec_path, probe_path, n_ch, out_npz):
    """One of SpikeInterface's own sorters (spykingcircus2, tridesclous2)
    with its default parameters, in its own process. The raw int16 file and
    the probe as every sorter gets them; these sorters filter and whiten
    themselves."""
    import spikeinterface.core as si
    import spikeinterface.sorters as ss
    rec = si.read_binary(rec_path, sampling_frequency=FS, dtype="int16",
                         num_channels=n_ch, gain_to_uV=UV_PER_BIT,
                         offset_to_uV=0.0)
    rec = with_probe(rec, probe_path, n_ch)
    folder = os.path.join(os.path.dirname(out_npz), f"{name}_out")
    shutil.rmtree(folder, ignore_errors=True)
    sorting = ss.run_sorter(name, rec, folder=folder, verbose=False,
                            remove_existing_folder=True)
    si.NpzSortingExtractor.write_sorting(sorting, out_npz)
    shutil.rmtree(folder, ignore_errors=True)


def run_si(d, name, rec_path, probe_path, n_ch, timeout):
    out = os.path.join(d, f"{name}_sorting.npz")
    if os.path.exists(out):
        os.unlink(out)
    cmd = [sys.executable, os.path.abspath(__file__), "--_si", name,
           rec_path, probe_path, str(n_ch), out]
    if timeout > 0:
        cmd = ["timeout", str(int(timeout))] + cmd
    log = os.path.join(d, f"{name}.log")
    wall, rss, rc = wait_child(cmd, log)
    if rc != 0:
        tail = open(log).read()[-2000:]
        return {"ok": False, "error": f"exit {rc}: {tail}", "wall_s": wall,
                "rss_mib": rss}
    return {"ok": True, "wall_s": wall, "rss_mib": rss, "npz": out}


def score(gt_path, sorting):
    import spikeinterface.comparison as sc
    import spikeinterface.core as si
    gt = si.read_npz_sorting(gt_path)
    cmp = sc.compare_sorter_to_ground_truth(gt, sorting, delta_time=0.4,
                                            exhaustive_gt=True)
    perf = cmp.get_performance(method="by_unit")
    acc = perf["accuracy"].to_numpy(float)
    return {"n_gt": int(len(acc)),
            "well": int(np.sum(acc >= 0.8)),
            "n_sorted": int(len(sorting.unit_ids)),
            "median_accuracy": float(np.median(acc)),
            "median_recall": float(np.median(perf["recall"].to_numpy(float))),
            "median_precision": float(np.median(
                perf["precision"].to_numpy(float))),
            "accuracy": [round(float(a), 3) for a in acc],
            "false_positive": int(cmp.count_false_positive_units()),
            "redundant": int(cmp.count_redundant_units())}


def unit_classes(gt_path, sorting):
    """Each sorted unit against the ground truth, by its best agreement
    score (SpikeInterface's matching, delta 0.4 ms): "well" ≥ 0.8,
    "fp" < 0.2 (SpikeInterface's false-positive units), "other" between
    (partial, redundant or merged units)."""
    import spikeinterface.comparison as sc
    import spikeinterface.core as si
    gt = si.read_npz_sorting(gt_path)
    cmp = sc.compare_sorter_to_ground_truth(gt, sorting, delta_time=0.4,
                                            exhaustive_gt=True)
    best = cmp.agreement_scores.max(axis=0)
    return {int(u): ("well" if b >= 0.8 else "fp" if b < 0.2 else "other")
            for u, b in best.items()}


def read_labels(phy):
    """cluster_id -> (KSLabel, {metric: value}) from the phy folder's
    cluster_info.tsv (neuroq), else cluster_KSLabel.tsv (Kilosort)."""
    import pandas as pd
    f = os.path.join(phy, "cluster_info.tsv")
    if not os.path.exists(f):
        f = os.path.join(phy, "cluster_KSLabel.tsv")
    t = pd.read_csv(f, sep="\t")
    out = {}
    for _, r in t.iterrows():
        m = {k: (None if pd.isna(v) else float(v)) for k, v in r.items()
             if k not in ("cluster_id", "KSLabel", "group")
             and isinstance(v, (int, float))}
        out[int(r["cluster_id"])] = (r["KSLabel"], m)
    return out


def label_score(gt_path, sorting, phy):
    """The labels against the ground truth: the share of well-sorted units
    labelled good and of false-positive units labelled mua, and every
    unit's class, label and metrics (to choose thresholds by)."""
    cls = unit_classes(gt_path, sorting)
    lab = read_labels(phy)
    units = [{"id": u, "class": c, "label": lab[u][0], **lab[u][1]}
             for u, c in sorted(cls.items()) if u in lab]
    n = {c: sum(1 for x in units if x["class"] == c)
         for c in ("well", "fp", "other")}
    good = {c: sum(1 for x in units if x["class"] == c
                   and x["label"] == "good") for c in n}
    return {"n_well": n["well"], "n_fp": n["fp"], "n_other": n["other"],
            "well_good": good["well"], "fp_mua": n["fp"] - good["fp"],
            "other_good": good["other"], "units": units}


def ks4_probe(probe_path, n_ch):
    """Kilosort 4's probe dict from a probeinterface or chanMap JSON."""
    j = json.load(open(probe_path))
    if "probes" in j:
        pr = j["probes"][0]
        pos = np.asarray(pr["contact_positions"], float)
        ch = np.asarray(pr.get("device_channel_indices", range(len(pos))))
        sh = np.asarray(pr.get("shank_ids") or [0] * len(pos))
        sh = np.unique(sh, return_inverse=True)[1] if len(sh) else sh
        return {"chanMap": ch.astype(np.int32), "xc": pos[:, 0].astype(
                np.float32), "yc": pos[:, 1].astype(np.float32),
                "kcoords": np.asarray(sh, np.float32), "n_chan": len(ch)}
    return {"chanMap": np.asarray(j["chanMap"], np.int32),
            "xc": np.asarray(j["xc"], np.float32),
            "yc": np.asarray(j["yc"], np.float32),
            "kcoords": np.asarray(j["kcoords"], np.float32) - 1,
            "n_chan": len(j["chanMap"])}


def ks4_child(rec_path, probe_path, n_ch, out_dir):
    """Kilosort 4 on the cpu (its own venv: --ks4-python)."""
    import torch
    from kilosort import run_kilosort
    torch.set_num_threads(2)
    run_kilosort(settings={"n_chan_bin": n_ch, "fs": FS},
                 probe=ks4_probe(probe_path, n_ch), filename=rec_path,
                 results_dir=out_dir, data_dtype="int16",
                 device=torch.device("cpu"))


def run_ks4(d, rec_path, probe_path, n_ch, python, timeout):
    out = os.path.join(d, "ks4")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [python, os.path.abspath(__file__), "--_ks4", rec_path,
           probe_path, str(n_ch), out]
    if timeout > 0:
        cmd = ["timeout", str(int(timeout))] + cmd
    wall, rss, rc = wait_child(cmd, os.path.join(d, "ks4.log"))
    if rc != 0:
        tail = open(os.path.join(d, "ks4.log")).read()[-2000:]
        return {"ok": False, "error": f"exit {rc}: {tail}", "wall_s": wall,
                "rss_mib": rss}
    return {"ok": True, "wall_s": wall, "rss_mib": rss, "phy": out}


def bench(args):
    import spikeinterface.core as si
    import spikeinterface.extractors as se
    rows = []
    for kind in args.recordings.split(","):
        if kind == "384ch":
            dur, nu, nch = args.duration_384, args.units_384, 384
        elif kind in ("drift128", "np2drift128", "np2static128"):
            dur, nu, nch = args.duration_drift, args.units_drift, 128
        elif kind == "lowsnr16":
            dur, nu, nch = args.duration_drift, 6, 16
        elif kind == "smallbig32":
            dur, nu, nch = args.duration_smallbig, 20, 32
        elif kind in GENGT:
            dur, (nch, nu) = args.duration_gengt, GENGT[kind]
        else:
            dur, nu, nch = args.duration, args.units_32, 32
        d, rec_path, probe_path, gt_path = prepare(args.workdir, kind, dur,
                                                   nu)
        print(f"# {kind}: {nu} units, {dur:g} s in {d}", file=sys.stderr,
              flush=True)
        tag = "neuroq" + "".join(f"_{k}{v}" for k, v in args.nq.items())
        # (build, tag, parameters): the reference may be the same build
        # with other parameters (--ref-param), so each run carries its own
        builds = [] if args.no_neuroq else [(args.build, tag, args.nq)]
        if args.ref_build:
            # the reference first, so the table reads old, new
            builds.insert(0, (args.ref_build, "neuroq-ref", args.ref_nq))
        for build, btag, params in builds:
            nq = run_neuroq(build, d, rec_path, probe_path, nch, btag,
                            params)
            row = {"recording": kind, "units": nu, "duration_s": dur,
                   "sorter": btag.replace("_", " "), **nq}
            if nq["ok"]:
                sorting = se.read_kilosort(nq["phy"])
                row.update(score(gt_path, sorting))
                row["labels"] = label_score(gt_path, sorting, nq["phy"])
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        if args.ks4_python:
            ks = run_ks4(d, rec_path, probe_path, nch, args.ks4_python,
                         args.ks4_timeout)
            row = {"recording": kind, "units": nu, "duration_s": dur,
                   "sorter": "kilosort4", **ks}
            if ks["ok"]:
                sorting = se.read_kilosort(ks["phy"])
                row.update(score(gt_path, sorting))
                row["labels"] = label_score(gt_path, sorting, ks["phy"])
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        if args.with_ms5:
            ms = run_ms5(d, rec_path, probe_path, nch, args.ms5_train,
                         args.ms5_timeout)
            row = {"recording": kind, "units": nu, "duration_s": dur,
                   "sorter": "mountainsort5", **ms}
            if ms["ok"]:
                row.update(score(gt_path, si.read_npz_sorting(ms["npz"])))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        for name in filter(None, args.with_si.split(",")):
            r = run_si(d, name, rec_path, probe_path, nch, args.si_timeout)
            row = {"recording": kind, "units": nu, "duration_s": dur,
                   "sorter": name, **r}
            if r["ok"]:
                row.update(score(gt_path, si.read_npz_sorting(r["npz"])))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        if not args.keep:
            os.unlink(rec_path)
            os.unlink(os.path.join(d, "done"))
    return rows


def memory(args):
    rows = []
    for spec in args.memory.split(","):
        kind, secs = spec.split(":")
        secs = float(secs)
        block = min(args.block, secs)
        rep = int(round(secs / block))
        nu = args.units_384 if kind == "384ch" else args.units_32
        nch = 384 if kind == "384ch" else 32
        free = shutil.disk_usage(args.workdir).free
        need = secs * FS * nch * 2
        if need > free - 5e9:
            raise SystemExit(f"{spec}: needs {need / 1e9:.1f} GB, "
                             f"{free / 1e9:.1f} GB free")
        d, rec_path, probe_path, _ = prepare(args.workdir, kind, block, nu,
                                             rep)
        nq = run_neuroq(args.build, d, rec_path, probe_path, nch,
                        tag="mem")
        row = {"recording": kind, "duration_s": block * rep,
               "sorter": "neuroq", "units": nu, **nq}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if not args.keep:
            os.unlink(rec_path)
            os.unlink(os.path.join(d, "done"))
    return rows


def table(rows):
    h = ("| recording | sorter | units ≥0.8 / GT | median acc / recall / "
         "precision | sorted units | redundant / fp | wall (s) | "
         "× real time | peak RSS (MiB) | neuroq stages pre / detect / match / post / features (s) |")
    out = [h, "|" + "---|" * 10]
    for r in rows:
        rt = r["duration_s"] / r["wall_s"] if r.get("wall_s") else 0
        if not r.get("ok"):
            out.append(f"| {r['recording']} {r['duration_s']:g} s | "
                       f"{r['sorter']} | FAILED: "
                       f"{r.get('error', '')[:200]} | | | | "
                       f"{r.get('wall_s', 0):.1f} | | | |")
            continue
        if "well" in r:
            sc = (f"{r['well']} / {r['n_gt']} | {r['median_accuracy']:.3f} "
                  f"/ {r['median_recall']:.3f} / "
                  f"{r['median_precision']:.3f} | {r['n_sorted']} | "
                  f"{r['redundant']} / {r['false_positive']}")
        else:
            sc = "– | – | – | –"
        st = ""
        if "result" in r:
            x = r["result"]
            st = " / ".join(f"{x.get('time_' + k + '_s', 0):.1f}"
                            for k in ("preprocess", "detect", "match",
                                      "post", "features"))
        out.append(f"| {r['recording']} {r['duration_s']:g} s, "
                   f"{r['units']} u | {r['sorter']} | {sc} | "
                   f"{r['wall_s']:.1f} | {rt:.2f}× | {r['rss_mib']:.0f} | "
                   f"{st} |")
    return "\n".join(out)


def label_table(rows):
    """Labels against ground truth, per sorter and recording."""
    out = ["| recording | sorter | well-sorted units labelled good | "
           "false-positive units labelled mua | other units labelled good |",
           "|---|---|---|---|---|"]
    for r in rows:
        if "labels" not in r:
            continue
        x = r["labels"]

        def share(a, b):
            return f"{a} / {b}" + (f" ({100 * a / b:.0f} %)" if b else "")
        out.append(f"| {r['recording']} {r['duration_s']:g} s, "
                   f"{r['units']} u | {r['sorter']} | "
                   f"{share(x['well_good'], x['n_well'])} | "
                   f"{share(x['fp_mua'], x['n_fp'])} | "
                   f"{share(x['other_good'], x['n_other'])} |")
    return "\n".join(out)


def parse_params(kvs):
    """KEY=VALUE strings as a params map (numbers as numbers, true and
    false as booleans)."""
    out = {}
    for kv in kvs:
        k, v = kv.split("=", 1)
        if v in ("true", "false"):
            out[k] = v == "true"
            continue
        try:
            v = int(v)
        except ValueError:
            try:
                v = float(v)
            except ValueError:
                pass
        out[k] = v
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--_ks4":
        ks4_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--_si":
        si_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]),
                 sys.argv[6])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--_ms5":
        ms5_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5],
                  float(sys.argv[6]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--recordings", default="32ch,384ch")
    ap.add_argument("--duration", type=float, default=300.0,
                    help="seconds of the 32-channel recording")
    ap.add_argument("--units-32", type=int, default=20)
    ap.add_argument("--duration-384", type=float, default=60.0)
    ap.add_argument("--units-384", type=int, default=60)
    ap.add_argument("--duration-drift", type=float, default=120.0)
    ap.add_argument("--units-drift", type=int, default=40)
    ap.add_argument("--duration-gengt", type=float, default=120.0,
                    help="seconds of the gengt32 / gengt64 recordings")
    ap.add_argument("--duration-smallbig", type=float, default=60.0,
                    help="seconds of the smallbig32 recording (at 60 s "
                    "its small unit is missed by the default sort)")
    ap.add_argument("--ks4-python", default=None,
                    help="a python with kilosort (4) installed: run it too")
    ap.add_argument("--ks4-timeout", type=float, default=0)
    ap.add_argument("--with-ms5", action="store_true")
    ap.add_argument("--with-si", default="",
                    help="SpikeInterface's own sorters to run too, e.g. "
                    "spykingcircus2,tridesclous2 (need hdbscan)")
    ap.add_argument("--si-timeout", type=float, default=0,
                    help="give up on each of them after this many seconds")
    ap.add_argument("--ms5-train", type=float, default=60.0,
                    help="MS5 scheme 2 training_duration_sec")
    ap.add_argument("--ms5-timeout", type=float, default=0,
                    help="give up on MS5 after this many seconds")
    ap.add_argument("--memory", default=None,
                    help="KIND:SECONDS,... neuroq peak RSS only")
    ap.add_argument("--block", type=float, default=60.0,
                    help="--memory: generate this many seconds and repeat "
                    "them (exact repeats give the learning stage duplicate "
                    "snippets: prefer a block as long as the recording)")
    ap.add_argument("--workdir", default="/tmp/ssbench")
    ap.add_argument("--keep", action="store_true",
                    help="keep the int16 recordings for reruns")
    ap.add_argument("--nq-param", action="append", default=[],
                    metavar="KEY=VALUE",
                    help="extra spikesort parameter (numbers as numbers)")
    ap.add_argument("--no-neuroq", action="store_true")
    ap.add_argument("--seed", action="append", default=[],
                    metavar="KIND=SEED",
                    help="generate KIND with this seed instead of its own")
    ap.add_argument("--ref-build", default=None,
                    help="another build of neuroq (e.g. main's) run on the "
                    "same recordings in the same run, as neuroq-ref")
    ap.add_argument("--ref-param", action="append", default=[],
                    metavar="KEY=VALUE",
                    help="a spikesort parameter for --ref-build only "
                    "(--nq-param is for --build only)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.nq = parse_params(args.nq_param)
    args.ref_nq = parse_params(args.ref_param)
    for ks in args.seed:
        k, v = ks.split("=", 1)
        GT_SEED[k] = int(v)
        SEED_SET.add(k)
    args.build = os.path.abspath(args.build)
    if args.ref_build:
        args.ref_build = os.path.abspath(args.ref_build)
    os.makedirs(args.workdir, exist_ok=True)
    rows = memory(args) if args.memory else bench(args)
    if args.json:
        print(json.dumps(rows))
    else:
        print(table(rows))
        if not args.memory:
            print()
            print(label_table(rows))


if __name__ == "__main__":
    main()
