#!/bin/sh
# tests/clones_fma.sh BINARY... — every fused multiply-add of an NQ_CLONES
# clone built for a target with FMA (all but the baseline) is a vector
# instruction (proto/nq_clones.h):
#  - no call to libm's fma/fmaf: a function call per element (the tall
#    gemm ran 25x slower when the AVX2 clone lacked FMA);
#  - no scalar vfmadd…sd/ss: its lane loops were not vectorized (what -O3
#    made of them without NQ_LANES; .ci/run checks a Release build too).
#    --calls-only leaves this out: a sanitizer build instruments every load
#    and store of those loops, and they stay scalar there.
# Exits 77 (skipped) where the build has no clones (clang, non-x86).
set -eu
scalar=1
if [ "${1:-}" = --calls-only ]; then
	scalar=0
	shift
fi
status=77
for bin in "$@"; do
	out=$(objdump -d --no-show-raw-insn "$bin" | awk -v scalar="$scalar" '
		/^[0-9a-f]+ <[^>]+>:$/ {
			name = $2; gsub(/[<>:]/, "", name)
			clone = (name ~ /\.(avx[0-9a-z_]*|arch_[a-z0-9_]*)$/)
			if (clone) n++
			next
		}
		clone && /call.*<fmaf?(@plt)?>/ { why = "calls libm fma" }
		clone && scalar && /vfn?m(add|sub)[0-9]*s[sd] / { why = "scalar fma" }
		why != "" {
			if (!((name, why) in seen)) print name ": " why
			seen[name, why] = 1; bad++; why = ""
		}
		END { print "clones", n + 0, "bad", bad + 0 }')
	echo "$out" | sed "s|^|$bin: |"
	clones=$(echo "$out" | tail -1 | awk '{ print $2 }')
	bad=$(echo "$out" | tail -1 | awk '{ print $4 }')
	[ "$bad" -eq 0 ] || exit 1
	[ "$clones" -eq 0 ] || status=0
done
exit $status
