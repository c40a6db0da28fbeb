#!/bin/sh
# tests/clones_fma.sh BINARY... — every NQ_CLONES clone built for a target
# with FMA (all but the baseline) must fuse its fma() in hardware: a call
# to libm's fma from such a clone costs a function call per element (the
# tall gemm ran 25x slower when the AVX2 clone lacked FMA; nq_clones.h).
# Exits 77 (skipped) where the build has no clones (clang, non-x86).
set -eu
status=77
for bin in "$@"; do
	out=$(objdump -d --no-show-raw-insn "$bin" | awk '
		/^[0-9a-f]+ <[^>]+>:$/ {
			name = $2; gsub(/[<>:]/, "", name)
			clone = (name ~ /\.(avx[0-9a-z_]*|arch_[a-z0-9_]*)$/)
			if (clone) n++
			next
		}
		clone && /call.*<fmaf?(@plt)?>/ { if (!(name in seen)) print name; seen[name] = 1; bad++ }
		END { print "clones", n + 0, "bad", bad + 0 }')
	echo "$out" | sed "s|^|$bin: |"
	clones=$(echo "$out" | tail -1 | awk '{ print $2 }')
	bad=$(echo "$out" | tail -1 | awk '{ print $4 }')
	[ "$bad" -eq 0 ] || exit 1
	[ "$clones" -eq 0 ] || status=0
done
exit $status
