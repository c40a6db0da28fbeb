"""Writes the demo's inputs into OUT: gsn_data.npy (units x conditions x
trials, a low-rank signal plus noise, as GSN's own benchmark) and a synthetic
32-channel int16 recording with known spike times (recording.bin, its probe
JSON and its ground truth)."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "spikesort"))
import gen_gt  # noqa: E402

out = Path(sys.argv[1])
rng = np.random.default_rng(0)
n, c, t = 300, 80, 4
u = rng.standard_normal((n, 20)) / np.sqrt(20)
z = rng.standard_normal((20, c))
np.save(out / "gsn_data.npy", (u @ z)[:, :, None] + rng.standard_normal((n, c, t)))
gen_gt.generate(str(out / "recording.bin"), n_channels=32, n_units=10, duration_s=30.0)
print(f"wrote {out}/gsn_data.npy and {out}/recording.bin (+ .probe.json, .gt.npz)")
