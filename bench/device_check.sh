#!/usr/bin/env bash
# The GPU device check (bench/README.md, "GPU: the device check").
#
# Here, once, before asking for a GPU machine (needs apt-get download, cmake, nvcc):
#   bench/device_check.sh --pack        # -> .devcarry/: build (Release, CUDA on) + libraries
# On the GPU machine (the device tool: carry [".devcarry"], timeout_s 600):
#   bash bench/device_check.sh          # writes $OUT/device_check.json, device_check.txt, logs
# Here, as CI does (cpu backend, small sizes, same JSON):
#   bench/device_check.sh --dry-run --build build --out /tmp/dc
#
# On the machine it unpacks .devcarry/devlibs.tar.xz (../shared/device/bundle-libs.sh's archive)
# and points the loader at it and at .devcarry/lib (libraries the bundle lacks), then runs
# bench/device_check.py with --build .devcarry/build unless --build is given. No network, no pip.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
carry="$root/.devcarry"

pack() {
	local b="$root/.devbuild" shared="${NEUROQ_SHARED:-$root/../shared}"
	mkdir -p "$carry" # .gitignore keeps .devcarry and .devbuild out of git
	if [ ! -s "$carry/devlibs.tar.xz" ]; then
		bash "$shared/device/bundle-libs.sh" "$carry/devlibs.tar.xz"
	fi
	cmake -S "$root" -B "$b" -DCMAKE_BUILD_TYPE=Release -DNEUROQ_CUDA=ON -DNEUROQ_WERROR=OFF >/dev/null
	cmake --build "$b" -j"$(nproc)" --target neuroq-worker ss-run kern_cpu_test kern_cuda_test
	rm -rf "${carry:?}/build" "${carry:?}/lib"
	local progs="daemon/neuroq-worker daemon/jobs/spikesort/ss-run kernels/kern_cpu_test
kernels/kern_cuda_test kernels/libnq_kern_cuda.so"
	for f in $progs; do
		mkdir -p "$carry/build/$(dirname "$f")"
		cp "$b/$f" "$carry/build/$f"
		strip --strip-debug "$carry/build/$f" 2>/dev/null || true
	done
	# libraries the programs load that are neither the C library, CUDA's, nor in the bundle
	mkdir -p "$carry/lib"
	local inbundle
	inbundle=$(tar -tJf "$carry/devlibs.tar.xz" | sed 's|.*/||' | sort -u)
	for f in $progs; do ldd "$b/$f"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
		while read -r lib; do
			n=$(basename "$lib")
			case "$n" in
			libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libcuda.so* | \
				libcudart* | libcublas* | libcusolver* | libcusparse* | libnvJitLink* | libstdc++* | \
				libgcc_s*) continue ;;
			esac
			grep -qxF "$n" <<<"$inbundle" || cp -L "$lib" "$carry/lib/$n"
		done
	du -sh "$carry"/* "$carry" | sed 's/^/pack: /'
	echo "pack: carry [\".devcarry\"]; tracked tree $(git -C "$root" ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) bytes"
}

if [ "${1:-}" = "--pack" ]; then
	pack
	exit 0
fi

args=("$@")
if [ -s "$carry/devlibs.tar.xz" ]; then
	libs=${TMPDIR:-/tmp}/nq-devlibs
	mkdir -p "$libs"
	if [ ! -e "$libs/env.sh" ]; then
		if command -v xz >/dev/null; then
			tar -xJf "$carry/devlibs.tar.xz" -C "$libs"
		else # python's tarfile reads xz itself
			"${PYTHON:-python3}" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
				"$carry/devlibs.tar.xz" "$libs"
		fi
	fi
	# shellcheck disable=SC1091
	. "$libs/env.sh"
	echo "device_check.sh: libraries from .devcarry/devlibs.tar.xz in $libs"
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
	[ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
done
if [ -d "$carry/lib" ]; then
	export LD_LIBRARY_PATH="$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
case " $* " in
*" --build "* | *" --build="* | *" --dry-run "*) ;;
*) [ -d "$carry/build" ] && args+=(--build "$carry/build") ;;
esac
export PYTHONUNBUFFERED=1
py=${PYTHON:-$(command -v python3 || command -v python)}
exec "$py" "$here/device_check.py" "${args[@]}"
