#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time, so that fuzzing is
# one command for a developer and for CI. Exits non-zero if any target crashes, leaks, times
# out on an input, or fails to build.
#
#   scripts/fuzz.sh                     # every target, FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh fuzz_parse_pdf
#   FUZZ_BUILD_DIR=build-asan scripts/fuzz.sh    # reuse a build configured with KB_BUILD_FUZZ=ON
#
# Seeds come from fuzz/corpus/<target>/ and are copied into build-fuzz/corpus/<target>/, where
# new inputs accumulate between runs; the checked-in corpus is never written. A crashing input
# is saved as build-fuzz/artifacts/<target>/crash-*; replay it with
#   build-fuzz/fuzz/<target> build-fuzz/artifacts/<target>/crash-...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
SECONDS_EACH="${FUZZ_SECONDS:-30}"
ALL_TARGETS=(fuzz_parse_text fuzz_parse_markdown fuzz_parse_html fuzz_parse_pdf fuzz_chunker fuzz_json_request
             fuzz_multipart fuzz_repo_config fuzz_repo_keyfile fuzz_pack_framing)
TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then TARGETS=("${ALL_TARGETS[@]}"); fi

# Ninja when installed (scripts/install-deps.sh); an existing build directory keeps its generator.
if [[ -z "${CMAKE_GENERATOR:-}" ]] && command -v ninja >/dev/null; then export CMAKE_GENERATOR=Ninja; fi
# A build directory configured for fuzzing already (`make test-asan`'s, say) is built as it is.
if ! grep -qs '^KB_BUILD_FUZZ:BOOL=ON$' "$BUILD/CMakeCache.txt"; then
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DKB_BUILD_FUZZ=ON -DKB_BUILD_TESTS=OFF \
    -DKB_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}"

# Poppler and gumbo are not instrumented; leaks inside them are theirs, not ours.
export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
for target in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$target"
  artifacts="$BUILD/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  if [[ -d "$ROOT/fuzz/corpus/$target" ]]; then cp -n "$ROOT/fuzz/corpus/$target"/* "$corpus"/ 2>/dev/null || true; fi
  args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536
        -print_final_stats=1 -artifact_prefix="$artifacts/")
  case "$target" in
    fuzz_parse_pdf) args+=(-dict="$ROOT/fuzz/pdf.dict") ;;
    fuzz_parse_html) args+=(-dict="$ROOT/fuzz/html.dict") ;;
  esac
  echo "== $target: ${SECONDS_EACH}s"
  if ! "$BUILD/fuzz/$target" "${args[@]}" "$corpus" > "$BUILD/$target.log" 2>&1; then
    echo "!! $target failed; see $BUILD/$target.log and $artifacts/"
    tail -n 40 "$BUILD/$target.log"
    failed+=("$target")
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$BUILD/$target.log" | tr '\n' ' '
    echo
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing found problems in: ${failed[*]}"
  exit 1
fi
echo "all fuzz targets ran ${SECONDS_EACH}s without a finding"
