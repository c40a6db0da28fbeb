#!/usr/bin/env bash
# Installs what building, running and testing neuroq needs on Debian 12:
# the C libraries (apt) and a Python virtual environment at .venv with the
# client's and the tests' packages. Idempotent; safe to run again.
#   deploy/install-deps.sh            # apt (as root, or via sudo) + .venv
#   deploy/install-deps.sh --ci       # also what .ci/run's extra stages use
#   NEUROQ_NO_APT=1 deploy/install-deps.sh   # only the .venv
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(build-essential cmake pkg-config git help2man
          libuv1-dev libnng-dev libmsgpack-dev libsqlite3-dev
          libopenblas-dev liblapacke-dev libcmocka-dev
          python3 python3-venv python3-pip
          chromium tmux  # the queue page's test (test_web.py), neuroq top's (test_top.py)
          openssh-server openssh-client)  # tests/e2e/test_ssh.py: a real sshd on loopback
# .ci/run: clang with its sanitizer runtimes and LLVM's OpenMP (the
# ThreadSanitizer build, the fuzzer), clang-format, clang-tidy and
# run-clang-tidy (deploy/lint.sh), shellcheck; Slurm and munge (tests/slurm:
# a loopback cluster, tests/slurm/cluster.sh)
CI_PKGS=(clang libclang-rt-14-dev libomp-14-dev clang-format clang-tidy clang-tools
         shellcheck
         slurmctld slurmd slurm-client munge)
if [ "${1:-}" = --ci ]; then
	APT_PKGS+=("${CI_PKGS[@]}")
fi

need_apt=()
for p in "${APT_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
if [ "${NEUROQ_NO_APT:-0}" != 1 ] && [ ${#need_apt[@]} -gt 0 ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "install-deps: apt-get install ${need_apt[*]}"
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
	echo "install-deps: creating .venv"
	"$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
log=$(mktemp)
if ! { .venv/bin/python -m pip install -q -r deploy/requirements.txt &&
       .venv/bin/python -m pip install -q -e client/python; } >"$log" 2>&1; then
	cat "$log"; rm -f "$log"; echo "install-deps: pip failed" >&2; exit 1
fi
rm -f "$log"
echo "install-deps: ok"
