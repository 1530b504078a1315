//! Model files: fitted BALI models (one or an ensemble of K members) in the safetensors format,
//! which the ML ecosystem reads from Python (`safetensors.numpy.load_file`).
//!
//! Tensors (f64, little-endian, row-major as safetensors stores them), for member `m` and
//! layer `l` (`p_l x q_l`, bias last row):
//!
//! | name | shape | what |
//! |---|---|---|
//! | `member{m}.layer{l}.mean` | p x q | posterior mean `M_l` |
//! | `member{m}.layer{l}.row_precision.chol` | p x p | `L` of `Lambda_l = L L^T` |
//! | `member{m}.layer{l}.row_precision.diag` | p | `diag(Lambda_l)` |
//! | `member{m}.layer{l}.col_cov.chol` | q x q | `R` of `Sigma_l = R R^T` |
//! | `member{m}.layer{l}.col_cov.diag` | q | `diag(Sigma_l)` |
//! | `input.mean`, `input.std` | d_0 | input standardization (if any) |
//! | `target.mean`, `target.std` | d_L | target standardization (if any) |
//! | `noise` | 1 | predictive noise variance, standardized units (if set) |
//!
//! A file saved with the training state (`training` in the metadata not null) also holds,
//! per member `m` and layer `l`, what [`Trainer::resume`] needs to continue exactly:
//!
//! | name | shape | what |
//! |---|---|---|
//! | `member{m}.train.layer{l}.sxx` | p x p | `S_hat_xx` (lower triangle valid) |
//! | `member{m}.train.layer{l}.sxt` | p x q | `S_hat_xt` |
//! | `member{m}.train.layer{l}.srr` | q x q | `S_hat_rr` (lower triangle valid) |
//! | `member{m}.train.layer{l}.n_hat` | 1 | `n_hat` |
//! | `member{m}.train.layer{l}.c_hat` | q x q | curvature EMA (`Improved` hidden layers) |
//! | `member{m}.train.layer{l}.floor_abs` | 1 | frozen damping floor (once set) |
//! | `member{m}.train.order` | N (U64) | the batch sampler's permutation of the rows |
//!
//! and, in the metadata's `training` list (one entry per member), the integers: `n_train`,
//! `step`, per layer `step` and `curvature_step` (null without curvature), the sampler's
//! `cursor` and `epoch`, and its ChaCha12 generator (`seed` as 64 hex digits, `stream`,
//! `word_pos` as a decimal string: it is a 128-bit count).
//!
//! The rest is JSON in the header's metadata under the key `bali`: `format` (`"bali-model"`),
//! `version` ([`FORMAT_VERSION`]), `dtype`, `dims`, `activation`, `likelihood`, `members`, the
//! training options (`config`, see [`config_to_json`]) and the input and target column names.
//! Every member shares the architecture, likelihood, standardization and noise.
//!
//! Loading checks everything it reads and says what is wrong and where (the file, the tensor,
//! the expected and found dtype or shape); [`save`] writes a temporary file beside the target
//! and renames it, so a file is never left half-written.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bali_autodiff::Mlp;
use bali_kernels::Activation;
use bali_mn::{FactorId, JitterPolicy, KronFactor, MatrixNormal};
use faer::Mat;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{json, Value};

use crate::config::{BaliConfig, Fisher, Formulation, Preconditioner, SigmaSpec, WdScale};
use crate::data::Standardizer;
use crate::error::{BaliError, Result};
use crate::likelihood::Likelihood;
use crate::model::BayesianMlp;
use crate::train::{
    CurvatureState, LayerTrainingState, RngState, SamplerState, Trainer, TrainerState,
};

/// The value of `format` in the metadata.
pub const FORMAT_NAME: &str = "bali-model";
/// The version of the layout this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// What a model file holds: the members and what was known about their training.
#[derive(Clone, Debug)]
pub struct SavedModel {
    /// The fitted members (one, or an ensemble).
    pub members: Vec<BayesianMlp<f64>>,
    /// The options they were trained with, if known.
    pub config: Option<BaliConfig>,
    /// Names of the input columns (length d_0), if known.
    pub input_names: Option<Vec<String>>,
    /// Name of the target column, if known.
    pub target_name: Option<String>,
    /// Each member's training state, to resume training with [`Trainer::resume`] (one per
    /// member, in order), if saved.
    pub training: Option<Vec<TrainerState<f64>>>,
}

impl SavedModel {
    /// The members with their options and column names unknown, without training state.
    pub fn of_members(members: Vec<BayesianMlp<f64>>) -> Self {
        SavedModel {
            members,
            config: None,
            input_names: None,
            target_name: None,
            training: None,
        }
    }

    /// Trainers that continue each member's training where it was saved.
    ///
    /// Errors: [`BaliError::NotFitted`] when the file holds no training state or no options,
    /// and what [`Trainer::resume`] returns.
    pub fn into_trainers(self) -> Result<Vec<Trainer<f64>>> {
        let (Some(states), Some(config)) = (self.training, self.config) else {
            return Err(BaliError::NotFitted {
                what: "training state (save it with the trainer's state to resume)",
            });
        };
        self.members
            .into_iter()
            .zip(states)
            .map(|(model, state)| Trainer::resume(model, config.clone(), state))
            .collect()
    }
}

/// Everything that can be wrong with a model file, with the file and the place in it.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// Reading, writing or renaming the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Not a safetensors file, or a truncated or corrupted one.
    #[error("{path}: not a readable safetensors file: {reason}")]
    Container {
        /// The file.
        path: PathBuf,
        /// The safetensors reader's message.
        reason: String,
    },
    /// The `bali` metadata is missing, is not JSON, or lacks or mistypes a field.
    #[error("{path}: metadata: {reason}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A version this build does not read.
    #[error("{path}: format version {found}, this build reads version {supported}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The file's version.
        found: u64,
        /// The version read here.
        supported: u64,
    },
    /// A tensor the metadata implies is absent.
    #[error("{path}: tensor {tensor} is missing")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
    },
    /// A tensor of another dtype than f64.
    #[error("{path}: tensor {tensor} has dtype {found}, expected {expected}")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// Its dtype.
        found: String,
        /// The dtype this tensor must have.
        expected: &'static str,
    },
    /// A tensor whose shape does not fit the architecture in the metadata.
    #[error("{path}: tensor {tensor} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The shape the metadata implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// The safetensors writer refused the tensors (not expected: they are built consistently).
    #[error("writing a model file: {reason}")]
    Write {
        /// The writer's message.
        reason: String,
    },
    /// A tensor whose values are not a valid posterior or standardization.
    #[error("{path}: tensor {tensor}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// Why it is rejected.
        reason: String,
    },
}

/// The training options as JSON (every field of [`BaliConfig`]).
pub fn config_to_json(c: &BaliConfig) -> Value {
    let sigma = |s: SigmaSpec| match s {
        SigmaSpec::Fixed { s2 } => json!({ "fixed": { "s2": s2 } }),
        SigmaSpec::Learned { nu0_extra, s0_sq } => {
            json!({ "learned": { "nu0_extra": nu0_extra, "s0_sq": s0_sq } })
        }
    };
    json!({
        "formulation": match c.formulation {
            Formulation::Paper => "paper",
            Formulation::Improved => "improved",
        },
        "preconditioner": match c.preconditioner {
            Preconditioner::Kfac => "kfac",
            Preconditioner::Scalar => "scalar",
        },
        "alpha": c.alpha,
        "alpha_hidden": c.alpha_hidden,
        "gamma": c.gamma,
        "floor": c.floor,
        "beta": c.beta,
        "lambda": c.lambda,
        "lambda_out": c.lambda_out,
        "wd": c.wd,
        "wd_scale": c.wd_scale.name(),
        "input_relevance": c.input_relevance,
        "hidden_sigma": sigma(c.hidden_sigma),
        "output_sigma": sigma(c.output_sigma),
        "batch_size": c.batch_size,
        "activation": activation_name(c.activation),
        "threads": c.threads,
        "refresh_every": c.refresh_every,
        "jitter": { "max_tries": c.jitter.max_tries, "initial_relative": c.jitter.initial_relative },
        "likelihood": c.likelihood.name(),
        "fisher": c.fisher.name(),
    })
}

/// The options from [`config_to_json`]'s JSON; the error names the field. The result is
/// validated ([`BaliConfig::validate`]).
pub fn config_from_json(v: &Value) -> std::result::Result<BaliConfig, String> {
    let field = |name: &str| {
        v.get(name)
            .ok_or_else(|| format!("config.{name} is missing"))
    };
    let num = |name: &str| {
        field(name)?
            .as_f64()
            .ok_or_else(|| format!("config.{name} is not a number"))
    };
    let opt_num = |name: &str| match field(name)? {
        Value::Null => Ok(None),
        x => x
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("config.{name} is not a number or null")),
    };
    let text = |name: &str| {
        field(name)?
            .as_str()
            .ok_or_else(|| format!("config.{name} is not a string"))
    };
    let count = |name: &str| {
        field(name)?
            .as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .ok_or_else(|| format!("config.{name} is not a non-negative integer"))
    };
    let sigma = |name: &str| -> std::result::Result<SigmaSpec, String> {
        let s = field(name)?;
        if let Some(f) = s.get("fixed") {
            let s2 = f.get("s2").and_then(Value::as_f64);
            return s2
                .map(|s2| SigmaSpec::Fixed { s2 })
                .ok_or_else(|| format!("config.{name}.fixed.s2 is not a number"));
        }
        if let Some(l) = s.get("learned") {
            let nu = l.get("nu0_extra").and_then(Value::as_f64);
            let s0 = l.get("s0_sq").and_then(Value::as_f64);
            if let (Some(nu0_extra), Some(s0_sq)) = (nu, s0) {
                return Ok(SigmaSpec::Learned { nu0_extra, s0_sq });
            }
            return Err(format!(
                "config.{name}.learned needs numbers nu0_extra and s0_sq"
            ));
        }
        Err(format!("config.{name} is neither fixed nor learned"))
    };
    let batch_size = match field("batch_size")? {
        Value::Null => None,
        x => Some(
            x.as_u64()
                .and_then(|u| usize::try_from(u).ok())
                .ok_or_else(|| "config.batch_size is not an integer or null".to_string())?,
        ),
    };
    let jitter = field("jitter")?;
    let max_tries = jitter
        .get("max_tries")
        .and_then(Value::as_u64)
        .and_then(|u| u32::try_from(u).ok())
        .ok_or_else(|| "config.jitter.max_tries is not an integer".to_string())?;
    let initial_relative = jitter
        .get("initial_relative")
        .and_then(Value::as_f64)
        .ok_or_else(|| "config.jitter.initial_relative is not a number".to_string())?;
    let config = BaliConfig {
        formulation: text("formulation")?.parse()?,
        preconditioner: text("preconditioner")?.parse()?,
        alpha: num("alpha")?,
        alpha_hidden: opt_num("alpha_hidden")?,
        gamma: num("gamma")?,
        floor: num("floor")?,
        beta: opt_num("beta")?,
        lambda: num("lambda")?,
        lambda_out: num("lambda_out")?,
        wd: num("wd")?,
        // Absent from files written before the option existed: the absolute scale they used.
        wd_scale: match v.get("wd_scale") {
            None => WdScale::Absolute,
            Some(_) => text("wd_scale")?.parse()?,
        },
        // Absent from files written before the option existed: no relevance determination.
        input_relevance: match v.get("input_relevance") {
            None => false,
            Some(x) => x
                .as_bool()
                .ok_or_else(|| "config.input_relevance is not a boolean".to_string())?,
        },
        hidden_sigma: sigma("hidden_sigma")?,
        output_sigma: sigma("output_sigma")?,
        batch_size,
        activation: text("activation")?.parse()?,
        threads: count("threads")?,
        refresh_every: count("refresh_every")?,
        jitter: JitterPolicy {
            max_tries,
            initial_relative,
        },
        likelihood: text("likelihood")?.parse()?,
        // Absent from files written before the option existed: the exact Fisher they used.
        fisher: match v.get("fisher") {
            None => Fisher::Exact,
            Some(_) => text("fisher")?.parse()?,
        },
    };
    config.validate().map_err(|e| format!("config: {e}"))?;
    Ok(config)
}

fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Relu => "relu",
        Activation::Tanh => "tanh",
        Activation::Gelu => "gelu",
        Activation::Sigmoid => "sigmoid",
        Activation::Identity => "identity",
    }
}

/// Row-major little-endian bytes of `m` (rows x cols).
fn matrix_bytes(m: &Mat<f64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            out.extend_from_slice(&m[(i, j)].to_le_bytes());
        }
    }
    out
}

fn vector_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The file's bytes (see the module documentation for the layout).
///
/// Errors: [`BaliError::InvalidOption`] for no members, or members that differ in
/// architecture, likelihood, standardization or noise.
pub fn to_bytes(model: &SavedModel) -> Result<Vec<u8>> {
    let Some(first) = model.members.first() else {
        return Err(BaliError::InvalidOption {
            name: "members",
            value: "0".into(),
            reason: "a model file holds at least one member",
        });
    };
    for m in &model.members[1..] {
        let same = m.mlp().dims == first.mlp().dims
            && m.mlp().activation == first.mlp().activation
            && m.likelihood() == first.likelihood()
            && m.input_scaler() == first.input_scaler()
            && m.target_scaler() == first.target_scaler()
            && m.noise() == first.noise();
        if !same {
            return Err(BaliError::InvalidOption {
                name: "members",
                value: "differ".into(),
                reason: "every member of a model file shares the architecture, likelihood, standardization and noise",
            });
        }
    }
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (m, member) in model.members.iter().enumerate() {
        for (l, post) in member.layers().iter().enumerate() {
            let (p, q) = (post.p(), post.q());
            let name = |what: &str| format!("member{m}.layer{l}.{what}");
            tensors.push((name("mean"), vec![p, q], matrix_bytes(&post.mean)));
            tensors.push((
                name("row_precision.chol"),
                vec![p, p],
                matrix_bytes(&post.row_precision.chol().to_owned()),
            ));
            tensors.push((
                name("row_precision.diag"),
                vec![p],
                vector_bytes(post.row_precision.diagonal()),
            ));
            tensors.push((
                name("col_cov.chol"),
                vec![q, q],
                matrix_bytes(&post.col_cov.chol().to_owned()),
            ));
            tensors.push((
                name("col_cov.diag"),
                vec![q],
                vector_bytes(post.col_cov.diagonal()),
            ));
        }
    }
    let mut u64_tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let training = match &model.training {
        None => Value::Null,
        Some(states) => {
            if states.len() != model.members.len() || model.config.is_none() {
                return Err(BaliError::InvalidOption {
                    name: "training state",
                    value: format!("{} states", states.len()),
                    reason: "one training state per member, saved with the options",
                });
            }
            let mut entries = Vec::with_capacity(states.len());
            for (m, state) in states.iter().enumerate() {
                let mut layers = Vec::with_capacity(state.layers.len());
                for (l, layer) in state.layers.iter().enumerate() {
                    let name = |what: &str| format!("member{m}.train.layer{l}.{what}");
                    for (what, mat) in [
                        ("sxx", &layer.sxx),
                        ("sxt", &layer.sxt),
                        ("srr", &layer.srr),
                    ] {
                        tensors.push((
                            name(what),
                            vec![mat.nrows(), mat.ncols()],
                            matrix_bytes(mat),
                        ));
                    }
                    tensors.push((name("n_hat"), vec![1], vector_bytes(&[layer.n_hat])));
                    if let Some(c) = &layer.curvature {
                        tensors.push((
                            name("c_hat"),
                            vec![c.c_hat.nrows(), c.c_hat.ncols()],
                            matrix_bytes(&c.c_hat),
                        ));
                        if let Some(f) = c.floor_abs {
                            tensors.push((name("floor_abs"), vec![1], vector_bytes(&[f])));
                        }
                    }
                    layers.push(json!({
                        "step": layer.step,
                        "curvature_step": layer.curvature.as_ref().map(|c| c.step),
                        "has_floor_abs": layer.curvature.as_ref().is_some_and(|c| c.floor_abs.is_some()),
                    }));
                }
                let order = &state.sampler.order;
                u64_tensors.push((
                    format!("member{m}.train.order"),
                    vec![order.len()],
                    order
                        .iter()
                        .flat_map(|&i| (i as u64).to_le_bytes())
                        .collect(),
                ));
                let rng = &state.sampler.rng;
                entries.push(json!({
                    "n_train": state.n_train,
                    "step": state.step,
                    "layers": layers,
                    "cursor": state.sampler.cursor,
                    "epoch": state.sampler.epoch,
                    "rng": {
                        "seed": rng.seed.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                        "stream": rng.stream,
                        "word_pos": rng.word_pos.to_string(),
                    },
                }));
            }
            Value::Array(entries)
        }
    };
    for (prefix, scaler) in [
        ("input", first.input_scaler()),
        ("target", first.target_scaler()),
    ] {
        if let Some(s) = scaler {
            tensors.push((
                format!("{prefix}.mean"),
                vec![s.ncols()],
                vector_bytes(s.mean()),
            ));
            tensors.push((
                format!("{prefix}.std"),
                vec![s.ncols()],
                vector_bytes(s.std()),
            ));
        }
    }
    if let Some(noise) = first.noise() {
        tensors.push(("noise".into(), vec![1], vector_bytes(&[noise])));
    }
    let meta = json!({
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "dtype": "f64",
        "dims": first.mlp().dims,
        "activation": activation_name(first.mlp().activation),
        "likelihood": first.likelihood().name(),
        "members": model.members.len(),
        "has_input_scaler": first.input_scaler().is_some(),
        "has_target_scaler": first.target_scaler().is_some(),
        "has_noise": first.noise().is_some(),
        "config": model.config.as_ref().map(config_to_json),
        "input_names": model.input_names,
        "target_name": model.target_name,
        "training": training,
    });
    let views = tensors
        .iter()
        .map(|(name, shape, data)| (Dtype::F64, name, shape, data))
        .chain(
            u64_tensors
                .iter()
                .map(|(name, shape, data)| (Dtype::U64, name, shape, data)),
        )
        .map(|(dtype, name, shape, data)| {
            TensorView::new(dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| ModelFileError::Write {
                    reason: format!("tensor {name}: {e}"),
                })
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let metadata = HashMap::from([("bali".to_string(), meta.to_string())]);
    Ok(
        safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| {
            ModelFileError::Write {
                reason: e.to_string(),
            }
        })?,
    )
}

/// Writes the model to `path` atomically: the bytes go to a temporary file in the same folder,
/// which is synced and renamed over `path` (an interrupted save leaves any old file intact).
pub fn save(path: &Path, model: &SavedModel) -> Result<()> {
    let bytes = to_bytes(model)?;
    let io = |source| ModelFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e).into());
    }
    Ok(())
}

/// Reads a model file.
pub fn load(path: &Path) -> Result<SavedModel> {
    let bytes = std::fs::read(path).map_err(|source| ModelFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes, path)
}

/// Parses a model file's bytes; `path` names the source in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<SavedModel> {
    Ok(parse(bytes, path)?)
}

fn parse(bytes: &[u8], path: &Path) -> std::result::Result<SavedModel, ModelFileError> {
    let path_buf = || path.to_path_buf();
    let container = |e: safetensors::SafeTensorError| ModelFileError::Container {
        path: path_buf(),
        reason: e.to_string(),
    };
    let meta_err = |reason: String| ModelFileError::Metadata {
        path: path_buf(),
        reason,
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(container)?;
    let tensors = SafeTensors::deserialize(bytes).map_err(container)?;
    let text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("bali"))
        .ok_or_else(|| meta_err("no `bali` entry (not a BALI model file)".into()))?;
    let meta: Value = serde_json::from_str(text).map_err(|e| meta_err(format!("not JSON: {e}")))?;
    let get = |name: &str| {
        meta.get(name)
            .ok_or_else(|| meta_err(format!("`{name}` is missing")))
    };
    if get("format")?.as_str() != Some(FORMAT_NAME) {
        return Err(meta_err(format!("`format` is not \"{FORMAT_NAME}\"")));
    }
    let version = get("version")?
        .as_u64()
        .ok_or_else(|| meta_err("`version` is not an integer".into()))?;
    if version != FORMAT_VERSION {
        return Err(ModelFileError::Version {
            path: path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if get("dtype")?.as_str() != Some("f64") {
        return Err(meta_err(format!(
            "`dtype` is {}, this build reads f64",
            get("dtype")?
        )));
    }
    let dims: Vec<usize> = get("dims")?
        .as_array()
        .and_then(|a| {
            a.iter()
                .map(|d| d.as_u64().and_then(|u| usize::try_from(u).ok()))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| meta_err("`dims` is not a list of widths".into()))?;
    let activation: Activation = get("activation")?
        .as_str()
        .ok_or_else(|| meta_err("`activation` is not a string".into()))?
        .parse()
        .map_err(meta_err)?;
    let likelihood: Likelihood = get("likelihood")?
        .as_str()
        .ok_or_else(|| meta_err("`likelihood` is not a string".into()))?
        .parse()
        .map_err(meta_err)?;
    let members = get("members")?
        .as_u64()
        .and_then(|u| usize::try_from(u).ok())
        .filter(|&k| k >= 1)
        .ok_or_else(|| meta_err("`members` is not an integer >= 1".into()))?;
    let flag = |name: &str| {
        get(name)?
            .as_bool()
            .ok_or_else(|| meta_err(format!("`{name}` is not true or false")))
    };
    let mlp = Mlp::new(dims.clone(), activation)
        .map_err(|e| meta_err(format!("`dims`/`activation`: {e}")))?;
    if likelihood == Likelihood::Categorical && mlp.num_outputs() < 2 {
        return Err(meta_err(format!(
            "a categorical model needs one output per class, at least 2; `dims` ends in {}",
            mlp.num_outputs()
        )));
    }
    // Every tensor the metadata implies, with its dtype and shape checked.
    let read = |name: &str, shape: &[usize]| -> std::result::Result<Vec<f64>, ModelFileError> {
        let view = tensors
            .tensor(name)
            .map_err(|_| ModelFileError::MissingTensor {
                path: path_buf(),
                tensor: name.into(),
            })?;
        if view.dtype() != Dtype::F64 {
            return Err(ModelFileError::Dtype {
                path: path_buf(),
                tensor: name.into(),
                found: format!("{:?}", view.dtype()),
                expected: "F64",
            });
        }
        if view.shape() != shape {
            return Err(ModelFileError::Shape {
                path: path_buf(),
                tensor: name.into(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let values: Vec<f64> = view
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(ModelFileError::Invalid {
                path: path_buf(),
                tensor: name.into(),
                reason: format!("entry {i} is {} (not finite)", values[i]),
            });
        }
        Ok(values)
    };
    let matrix = |name: &str, rows: usize, cols: usize| {
        read(name, &[rows, cols]).map(|v| Mat::from_fn(rows, cols, |i, j| v[i * cols + j]))
    };
    let invalid = |tensor: String, e: &dyn std::fmt::Display| ModelFileError::Invalid {
        path: path_buf(),
        tensor,
        reason: e.to_string(),
    };
    let scaler = |prefix: &str, present: bool, width: usize| {
        if !present {
            return Ok(None);
        }
        let mean = read(&format!("{prefix}.mean"), &[width])?;
        let std = read(&format!("{prefix}.std"), &[width])?;
        Standardizer::from_parts(mean, std)
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    format!("{prefix}.std"),
                    &"standard deviations must be finite and > 0",
                )
            })
    };
    let input_scaler = scaler("input", flag("has_input_scaler")?, dims[0])?;
    let target_scaler = scaler("target", flag("has_target_scaler")?, mlp.num_outputs())?;
    let noise = if flag("has_noise")? {
        Some(read("noise", &[1])?[0])
    } else {
        None
    };
    let mut out = Vec::with_capacity(members);
    for m in 0..members {
        let mut layers = Vec::with_capacity(mlp.num_layers());
        for l in 0..mlp.num_layers() {
            let (p, q) = mlp.layer_shape(l);
            let name = |what: &str| format!("member{m}.layer{l}.{what}");
            let mean = matrix(&name("mean"), p, q)?;
            let factor = |what: &str, n: usize, id: FactorId| {
                let chol = matrix(&name(&format!("{what}.chol")), n, n)?;
                let diag = read(&name(&format!("{what}.diag")), &[n])?;
                KronFactor::from_parts(chol, diag, id)
                    .map_err(|e| invalid(name(&format!("{what}.chol")), &e))
            };
            let row = factor("row_precision", p, FactorId::row_precision(Some(l)))?;
            let col = factor("col_cov", q, FactorId::col_cov(Some(l)))?;
            layers.push(MatrixNormal::new(mean, row, col).map_err(|e| invalid(name("mean"), &e))?);
        }
        let mut model = BayesianMlp::from_posteriors(mlp.clone(), likelihood, layers)
            .map_err(|e| meta_err(e.to_string()))?;
        model.set_standardization(input_scaler.clone(), target_scaler.clone());
        if let Some(sigma2) = noise {
            model
                .set_noise(sigma2)
                .map_err(|e| invalid("noise".into(), &e))?;
        }
        out.push(model);
    }
    let config = match get("config")? {
        Value::Null => None,
        c => Some(config_from_json(c).map_err(meta_err)?),
    };
    let names =
        |v: &Value, what: &str| -> std::result::Result<Option<Vec<String>>, ModelFileError> {
            match v {
                Value::Null => Ok(None),
                Value::Array(a) => a
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .map(Some)
                    .ok_or_else(|| meta_err(format!("`{what}` is not a list of strings"))),
                _ => Err(meta_err(format!("`{what}` is not a list of strings"))),
            }
        };
    let input_names = names(
        meta.get("input_names").unwrap_or(&Value::Null),
        "input_names",
    )?;
    if input_names.as_ref().is_some_and(|n| n.len() != dims[0]) {
        return Err(meta_err(format!(
            "`input_names` has not d_0 = {} names",
            dims[0]
        )));
    }
    if let Some(names) = &input_names {
        if let Some((j, name)) = names
            .iter()
            .enumerate()
            .find(|(j, n)| names[..*j].contains(n))
        {
            return Err(meta_err(format!(
                "`input_names` names {name:?} twice (input {}): the columns would be ambiguous",
                j + 1
            )));
        }
    }
    let target_name = match meta.get("target_name").unwrap_or(&Value::Null) {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        _ => return Err(meta_err("`target_name` is not a string".into())),
    };
    let training = match meta.get("training").unwrap_or(&Value::Null) {
        Value::Null => None,
        Value::Array(entries) => {
            if entries.len() != members || config.is_none() {
                return Err(meta_err(format!(
                    "`training` has {} entries for {members} members (and needs `config`)",
                    entries.len()
                )));
            }
            let mut states = Vec::with_capacity(members);
            for (m, entry) in entries.iter().enumerate() {
                let field = |v: &Value, name: &str| -> std::result::Result<u64, ModelFileError> {
                    v.get(name).and_then(Value::as_u64).ok_or_else(|| {
                        meta_err(format!("`training[{m}].{name}` is not an unsigned integer"))
                    })
                };
                let index = |v: &Value, name: &str| {
                    field(v, name).and_then(|u| {
                        usize::try_from(u).map_err(|_| {
                            meta_err(format!("`training[{m}].{name}` does not fit this machine"))
                        })
                    })
                };
                let n_train = index(entry, "n_train")?;
                let layer_meta = entry
                    .get("layers")
                    .and_then(Value::as_array)
                    .filter(|a| a.len() == mlp.num_layers())
                    .ok_or_else(|| {
                        meta_err(format!("`training[{m}].layers` is not one entry per layer"))
                    })?;
                let mut layers = Vec::with_capacity(layer_meta.len());
                for (l, lm) in layer_meta.iter().enumerate() {
                    let (p, q) = mlp.layer_shape(l);
                    let name = |what: &str| format!("member{m}.train.layer{l}.{what}");
                    let curvature = match lm.get("curvature_step") {
                        None | Some(Value::Null) => None,
                        Some(v) => {
                            let step = v.as_u64().ok_or_else(|| {
                                meta_err(format!(
                                    "`training[{m}].layers[{l}].curvature_step` is not an unsigned integer"
                                ))
                            })?;
                            let floor_abs =
                                if lm.get("has_floor_abs").and_then(Value::as_bool) == Some(true) {
                                    Some(read(&name("floor_abs"), &[1])?[0])
                                } else {
                                    None
                                };
                            Some(CurvatureState {
                                c_hat: matrix(&name("c_hat"), q, q)?,
                                step,
                                floor_abs,
                            })
                        }
                    };
                    layers.push(LayerTrainingState {
                        sxx: matrix(&name("sxx"), p, p)?,
                        sxt: matrix(&name("sxt"), p, q)?,
                        srr: matrix(&name("srr"), q, q)?,
                        n_hat: read(&name("n_hat"), &[1])?[0],
                        step: field(lm, "step")?,
                        curvature,
                    });
                }
                let order_name = format!("member{m}.train.order");
                let view =
                    tensors
                        .tensor(&order_name)
                        .map_err(|_| ModelFileError::MissingTensor {
                            path: path_buf(),
                            tensor: order_name.clone(),
                        })?;
                if view.dtype() != Dtype::U64 {
                    return Err(ModelFileError::Dtype {
                        path: path_buf(),
                        tensor: order_name,
                        found: format!("{:?}", view.dtype()),
                        expected: "U64",
                    });
                }
                if view.shape() != [n_train] {
                    return Err(ModelFileError::Shape {
                        path: path_buf(),
                        tensor: order_name,
                        expected: vec![n_train],
                        found: view.shape().to_vec(),
                    });
                }
                let order: Vec<usize> = view
                    .data()
                    .chunks_exact(8)
                    .map(|c| {
                        usize::try_from(u64::from_le_bytes([
                            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                        ]))
                        .unwrap_or(usize::MAX)
                    })
                    .collect();
                let mut seen = vec![false; n_train];
                if let Some(i) = order
                    .iter()
                    .position(|&r| r >= n_train || std::mem::replace(&mut seen[r], true))
                {
                    return Err(ModelFileError::Invalid {
                        path: path_buf(),
                        tensor: order_name,
                        reason: format!(
                            "entry {i} ({}) repeats a row or is not below n_train = {n_train}: not a permutation",
                            order[i]
                        ),
                    });
                }
                let rng = entry
                    .get("rng")
                    .ok_or_else(|| meta_err(format!("`training[{m}].rng` is missing")))?;
                let seed_hex = rng.get("seed").and_then(Value::as_str).unwrap_or("");
                let seed = parse_seed(seed_hex).ok_or_else(|| {
                    meta_err(format!("`training[{m}].rng.seed` is not 64 hex digits"))
                })?;
                let word_pos = rng
                    .get("word_pos")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse::<u128>().ok())
                    .ok_or_else(|| {
                        meta_err(format!(
                            "`training[{m}].rng.word_pos` is not a decimal string"
                        ))
                    })?;
                states.push(TrainerState {
                    n_train,
                    step: field(entry, "step")?,
                    layers,
                    sampler: SamplerState {
                        order,
                        cursor: index(entry, "cursor")?,
                        epoch: index(entry, "epoch")?,
                        rng: RngState {
                            seed,
                            stream: field(rng, "stream")?,
                            word_pos,
                        },
                    },
                });
            }
            Some(states)
        }
        _ => return Err(meta_err("`training` is not a list".into())),
    };
    Ok(SavedModel {
        members: out,
        config,
        input_names,
        target_name,
        training,
    })
}

/// 32 bytes from 64 hex digits.
fn parse_seed(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(seed)
}
