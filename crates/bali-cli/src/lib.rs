//! The `bali` command line, a frontend of the `bali` library: argument types (clap derive),
//! their dispatch, progress bars, plots (with their embedded font), the embedded red-wine
//! data of `bali fit`, and the benchmarks.
//!
//! ```text
//! bali verify dense [--p P --q Q --n N --seed S --samples K]
//! bali bench kron   [--threads T] [--dtype f64|f32] [--json] [--quick] [--ops a,b] [--repeats R]
//! ```
//!
//! Each subcommand is an enum variant, so new ones (`fit`, `uci`, `bench train`) slot in
//! beside the existing ones. [`run`] writes to a caller-supplied writer and returns every
//! failure as a [`CliError`] value; the binary turns that into a message and an exit code.

pub mod bench_kron;
pub mod bench_train;
pub mod classify;
pub mod curves;
pub mod embedded;
pub mod fit;
pub mod options;
pub mod plot;
pub mod predict;
pub mod uci;
pub mod verify;

use std::io::Write;

use clap::{Args, Parser, Subcommand};

/// Command-line interface of the `bali` binary.
#[derive(Debug, Parser)]
#[command(
    name = "bali",
    version,
    about = "BALI: Bayesian neural networks by exact layerwise inference"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a BALI ensemble on a regression data set (default: the embedded red-wine
    /// quality data; `--csv FILE --target COLUMN` for your own) and report test RMSE,
    /// log-likelihood and interval coverage, with plots.
    Fit(fit::FitArgs),
    /// Check the Kronecker-factored algebra against a dense reference.
    Verify(VerifyArgs),
    /// Throughput benchmarks.
    Bench(BenchArgs),
    /// Test log-likelihood against iterations for BALI Improved, BALI Paper and MAP on one
    /// UCI split, as a PNG.
    Curves(curves::CurvesArgs),
    /// UCI regression benchmark on the standard splits (selection on a validation carve).
    Uci(uci::UciArgs),
    /// Classification with calibrated uncertainty and out-of-distribution detection (default:
    /// the embedded 8 x 8 digits; `--data DIR` for MNIST with KMNIST, noise and flipped
    /// images as OOD sets): accuracy, NLL, Brier, ECE, OOD AUROC and FPR95 by entropy and
    /// mutual information, accuracy under rotation.
    Classify(classify::ClassifyArgs),
    /// Predictions of a saved model (`bali fit --save`) for the rows of a CSV file: mean,
    /// standard deviation and central-interval bounds per row, as CSV on standard output.
    Predict(predict::PredictArgs),
}

/// `bali verify ...`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// What to verify.
    #[command(subcommand)]
    pub command: VerifyCommand,
}

/// Subcommands of `bali verify`.
#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Learned-Sigma posterior of a random problem, Kronecker form against the dense
    /// pq x pq vec form: mean, covariance, log-determinant, log-density, KL, solve and
    /// the sampled covariance.
    Dense(verify::VerifyDenseArgs),
}

/// `bali bench ...`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// Subcommands of `bali bench`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Kronecker-inversion throughput: Cholesky, Kronecker solves, dense reference solve,
    /// SYRK EMA and matrix-normal sampling, in seconds and GFLOP/s.
    Kron(bench_kron::BenchKronArgs),
    /// Time per training iteration: BALI (Improved Kfac / Scalar, Paper) against an Adam
    /// step, on a 13-50-1 network (455 rows) and a 784-400-400-10 network (batches of 1024).
    Train(bench_train::BenchTrainArgs),
}

/// Everything a `bali` subcommand can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Training, prediction, data or matrix-normal algebra failure (the library's error).
    #[error(transparent)]
    Bali(#[from] bali::BaliError),
    /// Writing a plot failed.
    #[error("plot: {0}")]
    Plot(#[from] plot::PlotError),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    /// Serializing a result line failed.
    #[error("serializing a result as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The rayon thread pool could not be built.
    #[error("building a rayon pool of {threads} threads: {reason}")]
    ThreadPool {
        /// Requested number of threads.
        threads: usize,
        /// The builder's message.
        reason: String,
    },
    /// An option outside its valid range.
    #[error("invalid option --{name} = {value}: {reason}")]
    InvalidOption {
        /// Option name (without dashes).
        name: &'static str,
        /// Offending value.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A prediction that overflowed (inputs far outside the training data).
    #[error("{}: data row {row}: the prediction is not finite: its inputs lie far outside the training data", path.display())]
    NonFinitePrediction {
        /// The input file.
        path: std::path::PathBuf,
        /// 1-based data row (after the header).
        row: usize,
    },
    /// `bali verify` found a relative error above its tolerance.
    #[error("verification failed: {what} relative error {value:.3e} exceeds tolerance {tol:.1e}")]
    VerificationFailed {
        /// The quantity that failed.
        what: &'static str,
        /// Its relative error.
        value: f64,
        /// The tolerance it was held to.
        tol: f64,
    },
}

impl From<bali_mn::MnError> for CliError {
    fn from(e: bali_mn::MnError) -> Self {
        CliError::Bali(e.into())
    }
}

impl From<bali::data::DataError> for CliError {
    fn from(e: bali::data::DataError) -> Self {
        CliError::Bali(e.into())
    }
}

impl Cli {
    /// The option checks every subcommand runs before any work, without touching files or
    /// data (each `run` calls the same checks first; the `cli_options` fuzz target calls
    /// this).
    pub fn check(&self) -> Result<(), CliError> {
        match &self.command {
            Command::Fit(a) => a.check().map(|_| ()),
            Command::Uci(a) => a.check().map(|_| ()),
            Command::Classify(a) => a.check(),
            Command::Curves(a) => a.check(),
            Command::Verify(_) | Command::Bench(_) | Command::Predict(_) => Ok(()),
        }
    }
}

/// Runs one parsed command line, writing its report to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Verify(v) => match v.command {
            VerifyCommand::Dense(args) => verify::run_dense(&args, out),
        },
        Command::Bench(b) => match b.command {
            BenchCommand::Kron(args) => bench_kron::run(&args, out),
            BenchCommand::Train(args) => bench_train::run(&args, out),
        },
        Command::Fit(args) => fit::run(&args, out),
        Command::Curves(args) => curves::run(&args, out),
        Command::Uci(args) => uci::run(&args, out).map(|_| ()),
        Command::Predict(args) => predict::run(&args, out),
        Command::Classify(args) => classify::run(&args, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_bench_kron_options() {
        let cli = Cli::try_parse_from([
            "bali",
            "bench",
            "kron",
            "--threads",
            "2",
            "--dtype",
            "f32",
            "--json",
            "--ops",
            "potrf,kron_solve",
            "--repeats",
            "7",
        ])
        .expect("valid command line");
        let Command::Bench(BenchArgs {
            command: BenchCommand::Kron(args),
        }) = cli.command
        else {
            panic!("expected bench kron, got {:?}", cli.command);
        };
        assert_eq!(args.threads, 2);
        assert_eq!(args.dtype, bench_kron::Dtype::F32);
        assert!(args.json);
        assert!(!args.quick);
        assert_eq!(args.repeats, 7);
        assert_eq!(
            args.ops,
            Some(vec![bench_kron::Op::Potrf, bench_kron::Op::KronSolve])
        );
    }

    #[test]
    fn parses_verify_dense_defaults() {
        let cli = Cli::try_parse_from(["bali", "verify", "dense", "--p", "7"]).expect("valid");
        let Command::Verify(VerifyArgs {
            command: VerifyCommand::Dense(args),
        }) = cli.command
        else {
            panic!("expected verify dense, got {:?}", cli.command);
        };
        assert_eq!(args.p, 7);
        assert_eq!(args.q, 10);
        assert_eq!(args.n, 200);
        assert_eq!(args.seed, 0);
    }

    #[test]
    fn rejects_bad_user_input_without_panicking() {
        for argv in [
            &["bali", "bench", "kron", "--threads", "0"][..],
            &["bali", "bench", "kron", "--dtype", "f16"][..],
            &["bali", "bench", "kron", "--ops", "potrf,gemm"][..],
            &["bali", "verify", "dense", "--p", "-3"][..],
            &["bali", "verify", "dense", "--samples", "1"][..],
            &["bali", "frobnicate"][..],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "accepted {argv:?}");
        }
    }
}
