"""Prints what the demo's two jobs produced."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "spikesort"))
import gen_gt  # noqa: E402

out = Path(sys.argv[1])

g = json.loads((out / "gsn" / "result.json").read_text())
csb, cnb = np.load(out / "gsn" / "cSb.npy"), np.load(out / "gsn" / "cNb.npy")
ev = np.load(out / "gsn" / "eigvals_signal.npy")
ncsnr = np.load(out / "gsn" / "ncsnr.npy")
print(f"gsn: shrinklevelN={g['shrinklevelN']:.2f} shrinklevelD={g['shrinklevelD']:.2f} "
      f"numiters={g['numiters']}  cSb {csb.shape} min eig {np.linalg.eigvalsh(csb).min():.2e} "
      f"(PSD), cNb trace {np.trace(cnb):.1f}")
print(f"     signal variance in the top 20 of {ev.size} dimensions: {ev[:20].sum() / ev.sum():.0%} "
      f"(the demo's signal has 20); median ncsnr {np.median(ncsnr):.3f}")

s = json.loads((out / "spikesort" / "result.json").read_text())
phy = Path(s["output_dir"])
times = np.load(phy / "spike_times.npy").ravel()
clusters = np.load(phy / "spike_clusters.npy").ravel()
gt = np.load(out / "recording.bin.gt.npz")
acc = gen_gt.compare(gt["times"], gt["labels"], times, clusters, delta=12)
print(f"spikesort: {s['n_units']} units ({s['n_good']} good), {s['n_spikes']} spikes in "
      f"{s['duration_s']:.0f} s; phy folder {phy}")
print(f"     vs ground truth (0.4 ms): {np.sum(acc >= 0.8)}/{acc.size} units with accuracy >= 0.8, "
      f"median accuracy {np.median(acc):.3f}")
print(f"     open it with:  phy template-gui {phy}/params.py")
