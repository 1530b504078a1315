//! The one validation layer of what users hand the library: the accepted range of every
//! option ([`Count`], [`Real`], and their constants below), the memory a run needs against
//! the machine's limit ([`memory_limit`], [`trainer_bytes`], [`protocol_bytes`]), and the
//! checks that data can support the protocol asked of it ([`check_target`],
//! [`check_carve`]).
//!
//! The frontends read the same constants: the `bali` command line builds its value parsers
//! from them (`Count::parse`, `Real::parse`), the C ABI and [`crate::BaliConfig::validate`]
//! call `check`. Every error names the option, the value and the accepted range; every check
//! runs before any work starts.

use std::fmt;
use std::path::Path;

use faer::MatRef;

use crate::data::DataError;
use crate::{BaliError, Result};

/// An integer option and its accepted closed range `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    /// The option's name as the command line spells it (without dashes).
    pub option: &'static str,
    /// Smallest accepted value.
    pub min: usize,
    /// Largest accepted value.
    pub max: usize,
}

impl Count {
    /// `value` if it lies in `min..=max`, else [`BaliError::OutOfRange`].
    pub fn check(&self, value: usize) -> Result<usize> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(BaliError::OutOfRange {
                option: self.option,
                value: value.to_string(),
                accepted: self.to_string(),
            })
        }
    }

    /// Parses a command-line value (for clap's `value_parser`): the message names the value
    /// and the range.
    pub fn parse(&self, text: &str) -> std::result::Result<usize, String> {
        let value: usize = text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a whole number in {self}"))?;
        self.check(value)
            .map_err(|_| format!("{value} is outside the accepted range {self}"))
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.min, self.max)
    }
}

/// A real option and its accepted interval; `open_min` / `open_max` exclude the bound, an
/// infinite bound means unbounded on that side (non-finite values are never accepted).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Real {
    /// The option's name as the command line spells it (without dashes).
    pub option: &'static str,
    /// Lower bound.
    pub min: f64,
    /// Whether the lower bound is excluded.
    pub open_min: bool,
    /// Upper bound (`f64::INFINITY`: none).
    pub max: f64,
    /// Whether the upper bound is excluded.
    pub open_max: bool,
}

impl Real {
    /// `value` if it is finite and inside the interval, else [`BaliError::OutOfRange`].
    pub fn check(&self, value: f64) -> Result<f64> {
        let above = if self.open_min {
            value > self.min
        } else {
            value >= self.min
        };
        let below = if self.open_max {
            value < self.max
        } else {
            value <= self.max
        };
        if value.is_finite() && above && below {
            Ok(value)
        } else {
            Err(BaliError::OutOfRange {
                option: self.option,
                value: show_real(value),
                accepted: self.to_string(),
            })
        }
    }

    /// Parses a command-line value (for clap's `value_parser`).
    pub fn parse(&self, text: &str) -> std::result::Result<f64, String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a number in {self}"))?;
        self.check(value).map_err(|_| {
            let shown = if value.is_finite() {
                show_real(value)
            } else {
                text.trim().to_string()
            };
            format!("{shown} is outside the accepted range {self}")
        })
    }
}

impl fmt::Display for Real {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lo = if self.open_min { '(' } else { '[' };
        let hi = if self.open_max || self.max.is_infinite() {
            ')'
        } else {
            ']'
        };
        let max = if self.max.is_infinite() {
            "inf".to_string()
        } else {
            show_real(self.max)
        };
        write!(f, "{lo}{}, {max}{hi} (finite)", show_real(self.min))
    }
}

/// A real for messages: plain in `[1e-4, 1e6)`, else in exponent form (`1e-320`, not 320
/// digits).
pub fn show_real(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-4..1e6).contains(&a) {
        v.to_string()
    } else {
        format!("{v:e}")
    }
}

const fn count(option: &'static str, min: usize, max: usize) -> Count {
    Count { option, min, max }
}

const fn real(option: &'static str, min: f64, open_min: bool, max: f64, open_max: bool) -> Real {
    Real {
        option,
        min,
        open_min,
        max,
        open_max,
    }
}

/// Ensemble members K.
pub const MEMBERS: Count = count("members", 1, 1_000);
/// Predictive samples S of a mixture (at least one per member: checked with the members by
/// [`check_samples`]).
pub const SAMPLES: Count = count("samples", 1, 1_000_000);
/// The iteration cap of the held-out search, or of one training run.
pub const MAX_ITERATIONS: Count = count("max-iterations", 1, 10_000_000);
/// Checkpoints without held-out improvement before a grid point's search stops.
pub const PATIENCE: Count = count("patience", 1, 10_000_000);
/// A hidden layer's width (the memory check bounds the whole network).
pub const HIDDEN_WIDTH: Count = count("hidden", 1, 1_000_000);
/// Hidden layers of a network.
pub const HIDDEN_LAYERS: Count = count("hidden", 1, 64);
/// Threads.
pub const THREADS: Count = count("threads", 1, 256);
/// Mini-batch size.
pub const BATCH_SIZE: Count = count("batch-size", 1, 100_000_000);
/// Splits of a benchmark (also at most the data set's: [`check_splits`]).
pub const SPLITS: Count = count("splits", 1, 1_000);
/// Seeds of a multi-seed run.
pub const SEEDS: Count = count("seeds", 1, 1_000);
/// Refresh interval of the amortized curvature.
pub const REFRESH_EVERY: Count = count("refresh-every", 1, 1_000_000);

// The real options are bounded where a larger value only overflows the algebra (a step size
// of 1e308 or a prior precision of 1e308 makes a factor indefinite in floating point, which
// would be reported as a linear-algebra failure instead of naming the option).

/// Step size alpha of the pseudo-targets.
pub const ALPHA: Real = real("alpha", 1e-12, false, 1e3, false);
/// Relative damping gamma.
pub const GAMMA: Real = real("gamma", 0.0, false, 1e6, false);
/// Absolute damping floor.
pub const FLOOR: Real = real("floor", 0.0, false, 1e6, false);
/// Weight decay.
pub const WD: Real = real("wd", 0.0, false, 1e8, false);
/// Prior precision lambda (hidden and output).
pub const LAMBDA: Real = real("lambda", 1e-12, false, 1e8, false);
/// EMA forgetting factor beta.
pub const BETA: Real = real("beta", 0.0, false, 1.0, true);
/// Standard errors of the one-standard-error rule of the grid's choice.
pub const PARSIMONY: Real = real("parsimony", 0.0, false, 10.0, false);
/// Fraction of the rows held out for testing.
pub const TEST_FRACTION: Real = real("test-fraction", 0.0, true, 1.0, true);
/// Probability of a central predictive interval.
pub const LEVEL: Real = real("level", 0.0, true, 1.0, true);
/// A learning rate (MAP, Adam).
pub const LEARNING_RATE: Real = real("lr", 0.0, true, 10.0, false);

/// Samples `s` for `members` members: [`SAMPLES`], and a multiple of the members (the
/// mixture is equal: each member draws `s / K`; nothing is rounded up).
pub fn check_samples(samples: usize, members: usize) -> Result<usize> {
    SAMPLES.check(samples)?;
    if samples.checked_rem(members) != Some(0) {
        let below = samples / members.max(1) * members;
        let examples = if below == 0 {
            format!("{members} or {}", 2 * members)
        } else {
            format!("{below} or {}", below + members)
        };
        return Err(BaliError::OutOfRange {
            option: "samples",
            value: samples.to_string(),
            accepted: format!(
                "a multiple of the {members} member(s) (each member draws S / K), such as {examples}"
            ),
        });
    }
    Ok(samples)
}

/// Splits asked of a data set with `available` splits: `1..=available`.
pub fn check_splits(splits: usize, available: usize) -> Result<usize> {
    count("splits", 1, available.min(SPLITS.max)).check(splits)
}

/// Hidden widths `hidden` ([`HIDDEN_LAYERS`] layers of [`HIDDEN_WIDTH`] units).
pub fn check_hidden(hidden: &[usize]) -> Result<()> {
    HIDDEN_LAYERS.check(hidden.len())?;
    for &h in hidden {
        HIDDEN_WIDTH.check(h)?;
    }
    Ok(())
}

/// Bytes of `f64` storage of one trainer of the network `dims = [d_0, .., d_L]` on
/// mini-batches of `batch` rows: per layer (`p = d_{l-1} + 1`, `q = d_l`) the posterior and
/// its statistics (`6 p^2 + 4 p q + 8 q^2`: row precision with its Cholesky factor and
/// inverse, prior, `S_xx`, scratch; mean, `S_xt`, prior mean, scratch; column covariance,
/// curvature EMA, damped factor, inverse, scratch), the batch buffers (`5 B (p + q)`:
/// activations, gradients, targets, residuals, inputs) and, for `exact_fisher_outputs = k`
/// (the exact Fisher of a k-class output), the stacked `k B x q` backward seeds. An estimate
/// within a small factor, to refuse requests that cannot fit before allocating them; saturates
/// instead of overflowing.
pub fn trainer_bytes(dims: &[usize], batch: usize, exact_fisher_outputs: usize) -> u64 {
    let mut doubles: u128 = 0;
    for w in dims.windows(2) {
        let (p, q) = (w[0] as u128 + 1, w[1] as u128);
        let b = batch as u128;
        doubles += 6 * p * p + 4 * p * q + 8 * q * q + 5 * b * (p + q);
        if exact_fisher_outputs > 1 {
            doubles += exact_fisher_outputs as u128 * b * q;
        }
    }
    u64::try_from(doubles.saturating_mul(8)).unwrap_or(u64::MAX)
}

/// Bytes of `f64` storage of one MAP network (Adam): weights, gradients and the two moment
/// estimates (`4 p q` per layer) and the batch buffers (`4 B (p + q)`); saturating.
pub fn map_bytes(dims: &[usize], batch: usize) -> u64 {
    let mut doubles: u128 = 0;
    for w in dims.windows(2) {
        let (p, q) = (w[0] as u128 + 1, w[1] as u128);
        doubles += 4 * p * q + 4 * batch as u128 * (p + q);
    }
    u64::try_from(doubles.saturating_mul(8)).unwrap_or(u64::MAX)
}

/// Bytes of the held-out protocol: `members + 1` trainers (the ensemble kept and the one
/// being trained), plus `samples` predictive samples of `eval_rows x outputs` (the validation
/// and test rows).
pub fn protocol_bytes(
    trainer: u64,
    members: usize,
    samples: usize,
    eval_rows: usize,
    outputs: usize,
) -> u64 {
    let samples = (samples as u128) * (eval_rows as u128) * (outputs as u128) * 8;
    let total = (trainer as u128) * (members as u128 + 1) + samples;
    u64::try_from(total).unwrap_or(u64::MAX)
}

/// The memory limit in bytes: `BALI_MEMORY_LIMIT` (bytes, or with a suffix `K`, `M`, `G`,
/// `T`, powers of 1024), else the smaller of the `MemAvailable` of `/proc/meminfo` and the
/// process's address-space limit (`ulimit -v`, from `/proc/self/limits`), else none. The
/// error names a malformed `BALI_MEMORY_LIMIT`.
pub fn memory_limit() -> Result<Option<(u64, &'static str)>> {
    if let Ok(text) = std::env::var("BALI_MEMORY_LIMIT") {
        return parse_bytes(&text)
            .map(|b| Some((b, "BALI_MEMORY_LIMIT")))
            .ok_or(BaliError::Environment {
                name: "BALI_MEMORY_LIMIT",
                value: text,
                accepted: "a byte count, optionally with K, M, G or T (powers of 1024)",
            });
    }
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|kb| kb.trim().parse::<u64>().ok())
        });
    let address_space = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find_map(|l| l.strip_prefix("Max address space"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|soft| soft.parse::<u64>().ok())
        });
    Ok(
        match (available.map(|kb| kb.saturating_mul(1024)), address_space) {
            (Some(a), Some(s)) if s < a => Some((s, "the address-space limit (ulimit -v)")),
            (Some(a), _) => Some((a, "available memory (/proc/meminfo)")),
            (None, Some(s)) => Some((s, "the address-space limit (ulimit -v)")),
            (None, None) => None,
        },
    )
}

/// `"123"`, `"4K"`, `"1.5G"` as bytes (powers of 1024); `None` if malformed or negative.
fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let (number, scale) = match t.char_indices().last()? {
        (i, 'K' | 'k') => (&t[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&t[..i], 1 << 20),
        (i, 'G' | 'g') => (&t[..i], 1 << 30),
        (i, 'T' | 't') => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = number.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0 && v * (scale as f64) < u64::MAX as f64)
        .then_some((v * scale as f64) as u64)
}

/// [`BaliError::Memory`] when `needed` bytes exceed [`memory_limit`].
pub fn check_memory(what: impl Into<String>, needed: u64) -> Result<()> {
    if let Some((limit, source)) = memory_limit()? {
        if needed > limit {
            return Err(BaliError::Memory {
                what: what.into(),
                needed,
                limit,
                limit_source: source,
            });
        }
    }
    Ok(())
}

/// `d_0-d_1-..-d_L` for messages.
pub fn dims_label(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

/// Bytes as a short human figure (`1.5 GiB`).
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Checks a regression target column `y` (`n x 1`, finite) before it is standardized: it
/// must vary by more than rounding (a constant target, or one whose spread is within 64
/// ulps of its magnitude or subnormal, has no scale to learn and would be reported as RMSE
/// 0), and its spread must be representable ([`DataError::Overflow`] for a variance that is
/// not finite). `what` names the data in the error.
pub fn check_target(y: MatRef<'_, f64>, what: &str, target: &str) -> Result<()> {
    let n = y.nrows();
    let values = (0..n).map(|i| y[(i, 0)]);
    let (lo, hi) = values
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if n == 0 {
        return Err(DataError::Degenerate {
            what: what.to_string(),
            column: target.to_string(),
            reason: "no rows".into(),
        }
        .into());
    }
    let magnitude = lo.abs().max(hi.abs());
    let spread = hi - lo;
    if !spread.is_finite() {
        return Err(DataError::ValueOverflow {
            what: what.to_string(),
            column: target.to_string(),
            reason: format!("its range [{lo:e}, {hi:e}] overflows a double; rescale the column"),
        }
        .into());
    }
    if spread == 0.0 || spread <= 64.0 * f64::EPSILON * magnitude || !spread.is_normal() {
        return Err(DataError::Degenerate {
            what: what.to_string(),
            column: target.to_string(),
            reason: if spread == 0.0 {
                format!("the target is constant ({lo}) on all {n} rows: nothing to learn")
            } else {
                format!(
                    "the target varies only by {spread:e} around {magnitude:e}, within rounding: nothing to learn"
                )
            },
        }
        .into());
    }
    Ok(())
}

/// Checks feature columns `x` (`n x d`, finite) before they are standardized: a column whose
/// spread overflows is an error; the names of constant columns are returned (they standardize
/// to 0 and carry no information: callers name them in their output).
pub fn check_features(x: MatRef<'_, f64>, what: &str, names: &[String]) -> Result<Vec<String>> {
    let mut constant = Vec::new();
    for j in 0..x.ncols() {
        let name = names
            .get(j)
            .cloned()
            .unwrap_or_else(|| format!("#{}", j + 1));
        let (lo, hi) = (0..x.nrows()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), i| {
            (a.min(x[(i, j)]), b.max(x[(i, j)]))
        });
        if x.nrows() > 0 && !(hi - lo).is_finite() {
            return Err(DataError::ValueOverflow {
                what: what.to_string(),
                column: name,
                reason: format!(
                    "its range [{lo:e}, {hi:e}] overflows a double when standardized; rescale the column"
                ),
            }
            .into());
        }
        if lo == hi {
            constant.push(name);
        }
    }
    Ok(constant)
}

/// Checks that a training set of `rows` rows supports the protocol's carve: with the
/// fraction `carve` to fit, both the fitting part and the validation part need at least
/// [`MIN_CARVE_ROWS`] rows. `what` names the data.
pub fn check_carve(rows: usize, carve: f64, what: &str) -> Result<()> {
    let fit = (carve * rows as f64).round() as usize;
    let valid = rows.saturating_sub(fit);
    if fit < MIN_CARVE_ROWS || valid < MIN_CARVE_ROWS {
        return Err(DataError::TooFewRows {
            what: what.to_string(),
            rows,
            needed: format!(
                "the {:.0}/{:.0} validation carve needs at least {MIN_CARVE_ROWS} rows in each part (it gets {fit} and {valid})",
                100.0 * carve,
                100.0 * (1.0 - carve)
            ),
        }
        .into());
    }
    Ok(())
}

/// Fewest rows of each part of a carve (fit, validation) and of a test set.
pub const MIN_CARVE_ROWS: usize = 5;

/// Checks a test set of `rows` rows: at least one row (an empty test split would be averaged
/// into a summary as 0).
pub fn check_test_rows(rows: usize, what: &str) -> Result<()> {
    if rows == 0 {
        return Err(DataError::TooFewRows {
            what: what.to_string(),
            rows,
            needed: "the test set is empty: nothing to evaluate".into(),
        }
        .into());
    }
    Ok(())
}

/// Checks, before any work, that the file `path` of `option` can be written: not a folder,
/// its folder exists, and a file can be created there (probed with a file created and
/// removed at once; an existing file is opened for writing without truncating it).
pub fn check_output_file(path: &Path, option: &'static str) -> Result<()> {
    let bad = |reason: String| BaliError::OutputPath {
        option,
        path: path.to_path_buf(),
        reason,
    };
    if path.is_dir() {
        return Err(bad("is a folder, not a file".into()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.exists() && !dir.is_dir() {
        return Err(bad(format!("{} exists and is not a folder", dir.display())));
    }
    if !dir.is_dir() {
        return Err(bad(format!("its folder {} does not exist", dir.display())));
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| bad(format!("cannot be written: {e}")))?;
        return Ok(());
    }
    probe_dir(dir).map_err(|e| bad(format!("cannot create a file in {}: {e}", dir.display())))
}

/// Checks, before any work, that files can be written in the folder `dir` of `option`
/// (creating it and its parents if absent, as the run would).
pub fn check_output_dir(dir: &Path, option: &'static str) -> Result<()> {
    let bad = |reason: String| BaliError::OutputPath {
        option,
        path: dir.to_path_buf(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(bad("exists and is not a folder".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot be created: {e}")))?;
    probe_dir(dir).map_err(|e| bad(format!("cannot be written: {e}")))
}

/// Creates and removes a probe file in `dir`.
fn probe_dir(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".bali-write-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn counts_and_reals_name_the_option_value_and_range() {
        assert_eq!(MEMBERS.check(5).unwrap(), 5);
        let e = MEMBERS.check(0).unwrap_err().to_string();
        assert!(
            e.contains("members") && e.contains("= 0") && e.contains("1..=1000"),
            "{e}"
        );
        assert!(MAX_ITERATIONS.parse("18446744073709551615").is_err());
        assert!(MAX_ITERATIONS.parse("-1").is_err());
        assert_eq!(MAX_ITERATIONS.parse(" 40 "), Ok(40));
        assert!(ALPHA.check(0.0).is_err() && ALPHA.check(f64::NAN).is_err());
        assert!(ALPHA.check(f64::INFINITY).is_err() && ALPHA.check(0.5).is_ok());
        assert!(ALPHA.check(1e-320).is_err() && LAMBDA.check(1e308).is_err());
        assert!(BETA.check(1.0).is_err() && BETA.check(0.0).is_ok());
        assert!(GAMMA.check(0.0).is_ok() && GAMMA.check(-1e-300).is_err());
        let e = LEVEL.parse("1").unwrap_err();
        assert!(e.contains("(0, 1)"), "{e}");
        assert!(TEST_FRACTION.parse("nan").is_err());
    }

    #[test]
    fn samples_below_members_are_refused_not_rounded() {
        assert!(check_samples(4, 5).is_err());
        assert!(check_samples(6, 4)
            .unwrap_err()
            .to_string()
            .contains("4 or 8"));
        assert!(check_samples(2, 4)
            .unwrap_err()
            .to_string()
            .contains("4 or 8"));
        assert_eq!(check_samples(5, 5).unwrap(), 5);
        assert_eq!(check_samples(100, 1).unwrap(), 100);
        assert!(check_splits(21, 20).is_err() && check_splits(20, 20).is_ok());
        assert!(check_splits(0, 20).is_err());
    }

    #[test]
    fn memory_estimate_refuses_a_huge_network_before_allocating() {
        let small = trainer_bytes(&[13, 50, 1], 455, 0);
        assert!(small > 8 * 50 * 50 && small < 10 << 20, "{small}");
        let huge = trainer_bytes(&[13, 1_000_000, 1], 455, 0);
        assert!(huge > 1 << 43, "{huge}");
        assert_eq!(
            trainer_bytes(&[usize::MAX, usize::MAX, 1], usize::MAX, 10),
            u64::MAX
        );
        assert_eq!(parse_bytes("2K"), Some(2048));
        assert_eq!(parse_bytes("1.5G"), Some(3 << 29));
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn degenerate_targets_and_overflowing_columns_are_refused() {
        let constant = Mat::from_fn(10, 1, |_, _| 3.5);
        let e = check_target(constant.as_ref(), "t.csv", "y").unwrap_err();
        assert!(e.to_string().contains("constant"), "{e}");
        let rounding = Mat::from_fn(10, 1, |i, _| 1e6 + (i % 2) as f64 * 1e-12);
        assert!(check_target(rounding.as_ref(), "t.csv", "y").is_err());
        let subnormal = Mat::from_fn(10, 1, |i, _| i as f64 * 1e-320);
        assert!(check_target(subnormal.as_ref(), "t.csv", "y").is_err());
        let huge = Mat::from_fn(10, 1, |i, _| if i == 0 { -1.7e308 } else { 1.7e308 });
        let e = check_target(huge.as_ref(), "t.csv", "y").unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
        let fine = Mat::from_fn(10, 1, |i, _| i as f64);
        assert!(check_target(fine.as_ref(), "t.csv", "y").is_ok());
        let x = Mat::from_fn(10, 2, |i, j| if j == 0 { 2.0 } else { i as f64 });
        let names = vec!["c".to_string(), "v".to_string()];
        assert_eq!(check_features(x.as_ref(), "t.csv", &names).unwrap(), ["c"]);
        assert!(check_carve(9, 0.8, "t").is_err() && check_carve(25, 0.8, "t").is_ok());
        assert!(check_test_rows(0, "t").is_err());
    }

    #[test]
    fn output_paths_are_checked_before_any_work() {
        let dir = std::env::temp_dir().join(format!("bali-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(check_output_file(&dir.join("m.safetensors"), "save").is_ok());
        let e = check_output_file(&dir, "save").unwrap_err().to_string();
        assert!(e.contains("--save") && e.contains("folder"), "{e}");
        let e = check_output_file(&dir.join("no/such/m.st"), "save").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let file = dir.join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(check_output_dir(&file, "out-dir").is_err());
        assert!(check_output_file(&file.join("m.st"), "save").is_err());
        assert!(check_output_dir(&dir.join("a/b"), "out-dir").is_ok());
        assert!(dir.join("a/b").is_dir() && std::fs::read(&file).unwrap() == b"x");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
