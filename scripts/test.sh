#!/bin/bash
# The test command of README.md: install dependencies, build tcpcp normally
# and with ASan/UBSan, and run the test suite against both builds.
# Needs root: the tests build network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# A CRIU that runs on this kernel, for test/test_criu.py: built once into
# /opt/tcpcp-criu, only checked on later runs.
TCPCP_CRIU=$(scripts/criu/install-criu.sh)
export TCPCP_CRIU
make -j"$(nproc)" all
make -j"$(nproc)" asan
make -j"$(nproc)" fuzz

export PYTHONDONTWRITEBYTECODE=1
echo "== tests, normal build"
TCPCP_BUILD="$PWD/build" pytest-3 -q -p no:cacheprovider test/ "$@"
echo "== tests, ASan/UBSan build"
TCPCP_BUILD="$PWD/build-asan" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	pytest-3 -q -p no:cacheprovider test/ "$@"
# Bounded slices of each fuzzer, FUZZ_SECONDS in all; `make fuzz-long`
# runs them for an hour.
echo "== fuzzing for ${FUZZ_SECONDS:=120} s in all"
fuzz_new=$(mktemp -d)
trap 'rm -rf "$fuzz_new"' EXIT
for t in ici:3 frame:2 parse:1 answer:1 live:1; do
	name=${t%:*}
	secs=$((FUZZ_SECONDS * ${t#*:} / 8))
	corpus=test/fuzz/corpus
	[ "$name" = ici ] || corpus=test/fuzz/corpus-$name
	mkdir -p "$fuzz_new/$name"
	if ! build-fuzz/fuzz-$name -max_total_time="$secs" -max_len=8192 \
		-artifact_prefix="$PWD/build-fuzz/" "$fuzz_new/$name" "$corpus" \
		>"$fuzz_new/$name.log" 2>&1; then
		tail -n 60 "$fuzz_new/$name.log"
		echo "fuzz-$name failed; the input is in build-fuzz/ (crash-*, leak-*)" >&2
		exit 1
	fi
	echo "fuzz-$name: $(grep -E "^Done" "$fuzz_new/$name.log")"
done
# The kernel-patch/ series, booted under qemu (first build ~7 min, then
# cached until the patches change; a boot is ~10 s).
echo "== kernel-patch: build, boot under qemu, in-guest tests"
make kernel-test
