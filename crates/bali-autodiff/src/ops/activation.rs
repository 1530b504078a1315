//! Activation op: `A = phi(H)` elementwise, recording `D = phi'(H)` for the backward
//! `G_H = G_A ⊙ D`.

use bali_kernels::{Activation, Scalar};
use faer::{MatMut, MatRef};

/// Forward: `A = phi(H)` and `D = phi'(H)` (all B x q).
#[track_caller]
pub(crate) fn forward<T: Scalar>(
    activation: Activation,
    h: MatRef<'_, T>,
    a: MatMut<'_, T>,
    d: MatMut<'_, T>,
) {
    activation.apply(h, a);
    activation.derivative_mat(h, d);
}

/// Backward in place: `G <- G ⊙ D`, where row `r` of `G` uses row `r mod B` of `D`
/// (`G` may stack several seeds of the same batch: `m B x q` against a `B x q` derivative).
#[track_caller]
pub(crate) fn backward_in_place<T: Scalar>(mut g: MatMut<'_, T>, d: MatRef<'_, T>) {
    let b = d.nrows();
    assert!(g.ncols() == d.ncols() && (b == 0 || g.nrows() % b == 0));
    if b == 0 {
        return;
    }
    for j in 0..g.ncols() {
        let d_col = d.col(j);
        let mut g_col = g.as_mut().col_mut(j);
        match (
            g_col.as_mut().try_as_col_major_mut(),
            d_col.try_as_col_major(),
        ) {
            (Some(g_col), Some(d_col)) => {
                let d_col = d_col.as_slice();
                for block in g_col.as_slice_mut().chunks_exact_mut(b) {
                    for (gi, &di) in block.iter_mut().zip(d_col) {
                        *gi *= di;
                    }
                }
            }
            _ => {
                for r in 0..g_col.nrows() {
                    g_col[r] *= d_col[r % b];
                }
            }
        }
    }
}
