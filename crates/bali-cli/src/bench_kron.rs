//! `bali bench kron`: throughput of the Kronecker-factored algebra.
//!
//! Every operation is timed on random well-conditioned inputs built once per shape (fixed
//! seed, outside the timing): warm-up, then repeated runs until about `--target-time`
//! seconds or `--repeats` samples have been taken (at least 3); the reported time is the
//! median per call. GFLOP/s use the flop counts of ALGORITHM.md section 7:
//!
//! | op | shapes | flops |
//! |---|---|---|
//! | `potrf` (copy, then `bali_kernels::cholesky_lower_in_place`, as scipy's `cholesky`) | n = p (q, b null) | n^3 / 3 |
//! | `kron_factor_solve`: factor A (p x p), B (q x q), then A^{-1} V B^{-1} | (p, q) | p^3/3 + q^3/3 + 2p^2q + 2q^2p |
//! | `kron_solve`: A^{-1} V B^{-1}, factors precomputed | (p, q) | 2p^2q + 2q^2p |
//! | `dense_solve`: (B kron A) vec X = vec V by dense pq x pq Cholesky, pq <= 4096 | (p, q) | (pq)^3/3 + 2(pq)^2 |
//! | `syrk_ema`: S <- beta S + c X^T X, X (b x p), one triangle | (p, b) | b p^2 |
//! | `mn_sample`: W = M + L^{-T} Z R^T into a preallocated W | (p, q) | p^2 q + q^2 p |
//!
//! `rel_diff` is `max |X_kron - X_dense| / max |X_dense|` for the Kronecker and dense
//! solutions of the same system where pq <= 4096, and `null` elsewhere.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use bali_kernels::{syrk_ema, ParPolicy, Scalar};
use bali_mn::dense::{
    max_rel_diff, random_spd_dominant as random_spd, random_uniform as random_mat,
};
use bali_mn::{dense, kron_solve, FactorId, JitterPolicy, KronFactor, MatrixNormal};
use clap::builder::TypedValueParser as _;
use clap::{Args, ValueEnum};
use faer::{Mat, Par};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use crate::CliError;

/// Cholesky sizes n of `potrf`.
pub const POTRF_SIZES: [usize; 7] = [32, 64, 128, 256, 512, 1024, 2048];
/// (p, q) shapes of `kron_factor_solve`, `kron_solve`, `dense_solve` and `mn_sample`.
pub const KRON_SHAPES: [(usize, usize); 8] = [
    (33, 50),
    (51, 1),
    (129, 128),
    (257, 256),
    (513, 512),
    (785, 256),
    (1025, 1024),
    (2049, 10),
];
/// (p, b) shapes of `syrk_ema`: b in {128, 1024}, p in {64, 256, 1024}.
pub const SYRK_SHAPES: [(usize, usize); 6] = [
    (64, 128),
    (256, 128),
    (1024, 128),
    (64, 1024),
    (256, 1024),
    (1024, 1024),
];
/// Largest pq for which the dense pq x pq reference is formed.
pub const DENSE_MAX_PQ: usize = 4096;
/// `--quick` keeps only shapes whose largest dimension is at most this.
pub const QUICK_MAX_DIM: usize = 512;

/// Floating-point type of a benchmark run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    /// Double precision.
    F64,
    /// Single precision.
    F32,
}

/// A benchmarked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Op {
    /// Cholesky factorization of an n x n SPD matrix.
    #[value(name = "potrf")]
    Potrf,
    /// Factor both Kronecker factors, then A^{-1} V B^{-1}.
    #[value(name = "kron_factor_solve")]
    KronFactorSolve,
    /// A^{-1} V B^{-1} from precomputed factors.
    #[value(name = "kron_solve")]
    KronSolve,
    /// The same solve through the dense pq x pq Cholesky.
    #[value(name = "dense_solve")]
    DenseSolve,
    /// S <- beta S + c X^T X (one triangle).
    #[value(name = "syrk_ema")]
    SyrkEma,
    /// Matrix-normal sample into a preallocated matrix.
    #[value(name = "mn_sample")]
    MnSample,
}

impl Op {
    /// All operations, in output order.
    pub const ALL: [Op; 6] = [
        Op::Potrf,
        Op::KronFactorSolve,
        Op::KronSolve,
        Op::DenseSolve,
        Op::SyrkEma,
        Op::MnSample,
    ];

    /// Name used in the output (`"kron_factor_solve"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Potrf => "potrf",
            Op::KronFactorSolve => "kron_factor_solve",
            Op::KronSolve => "kron_solve",
            Op::DenseSolve => "dense_solve",
            Op::SyrkEma => "syrk_ema",
            Op::MnSample => "mn_sample",
        }
    }

    /// The benchmark cases of this operation (all shapes, or the small ones when `quick`).
    pub fn cases(self, quick: bool) -> Vec<Case> {
        let keep = |dims: &[usize]| !quick || dims.iter().all(|&d| d <= QUICK_MAX_DIM);
        match self {
            Op::Potrf => POTRF_SIZES
                .iter()
                .filter(|&&n| keep(&[n]))
                .map(|&n| Case {
                    op: self,
                    p: n,
                    q: None,
                    b: None,
                })
                .collect(),
            Op::KronFactorSolve | Op::KronSolve | Op::MnSample | Op::DenseSolve => KRON_SHAPES
                .iter()
                .filter(|&&(p, q)| keep(&[p, q]))
                .filter(|&&(p, q)| self != Op::DenseSolve || p * q <= DENSE_MAX_PQ)
                .map(|&(p, q)| Case {
                    op: self,
                    p,
                    q: Some(q),
                    b: None,
                })
                .collect(),
            Op::SyrkEma => SYRK_SHAPES
                .iter()
                .filter(|&&(p, b)| keep(&[p, b]))
                .map(|&(p, b)| Case {
                    op: self,
                    p,
                    q: None,
                    b: Some(b),
                })
                .collect(),
        }
    }
}

/// One operation at one shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The operation.
    pub op: Op,
    /// Rows p (the Cholesky size n for `potrf`).
    pub p: usize,
    /// Columns q (`None` for `potrf` and `syrk_ema`).
    pub q: Option<usize>,
    /// Batch rows b of `syrk_ema` (`None` elsewhere).
    pub b: Option<usize>,
}

impl Case {
    /// Floating-point operation count (ALGORITHM.md section 7).
    pub fn flops(&self) -> f64 {
        let p = self.p as f64;
        let q = self.q.unwrap_or(0) as f64;
        let b = self.b.unwrap_or(0) as f64;
        match self.op {
            Op::Potrf => potrf_flops(self.p),
            Op::KronFactorSolve => {
                potrf_flops(self.p) + potrf_flops(self.q.unwrap_or(0)) + solve_flops(p, q)
            }
            Op::KronSolve => solve_flops(p, q),
            Op::DenseSolve => {
                let n = p * q;
                n * n * n / 3.0 + 2.0 * n * n
            }
            Op::SyrkEma => b * p * p,
            Op::MnSample => p * p * q + q * q * p,
        }
    }
}

/// Cholesky of an n x n matrix: n^3 / 3.
fn potrf_flops(n: usize) -> f64 {
    let n = n as f64;
    n * n * n / 3.0
}

/// A^{-1} V B^{-1} from both factors (two triangular solves per side): 2p^2q + 2q^2p.
fn solve_flops(p: f64, q: f64) -> f64 {
    2.0 * p * p * q + 2.0 * q * q * p
}

/// Options of `bali bench kron`.
#[derive(Debug, Clone, Args)]
pub struct BenchKronArgs {
    /// Rayon pool size; kernels use threads only above a flop threshold
    /// (`bali_kernels::ParPolicy::with_threads(T)`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024).map(|v| v as usize))]
    pub threads: usize,
    /// Floating-point type.
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    pub dtype: Dtype,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only shapes with every dimension <= 512, and a shorter time per measurement.
    #[arg(long)]
    pub quick: bool,
    /// Comma-separated operations (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub ops: Option<Vec<Op>>,
    /// Maximum number of timed samples per case (at least 3 are always taken).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000).map(|v| v as usize))]
    pub repeats: usize,
    /// Seconds of timed runs per case before stopping (default 0.3, 0.05 with --quick).
    #[arg(long)]
    pub target_time: Option<f64>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One output line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Implementation (`"bali"`).
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    /// Operation name.
    pub op: &'static str,
    /// Rows p (n for `potrf`).
    pub p: usize,
    /// Columns q, if the operation has them.
    pub q: Option<usize>,
    /// Batch rows b, if the operation has them.
    pub b: Option<usize>,
    /// Rayon pool size.
    pub threads: usize,
    /// Largest number of threads the parallelism policy gave one kernel call of this case
    /// (1: everything sequential).
    pub kernel_threads: usize,
    /// `"f64"` or `"f32"`.
    pub dtype: &'static str,
    /// Median seconds per call.
    pub seconds: f64,
    /// flops / seconds / 1e9.
    pub gflops: f64,
    /// Kronecker against dense relative difference, where pq <= 4096.
    pub rel_diff: Option<f64>,
    /// Number of timed samples behind the median.
    pub samples: usize,
}

/// How long to time one case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Stop sampling once this many seconds have been spent in timed samples...
    pub target_time: f64,
    /// ... or this many samples have been taken (at least 3 are always taken).
    pub max_samples: usize,
    /// Calls are batched so that one sample lasts at least this long (timer resolution).
    pub min_sample_time: f64,
}

/// Median seconds per call of `f` and the number of samples taken.
///
/// One warm-up call, one calibration call, then samples of `k` calls each (`k` chosen so a
/// sample lasts at least `min_sample_time`) until `target_time` seconds or `max_samples`
/// samples, at least 3.
pub fn median_seconds<F>(timing: &Timing, mut f: F) -> Result<(f64, usize), CliError>
where
    F: FnMut() -> Result<(), CliError>,
{
    f()?;
    let start = Instant::now();
    f()?;
    let one = start.elapsed().as_secs_f64();
    let batch = if one >= timing.min_sample_time {
        1
    } else {
        ((timing.min_sample_time / one.max(1e-9)).ceil() as usize).clamp(1, 1_000_000)
    };
    let max_samples = timing.max_samples.max(3);
    let mut samples = Vec::with_capacity(max_samples);
    if batch == 1 {
        samples.push(one);
    }
    let mut spent = 0.0;
    while samples.len() < 3 || (spent < timing.target_time && samples.len() < max_samples) {
        let start = Instant::now();
        for _ in 0..batch {
            f()?;
        }
        let t = start.elapsed().as_secs_f64();
        spent += t;
        samples.push(t / batch as f64);
    }
    Ok((median(&mut samples), samples.len()))
}

/// Median of a non-empty slice (mean of the two middle values for an even length).
pub(crate) fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// The inputs of one (p, q) shape: A (p x p), B (q x q) SPD and V (p x q), from `seed`.
struct KronInputs<T> {
    a: Mat<T>,
    b: Mat<T>,
    v: Mat<T>,
}

impl<T: Scalar> KronInputs<T> {
    fn new(p: usize, q: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(shape_seed(seed, p, q));
        let a = random_spd(p, &mut rng);
        let b = random_spd(q, &mut rng);
        let v = random_mat(p, q, &mut rng);
        KronInputs { a, b, v }
    }

    fn factors(&self, par_a: Par, par_b: Par) -> Result<(KronFactor<T>, KronFactor<T>), CliError> {
        let fa = KronFactor::new(
            self.a.clone(),
            FactorId::row_precision(None),
            JitterPolicy::NONE,
            par_a,
        )?;
        let fb = KronFactor::new(
            self.b.clone(),
            FactorId::col_cov(None),
            JitterPolicy::NONE,
            par_b,
        )?;
        Ok((fa, fb))
    }

    /// vec(X) = (B kron A)^{-1} vec(V) by the dense pq x pq Cholesky.
    fn dense_solution(&self) -> Result<Mat<T>, CliError> {
        let (p, q) = (self.v.nrows(), self.v.ncols());
        let big = dense::kron(self.b.as_ref(), self.a.as_ref());
        let x = dense::spd_solve(big.as_ref(), dense::vec(self.v.as_ref()).as_ref())?;
        Ok(dense::unvec(x.as_ref(), p, q))
    }
}

/// Seed of the inputs of one shape, so every operation at a shape sees the same inputs.
fn shape_seed(seed: u64, p: usize, q: usize) -> u64 {
    seed ^ ((p as u64) << 32 | q as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Times one case; returns the median seconds and sample count.
fn time_case<T: Scalar>(
    case: &Case,
    policy: &ParPolicy,
    timing: &Timing,
    seed: u64,
) -> Result<(f64, usize), CliError> {
    let p = case.p;
    match case.op {
        Op::Potrf => {
            let mut rng = StdRng::seed_from_u64(shape_seed(seed, p, 0));
            let a: Mat<T> = random_spd(p, &mut rng);
            let par = policy.par(case.flops());
            // Like scipy.linalg.cholesky: copy the input, factor the copy.
            median_seconds(timing, || {
                let mut l = a.clone();
                bali_kernels::cholesky_lower_in_place(l.as_mut(), par).map_err(|e| {
                    CliError::from(bali_mn::MnError::NotPositiveDefinite {
                        factor: FactorId::matrix(),
                        dim: p,
                        pivot: match e {
                            bali_kernels::KernelError::NotPositiveDefinite { pivot } => pivot,
                            bali_kernels::KernelError::NonFinite { row, .. } => row,
                        },
                        jitter_tries: 0,
                        last_jitter: 0.0,
                    })
                })?;
                black_box(l);
                Ok(())
            })
        }
        Op::KronFactorSolve => {
            let q = case.q.unwrap_or(1);
            let inputs = KronInputs::<T>::new(p, q, seed);
            let (par_a, par_b) = (policy.par(potrf_flops(p)), policy.par(potrf_flops(q)));
            let par_s = policy.par(solve_flops(p as f64, q as f64));
            median_seconds(timing, || {
                let (fa, fb) = inputs.factors(par_a, par_b)?;
                black_box(kron_solve(&fa, &fb, inputs.v.as_ref(), par_s));
                Ok(())
            })
        }
        Op::KronSolve => {
            let q = case.q.unwrap_or(1);
            let inputs = KronInputs::<T>::new(p, q, seed);
            let (fa, fb) =
                inputs.factors(policy.par(potrf_flops(p)), policy.par(potrf_flops(q)))?;
            let par = policy.par(case.flops());
            median_seconds(timing, || {
                black_box(kron_solve(&fa, &fb, inputs.v.as_ref(), par));
                Ok(())
            })
        }
        Op::DenseSolve => {
            let q = case.q.unwrap_or(1);
            let inputs = KronInputs::<T>::new(p, q, seed);
            let big = dense::kron(inputs.b.as_ref(), inputs.a.as_ref());
            let rhs = dense::vec(inputs.v.as_ref());
            // The dense reference uses faer's high-level Cholesky, which runs with faer's
            // global parallelism: set it from the policy for this case, then restore it.
            let previous = faer::get_global_parallelism();
            faer::set_global_parallelism(policy.par(case.flops()));
            let timed = median_seconds(timing, || {
                black_box(dense::spd_solve(big.as_ref(), rhs.as_ref())?);
                Ok(())
            });
            faer::set_global_parallelism(previous);
            timed
        }
        Op::SyrkEma => {
            let b = case.b.unwrap_or(1);
            let mut rng = StdRng::seed_from_u64(shape_seed(seed, p, b));
            let x: Mat<T> = random_mat(b, p, &mut rng);
            let mut s: Mat<T> = random_spd(p, &mut rng);
            let (beta, c) = (T::of(0.9), T::of(0.1 / b as f64));
            let par = policy.par(case.flops());
            median_seconds(timing, || {
                syrk_ema(s.as_mut(), x.as_ref(), beta, c, par);
                black_box(s.as_ref());
                Ok(())
            })
        }
        Op::MnSample => {
            let q = case.q.unwrap_or(1);
            let inputs = KronInputs::<T>::new(p, q, seed);
            let (fa, fb) =
                inputs.factors(policy.par(potrf_flops(p)), policy.par(potrf_flops(q)))?;
            let mn = MatrixNormal::new(Mat::zeros(p, q), fa, fb)?;
            let mut w = Mat::<T>::zeros(p, q);
            let mut rng = StdRng::seed_from_u64(shape_seed(seed, p, q).wrapping_add(1));
            let par = policy.par(case.flops());
            median_seconds(timing, || {
                mn.sample_into(w.as_mut(), &mut rng, par);
                black_box(w.as_ref());
                Ok(())
            })
        }
    }
}

/// Largest degree of parallelism the policy gives one timed kernel call of `case`.
pub fn kernel_threads(case: &Case, policy: &ParPolicy) -> usize {
    let pars = match (case.op, case.q) {
        (Op::KronFactorSolve, Some(q)) => vec![
            policy.par(potrf_flops(case.p)),
            policy.par(potrf_flops(q)),
            policy.par(solve_flops(case.p as f64, q as f64)),
        ],
        _ => vec![policy.par(case.flops())],
    };
    pars.iter().map(Par::degree).max().unwrap_or(1)
}

/// Kronecker-against-dense relative difference of A^{-1} V B^{-1} at (p, q).
fn kron_dense_rel_diff<T: Scalar>(p: usize, q: usize, seed: u64) -> Result<f64, CliError> {
    let inputs = KronInputs::<T>::new(p, q, seed);
    let (fa, fb) = inputs.factors(Par::Seq, Par::Seq)?;
    let x = kron_solve(&fa, &fb, inputs.v.as_ref(), Par::Seq);
    let x_dense = inputs.dense_solution()?;
    Ok(max_rel_diff(x.as_ref(), x_dense.as_ref()))
}

/// Tolerance above which a `rel_diff` is reported as suspicious on stderr.
fn rel_diff_warning<T: Scalar>() -> f64 {
    if T::NAME == "f32" {
        1e-3
    } else {
        1e-9
    }
}

/// Runs every requested case in a pool of `args.threads` threads; calls `emit` per record.
pub fn bench_records<T: Scalar>(
    args: &BenchKronArgs,
    mut emit: impl FnMut(&Record) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let target_time = args
        .target_time
        .unwrap_or(if args.quick { 0.05 } else { 0.3 });
    if !(target_time.is_finite() && target_time > 0.0 && target_time <= 3600.0) {
        return Err(CliError::InvalidOption {
            name: "target-time",
            value: target_time.to_string(),
            reason: "must be a number of seconds in (0, 3600]",
        });
    }
    let timing = Timing {
        target_time,
        max_samples: args.repeats,
        min_sample_time: 1e-3,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(|e| CliError::ThreadPool {
            threads: args.threads,
            reason: e.to_string(),
        })?;
    let policy = ParPolicy::with_threads(args.threads);
    let ops = args.ops.clone().unwrap_or_else(|| Op::ALL.to_vec());
    let mut rel_cache: HashMap<(usize, usize), f64> = HashMap::new();
    for op in ops {
        for case in op.cases(args.quick) {
            let rel_diff = match (case.op, case.q) {
                (Op::KronFactorSolve | Op::KronSolve | Op::DenseSolve, Some(q))
                    if case.p * q <= DENSE_MAX_PQ =>
                {
                    let d = match rel_cache.get(&(case.p, q)) {
                        Some(&d) => d,
                        None => {
                            let d = kron_dense_rel_diff::<T>(case.p, q, args.seed)?;
                            rel_cache.insert((case.p, q), d);
                            d
                        }
                    };
                    if d.is_nan() || d > rel_diff_warning::<T>() {
                        eprintln!(
                            "warning: {} at p = {}, q = {}: Kronecker and dense solutions differ by {d:.3e} (relative)",
                            case.op.name(),
                            case.p,
                            q
                        );
                    }
                    Some(d)
                }
                _ => None,
            };
            let (seconds, samples) =
                pool.install(|| time_case::<T>(&case, &policy, &timing, args.seed))?;
            emit(&Record {
                implementation: "bali",
                op: case.op.name(),
                p: case.p,
                q: case.q,
                b: case.b,
                threads: args.threads,
                kernel_threads: kernel_threads(&case, &policy),
                dtype: T::NAME,
                seconds,
                gflops: case.flops() / seconds / 1e9,
                rel_diff,
                samples,
            })?;
        }
    }
    Ok(())
}

/// Runs `bali bench kron`, writing JSON lines (`--json`) or a table to `out`.
pub fn run(args: &BenchKronArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if !args.json {
        writeln!(
            out,
            "{:<18} {:>5} {:>5} {:>5} {:>3} {:>4} {:>5} {:>11} {:>9} {:>9}",
            "op", "p", "q", "b", "thr", "kthr", "dtype", "seconds", "GFLOP/s", "rel_diff"
        )?;
    }
    let mut emit = |r: &Record| -> Result<(), CliError> {
        if args.json {
            serde_json::to_writer(&mut *out, r)?;
            writeln!(out)?;
        } else {
            let opt = |v: Option<usize>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
            let rel = r
                .rel_diff
                .map_or_else(|| "-".to_string(), |d| format!("{d:.1e}"));
            writeln!(
                out,
                "{:<18} {:>5} {:>5} {:>5} {:>3} {:>4} {:>5} {:>11.4e} {:>9.2} {:>9}",
                r.op,
                r.p,
                opt(r.q),
                opt(r.b),
                r.threads,
                r.kernel_threads,
                r.dtype,
                r.seconds,
                r.gflops,
                rel
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

    fn quick_args(ops: &[Op], dtype: Dtype, json: bool) -> BenchKronArgs {
        BenchKronArgs {
            threads: 1,
            dtype,
            json,
            quick: true,
            ops: Some(ops.to_vec()),
            repeats: 3,
            target_time: Some(1e-3),
            seed: 5,
        }
    }

    #[test]
    fn flop_counts_follow_the_cost_table() {
        let c = |op, p, q, b| Case { op, p, q, b }.flops();
        assert_eq!(c(Op::Potrf, 30, None, None), 9000.0);
        assert_eq!(
            c(Op::KronSolve, 3, Some(2), None),
            2.0 * 9.0 * 2.0 + 2.0 * 4.0 * 3.0
        );
        let kfs = c(Op::KronFactorSolve, 3, Some(2), None);
        assert!(
            (kfs - (9.0 + 8.0 / 3.0 + 36.0 + 24.0)).abs() < 1e-12,
            "{kfs}"
        );
        assert_eq!(c(Op::DenseSolve, 3, Some(2), None), 72.0 + 72.0);
        assert_eq!(c(Op::SyrkEma, 4, None, Some(10)), 160.0);
        assert_eq!(c(Op::MnSample, 3, Some(2), None), 18.0 + 12.0);
    }

    #[test]
    fn shape_lists_match_the_issue() {
        assert_eq!(Op::Potrf.cases(false).len(), 7);
        assert_eq!(Op::KronSolve.cases(false).len(), 8);
        assert_eq!(Op::SyrkEma.cases(false).len(), 6);
        let dense: Vec<_> = Op::DenseSolve
            .cases(false)
            .iter()
            .map(|c| (c.p, c.q))
            .collect();
        assert_eq!(dense, vec![(33, Some(50)), (51, Some(1))]);
        for op in Op::ALL {
            for c in op.cases(true) {
                assert!(
                    c.p <= QUICK_MAX_DIM && c.q.unwrap_or(0) <= QUICK_MAX_DIM,
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn kernel_threads_follow_the_policy() {
        let case = |op, p, q| Case {
            op,
            p,
            q: Some(q),
            b: None,
        };
        let seq = ParPolicy::with_threads(1);
        let two = ParPolicy {
            threads: 2,
            min_parallel_flops: 1e8,
        };
        let big = case(Op::KronSolve, 1025, 1024);
        assert_eq!(kernel_threads(&big, &seq), 1);
        assert_eq!(kernel_threads(&big, &two), 2);
        assert_eq!(kernel_threads(&case(Op::KronSolve, 33, 50), &two), 1);
        // Only the 2049 x 2049 Cholesky of this case is above the threshold.
        assert_eq!(
            kernel_threads(&case(Op::KronFactorSolve, 2049, 10), &two),
            2
        );
        assert_eq!(kernel_threads(&case(Op::MnSample, 2049, 10), &two), 1);
    }

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn timing_takes_at_least_three_samples_and_propagates_errors() {
        let timing = Timing {
            target_time: 0.0,
            max_samples: 1,
            min_sample_time: 0.0,
        };
        let mut calls = 0;
        let (s, n) = median_seconds(&timing, || {
            calls += 1;
            Ok(())
        })
        .expect("no error");
        assert_eq!(n, 3);
        assert!(calls >= 4 && s >= 0.0, "calls {calls}, s {s}");
        let err = median_seconds(&timing, || {
            Err(CliError::InvalidOption {
                name: "x",
                value: String::new(),
                reason: "test",
            })
        });
        assert!(err.is_err());
    }

    #[test]
    fn random_spd_is_symmetric_and_diagonally_dominant() {
        let mut rng = StdRng::seed_from_u64(1);
        let a: Mat<f64> = random_spd(17, &mut rng);
        for i in 0..17 {
            let off: f64 = (0..17).filter(|&j| j != i).map(|j| a[(i, j)].abs()).sum();
            assert!(a[(i, i)] - off > 1.0, "row {i}");
            for j in 0..17 {
                assert_eq!(a[(i, j)], a[(j, i)]);
            }
        }
    }

    #[test]
    fn kronecker_solve_agrees_with_dense_in_both_precisions() {
        for &(p, q) in &[(33, 50), (51, 1), (4, 7)] {
            let d64 = kron_dense_rel_diff::<f64>(p, q, 2).expect("spd");
            assert!(d64 < 1e-12, "f64 ({p}, {q}): {d64:e}");
            let d32 = kron_dense_rel_diff::<f32>(p, q, 2).expect("spd");
            assert!(d32 < 1e-4, "f32 ({p}, {q}): {d32:e}");
        }
    }

    #[test]
    fn max_rel_diff_is_normwise() {
        let a = Mat::from_fn(2, 2, |i, j| (i + 2 * j) as f64);
        let mut b = a.clone();
        b[(1, 1)] += 0.3;
        assert!((max_rel_diff(b.as_ref(), a.as_ref()) - 0.1).abs() < 1e-15);
    }

    #[test]
    fn json_lines_have_every_field() {
        let mut buf = Vec::new();
        run(
            &quick_args(
                &[Op::KronSolve, Op::DenseSolve, Op::SyrkEma],
                Dtype::F64,
                true,
            ),
            &mut buf,
        )
        .expect("bench runs");
        let text = String::from_utf8(buf).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        let expected = Op::KronSolve.cases(true).len()
            + Op::DenseSolve.cases(true).len()
            + Op::SyrkEma.cases(true).len();
        assert_eq!(lines.len(), expected);
        for v in &lines {
            for key in [
                "impl",
                "op",
                "p",
                "q",
                "b",
                "threads",
                "kernel_threads",
                "dtype",
                "seconds",
                "gflops",
                "rel_diff",
            ] {
                assert!(v.get(key).is_some(), "missing {key} in {v}");
            }
            assert!(v["seconds"].as_f64().is_some_and(|s| s > 0.0), "{v}");
            assert!(v["gflops"].as_f64().is_some_and(|g| g > 0.0), "{v}");
            let small = v["q"]
                .as_u64()
                .is_some_and(|q| q * v["p"].as_u64().unwrap_or(0) <= 4096);
            match v["op"].as_str() {
                Some("kron_solve") | Some("dense_solve") if small => {
                    assert!(v["rel_diff"].as_f64().is_some_and(|d| d < 1e-10), "{v}")
                }
                _ => assert!(v["rel_diff"].is_null(), "{v}"),
            }
            if v["op"] == "syrk_ema" {
                assert!(v["b"].as_u64().is_some() && v["q"].is_null(), "{v}");
            }
        }
    }

    #[test]
    fn table_output_in_f32_with_two_threads() {
        let mut args = quick_args(
            &[Op::Potrf, Op::MnSample, Op::KronFactorSolve],
            Dtype::F32,
            false,
        );
        args.threads = 2;
        args.ops = Some(vec![Op::Potrf, Op::MnSample, Op::KronFactorSolve]);
        let mut buf = Vec::new();
        run(&args, &mut buf).expect("bench runs");
        let text = String::from_utf8(buf).expect("utf-8");
        let rows: Vec<&str> = text.lines().skip(1).collect();
        let expected = Op::Potrf.cases(true).len()
            + Op::MnSample.cases(true).len()
            + Op::KronFactorSolve.cases(true).len();
        assert_eq!(rows.len(), expected, "{text}");
        assert!(
            rows.iter()
                .all(|r| r.contains(" f32 ") && r.contains("   2 ")),
            "{text}"
        );
    }

    #[test]
    fn invalid_target_time_is_an_error_value() {
        let mut args = quick_args(&[Op::Potrf], Dtype::F64, true);
        args.target_time = Some(-1.0);
        let err = run(&args, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(
                err,
                CliError::InvalidOption {
                    name: "target-time",
                    ..
                }
            ),
            "{err}"
        );
    }
}
