#!/usr/bin/env bash
# Runs the UCI protocol on all nine data sets for one method and ensemble size, writing the
# JSON lines of `bali uci --json` to OUT_DIR/<method>-k<members>.jsonl.
#   bash benches/uci/run_suite.sh METHOD MEMBERS [OUT_DIR] [BALI_BINARY]
# e.g. bash benches/uci/run_suite.sh bali 5 docs/results/raw target/release/bali
set -euo pipefail
method=${1:?method: bali | bali-paper | map}
members=${2:?members}
out_dir=${3:-docs/results/raw}
bali=${4:-target/release/bali}
mkdir -p "$out_dir"
out="$out_dir/$method-k$members.jsonl"
: > "$out"
start=$(date +%s)
for ds in boston concrete energy kin8nm naval power protein wine yacht; do
  "$bali" uci --dataset "$ds" --method "$method" --members "$members" --json >> "$out"
  tail -n 1 "$out"
done
echo "total seconds: $(( $(date +%s) - start ))"
