//! Mini-batches drawn without replacement, reshuffled each epoch.

use bali_kernels::Scalar;
use faer::{Mat, MatRef};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// The order of the training rows and the position in it.
///
/// A batch of `b < n` rows is the next `b` entries of a random permutation; when fewer than
/// `b` are left, the permutation is reshuffled (a new epoch, counted from the second
/// shuffle on) and the batch starts at its beginning.
#[derive(Clone, Debug)]
pub(crate) struct BatchSampler {
    order: Vec<usize>,
    cursor: usize,
    epoch: usize,
    rng: StdRng,
}

impl BatchSampler {
    /// Rows `0..n` in order, reshuffled before the first batch, with `rng` (after it has
    /// drawn the initial weights).
    pub(crate) fn new(n: usize, rng: StdRng) -> Self {
        BatchSampler {
            order: (0..n).collect(),
            cursor: n,
            epoch: 0,
            rng,
        }
    }

    /// Epoch of the last batch (0-based).
    pub(crate) fn epoch(&self) -> usize {
        self.epoch
    }

    /// Copies the next `batch` rows of `(x, y)` into `(xb, yb)` (resized when needed; no
    /// allocation once they have the batch's shape). `started` says whether a step has been
    /// taken before (the first shuffle does not start a new epoch).
    pub(crate) fn next_into<T: Scalar>(
        &mut self,
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        batch: usize,
        started: bool,
        xb: &mut Mat<T>,
        yb: &mut Mat<T>,
    ) {
        let n = self.order.len();
        if self.cursor + batch > n {
            self.order.shuffle(&mut self.rng);
            if started {
                self.epoch += 1;
            }
            self.cursor = 0;
        }
        let rows = &self.order[self.cursor..self.cursor + batch];
        self.cursor += batch;
        xb.resize_with(batch, x.ncols(), |_, _| T::zero());
        yb.resize_with(batch, y.ncols(), |_, _| T::zero());
        for (r, &i) in rows.iter().enumerate() {
            for j in 0..x.ncols() {
                xb[(r, j)] = x[(i, j)];
            }
            for j in 0..y.ncols() {
                yb[(r, j)] = y[(i, j)];
            }
        }
    }
}
