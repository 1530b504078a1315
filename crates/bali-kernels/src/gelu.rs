//! Constants of the tanh approximation of GELU, `gelu(h) = h/2 (1 + tanh(u))`,
//! `u = GELU_C (h + GELU_A h^3)`, shared by the scalar (`activation`) and the SIMD (`simd`)
//! kernels, so that neither module depends on the other for them.

/// `sqrt(2 / pi)`.
pub(crate) const GELU_C: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient `0.044715`.
pub(crate) const GELU_A: f64 = 0.044_715;
