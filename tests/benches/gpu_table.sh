#!/bin/bash
# gpu_table.sh — reproduces the rows of README.md's benchmark table on a GPU machine: random-weight
# GGUF files of the real shapes (written by ../shared/gpu/gen_random_gguf.py, which needs numpy and
# the PyPI `gguf` package) are read once into the page cache, the GPU is warmed, then each file is
# benchmarked as the table's figures were (`inferno bench -m FILE -p 512 -n 128 -r 3`).
#
#   tests/benches/gpu_table.sh INFERNO GEN_RANDOM_GGUF_PY [SHAPE:MIX ...]
#
# SHAPE: 1b, 3b, 8b, 70b; MIX: any gen_random_gguf.py accepts (q4_k_m, q8_0, bf16, q6_k, ...).
# Default rows: 1b and 8b in q4_k_m, q8_0 and bf16. Files go to $BENCH_DIR (default
# /dev/shm/inferno-bench; 8B Q4_K_M is 5 GB, 70B Q4_K_M 45 GB) and are kept for the next run.
# Set BENCH_ARGS to change the bench arguments. Record what it prints in BENCHMARKS.md with the
# card, date and commit.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n 2,13p "$0"
    exit 2
fi
bin=$1
gen=$2
shift 2
rows=("$@")
if [ ${#rows[@]} -eq 0 ]; then
    rows=(1b:q4_k_m 8b:q4_k_m 1b:q8_0 8b:q8_0 1b:bf16 8b:bf16)
fi
dir=${BENCH_DIR:-/dev/shm/inferno-bench}
args=${BENCH_ARGS:--p 512 -n 128 -r 3}
mkdir -p "$dir"
for row in "${rows[@]}"; do
    file="$dir/${row%%:*}-${row#*:}.gguf"
    [ -f "$file" ] || python3 "$gen" "${row%%:*}" "${row#*:}" "$file"
done
# the first run after the GPU idled is slower for every engine: one throw-away run
"$bin" bench -m "$dir/${rows[0]%%:*}-${rows[0]#*:}.gguf" -p 512 -n 32 -r 1 > /dev/null 2>&1
for row in "${rows[@]}"; do
    file="$dir/${row%%:*}-${row#*:}.gguf"
    cat "$file" > /dev/null # from the page cache, as the table's load times are
    echo "== $row ($(du -h "$file" | cut -f1))"
    # shellcheck disable=SC2086 # args holds several words
    "$bin" bench -m "$file" $args 2>&1 | grep -E "pp[0-9]+ |tg[0-9]+ |^load"
done
