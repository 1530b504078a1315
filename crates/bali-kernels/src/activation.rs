//! Elementwise activations `phi` and their derivatives `phi'`, evaluated on pre-activations.

use crate::Scalar;
use faer::{MatMut, MatRef};

/// Hidden-layer activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// `max(h, 0)`; derivative `1[h > 0]`.
    #[default]
    Relu,
    /// `tanh(h)`; derivative `1 - tanh(h)^2`.
    Tanh,
    /// GELU, tanh approximation: `h/2 (1 + tanh(sqrt(2/pi) (h + 0.044715 h^3)))`.
    Gelu,
    /// `1 / (1 + exp(-h))`; derivative `s (1 - s)`.
    Sigmoid,
    /// `h`; derivative 1.
    Identity,
}

const GELU_C: f64 = 0.797_884_560_802_865_4; // sqrt(2/pi)
const GELU_A: f64 = 0.044_715;

impl Activation {
    /// `phi(h)` for one value.
    #[inline]
    pub fn value<T: Scalar>(self, h: T) -> T {
        match self {
            Activation::Relu => {
                if h > T::zero() {
                    h
                } else {
                    T::zero()
                }
            }
            Activation::Tanh => h.tanh(),
            Activation::Gelu => {
                let u = T::of(GELU_C) * (h + T::of(GELU_A) * h * h * h);
                T::of(0.5) * h * (T::one() + u.tanh())
            }
            Activation::Sigmoid => sigmoid(h),
            Activation::Identity => h,
        }
    }

    /// `phi'(h)` for one value.
    #[inline]
    pub fn derivative<T: Scalar>(self, h: T) -> T {
        match self {
            Activation::Relu => {
                if h > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::Tanh => {
                let t = h.tanh();
                T::one() - t * t
            }
            Activation::Gelu => {
                let h2 = h * h;
                let u = T::of(GELU_C) * (h + T::of(GELU_A) * h2 * h);
                let t = u.tanh();
                let du = T::of(GELU_C) * (T::one() + T::of(3.0 * GELU_A) * h2);
                T::of(0.5) * (T::one() + t) + T::of(0.5) * h * (T::one() - t * t) * du
            }
            Activation::Sigmoid => {
                let s = sigmoid(h);
                s * (T::one() - s)
            }
            Activation::Identity => T::one(),
        }
    }

    /// `out[i] = phi(h[i])`.
    #[track_caller]
    pub fn apply_slice<T: Scalar>(self, h: &[T], out: &mut [T]) {
        assert_eq!(h.len(), out.len(), "activation: length mismatch");
        for (o, &v) in out.iter_mut().zip(h) {
            *o = self.value(v);
        }
    }

    /// `out[i] = phi'(h[i])`.
    #[track_caller]
    pub fn derivative_slice<T: Scalar>(self, h: &[T], out: &mut [T]) {
        assert_eq!(h.len(), out.len(), "activation: length mismatch");
        for (o, &v) in out.iter_mut().zip(h) {
            *o = self.derivative(v);
        }
    }

    /// `A = phi(H)` elementwise (same shapes).
    #[track_caller]
    pub fn apply<T: Scalar>(self, h: MatRef<'_, T>, mut out: MatMut<'_, T>) {
        assert!(h.nrows() == out.nrows() && h.ncols() == out.ncols());
        for j in 0..h.ncols() {
            for i in 0..h.nrows() {
                out[(i, j)] = self.value(h[(i, j)]);
            }
        }
    }

    /// `D = phi'(H)` elementwise (same shapes).
    #[track_caller]
    pub fn derivative_mat<T: Scalar>(self, h: MatRef<'_, T>, mut out: MatMut<'_, T>) {
        assert!(h.nrows() == out.nrows() && h.ncols() == out.ncols());
        for j in 0..h.ncols() {
            for i in 0..h.nrows() {
                out[(i, j)] = self.derivative(h[(i, j)]);
            }
        }
    }

    /// Name as used on the command line (`relu`, `tanh`, `gelu`, `sigmoid`, `identity`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::Sigmoid => "sigmoid",
            Activation::Identity => "identity",
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "gelu" => Ok(Activation::Gelu),
            "sigmoid" => Ok(Activation::Sigmoid),
            "identity" => Ok(Activation::Identity),
            _ => Err(format!(
                "unknown activation `{s}` (expected relu, tanh, gelu, sigmoid or identity)"
            )),
        }
    }
}

#[inline]
fn sigmoid<T: Scalar>(h: T) -> T {
    // Stable for large |h|: never evaluates exp of a large positive number.
    if h >= T::zero() {
        T::one() / (T::one() + (-h).exp())
    } else {
        let e = h.exp();
        e / (T::one() + e)
    }
}
