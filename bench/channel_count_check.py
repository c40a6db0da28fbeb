#!/usr/bin/env python3
"""How often the spikesort job's input sanity check flags a wrong n_channels.

    bench/channel_count_check.py --build BUILD [--workdir DIR] [--recordings a,b]

For every recording of spikesort_bench.py kept in --workdir (its `--keep`
dirs: recording.bin + probe.json; the true count is read from the probe),
runs `ss-run --sanity-only` with the true count and with 2x, 1/2x and 4x it
(a linear probe, so only the data's time structure can tell), and prints
which counts were flagged, with the count each warning names. A warning at
the true count is a false alarm; none at a wrong count is a miss.
"""
import argparse
import json
import os
import subprocess
import sys


def true_count(d):
    with open(os.path.join(d, "probe.json")) as f:
        p = json.load(f)
    if "chanMap" in p:
        return len(p["chanMap"])
    return sum(len(pr["contact_positions"]) for pr in p["probes"])


def check(ssrun, rec, n):
    out = subprocess.run([ssrun, "--recording", rec, "--n-channels", str(n),
                          "--sample-rate", "30000", "--sanity-only"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["warnings"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--workdir", default="/tmp/ssbench")
    ap.add_argument("--recordings", help="comma-separated dir names (default: all)")
    a = ap.parse_args()
    ssrun = os.path.join(a.build, "daemon", "jobs", "spikesort", "ss-run")
    names = a.recordings.split(",") if a.recordings else sorted(os.listdir(a.workdir))
    false_alarms = misses = wrong = 0
    print("%-24s %6s %6s  %s" % ("recording", "true", "read", "warning names"))
    for name in names:
        d = os.path.join(a.workdir, name)
        rec = os.path.join(d, "recording.bin")
        if not (os.path.exists(rec) and os.path.exists(os.path.join(d, "probe.json"))):
            continue
        n = true_count(d)
        size = os.path.getsize(rec) // 2
        for m in (n, 2 * n, n // 2, 4 * n):
            if m < 1 or size % m:
                continue
            w = check(ssrun, rec, m)
            said = "-"
            if w:
                said = w[0].split("as when a file of ")[1].split(" channels")[0] \
                    if "as when a file of " in w[0] else "?"
            if m == n:
                false_alarms += bool(w)
            else:
                wrong += 1
                misses += not w
            print("%-24s %6d %6d  %s" % (name, n, m, said))
    print("wrong counts flagged: %d of %d; false alarms at the true count: %d"
          % (wrong - misses, wrong, false_alarms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
