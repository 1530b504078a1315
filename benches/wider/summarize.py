#!/usr/bin/env python3
"""Tables of the wider regression benchmark (docs/results/wider.md).

    python3 benches/wider/summarize.py DATA_DIR RAW_DIR [RAW_DIR ...]

Reads <method>-k<members>.jsonl (from benches/wider/run_suite.sh or benches/uci/run_suite.sh)
and anchors.jsonl (benches/wider/run_anchors.sh) from every RAW_DIR; a later directory's
record of the same (method, members, data set) replaces an earlier one's. DATA_DIR is what
benches/wider/make_data.py wrote (its meta.json gives the synthetic sets' oracle test
log-likelihood). Prints markdown: mean test log-likelihood +- standard error over splits per
method, the paired split-by-split wins, and the issue's target checks.
"""
import json
import math
import os
import re
import statistics
import sys

UCI = {"bostonHousing": "boston", "naval-propulsion-plant": "naval", "power-plant": "power",
       "protein-tertiary-structure": "protein", "wine-quality-red": "wine"}
ORDER = ["boston", "concrete", "energy", "kin8nm", "naval", "power", "protein", "wine", "yacht",
         "friedman1", "interact", "piecewise", "irrelevant", "hetero", "diabetes", "star98",
         "engel", "fair"]
COLUMNS = [("gp", 1, "exact GP"), ("ridge", 1, "Bayesian ridge"), ("mlp", 1, "sklearn MLP"),
           ("map", 1, "MAP K=1"),
           ("bali", 1, "BALI K=1"), ("map", 5, "MAP K=5"), ("bali", 5, "BALI K=5")]
GP_MAX_ROWS = 2000


def alias(name):
    return UCI.get(name, name)


def load(raw_dirs):
    runs = {}  # (method, members, dataset) -> {split: record}
    for raw in raw_dirs:
        for fname in sorted(os.listdir(raw)):
            if not (re.fullmatch(r"[a-z-]+-k\d+\.jsonl", fname) or fname == "anchors.jsonl"):
                continue
            found = {}
            with open(os.path.join(raw, fname)) as f:
                for line in f:
                    rec = json.loads(line)
                    if "summary" in rec or "split" not in rec:
                        continue
                    key = (rec["method"], rec.get("members", 1), alias(rec["dataset"]))
                    found.setdefault(key, {})[rec["split"]] = rec
            runs.update(found)
    return runs


def stats(values):
    n = len(values)
    mean = sum(values) / n
    se = statistics.pstdev(values) / math.sqrt(n) if n > 1 else 0.0
    return mean, se


def main():
    data_dir, raw_dirs = sys.argv[1], sys.argv[2:]
    runs = load(raw_dirs)
    oracle, rows = {}, {}
    for ds in ORDER:
        meta = os.path.join(data_dir, ds, "meta.json")
        if os.path.exists(meta):
            m = json.load(open(meta))
            rows[ds] = f"{m['rows']} x {m['features']}"
            if "oracle_test_ll" in m:
                oracle[ds] = m["oracle_test_ll_mean"]
    print("| data set | rows x inputs | oracle | " + " | ".join(c[2] for c in COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    means = {}
    for ds in ORDER:
        cells = []
        for method, k, _ in COLUMNS:
            r = runs.get((method, k, ds))
            if not r:
                cells.append("")
                continue
            mean, se = stats([x["test_ll"] for x in r.values()])
            means[(method, k, ds)] = (mean, se, r)
            cells.append(f"{mean:.3f} ± {se:.3f}")
        o = f"{oracle[ds]:.3f}" if ds in oracle else ""
        print(f"| {ds} | {rows.get(ds, '')} | {o} | " + " | ".join(cells) + " |")

    def paired(a, b, ds):
        ra, rb = means.get(a + (ds,)), means.get(b + (ds,))
        if not ra or not rb:
            return None
        common = sorted(set(ra[2]) & set(rb[2]))
        wins = sum(ra[2][s]["test_ll"] >= rb[2][s]["test_ll"] for s in common)
        return ra[0] - rb[0], wins, len(common)

    print()
    print("Paired: mean test-LL difference (splits won / splits).")
    print()
    print("| data set | BALI K=1 - MAP K=1 | BALI K=5 - MAP K=5 | BALI K=5 - GP | BALI K=1 - GP | BALI K=1 - MLP |")
    print("|---|---|---|---|---|---|")
    checks = {"k1": [0, 0], "k5": [0, 0], "gp_close": [0, 0], "gp_beat": [0, 0]}
    for ds in ORDER:
        cells = []
        for a, b, key in ((("bali", 1), ("map", 1), "k1"), (("bali", 5), ("map", 5), "k5"),
                          (("bali", 5), ("gp", 1), "gp"), (("bali", 1), ("gp", 1), "gp1"),
                          (("bali", 1), ("mlp", 1), "mlp")):
            p = paired(a, b, ds)
            if p is None:
                cells.append("")
                continue
            diff, wins, n = p
            cells.append(f"{diff:+.3f} ({wins}/{n})")
            if key in ("gp1", "mlp"):
                continue
            if key == "gp":
                checks["gp_close"][1] += 1
                checks["gp_beat"][1] += 1
                checks["gp_close"][0] += diff >= -0.1
                checks["gp_beat"][0] += diff >= 0
            else:
                checks[key][1] += 1
                checks[key][0] += diff >= 0
        if any(cells):
            print(f"| {ds} | " + " | ".join(cells) + " |")
    print()
    print(f"- BALI K=1 >= MAP K=1 on {checks['k1'][0]} of {checks['k1'][1]} data sets (target: all)")
    print(f"- BALI K=5 >= MAP K=5 on {checks['k5'][0]} of {checks['k5'][1]} (target: all)")
    print(f"- BALI K=5 within 0.1 nats of the GP on {checks['gp_close'][0]} of "
          f"{checks['gp_close'][1]} sets with a GP (target: all), at least the GP on "
          f"{checks['gp_beat'][0]} (target: half)")
    secs = {}
    for (method, k, ds), (_, _, r) in means.items():
        secs.setdefault((method, k), 0.0)
        secs[(method, k)] += sum(x.get("seconds", 0.0) for x in r.values())
    print("- seconds (sum over splits): " + ", ".join(
        f"{m} K={k} {s:.0f}" for (m, k), s in sorted(secs.items())))


if __name__ == "__main__":
    main()
