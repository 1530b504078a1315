#!/usr/bin/env bash
# The anchors of the wider benchmark (exact GP up to 2,000 training rows, Bayesian ridge) on
# every set of benches/wider/run_suite.sh, same folders and splits:
#   bash benches/wider/run_anchors.sh [OUT_DIR] [DATA_DIR]   -> OUT_DIR/anchors.jsonl
set -euo pipefail
out_dir=${1:-docs/results/raw/wider}
data_dir=${2:-target/wider-data}
uci_dir=${UCI_DIR:-../shared/data/uci}
here=$(dirname "$0")
if [ ! -f "$data_dir/fair/meta.json" ]; then
  python3 "$here/make_data.py" "$data_dir"
fi
mkdir -p "$out_dir"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
out="$out_dir/anchors.jsonl"
start=$(date +%s)
python3 "$here/anchors.py" "$data_dir" friedman1 interact piecewise irrelevant hetero diabetes \
  star98 engel fair > "$out"
python3 "$here/anchors.py" "$uci_dir" yacht bostonHousing energy concrete wine-quality-red kin8nm \
  naval-propulsion-plant power-plant protein-tertiary-structure >> "$out"
grep summary "$out"
echo "total seconds: $(( $(date +%s) - start ))"
