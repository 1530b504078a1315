//! Mini-batches drawn without replacement, reshuffled each epoch.

use bali_kernels::Scalar;
use faer::{Mat, MatRef};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha12Rng;

use super::state::{RngState, SamplerState};

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
    rng: ChaCha12Rng,
}

impl BatchSampler {
    /// Rows `0..n` in order, reshuffled before the first batch, with `rng` (after it has
    /// drawn the initial weights).
    pub(crate) fn new(n: usize, rng: ChaCha12Rng) -> Self {
        BatchSampler {
            order: (0..n).collect(),
            cursor: n,
            epoch: 0,
            rng,
        }
    }

    /// The order, position, epoch and generator, to save.
    pub(crate) fn state(&self) -> SamplerState {
        SamplerState {
            order: self.order.clone(),
            cursor: self.cursor,
            epoch: self.epoch,
            rng: RngState::of(&self.rng),
        }
    }

    /// The sampler in a saved state (checked by the caller: `order` a permutation, `cursor`
    /// at most its length).
    pub(crate) fn from_state(state: SamplerState) -> Self {
        BatchSampler {
            rng: state.rng.rng(),
            order: state.order,
            cursor: state.cursor,
            epoch: state.epoch,
        }
    }

    /// The generator, for the draws a step makes (sampled-Fisher labels): they continue the
    /// same saved stream.
    pub(crate) fn rng_mut(&mut self) -> &mut ChaCha12Rng {
        &mut self.rng
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
