#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 60), one after the other; then
# prints per target the executions, exec/s, coverage (libFuzzer's `cov` edges and `ft`
# features), corpus size and any crash.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Not run by CI.
# The corpus is kept in fuzz/corpus/TARGET (ignored by git) and grows run after run; the
# decoder's starts from the packets of proto/vectors/. Crashes land in fuzz/artifacts/TARGET,
# full logs in fuzz/logs/TARGET.log. A crash ends that target's run; the script exits 1 if
# any target crashed.
#
# The targets are built without a sanitizer (the protocol core and its CBOR decoder contain
# no unsafe code, and AddressSanitizer costs half the executions) but with debug assertions
# and overflow checks, so that an arithmetic overflow is a crash.
#
# FUZZ_NODE_BYTE_BOUND=1 makes the node target also check requests and repairs together
# against 16 times the bytes received; BENCHMARKS.md ("Fuzzing") says why that bound fails.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
shift || true
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build -s none

mkdir -p logs
# Seeds for the decoder: every packet vector, its hex lines joined; a vector added since the
# corpus was made is added to it too. (The node target's inputs are operations, not packets:
# it feeds the vectors itself, see fuzz_targets/node.rs.)
mkdir -p corpus/decode
for v in ../proto/vectors/*.vec; do
  seed="corpus/decode/vector-$(basename "$v" .vec)"
  [ -e "$seed" ] && continue
  perl -ne 'BEGIN { $h = "" } $h .= $1 if /^hex:\s*([0-9a-fA-F]+)/; END { print pack("H*", $h) if length $h }' \
    "$v" >"$seed"
done
find corpus/decode -type f -empty -delete

crashed=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  stamp=$(mktemp)
  echo "== $t: ${secs}s"
  status=0
  cargo +nightly fuzz run -s none "$t" -- \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 \
    >"logs/$t.log" 2>&1 || status=$?
  log="logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # The last status line: "#N DONE cov: C ft: F corp: K/SIZE ..." (or the last before a crash).
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
  line="$t: ${execs:-?} executions in ${secs}s (${rate:-?} exec/s), cov ${cov:-?} edges, ft ${ft:-?} features, corpus ${corp:-?}"
  [ "$status" -eq 0 ] || line="$t: CRASH after ${execs:-?} executions (${rate:-?} exec/s), cov ${cov:-?} edges, ft ${ft:-?} features, corpus ${corp:-?}"
  new=$(find "artifacts/$t" -type f -newer "$stamp")
  rm -f "$stamp"
  if [ "$status" -ne 0 ] || [ -n "$new" ]; then
    crashed=1
    [ "$status" -ne 0 ] || line="$line, CRASH"
    grep -E -A2 "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -20 || true
    for a in $new; do
      echo "  artifact: fuzz/$a"
      echo "    replay:   cargo +nightly fuzz run -s none $t fuzz/$a"
      echo "    minimise: cargo +nightly fuzz tmin -s none $t fuzz/$a"
      echo "    show:     cargo +nightly fuzz fmt -s none $t fuzz/$a"
    done
  fi
  echo "$line"
  summary+=("$line")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$crashed"
