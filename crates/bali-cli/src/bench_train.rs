//! `bali bench train`: time per training iteration of BALI (both formulations) against one
//! Adam step of the same network on the same rows.
//!
//! Cases (random data, fixed seed, ReLU, Gaussian outputs since the loop is regression-only):
//!
//! | case | dims | batch B | n_train N | EMA |
//! |---|---|---|---|---|
//! | `uci` | 13-50-1 | 455 (full batch) | 455 | `beta = 0`, `rho = 1` |
//! | `mnist` | 784-400-400-10 | 1024 | 60000 | `beta = 1 - B/N`, `rho = N/B` |
//! | `classify` | 784-400-400-10 | 1024 | 60000 | as `mnist`, softmax-categorical, one-hot targets |
//!
//! The `classify` case runs `adam` (cross-entropy), `improved_kfac` (the classification
//! settings, exact categorical Fisher: a stacked backward pass of `K B` rows) and
//! `improved_kfac_sampled` (one sampled label per row: `B` rows); the other methods run on
//! the regression cases.
//!
//! Methods: `adam` (one [`bali::map::MapNet::step`] on the batch: forward, Gaussian loss
//! seed, backward, weight gradients, decay and the Adam update, the MAP baseline's own
//! training step), `improved_kfac`, `improved_scalar` (BALI `Improved` with the `Kfac` /
//! `Scalar` preconditioner) and `paper`, each one [`bali::Trainer::partial_fit`] at the
//! regression defaults, and
//! `improved_kfac_r10`: `improved_kfac` with `refresh_every = 10` (curvature amortized over
//! ten steps; not the default).
//!
//! Every method runs in blocks of consecutive steps, as in its own training loop: a few
//! untimed warm-up steps, then timed steps; the blocks of all methods alternate over up to
//! three rounds (one untimed step opens every later block), so that drift of a shared machine
//! hits all methods alike. The reported time is the median per step, `ratio_to_adam` that
//! median over Adam's.
//!
//! GFLOP/s count the flops of ALGORITHM.md section 7 (see [`method_flops`]): matrix products
//! `2 B p q`, SYRK `B p^2`, Cholesky `n^3 / 3`, two triangular solves `2 n^2 k`; elementwise
//! work (activations, the Adam update) is not counted.

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use crate::bench_kron::median;
use bali_kernels::{Activation, Scalar};
use clap::builder::TypedValueParser as _;
use clap::{Args, ValueEnum};
use faer::Mat;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::Serialize;

use crate::bench_kron::Dtype;
use crate::CliError;
use bali::config::{BaliConfig, Fisher, Formulation, Preconditioner};
use bali::map::MapConfig;
use bali::Learner;
use bali::Likelihood;

/// A network and batch shape to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrainCase {
    /// 13-50-1 on 455 rows, full batch (a UCI-sized regression: boston's training split).
    #[value(name = "uci")]
    Uci,
    /// 784-400-400-10 on mini-batches of 1024 rows out of 60000 (an MNIST-sized MLP).
    #[value(name = "mnist")]
    Mnist,
    /// The MNIST-sized MLP as a 10-class classifier (softmax-categorical likelihood).
    #[value(name = "classify")]
    Classify,
}

impl TrainCase {
    /// Both cases, in output order.
    pub const ALL: [TrainCase; 3] = [TrainCase::Uci, TrainCase::Mnist, TrainCase::Classify];

    /// Name used in the output.
    pub fn name(self) -> &'static str {
        match self {
            TrainCase::Uci => "uci",
            TrainCase::Mnist => "mnist",
            TrainCase::Classify => "classify",
        }
    }

    /// Whether the case is the classifier.
    pub fn categorical(self) -> bool {
        self == TrainCase::Classify
    }

    /// Whether `method` runs on this case.
    pub fn runs(self, method: Method) -> bool {
        let classification_method = matches!(
            method,
            Method::Adam | Method::ImprovedKfac | Method::ImprovedKfacSampled
        );
        let regression_method = method != Method::ImprovedKfacSampled;
        if self.categorical() {
            classification_method
        } else {
            regression_method
        }
    }

    /// Layer widths `d_0..d_L`.
    pub fn dims(self) -> Vec<usize> {
        match self {
            TrainCase::Uci => vec![13, 50, 1],
            TrainCase::Mnist | TrainCase::Classify => vec![784, 400, 400, 10],
        }
    }

    /// Rows per step `B`.
    pub fn batch(self) -> usize {
        match self {
            TrainCase::Uci => 455,
            TrainCase::Mnist | TrainCase::Classify => 1024,
        }
    }

    /// Training-set size `N` the EMA is scaled to (`rho = N / B`).
    pub fn n_train(self) -> usize {
        match self {
            TrainCase::Uci => 455,
            TrainCase::Mnist | TrainCase::Classify => 60_000,
        }
    }

    /// `(warm-up steps, timed steps)` per method by default (`quick`: fewer).
    pub fn default_steps(self, quick: bool) -> (usize, usize) {
        match (self, quick) {
            (TrainCase::Uci, false) => (5, 20),
            (TrainCase::Uci, true) => (2, 5),
            (TrainCase::Mnist | TrainCase::Classify, false) => (2, 7),
            (TrainCase::Mnist | TrainCase::Classify, true) => (1, 3),
        }
    }
}

/// A training method timed per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Method {
    /// One Adam step (the MAP baseline's work per iteration).
    #[value(name = "adam")]
    Adam,
    /// BALI `Improved`, `Kfac` preconditioner (the default).
    #[value(name = "improved_kfac")]
    ImprovedKfac,
    /// BALI `Improved`, `Scalar` preconditioner.
    #[value(name = "improved_scalar")]
    ImprovedScalar,
    /// BALI `Paper`.
    #[value(name = "paper")]
    Paper,
    /// BALI `Improved`, `Kfac`, with the curvature amortized over 10 steps
    /// (`refresh_every = 10`, not the default): `C_l` and `D_l^{-1}` on every tenth step.
    #[value(name = "improved_kfac_r10")]
    ImprovedKfacRefresh10,
    /// BALI `Improved`, `Kfac`, hidden curvature from one sampled label per row
    /// (`Fisher::Sampled`; the `classify` case).
    #[value(name = "improved_kfac_sampled")]
    ImprovedKfacSampled,
}

impl Method {
    /// All methods, in output order (Adam first: the others are reported relative to it).
    pub const ALL: [Method; 6] = [
        Method::Adam,
        Method::ImprovedKfac,
        Method::ImprovedScalar,
        Method::Paper,
        Method::ImprovedKfacRefresh10,
        Method::ImprovedKfacSampled,
    ];

    /// Curvature refresh period of the method (`BaliConfig::refresh_every`).
    pub fn refresh_every(self) -> usize {
        match self {
            Method::ImprovedKfacRefresh10 => 10,
            _ => 1,
        }
    }

    /// Name used in the output.
    pub fn name(self) -> &'static str {
        match self {
            Method::Adam => "adam",
            Method::ImprovedKfac => "improved_kfac",
            Method::ImprovedScalar => "improved_scalar",
            Method::Paper => "paper",
            Method::ImprovedKfacRefresh10 => "improved_kfac_r10",
            Method::ImprovedKfacSampled => "improved_kfac_sampled",
        }
    }

    /// The library method behind this benchmark row (BALI at the regression defaults, or
    /// the MAP network's Adam at its defaults), with `threads` for the kernels.
    pub fn method(self, case: TrainCase, threads: usize) -> bali::Method {
        let batch = case.batch();
        let batch_size = (batch < case.n_train()).then_some(batch);
        let likelihood = if case.categorical() {
            Likelihood::Categorical
        } else {
            Likelihood::Gaussian
        };
        let (formulation, preconditioner) = match self {
            Method::Adam => {
                return bali::Method::Map(MapConfig {
                    batch_size,
                    threads,
                    likelihood,
                    ..MapConfig::default()
                })
            }
            Method::ImprovedKfac | Method::ImprovedKfacRefresh10 | Method::ImprovedKfacSampled => {
                (Formulation::Improved, Preconditioner::Kfac)
            }
            Method::ImprovedScalar => (Formulation::Improved, Preconditioner::Scalar),
            Method::Paper => (Formulation::Paper, Preconditioner::Kfac),
        };
        let base = if case.categorical() {
            BaliConfig::classification()
        } else {
            BaliConfig::default()
        };
        bali::Method::Bali(BaliConfig {
            formulation,
            preconditioner,
            batch_size,
            activation: Activation::Relu,
            threads,
            refresh_every: self.refresh_every(),
            fisher: if self == Method::ImprovedKfacSampled {
                Fisher::Sampled
            } else {
                Fisher::Exact
            },
            ..base
        })
    }
}

/// Options of `bali bench train`.
#[derive(Debug, Clone, Args)]
pub struct BenchTrainArgs {
    /// Rayon pool size; kernels use threads only above a flop threshold
    /// (`bali_kernels::ParPolicy::with_threads(T)`), for BALI and Adam alike.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024).map(|v| v as usize))]
    pub threads: usize,
    /// Floating-point type.
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    pub dtype: Dtype,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed steps per method (default 20 for `uci`, 7 for `mnist`; 5 and 3 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000).map(|v| v as usize))]
    pub repeats: Option<usize>,
    /// Fewer warm-up and timed steps.
    #[arg(long)]
    pub quick: bool,
    /// Comma-separated cases (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub cases: Option<Vec<TrainCase>>,
    /// Comma-separated methods (default: all; `adam` is always timed, for the ratios).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub methods: Option<Vec<Method>>,
    /// Seed of the data and of every initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One output line: one method on one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Case name (`"uci"`, `"mnist"`).
    pub case: &'static str,
    /// Layer widths `d_0..d_L`.
    pub dims: Vec<usize>,
    /// Rows per step `B`.
    pub batch: usize,
    /// Training-set size `N` (`rho = N / B`).
    pub n_train: usize,
    /// Method name.
    pub method: &'static str,
    /// Rayon pool size.
    pub threads: usize,
    /// `"f64"` or `"f32"`.
    pub dtype: &'static str,
    /// Median seconds per step.
    pub seconds_per_iter: f64,
    /// `seconds_per_iter` over Adam's on the same case.
    pub ratio_to_adam: f64,
    /// Counted flops per step ([`method_flops`]).
    pub flops: f64,
    /// `flops / seconds_per_iter / 1e9`.
    pub gflops: f64,
    /// Timed steps behind the median.
    pub samples: usize,
}

/// The counts every method shares, for widths `dims` and `b` rows: the forward pass
/// `sum_l 2 B p q`, one backward pass to every `G_l` `sum_{l >= 1} 2 B (p - 1) q`, and every
/// layer's posterior with a learned `Sigma` (see [`method_flops`]).
struct SharedFlops {
    forward: f64,
    backward: f64,
    posteriors: f64,
}

impl SharedFlops {
    fn of(dims: &[usize], b: f64) -> Self {
        let layers = dims.len().saturating_sub(1);
        let shape = |l: usize| (dims[l] as f64 + 1.0, dims[l + 1] as f64);
        let forward = (0..layers)
            .map(|l| {
                let (p, q) = shape(l);
                2.0 * b * p * q
            })
            .sum();
        let backward = (1..layers)
            .map(|l| {
                let (p, q) = shape(l);
                2.0 * b * (p - 1.0) * q
            })
            .sum();
        let posteriors = (0..layers)
            .map(|l| {
                let (p, q) = shape(l);
                let row = b * p * p + 2.0 * b * p * q + p * p * p / 3.0 + 2.0 * p * p * q;
                let learned = 2.0 * b * p * q + b * q * q + p * q * q + q * q * q / 3.0;
                row + learned
            })
            .sum();
        SharedFlops {
            forward,
            backward,
            posteriors,
        }
    }
}

/// Flops of one step of `method` on a network with widths `dims` and `b` rows, by the counts
/// of ALGORITHM.md section 7 for the work the implementation does (layer `l`: `p = d_l + 1`,
/// `q = d_{l+1}`; `L` layers, `q_L` outputs):
///
/// - forward: `sum_l 2 B p q`; one backward pass to every `G_l`: `sum_{l >= 1} 2 B (p - 1) q`;
/// - Adam: forward + backward + weight gradients `sum_l 2 B p q`;
/// - BALI, every layer's posterior: `S_xx` `B p^2` + `S_xt` `2 B p q` + Cholesky of
///   `Lambda_N` `p^3/3` + `M_N` solves `2 p^2 q`, and for the learned `Sigma` (the default)
///   residual `2 B p q` + `S_rr` `B q^2` + `(M_N - M_0)^T Lambda_0 (M_N - M_0)` `p q^2` +
///   Cholesky of `Sigma` `q^3/3`;
/// - `Paper`: forward + one backward + the posteriors;
/// - `Improved`: forward + output-layer recompute `2 B p_L q_L` + the gradient's backward
///   pass + the posteriors + the curvature factors: for the hidden layer feeding the output,
///   the closed form `(W' W'^T) ⊙ (Phi'^T Phi')`, `B q^2 + q_L q^2`; for deeper layers
///   (`L >= 3`) one stacked backward pass of `q_L B` rows (`q_L` backward passes) and the
///   SYRK `q_L B q^2` each. `Kfac` adds per hidden layer the Cholesky of `D_l` `q^3/3`, its
///   inverse `2 q^3` (two triangular solves of the identity) and the product
///   `G_l D_l^{-1}` `2 B q^2`. With `refresh_every = k` the curvature factors, the stacked
///   pass and the Cholesky and inverse of `D_l` count `1/k` (they run on every `k`-th step).
pub fn method_flops(method: Method, dims: &[usize], b: usize) -> f64 {
    let b = b as f64;
    let layers = dims.len().saturating_sub(1);
    let shape = |l: usize| (dims[l] as f64 + 1.0, dims[l + 1] as f64);
    let SharedFlops {
        forward,
        backward,
        posteriors,
    } = SharedFlops::of(dims, b);
    match method {
        Method::Adam => forward + backward + forward,
        Method::Paper => forward + backward + posteriors,
        Method::ImprovedKfac
        | Method::ImprovedScalar
        | Method::ImprovedKfacRefresh10
        | Method::ImprovedKfacSampled => {
            let kfac_method = method != Method::ImprovedScalar;
            let amortized = 1.0 / method.refresh_every() as f64;
            let q_out = dims[layers] as f64;
            // Rows of the stacked pass per batch row: q_L (exact), 1 (sampled).
            let rows_per_b = if method == Method::ImprovedKfacSampled {
                1.0
            } else {
                q_out
            };
            let (p_last, _) = shape(layers - 1);
            let last_hidden = layers.saturating_sub(2);
            let curvature: f64 = (0..layers - 1)
                .map(|l| {
                    let (_, q) = shape(l);
                    // Kfac needs the whole q x q factor; Scalar reads its trace only, i.e. the
                    // diagonal: column squared norms instead of SYRKs.
                    let width = if kfac_method { q } else { 1.0 };
                    let gram = if l == last_hidden {
                        b * q * width + q_out * q * width
                    } else {
                        rows_per_b * b * q * width
                    };
                    let (factor, apply) = if kfac_method {
                        (q * q * q / 3.0 + 2.0 * q * q * q, 2.0 * b * q * q)
                    } else {
                        (0.0, 0.0)
                    };
                    (gram + factor) * amortized + apply
                })
                .sum();
            let stacked = if layers >= 3 {
                rows_per_b * backward * amortized
            } else {
                0.0
            };
            forward + 2.0 * b * p_last * q_out + backward + stacked + curvature + posteriors
        }
    }
}

/// Flops of one step of `method` on the `classify` case (softmax-categorical), counted as in
/// [`method_flops`] with what differs: the output layer takes the step-5 form (its Fisher sum
/// `B q_L^2`, Cholesky and inverse of `D_L` `q_L^3/3 + 2 q_L^3`, the product `2 B q_L^2`),
/// and every hidden layer's curvature comes from the stacked backward pass (no closed form)
/// of `R = q_L B` rows (exact) or `R = B` rows (sampled): the pass `(R / B)` backward passes
/// and the SYRK `R q^2` per hidden layer. Adam and `Paper` count as in regression.
pub fn classification_flops(method: Method, dims: &[usize], b: usize) -> f64 {
    let regression = |m| method_flops(m, dims, b);
    let rows_per_b = match method {
        Method::ImprovedKfac => dims[dims.len() - 1] as f64,
        Method::ImprovedKfacSampled => 1.0,
        other => return regression(other),
    };
    let bf = b as f64;
    let layers = dims.len() - 1;
    let shape = |l: usize| (dims[l] as f64 + 1.0, dims[l + 1] as f64);
    let SharedFlops {
        forward,
        backward,
        posteriors,
    } = SharedFlops::of(dims, bf);
    let damped = |q: f64| q * q * q / 3.0 + 2.0 * q * q * q + 2.0 * bf * q * q;
    let (p_out, q_out) = shape(layers - 1);
    let output = bf * q_out * q_out + damped(q_out);
    let hidden: f64 = (0..layers - 1)
        .map(|l| {
            let q = shape(l).1;
            rows_per_b * bf * q * q + damped(q)
        })
        .sum();
    forward
        + 2.0 * bf * p_out * q_out
        + backward
        + rows_per_b * backward
        + output
        + hidden
        + posteriors
}

/// Random regression data for a case: `X` (B x d_0) standard normal, standardized per column;
/// `Y` (B x d_L) a random one-hidden-layer tanh teacher of `X` plus noise, standardized per
/// column (as the UCI protocol standardizes inputs and targets).
pub fn case_data<T: Scalar>(case: TrainCase, seed: u64) -> (Mat<T>, Mat<T>) {
    let dims = case.dims();
    let (b, d_in, d_out) = (case.batch(), dims[0], dims[dims.len() - 1]);
    let hidden = 16;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7261_696E_6265_6E63);
    let mut normal = || rng.sample::<f64, _>(StandardNormal);
    let x = standardized(Mat::<f64>::from_fn(b, d_in, |_, _| normal()));
    let scale = 1.0 / (d_in as f64).sqrt();
    let w1 = Mat::<f64>::from_fn(d_in, hidden, |_, _| scale * normal());
    let w2 = Mat::<f64>::from_fn(hidden, d_out, |_, _| normal());
    let a = (&x * &w1).as_ref().to_owned();
    let a = Mat::<f64>::from_fn(b, hidden, |i, j| a[(i, j)].tanh());
    let f = &a * &w2;
    let y = standardized(Mat::<f64>::from_fn(b, d_out, |i, j| {
        f[(i, j)] + 0.3 * normal()
    }));
    // The classifier's targets: one-hot of the teacher's most probable class.
    let y = if case.categorical() {
        Mat::<f64>::from_fn(b, d_out, |i, j| {
            let best = (0..d_out).fold(0, |a, c| if y[(i, c)] > y[(i, a)] { c } else { a });
            if best == j {
                1.0
            } else {
                0.0
            }
        })
    } else {
        y
    };
    let cast = |m: &Mat<f64>| Mat::<T>::from_fn(m.nrows(), m.ncols(), |i, j| T::of(m[(i, j)]));
    (cast(&x), cast(&y))
}

/// Columns shifted to mean 0 and scaled to standard deviation 1 (constant columns: 0).
fn standardized(mut m: Mat<f64>) -> Mat<f64> {
    let n = m.nrows() as f64;
    for j in 0..m.ncols() {
        let mean = (0..m.nrows()).map(|i| m[(i, j)]).sum::<f64>() / n;
        let var = (0..m.nrows())
            .map(|i| (m[(i, j)] - mean).powi(2))
            .sum::<f64>()
            / n;
        let inv = if var > 0.0 { 1.0 / var.sqrt() } else { 0.0 };
        for i in 0..m.nrows() {
            m[(i, j)] = (m[(i, j)] - mean) * inv;
        }
    }
    m
}

/// Rounds of blocks in [`time_case`].
const ROUNDS: usize = 3;

/// Times every method of `methods` (Adam added first if missing) on `case`, in blocks of
/// consecutive steps of one method (as in its own training loop, so that each method sees
/// its own steady state of caches and allocator): per round and method, untimed steps
/// (`warmup` in the first round, 1 later) then its share of the `repeats` timed steps; up to
/// `ROUNDS` rounds, so that drift of a shared machine hits all methods alike. Returns one
/// record per method, with the median step time.
pub fn time_case<T: Scalar>(
    case: TrainCase,
    methods: &[Method],
    warmup: usize,
    repeats: usize,
    threads: usize,
    seed: u64,
) -> Result<Vec<Record>, CliError> {
    let mut methods = methods.to_vec();
    methods.retain(|&m| m != Method::Adam && case.runs(m));
    methods.insert(0, Method::Adam);
    let (x, y) = case_data::<T>(case, seed);
    let mut runners = methods
        .iter()
        .map(|&m| {
            m.method(case, threads)
                .build::<T>(&case.dims(), case.n_train(), seed)
        })
        .collect::<Result<Vec<Learner<T>>, _>>()?;
    let repeats = repeats.max(1);
    let rounds = repeats.min(ROUNDS);
    let mut samples = vec![Vec::with_capacity(repeats); runners.len()];
    for round in 0..rounds {
        // Timed steps of this round: `repeats` split as evenly as possible.
        let timed = repeats / rounds + usize::from(round < repeats % rounds);
        let untimed = if round == 0 { warmup } else { 1 };
        for (runner, times) in runners.iter_mut().zip(&mut samples) {
            for _ in 0..untimed {
                runner.step(x.as_ref(), y.as_ref())?;
            }
            for _ in 0..timed {
                let start = Instant::now();
                runner.step(black_box(x.as_ref()), y.as_ref())?;
                times.push(start.elapsed().as_secs_f64());
                black_box(&runner);
            }
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    let adam = medians[0];
    let dims = case.dims();
    Ok(methods
        .iter()
        .zip(&medians)
        .map(|(&method, &seconds)| {
            let flops = if case.categorical() {
                classification_flops(method, &dims, case.batch())
            } else {
                method_flops(method, &dims, case.batch())
            };
            Record {
                case: case.name(),
                dims: dims.clone(),
                batch: case.batch(),
                n_train: case.n_train(),
                method: method.name(),
                threads,
                dtype: T::NAME,
                seconds_per_iter: seconds,
                ratio_to_adam: seconds / adam,
                flops,
                gflops: flops / seconds / 1e9,
                samples: repeats,
            }
        })
        .collect())
}

/// Runs every requested case in a pool of `args.threads` threads; calls `emit` per record.
pub fn bench_records<T: Scalar>(
    args: &BenchTrainArgs,
    mut emit: impl FnMut(&Record) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(|e| CliError::ThreadPool {
            threads: args.threads,
            reason: e.to_string(),
        })?;
    let cases = args
        .cases
        .clone()
        .unwrap_or_else(|| TrainCase::ALL.to_vec());
    let methods = args.methods.clone().unwrap_or_else(|| Method::ALL.to_vec());
    for case in cases {
        let (warmup, default_repeats) = case.default_steps(args.quick);
        let repeats = args.repeats.unwrap_or(default_repeats);
        let records = pool
            .install(|| time_case::<T>(case, &methods, warmup, repeats, args.threads, args.seed))?;
        for r in records
            .iter()
            .filter(|r| r.method != "adam" || methods.contains(&Method::Adam))
        {
            emit(r)?;
        }
    }
    Ok(())
}

/// Runs `bali bench train`, writing JSON lines (`--json`) or a table to `out`.
pub fn run(args: &BenchTrainArgs, out: &mut dyn Write) -> Result<(), CliError> {
    // A case none of whose asked-for methods runs would print an empty table.
    if let Some(methods) = &args.methods {
        let cases = args
            .cases
            .clone()
            .unwrap_or_else(|| TrainCase::ALL.to_vec());
        if let Some(case) = cases
            .iter()
            .find(|c| !methods.iter().any(|&m| m != Method::Adam && c.runs(m)))
        {
            return Err(CliError::InvalidOption {
                name: "methods",
                value: format!("{methods:?} for the case {case:?}"),
                reason: "none of these methods runs on this case (the sampled Fisher is a classification method; the paper and scalar variants are regression methods)",
            });
        }
    }
    if !args.json {
        writeln!(
            out,
            "{:<6} {:<16} {:>5} {:<16} {:>3} {:>5} {:>11} {:>8} {:>8} {:>4}",
            "case", "dims", "batch", "method", "thr", "dtype", "s/iter", "x Adam", "GFLOP/s", "n"
        )?;
    }
    let mut emit = |r: &Record| -> Result<(), CliError> {
        if args.json {
            serde_json::to_writer(&mut *out, r)?;
            writeln!(out)?;
        } else {
            let dims = r
                .dims
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("-");
            writeln!(
                out,
                "{:<6} {:<16} {:>5} {:<16} {:>3} {:>5} {:>11.4e} {:>8.2} {:>8.2} {:>4}",
                r.case,
                dims,
                r.batch,
                r.method,
                r.threads,
                r.dtype,
                r.seconds_per_iter,
                r.ratio_to_adam,
                r.gflops,
                r.samples
            )?;
        }
        out.flush()?;
        Ok(())
    };
    match args.dtype {
        Dtype::F64 => bench_records::<f64>(args, &mut emit),
        Dtype::F32 => bench_records::<f32>(args, &mut emit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BenchArgs, BenchCommand, Cli, Command};
    use bali::config::SigmaSpec;
    use bali::map::MapNet;
    use clap::Parser;
    use std::ops::ControlFlow;

    fn parse(argv: &[&str]) -> Result<BenchTrainArgs, clap::Error> {
        let cli = Cli::try_parse_from(argv)?;
        match cli.command {
            Command::Bench(BenchArgs {
                command: BenchCommand::Train(args),
            }) => Ok(args),
            other => panic!("expected bench train, got {other:?}"),
        }
    }

    #[test]
    fn parses_options_and_defaults() {
        let args = parse(&[
            "bali",
            "bench",
            "train",
            "--threads",
            "2",
            "--dtype",
            "f32",
            "--json",
            "--repeats",
            "9",
            "--quick",
            "--cases",
            "mnist",
            "--methods",
            "paper,improved_scalar",
            "--seed",
            "3",
        ])
        .expect("valid command line");
        assert_eq!(args.threads, 2);
        assert_eq!(args.dtype, Dtype::F32);
        assert!(args.json && args.quick);
        assert_eq!(args.repeats, Some(9));
        assert_eq!(args.cases, Some(vec![TrainCase::Mnist]));
        assert_eq!(
            args.methods,
            Some(vec![Method::Paper, Method::ImprovedScalar])
        );
        assert_eq!(args.seed, 3);

        let args = parse(&["bali", "bench", "train"]).expect("defaults");
        assert_eq!(args.threads, 1);
        assert_eq!(args.dtype, Dtype::F64);
        assert!(!args.json && !args.quick);
        assert_eq!((args.repeats, args.cases, args.methods), (None, None, None));

        for argv in [
            &["bali", "bench", "train", "--threads", "0"][..],
            &["bali", "bench", "train", "--repeats", "0"][..],
            &["bali", "bench", "train", "--dtype", "f16"][..],
            &["bali", "bench", "train", "--cases", "cifar"][..],
            &["bali", "bench", "train", "--methods", "sgd"][..],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "accepted {argv:?}");
        }
    }

    #[test]
    fn cases_follow_the_issue() {
        assert_eq!(TrainCase::Uci.dims(), vec![13, 50, 1]);
        assert_eq!(TrainCase::Uci.batch(), TrainCase::Uci.n_train());
        assert_eq!(TrainCase::Mnist.dims(), vec![784, 400, 400, 10]);
        assert_eq!(TrainCase::Mnist.batch(), 1024);
        let bali_config = |m: Method, case| match m.method(case, 1) {
            bali::Method::Bali(c) => c,
            other => panic!("expected a BALI method, got {other:?}"),
        };
        let cfg = bali_config(Method::ImprovedKfac, TrainCase::Mnist);
        assert_eq!(cfg.batch_size, Some(1024));
        assert!((cfg.beta_for(60_000, 1024) - (1.0 - 1024.0 / 60_000.0)).abs() < 1e-15);
        let cfg = bali_config(Method::Paper, TrainCase::Uci);
        assert_eq!(cfg.formulation, Formulation::Paper);
        assert_eq!(cfg.batch_size, None);
        assert_eq!(cfg.beta_for(455, 455), 0.0);
        // method_flops counts the learned-Sigma terms: the defaults must learn Sigma.
        assert!(matches!(cfg.hidden_sigma, SigmaSpec::Learned { .. }));
        assert!(matches!(cfg.output_sigma, SigmaSpec::Learned { .. }));
        assert!(matches!(
            Method::Adam.method(TrainCase::Uci, 1),
            bali::Method::Map(MapConfig {
                batch_size: None,
                ..
            })
        ));
    }

    #[test]
    fn classification_flops_by_hand() {
        // 2-3-2 (one hidden layer of 3), B = 4: p = (3, 4), q = (3, 2).
        let dims = [2, 3, 2];
        let fwd = 2.0 * 4.0 * (3.0 * 3.0 + 4.0 * 2.0);
        let bwd = 2.0 * 4.0 * 3.0 * 2.0;
        let post = |p: f64, q: f64| {
            4.0 * p * p
                + 2.0 * 4.0 * p * q
                + p * p * p / 3.0
                + 2.0 * p * p * q
                + 2.0 * 4.0 * p * q
                + 4.0 * q * q
                + p * q * q
                + q * q * q / 3.0
        };
        let damped = |q: f64| q * q * q / 3.0 + 2.0 * q * q * q + 2.0 * 4.0 * q * q;
        let common = fwd
            + 2.0 * 4.0 * 4.0 * 2.0
            + bwd
            + post(3.0, 3.0)
            + post(4.0, 2.0)
            + 4.0 * 2.0 * 2.0
            + damped(2.0)
            + damped(3.0);
        // Exact: the stacked pass of K B = 8 rows (2 backward passes) and its SYRK 8 q^2.
        let exact = common + 2.0 * bwd + 2.0 * 4.0 * 9.0;
        let sampled = common + bwd + 4.0 * 9.0;
        let close = |a: f64, b: f64| assert!((a - b).abs() <= 1e-9 * b.abs(), "{a} vs {b}");
        close(classification_flops(Method::ImprovedKfac, &dims, 4), exact);
        close(
            classification_flops(Method::ImprovedKfacSampled, &dims, 4),
            sampled,
        );
        close(
            classification_flops(Method::Adam, &dims, 4),
            method_flops(Method::Adam, &dims, 4),
        );
        assert!(TrainCase::Classify.runs(Method::ImprovedKfacSampled));
        assert!(!TrainCase::Classify.runs(Method::Paper));
        assert!(!TrainCase::Mnist.runs(Method::ImprovedKfacSampled));
        let (_, y) = case_data::<f64>(TrainCase::Classify, 3);
        for i in 0..y.nrows() {
            let row: Vec<f64> = (0..y.ncols()).map(|j| y[(i, j)]).collect();
            assert_eq!(row.iter().sum::<f64>(), 1.0, "one-hot row {i}");
            assert!(row.iter().all(|&v| v == 0.0 || v == 1.0));
        }
    }

    #[test]
    fn flop_counts_by_hand() {
        // dims 2-3-1, B = 4: layer 0 (p, q) = (3, 3), layer 1 (4, 1).
        let b = 4.0;
        let fwd = 2.0 * b * 9.0 + 2.0 * b * 4.0;
        let bwd = 2.0 * b * 3.0 * 1.0;
        let post = |p: f64, q: f64| {
            b * p * p
                + 2.0 * b * p * q
                + p * p * p / 3.0
                + 2.0 * p * p * q
                + 2.0 * b * p * q
                + b * q * q
                + p * q * q
                + q * q * q / 3.0
        };
        let posts = post(3.0, 3.0) + post(4.0, 1.0);
        let dims = [2, 3, 1];
        let close = |a: f64, e: f64| assert!((a - e).abs() < 1e-9 * e, "{a} vs {e}");
        close(method_flops(Method::Adam, &dims, 4), 2.0 * fwd + bwd);
        close(method_flops(Method::Paper, &dims, 4), fwd + bwd + posts);
        // Closed-form curvature of the layer feeding the output: B q^2 + q_L q^2 (Kfac), its
        // diagonal B q + q_L q (Scalar).
        let improved = fwd + 2.0 * b * 4.0 + bwd + (b * 9.0 + 9.0) + posts;
        close(
            method_flops(Method::ImprovedScalar, &dims, 4),
            improved - (b * 9.0 + 9.0) + (b * 3.0 + 3.0),
        );
        // Kfac: Cholesky of D q^3/3, its inverse 2 q^3, G D^{-1} 2 B q^2.
        close(
            method_flops(Method::ImprovedKfac, &dims, 4),
            improved + 9.0 + 54.0 + 2.0 * b * 9.0,
        );
        // Amortized over 10 steps: the curvature and the factor of D count 1/10.
        close(
            method_flops(Method::ImprovedKfacRefresh10, &dims, 4),
            improved - (b * 9.0 + 9.0) + (b * 9.0 + 9.0 + 9.0 + 54.0) / 10.0 + 2.0 * b * 9.0,
        );

        // dims 2-3-4-2, B = 4: layers (3, 3), (4, 4), (5, 2).
        let dims = [2, 3, 4, 2];
        let fwd = 2.0 * b * (9.0 + 16.0 + 10.0);
        let bwd = 2.0 * b * (3.0 * 4.0 + 4.0 * 2.0);
        let posts = post(3.0, 3.0) + post(4.0, 4.0) + post(5.0, 2.0);
        close(method_flops(Method::Adam, &dims, 4), 2.0 * fwd + bwd);
        close(method_flops(Method::Paper, &dims, 4), fwd + bwd + posts);
        // output recompute 2 B 5 2; gradient pass; stacked pass of q_L = 2 seeds; layer 1 in
        // closed form (B 16 + 2 16), layer 0 by the stacked SYRK (2 B 9); Scalar takes the
        // diagonals (B 4 + 2 4 and 2 B 3).
        let shared = fwd + 2.0 * b * 10.0 + bwd + 2.0 * bwd + posts;
        close(
            method_flops(Method::ImprovedScalar, &dims, 4),
            shared + (b * 4.0 + 8.0) + 2.0 * b * 3.0,
        );
        let kfac = (9.0 + 54.0 + 2.0 * b * 9.0) + (64.0 / 3.0 + 128.0 + 2.0 * b * 16.0);
        close(
            method_flops(Method::ImprovedKfac, &dims, 4),
            shared + (b * 16.0 + 32.0) + 2.0 * b * 9.0 + kfac,
        );
    }

    #[test]
    fn data_is_standardized_and_seeded() {
        let (x, y) = case_data::<f64>(TrainCase::Uci, 1);
        assert_eq!((x.nrows(), x.ncols(), y.ncols()), (455, 13, 1));
        for m in [&x, &y] {
            for j in 0..m.ncols() {
                let col: Vec<f64> = (0..m.nrows()).map(|i| m[(i, j)]).collect();
                let mean = col.iter().sum::<f64>() / col.len() as f64;
                let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
                assert!(
                    mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12,
                    "{mean} {var}"
                );
            }
        }
        let (x2, _) = case_data::<f64>(TrainCase::Uci, 1);
        let (x3, _) = case_data::<f64>(TrainCase::Uci, 2);
        assert_eq!(x, x2);
        assert_ne!(x, x3);
    }

    #[test]
    fn adam_step_is_one_map_iteration() {
        let (x, y) = case_data::<f64>(TrainCase::Uci, 4);
        let method = Method::Adam.method(TrainCase::Uci, 1);
        let mut ours = method
            .build::<f64>(&TrainCase::Uci.dims(), 455, 4)
            .expect("valid");
        let bali::Method::Map(config) = method else {
            panic!("Adam is the MAP method")
        };
        let mut map = MapNet::<f64>::new(vec![13, 50, 1], config, 4).expect("valid");
        for _ in 0..3 {
            ours.step(x.as_ref(), y.as_ref()).expect("finite");
            map.fit(x.as_ref(), y.as_ref(), 1, |_| ControlFlow::Continue(()))
                .expect("finite");
        }
        let bali::Learner::Map(ours) = ours else {
            panic!("Adam builds a MAP network")
        };
        assert_eq!(ours.weights(), map.weights());
        assert_eq!(ours.steps(), 3);
    }

    #[test]
    fn quick_small_case_emits_every_method() {
        let args = BenchTrainArgs {
            threads: 1,
            dtype: Dtype::F64,
            json: true,
            repeats: Some(1),
            quick: true,
            cases: Some(vec![TrainCase::Uci]),
            methods: None,
            seed: 0,
        };
        let mut buf = Vec::new();
        run(&args, &mut buf).expect("bench runs");
        let text = String::from_utf8(buf).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        let methods: Vec<&str> = lines.iter().filter_map(|v| v["method"].as_str()).collect();
        assert_eq!(
            methods,
            vec![
                "adam",
                "improved_kfac",
                "improved_scalar",
                "paper",
                "improved_kfac_r10"
            ]
        );
        for v in &lines {
            for key in [
                "case",
                "dims",
                "batch",
                "method",
                "threads",
                "dtype",
                "seconds_per_iter",
                "ratio_to_adam",
                "gflops",
            ] {
                assert!(v.get(key).is_some(), "missing {key} in {v}");
            }
            assert_eq!(v["case"], "uci");
            assert_eq!(v["dims"], serde_json::json!([13, 50, 1]));
            assert_eq!(v["batch"], 455);
            assert_eq!(v["dtype"], "f64");
            assert_eq!(v["samples"], 1);
            assert!(
                v["seconds_per_iter"].as_f64().is_some_and(|s| s > 0.0),
                "{v}"
            );
            assert!(v["gflops"].as_f64().is_some_and(|g| g > 0.0), "{v}");
            assert!(v["ratio_to_adam"].as_f64().is_some_and(|r| r > 0.0), "{v}");
        }
        assert_eq!(lines[0]["ratio_to_adam"], 1.0);
    }

    #[test]
    fn table_in_f32_without_adam_line() {
        let args = BenchTrainArgs {
            threads: 1,
            dtype: Dtype::F32,
            json: false,
            repeats: Some(1),
            quick: true,
            cases: Some(vec![TrainCase::Uci]),
            methods: Some(vec![Method::Paper]),
            seed: 1,
        };
        let mut buf = Vec::new();
        run(&args, &mut buf).expect("bench runs");
        let text = String::from_utf8(buf).expect("utf-8");
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), 1, "{text}");
        assert!(
            rows[0].contains("paper") && rows[0].contains(" f32 ") && rows[0].contains("13-50-1"),
            "{text}"
        );
    }
}
