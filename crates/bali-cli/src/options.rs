//! The training options shared by `bali fit`, `bali uci` and `bali curves` (one clap group,
//! flattened into each), mapped onto the library's [`Overrides`]: an option given here
//! replaces the preset's value and is not searched by the options grid.

use bali::config::{Formulation, Preconditioner, WdScale};
use bali::validate as v;
use bali::{Overrides, Preset};
use bali_kernels::Activation;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::Args;

/// The method and the ALGORITHM.md section 5 options a user tunes (`bali fit`, `bali uci`).
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Training method (`map` with `--members 5`: a deep ensemble).
    #[arg(long, default_value = "bali",
          value_parser = PossibleValuesParser::new(Preset::NAMES).try_map(|s| s.parse::<Preset>()))]
    pub method: Preset,
    /// The options.
    #[command(flatten)]
    pub options: TrainOptions,
}

/// The ALGORITHM.md section 5 options a user tunes, without the method (`bali curves`
/// trains every method).
#[derive(Debug, Clone, Args)]
pub struct TrainOptions {
    /// Hidden layer widths, comma-separated (e.g. 50 or 50,50; default: the data set's).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true, value_parser = |s: &str| v::HIDDEN_WIDTH.parse(s))]
    pub hidden: Option<Vec<usize>>,
    /// Pseudo-target formulation (BALI): improved or paper (`paper` = `--method bali-paper`).
    #[arg(long, value_parser = PossibleValuesParser::new(["improved", "paper"])
          .try_map(|s| s.parse::<Formulation>()))]
    pub formulation: Option<Formulation>,
    /// Hidden preconditioner of the improved formulation: kfac or scalar.
    #[arg(long, value_parser = PossibleValuesParser::new(["kfac", "scalar"])
          .try_map(|s| s.parse::<Preconditioner>()))]
    pub preconditioner: Option<Preconditioner>,
    /// Step size alpha of the pseudo-targets (BALI), > 0.
    #[arg(long, value_parser = |s: &str| v::ALPHA.parse(s))]
    pub alpha: Option<f64>,
    /// Relative damping gamma of the curvature (BALI), >= 0.
    #[arg(long, value_parser = |s: &str| v::GAMMA.parse(s))]
    pub gamma: Option<f64>,
    /// Weight decay: of the hidden prior (BALI, >= 0) or the L2 decay of Adam (map).
    #[arg(long, value_parser = |s: &str| v::WD.parse(s))]
    pub wd: Option<f64>,
    /// What BALI's `--wd` is measured against: `absolute` (the proximal prior's shrinkage is
    /// `wd`; its penalty is curvature-weighted, `(wd / 2 alpha) tr(W D W^T)`) or `curvature`
    /// (the shrinkage is `alpha wd / (tr D / q)` every step: a ridge `(wd / 2) |W|^2` under
    /// the scalar preconditioner, whatever `alpha`, the data and the layer) or `evidence`
    /// (as curvature, with `wd` re-estimated from the whole-network Laplace evidence after
    /// steps 1-10 and every 10th step; full-batch regression only).
    #[arg(long, value_parser = PossibleValuesParser::new(["absolute", "curvature", "evidence"])
          .try_map(|s| s.parse::<WdScale>()))]
    pub wd_scale: Option<WdScale>,
    /// Automatic relevance determination of the inputs (BALI): `on` spreads the first
    /// layer's shrinkage over its inputs, each by MacKay's relevance `mean_k |W_k|^2 /
    /// (|W_i|^2 + 0.1 mean_k |W_k|^2)` (at most 10) of its weights, so the weights of
    /// irrelevant inputs are driven towards zero; `off` shrinks every input alike. Unset,
    /// `uci` and `fit` try `on` for the grid's winner and keep it where the carve gains more
    /// than 2 standard errors. Acts only where `--wd` > 0.
    #[arg(long, value_parser = PossibleValuesParser::new(["on", "off"]).map(|s| s == "on"))]
    pub ard: Option<bool>,
    /// Prior precision lambda of the hidden layers (BALI), > 0.
    #[arg(long, value_parser = |s: &str| v::LAMBDA.parse(s))]
    pub lambda: Option<f64>,
    /// EMA forgetting factor beta in [0, 1) (BALI; default 0 full batch, 1 - B/N mini-batch).
    #[arg(long, value_parser = |s: &str| v::BETA.parse(s))]
    pub beta: Option<f64>,
    /// Mini-batch size (default: full batch up to 3000 rows, then 1000 for BALI, 128 for map).
    #[arg(long, value_parser = |s: &str| v::BATCH_SIZE.parse(s))]
    pub batch_size: Option<usize>,
    /// Hidden activation: relu, tanh or gelu.
    #[arg(long, value_parser = PossibleValuesParser::new(["relu", "tanh", "gelu"])
          .try_map(|s| s.parse::<Activation>()))]
    pub activation: Option<Activation>,
    /// Threads: ensemble members train side by side (`uci`), and the linear-algebra kernels
    /// use a second thread on large products; results are bit-identical for any count
    /// [default: 1].
    #[arg(long, value_parser = |s: &str| v::THREADS.parse(s))]
    pub threads: Option<usize>,
}

impl TrainArgs {
    /// The options given, as the library's [`Overrides`].
    pub fn overrides(&self) -> Overrides {
        self.options.overrides()
    }

    /// The preset after the given options (`bali --formulation paper` is `bali-paper`);
    /// errors for an option the method does not read.
    pub fn preset(&self) -> Result<Preset, bali::BaliError> {
        self.method.resolve(&self.overrides())
    }

    /// Layer widths `[d_0, hidden.., 1]` (see [`TrainOptions::dims`]).
    pub fn dims(&self, inputs: usize, default_hidden: usize) -> Vec<usize> {
        self.options.dims(inputs, default_hidden)
    }

    /// The mini-batch size (see [`TrainOptions::batch`]).
    pub fn batch(&self, preset: Preset, rows: usize) -> Option<usize> {
        self.options.batch(preset, rows)
    }

    /// Dimension string `d_0-h_1-..-1` for messages.
    pub fn dims_label(dims: &[usize]) -> String {
        v::dims_label(dims)
    }
}

impl TrainOptions {
    /// The options given, as the library's [`Overrides`].
    pub fn overrides(&self) -> Overrides {
        Overrides {
            formulation: self.formulation,
            preconditioner: self.preconditioner,
            alpha: self.alpha,
            gamma: self.gamma,
            wd: self.wd,
            wd_scale: self.wd_scale,
            input_relevance: self.ard,
            lambda: self.lambda,
            beta: self.beta,
            batch_size: self.batch_size,
            activation: self.activation,
            threads: self.threads,
        }
    }

    /// Layer widths `[d_0, hidden.., 1]` for `inputs` features (`default_hidden` when
    /// `--hidden` is not given).
    pub fn dims(&self, inputs: usize, default_hidden: usize) -> Vec<usize> {
        let mut dims = vec![inputs];
        match &self.hidden {
            Some(h) => dims.extend(h),
            None => dims.push(default_hidden),
        }
        dims.push(1);
        dims
    }

    /// The mini-batch size for a training set of `rows` rows: `--batch-size` if given (full
    /// batch when it covers every row), else the preset's.
    pub fn batch(&self, preset: Preset, rows: usize) -> Option<usize> {
        match self.batch_size {
            Some(b) if b >= rows => None,
            Some(b) => Some(b),
            None => preset.batch_size(rows),
        }
    }
}

/// Predictive samples of a K-member mixture: the value given (a multiple of K, so that every
/// member draws S / K: nothing is rounded), or by default `default` rounded up to a multiple
/// of K.
pub fn samples_for(
    given: Option<usize>,
    members: usize,
    default: usize,
) -> Result<usize, bali::BaliError> {
    let members = v::MEMBERS.check(members)?;
    v::check_samples(
        given.unwrap_or(default.div_ceil(members) * members),
        members,
    )
}
