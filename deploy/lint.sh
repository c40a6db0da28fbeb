#!/usr/bin/env bash
# Lint: clang-format (the repo's .clang-format) over every tracked C source
# and header, clang-tidy (the repo's .clang-tidy) over the compile database
# of a cpu-only configuration (no build needed), shellcheck over the shell
# scripts. Prints every finding; exits 1 when there is one (for clang-tidy:
# one of the gated checks, .clang-tidy's WarningsAsErrors).
#   deploy/lint.sh                 # all three
#   deploy/lint.sh format|tidy|sh  # one of them
#   clang-format -i FILE...        # what fixes a format finding
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
status=0

for tool in clang-format clang-tidy run-clang-tidy shellcheck; do
	command -v "$tool" >/dev/null ||
		{ echo "lint: $tool missing (deploy/install-deps.sh --ci)" >&2; exit 2; }
done

if [ "$what" = all ] || [ "$what" = format ]; then
	echo "== clang-format --dry-run -Werror ($(clang-format --version))"
	mapfile -t files < <(git ls-files '*.c' '*.h')
	if clang-format --dry-run -Werror "${files[@]}"; then
		echo "clang-format: ${#files[@]} files clean"
	else
		status=1
	fi
fi

if [ "$what" = all ] || [ "$what" = tidy ]; then
	echo "== clang-tidy (.clang-tidy) over the compile database"
	BUILD=${NEUROQ_LINT_BUILD:-$PWD/build-lint}
	cmake -S . -B "$BUILD" -DNEUROQ_CUDA=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
	out=$BUILD/clang-tidy.log
	# every source of the database once (not the generated web_assets.c,
	# which needs a build); headers through HeaderFilterRegex. The gate is
	# WarningsAsErrors; the other checks of Checks are reported as warnings.
	rc=0
	run-clang-tidy -p "$BUILD" -j "$(nproc)" -quiet \
		-extra-arg="-include$PWD/deploy/tidy-cmocka.h" \
		"^$PWD/(proto|kernels|daemon|client|tests)/" >"$out.color" 2>&1 || rc=$?
	sed 's/\x1b\[[0-9;]*m//g' "$out.color" >"$out" && rm -f "$out.color"
	echo "clang-tidy: reported, not gated (.clang-tidy says why), per check:"
	grep -oE '^[^ ]+: warning: .* \[[A-Za-z0-9.,-]+\]$' "$out" | sort -u |
		grep -oE '\[[A-Za-z0-9.,-]+\]$' | sort | uniq -c | sort -rn || true
	if [ $rc -eq 0 ]; then
		echo "clang-tidy: gate clean (log: $out)"
	else
		status=1
		grep -E 'error:' "$out" | sort -u
		echo "clang-tidy: gate failed, per check:"
		grep -oE '^[^ ]+: error: .* \[[A-Za-z0-9.,-]+\]$' "$out" | sort -u |
			grep -oE '\[[A-Za-z0-9.-]+' | sort | uniq -c | sort -rn
	fi
fi

if [ "$what" = all ] || [ "$what" = sh ]; then
	echo "== shellcheck"
	mapfile -t scripts < <(git ls-files '*.sh' .ci/run deploy/debian)
	if shellcheck "${scripts[@]}"; then
		echo "shellcheck: ${#scripts[@]} scripts clean"
	else
		status=1
	fi
fi
exit $status
