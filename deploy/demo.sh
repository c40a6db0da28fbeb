#!/usr/bin/env bash
# The end-to-end demo on built-in data: installs dependencies, builds, starts
# neuroqd on a private socket, submits a gsn job and a spikesort job with the
# neuroq CLI, waits for them with progress, and shows the results.
# Everything it writes goes to demo-out/ (the daemon is stopped at the end).
#
# NEUROQ_INSTALLED=1: against the installed package instead (the .deb, see
# README "Running the server"): no build, /usr/bin/neuroq, the running
# daemon at $NEUROQ_URL (default ipc:///run/neuroq/neuroq.sock); the data go
# to $NEUROQ_DEMO_OUT or a fresh directory under /tmp, made one that the
# daemon's user can read and write (its workers read the recording and write
# the phy folder).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
PY=.venv/bin/python

if [ "${NEUROQ_INSTALLED:-0}" = 1 ]; then
	NEUROQ=${NEUROQ_CLI:-/usr/bin/neuroq}
	export NEUROQ_URL=${NEUROQ_URL:-ipc:///run/neuroq/neuroq.sock}
	OUT=${NEUROQ_DEMO_OUT:-$(mktemp -d /tmp/neuroq-demo.XXXXXX)}
	chmod 1777 "$OUT"
	echo "== installed neuroqd at $NEUROQ_URL (demo files in $OUT)"
	"$NEUROQ" version
else
	BUILD=${NEUROQ_BUILD:-$PWD/build}
	cmake -S . -B "$BUILD" >/dev/null
	cmake --build "$BUILD" -j"$(nproc)" >/dev/null

	OUT=$PWD/demo-out
	rm -rf "$OUT" && mkdir -p "$OUT"
	# the daemon's sockets and state in directories of their own: no job
	# input or output may lie in them (the data stay in $OUT)
	export NEUROQ_URL=ipc://$OUT/run/neuroq.sock
	NEUROQ="$BUILD/client/neuroq"

	echo "== starting neuroqd (state in $OUT/state, log in $OUT/neuroqd.log)"
	"$BUILD/daemon/neuroqd" --listen "$NEUROQ_URL" --events "ipc://$OUT/run/events.sock" \
		--state-dir "$OUT/state" >"$OUT/neuroqd.log" 2>&1 &
	DAEMON=$!
	trap 'kill -TERM $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null || true' EXIT
	for _ in $(seq 100); do "$NEUROQ" version >/dev/null 2>&1 && break; sleep 0.1; done
fi
"$NEUROQ" devices

echo "== built-in demo data"
$PY deploy/demo_data.py "$OUT"

echo "== gsn: 300 units x 80 conditions x 4 trials"
GSN=$("$NEUROQ" submit gsn --data "$OUT/gsn_data.npy" --param 'returns=["cN","cS","cNb","cSb","eigvals_signal"]')
echo "submitted gsn job $GSN"
"$NEUROQ" wait "$GSN"
"$NEUROQ" result "$GSN" --out "$OUT/gsn"

echo "== spikesort: 32 channels, 10 units, 30 s at 30 kHz"
SS=$("$NEUROQ" submit spikesort --param "recording=$OUT/recording.bin" \
	--param n_channels=32 --param sample_rate=30000 \
	--param "probe=$OUT/recording.bin.probe.json" --param "output_dir=$OUT/phy")
echo "submitted spikesort job $SS"
"$NEUROQ" wait "$SS"
"$NEUROQ" result "$SS" --out "$OUT/spikesort"

"$NEUROQ" list
echo "== results"
$PY deploy/demo_show.py "$OUT"
