#!/usr/bin/env python3
"""NumPy/SciPy anchor for `bali bench kron`: the same operations, shapes, flop counts and
median logic, printed as the same JSON lines (with "impl": "numpy").

Run (OpenBLAS's CPU-type and L2-size overrides slow current numpy on some CPUs):

    OPENBLAS_NUM_THREADS=1 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        python3 benches/anchors/numpy_kron.py --threads 1 --json

Needs only numpy, scipy and threadpoolctl (a scipy dependency). The BLAS libraries found
(file, kernel architecture, threads) are printed to stderr.

Operations (A = L L^T p x p, B = R R^T q x q, V p x q):
  potrf              scipy.linalg.cholesky(A, lower=True)                 n^3/3
  kron_factor_solve  cholesky of A and B, then cho_solve on each side      p^3/3 + q^3/3 + 2p^2q + 2q^2p
  kron_solve         cho_solve((L, True), V), then cho_solve((R, True), X^T)^T   2p^2q + 2q^2p
  dense_solve        cho_factor/cho_solve of np.kron(B, A), pq <= 4096     (pq)^3/3 + 2(pq)^2
  syrk_ema           beta*S + c*(X.T @ X), X (b x p)                       b p^2
  mn_sample          M + solve_triangular(L.T, Z) @ R.T                    p^2 q + q^2 p
"""

import argparse
import json
import sys
import time

import numpy as np
import scipy.linalg as sla
from threadpoolctl import threadpool_info, threadpool_limits

POTRF_SIZES = [32, 64, 128, 256, 512, 1024, 2048]
KRON_SHAPES = [(33, 50), (51, 1), (129, 128), (257, 256), (513, 512), (785, 256), (1025, 1024), (2049, 10)]
SYRK_SHAPES = [(64, 128), (256, 128), (1024, 128), (64, 1024), (256, 1024), (1024, 1024)]
DENSE_MAX_PQ = 4096
QUICK_MAX_DIM = 512
ALL_OPS = ["potrf", "kron_factor_solve", "kron_solve", "dense_solve", "syrk_ema", "mn_sample"]


def potrf_flops(n):
    return n**3 / 3.0


def solve_flops(p, q):
    return 2.0 * p * p * q + 2.0 * q * q * p


def flops(op, p, q, b):
    if op == "potrf":
        return potrf_flops(p)
    if op == "kron_factor_solve":
        return potrf_flops(p) + potrf_flops(q) + solve_flops(p, q)
    if op == "kron_solve":
        return solve_flops(p, q)
    if op == "dense_solve":
        n = p * q
        return n**3 / 3.0 + 2.0 * n * n
    if op == "syrk_ema":
        return b * p * p
    if op == "mn_sample":
        return p * p * q + q * q * p
    raise ValueError(op)


def cases(op, quick):
    def keep(*dims):
        return not quick or all(d <= QUICK_MAX_DIM for d in dims)

    if op == "potrf":
        return [(n, None, None) for n in POTRF_SIZES if keep(n)]
    if op == "syrk_ema":
        return [(p, None, b) for (p, b) in SYRK_SHAPES if keep(p, b)]
    out = [(p, q, None) for (p, q) in KRON_SHAPES if keep(p, q)]
    if op == "dense_solve":
        out = [c for c in out if c[0] * c[1] <= DENSE_MAX_PQ]
    return out


def median_seconds(f, target_time, max_samples, min_sample_time=1e-3):
    """One warm-up call, one calibration call, then samples of k calls each (k so that a
    sample lasts >= min_sample_time) until target_time seconds or max_samples samples
    (at least 3); returns (median seconds per call, number of samples)."""
    f()
    t0 = time.perf_counter()
    f()
    one = time.perf_counter() - t0
    batch = 1 if one >= min_sample_time else min(1_000_000, max(1, int(np.ceil(min_sample_time / max(one, 1e-9)))))
    max_samples = max(3, max_samples)
    samples = [one] if batch == 1 else []
    spent = 0.0
    while len(samples) < 3 or (spent < target_time and len(samples) < max_samples):
        t0 = time.perf_counter()
        for _ in range(batch):
            f()
        t = time.perf_counter() - t0
        spent += t
        samples.append(t / batch)
    return float(np.median(samples)), len(samples)


def random_spd(n, rng, dtype):
    """Symmetric, diagonal in [2, 3), off-diagonal uniform in (-1/n, 1/n): eigenvalues in (1, 4)."""
    a = rng.uniform(-1.0, 1.0, size=(n, n)) / n
    a = np.tril(a, -1)
    a = a + a.T + np.diag(2.0 + rng.uniform(0.0, 1.0, size=n))
    return np.asfortranarray(a, dtype=dtype)


def random_mat(rows, cols, rng, dtype):
    return np.asfortranarray(rng.uniform(-1.0, 1.0, size=(rows, cols)), dtype=dtype)


def shape_seed(seed, p, q):
    return (seed ^ (((p << 32) | q) * 0x9E3779B97F4A7C15)) % (1 << 64)


def kron_inputs(p, q, seed, dtype):
    rng = np.random.default_rng(shape_seed(seed, p, q))
    return random_spd(p, rng, dtype), random_spd(q, rng, dtype), random_mat(p, q, rng, dtype)


def kron_solve(la, lb, v):
    """A^{-1} V B^{-1} from the lower factors (two triangular solves per side)."""
    x = sla.cho_solve((la, True), v, check_finite=False)
    return sla.cho_solve((lb, True), x.T, check_finite=False).T


def chol(a):
    return sla.cholesky(a, lower=True, check_finite=False)


def dense_rel_diff(p, q, seed, dtype):
    a, b, v = kron_inputs(p, q, seed, dtype)
    x = kron_solve(chol(a), chol(b), v)
    big = np.kron(b, a)
    xd = sla.cho_solve(sla.cho_factor(big, lower=True), v.reshape(-1, order="F")).reshape(p, q, order="F")
    return float(np.max(np.abs(x - xd)) / np.max(np.abs(xd)))


def make_fn(op, p, q, b, seed, dtype):
    if op == "potrf":
        rng = np.random.default_rng(shape_seed(seed, p, 0))
        a = random_spd(p, rng, dtype)
        return lambda: chol(a)
    if op == "syrk_ema":
        rng = np.random.default_rng(shape_seed(seed, p, b))
        x = random_mat(b, p, rng, dtype)
        s = random_spd(p, rng, dtype)
        beta, c = dtype(0.9), dtype(0.1 / b)
        state = {"s": s}

        def syrk():
            state["s"] = beta * state["s"] + c * (x.T @ x)

        return syrk
    a, bm, v = kron_inputs(p, q, seed, dtype)
    if op == "kron_factor_solve":
        return lambda: kron_solve(chol(a), chol(bm), v)
    if op == "kron_solve":
        la, lb = chol(a), chol(bm)
        return lambda: kron_solve(la, lb, v)
    if op == "dense_solve":
        big = np.asfortranarray(np.kron(bm, a))
        rhs = v.reshape(-1, order="F")
        return lambda: sla.cho_solve(sla.cho_factor(big, lower=True, check_finite=False), rhs, check_finite=False)
    if op == "mn_sample":
        la, lr = chol(a), chol(bm)  # Lambda = L L^T, Sigma = R R^T
        m = np.zeros((p, q), dtype=dtype, order="F")
        rng = np.random.default_rng(shape_seed(seed, p, q) + 1)

        def sample():
            z = rng.standard_normal((p, q), dtype=dtype)
            return m + sla.solve_triangular(la.T, z, lower=False, check_finite=False) @ lr.T

        return sample
    raise ValueError(op)


def blas_threads():
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return max((i.get("num_threads", 1) for i in infos), default=1), infos


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=["f64", "f32"], default="f64")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ops", default=",".join(ALL_OPS))
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--target-time", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    ops = [o for o in args.ops.split(",") if o]
    for o in ops:
        if o not in ALL_OPS:
            ap.error(f"unknown op {o!r}; choose from {','.join(ALL_OPS)}")
    dtype = np.float64 if args.dtype == "f64" else np.float32
    target = args.target_time if args.target_time is not None else (0.05 if args.quick else 0.3)

    with threadpool_limits(limits=args.threads, user_api="blas"):
        threads, infos = blas_threads()
        print(f"numpy {np.__version__}, scipy {__import__('scipy').__version__}", file=sys.stderr)
        for i in infos:
            print(
                f"BLAS {i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
                f"threads={i.get('num_threads')} ({i.get('filepath')})",
                file=sys.stderr,
            )
        if not args.json:
            print(f"{'op':<18} {'p':>5} {'q':>5} {'b':>5} {'thr':>3} {'dtype':>5} {'seconds':>11} {'GFLOP/s':>9} {'rel_diff':>9}")
        rel_cache = {}
        for op in ops:
            for p, q, b in cases(op, args.quick):
                rel = None
                if op in ("kron_factor_solve", "kron_solve", "dense_solve") and p * q <= DENSE_MAX_PQ:
                    if (p, q) not in rel_cache:
                        rel_cache[(p, q)] = dense_rel_diff(p, q, args.seed, dtype)
                    rel = rel_cache[(p, q)]
                f = make_fn(op, p, q, b, args.seed, dtype)
                seconds, samples = median_seconds(f, target, args.repeats)
                rec = {
                    "impl": "numpy",
                    "op": op,
                    "p": p,
                    "q": q,
                    "b": b,
                    "threads": threads,
                    "dtype": args.dtype,
                    "seconds": seconds,
                    "gflops": flops(op, p, q or 0, b or 0) / seconds / 1e9,
                    "rel_diff": rel,
                    "samples": samples,
                }
                if args.json:
                    print(json.dumps(rec), flush=True)
                else:
                    dash = lambda v: "-" if v is None else str(v)  # noqa: E731
                    rd = "-" if rel is None else f"{rel:.1e}"
                    print(
                        f"{op:<18} {p:>5} {dash(q):>5} {dash(b):>5} {threads:>3} {args.dtype:>5} "
                        f"{seconds:>11.4e} {rec['gflops']:>9.2f} {rd:>9}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
