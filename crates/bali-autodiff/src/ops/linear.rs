//! Linear op on a bias-augmented input: `H = X W`, `X = [A, 1]` (bias column last, so the
//! bias is the last row of `W`).

use bali_kernels::Scalar;
use faer::{Accum, MatMut, MatRef, Par};

/// Forward: `H = X W` (+ `O` when an offset is given).
///
/// Shapes: `x` B x p, `w` p x q, `h` B x q, `offset` B x q.
#[track_caller]
pub(crate) fn forward<T: Scalar>(
    mut h: MatMut<'_, T>,
    x: MatRef<'_, T>,
    w: MatRef<'_, T>,
    offset: Option<MatRef<'_, T>>,
    par: Par,
) {
    assert!(x.ncols() == w.nrows() && h.nrows() == x.nrows() && h.ncols() == w.ncols());
    faer::linalg::matmul::matmul(h.as_mut(), Accum::Replace, x, w, T::one(), par);
    if let Some(o) = offset {
        assert!(o.nrows() == h.nrows() && o.ncols() == h.ncols());
        for j in 0..h.ncols() {
            for i in 0..h.nrows() {
                h[(i, j)] += o[(i, j)];
            }
        }
    }
}

/// Backward to the (non-bias) input: `dA = G W[..p-1, :]^T` — the gradient w.r.t. the bias
/// column of `X` is a constant's and is dropped.
///
/// Shapes: `g` B x q, `w` p x q, `da` B x (p - 1).
#[track_caller]
pub(crate) fn backward_input<T: Scalar>(
    da: MatMut<'_, T>,
    g: MatRef<'_, T>,
    w: MatRef<'_, T>,
    par: Par,
) {
    let p = w.nrows();
    assert!(g.ncols() == w.ncols() && da.nrows() == g.nrows() && da.ncols() + 1 == p);
    let w_nobias = w.subrows(0, p - 1);
    faer::linalg::matmul::matmul(da, Accum::Replace, g, w_nobias.transpose(), T::one(), par);
}

/// Backward to the weights: `dW = X^T G`.
///
/// Shapes: `x` B x p, `g` B x q, `dw` p x q.
#[track_caller]
pub(crate) fn backward_weights<T: Scalar>(
    dw: MatMut<'_, T>,
    x: MatRef<'_, T>,
    g: MatRef<'_, T>,
    par: Par,
) {
    assert!(x.nrows() == g.nrows() && dw.nrows() == x.ncols() && dw.ncols() == g.ncols());
    faer::linalg::matmul::matmul(dw, Accum::Replace, x.transpose(), g, T::one(), par);
}
