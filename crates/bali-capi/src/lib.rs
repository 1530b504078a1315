//! The C ABI of BALI: opaque model handles, status codes and a thread-local error message.
//!
//! Every function returns a [`BaliStatus`] (0 on success). On failure,
//! [`bali_last_error`] gives a message that says what went wrong (valid until the next call
//! on the same thread). Null pointers, wrong sizes, NaN or infinite input, calls out of order
//! (predict before fit) and panics inside the library all come back as status codes: nothing
//! unwinds across the boundary.
//!
//! Matrices are row-major `double` arrays: inputs `x` are `n_rows x d_0`, targets `y`
//! `n_rows x d_L` (`dims = [d_0, ..., d_L]` of the options), predictions `n_rows x d_L`.
//!
//! Options (`bali_model_new`), a JSON object:
//!
//! ```json
//! { "dims": [3, 50, 1], "seed": 0, "n_train": 1000,
//!   "config": { "alpha": 0.5, "wd": 1.0, "preconditioner": "scalar", "batch_size": 128 } }
//! ```
//!
//! `dims` is required; `seed` defaults to 0; `n_train` (the training-set size the EMA
//! statistics are scaled to) is needed only by `bali_partial_fit` before any `bali_fit`;
//! `config` holds any subset of the training options (names as in the model files' JSON,
//! `bali::model_file::config_to_json`), the rest take their defaults.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use bali::model_file::{self, config_from_json, config_to_json, ModelFileError, SavedModel};
use bali::{
    BaliConfig, BaliError, BayesianMlp, Ensemble, Likelihood, PredictMode, Trainer, TrainerState,
};
use bali_mn::MnError;
use faer::Mat;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

/// Result of every call.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaliStatus {
    /// Success.
    Ok = 0,
    /// A required pointer was NULL.
    NullPointer = 1,
    /// An option, size or shape outside its accepted range (the message names it).
    InvalidArgument = 2,
    /// NaN or infinite input, or training that diverged.
    NonFinite = 3,
    /// A call out of order (for example predict before fit).
    OutOfOrder = 4,
    /// A factorization failed (a factor not positive definite).
    Numerical = 5,
    /// Reading or writing a file failed.
    Io = 6,
    /// A model file that is truncated, corrupted or of another version.
    BadFile = 7,
    /// A panic inside the library (a bug: please report the message).
    Panic = 8,
}

/// A model: its options and, once trained or loaded, its posteriors.
pub struct BaliModel {
    dims: Vec<usize>,
    seed: u64,
    n_train: Option<usize>,
    config: BaliConfig,
    state: State,
}

enum State {
    /// Options only.
    Empty,
    /// Being trained (fit or partial_fit called).
    Training(Box<Trainer<f64>>),
    /// Loaded from a model file that cannot be trained further from C: an ensemble, a file
    /// without training state, or one whose model standardizes its data (saved by `bali fit`,
    /// trained in standardized units). Keeps the training states to save them again.
    Loaded(Ensemble<BayesianMlp<f64>>, Option<Vec<TrainerState<f64>>>),
}

/// Progress callback of [`bali_fit`]: called after every step with the steps done and the
/// batch loss; a non-zero return stops training (the call then still returns `Ok`).
pub type BaliProgress =
    Option<unsafe extern "C" fn(step: u64, batch_loss: f64, user_data: *mut c_void) -> c_int>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

struct Failure(BaliStatus, String);

impl From<BaliError> for Failure {
    fn from(e: BaliError) -> Self {
        let status = match &e {
            BaliError::NonFinite { .. } => BaliStatus::NonFinite,
            BaliError::Algebra(MnError::NonFinite { .. }) => BaliStatus::NonFinite,
            BaliError::Algebra(
                MnError::NotPositiveDefinite { .. } | MnError::DegreesOfFreedom { .. },
            ) => BaliStatus::Numerical,
            BaliError::NotFitted { .. } => BaliStatus::OutOfOrder,
            BaliError::ModelFile(ModelFileError::Io { .. }) | BaliError::Data(_) => BaliStatus::Io,
            BaliError::ModelFile(_) => BaliStatus::BadFile,
            _ => BaliStatus::InvalidArgument,
        };
        Failure(status, e.to_string())
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure(BaliStatus::InvalidArgument, message.into())
}

/// Runs `body`, turning errors and panics into a status and the thread's last error.
fn guard(body: impl FnOnce() -> Result<(), Failure>) -> BaliStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_error("");
            BaliStatus::Ok
        }
        Ok(Err(Failure(status, message))) => {
            set_error(&message);
            status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_error(&format!("panic inside the library: {what}"));
            BaliStatus::Panic
        }
    }
}

/// `ptr` as a reference, or `NullPointer` naming `what`.
///
/// # Safety
/// `ptr` is NULL or points to a valid `T` (the caller's contract).
unsafe fn non_null<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: by this function's contract.
    unsafe { ptr.as_ref() }
        .ok_or_else(|| Failure(BaliStatus::NullPointer, format!("{what} is NULL")))
}

/// A row-major `rows x cols` matrix read from `ptr`.
///
/// # Safety
/// `ptr` is NULL or points to `rows * cols` readable doubles.
unsafe fn read_matrix(
    ptr: *const f64,
    rows: usize,
    cols: usize,
    what: &str,
) -> Result<Mat<f64>, Failure> {
    if ptr.is_null() {
        return Err(Failure(BaliStatus::NullPointer, format!("{what} is NULL")));
    }
    let len = rows
        .checked_mul(cols)
        .ok_or_else(|| invalid(format!("{what}: {rows} x {cols} overflows")))?;
    // SAFETY: the caller gives `rows * cols` readable doubles at `ptr` (not NULL, checked).
    let data = unsafe { std::slice::from_raw_parts(ptr, len) };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Failure(
            BaliStatus::NonFinite,
            format!(
                "{what}: entry ({}, {}) is {}",
                i / cols.max(1),
                i % cols.max(1),
                data[i]
            ),
        ));
    }
    Ok(Mat::from_fn(rows, cols, |i, j| data[i * cols + j]))
}

/// Copies `m` row-major into `ptr` (`m.nrows() * m.ncols()` doubles).
///
/// # Safety
/// `ptr` points to that many writable doubles.
unsafe fn write_matrix(ptr: *mut f64, m: &Mat<f64>) {
    let cols = m.ncols();
    for i in 0..m.nrows() {
        for j in 0..cols {
            // SAFETY: within the `nrows * ncols` doubles the caller provides.
            unsafe { *ptr.add(i * cols + j) = m[(i, j)] };
        }
    }
}

fn parse_options(text: &str) -> Result<(Vec<usize>, u64, Option<usize>, BaliConfig), Failure> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("options are not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("options must be a JSON object"))?;
    for key in obj.keys() {
        if !["dims", "seed", "n_train", "config"].contains(&key.as_str()) {
            return Err(invalid(format!(
                "unknown option `{key}` (expected dims, seed, n_train, config)"
            )));
        }
    }
    let dims: Vec<usize> = obj
        .get("dims")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .map(|d| d.as_u64().and_then(|u| usize::try_from(u).ok()))
                .collect::<Option<Vec<_>>>()
        })
        .filter(|d| d.len() >= 2 && d.iter().all(|&w| w >= 1))
        .ok_or_else(|| invalid("`dims` must be a list of at least two widths >= 1"))?;
    let seed = match obj.get("seed") {
        None => 0,
        Some(s) => s
            .as_u64()
            .ok_or_else(|| invalid("`seed` must be a non-negative integer"))?,
    };
    let n_train = match obj.get("n_train") {
        None => None,
        Some(n) => Some(
            n.as_u64()
                .and_then(|u| usize::try_from(u).ok())
                .filter(|&n| n >= 1)
                .ok_or_else(|| invalid("`n_train` must be an integer >= 1"))?,
        ),
    };
    let mut merged = config_to_json(&BaliConfig::default());
    if let Some(given) = obj.get("config") {
        let given = given
            .as_object()
            .ok_or_else(|| invalid("`config` must be a JSON object"))?;
        let Some(target) = merged.as_object_mut() else {
            unreachable!("config_to_json gives an object")
        };
        for (key, value) in given {
            if !target.contains_key(key) {
                return Err(invalid(format!("unknown training option `config.{key}`")));
            }
            target.insert(key.clone(), value.clone());
        }
    }
    let config = config_from_json(&merged).map_err(invalid)?;
    Ok((dims, seed, n_train, config))
}

/// The message of the last failed call on this thread ("" after a success). The pointer is
/// valid until the next call into the library on this thread; do not free it.
#[no_mangle]
pub extern "C" fn bali_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Creates a model from a JSON options string (see the crate documentation) into `*out`.
/// Free it with [`bali_model_free`].
///
/// # Safety
/// `options_json` is a NUL-terminated string; `out` points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn bali_model_new(
    options_json: *const c_char,
    out: *mut *mut BaliModel,
) -> BaliStatus {
    guard(|| {
        if out.is_null() {
            return Err(Failure(BaliStatus::NullPointer, "out is NULL".into()));
        }
        if options_json.is_null() {
            return Err(Failure(
                BaliStatus::NullPointer,
                "options_json is NULL".into(),
            ));
        }
        // SAFETY: a NUL-terminated string by the contract.
        let text = unsafe { CStr::from_ptr(options_json) }
            .to_str()
            .map_err(|_| invalid("options_json is not UTF-8"))?;
        let (dims, seed, n_train, config) = parse_options(text)?;
        // Build once to check the options against the architecture.
        Trainer::<f64>::new(dims.clone(), config.clone(), n_train.unwrap_or(1), seed)?;
        let model = Box::new(BaliModel {
            dims,
            seed,
            n_train,
            config,
            state: State::Empty,
        });
        // SAFETY: `out` is writable (checked not NULL).
        unsafe { *out = Box::into_raw(model) };
        Ok(())
    })
}

/// Frees a model (NULL is allowed and does nothing).
///
/// # Safety
/// `model` is NULL or was returned by `bali_model_new`/`bali_load` and not freed before.
#[no_mangle]
pub unsafe extern "C" fn bali_model_free(model: *mut BaliModel) {
    if !model.is_null() {
        // SAFETY: by the contract, `model` came from `Box::into_raw` and is freed once.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(model) })));
    }
}

/// # Safety
/// `model` is NULL or a live handle.
unsafe fn model_mut<'a>(model: *mut BaliModel) -> Result<&'a mut BaliModel, Failure> {
    // SAFETY: by the contract.
    unsafe { model.as_mut() }
        .ok_or_else(|| Failure(BaliStatus::NullPointer, "model is NULL".into()))
}

/// Trains for `iterations` steps on `(x, y)` (`n_rows` rows), in mini-batches of the
/// configured size; `progress` (may be NULL) sees every step. A later `bali_fit` on the same
/// rows continues where this one stopped.
///
/// # Safety
/// `model` is a live handle; `x` holds `n_rows * d_0` and `y` `n_rows * d_L` doubles;
/// `progress`, if not NULL, is callable with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn bali_fit(
    model: *mut BaliModel,
    x: *const f64,
    y: *const f64,
    n_rows: usize,
    iterations: usize,
    progress: BaliProgress,
    user_data: *mut c_void,
) -> BaliStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { model_mut(model) }?;
        let (d0, dl) = (m.dims[0], m.dims[m.dims.len() - 1]);
        // SAFETY: the caller's contract on `x` and `y`.
        let (xm, ym) = unsafe {
            (
                read_matrix(x, n_rows, d0, "x")?,
                read_matrix(y, n_rows, dl, "y")?,
            )
        };
        let trainer = training(m, n_rows)?;
        trainer.fit(
            xm.as_ref(),
            ym.as_ref(),
            iterations,
            |_, info| match progress {
                // SAFETY: the caller gives a callable function pointer and its data.
                Some(f) if unsafe { f(info.step, info.batch_loss, user_data) } != 0 => {
                    std::ops::ControlFlow::Break(())
                }
                _ => std::ops::ControlFlow::Continue(()),
            },
        )?;
        Ok(())
    })
}

/// The handle's trainer, created for `n_train` rows on first use.
fn training(m: &mut BaliModel, n_train: usize) -> Result<&mut Trainer<f64>, Failure> {
    if matches!(m.state, State::Empty) {
        let n = m.n_train.unwrap_or(n_train);
        m.state = State::Training(Box::new(Trainer::new(
            m.dims.clone(),
            m.config.clone(),
            n,
            m.seed,
        )?));
    }
    match &mut m.state {
        State::Training(t) => Ok(t),
        State::Loaded(..) => Err(Failure(
            BaliStatus::OutOfOrder,
            "this loaded model file predicts but does not train here: it is an ensemble, holds no training state, or standardizes its data (saved by `bali fit`)".into(),
        )),
        State::Empty => unreachable!("the trainer was just created"),
    }
}

/// One streaming step on the batch `(x, y)` (`n_rows` rows): the EMA statistics and every
/// layer's posterior, with `rho = n_train / n_rows` (`n_train` from the options, or the rows
/// of an earlier `bali_fit`).
///
/// # Safety
/// As [`bali_fit`].
#[no_mangle]
pub unsafe extern "C" fn bali_partial_fit(
    model: *mut BaliModel,
    x: *const f64,
    y: *const f64,
    n_rows: usize,
) -> BaliStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { model_mut(model) }?;
        if matches!(m.state, State::Empty) && m.n_train.is_none() {
            return Err(invalid(
                "partial_fit before any fit needs `n_train` in the options",
            ));
        }
        let (d0, dl) = (m.dims[0], m.dims[m.dims.len() - 1]);
        // SAFETY: the caller's contract on `x` and `y`.
        let (xm, ym) = unsafe {
            (
                read_matrix(x, n_rows, d0, "x")?,
                read_matrix(y, n_rows, dl, "y")?,
            )
        };
        training(m, n_rows)?.partial_fit(xm.as_ref(), ym.as_ref())?;
        Ok(())
    })
}

/// Predictive mean and variance (`n_rows x d_L` each, row-major) for the inputs `x`, from
/// `samples` whole-network samples drawn with `seed` (`ceil(samples / K)` per member of a
/// loaded ensemble). The variance adds the model's noise (the saved held-out noise, else the
/// output layer's learned `Sigma_L`). A model loaded from a file with standardization takes
/// and returns data in the original units.
///
/// # Safety
/// `model` is a live handle; `x` holds `n_rows * d_0` doubles, `mean` and `variance`
/// `n_rows * d_L` writable doubles each.
#[no_mangle]
pub unsafe extern "C" fn bali_predict(
    model: *const BaliModel,
    x: *const f64,
    n_rows: usize,
    samples: usize,
    seed: u64,
    mean: *mut f64,
    variance: *mut f64,
) -> BaliStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { non_null(model, "model") }?;
        if mean.is_null() || variance.is_null() {
            return Err(Failure(
                BaliStatus::NullPointer,
                "mean or variance is NULL".into(),
            ));
        }
        // The shared range (1..=1e6): a count a frontend cannot allocate is refused here.
        bali::validate::SAMPLES.check(samples)?;
        let members = members(m)?;
        if members.likelihood() == Likelihood::Categorical {
            return Err(invalid(
                "a categorical model has class probabilities, not a mean and variance: use bali_predict_proba",
            ));
        }
        // SAFETY: the caller's contract on `x`.
        let xm = unsafe { read_matrix(x, n_rows, m.dims[0], "x") }?;
        let (x, mode) = (xm.as_ref(), PredictMode::Weights);
        let pred = match members {
            Members::One(model) => {
                model.predict_gaussian(x, samples, mode, &mut Members::rng(seed))?
            }
            Members::Many(e) => e.predict_gaussian(x, samples, mode, seed)?,
        };
        // SAFETY: the caller gives `n_rows * d_L` writable doubles in each.
        unsafe {
            write_matrix(mean, &pred.mean);
            write_matrix(variance, &pred.variance);
        }
        Ok(())
    })
}

/// Class probabilities (`n_rows x K` row-major, each row summing to 1) of a categorical model
/// (options `"config": {"likelihood": "categorical", ...}`, targets one-hot `n x K` in
/// `bali_fit`) for the inputs `x`: `p(c | x) = 1/S sum_s softmax(f_s(x))_c` over `samples`
/// whole-network samples drawn with `seed` (`ceil(samples / K)` per member of a loaded
/// ensemble).
///
/// # Safety
/// `model` is a live handle; `x` holds `n_rows * d_0` doubles, `probs` `n_rows * d_L`
/// writable doubles.
#[no_mangle]
pub unsafe extern "C" fn bali_predict_proba(
    model: *const BaliModel,
    x: *const f64,
    n_rows: usize,
    samples: usize,
    seed: u64,
    probs: *mut f64,
) -> BaliStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { non_null(model, "model") }?;
        if probs.is_null() {
            return Err(Failure(BaliStatus::NullPointer, "probs is NULL".into()));
        }
        // The shared range (1..=1e6): a count a frontend cannot allocate is refused here.
        bali::validate::SAMPLES.check(samples)?;
        let members = members(m)?;
        if members.likelihood() != Likelihood::Categorical {
            return Err(invalid(
                "class probabilities need a categorical model (use bali_predict for regression)",
            ));
        }
        // SAFETY: the caller's contract on `x`.
        let xm = unsafe { read_matrix(x, n_rows, m.dims[0], "x") }?;
        let (x, mode) = (xm.as_ref(), PredictMode::Weights);
        let pred = match members {
            Members::One(model) => {
                model.predict_categorical(x, samples, mode, &mut Members::rng(seed))?
            }
            Members::Many(e) => e.predict_categorical(x, samples, mode, seed)?,
        };
        // SAFETY: the caller gives `n_rows * d_L` writable doubles.
        unsafe { write_matrix(probs, &pred.probs) };
        Ok(())
    })
}

/// What a handle predicts with: the model being trained, or a loaded ensemble.
enum Members<'a> {
    One(&'a BayesianMlp<f64>),
    Many(&'a Ensemble<BayesianMlp<f64>>),
}

impl Members<'_> {
    fn likelihood(&self) -> Likelihood {
        match self {
            Members::One(model) => model.likelihood(),
            Members::Many(e) => e.members[0].likelihood(),
        }
    }

    /// The sample generator of a single model: member 0's of the ensemble seeding rule, so a
    /// one-member handle predicts as its model file's one-member ensemble does.
    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(Ensemble::<()>::sample_seed(seed, 0))
    }
}

/// The handle's members; predict before fit is an error.
fn members(m: &BaliModel) -> Result<Members<'_>, Failure> {
    match &m.state {
        State::Empty => Err(Failure(
            BaliStatus::OutOfOrder,
            "predict before fit: the model has no posterior yet".into(),
        )),
        State::Training(t) => Ok(Members::One(t.model())),
        State::Loaded(e, _) => Ok(Members::Many(e)),
    }
}

fn first_model(m: &BaliModel) -> Result<&BayesianMlp<f64>, Failure> {
    match &m.state {
        State::Empty => Err(Failure(
            BaliStatus::OutOfOrder,
            "the model has no posterior yet (call bali_fit first)".into(),
        )),
        State::Training(t) => Ok(t.model()),
        State::Loaded(e, _) => Ok(&e.members[0]),
    }
}

/// The number of linear layers `L` into `*out`.
///
/// # Safety
/// `model` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn bali_num_layers(model: *const BaliModel, out: *mut usize) -> BaliStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { non_null(model, "model") }?;
        if out.is_null() {
            return Err(Failure(BaliStatus::NullPointer, "out is NULL".into()));
        }
        // SAFETY: writable by the contract.
        unsafe { *out = m.dims.len() - 1 };
        Ok(())
    })
}

/// Layer `layer`'s posterior `MN(M, Lambda^{-1}, Sigma)` (of the first member of a loaded
/// ensemble): the mean `M` (`p x q`, bias last row), the row precision `Lambda` (`p x p`) and
/// the column covariance `Sigma` (`q x q`), row-major, with `p = d_layer + 1`,
/// `q = d_{layer+1}`. Any of the three pointers may be NULL to skip it.
///
/// # Safety
/// `model` is a live handle; each non-NULL pointer has room for its matrix.
#[no_mangle]
pub unsafe extern "C" fn bali_layer_posterior(
    model: *const BaliModel,
    layer: usize,
    mean: *mut f64,
    row_precision: *mut f64,
    col_cov: *mut f64,
) -> BaliStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { non_null(model, "model") }?;
        let layers = m.dims.len() - 1;
        if layer >= layers {
            return Err(invalid(format!(
                "layer {layer} out of range (the network has {layers} layers)"
            )));
        }
        let post = first_model(m)?.posterior(layer);
        // SAFETY: room for each matrix by the contract.
        unsafe {
            if !mean.is_null() {
                write_matrix(mean, &post.mean);
            }
            if !row_precision.is_null() {
                write_matrix(row_precision, &post.row_precision.matrix());
            }
            if !col_cov.is_null() {
                write_matrix(col_cov, &post.col_cov.matrix());
            }
        }
        Ok(())
    })
}

fn path_of(path: *const c_char) -> Result<PathBuf, Failure> {
    if path.is_null() {
        return Err(Failure(BaliStatus::NullPointer, "path is NULL".into()));
    }
    // SAFETY: a NUL-terminated string by the callers' contracts.
    let text = unsafe { CStr::from_ptr(path) }
        .to_str()
        .map_err(|_| invalid("path is not UTF-8"))?;
    Ok(PathBuf::from(text))
}

/// Saves the model (posteriors, options) as a model file at `path` (written to a temporary
/// file, then renamed).
///
/// # Safety
/// `model` is a live handle; `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn bali_save(model: *const BaliModel, path: *const c_char) -> BaliStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { non_null(model, "model") }?;
        let path = path_of(path)?;
        let saved = match &m.state {
            State::Loaded(e, training) => SavedModel {
                members: e.members.clone(),
                config: Some(m.config.clone()),
                input_names: None,
                target_name: None,
                training: training.clone(),
            },
            State::Training(t) => SavedModel {
                members: vec![t.model().clone()],
                config: Some(m.config.clone()),
                input_names: None,
                target_name: None,
                training: Some(vec![t.state()]),
            },
            State::Empty => {
                return Err(Failure(
                    BaliStatus::OutOfOrder,
                    "save before fit: the model has no posterior yet".into(),
                ))
            }
        };
        model_file::save(&path, &saved)?;
        Ok(())
    })
}

/// Loads a model file into `*out`: a handle that predicts and can be saved, and that
/// continues training (`bali_fit`, `bali_partial_fit`) exactly where it was saved when the
/// file holds one member with its training state and no standardization (as `bali_save`
/// writes).
///
/// # Safety
/// `path` is a NUL-terminated string; `out` points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn bali_load(path: *const c_char, out: *mut *mut BaliModel) -> BaliStatus {
    guard(|| {
        if out.is_null() {
            return Err(Failure(BaliStatus::NullPointer, "out is NULL".into()));
        }
        let saved = model_file::load(&path_of(path)?)?;
        let dims = saved.members[0].mlp().dims.clone();
        let config = saved.config.clone().unwrap_or_default();
        let first = &saved.members[0];
        let trainable = saved.members.len() == 1
            && saved.training.is_some()
            && first.input_scaler().is_none()
            && first.target_scaler().is_none();
        let (n_train, state) = if trainable {
            let trainer = saved
                .into_trainers()?
                .pop()
                .ok_or_else(|| invalid("a model file without members"))?;
            (Some(trainer.n_train()), State::Training(Box::new(trainer)))
        } else {
            (
                None,
                State::Loaded(
                    Ensemble {
                        members: saved.members,
                    },
                    saved.training,
                ),
            )
        };
        let model = Box::new(BaliModel {
            dims,
            seed: 0,
            n_train,
            config,
            state,
        });
        // SAFETY: writable by the contract.
        unsafe { *out = Box::into_raw(model) };
        Ok(())
    })
}
