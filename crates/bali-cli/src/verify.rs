//! `bali verify dense`: the Kronecker-factored posterior against the dense vec-form one.
//!
//! Calls [`bali_mn::dense::verify_random_problem`] (a random well-conditioned problem with a
//! learned column covariance, solved both ways in `f64`) and prints the maximum relative
//! errors, one per line, then `PASS` or `FAIL`.

use std::io::Write;

use bali_mn::dense::{verify_random_problem, VerifyConfig, VerifyReport};
use clap::builder::TypedValueParser as _;
use clap::Args;

use crate::CliError;

/// Options of `bali verify dense`.
#[derive(Debug, Clone, Args)]
pub struct VerifyDenseArgs {
    /// Rows of W (layer inputs p, bias included).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200).map(|v| v as usize))]
    pub p: usize,
    /// Columns of W (layer outputs q).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=200).map(|v| v as usize))]
    pub q: usize,
    /// Number of data rows n (the learned Sigma needs n + nu_0 > q + 1).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|v| v as usize))]
    pub n: usize,
    /// Seed of the random problem and of the Monte Carlo samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of posterior samples for the sampled-covariance check.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(2..=10_000_000).map(|v| v as usize))]
    pub samples: usize,
}

/// Runs the dense verification and writes its report to `out`.
///
/// Returns [`CliError::VerificationFailed`] (after printing `FAIL`) when an error exceeds
/// its tolerance, so the binary exits non-zero.
pub fn run_dense(args: &VerifyDenseArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.p * args.q > 4096 {
        return Err(CliError::InvalidOption {
            name: "p",
            value: format!("{} (with q = {})", args.p, args.q),
            reason: "the dense reference forms pq x pq matrices; keep p q <= 4096",
        });
    }
    let cfg = VerifyConfig {
        p: args.p,
        q: args.q,
        n: args.n,
        seed: args.seed,
        samples: args.samples,
    };
    let report = verify_random_problem(&cfg)?;
    write_report(args, &report, out)?;
    match first_failure(&report) {
        None if report.passed => Ok(()),
        None => Err(CliError::VerificationFailed {
            what: "overall check",
            value: f64::NAN,
            tol: report.tol,
        }),
        Some((what, value, tol)) => Err(CliError::VerificationFailed { what, value, tol }),
    }
}

/// The first row above its tolerance (a NaN error counts as a failure).
fn first_failure(report: &VerifyReport) -> Option<(&'static str, f64, f64)> {
    report
        .rows()
        .into_iter()
        .find(|&(_, v, tol)| v.is_nan() || v > tol)
}

fn write_report(
    args: &VerifyDenseArgs,
    report: &VerifyReport,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "dense verification: p = {}, q = {}, n = {}, seed = {}, samples = {} (f64)",
        args.p, args.q, args.n, args.seed, args.samples
    )?;
    for (label, value, tol) in report.rows() {
        let mark = if value.is_nan() || value > tol {
            "  <-- above tolerance"
        } else {
            ""
        };
        if label == "sample covariance" {
            writeln!(
                out,
                "{label:<18} max relative error {value:.3e}  (Monte Carlo tolerance {tol:.3e}){mark}"
            )?;
        } else {
            writeln!(
                out,
                "{label:<18} max relative error {value:.3e}  (tolerance {tol:.1e}){mark}"
            )?;
        }
    }
    let pass = report.passed && first_failure(report).is_none();
    writeln!(out, "{}", if pass { "PASS" } else { "FAIL" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(p: usize, q: usize, n: usize, samples: usize) -> VerifyDenseArgs {
        VerifyDenseArgs {
            p,
            q,
            n,
            seed: 3,
            samples,
        }
    }

    #[test]
    fn small_problem_passes_and_prints_every_error() {
        let mut buf = Vec::new();
        run_dense(&args(6, 4, 50, 4000), &mut buf).expect("verification passes");
        let text = String::from_utf8(buf).expect("utf-8");
        for label in [
            "mean",
            "covariance",
            "log-determinant",
            "log-density",
            "KL divergence",
            "solve",
            "sample covariance",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(label)),
                "missing {label}: {text}"
            );
        }
        assert_eq!(text.lines().last(), Some("PASS"), "{text}");
    }

    #[test]
    fn oversized_dense_problem_is_rejected_as_a_value() {
        let mut buf = Vec::new();
        let err = run_dense(&args(100, 100, 500, 10), &mut buf).unwrap_err();
        assert!(
            matches!(err, CliError::InvalidOption { name: "p", .. }),
            "{err}"
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn failure_is_detected_from_the_report() {
        let report = VerifyReport {
            mean_rel: 1e-14,
            cov_rel: 1e-14,
            log_det_rel: 1e-14,
            log_density_rel: 1e-14,
            kl_rel: 2e-6,
            solve_rel: 1e-14,
            sample_cov_rel: 0.01,
            sample_cov_tol: 0.05,
            tol: 1e-9,
            passed: false,
        };
        assert_eq!(first_failure(&report), Some(("KL divergence", 2e-6, 1e-9)));
        let mut buf = Vec::new();
        write_report(&args(2, 2, 10, 10), &report, &mut buf).expect("write");
        let text = String::from_utf8(buf).expect("utf-8");
        assert_eq!(text.lines().last(), Some("FAIL"));
        assert!(text.contains("above tolerance"));
    }
}
