#!/usr/bin/env python3
"""Side-by-side table of `bali bench kron --json` against `numpy_kron.py --json`.

    python3 benches/anchors/compare.py BALI_1T.jsonl NUMPY.jsonl [BALI_2T.jsonl]

Prints a markdown table (op, p, q, b, numpy s, bali s, bali GFLOP/s, speedup = numpy s /
bali s, and with a third file the 2-thread / 1-thread time ratio), flags rows where bali
is slower than numpy or 2 threads are more than 10% slower than 1 ("(par)": the 2-thread
run gave some kernel call of the row 2 threads; elsewhere both runs execute the same
sequential code), then checks the targets:
  1. with 1 thread, every op at least as fast as numpy at every shape;
  2. kron_factor_solve at (1025, 1024) >= 35 GFLOP/s;
  3. with 2 threads, no op more than 10% slower than with 1 thread;
  4. syrk_ema >= 1.2x numpy.
Needs only the Python standard library.
"""

import json
import sys


def load(path):
    rows = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON: {e}")
            rows[(r["op"], r["p"], r.get("q"), r.get("b"), r.get("dtype", "f64"))] = r
    return rows


def dash(v):
    return "-" if v is None else str(v)


def label(key):
    op, p, q, b, _ = key
    if q is not None:
        return f"{op} {p}x{q}"
    if b is not None:
        return f"{op} p={p} b={b}"
    return f"{op} {p}"


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    bali, numpy = load(sys.argv[1]), load(sys.argv[2])
    bali2 = load(sys.argv[3]) if len(sys.argv) == 4 else None
    head = "| op | p | q | b | numpy s | bali s | bali GFLOP/s | speedup (numpy/bali) |"
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|"
    if bali2 is not None:
        head += " 2T/1T time |"
        rule += "---:|"
    head += " flags |"
    rule += "---|"
    print(head)
    print(rule)
    slower, thread_slow, missing = [], [], []
    syrk_ratios, kfs_big = [], None
    for key, b in bali.items():
        op, p, q, bb, dtype = key
        n = numpy.get(key)
        flags = []
        speed = None
        if n is None:
            missing.append(key)
        else:
            speed = n["seconds"] / b["seconds"]
            if speed < 1.0:
                flags.append("bali slower")
                slower.append((key, speed))
            if op == "syrk_ema":
                syrk_ratios.append((key, speed))
        if op == "kron_factor_solve" and (p, q) == (1025, 1024):
            kfs_big = b["gflops"]
        cells = [
            op,
            str(p),
            dash(q),
            dash(bb),
            "-" if n is None else f"{n['seconds']:.3e}",
            f"{b['seconds']:.3e}",
            f"{b['gflops']:.2f}",
            "-" if speed is None else f"{speed:.2f}",
        ]
        if bali2 is not None:
            t2 = bali2.get(key)
            if t2 is None:
                cells.append("-")
            else:
                ratio = t2["seconds"] / b["seconds"]
                par = t2.get("kernel_threads", 1) > 1
                cells.append(f"{ratio:.2f}{' (par)' if par else ''}")
                if ratio > 1.10:
                    flags.append("2T >10% slower")
                    thread_slow.append((key, ratio))
        cells.append(", ".join(flags))
        print("| " + " | ".join(cells) + " |")

    print()
    print("Targets:")
    ok1 = not slower and not missing
    print(
        f"- 1 thread at least as fast as numpy everywhere: {'MET' if ok1 else 'NOT MET'}"
        + (f" ({len(slower)} slower rows: " + ", ".join(f"{label(k)} {s:.2f}x" for k, s in slower) + ")" if slower else "")
        + (f" ({len(missing)} rows without a numpy figure)" if missing else "")
    )
    if kfs_big is None:
        print("- kron_factor_solve (1025, 1024) >= 35 GFLOP/s: not measured")
    else:
        print(f"- kron_factor_solve (1025, 1024) >= 35 GFLOP/s: {'MET' if kfs_big >= 35 else 'NOT MET'} ({kfs_big:.1f} GFLOP/s)")
    if bali2 is None:
        print("- 2 threads no op >10% slower than 1: not measured")
    else:
        print(
            f"- 2 threads no op >10% slower than 1: {'MET' if not thread_slow else 'NOT MET'}"
            + (" (" + ", ".join(f"{label(k)} {r:.2f}" for k, r in thread_slow) + ")" if thread_slow else "")
        )
    if syrk_ratios:
        worst = min(s for _, s in syrk_ratios)
        print(f"- syrk_ema >= 1.2x numpy: {'MET' if worst >= 1.2 else 'NOT MET'} (worst {worst:.2f}x, best {max(s for _, s in syrk_ratios):.2f}x)")
    else:
        print("- syrk_ema >= 1.2x numpy: not measured")


if __name__ == "__main__":
    main()
