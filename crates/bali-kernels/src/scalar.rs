//! The floating-point types every BALI crate is generic over.

/// `f32` or `f64`: a faer real field that is also a `num_traits::Float`, with the crate's SIMD
/// vector math (a sealed supertrait: no other type can implement `Scalar`).
pub trait Scalar:
    crate::simd::SimdReal
    + faer::traits::RealField
    + num_traits::Float
    + num_traits::FromPrimitive
    + Copy
    + Default
    + Send
    + Sync
    + std::fmt::Debug
    + std::fmt::Display
    + 'static
{
    /// Name used in benchmark output (`"f32"` / `"f64"`).
    const NAME: &'static str;
    /// Machine epsilon of the type.
    const EPS: Self;
    /// Lossy conversion from `f64` (rounds for `f32`).
    fn of(x: f64) -> Self;
    /// Widening conversion to `f64`.
    fn to_f64(self) -> f64;
}

impl Scalar for f64 {
    const NAME: &'static str = "f64";
    const EPS: Self = f64::EPSILON;
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

impl Scalar for f32 {
    const NAME: &'static str = "f32";
    const EPS: Self = f32::EPSILON;
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}
