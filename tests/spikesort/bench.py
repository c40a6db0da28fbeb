"""Accuracy and speed of ss-run on synthetic ground truth.

    python3 tests/spikesort/bench.py SS_RUN [n_channels n_units seconds seed]

Generates the recording in a temporary folder, sorts it, and prints one
JSON line: per-unit accuracy (SpikeInterface's, ±0.4 ms), the count of
units with accuracy ≥ 0.8, and ss-run's result (x_realtime = duration /
wall time).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_gt import FS, compare, generate  # noqa: E402


def main():
    ss = sys.argv[1]
    c, u, s, seed = (int(sys.argv[2]) if len(sys.argv) > 2 else 32,
                     int(sys.argv[3]) if len(sys.argv) > 3 else 10,
                     float(sys.argv[4]) if len(sys.argv) > 4 else 30.0,
                     int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    with tempfile.TemporaryDirectory() as d:
        rec = os.path.join(d, "rec.bin")
        gt_t, gt_l = generate(rec, n_channels=c, n_units=u, duration_s=s,
                              seed=seed)
        out = os.path.join(d, "phy")
        p = subprocess.run([ss, "--recording", rec, "--n-channels", str(c),
                            "--sample-rate", str(FS), "--probe",
                            rec + ".probe.json", "--out", out],
                           capture_output=True, text=True, check=True)
        res = json.loads(p.stdout)
        t = np.load(os.path.join(out, "spike_times.npy"))
        k = np.load(os.path.join(out, "spike_clusters.npy"))
        acc = compare(gt_t, gt_l, t, k, delta=int(0.0004 * FS))
    print(json.dumps({"channels": c, "units": u, "seconds": s, "seed": seed,
                      "accuracy": [round(float(a), 3) for a in acc],
                      "well_detected": int(np.sum(acc >= 0.8)),
                      "mean_accuracy": round(float(acc.mean()), 3),
                      "result": res}))


if __name__ == "__main__":
    main()
