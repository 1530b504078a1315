#!/usr/bin/env python3
"""Anchors for the wider regression benchmark: an exact Gaussian process and Bayesian ridge,
on the same folders and splits as `bali uci`.

    python3 benches/wider/anchors.py DATA_DIR DATASET [DATASET ...] > OUT.jsonl

DATA_DIR is a folder of data sets in the UCI benchmark layout (the nine UCI sets under
../shared/data/uci, or what benches/wider/make_data.py writes). For every split: inputs and
target standardized on the training rows (as `bali uci` does); then

- `gp`: scikit-learn `GaussianProcessRegressor` with `ConstantKernel * RBF(ARD) +
  WhiteKernel`, every hyperparameter (signal variance, one length scale per input, noise) by
  maximizing the marginal likelihood (L-BFGS-B from unit length scales; `GP_RESTARTS`
  more random starts, default 0); skipped above 2,000 training
  rows (exact GP cost is cubic in the rows);
- `ridge`: scikit-learn `BayesianRidge` (evidence-maximized weight and noise precisions);
- `mlp`: scikit-learn `MLPRegressor` as a user would tune it (the issue's comparator): 50
  ReLU units (the data set's `n_hidden`), Adam, L2 strength `alpha` in {1e-4, 1e-3, 1e-2,
  0.1, 1, 10} chosen on a seeded 20% validation carve of the training split by squared
  error, refit on the whole training split, the predictive noise variance the chosen
  model's carve mean squared error (`METHODS=gp,ridge` leaves it out).

Test log-likelihood and RMSE in the original units, from the predictive mean and the
predictive sd including the noise. One JSON line per split, then a summary line per method,
in the shape of `bali uci --json` (`benches/wider/summarize.py` reads both).
"""
import json
import math
import os
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import BayesianRidge
from sklearn.neural_network import MLPRegressor

GP_MAX_ROWS = int(os.environ.get("GP_MAX_ROWS", "2000"))
GP_RESTARTS = int(os.environ.get("GP_RESTARTS", "0"))


def load(folder):
    data = np.loadtxt(os.path.join(folder, "data.txt"), ndmin=2)
    feats = np.loadtxt(os.path.join(folder, "index_features.txt"), dtype=int, ndmin=1)
    target = int(np.loadtxt(os.path.join(folder, "index_target.txt"), dtype=int))
    n_splits = int(open(os.path.join(folder, "n_splits.txt")).read().strip())
    split = []
    for k in range(n_splits):
        tr = np.loadtxt(os.path.join(folder, f"index_train_{k}.txt"), dtype=int, ndmin=1)
        te = np.loadtxt(os.path.join(folder, f"index_test_{k}.txt"), dtype=int, ndmin=1)
        split.append((tr, te))
    return data[:, feats], data[:, target], split


def standardize(train, *others):
    mean = train.mean(axis=0)
    sd = train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return [(a - mean) / sd for a in (train,) + others], mean, sd


def scores(y, mean, sd):
    ll = -0.5 * math.log(2 * math.pi) - np.log(sd) - 0.5 * ((y - mean) / sd) ** 2
    return float(np.mean(ll)), float(np.sqrt(np.mean((y - mean) ** 2)))


def fit_gp(x, y, seed):
    d = x.shape[1]
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.ones(d), (1e-2, 1e3)) + WhiteKernel(
        0.1, (1e-6, 1e1))
    gp = GaussianProcessRegressor(kernel, n_restarts_optimizer=GP_RESTARTS, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(x, y)
    return lambda xs: gp.predict(xs, return_std=True), str(gp.kernel_)


def fit_ridge(x, y, _seed):
    br = BayesianRidge(max_iter=1000, tol=1e-8)
    br.fit(x, y)
    return lambda xs: br.predict(xs, return_std=True), f"alpha {br.alpha_:.4g} lambda {br.lambda_:.4g}"


def fit_mlp(x, y, seed, hidden=50):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_fit = int(round(0.8 * len(y)))
    fit, val = perm[:n_fit], perm[n_fit:]

    def net(alpha):
        return MLPRegressor(hidden_layer_sizes=(hidden,), alpha=alpha, max_iter=2000, random_state=seed)

    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for alpha in (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0):
            m = net(alpha).fit(x[fit], y[fit])
            mse = float(np.mean((m.predict(x[val]) - y[val]) ** 2))
            if best is None or mse < best[0]:
                best = (mse, alpha)
        final = net(best[1]).fit(x, y)
    sd = math.sqrt(best[0])
    return (lambda xs: (final.predict(xs), np.full(len(xs), sd)),
            f"alpha {best[1]:g} noise sd {sd:.4g}")


def main():
    data_dir, names = sys.argv[1], sys.argv[2:]
    for name in names:
        x, y, split = load(os.path.join(data_dir, name))
        hidden = int(open(os.path.join(data_dir, name, "n_hidden.txt")).read().strip())
        methods = os.environ.get("METHODS", "gp,ridge,mlp").split(",")
        fits = {"gp": fit_gp, "ridge": fit_ridge,
                "mlp": lambda x_, y_, k_: fit_mlp(x_, y_, k_, hidden)}
        for method in methods:
            fit = fits[method]
            if method == "gp" and len(split[0][0]) > GP_MAX_ROWS:
                print(f"{name}: gp skipped ({len(split[0][0])} training rows > {GP_MAX_ROWS})",
                      file=sys.stderr)
                continue
            start = time.time()
            lls, rmses = [], []
            for k, (tr, te) in enumerate(split):
                t0 = time.time()
                (xtr, xte), _, _ = standardize(x[tr], x[te])
                ym, ys = y[tr].mean(), y[tr].std()
                predict, chosen = fit(xtr, (y[tr] - ym) / ys, k)
                mu, sd = predict(xte)
                ll, rmse = scores(y[te], mu * ys + ym, np.maximum(sd, 1e-12) * ys)
                lls.append(ll)
                rmses.append(rmse)
                print(json.dumps({"dataset": name, "method": method, "split": k, "members": 1,
                                  "test_ll": ll, "rmse": rmse, "options": chosen,
                                  "seconds": time.time() - t0}), flush=True)
            n = len(lls)
            print(json.dumps({"summary": {
                "dataset": name, "method": method, "members": 1, "splits": n,
                "test_ll_mean": float(np.mean(lls)),
                "test_ll_se": float(np.std(lls) / math.sqrt(n)),
                "rmse_mean": float(np.mean(rmses)),
                "rmse_se": float(np.std(rmses) / math.sqrt(n)),
                "seconds": time.time() - start}}), flush=True)


if __name__ == "__main__":
    main()
