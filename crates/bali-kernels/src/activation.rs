//! Elementwise activations `phi` and their derivatives `phi'`, evaluated on pre-activations.

use crate::gelu::{GELU_A, GELU_C};
use crate::{simd, Scalar};
use faer::reborrow::ReborrowMut;
use faer::{MatMut, MatRef};
use pulp::Simd;

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

impl Activation {
    /// `phi(h)` for one value (the scalar reference of the SIMD slice and matrix kernels).
    ///
    /// Never NaN unless `h` is NaN (ReLU maps NaN to 0); GELU is `h sigma(2u)`,
    /// `u = sqrt(2/pi) (h + 0.044715 h^3)`, which equals `h/2 (1 + tanh u)` without its
    /// cancellation for negative `h`, and is exactly 0 where `sigma` underflows.
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
                let sg = sigmoid(gelu_z(h));
                if sg == T::zero() {
                    T::zero()
                } else {
                    h * sg
                }
            }
            Activation::Sigmoid => sigmoid(h),
            Activation::Identity => h,
        }
    }

    /// `phi'(h)` for one value (the scalar reference of the SIMD kernels).
    ///
    /// `tanh' = 4v/(1+v)^2` with `v = exp(-2|h|)` and `sigma' = e/(1+e)^2` with `e = exp(-|h|)`:
    /// the same values as `1 - tanh^2` and `sigma (1 - sigma)` but accurate in the tails.
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
                let v = (-(h.abs() + h.abs())).exp();
                let d = T::one() / (T::one() + v);
                T::of(4.0) * v * d * d
            }
            Activation::Gelu => {
                let z = gelu_z(h);
                let du = T::of(GELU_C) * (T::one() + T::of(3.0 * GELU_A) * h * h);
                let w = sigmoid_derivative(z);
                let term = if w == T::zero() {
                    T::zero()
                } else {
                    (h + h) * du * w
                };
                sigmoid(z) + term
            }
            Activation::Sigmoid => sigmoid_derivative(h),
            Activation::Identity => T::one(),
        }
    }

    /// `out[i] = phi(h[i])` (SIMD).
    #[track_caller]
    pub fn apply_slice<T: Scalar>(self, h: &[T], out: &mut [T]) {
        assert_eq!(h.len(), out.len(), "activation: length mismatch");
        pulp::Arch::new().dispatch(SliceOp {
            act: self,
            derivative: false,
            h,
            out,
        });
    }

    /// `out[i] = phi'(h[i])` (SIMD).
    #[track_caller]
    pub fn derivative_slice<T: Scalar>(self, h: &[T], out: &mut [T]) {
        assert_eq!(h.len(), out.len(), "activation: length mismatch");
        pulp::Arch::new().dispatch(SliceOp {
            act: self,
            derivative: true,
            h,
            out,
        });
    }

    /// `A = phi(H)` elementwise (same shapes; SIMD when both are column- or row-major).
    #[track_caller]
    pub fn apply<T: Scalar>(self, h: MatRef<'_, T>, out: MatMut<'_, T>) {
        self.map_mat(h, out, false);
    }

    /// `D = phi'(H)` elementwise (same shapes; SIMD when both are column- or row-major).
    #[track_caller]
    pub fn derivative_mat<T: Scalar>(self, h: MatRef<'_, T>, out: MatMut<'_, T>) {
        self.map_mat(h, out, true);
    }

    #[track_caller]
    fn map_mat<T: Scalar>(self, h: MatRef<'_, T>, mut out: MatMut<'_, T>, derivative: bool) {
        assert!(
            h.nrows() == out.nrows() && h.ncols() == out.ncols(),
            "activation: H is {}x{}, output is {}x{}",
            h.nrows(),
            h.ncols(),
            out.nrows(),
            out.ncols()
        );
        let (h, out) = if h.row_stride() == 1 && out.row_stride() == 1 {
            (h, out)
        } else if h.col_stride() == 1 && out.col_stride() == 1 {
            (h.transpose(), out.transpose_mut())
        } else {
            for j in 0..h.ncols() {
                for i in 0..h.nrows() {
                    let v = h[(i, j)];
                    out[(i, j)] = if derivative {
                        self.derivative(v)
                    } else {
                        self.value(v)
                    };
                }
            }
            return;
        };
        pulp::Arch::new().dispatch(MatOp {
            act: self,
            derivative,
            h,
            out,
        });
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

/// `sigma'(h) = e / (1 + e)^2`, `e = exp(-|h|)`.
#[inline]
fn sigmoid_derivative<T: Scalar>(h: T) -> T {
    let e = (-h.abs()).exp();
    let d = T::one() / (T::one() + e);
    e * d * d
}

/// `2u = 2 sqrt(2/pi) h (1 + 0.044715 h^2)`.
#[inline]
fn gelu_z<T: Scalar>(h: T) -> T {
    T::of(2.0 * GELU_C) * h * (T::one() + T::of(GELU_A) * h * h)
}

/// Applies `f` to every pair of contiguous columns of `h` and `out` (both column-major).
#[inline(always)]
fn for_each_col<T: Scalar, S: Simd>(
    s: S,
    h: MatRef<'_, T>,
    mut out: MatMut<'_, T>,
    f: impl Fn(S, T::V<S>) -> T::V<S> + Copy,
) {
    for j in 0..h.ncols() {
        let (Some(hj), Some(oj)) = (
            h.col(j).try_as_col_major(),
            out.rb_mut().col_mut(j).try_as_col_major_mut(),
        ) else {
            unreachable!("activation: columns checked contiguous")
        };
        simd::map_slice::<T, S>(s, hj.as_slice(), oj.as_slice_mut(), f);
    }
}

/// Calls `$call($arg, ..., kernel)` with the SIMD kernel of `($act, $derivative)` as an
/// `#[inline(always)]` closure, one arm per kernel, so that every kernel is monomorphized and
/// inlined into the loop (a fn item passed as `impl Fn` goes through a call shim compiled
/// without the SIMD target features).
macro_rules! with_activation_kernel {
    ($act:expr, $derivative:expr, $T:ty, $S:ty, $call:expr, ($($arg:expr),*)) => {
        match ($act, $derivative) {
            (Activation::Relu, false) => $call($($arg,)* #[inline(always)] |s: $S, v| {
                simd::relu::<$T, $S>(s, v)
            }),
            (Activation::Relu, true) => $call($($arg,)* #[inline(always)] |s: $S, v| {
                simd::relu_derivative::<$T, $S>(s, v)
            }),
            (Activation::Tanh, false) => $call($($arg,)* #[inline(always)] |s: $S, v| {
                simd::tanh::<$T, $S>(s, v)
            }),
            (Activation::Tanh, true) => $call($($arg,)* #[inline(always)] |s: $S, v| {
                simd::tanh_derivative::<$T, $S>(s, v)
            }),
            (Activation::Gelu, false) => $call($($arg,)* #[inline(always)] |s: $S, v| {
                simd::gelu::<$T, $S>(s, v)
            }),
            (Activation::Gelu, true) => $call($($arg,)* #[inline(always)] |s: $S, v| {
                simd::gelu_derivative::<$T, $S>(s, v)
            }),
            (Activation::Sigmoid, false) => $call($($arg,)* #[inline(always)] |s: $S, v| {
                simd::sigmoid::<$T, $S>(s, v)
            }),
            (Activation::Sigmoid, true) => $call($($arg,)* #[inline(always)] |s: $S, v| {
                simd::sigmoid_derivative::<$T, $S>(s, v)
            }),
            (Activation::Identity, false) => $call($($arg,)* #[inline(always)] |s: $S, v| {
                identity::<$T, $S>(s, v)
            }),
            (Activation::Identity, true) => $call($($arg,)* #[inline(always)] |s: $S, v| {
                one::<$T, $S>(s, v)
            }),
        }
    };
}

#[inline(always)]
fn identity<T: Scalar, S: Simd>(_: S, h: T::V<S>) -> T::V<S> {
    h
}

#[inline(always)]
fn one<T: Scalar, S: Simd>(s: S, _: T::V<S>) -> T::V<S> {
    T::v_splat(s, T::one())
}

struct SliceOp<'a, T> {
    act: Activation,
    derivative: bool,
    h: &'a [T],
    out: &'a mut [T],
}

impl<T: Scalar> pulp::WithSimd for SliceOp<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let SliceOp {
            act,
            derivative,
            h,
            out,
        } = self;
        with_activation_kernel!(act, derivative, T, S, simd::map_slice::<T, S>, (s, h, out))
    }
}

struct MatOp<'a, T> {
    act: Activation,
    derivative: bool,
    h: MatRef<'a, T>,
    out: MatMut<'a, T>,
}

impl<T: Scalar> pulp::WithSimd for MatOp<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let MatOp {
            act,
            derivative,
            h,
            out,
        } = self;
        with_activation_kernel!(act, derivative, T, S, for_each_col::<T, S>, (s, h, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;
    use proptest::prelude::*;

    const ALL: [Activation; 5] = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Sigmoid,
        Activation::Identity,
    ];

    /// `|a - b| <= rel max(|a|, |b|) + abs`, with equal infinities and NaN == NaN accepted.
    fn close<T: Scalar>(a: T, b: T, rel: f64, abs: f64) -> bool {
        let (a, b) = (a.to_f64(), b.to_f64());
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        if a.is_infinite() || b.is_infinite() {
            return a == b;
        }
        (a - b).abs() <= rel * a.abs().max(b.abs()) + abs
    }

    fn special<T: Scalar>() -> Vec<T> {
        let mut v: Vec<f64> = vec![
            0.0, -0.0, 1e-300, 1e-30, 1e-10, 1e-5, 0.01, 0.1, 0.3, 0.34, 0.35, 0.5, 0.7, 1.0, 1.5,
            2.0, 3.0, 5.0, 8.0, 9.5, 10.0, 10.5, 15.0, 19.0, 20.0, 21.0, 30.0, 40.0, 86.0, 87.0,
            88.0, 89.0, 100.0, 354.0, 355.0, 700.0, 708.0, 709.0, 710.0, 745.0, 1e3, 1e4, 1e5,
            1e30, 1e200,
        ];
        let neg: Vec<f64> = v.iter().map(|x| -x).collect();
        v.extend(neg);
        v.push(f64::INFINITY);
        v.push(f64::NEG_INFINITY);
        v.push(f64::NAN);
        let mut v: Vec<T> = v.into_iter().map(T::of).collect();
        v.push(T::max_value());
        v.push(T::min_value());
        v.push(T::min_positive_value());
        v
    }

    /// Relative tolerance (a few ulp) and an absolute one near 0: the SIMD `exp` flushes
    /// results below `exp(-708)` (`f64`) or `exp(-86.5)` (`f32`) to 0.
    fn tolerances<T: Scalar>() -> (f64, f64) {
        if T::NAME == "f64" {
            (1e-14, 1e-290)
        } else {
            (1e-6, 1e-30)
        }
    }

    /// GELU' crosses 0 near `h = -0.75` as the difference of two O(1) terms: compare it with
    /// an absolute tolerance of a few ulp of those terms.
    fn derivative_abs<T: Scalar>(act: Activation, abs: f64) -> f64 {
        if act == Activation::Gelu {
            abs.max(8.0 * T::EPS.to_f64())
        } else {
            abs
        }
    }

    fn check_slice_against_scalar<T: Scalar>(h: &[T]) {
        let (rel, abs) = tolerances::<T>();
        let mut out = vec![T::zero(); h.len()];
        for act in ALL {
            act.apply_slice(h, &mut out);
            for (&x, &y) in h.iter().zip(&out) {
                let r = act.value(x);
                assert!(
                    close(y, r, rel, abs),
                    "{act:?} value at {x}: simd {y} vs scalar {r}"
                );
                assert!(!y.is_nan() || x.is_nan(), "{act:?} value NaN at {x}");
            }
            act.derivative_slice(h, &mut out);
            for (&x, &y) in h.iter().zip(&out) {
                let r = act.derivative(x);
                assert!(
                    close(y, r, rel, derivative_abs::<T>(act, abs)),
                    "{act:?} derivative at {x}: simd {y} vs scalar {r}"
                );
                assert!(!y.is_nan() || x.is_nan(), "{act:?} derivative NaN at {x}");
            }
        }
    }

    #[test]
    fn special_values_match_scalar_and_never_nan() {
        check_slice_against_scalar::<f64>(&special::<f64>());
        check_slice_against_scalar::<f32>(&special::<f32>());
    }

    #[test]
    fn dense_sweep_matches_std() {
        // A fine sweep over [-50, 50] hits every reduction interval of exp and both tanh regimes.
        let h64: Vec<f64> = (0..=20_000)
            .map(|i| (i as f64 - 10_000.0) * 0.005 + 1e-7)
            .collect();
        check_slice_against_scalar::<f64>(&h64);
        let h32: Vec<f32> = h64.iter().map(|&x| x as f32).collect();
        check_slice_against_scalar::<f32>(&h32);
        // Against std directly (independent of the reference formulas).
        let mut out = vec![0.0; h64.len()];
        Activation::Tanh.apply_slice(&h64, &mut out);
        for (&x, &y) in h64.iter().zip(&out) {
            assert!(close(y, x.tanh(), 1e-14, 1e-300), "tanh({x}) = {y}");
        }
        Activation::Sigmoid.apply_slice(&h64, &mut out);
        for (&x, &y) in h64.iter().zip(&out) {
            let r = 1.0 / (1.0 + (-x).exp());
            assert!(close(y, r, 1e-14, 1e-300), "sigmoid({x}) = {y}");
        }
        Activation::Gelu.apply_slice(&h64, &mut out);
        for (&x, &y) in h64.iter().zip(&out) {
            let u = GELU_C * (x + GELU_A * x * x * x);
            let r = 0.5 * x * (1.0 + u.tanh());
            assert!(close(y, r, 1e-12, 1e-15), "gelu({x}) = {y} vs {r}");
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for act in [Activation::Tanh, Activation::Gelu, Activation::Sigmoid] {
            for i in -40..=40 {
                let x = i as f64 * 0.1 + 0.013;
                let e = 1e-6;
                let fd = (act.value(x + e) - act.value(x - e)) / (2.0 * e);
                let mut d = [0.0];
                act.derivative_slice(&[x], &mut d);
                assert!(
                    (fd - d[0]).abs() < 1e-8,
                    "{act:?}'({x}): {} vs fd {fd}",
                    d[0]
                );
            }
        }
    }

    #[test]
    fn limits_at_infinity() {
        let h = [f64::NEG_INFINITY, f64::INFINITY];
        let mut o = [0.0; 2];
        Activation::Gelu.apply_slice(&h, &mut o);
        assert_eq!(o, [0.0, f64::INFINITY]);
        Activation::Tanh.apply_slice(&h, &mut o);
        assert_eq!(o, [-1.0, 1.0]);
        Activation::Sigmoid.apply_slice(&h, &mut o);
        assert_eq!(o, [0.0, 1.0]);
        for act in [Activation::Gelu, Activation::Tanh, Activation::Sigmoid] {
            act.derivative_slice(&h, &mut o);
            assert_eq!(o[0], 0.0, "{act:?}");
            assert_eq!(
                o[1],
                if act == Activation::Gelu { 1.0 } else { 0.0 },
                "{act:?}"
            );
        }
    }

    fn check_mat<T: Scalar>(b: usize, q: usize, data: &[f64], transposed_out: bool) {
        let (rel, abs) = tolerances::<T>();
        let h = Mat::<T>::from_fn(b, q, |i, j| T::of(data[(i * q + j) % data.len()]));
        for act in ALL {
            for derivative in [false, true] {
                let mut out = Mat::<T>::zeros(b, q);
                let mut out_t = Mat::<T>::zeros(q, b);
                let run = |h: MatRef<'_, T>, o: MatMut<'_, T>| {
                    if derivative {
                        act.derivative_mat(h, o)
                    } else {
                        act.apply(h, o)
                    }
                };
                if transposed_out {
                    run(h.as_ref(), out_t.as_mut().transpose_mut());
                } else {
                    run(h.as_ref(), out.as_mut());
                }
                for j in 0..q {
                    for i in 0..b {
                        let got = if transposed_out {
                            out_t[(j, i)]
                        } else {
                            out[(i, j)]
                        };
                        let x = h[(i, j)];
                        let want = if derivative {
                            act.derivative(x)
                        } else {
                            act.value(x)
                        };
                        let abs = if derivative {
                            derivative_abs::<T>(act, abs)
                        } else {
                            abs
                        };
                        assert!(
                            close(got, want, rel, abs),
                            "{act:?} d={derivative} at {x}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matrices_match_scalar_loop(
            b in 1usize..40,
            q in 1usize..40,
            data in proptest::collection::vec(-30.0f64..30.0, 1..200),
            transposed in any::<bool>(),
        ) {
            check_mat::<f64>(b, q, &data, transposed);
            check_mat::<f32>(b, q, &data, transposed);
        }

        #[test]
        fn slices_match_scalar_loop(data in proptest::collection::vec(-1e4f64..1e4, 0..100)) {
            check_slice_against_scalar::<f64>(&data);
            let d32: Vec<f32> = data.iter().map(|&x| x as f32).collect();
            check_slice_against_scalar::<f32>(&d32);
        }
    }

    #[test]
    fn names_round_trip() {
        for act in ALL {
            assert_eq!(act.name().parse::<Activation>(), Ok(act));
        }
        assert!("swish".parse::<Activation>().is_err());
    }
}
