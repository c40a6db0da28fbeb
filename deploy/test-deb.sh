#!/usr/bin/env bash
# The Debian package, tested as an admin would use it (as root; .ci/run runs
# it): builds the .deb (cpu backend, no CUDA), installs it with apt, checks
# where its files landed and what its postinst made, starts the installed
# /usr/sbin/neuroqd as user neuroq with the unit's own command line (no
# systemd here: setpriv does what User=, Group=, RuntimeDirectory= and
# UMask= would), runs the demo against it (deploy/demo.sh, NEUROQ_INSTALLED=1),
# stops it, and purges the package.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-deb: needs root (apt-get install)" >&2; exit 1; }
BUILD=${NEUROQ_DEB_BUILD:-$PWD/build-deb}
UNIT=/lib/systemd/system/neuroqd.service
export DEBIAN_FRONTEND=noninteractive

echo "== build the .deb ($BUILD)"
cmake -S . -B "$BUILD" -DCMAKE_INSTALL_PREFIX=/usr -DNEUROQ_CUDA=OFF \
	-DBUILD_TESTING=OFF -DNEUROQ_WERROR=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
rm -f "$BUILD"/neuroq_*.deb
(cd "$BUILD" && cpack -G DEB >/dev/null)
debs=("$BUILD"/neuroq_*.deb)
deb=${debs[0]}
dpkg-deb -f "$deb" Package Version Architecture Depends

DAEMON=
cleanup() {
	if [ -n "$DAEMON" ]; then
		kill -TERM "$DAEMON" 2>/dev/null || true
		wait "$DAEMON" 2>/dev/null || true
	fi
	if dpkg-query -W -f='${Status}' neuroq 2>/dev/null | grep -q installed; then
		apt-get purge -y -q neuroq >/dev/null || true
	fi
}
trap cleanup EXIT

echo "== apt-get install $deb"
cleanup # a package a failed run left behind
apt-get install -y -q --no-install-recommends "$deb" >/dev/null
fail() { echo "test-deb: $*" >&2; exit 1; }
for f in /usr/sbin/neuroqd /usr/bin/neuroq /usr/bin/neuroq-worker; do
	[ -x "$f" ] || fail "$f missing"
done
for f in "$UNIT" /usr/share/man/man1/neuroq.1 /usr/share/man/man8/neuroqd.8 \
	/usr/share/doc/neuroq/README.md /usr/share/doc/neuroq/examples/neuroqd.conf.example \
	/usr/share/doc/neuroq/examples/neuroqd-slurm.conf; do
	[ -f "$f" ] || fail "$f missing"
done
getent passwd neuroq >/dev/null || fail "postinst made no user neuroq"
getent group neuroq >/dev/null || fail "postinst made no group neuroq"
[ "$(stat -c %U:%G:%a /var/lib/neuroq)" = neuroq:neuroq:700 ] ||
	fail "/var/lib/neuroq is $(stat -c %U:%G:%a /var/lib/neuroq)"
if command -v deb-systemd-helper >/dev/null; then
	[ -L /etc/systemd/system/multi-user.target.wants/neuroqd.service ] ||
		fail "postinst did not enable the unit"
fi
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify "$UNIT"
fi
/usr/sbin/neuroqd --version
echo "files, user, state dir and unit: ok"

echo "== a second install (upgrade path: the postinst again, user kept)"
dpkg -i "$deb" >/dev/null
[ "$(stat -c %U /var/lib/neuroq)" = neuroq ] || fail "state dir changed owner"

echo "== the installed neuroqd as user neuroq"
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
# AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL -> +setuid,+setgid,+kill
caps=$(sed -n 's/^AmbientCapabilities=//p' "$UNIT" | tr '[:upper:]' '[:lower:]' |
	sed 's/cap_/+/g; s/ \{1,\}/,/g; s/,$//')
[ -n "$caps" ] || fail "the unit grants no AmbientCapabilities"
install -d -o neuroq -g neuroq -m 0755 /run/neuroq # RuntimeDirectory=
log=$(mktemp /tmp/neuroqd-deb.XXXXXX)
demo=$(mktemp -d /tmp/neuroq-demo.XXXXXX)
# shellcheck disable=SC2086 # the unit's command line, split as systemd does
(umask 0027 && exec setpriv --reuid=neuroq --regid=neuroq --init-groups \
	--inh-caps="$caps" --ambient-caps="$caps" -- $exec_start) \
	>"$log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do
	/usr/bin/neuroq --url ipc:///run/neuroq/neuroq.sock version >/dev/null 2>&1 && break
	kill -0 "$DAEMON" 2>/dev/null || { cat "$log"; fail "neuroqd exited"; }
	sleep 0.1
done
[ "$(stat -c %U:%G:%a /run/neuroq/neuroq.sock)" = neuroq:neuroq:660 ] ||
	fail "socket is $(stat -c %U:%G:%a /run/neuroq/neuroq.sock)"
if ! NEUROQ_INSTALLED=1 NEUROQ_URL=ipc:///run/neuroq/neuroq.sock NEUROQ_DEMO_OUT=$demo \
	deploy/demo.sh; then
	cat "$log"
	fail "the demo failed against the installed daemon"
fi
kill -TERM "$DAEMON"
wait "$DAEMON" || { cat "$log"; fail "neuroqd did not exit 0 on SIGTERM"; }
DAEMON=

echo "== apt-get purge neuroq"
apt-get purge -y -q neuroq >/dev/null
for f in /usr/sbin/neuroqd /usr/bin/neuroq "$UNIT" /var/lib/neuroq; do
	[ ! -e "$f" ] || fail "$f left after purge"
done
rm -rf /run/neuroq "$log" "$demo"
echo "test-deb: ok"
