#!/usr/bin/env bash
# The wider regression benchmark: the nine UCI sets and the nine of benches/wider/make_data.py
# (five synthetic of known noise, four real tables shipped by scikit-learn and statsmodels),
# one method and ensemble size, the same `bali uci` protocol on all (20 seeded splits each;
# protein 5). Writes the JSON lines of `bali uci --json` to OUT_DIR/<method>-k<members>.jsonl.
#   bash benches/wider/run_suite.sh METHOD MEMBERS [OUT_DIR] [BALI_BINARY] [DATA_DIR]
# e.g. bash benches/wider/run_suite.sh bali 5 docs/results/raw/wider target/release/bali
# SETS="friedman1 engel" restricts the sets; EXTRA="--wd 1" passes options to every run.
# The data is written to DATA_DIR (default target/wider-data) when it is not there yet.
set -euo pipefail
method=${1:?method: bali | bali-paper | map}
members=${2:?members}
out_dir=${3:-docs/results/raw/wider}
bali=${4:-target/release/bali}
data_dir=${5:-target/wider-data}
uci_dir=${UCI_DIR:-../shared/data/uci}
uci_sets="boston concrete energy kin8nm naval power protein wine yacht"
wider_sets="friedman1 interact piecewise irrelevant hetero diabetes star98 engel fair"
sets=${SETS:-"$uci_sets $wider_sets"}
if [ ! -f "$data_dir/fair/meta.json" ]; then
  python3 "$(dirname "$0")/make_data.py" "$data_dir"
fi
mkdir -p "$out_dir"
out="$out_dir/$method-k$members.jsonl"
: > "$out"
start=$(date +%s)
for ds in $sets; do
  if [[ " $uci_sets " == *" $ds "* ]]; then root=$uci_dir; else root=$data_dir; fi
  # shellcheck disable=SC2086
  "$bali" uci --data "$root" --dataset "$ds" --method "$method" --members "$members" --json ${EXTRA:-} >> "$out"
  tail -n 1 "$out"
done
echo "total seconds: $(( $(date +%s) - start ))"
