#!/usr/bin/env python3
"""Writes the wider regression benchmark's data sets in the UCI benchmark layout.

    python3 benches/wider/make_data.py [OUT_DIR]        (default target/wider-data)

Every folder holds `data.txt` (features, then the target in the last column), the index
files, `n_splits.txt` (20 seeded 90/10 splits), `n_hidden.txt` (50), `n_epochs.txt` (40),
so `bali uci --data OUT_DIR --dataset NAME` runs the same protocol as on the nine UCI sets,
and `meta.json` (what the set is, where it comes from, and for the synthetic sets the
oracle: the test log-likelihood of the true predictive `N(y | f(x), s(x)^2)` on each split's
test rows, the best any method can expect).

Synthetic sets (seeded, so every run writes the same bytes):
  friedman1  500 x 10, smooth with interactions (Friedman 1991), 5 irrelevant inputs, s = 1
  interact   1000 x 6, products and a sine of products of Gaussian inputs, s = 0.5
  piecewise  800 x 4, steps, a kink and a gated slope, s = 0.5
  irrelevant 1000 x 50, 5 relevant Gaussian inputs of 50, s = 0.3
  hetero     1000 x 2, smooth mean, noise sd 0.1 to 0.7 varying with x1

Real tabular sets shipped inside Python packages (no download at run time):
  diabetes   scikit-learn `load_diabetes`: 442 x 10, disease progression after a year
  star98     statsmodels `star98`: 303 x 20 California school districts, the fraction of
             pupils above the national math median
  engel      statsmodels `engel`: 235 x 1, household food expenditure against income
             (heteroscedastic)
  fair       statsmodels `fair`: 6366 x 8, the Fair (1978) affairs survey, time in affairs
             (zero-inflated, skewed)

Needs numpy, scikit-learn and statsmodels (`pip install numpy scikit-learn statsmodels`).
"""
import json
import math
import os
import sys

import numpy as np

N_SPLITS = 20
TEST_FRACTION = 0.1
SEED = 20261202


def normal_logpdf(y, mean, sd):
    return -0.5 * math.log(2 * math.pi) - np.log(sd) - 0.5 * ((y - mean) / sd) ** 2


def friedman1(rng):
    x = rng.uniform(0.0, 1.0, size=(500, 10))
    f = (10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2
         + 10 * x[:, 3] + 5 * x[:, 4])
    return x, f, np.full(len(f), 1.0)


def interact(rng):
    x = rng.normal(size=(1000, 6))
    f = x[:, 0] * x[:, 1] + 2 * np.sin(x[:, 2] * x[:, 3]) + 0.5 * x[:, 4] * x[:, 5] * x[:, 0]
    return x, f, np.full(len(f), 0.5)


def piecewise(rng):
    x = rng.uniform(-2.0, 2.0, size=(800, 4))
    f = (2.0 * (x[:, 0] > 0) + 1.5 * np.abs(x[:, 1]) - 2.0 * (x[:, 2] > 0.5) * x[:, 3]
         + np.floor(x[:, 3]))
    return x, f, np.full(len(f), 0.5)


def irrelevant(rng):
    x = rng.normal(size=(1000, 50))
    f = (np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + x[:, 2] * x[:, 3]
         + np.tanh(3 * x[:, 4]))
    return x, f, np.full(len(f), 0.3)


def hetero(rng):
    x = rng.uniform(-3.0, 3.0, size=(1000, 2))
    f = 2 * np.sin(x[:, 0]) + 0.5 * x[:, 1]
    sd = 0.1 + 0.6 / (1 + np.exp(-2 * x[:, 0]))
    return x, f, sd


SYNTHETIC = {
    "friedman1": (friedman1, "Friedman (1991) #1: 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5, x ~ U(0,1)^10, noise sd 1"),
    "interact": (interact, "x1 x2 + 2 sin(x3 x4) + 0.5 x5 x6 x1, x ~ N(0, I_6), noise sd 0.5"),
    "piecewise": (piecewise, "2 [x1 > 0] + 1.5 |x2| - 2 [x3 > 0.5] x4 + floor(x4), x ~ U(-2,2)^4, noise sd 0.5"),
    "irrelevant": (irrelevant, "sin(2 x1) + 0.5 x2^2 + x3 x4 + tanh(3 x5), x ~ N(0, I_50) (45 irrelevant), noise sd 0.3"),
    "hetero": (hetero, "2 sin(x1) + 0.5 x2, x ~ U(-3,3)^2, noise sd 0.1 + 0.6 sigmoid(2 x1) (0.10 to 0.70)"),
}


def real_sets():
    from sklearn.datasets import load_diabetes
    import statsmodels.api as sm

    out = {}
    d = load_diabetes()
    out["diabetes"] = (np.asarray(d.data, float), np.asarray(d.target, float),
                       "scikit-learn load_diabetes (Efron et al. 2004), 442 x 10, progression after one year")
    s = sm.datasets.star98.load_pandas().data
    y = (s["NABOVE"] / (s["NABOVE"] + s["NBELOW"])).to_numpy(float)
    x = s.drop(columns=["NABOVE", "NBELOW"]).to_numpy(float)
    out["star98"] = (x, y, "statsmodels star98, 303 x 20 California districts, fraction above the national math median")
    e = sm.datasets.engel.load_pandas().data
    out["engel"] = (e[["income"]].to_numpy(float), e["foodexp"].to_numpy(float),
                    "statsmodels engel (Koenker & Bassett 1982), 235 x 1, food expenditure against income")
    f = sm.datasets.fair.load_pandas().data
    out["fair"] = (f.drop(columns=["affairs"]).to_numpy(float), f["affairs"].to_numpy(float),
                   "statsmodels fair (Fair 1978), 6366 x 8, time spent in affairs")
    return out


def splits(n, rng):
    n_test = max(1, int(round(TEST_FRACTION * n)))
    out = []
    for _ in range(N_SPLITS):
        perm = rng.permutation(n)
        out.append((np.sort(perm[n_test:]), np.sort(perm[:n_test])))
    return out


def write(out_dir, name, x, y, about, rng, mean=None, sd=None):
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    n, d = x.shape
    data = np.column_stack([x, y])
    np.savetxt(os.path.join(folder, "data.txt"), data, fmt="%.17g")
    with open(os.path.join(folder, "index_features.txt"), "w") as f:
        f.write("".join(f"{j}\n" for j in range(d)))
    with open(os.path.join(folder, "index_target.txt"), "w") as f:
        f.write(f"{d}\n")
    for name_, value in (("n_splits", N_SPLITS), ("n_hidden", 50), ("n_epochs", 40)):
        with open(os.path.join(folder, f"{name_}.txt"), "w") as f:
            f.write(f"{value}\n")
    meta = {"name": name, "rows": n, "features": d, "about": about}
    oracle = []
    for k, (train, test) in enumerate(splits(n, rng)):
        np.savetxt(os.path.join(folder, f"index_train_{k}.txt"), train, fmt="%d")
        np.savetxt(os.path.join(folder, f"index_test_{k}.txt"), test, fmt="%d")
        if mean is not None:
            oracle.append(float(np.mean(normal_logpdf(y[test], mean[test], sd[test]))))
    if mean is not None:
        meta["oracle_test_ll"] = oracle
        meta["oracle_test_ll_mean"] = float(np.mean(oracle))
        meta["oracle_rmse_mean"] = float(np.sqrt(np.mean(sd ** 2)))
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: {n} x {d}" + (f", oracle test LL {meta['oracle_test_ll_mean']:.3f}" if mean is not None else ""))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "target/wider-data"
    os.makedirs(out_dir, exist_ok=True)
    for i, (name, (make, about)) in enumerate(SYNTHETIC.items()):
        rng = np.random.default_rng([SEED, i])
        x, f, sd = make(rng)
        y = f + sd * rng.normal(size=len(f))
        write(out_dir, name, x, y, about, rng, mean=f, sd=sd)
    for i, (name, (x, y, about)) in enumerate(real_sets().items()):
        rng = np.random.default_rng([SEED, 100 + i])
        write(out_dir, name, x, y, about, rng)


if __name__ == "__main__":
    main()
