#!/usr/bin/env python3
"""Summarize `bali uci --json` runs into the markdown tables of docs/results/uci.md.

    python3 benches/uci/summarize.py RAW_DIR

RAW_DIR holds <method>-k<members>.jsonl files written by benches/uci/run_suite.sh. Prints
markdown: the log-likelihood and RMSE table (mean +- standard error over splits) next to the
reference figures of ALGORITHM.md section 9, the target checks, and the iteration counts at
which single BALI networks reach 1.05x the MAP network's best held-out RMSE.
"""
import json
import math
import os
import statistics
import sys

DATASETS = [
    ("bostonHousing", "boston"),
    ("concrete", "concrete"),
    ("energy", "energy"),
    ("kin8nm", "kin8nm"),
    ("naval-propulsion-plant", "naval"),
    ("power-plant", "power"),
    ("protein-tertiary-structure", "protein"),
    ("wine-quality-red", "wine"),
    ("yacht", "yacht"),
]
# ALGORITHM.md section 9: (test LL, RMSE)
MC_DROPOUT = {
    "boston": (-2.40, 2.90), "concrete": (-2.93, 4.82), "energy": (-1.21, 0.54),
    "kin8nm": (1.14, 0.08), "naval": (4.45, 0.00), "power": (-2.80, 4.01),
    "protein": (-2.87, 4.27), "wine": (-0.93, 0.62), "yacht": (-1.25, 0.67),
}
LAPLACE = {
    "boston": (-2.52, 3.00), "concrete": (-3.10, 5.50), "energy": (-0.78, 0.52),
    "kin8nm": (1.05, 0.085), "naval": (4.73, 0.002), "power": (-2.83, 4.10),
    "wine": (-0.95, 0.63), "yacht": (-1.70, 1.38),
}
RUNS = [
    ("bali-k5", "BALI Improved, K=5"),
    ("bali-k1", "BALI Improved, K=1"),
    ("bali-paper-k1", "BALI Paper, K=1"),
    ("map-k1", "MAP (Adam), K=1"),
    ("map-k5", "MAP ensemble, K=5"),
]


def load(raw):
    runs = {}
    for key, _ in RUNS:
        path = os.path.join(raw, key + ".jsonl")
        if not os.path.exists(path):
            continue
        splits, summaries = {}, {}
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if "summary" in rec:
                    summaries[rec["summary"]["dataset"]] = rec["summary"]
                else:
                    splits.setdefault(rec["dataset"], []).append(rec)
        runs[key] = (splits, summaries)
    return runs


def fmt(mean, se, digits=2):
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def main():
    raw = sys.argv[1] if len(sys.argv) > 1 else "docs/results/raw"
    runs = load(raw)
    present = [(k, n) for k, n in RUNS if k in runs]
    print("### Test log-likelihood (nats per point, original units; mean ± standard error over splits)\n")
    print("| dataset | splits | " + " | ".join(n for _, n in present) + " | MC dropout | laplace-torch |")
    print("|---" * (len(present) + 4) + "|")
    for folder, short in DATASETS:
        cells, nspl = [], ""
        for key, _ in present:
            s = runs[key][1].get(folder)
            cells.append(fmt(s["test_ll_mean"], s["test_ll_se"]) if s else "")
            if s and not nspl:
                nspl = str(s["splits"])
        lap = f"{LAPLACE[short][0]:.2f}" if short in LAPLACE else ""
        print(f"| {short} | {nspl} | " + " | ".join(cells) + f" | {MC_DROPOUT[short][0]:.2f} | {lap} |")
    print("\n### Test RMSE (original units; mean ± standard error over splits)\n")
    print("| dataset | " + " | ".join(n for _, n in present) + " | MC dropout | laplace-torch |")
    print("|---" * (len(present) + 3) + "|")
    for folder, short in DATASETS:
        cells = []
        for key, _ in present:
            s = runs[key][1].get(folder)
            digits = 4 if short == "naval" else (3 if short == "kin8nm" else 2)
            cells.append(fmt(s["rmse_mean"], s["rmse_se"], digits) if s else "")
        lap = LAPLACE.get(short)
        print(f"| {short} | " + " | ".join(cells) + f" | {MC_DROPOUT[short][1]} | {lap[1] if lap else ''} |")
    print("\n### Seconds per data set (all splits, selection included)\n")
    print("| dataset | " + " | ".join(n for _, n in present) + " |")
    print("|---" * (len(present) + 1) + "|")
    totals = {k: 0.0 for k, _ in present}
    for folder, short in DATASETS:
        cells = []
        for key, _ in present:
            s = runs[key][1].get(folder)
            cells.append(f"{s['seconds']:.0f}" if s else "")
            totals[key] += s["seconds"] if s else 0.0
        print(f"| {short} | " + " | ".join(cells) + " |")
    print("| **total** | " + " | ".join(f"{totals[k]:.0f}" for k, _ in present) + " |")

    def ll(key, folder):
        s = runs.get(key, ({}, {}))[1].get(folder)
        return s["test_ll_mean"] if s else None

    print("\n### Targets\n")
    checks = []
    if "bali-k5" in runs:
        beat_lap = [s for f, s in DATASETS if s in LAPLACE and ll("bali-k5", f) is not None
                    and ll("bali-k5", f) >= LAPLACE[s][0]]
        beat_mc = [s for f, s in DATASETS if ll("bali-k5", f) is not None
                   and ll("bali-k5", f) >= MC_DROPOUT[s][0]]
        checks.append(f"- BALI K=5 >= laplace-torch (test LL) on {len(beat_lap)} of {len(LAPLACE)}"
                      f" (target 6): {', '.join(beat_lap)}")
        checks.append(f"- BALI K=5 >= MC dropout on {len(beat_mc)} of 9 (target 4): {', '.join(beat_mc)}")
    if "bali-k1" in runs and "map-k1" in runs:
        ok = [s for f, s in DATASETS if None not in (ll("bali-k1", f), ll("map-k1", f))
              and ll("bali-k1", f) >= ll("map-k1", f)]
        checks.append(f"- BALI K=1 >= MAP K=1 on {len(ok)} of 9 (target 9): {', '.join(ok)}")
    if "bali-k5" in runs and "map-k5" in runs:
        ok = [s for f, s in DATASETS if None not in (ll("bali-k5", f), ll("map-k5", f))
              and ll("bali-k5", f) >= ll("map-k5", f)]
        checks.append(f"- BALI K=5 >= MAP K=5 on {len(ok)} of 9 (target 6): {', '.join(ok)}")
    print("\n".join(checks))

    if "bali-k1" in runs and "map-k1" in runs:
        print("\n### Iterations to reach 1.05x the MAP network's best held-out RMSE\n")
        print("Per split, on the validation carve: MAP iterations = the checkpoint of its best held-out"
              " RMSE; BALI iterations = the first checkpoint of the single BALI network (chosen options)"
              " at or below 1.05x that RMSE (not reached: the BALI run stopped first).\n")
        print("| dataset | MAP iterations (median) | BALI iterations (median, reached splits) | reached | median ratio MAP/BALI |")
        print("|---|---|---|---|---|")
        fast = []
        for folder, short in DATASETS:
            bs = {r["split"]: r for r in runs["bali-k1"][0].get(folder, [])}
            ms = {r["split"]: r for r in runs["map-k1"][0].get(folder, [])}
            map_it, bali_it, ratios, reached, total = [], [], [], 0, 0
            for k in sorted(set(bs) & set(ms)):
                mc = ms[k]["curve"]
                best = min(mc, key=lambda c: c["valid_rmse"])
                target = 1.05 * best["valid_rmse"]
                total += 1
                map_it.append(best["iterations"])
                hit = next((c["iterations"] for c in bs[k]["curve"] if c["valid_rmse"] <= target), None)
                if hit is not None:
                    reached += 1
                    bali_it.append(hit)
                    ratios.append(best["iterations"] / hit)
            if total == 0:
                continue
            med_ratio = statistics.median(ratios) if ratios else float("nan")
            if ratios and reached * 2 > total and med_ratio >= 5:
                fast.append(short)
            print(f"| {short} | {statistics.median(map_it):.0f} | "
                  f"{statistics.median(bali_it) if bali_it else float('nan'):.0f} | {reached}/{total} | "
                  f"{med_ratio:.1f} |")
        print(f"\nData sets where BALI reaches it in at most a fifth of MAP's iterations (median over"
              f" splits, reached on most splits): {len(fast)} (target 3): {', '.join(fast)}")


if __name__ == "__main__":
    main()
