use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ACTIVATIONS: [Activation; 5] = [
    Activation::Relu,
    Activation::Tanh,
    Activation::Gelu,
    Activation::Sigmoid,
    Activation::Identity,
];
const STEP: f64 = 1e-6;
const REL_TOL: f64 = 1e-5;

/// Owned loss data (targets or labels) for a batch.
#[derive(Debug)]
enum LossData {
    Gaussian(Mat<f64>, f64),
    Softmax(Vec<usize>),
}

impl LossData {
    fn loss(&self) -> Loss<'_, f64> {
        match self {
            LossData::Gaussian(y, sigma2) => Loss::Gaussian {
                y: y.as_ref(),
                sigma2: *sigma2,
            },
            LossData::Softmax(labels) => Loss::SoftmaxCrossEntropy { labels },
        }
    }
}

#[derive(Debug)]
struct Case {
    mlp: Mlp,
    weights: Vec<Mat<f64>>,
    x: Mat<f64>,
    data: LossData,
}

/// A random network with non-zero biases, a random batch and random loss data.
fn case(dims: Vec<usize>, act: Activation, batch: usize, softmax: bool, seed: u64) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    let mlp = Mlp::new(dims, act).unwrap();
    let mut weights: Vec<Mat<f64>> = mlp.init_weights(&mut rng);
    for w in &mut weights {
        let p = w.nrows();
        for j in 0..w.ncols() {
            w[(p - 1, j)] = rng.random_range(-0.5..0.5);
        }
    }
    let x = Mat::from_fn(batch, mlp.dims[0], |_, _| rng.random_range(-1.5..1.5));
    let k = mlp.num_outputs();
    let data = if softmax {
        LossData::Softmax((0..batch).map(|_| rng.random_range(0..k)).collect())
    } else {
        let y = Mat::from_fn(batch, k, |_, _| rng.random_range(-1.0..1.0));
        LossData::Gaussian(y, rng.random_range(0.5..2.0))
    };
    Case {
        mlp,
        weights,
        x,
        data,
    }
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(1usize..=5, 2..=4),
        0usize..ACTIVATIONS.len(),
        1usize..=5,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(dims, a, b, softmax, seed)| case(dims, ACTIVATIONS[a], b, softmax, seed))
}

/// Smallest |H_l| over the hidden layers (distance to the ReLU kink).
fn min_abs_hidden_pre(c: &Case) -> f64 {
    let trace = c.mlp.forward(&c.weights, c.x.as_ref(), Par::Seq).unwrap();
    let hidden = &trace.pre[..trace.pre.len() - 1];
    hidden
        .iter()
        .flat_map(|h| (0..h.ncols()).flat_map(move |j| (0..h.nrows()).map(move |i| h[(i, j)])))
        .fold(f64::INFINITY, |m, v| m.min(v.abs()))
}

fn kink_free(c: &Case) -> bool {
    c.mlp.activation != Activation::Relu || min_abs_hidden_pre(c) > 1e-3
}

fn objective(c: &Case, weights: &[Mat<f64>], offsets: Option<&[Mat<f64>]>) -> f64 {
    let trace = match offsets {
        Some(o) => c
            .mlp
            .forward_with_offsets(weights, c.x.as_ref(), o, Par::Seq),
        None => c.mlp.forward(weights, c.x.as_ref(), Par::Seq),
    }
    .unwrap();
    loss_and_seed(&c.data.loss(), trace.output()).unwrap().0
}

fn zero_offsets(mlp: &Mlp, b: usize) -> Vec<Mat<f64>> {
    mlp.dims[1..].iter().map(|&q| Mat::zeros(b, q)).collect()
}

fn close(fd: f64, an: f64) -> bool {
    (fd - an).abs() <= REL_TOL * (1.0 + an.abs())
}

fn max_abs_diff(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()));
    let mut m = 0.0f64;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            m = m.max((a[(i, j)] - b[(i, j)]).abs());
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// dW_l from `value_and_grads` equals central differences of `ell` in every weight.
    #[test]
    fn weight_grads_match_central_differences(c in arb_case()) {
        prop_assume!(kink_free(&c));
        let (value, dws) = c.mlp.value_and_grads(&c.weights, c.x.as_ref(), &c.data.loss(), Par::Seq).unwrap();
        prop_assert!((value - objective(&c, &c.weights, None)).abs() < 1e-12 * (1.0 + value.abs()));
        let mut w = c.weights.clone();
        for l in 0..w.len() {
            for j in 0..w[l].ncols() {
                for i in 0..w[l].nrows() {
                    let w0 = w[l][(i, j)];
                    w[l][(i, j)] = w0 + STEP;
                    let up = objective(&c, &w, None);
                    w[l][(i, j)] = w0 - STEP;
                    let down = objective(&c, &w, None);
                    w[l][(i, j)] = w0;
                    let fd = (up - down) / (2.0 * STEP);
                    prop_assert!(close(fd, dws[l][(i, j)]),
                        "layer {l} ({i},{j}): fd {fd} vs autodiff {}", dws[l][(i, j)]);
                }
            }
        }
    }

    /// G_l from `backward` equals central differences of `ell` in an additive offset on H_l,
    /// and dW_l = X_l^T G_l entry by entry.
    #[test]
    fn layer_grads_match_offset_differences(c in arb_case()) {
        prop_assume!(kink_free(&c));
        let b = c.x.nrows();
        let trace = c.mlp.forward(&c.weights, c.x.as_ref(), Par::Seq).unwrap();
        let mut offsets = zero_offsets(&c.mlp, b);
        prop_assert_eq!(
            &c.mlp.forward_with_offsets(&c.weights, c.x.as_ref(), &offsets, Par::Seq).unwrap(),
            &trace
        );
        let (_, seed) = loss_and_seed(&c.data.loss(), trace.output()).unwrap();
        let gs = c.mlp.backward(&c.weights, &trace, seed.as_ref(), Par::Seq).unwrap();
        prop_assert_eq!(max_abs_diff(&gs[gs.len() - 1], &seed), 0.0);
        for l in 0..offsets.len() {
            for j in 0..offsets[l].ncols() {
                for i in 0..b {
                    offsets[l][(i, j)] = STEP;
                    let up = objective(&c, &c.weights, Some(&offsets));
                    offsets[l][(i, j)] = -STEP;
                    let down = objective(&c, &c.weights, Some(&offsets));
                    offsets[l][(i, j)] = 0.0;
                    let fd = (up - down) / (2.0 * STEP);
                    prop_assert!(close(fd, gs[l][(i, j)]),
                        "G_{l} ({i},{j}): fd {fd} vs autodiff {}", gs[l][(i, j)]);
                }
            }
        }
        let dws = c.mlp.weight_grads(&trace, &gs, Par::Seq).unwrap();
        for l in 0..dws.len() {
            let x = &trace.inputs[l];
            for j in 0..dws[l].ncols() {
                for i in 0..dws[l].nrows() {
                    let manual: f64 = (0..b).map(|n| x[(n, i)] * gs[l][(n, j)]).sum();
                    prop_assert!((manual - dws[l][(i, j)]).abs() < 1e-12 * (1.0 + manual.abs()));
                }
            }
        }
    }

    /// Row n of `output_jacobian_backward(k)[l]` equals d F_nk / d H_l[n, :], by central
    /// differences of `sum_n F_nk` in the offsets (rows do not interact).
    #[test]
    fn output_jacobian_matches_differences(c in arb_case()) {
        prop_assume!(kink_free(&c));
        let b = c.x.nrows();
        let trace = c.mlp.forward(&c.weights, c.x.as_ref(), Par::Seq).unwrap();
        let mut offsets = zero_offsets(&c.mlp, b);
        let col_sum = |offsets: &[Mat<f64>], k: usize| -> f64 {
            let t = c.mlp.forward_with_offsets(&c.weights, c.x.as_ref(), offsets, Par::Seq).unwrap();
            (0..b).map(|n| t.output()[(n, k)]).sum()
        };
        for k in 0..c.mlp.num_outputs() {
            let deltas = c.mlp.output_jacobian_backward(&c.weights, &trace, k, Par::Seq).unwrap();
            let mut seed = Mat::<f64>::zeros(b, c.mlp.num_outputs());
            seed.col_mut(k).fill(1.0);
            let gs = c.mlp.backward(&c.weights, &trace, seed.as_ref(), Par::Seq).unwrap();
            for l in 0..offsets.len() {
                prop_assert_eq!(max_abs_diff(&deltas[l], &gs[l]), 0.0);
                for j in 0..offsets[l].ncols() {
                    for i in 0..b {
                        offsets[l][(i, j)] = STEP;
                        let up = col_sum(&offsets, k);
                        offsets[l][(i, j)] = -STEP;
                        let down = col_sum(&offsets, k);
                        offsets[l][(i, j)] = 0.0;
                        let fd = (up - down) / (2.0 * STEP);
                        prop_assert!(close(fd, deltas[l][(i, j)]),
                            "Delta_{k} layer {l} ({i},{j}): fd {fd} vs {}", deltas[l][(i, j)]);
                    }
                }
            }
        }
    }

    /// `forward_from(start)` after changing `weights[start..]` equals a fresh forward.
    #[test]
    fn forward_from_equals_fresh_forward(c in arb_case(), start_frac in 0.0f64..1.0, seed in any::<u64>()) {
        let layers = c.mlp.num_layers();
        let start = ((start_frac * layers as f64) as usize).min(layers - 1);
        let mut trace = c.mlp.forward(&c.weights, c.x.as_ref(), Par::Seq).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut w = c.weights.clone();
        for wl in &mut w[start..] {
            for j in 0..wl.ncols() {
                for i in 0..wl.nrows() {
                    wl[(i, j)] += rng.random_range(-0.3..0.3);
                }
            }
        }
        let before = trace.clone();
        c.mlp.forward_from(&w, &mut trace, start, Par::Seq).unwrap();
        let fresh = c.mlp.forward(&w, c.x.as_ref(), Par::Seq).unwrap();
        prop_assert_eq!(&trace, &fresh);
        // Layers before `start` were not touched.
        for l in 0..start {
            prop_assert_eq!(&trace.pre[l], &before.pre[l]);
        }
    }

    /// Random, mostly wrong shapes: every call returns a value (Ok or Err), never panics, and
    /// Ok only when all shapes fit.
    #[test]
    fn wrong_shapes_are_errors_not_panics(
        dims in prop::collection::vec(1usize..=4, 2..=3),
        x_cols in 0usize..=5,
        w_rows in prop::collection::vec(0usize..=5, 0..=3),
        b in 0usize..=3,
        k in 0usize..=5,
    ) {
        let mlp = Mlp::new(dims.clone(), Activation::Tanh).unwrap();
        let weights: Vec<Mat<f64>> = w_rows
            .iter()
            .enumerate()
            .map(|(l, &r)| Mat::from_fn(r, dims.get(l + 1).copied().unwrap_or(1), |i, j| 0.1 * (i + j) as f64))
            .collect();
        let x = Mat::<f64>::from_fn(b, x_cols, |i, j| (i as f64) - (j as f64));
        let fits = x_cols == dims[0]
            && weights.len() == mlp.num_layers()
            && weights.iter().enumerate().all(|(l, w)| (w.nrows(), w.ncols()) == mlp.layer_shape(l));
        let res = mlp.forward(&weights, x.as_ref(), Par::Seq);
        prop_assert_eq!(res.is_ok(), fits);
        if let Ok(trace) = res {
            let res = mlp.output_jacobian_backward(&weights, &trace, k, Par::Seq);
            prop_assert_eq!(res.is_ok(), k < mlp.num_outputs());
            let seed = Mat::<f64>::zeros(b + 1, mlp.num_outputs());
            prop_assert!(mlp.backward(&weights, &trace, seed.as_ref(), Par::Seq).is_err());
        }
    }
}

#[test]
fn stacked_and_into_backward_equal_blockwise_backward() {
    let c = case(vec![3, 5, 4, 3], Activation::Gelu, 6, true, 7);
    let b = c.x.nrows();
    let trace = c.mlp.forward(&c.weights, c.x.as_ref(), Par::Seq).unwrap();
    let m = 3;
    let seed = Mat::<f64>::from_fn(m * b, 3, |i, j| ((i * 5 + j * 3) % 7) as f64 - 3.0);
    let stacked = c
        .mlp
        .backward_stacked(&c.weights, &trace, seed.as_ref(), Par::Seq)
        .unwrap();
    let mut into: Vec<Mat<f64>> = zero_offsets(&c.mlp, m * b);
    c.mlp
        .backward_into(&c.weights, &trace, seed.as_ref(), &mut into, Par::Seq)
        .unwrap();
    for blk in 0..m {
        let block_seed = seed.subrows(blk * b, b);
        let gs = c
            .mlp
            .backward(&c.weights, &trace, block_seed, Par::Seq)
            .unwrap();
        for l in 0..gs.len() {
            let s = stacked[l].subrows(blk * b, b).to_owned();
            assert!(max_abs_diff(&s, &gs[l]) < 1e-14, "block {blk} layer {l}");
        }
    }
    for l in 0..into.len() {
        assert_eq!(into[l], stacked[l]);
    }
    // The stacked pass needs a multiple of B rows and matching gradient buffers.
    let bad = Mat::<f64>::zeros(m * b + 1, 3);
    assert!(matches!(
        c.mlp
            .backward_stacked(&c.weights, &trace, bad.as_ref(), Par::Seq),
        Err(AutodiffError::ShapeMismatch {
            operand: Operand::Seed,
            ..
        })
    ));
    let mut short = zero_offsets(&c.mlp, b);
    assert!(matches!(
        c.mlp
            .backward_into(&c.weights, &trace, seed.as_ref(), &mut short, Par::Seq),
        Err(AutodiffError::TraceMismatch { layer: 0, .. })
    ));
}

#[test]
fn f32_agrees_with_f64_and_parallel_with_sequential() {
    let c = case(vec![4, 16, 8, 2], Activation::Tanh, 64, false, 11);
    let to32 = |m: &Mat<f64>| Mat::<f32>::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] as f32);
    let w32: Vec<Mat<f32>> = c.weights.iter().map(to32).collect();
    let (y, sigma2) = match &c.data {
        LossData::Gaussian(y, s) => (to32(y), *s as f32),
        LossData::Softmax(_) => unreachable!("case built with a Gaussian loss"),
    };
    let loss32 = Loss::Gaussian {
        y: y.as_ref(),
        sigma2,
    };
    let (v64, g64) = c
        .mlp
        .value_and_grads(&c.weights, c.x.as_ref(), &c.data.loss(), Par::Seq)
        .unwrap();
    let (v32, g32) = c
        .mlp
        .value_and_grads(&w32, to32(&c.x).as_ref(), &loss32, Par::Seq)
        .unwrap();
    assert!(((v32 as f64) - v64).abs() < 1e-4 * (1.0 + v64.abs()));
    for (a, b) in g64.iter().zip(&g32) {
        for j in 0..a.ncols() {
            for i in 0..a.nrows() {
                assert!(((b[(i, j)] as f64) - a[(i, j)]).abs() < 1e-3 * (1.0 + a[(i, j)].abs()));
            }
        }
    }
    let (vp, gp) = c
        .mlp
        .value_and_grads(&c.weights, c.x.as_ref(), &c.data.loss(), Par::rayon(2))
        .unwrap();
    assert!((vp - v64).abs() < 1e-12 * (1.0 + v64.abs()));
    for (a, b) in g64.iter().zip(&gp) {
        assert!(max_abs_diff(a, b) < 1e-12);
    }
}

#[test]
fn init_weights_have_zero_bias_and_the_stated_scale() {
    let mut rng = StdRng::seed_from_u64(3);
    let mlp = Mlp::new(vec![100, 200, 50], Activation::Relu).unwrap();
    let w: Vec<Mat<f64>> = mlp.init_weights(&mut rng);
    assert_eq!(w.len(), 2);
    // Hidden ReLU layer: He-uniform, a = sqrt(6 / 100); output layer: Glorot-uniform.
    for (l, a) in [(0, (6.0f64 / 100.0).sqrt()), (1, (6.0f64 / 250.0).sqrt())] {
        let (p, q) = mlp.layer_shape(l);
        assert_eq!((w[l].nrows(), w[l].ncols()), (p, q));
        let mut sum_sq = 0.0;
        for j in 0..q {
            assert_eq!(w[l][(p - 1, j)], 0.0, "bias row of layer {l}");
            for i in 0..p - 1 {
                assert!(w[l][(i, j)].abs() < a);
                sum_sq += w[l][(i, j)] * w[l][(i, j)];
            }
        }
        let var = sum_sq / ((p - 1) * q) as f64;
        let expected = a * a / 3.0;
        assert!(
            (var / expected - 1.0).abs() < 0.05,
            "layer {l}: {var} vs {expected}"
        );
    }
}

#[test]
fn errors_name_what_and_where() {
    assert!(matches!(
        Mlp::new(vec![3], Activation::Relu),
        Err(AutodiffError::InvalidDims { .. })
    ));
    assert!(matches!(
        Mlp::new(vec![3, 0, 2], Activation::Relu),
        Err(AutodiffError::InvalidDims { .. })
    ));
    let c = case(vec![3, 4, 2], Activation::Tanh, 5, false, 1);
    let mlp = &c.mlp;
    // Wrong number of weight matrices, wrong weight shape (naming the layer).
    assert_eq!(
        mlp.forward(&c.weights[..1], c.x.as_ref(), Par::Seq)
            .unwrap_err(),
        AutodiffError::LayerCount {
            what: "weights",
            expected: 2,
            got: 1
        }
    );
    let mut w = c.weights.clone();
    w[1] = Mat::zeros(4, 2);
    let err = mlp.forward(&w, c.x.as_ref(), Par::Seq).unwrap_err();
    assert_eq!(
        err,
        AutodiffError::ShapeMismatch {
            operand: Operand::Weights { layer: 1 },
            expected: Shape(5, 2),
            got: Shape(4, 2)
        }
    );
    assert!(err.to_string().contains("weights of layer 1"), "{err}");
    assert!(err.to_string().contains("expected 5x2, got 4x2"), "{err}");
    // Wrong input width; non-finite input and weights (naming row and column).
    let x_wide = Mat::<f64>::zeros(5, 4);
    assert!(matches!(
        mlp.forward(&c.weights, x_wide.as_ref(), Par::Seq),
        Err(AutodiffError::ShapeMismatch {
            operand: Operand::Input,
            ..
        })
    ));
    let mut x_nan = c.x.clone();
    x_nan[(3, 2)] = f64::NAN;
    let err = mlp
        .forward(&c.weights, x_nan.as_ref(), Par::Seq)
        .unwrap_err();
    assert!(matches!(
        err,
        AutodiffError::NonFinite {
            operand: Operand::Input,
            row: 3,
            col: 2,
            ..
        }
    ));
    assert!(err.to_string().contains("row 3, column 2"), "{err}");
    let mut w_inf = c.weights.clone();
    w_inf[0][(1, 1)] = f64::INFINITY;
    assert!(matches!(
        mlp.forward(&w_inf, c.x.as_ref(), Par::Seq),
        Err(AutodiffError::NonFinite {
            operand: Operand::Weights { layer: 0 },
            row: 1,
            col: 1,
            ..
        })
    ));
    // Offsets: wrong count and shape.
    let offsets = zero_offsets(mlp, 5);
    assert!(matches!(
        mlp.forward_with_offsets(&c.weights, c.x.as_ref(), &offsets[..1], Par::Seq),
        Err(AutodiffError::LayerCount {
            what: "offsets",
            ..
        })
    ));
    let bad_offsets = zero_offsets(mlp, 4);
    assert!(matches!(
        mlp.forward_with_offsets(&c.weights, c.x.as_ref(), &bad_offsets, Par::Seq),
        Err(AutodiffError::ShapeMismatch {
            operand: Operand::Offset { layer: 0 },
            ..
        })
    ));
    // Trace-based calls.
    let mut trace = mlp.forward(&c.weights, c.x.as_ref(), Par::Seq).unwrap();
    assert_eq!(trace.batch(), 5);
    assert_eq!(trace.num_layers(), 2);
    assert_eq!(
        mlp.forward_from(&c.weights, &mut trace, 2, Par::Seq),
        Err(AutodiffError::StartOutOfRange {
            start: 2,
            layers: 2
        })
    );
    assert_eq!(
        mlp.output_jacobian_backward(&c.weights, &trace, 2, Par::Seq)
            .unwrap_err(),
        AutodiffError::OutputUnitOutOfRange {
            unit: 2,
            outputs: 2
        }
    );
    let seed_nan = Mat::<f64>::from_fn(5, 2, |i, _| if i == 4 { f64::NAN } else { 0.0 });
    assert!(matches!(
        mlp.backward(&c.weights, &trace, seed_nan.as_ref(), Par::Seq),
        Err(AutodiffError::NonFinite {
            operand: Operand::Seed,
            row: 4,
            col: 0,
            ..
        })
    ));
    let other = Mlp::new(vec![3, 6, 2], Activation::Tanh).unwrap();
    let w_other: Vec<Mat<f64>> = other.init_weights(&mut StdRng::seed_from_u64(0));
    let seed = Mat::<f64>::zeros(5, 2);
    assert_eq!(
        other
            .backward(&w_other, &trace, seed.as_ref(), Par::Seq)
            .unwrap_err(),
        AutodiffError::TraceMismatch {
            layer: 0,
            what: "pre-activation H_l",
            expected: Shape(5, 6),
            got: Shape(5, 4)
        }
    );
    let gs = mlp
        .backward(&c.weights, &trace, seed.as_ref(), Par::Seq)
        .unwrap();
    assert!(matches!(
        mlp.weight_grads(&trace, &gs[..1], Par::Seq),
        Err(AutodiffError::LayerCount { .. })
    ));
    trace.deriv.clear();
    assert!(matches!(
        mlp.forward_from(&c.weights, &mut trace, 0, Par::Seq),
        Err(AutodiffError::LayerCount { .. })
    ));
    // An empty trace has an empty output.
    let empty = Trace::<f64> {
        inputs: vec![],
        pre: vec![],
        deriv: vec![],
    };
    assert_eq!((empty.output().nrows(), empty.batch()), (0, 0));
    // A mutated, invalid network is an error, not a panic.
    let broken = Mlp {
        dims: vec![3],
        activation: Activation::Relu,
    };
    assert!(matches!(
        broken.forward(&c.weights, c.x.as_ref(), Par::Seq),
        Err(AutodiffError::InvalidDims { .. })
    ));
    assert!(broken.weight_grads(&trace, &gs, Par::Seq).is_err());
}

#[test]
fn empty_batch_is_valid() {
    let c = case(vec![3, 4, 2], Activation::Relu, 0, true, 2);
    let (v, dws) = c
        .mlp
        .value_and_grads(&c.weights, c.x.as_ref(), &c.data.loss(), Par::Seq)
        .unwrap();
    assert_eq!(v, 0.0);
    assert!(dws
        .iter()
        .all(|d| max_abs_diff(d, &Mat::zeros(d.nrows(), d.ncols())) == 0.0));
}
