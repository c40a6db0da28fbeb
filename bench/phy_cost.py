#!/usr/bin/env python3
"""What one build's phy folder costs against another's, in the same run.

    bench/phy_cost.py --build NEW --ref-build OLD [--recording gengt32]
                      [--duration S] [--rounds N] [--workdir DIR]

Sorts one of spikesort_bench.py's recordings (generated there, reused when
present) with both builds' neuroq-worker, alternating NEW, OLD, NEW, OLD …
(--rounds each, so load on a shared machine hits both alike), and prints
the median wall time, features-pass time (time_features_s), peak RSS and
phy-folder size of each, and NEW / OLD ratios. Written for issue 16's
template features and spike-waveform subset; works for any two builds.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spikesort_bench as sb  # noqa: E402


def folder_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--ref-build", required=True)
    ap.add_argument("--recording", default="gengt32")
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--units", type=int, default=0,
                    help="0: the recording's default")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/ssbench")
    a = ap.parse_args()
    kind = a.recording
    units = a.units or (sb.GENGT[kind][1] if kind in sb.GENGT else 20)
    n_ch = sb.GENGT[kind][0] if kind in sb.GENGT else None
    d, rec, probe, _ = sb.prepare(a.workdir, kind, a.duration, units)
    if n_ch is None:
        n_ch = int(os.path.getsize(rec) // 2 // int(a.duration * sb.FS))
    runs = {"new": [], "ref": []}
    for i in range(a.rounds):
        for tag, build in (("new", a.build), ("ref", a.ref_build)):
            r = sb.run_neuroq(build, d, rec, probe, n_ch, tag=tag)
            if not r["ok"]:
                sys.exit(f"{tag}: {r['error']}")
            runs[tag].append((r["wall_s"], r["result"]["time_features_s"],
                              r["rss_mib"], folder_bytes(r["phy"])))
            print(f"round {i} {tag}: wall {r['wall_s']:.2f} s, features "
                  f"{runs[tag][-1][1]:.2f} s, peak RSS {r['rss_mib']:.0f} "
                  f"MiB, folder {runs[tag][-1][3] / 2**20:.1f} MiB",
                  flush=True)
    med = {t: [statistics.median(x[j] for x in v) for j in range(4)]
           for t, v in runs.items()}
    print(f"\n{kind} {a.duration:g} s, {units} units, median of {a.rounds}:")
    print("| build | wall (s) | features pass (s) | peak RSS (MiB) | "
          "phy folder (MiB) |")
    print("|---|---|---|---|---|")
    for t in ("ref", "new"):
        m = med[t]
        print(f"| {t} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.0f} | "
              f"{m[3] / 2**20:.1f} |")
    print("| new / ref | " + " | ".join(
        f"{med['new'][j] / med['ref'][j]:.3f}" for j in range(4)) + " |")


if __name__ == "__main__":
    main()
