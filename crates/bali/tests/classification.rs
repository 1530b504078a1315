//! Softmax-categorical training (ALGORITHM.md 3.2, classification paragraph): the output
//! layer's full-batch step against its closed form, the categorical Fisher factors of the
//! hidden layers against a finite-difference Jacobian (exact and sampled), learning a toy
//! problem with both formulations, determinism for a seed, and the protocol's temperature
//! and shared carve selection.

use std::ops::ControlFlow;

use bali::classify::{
    finish_classification, run_classification, select_on_carve, ClassMethod, ClassOptions,
    ClassProblem, LabelledSet, OodSet,
};
use bali::config::{BaliConfig, Fisher, Formulation, Preconditioner};
use bali::likelihood::Likelihood;
use bali::map::MapConfig;
use bali::predict::{Ensemble, PredictMode};
use bali::train::Trainer;
use bali_autodiff::Mlp;
use bali_kernels::Activation;
use faer::linalg::solvers::Solve;
use faer::{Mat, MatRef, Par};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

fn randn(rng: &mut StdRng, r: usize, c: usize) -> Mat<f64> {
    Mat::from_fn(r, c, |_, _| rng.sample::<f64, _>(StandardNormal))
}

fn max_rel(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()));
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            num = num.max((a[(i, j)] - b[(i, j)]).abs());
            den = den.max(b[(i, j)].abs());
        }
    }
    num / den.max(f64::MIN_POSITIVE)
}

fn softmax(f: MatRef<'_, f64>) -> Mat<f64> {
    Mat::from_fn(f.nrows(), f.ncols(), |i, j| {
        let m = (0..f.ncols()).map(|c| f[(i, c)]).fold(f64::MIN, f64::max);
        let z: f64 = (0..f.ncols()).map(|c| (f[(i, c)] - m).exp()).sum();
        (f[(i, j)] - m).exp() / z
    })
}

/// `sum_b (diag p_b - p_b p_b^T) / B` (K x K, full).
fn categorical_fisher(p: MatRef<'_, f64>) -> Mat<f64> {
    let (b, k) = (p.nrows(), p.ncols());
    Mat::from_fn(k, k, |i, j| {
        (0..b)
            .map(|r| (if i == j { p[(r, i)] } else { 0.0 }) - p[(r, i)] * p[(r, j)])
            .sum::<f64>()
            / b as f64
    })
}

/// Three Gaussian blobs in 2-D, labels one-hot.
fn blobs(n: usize, seed: u64) -> (Mat<f64>, Mat<f64>, Vec<usize>) {
    blobs_with_noise(n, seed, 0.6)
}

/// Three Gaussian blobs in 2-D with noise sd `noise`: inputs, one-hot targets, labels.
fn blobs_with_noise(n: usize, seed: u64, noise: f64) -> (Mat<f64>, Mat<f64>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres = [(-2.0, 0.0), (2.0, 0.0), (0.0, 2.5)];
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let x = Mat::from_fn(n, 2, |i, j| {
        let c = centres[labels[i]];
        let e: f64 = rng.sample(StandardNormal);
        (if j == 0 { c.0 } else { c.1 }) + noise * e
    });
    let y = Mat::from_fn(n, 3, |i, c| if labels[i] == c { 1.0 } else { 0.0 });
    (x, y, labels)
}

#[test]
fn output_layer_full_batch_step_equals_its_closed_form() {
    // One layer (the output layer only), full batch, beta = 0: after one step
    //   F = X M_prev, P = softmax(F), G = P - Y, C = (1/B) sum_b (diag p_b - p_b p_b^T),
    //   D = C + (gamma tr C / K + floor tr C / K) I,  T = F - alpha G D^{-1},
    //   Lambda_0 = lambda_out I + wd diag(1..1, 0),   Lambda_N = Lambda_0 + X^T X,
    //   M_N = Lambda_N^{-1} (lambda_out M_prev + X^T T).
    let (n, d, k) = (40, 3, 4);
    let mut rng = StdRng::seed_from_u64(5);
    let x = randn(&mut rng, n, d);
    let y = Mat::from_fn(n, k, |i, c| if (i * 7 + 3) % k == c { 1.0 } else { 0.0 });
    for preconditioner in [Preconditioner::Kfac, Preconditioner::Scalar] {
        let config = BaliConfig {
            lambda_out: 2.0,
            preconditioner,
            ..BaliConfig::classification()
        };
        let mut t = Trainer::<f64>::new(vec![d, k], config.clone(), n, 9).unwrap();
        let m_prev = t.posterior(0).mean.clone();
        t.fit(x.as_ref(), y.as_ref(), 1, |_, _| ControlFlow::Continue(()))
            .unwrap();
        let p = d + 1;
        let xa = Mat::from_fn(n, p, |i, j| if j < d { x[(i, j)] } else { 1.0 });
        let f = &xa * &m_prev;
        let probs = softmax(f.as_ref());
        let g = &probs - &y;
        let c = categorical_fisher(probs.as_ref());
        let mean_diag = (0..k).map(|i| c[(i, i)]).sum::<f64>() / k as f64;
        let shift = config.gamma * mean_diag + config.floor * mean_diag;
        let step = match preconditioner {
            Preconditioner::Kfac => {
                let dmat = Mat::from_fn(k, k, |i, j| c[(i, j)] + if i == j { shift } else { 0.0 });
                // G D^{-1} = (D^{-1} G^T)^T (D symmetric).
                let gt = g.transpose().to_owned();
                dmat.partial_piv_lu()
                    .solve(gt.as_ref())
                    .transpose()
                    .to_owned()
            }
            Preconditioner::Scalar => {
                let s = 1.0 / ((1.0 + config.gamma) * mean_diag + config.floor * mean_diag);
                Mat::from_fn(n, k, |i, j| s * g[(i, j)])
            }
        };
        let targets = Mat::from_fn(n, k, |i, j| f[(i, j)] - config.alpha * step[(i, j)]);
        let lambda_n = Mat::from_fn(p, p, |i, j| {
            let prior = if i == j {
                config.lambda_out + if i + 1 < p { config.wd } else { 0.0 }
            } else {
                0.0
            };
            prior + (0..n).map(|r| xa[(r, i)] * xa[(r, j)]).sum::<f64>()
        });
        let rhs = &(&m_prev * faer::Scale(config.lambda_out)) + &(xa.transpose() * &targets);
        let m_n = lambda_n.partial_piv_lu().solve(rhs.as_ref());
        let err = max_rel(t.posterior(0).mean.as_ref(), m_n.as_ref());
        assert!(err < 1e-10, "{preconditioner:?}: relative error {err:e}");
    }
}

/// `f(h)`: the network output of one row from layer `l`'s pre-activation `h` on (tanh).
fn output_from(weights: &[Mat<f64>], l: usize, h: &[f64]) -> Vec<f64> {
    let mut a: Vec<f64> = h.to_vec();
    for w in &weights[l + 1..] {
        let x: Vec<f64> = a.iter().map(|v| v.tanh()).chain([1.0]).collect();
        a = (0..w.ncols())
            .map(|j| (0..w.nrows()).map(|i| x[i] * w[(i, j)]).sum())
            .collect();
    }
    a
}

#[test]
fn categorical_fisher_factors_match_a_finite_difference_jacobian() {
    // C_l = (1/B) sum_b J_b^T (diag p_b - p_b p_b^T) J_b, J_b = dF_b / dH_l[b, :] (K x q_l),
    // against the stacked backward pass of the square-root seed (exact) and the average of
    // many sampled-label seeds.
    let dims = vec![3, 5, 4, 3];
    let mlp = Mlp::new(dims.clone(), Activation::Tanh).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let weights: Vec<Mat<f64>> = mlp.init_weights(&mut rng);
    let b = 6;
    let x = randn(&mut rng, b, 3);
    let trace = mlp.forward(&weights, x.as_ref(), Par::Seq).unwrap();
    let f = trace.output();
    let k = 3;
    let lik = Likelihood::Categorical;
    let mut seed = Mat::<f64>::zeros(k * b, k);
    lik.fisher_sqrt_seed_into(seed.as_mut(), f);
    let mut stacked: Vec<Mat<f64>> = dims[1..].iter().map(|&q| Mat::zeros(k * b, q)).collect();
    mlp.backward_into(&weights, &trace, seed.as_ref(), &mut stacked, Par::Seq)
        .unwrap();
    let probs = softmax(f);
    for l in 0..2 {
        let q = dims[l + 1];
        let delta = &stacked[l];
        let exact = (delta.transpose() * delta) * faer::Scale(1.0 / b as f64);
        let mut dense = Mat::<f64>::zeros(q, q);
        for r in 0..b {
            let h: Vec<f64> = (0..q).map(|j| trace.pre[l][(r, j)]).collect();
            let eps = 1e-6;
            let jac = Mat::from_fn(k, q, |c, j| {
                let (mut hp, mut hm) = (h.clone(), h.clone());
                hp[j] += eps;
                hm[j] -= eps;
                (output_from(&weights, l, &hp)[c] - output_from(&weights, l, &hm)[c]) / (2.0 * eps)
            });
            let fisher = Mat::from_fn(k, k, |i, j| {
                let diag = if i == j { probs[(r, i)] } else { 0.0 };
                diag - probs[(r, i)] * probs[(r, j)]
            });
            dense += jac.transpose() * &fisher * &jac * faer::Scale(1.0 / b as f64);
        }
        let err = max_rel(exact.as_ref(), dense.as_ref());
        assert!(
            err < 1e-7,
            "layer {l}: exact factor vs finite differences {err:e}"
        );
        // Sampled labels: unbiased, so the average over many draws approaches the same.
        let draws = 20_000;
        let mut sampled = Mat::<f64>::zeros(q, q);
        let mut one = Mat::<f64>::zeros(b, k);
        let mut grads: Vec<Mat<f64>> = dims[1..].iter().map(|&q| Mat::zeros(b, q)).collect();
        for _ in 0..draws {
            lik.sampled_fisher_seed_into(one.as_mut(), f, &mut rng);
            mlp.backward_into(&weights, &trace, one.as_ref(), &mut grads, Par::Seq)
                .unwrap();
            sampled += grads[l].transpose() * &grads[l] * faer::Scale(1.0 / (b * draws) as f64);
        }
        let err = max_rel(sampled.as_ref(), dense.as_ref());
        assert!(err < 0.05, "layer {l}: sampled factor vs exact {err:e}");
    }
    // The output layer's own Fisher sum: sum_b (diag p_b - p_b p_b^T), lower triangle.
    let mut sum = Mat::<f64>::zeros(k, k);
    lik.output_fisher_sum_into(sum.as_mut(), f);
    let want = categorical_fisher(probs.as_ref()) * faer::Scale(b as f64);
    for j in 0..k {
        for i in j..k {
            assert!((sum[(i, j)] - want[(i, j)]).abs() < 1e-14);
        }
    }
}

fn accuracy(t: &Trainer<f64>, x: MatRef<'_, f64>, labels: &[usize]) -> f64 {
    let ens = Ensemble {
        members: vec![t.model().clone()],
    };
    let pred = ens
        .predict_categorical(x, 20, PredictMode::Weights, 3)
        .unwrap();
    let classes = pred.predicted_classes();
    let right = classes.iter().zip(labels).filter(|(a, b)| a == b).count();
    right as f64 / labels.len() as f64
}

#[test]
fn classification_learns_a_toy_problem_with_every_variant() {
    let (x, y, labels) = blobs(300, 1);
    let (xt, _, lt) = blobs(300, 2);
    let cases = [
        ("improved kfac, full batch", BaliConfig::classification()),
        (
            "improved scalar, mini-batch",
            BaliConfig {
                preconditioner: Preconditioner::Scalar,
                batch_size: Some(50),
                ..BaliConfig::classification()
            },
        ),
        (
            "improved kfac, sampled Fisher, mini-batch",
            BaliConfig {
                fisher: Fisher::Sampled,
                batch_size: Some(50),
                ..BaliConfig::classification()
            },
        ),
        (
            "paper",
            BaliConfig {
                formulation: Formulation::Paper,
                alpha_hidden: Some(0.3),
                alpha: 1.0,
                ..BaliConfig::classification()
            },
        ),
    ];
    for (what, config) in cases {
        let mut t = Trainer::<f64>::new(vec![2, 16, 16, 3], config, 300, 4).unwrap();
        let mut losses = Vec::new();
        t.fit(x.as_ref(), y.as_ref(), 60, |_, info| {
            losses.push(info.batch_loss);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert!(losses.iter().all(|l| l.is_finite()), "{what}");
        let last = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
        assert!(
            last < 0.5 * losses[0],
            "{what}: loss {} -> {last}",
            losses[0]
        );
        let (train, test) = (
            accuracy(&t, x.as_ref(), &labels),
            accuracy(&t, xt.as_ref(), &lt),
        );
        assert!(
            train > 0.9 && test > 0.9,
            "{what}: accuracy {train} / {test}"
        );
    }
}

#[test]
fn classification_is_deterministic_for_a_seed_and_refuses_one_output() {
    let (x, y, _) = blobs(90, 3);
    let run = || {
        let config = BaliConfig {
            fisher: Fisher::Sampled,
            batch_size: Some(30),
            ..BaliConfig::classification()
        };
        let mut t = Trainer::<f64>::new(vec![2, 8, 3], config, 90, 7).unwrap();
        t.fit(x.as_ref(), y.as_ref(), 9, |_, _| ControlFlow::Continue(()))
            .unwrap();
        t
    };
    let (a, b) = (run(), run());
    for l in 0..2 {
        assert!(a.posterior(l).mean == b.posterior(l).mean, "layer {l}");
        assert!(a.posterior(l).col_cov.chol() == b.posterior(l).col_cov.chol());
    }
    let e = Trainer::<f64>::new(vec![2, 8, 1], BaliConfig::classification(), 90, 7).unwrap_err();
    assert!(e.to_string().contains("dims"), "{e}");
    // A Gaussian model has no class probabilities.
    let mut g = Trainer::<f64>::new(vec![2, 4, 3], BaliConfig::default(), 90, 7).unwrap();
    g.fit(x.as_ref(), y.as_ref(), 1, |_, _| ControlFlow::Continue(()))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    assert!(g
        .model()
        .predict_categorical(x.as_ref(), 2, PredictMode::Weights, &mut rng)
        .is_err());
}

/// The blobs as a protocol problem with one far-away OOD set.
fn blob_problem() -> ClassProblem {
    let (x, _, labels) = blobs(300, 11);
    let (xt, _, lt) = blobs(90, 12);
    ClassProblem {
        train: LabelledSet { x, labels },
        test: LabelledSet { x: xt, labels: lt },
        ood: vec![OodSet {
            name: "far".into(),
            x: Mat::from_fn(60, 2, |i, j| 9.0 + 0.05 * (i * (j + 1)) as f64),
        }],
        shift: Vec::new(),
    }
}

/// Overlapping blobs (noise 1.6): enough validation errors (about 20%) for a temperature.
fn overlapping_blob_problem() -> ClassProblem {
    let rows = |n: usize, seed: u64| {
        let (x, _, labels) = blobs_with_noise(n, seed, 1.6);
        LabelledSet { x, labels }
    };
    ClassProblem {
        train: rows(600, 21),
        test: rows(300, 22),
        ood: Vec::new(),
        shift: Vec::new(),
    }
}

#[test]
fn the_protocol_chooses_a_temperature_on_the_carve() {
    let problem = overlapping_blob_problem();
    let dims = [2, 8, 3];
    let grid = vec![ClassMethod::Bali(BaliConfig {
        wd: 1.0,
        ..BaliConfig::classification()
    })];
    let options = ClassOptions {
        max_iterations: 20,
        samples: 10,
        ..ClassOptions::default()
    };
    let tempered = run_classification(&grid, &dims, &problem, &options, |_, _, _| {}).unwrap();
    for c in &tempered.curve {
        assert!(c.temperature > 0.0 && c.temperature.is_finite());
        assert!(c.valid_nll <= c.valid_nll_untempered, "{c:?}");
    }
    let chosen = tempered
        .curve
        .iter()
        .min_by(|a, b| a.valid_nll.total_cmp(&b.valid_nll))
        .unwrap();
    assert_eq!(tempered.temperature, chosen.temperature);
    assert_eq!(tempered.iterations, chosen.iterations);
    // About 24 validation errors: a temperature is identified and it helps on the carve.
    assert!(tempered.temperature != 1.0, "{chosen:?}");
    assert!(chosen.valid_nll < chosen.valid_nll_untempered, "{chosen:?}");
    assert!(tempered.test.accuracy > 0.6, "{:?}", tempered.test);
    let plain = run_classification(
        &grid,
        &dims,
        &problem,
        &ClassOptions {
            temperature: false,
            ..options.clone()
        },
        |_, _, _| {},
    )
    .unwrap();
    assert_eq!(plain.temperature, 1.0);
    for c in &plain.curve {
        assert_eq!((c.temperature, c.valid_nll), (1.0, c.valid_nll_untempered));
    }
    // The temperature changes the predictive, not the networks: the untempered curves agree.
    for (a, b) in tempered.curve.iter().zip(&plain.curve) {
        assert_eq!(a.valid_nll_untempered, b.valid_nll_untempered);
    }
}

#[test]
fn one_carve_selection_serves_map_and_its_laplace() {
    let problem = blob_problem();
    let dims = [2, 8, 3];
    let config = MapConfig {
        lr: 1e-2,
        batch_size: Some(32),
        likelihood: Likelihood::Categorical,
        ..MapConfig::default()
    };
    let options = ClassOptions {
        max_iterations: 60,
        samples: 10,
        ..ClassOptions::default()
    };
    let map = vec![ClassMethod::Map(config.clone())];
    let laplace = vec![ClassMethod::Laplace(config)];
    let selection = select_on_carve(&map, &dims, &problem.train, &options, |_, _, _| {}).unwrap();
    assert_eq!(
        select_on_carve(&laplace, &dims, &problem.train, &options, |_, _, _| {}).unwrap(),
        selection
    );
    let split = finish_classification(
        &map,
        selection.clone(),
        &dims,
        &problem,
        &options,
        |_, _, _| {},
    )
    .unwrap();
    let whole = run_classification(&map, &dims, &problem, &options, |_, _, _| {}).unwrap();
    assert_eq!(
        (split.test.clone(), split.temperature),
        (whole.test, whole.temperature)
    );
    let post = finish_classification(&laplace, selection, &dims, &problem, &options, |_, _, _| {})
        .unwrap();
    assert_eq!(post.iterations, split.iterations);
    assert!(post.prior_precision.is_some());
    // A selection naming a grid point the grid lacks is an error, not a panic.
    let mut bad = select_on_carve(&map, &dims, &problem.train, &options, |_, _, _| {}).unwrap();
    bad.best.grid = 3;
    assert!(finish_classification(&map, bad, &dims, &problem, &options, |_, _, _| {}).is_err());
}
