#!/bin/sh
# help2man's view of a neuroq program: runs PROG ARGS and rewrites the first
# paragraph of its output, the "usage:" block, into the form help2man reads
# as the SYNOPSIS: "Usage:" on the first line, each further form on an
# "  or:" line, a wrapped line ("[--opt ...]") joined to its form. The text
# stays the program's own.
prog=$1
shift
"$prog" "$@" | awk '
	!done && NR == 1 { sub(/^usage:/, "Usage:"); form = $0; next }
	!done && /^$/ { print form; print; done = 1; next }
	!done {
		line = $0
		sub(/^ +/, "", line)
		if (line ~ /^[[-]/)
			form = form " " line
		else {
			print form
			form = "  or: " line
		}
		next
	}
	{ print }
	END { if (!done) print form }'
