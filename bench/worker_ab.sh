#!/usr/bin/env bash
# worker_ab.sh — two builds' neuroq-worker on the same job directories, alternating (this VM's timings drift
# by ±5 % between runs: only alternating runs compare), one BLAS thread. Prints, per job, the min and median
# of the process's wall time and of the job's own time_s (out/result.json).
#
#   bench/worker_ab.sh ROUNDS BUILD_A BUILD_B JOBDIR...
#
# A job directory: params.mp and in/ (bench/gsn_bench.py --keep leaves them under $TMPDIR/gsnbench-*).
# Its out/ is rewritten by every run.
set -euo pipefail
if [ $# -lt 4 ]; then
	sed -n '2,9p' "$0" >&2
	exit 2
fi
rounds=$1 a=$2 b=$3
shift 3
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
for job in "$@"; do
	name=$(basename "$job")
	for _ in $(seq "$rounds"); do
		for build in "$a" "$b"; do
			tag=$([ "$build" = "$a" ] && echo A || echo B)
			rm -rf "$job/out" "$job/error"
			mkdir "$job/out"
			t0=$(date +%s.%N)
			OPENBLAS_NUM_THREADS=1 "$build/daemon/neuroq-worker" run --type gsn --dir "$job" --device cpu >/dev/null
			t1=$(date +%s.%N)
			c=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["time_s"])' "$job/out/result.json")
			echo "$(echo "$t1 - $t0" | bc) $c" >>"$log/$tag"
		done
	done
	for tag in A B; do
		python3 - "$log/$tag" "$name" "$tag" <<'PY'
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
w = sorted(r[0] for r in rows)
c = sorted(r[1] for r in rows)
print("%-16s %s  wall min %.3f med %.3f | time_s min %.3f med %.3f  (%d runs)"
      % (sys.argv[2], sys.argv[3], w[0], w[len(w) // 2], c[0], c[len(c) // 2], len(rows)))
PY
	done
	rm -f "$log/A" "$log/B"
done
