#!/usr/bin/env python3
"""The results table of `bali classify --json` output (the same table `bali classify` prints
without `--json`), for runs written to a file:

    python3 benches/classify/table.py RUN.jsonl

Mean +- standard error over seeds (population sd / sqrt(K)); OOD columns AUROC and FPR95 by
predictive entropy (H) and mutual information (MI); then per method the chosen options.
"""
import json
import math
import statistics
import sys


def pm(values, digits=4):
    m = sum(values) / len(values)
    se = statistics.pstdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{m:.{digits}f} ± {se:.{digits}f}"


def mean(values):
    return sum(values) / len(values)


def main():
    runs = {}
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if r.get("summary"):
            continue
        runs.setdefault(r["method"], []).append(r)
    first = next(iter(runs.values()))[0]
    sets = [o["set"] for o in first["ood"]]
    head = ["method", "seeds", "accuracy", "NLL", "Brier", "ECE"]
    for s in sets:
        head += [f"{s} AUROC H / MI", f"{s} FPR95 H / MI"]
    head.append("train s")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for method, rs in runs.items():
        row = [method, str(len(rs))] + [pm([r[k] for r in rs]) for k in ("accuracy", "nll", "brier", "ece")]
        for i, _ in enumerate(sets):
            o = [r["ood"][i] for r in rs]
            row.append(f"{mean([x['auroc_entropy'] for x in o]):.3f} / {mean([x['auroc_mi'] for x in o]):.3f}")
            row.append(f"{mean([x['fpr95_entropy'] for x in o]):.3f} / {mean([x['fpr95_mi'] for x in o]):.3f}")
        row.append(f"{mean([r['train_seconds'] for r in rs]):.1f}")
        print("| " + " | ".join(row) + " |")
    print()
    for method, rs in runs.items():
        chosen = "; ".join(
            f"seed {r['seed']}: {r['options']}, {r['iterations']} it, T {r['temperature']:.3g}"
            + (f", tau {r['prior_precision']:g}" if r.get("prior_precision") is not None else "")
            for r in rs)
        print(f"- {method}: {chosen}")
    # KMNIST AUROC by MI: per-seed values, for the target check.
    for method, rs in runs.items():
        k = [r["ood"][0]["auroc_mi"] for r in rs]
        print(f"- {method} {sets[0]} AUROC by MI per seed: " + ", ".join(f"{v:.3f}" for v in k)
              + f" (mean {mean(k):.4f})")


if __name__ == "__main__":
    main()
