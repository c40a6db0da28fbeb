"""SpikeInterface ground-truth recordings for the sorting tests: one
written as ss-run reads it (int16 at UV_PER_BIT µV, probeinterface JSON),
and a sort of it scored against its ground truth the way
bench/spikesort_bench.py scores (compare_sorter_to_ground_truth, 0.4 ms)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from test_spikesort import run  # noqa: E402

UV_PER_BIT = 0.195


def write_recording(d, rec):
    """rec (a SpikeInterface recording) as d/rec.bin and d/probe.json."""
    import probeinterface as pi
    x = rec.get_traces()
    np.clip(np.round(x / UV_PER_BIT), -32768, 32767).astype("<i2").tofile(
        d / "rec.bin")
    pi.write_probeinterface(d / "probe.json", rec.get_probe())


def sort_and_score(d, gt, name, *extra, n_ch=32):
    """ss-run on d/rec.bin into d/name, scored against gt: (accuracy of
    each true unit, the comparison, the phy folder, ss-run's result, its
    log)."""
    from spikeinterface.comparison import compare_sorter_to_ground_truth
    from spikeinterface.extractors import read_kilosort
    out = d / name
    res, log = run(d / "rec.bin", out, "--probe", d / "probe.json", *extra,
                   n_ch=n_ch, timeout=900)
    so = read_kilosort(out, keep_good_only=False)
    cmp = compare_sorter_to_ground_truth(gt, so, delta_time=0.4,
                                         exhaustive_gt=True)
    acc = cmp.get_performance()["accuracy"].values.astype(float)
    return acc, cmp, out, res, log
