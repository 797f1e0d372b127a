#!/bin/bash
# types_table.sh — decode speed of every GGUF type with int8 activations (ops::gemv_q8, the default
# on GPUs; INFERNO_FORCE_INT8_DOT=1, so software adapters take it too) and with 16-bit ones
# (INFERNO_NO_INT8_DOT=1), on generated weights of a real shape (no file: `inferno bench --shape`).
#
#   tests/benches/types_table.sh INFERNO [SHAPE] [TYPE ...]
#
# SHAPE: a preset (default llama-3.1-8b); TYPE: what `inferno bench --dtype` takes (default: every
# single type but f32). Set BENCH_ARGS to change the bench arguments (default -p 16 -n 128 -r 3).
# Each line: type, int8 tg, 16-bit tg; the weights' bytes over the step time against the card's
# roof are what BENCHMARKS.md records beside the card, date and commit.
set -euo pipefail
if [ $# -lt 1 ]; then
    sed -n 2,11p "$0"
    exit 2
fi
bin=$1
shape=${2:-llama-3.1-8b}
shift $(( $# < 2 ? $# : 2 ))
types=("$@")
if [ ${#types[@]} -eq 0 ]; then
    types=(bf16 f16 q8_0 q6_k q5_k q5_1 q5_0 q4_k q4_1 q4_0 iq4_xs iq4_nl mxfp4 nvfp4 q3_k iq3_s iq3_xxs
           q2_k iq2_s iq2_xs iq2_xxs iq1_m iq1_s tq2_0 tq1_0)
fi
args=${BENCH_ARGS:--p 16 -n 128 -r 3}
# the first run after the GPU idled is slower for every engine: one throw-away run
"$bin" bench --shape "$shape" --dtype q4_k -p 16 -n 32 -r 1 > /dev/null 2>&1
tg() {
    # shellcheck disable=SC2086 # args holds several words
    "$bin" bench --shape "$shape" --dtype "$1" $args 2>&1 | grep -E "tg[0-9]+ " | awk -F'|' '{print $(NF-1)}' | xargs
}
printf '%-8s | %-16s | %s\n' type "int8 tg" "16-bit tg"
for t in "${types[@]}"; do
    printf '%-8s | %-16s | %s\n' "$t" "$(INFERNO_FORCE_INT8_DOT=1 tg "$t")" "$(INFERNO_NO_INT8_DOT=1 tg "$t")"
done
