//! Lane-wise vector math on pulp SIMD registers, written once for `f32` and `f64`.
//!
//! [`SimdReal`] maps the few pulp operations the kernels need onto one generic vocabulary;
//! the elementwise functions (`exp`, `tanh`, `sigmoid`, ...) are built on it. The exponential
//! uses Cody-Waite range reduction `x = k ln 2 + r`, `|r| <= ln(2)/2`, a Taylor polynomial
//! for `expm1(r)` (degree 13 for `f64`, 7 for `f32`: truncation error below 0.05 ulp), and
//! `2^k` built directly in the exponent bits. Accuracy: a few ulp against `std`.

use pulp::Simd;

/// Scalar types with SIMD vector math (sealed: implemented for `f32` and `f64` only, as a
/// supertrait of [`crate::Scalar`]).
pub trait SimdReal: SimdConsts + Copy + PartialOrd + 'static {
    /// Vector register of `Self` lanes.
    type V<S: Simd>: Copy;
    /// Lane mask of a comparison.
    type M<S: Simd>: Copy;

    /// `log2(e)`.
    const SIMD_LOG2E: Self;
    /// High part of `ln 2` (Cody-Waite).
    const SIMD_LN2_HI: Self;
    /// Low part of `ln 2` (Cody-Waite).
    const SIMD_LN2_LO: Self;
    /// Below this argument `exp` returns 0 (keeps `2^k` normal).
    const SIMD_EXP_LO: Self;
    /// Above this argument `exp` returns `+inf` (keeps `2^k` finite).
    const SIMD_EXP_HI: Self;
    /// `1.5 * 2^(mantissa bits)`: adding and subtracting it rounds to the nearest integer.
    const SIMD_ROUND_MAGIC: Self;
    /// `tanh(x)` rounds to `+-1` beyond this magnitude.
    const SIMD_TANH_CLAMP: Self;
    /// Coefficients `1/(n+1)!` of `expm1(r)/r`, highest degree first.
    const SIMD_EXPM1_POLY: &'static [Self];

    /// Splits a slice into full registers and a tail.
    fn v_as_simd<S: Simd>(x: &[Self]) -> (&[Self::V<S>], &[Self]);
    /// Splits a mutable slice into full registers and a tail.
    fn v_as_mut_simd<S: Simd>(x: &mut [Self]) -> (&mut [Self::V<S>], &mut [Self]);
    /// Loads `x.len() <= lanes` values, zero-filling the rest.
    fn v_load_partial<S: Simd>(s: S, x: &[Self]) -> Self::V<S>;
    /// Stores the first `x.len() <= lanes` lanes.
    fn v_store_partial<S: Simd>(s: S, x: &mut [Self], v: Self::V<S>);
    /// All lanes equal to `x`.
    fn v_splat<S: Simd>(s: S, x: Self) -> Self::V<S>;
    /// `a + b`.
    fn v_add<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a - b`.
    fn v_sub<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a * b`.
    fn v_mul<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a / b`.
    fn v_div<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a * b + c`, fused.
    fn v_fma<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;
    /// Lane-wise minimum (unspecified lane if one is NaN).
    fn v_min<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// Lane-wise maximum (unspecified lane if one is NaN).
    fn v_max<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `|a|`.
    fn v_abs<S: Simd>(s: S, a: Self::V<S>) -> Self::V<S>;
    /// `|mag|` with the sign bit of `sign`.
    fn v_copysign<S: Simd>(s: S, mag: Self::V<S>, sign: Self::V<S>) -> Self::V<S>;
    /// `a < b`.
    fn v_lt<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S>;
    /// `a > b`.
    fn v_gt<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S>;
    /// `a >= b`.
    fn v_ge<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S>;
    /// `a == b` (false for NaN lanes).
    fn v_eq<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S>;
    /// `m ? t : f` lane-wise.
    fn v_select<S: Simd>(s: S, m: Self::M<S>, t: Self::V<S>, f: Self::V<S>) -> Self::V<S>;
    /// Sum of the lanes.
    fn v_reduce_sum<S: Simd>(s: S, a: Self::V<S>) -> Self;
    /// Maximum of the lanes.
    fn v_reduce_max<S: Simd>(s: S, a: Self::V<S>) -> Self;
    /// `2^k` for integer-valued `k` in the normal exponent range.
    fn v_pow2i<S: Simd>(s: S, k: Self::V<S>) -> Self::V<S>;
}

macro_rules! simd_real_common {
    ($t:ty, $v:ident, $m:ident, $as_simd:ident, $as_mut_simd:ident, $load:ident, $store:ident,
     $splat:ident, $add:ident, $sub:ident, $mul:ident, $div:ident, $fma:ident, $min:ident,
     $max:ident, $abs:ident, $and:ident, $or:ident, $lt:ident, $gt:ident, $ge:ident, $eq:ident,
     $select:ident, $rsum:ident, $rmax:ident) => {
        type V<S: Simd> = S::$v;
        type M<S: Simd> = S::$m;

        #[inline(always)]
        fn v_as_simd<S: Simd>(x: &[Self]) -> (&[Self::V<S>], &[Self]) {
            S::$as_simd(x)
        }
        #[inline(always)]
        fn v_as_mut_simd<S: Simd>(x: &mut [Self]) -> (&mut [Self::V<S>], &mut [Self]) {
            S::$as_mut_simd(x)
        }
        #[inline(always)]
        fn v_load_partial<S: Simd>(s: S, x: &[Self]) -> Self::V<S> {
            s.$load(x)
        }
        #[inline(always)]
        fn v_store_partial<S: Simd>(s: S, x: &mut [Self], v: Self::V<S>) {
            s.$store(x, v)
        }
        #[inline(always)]
        fn v_splat<S: Simd>(s: S, x: Self) -> Self::V<S> {
            s.$splat(x)
        }
        #[inline(always)]
        fn v_add<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
            s.$add(a, b)
        }
        #[inline(always)]
        fn v_sub<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
            s.$sub(a, b)
        }
        #[inline(always)]
        fn v_mul<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
            s.$mul(a, b)
        }
        #[inline(always)]
        fn v_div<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
            s.$div(a, b)
        }
        #[inline(always)]
        fn v_fma<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S> {
            s.$fma(a, b, c)
        }
        #[inline(always)]
        fn v_min<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
            s.$min(a, b)
        }
        #[inline(always)]
        fn v_max<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S> {
            s.$max(a, b)
        }
        #[inline(always)]
        fn v_abs<S: Simd>(s: S, a: Self::V<S>) -> Self::V<S> {
            s.$abs(a)
        }
        #[inline(always)]
        fn v_copysign<S: Simd>(s: S, mag: Self::V<S>, sign: Self::V<S>) -> Self::V<S> {
            let sign_bit = s.$splat(-0.0);
            s.$or(s.$abs(mag), s.$and(sign, sign_bit))
        }
        #[inline(always)]
        fn v_lt<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S> {
            s.$lt(a, b)
        }
        #[inline(always)]
        fn v_gt<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S> {
            s.$gt(a, b)
        }
        #[inline(always)]
        fn v_ge<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S> {
            s.$ge(a, b)
        }
        #[inline(always)]
        fn v_eq<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::M<S> {
            s.$eq(a, b)
        }
        #[inline(always)]
        fn v_select<S: Simd>(s: S, m: Self::M<S>, t: Self::V<S>, f: Self::V<S>) -> Self::V<S> {
            s.$select(m, t, f)
        }
        #[inline(always)]
        fn v_reduce_sum<S: Simd>(s: S, a: Self::V<S>) -> Self {
            s.$rsum(a)
        }
        #[inline(always)]
        fn v_reduce_max<S: Simd>(s: S, a: Self::V<S>) -> Self {
            s.$rmax(a)
        }
    };
}

impl SimdReal for f64 {
    const SIMD_LOG2E: f64 = std::f64::consts::LOG2_E;
    const SIMD_LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // 0.693147180369123816490
    const SIMD_LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // 1.90821492927058770002e-10
    const SIMD_EXP_LO: f64 = -708.0;
    const SIMD_EXP_HI: f64 = 709.0;
    const SIMD_ROUND_MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    const SIMD_TANH_CLAMP: f64 = 20.0;
    const SIMD_EXPM1_POLY: &'static [f64] = &[
        1.0 / 6_227_020_800.0, // 1/13!
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
    ];

    simd_real_common!(
        f64,
        f64s,
        m64s,
        as_simd_f64s,
        as_mut_simd_f64s,
        partial_load_f64s,
        partial_store_f64s,
        splat_f64s,
        add_f64s,
        sub_f64s,
        mul_f64s,
        div_f64s,
        mul_add_f64s,
        min_f64s,
        max_f64s,
        abs_f64s,
        and_f64s,
        or_f64s,
        less_than_f64s,
        greater_than_f64s,
        greater_than_or_equal_f64s,
        equal_f64s,
        select_f64s,
        reduce_sum_f64s,
        reduce_max_f64s
    );

    #[inline(always)]
    fn v_pow2i<S: Simd>(s: S, k: S::f64s) -> S::f64s {
        // t = 1.5 * 2^52 + k * 2^32 is exact; its bits minus the magic's bits are `k << 32`.
        let magic = s.splat_f64s(Self::SIMD_ROUND_MAGIC);
        let t = s.mul_add_f64s(k, s.splat_f64s(4_294_967_296.0), magic);
        let k_hi = s.sub_u64s(s.transmute_u64s_f64s(t), s.transmute_u64s_f64s(magic));
        // Shift `k` from bit 32 to bit 52 of each 64-bit lane.
        let k_exp = if core::mem::size_of::<S::u32s>() == core::mem::size_of::<S::u64s>() {
            let k32: S::u32s = pulp::bytemuck::cast(k_hi);
            pulp::bytemuck::cast(s.wrapping_dyn_shl_u32s(k32, s.splat_u32s(20)))
        } else {
            s.mul_u64s(k_hi, s.splat_u64s(1 << 20))
        };
        s.transmute_f64s_u64s(s.add_u64s(k_exp, s.splat_u64s(1.0f64.to_bits())))
    }
}

impl SimdReal for f32 {
    const SIMD_LOG2E: f32 = std::f32::consts::LOG2_E;
    const SIMD_LN2_HI: f32 = f32::from_bits(0x3f31_8000); // 0.693359375
    const SIMD_LN2_LO: f32 = -2.121_944_4e-4;
    const SIMD_EXP_LO: f32 = -86.5;
    const SIMD_EXP_HI: f32 = 88.0;
    const SIMD_ROUND_MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    const SIMD_TANH_CLAMP: f32 = 10.0;
    const SIMD_EXPM1_POLY: &'static [f32] = &[
        1.0 / 5_040.0, // 1/7!
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
    ];

    simd_real_common!(
        f32,
        f32s,
        m32s,
        as_simd_f32s,
        as_mut_simd_f32s,
        partial_load_f32s,
        partial_store_f32s,
        splat_f32s,
        add_f32s,
        sub_f32s,
        mul_f32s,
        div_f32s,
        mul_add_f32s,
        min_f32s,
        max_f32s,
        abs_f32s,
        and_f32s,
        or_f32s,
        less_than_f32s,
        greater_than_f32s,
        greater_than_or_equal_f32s,
        equal_f32s,
        select_f32s,
        reduce_sum_f32s,
        reduce_max_f32s
    );

    #[inline(always)]
    fn v_pow2i<S: Simd>(s: S, k: S::f32s) -> S::f32s {
        let magic = s.splat_f32s(Self::SIMD_ROUND_MAGIC);
        let t = s.add_f32s(k, magic);
        let k_int = s.sub_u32s(s.transmute_u32s_f32s(t), s.transmute_u32s_f32s(magic));
        let k_exp = s.wrapping_dyn_shl_u32s(k_int, s.splat_u32s(23));
        s.transmute_f32s_u32s(s.add_u32s(k_exp, s.splat_u32s(1.0f32.to_bits())))
    }
}

/// `(2^k, q)` with `exp(x) = 2^k (1 + q)`, `q = expm1(r)`, for `x` in `[SIMD_EXP_LO, SIMD_EXP_HI]`.
#[inline(always)]
fn exp_parts<T: SimdReal, S: Simd>(s: S, x: T::V<S>) -> (T::V<S>, T::V<S>) {
    let magic = T::v_splat(s, T::SIMD_ROUND_MAGIC);
    let y = T::v_mul(s, x, T::v_splat(s, T::SIMD_LOG2E));
    let k = T::v_sub(s, T::v_add(s, y, magic), magic);
    let minus_k = T::v_sub(s, T::v_splat(s, T::c_zero_value()), k);
    let r = T::v_fma(s, minus_k, T::v_splat(s, T::SIMD_LN2_HI), x);
    let r = T::v_fma(s, minus_k, T::v_splat(s, T::SIMD_LN2_LO), r);
    let poly = T::SIMD_EXPM1_POLY;
    let mut acc = T::v_splat(s, poly[0]);
    for &c in &poly[1..] {
        acc = T::v_fma(s, acc, r, T::v_splat(s, c));
    }
    (T::v_pow2i(s, k), T::v_mul(s, r, acc))
}

/// `exp(x)` lane-wise: 0 below `SIMD_EXP_LO`, `+inf` above `SIMD_EXP_HI` (callers only use `x <= 40`),
/// NaN lanes give an unspecified finite value (callers mask them).
#[inline(always)]
pub fn exp<T: SimdReal, S: Simd>(s: S, x: T::V<S>) -> T::V<S> {
    let lo = T::v_splat(s, T::SIMD_EXP_LO);
    let hi = T::v_splat(s, T::SIMD_EXP_HI);
    let xc = T::v_min(s, T::v_max(s, x, lo), hi);
    let (p2, q) = exp_parts::<T, S>(s, xc);
    let e = T::v_fma(s, p2, q, p2);
    let zero = T::v_splat(s, T::c_zero_value());
    let e = T::v_select(s, T::v_lt(s, x, lo), zero, e);
    T::v_select(s, T::v_gt(s, x, hi), T::v_splat(s, T::c_inf_value()), e)
}

/// `exp(x) - 1` for `x` in `[SIMD_EXP_LO, SIMD_EXP_HI]`, accurate near 0.
#[inline(always)]
fn expm1_in_range<T: SimdReal, S: Simd>(s: S, x: T::V<S>) -> T::V<S> {
    let (p2, q) = exp_parts::<T, S>(s, x);
    T::v_fma(s, p2, q, T::v_sub(s, p2, T::v_splat(s, T::c_one_value())))
}

/// Lanes of `value` where `h` is not NaN, `h` (NaN) elsewhere.
#[inline(always)]
pub fn keep_nan<T: SimdReal, S: Simd>(s: S, h: T::V<S>, value: T::V<S>) -> T::V<S> {
    T::v_select(s, T::v_eq(s, h, h), value, h)
}

/// `tanh(h)` as `sign(h) u / (u + 2)`, `u = expm1(2 |h|)`, `|h|` clamped where it rounds to 1.
#[inline(always)]
pub fn tanh<T: SimdReal, S: Simd>(s: S, h: T::V<S>) -> T::V<S> {
    let a = T::v_min(s, T::v_abs(s, h), T::v_splat(s, T::SIMD_TANH_CLAMP));
    let u = expm1_in_range::<T, S>(s, T::v_add(s, a, a));
    let t = T::v_div(s, u, T::v_add(s, u, T::v_splat(s, T::c_two_value())));
    keep_nan::<T, S>(s, h, T::v_copysign(s, t, h))
}

/// `tanh'(h) = 1 - tanh(h)^2 = 4 v / (1 + v)^2`, `v = exp(-2 |h|)` (no cancellation).
#[inline(always)]
pub fn tanh_derivative<T: SimdReal, S: Simd>(s: S, h: T::V<S>) -> T::V<S> {
    let a = T::v_abs(s, h);
    let v = exp::<T, S>(
        s,
        T::v_sub(s, T::v_splat(s, T::c_zero_value()), T::v_add(s, a, a)),
    );
    let d = T::v_div(
        s,
        T::v_splat(s, T::c_one_value()),
        T::v_add(s, v, T::v_splat(s, T::c_one_value())),
    );
    let four_v = T::v_mul(s, v, T::v_splat(s, T::c_four_value()));
    keep_nan::<T, S>(s, h, T::v_mul(s, T::v_mul(s, four_v, d), d))
}

/// `(sigma(h), sigma'(h))` with `e = exp(-|h|)`: `sigma = 1/(1+e)` or `e/(1+e)`,
/// `sigma' = e/(1+e)^2`. NaN lanes are unspecified.
#[inline(always)]
fn sigmoid_parts<T: SimdReal, S: Simd>(s: S, h: T::V<S>) -> (T::V<S>, T::V<S>) {
    let e = exp::<T, S>(
        s,
        T::v_sub(s, T::v_splat(s, T::c_zero_value()), T::v_abs(s, h)),
    );
    let d = T::v_div(
        s,
        T::v_splat(s, T::c_one_value()),
        T::v_add(s, e, T::v_splat(s, T::c_one_value())),
    );
    let ed = T::v_mul(s, e, d);
    let sig = T::v_select(s, T::v_ge(s, h, T::v_splat(s, T::c_zero_value())), d, ed);
    (sig, T::v_mul(s, ed, d))
}

/// Logistic sigmoid `1 / (1 + exp(-h))`.
#[inline(always)]
pub fn sigmoid<T: SimdReal, S: Simd>(s: S, h: T::V<S>) -> T::V<S> {
    keep_nan::<T, S>(s, h, sigmoid_parts::<T, S>(s, h).0)
}

/// `sigma'(h) = sigma(h) (1 - sigma(h))`.
#[inline(always)]
pub fn sigmoid_derivative<T: SimdReal, S: Simd>(s: S, h: T::V<S>) -> T::V<S> {
    keep_nan::<T, S>(s, h, sigmoid_parts::<T, S>(s, h).1)
}

/// GELU argument `z = 2 u = 2 sqrt(2/pi) h (1 + 0.044715 h^2)` (so `gelu = h sigma(z)`) and
/// `dz/dh / 2 = sqrt(2/pi) (1 + 3 * 0.044715 h^2)`.
#[inline(always)]
fn gelu_z<T: SimdReal, S: Simd>(s: S, h: T::V<S>) -> (T::V<S>, T::V<S>) {
    // Same operation order as the scalar reference (`exp(z)` amplifies any rounding of `z`).
    let one = T::v_splat(s, T::c_one_value());
    let ah = T::v_mul(s, T::v_splat(s, T::c_gelu_a()), h);
    let z = T::v_mul(
        s,
        T::v_mul(s, T::v_splat(s, T::c_gelu_2c()), h),
        T::v_add(s, one, T::v_mul(s, ah, h)),
    );
    let a3h = T::v_mul(s, T::v_splat(s, T::c_gelu_3a()), h);
    let du = T::v_mul(
        s,
        T::v_splat(s, T::c_gelu_c()),
        T::v_add(s, one, T::v_mul(s, a3h, h)),
    );
    (z, du)
}

/// GELU (tanh approximation) `h/2 (1 + tanh(u)) = h sigma(2u)`; exactly 0 where `sigma`
/// underflows (so `h = -inf` gives 0, not NaN).
#[inline(always)]
pub fn gelu<T: SimdReal, S: Simd>(s: S, h: T::V<S>) -> T::V<S> {
    let (z, _) = gelu_z::<T, S>(s, h);
    let (sg, _) = sigmoid_parts::<T, S>(s, z);
    let zero = T::v_splat(s, T::c_zero_value());
    let v = T::v_select(s, T::v_eq(s, sg, zero), zero, T::v_mul(s, h, sg));
    keep_nan::<T, S>(s, h, v)
}

/// GELU derivative `sigma(2u) + 2 h u' sigma'(2u)`; the second term is exactly 0 where
/// `sigma'` underflows.
#[inline(always)]
pub fn gelu_derivative<T: SimdReal, S: Simd>(s: S, h: T::V<S>) -> T::V<S> {
    let (z, du) = gelu_z::<T, S>(s, h);
    let (sg, w) = sigmoid_parts::<T, S>(s, z);
    let zero = T::v_splat(s, T::c_zero_value());
    let hdu = T::v_mul(s, T::v_add(s, h, h), du);
    let term = T::v_select(s, T::v_eq(s, w, zero), zero, T::v_mul(s, hdu, w));
    keep_nan::<T, S>(s, h, T::v_add(s, sg, term))
}

/// `max(h, 0)` (0 for NaN, as the scalar reference).
#[inline(always)]
pub fn relu<T: SimdReal, S: Simd>(s: S, h: T::V<S>) -> T::V<S> {
    let zero = T::v_splat(s, T::c_zero_value());
    T::v_select(s, T::v_gt(s, h, zero), h, zero)
}

/// `1[h > 0]`.
#[inline(always)]
pub fn relu_derivative<T: SimdReal, S: Simd>(s: S, h: T::V<S>) -> T::V<S> {
    let zero = T::v_splat(s, T::c_zero_value());
    T::v_select(
        s,
        T::v_gt(s, h, zero),
        T::v_splat(s, T::c_one_value()),
        zero,
    )
}

/// Small constants needed by the generic code (kept out of [`SimdReal`]'s SIMD surface).
pub trait SimdConsts {
    /// 0.
    fn c_zero_value() -> Self;
    /// 1.
    fn c_one_value() -> Self;
    /// 2.
    fn c_two_value() -> Self;
    /// 4.
    fn c_four_value() -> Self;
    /// `+inf`.
    fn c_inf_value() -> Self;
    /// `sqrt(2/pi)`.
    fn c_gelu_c() -> Self;
    /// `2 sqrt(2/pi)`.
    fn c_gelu_2c() -> Self;
    /// `0.044715`.
    fn c_gelu_a() -> Self;
    /// `3 * 0.044715`.
    fn c_gelu_3a() -> Self;
}

macro_rules! simd_consts {
    ($t:ty) => {
        impl SimdConsts for $t {
            #[inline(always)]
            fn c_zero_value() -> Self {
                0.0
            }
            #[inline(always)]
            fn c_one_value() -> Self {
                1.0
            }
            #[inline(always)]
            fn c_two_value() -> Self {
                2.0
            }
            #[inline(always)]
            fn c_four_value() -> Self {
                4.0
            }
            #[inline(always)]
            fn c_inf_value() -> Self {
                <$t>::INFINITY
            }
            #[inline(always)]
            fn c_gelu_c() -> Self {
                crate::gelu::GELU_C as $t
            }
            #[inline(always)]
            fn c_gelu_2c() -> Self {
                (2.0 * crate::gelu::GELU_C) as $t
            }
            #[inline(always)]
            fn c_gelu_a() -> Self {
                crate::gelu::GELU_A as $t
            }
            #[inline(always)]
            fn c_gelu_3a() -> Self {
                (3.0 * crate::gelu::GELU_A) as $t
            }
        }
    };
}
simd_consts!(f32);
simd_consts!(f64);

/// Applies `f` lane-wise: `out[i] = f(x[i])`. Panics if the lengths differ.
#[inline(always)]
pub fn map_slice<T: SimdReal, S: Simd>(
    s: S,
    x: &[T],
    out: &mut [T],
    f: impl Fn(S, T::V<S>) -> T::V<S>,
) {
    assert_eq!(x.len(), out.len());
    let (xh, xt) = T::v_as_simd::<S>(x);
    let (oh, ot) = T::v_as_mut_simd::<S>(out);
    for (o, &v) in oh.iter_mut().zip(xh) {
        *o = f(s, v);
    }
    if !xt.is_empty() {
        let v = T::v_load_partial(s, xt);
        T::v_store_partial(s, ot, f(s, v));
    }
}

/// Applies `f` lane-wise in place: `x[i] = f(x[i])`.
#[inline(always)]
pub fn map_in_place<T: SimdReal, S: Simd>(s: S, x: &mut [T], f: impl Fn(S, T::V<S>) -> T::V<S>) {
    let (xh, xt) = T::v_as_mut_simd::<S>(x);
    for v in xh.iter_mut() {
        *v = f(s, *v);
    }
    if !xt.is_empty() {
        let v = T::v_load_partial(s, xt);
        T::v_store_partial(s, xt, f(s, v));
    }
}

/// `acc[i] = f(acc[i], x[i])` lane-wise. Panics if the lengths differ.
#[inline(always)]
pub fn zip_in_place<T: SimdReal, S: Simd>(
    s: S,
    acc: &mut [T],
    x: &[T],
    f: impl Fn(S, T::V<S>, T::V<S>) -> T::V<S>,
) {
    assert_eq!(x.len(), acc.len());
    let (xh, xt) = T::v_as_simd::<S>(x);
    let (ah, at) = T::v_as_mut_simd::<S>(acc);
    for (a, &v) in ah.iter_mut().zip(xh) {
        *a = f(s, *a, v);
    }
    if !xt.is_empty() {
        let v = T::v_load_partial(s, xt);
        let a = T::v_load_partial(s, at);
        T::v_store_partial(s, at, f(s, a, v));
    }
}

/// `true` when every entry of `x` is finite (neither NaN nor infinite).
#[inline(always)]
pub fn all_finite<T: SimdReal, S: Simd>(s: S, x: &[T]) -> bool {
    // `v - v` is 0 for finite `v` and NaN otherwise; NaN is sticky under addition.
    let (xh, xt) = T::v_as_simd::<S>(x);
    let mut acc = T::v_splat(s, T::c_zero_value());
    for &v in xh {
        acc = T::v_add(s, acc, T::v_sub(s, v, v));
    }
    if !xt.is_empty() {
        let v = T::v_load_partial(s, xt);
        acc = T::v_add(s, acc, T::v_sub(s, v, v));
    }
    let total = T::v_reduce_sum(s, acc);
    total == T::c_zero_value()
}
