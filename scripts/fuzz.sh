#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time, from its checked-in seeds
# (fuzz/seeds/<target>) plus what earlier runs found (target/fuzz-corpus/<target>), with the
# JOSE dictionary. Any crash, panic, input slower than 1 s, or allocation above 512 MiB
# fails the run and names the input libFuzzer saved.
#
#   scripts/fuzz.sh            # 30 s per target (what CI runs)
#   scripts/fuzz.sh 600        # 10 minutes per target
#   scripts/fuzz.sh 60 token   # one target
#   scripts/fuzz.sh --build-only   # install cargo-fuzz if need be and build the targets
#
# The targets are built with `--dev`, under fuzz/Cargo.toml's dev profile (opt-level 1, line
# tables only, debug assertions on): it fuzzes as fast as a release build and builds in half
# the time.
# Needs the nightly toolchain (libFuzzer's instrumentation); installs cargo-fuzz when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=false
if [ "${1:-}" = "--build-only" ]; then build_only=true; shift; fi
seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^jwt-issuer-fuzz$')

case "$seconds" in
  ''|*[!0-9]*) echo "fuzz: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac
for target in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$target.rs" ] || { echo "fuzz: no target '$target' (see fuzz/fuzz_targets)" >&2; exit 2; }
done
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly); failing." >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

# No sanitizer: the service forbids unsafe code, so what a fuzzer can find here is a panic, a
# hang or an unbounded allocation, which libFuzzer catches itself; the build is much faster.
(cd fuzz && cargo +nightly fuzz build --dev --sanitizer none)
$build_only && exit 0
cd fuzz
status=0
for target in "${targets[@]}"; do
  corpus="../target/fuzz-corpus/$target"
  mkdir -p "$corpus" "../target/fuzz-artifacts/$target"
  log="../target/fuzz-artifacts/$target.log"
  if cargo +nightly fuzz run --dev --sanitizer none "$target" "$corpus" "seeds/$target" -- \
      -dict=seeds/jose.dict -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 \
      -malloc_limit_mb=512 -print_final_stats=1 \
      -artifact_prefix="../target/fuzz-artifacts/$target/" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1)
    echo "fuzz $target: ${seconds}s, $execs executions, $cov, $ft, no findings"
  else
    status=1
    echo "fuzz $target: FINDING (log: target/fuzz-artifacts/$target.log)" >&2
    grep -E 'ERROR|panicked|Test unit written|SUMMARY' "$log" >&2 || tail -20 "$log" >&2
  fi
done
exit $status
