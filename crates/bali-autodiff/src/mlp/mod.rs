//! The MLP and its fixed tape: per layer a [`linear`](crate::ops::linear) op on the
//! bias-augmented input followed (hidden layers only) by an
//! [`activation`](crate::ops::activation) op (ALGORITHM.md section 1).
//!
//! Layer `l = 0..L-1` (0-based): `X_l = [A_{l-1}, 1]` (B x p_l, `A_{-1} = X_in`, bias column
//! last), `H_l = X_l W_l` (B x q_l), `A_l = phi(H_l)` for `l < L-1`, output `F = H_{L-1}`.
//! `G_l = d ell / d H_l` (B x q_l).

use crate::check::{expect_finite, expect_shape, shape_of};
use crate::error::{AutodiffError, Operand, Result, Shape};
use crate::loss::{loss_and_seed, Loss};
use crate::ops::{activation, linear};
use bali_kernels::{Activation, Scalar};
use faer::{Mat, MatRef, Par};

/// Everything a forward pass records for the backward pass and for BALI's statistics.
///
/// Memory: `sum_l B (p_l + 2 q_l)` scalars (the derivative `phi'(H_l)` is cached so that the
/// many backward passes of the curvature factor do not re-evaluate the activation).
#[derive(Clone, Debug, PartialEq)]
pub struct Trace<T> {
    /// `X_l = [A_{l-1}, 1]` (B x p_l) for `l = 0..L-1`, bias column last.
    pub inputs: Vec<Mat<T>>,
    /// `H_l = X_l W_l` (B x q_l) for `l = 0..L-1`; `H_{L-1} = F`.
    pub pre: Vec<Mat<T>>,
    /// `phi'(H_l)` (B x q_l) for the hidden layers `l = 0..L-2` (length `L - 1`).
    pub deriv: Vec<Mat<T>>,
}

impl<T> Default for Trace<T> {
    /// The empty trace (no layers), e.g. a workspace for [`Mlp::forward_into`].
    fn default() -> Self {
        Trace {
            inputs: Vec::new(),
            pre: Vec::new(),
            deriv: Vec::new(),
        }
    }
}

impl<T> Trace<T> {
    /// The network output `F = H_{L-1}` (B x q_L); an empty 0 x 0 view for an empty trace.
    pub fn output(&self) -> MatRef<'_, T> {
        match self.pre.last() {
            Some(f) => f.as_ref(),
            None => MatRef::from_column_major_slice(&[], 0, 0),
        }
    }

    /// Batch size `B` (rows of every recorded matrix); 0 for an empty trace.
    pub fn batch(&self) -> usize {
        self.inputs.first().map_or(0, |x| x.nrows())
    }

    /// Number of recorded layers `L`.
    pub fn num_layers(&self) -> usize {
        self.pre.len()
    }
}

/// A multilayer perceptron: widths `d_0..d_L` and one hidden activation `phi`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mlp {
    /// Layer widths `d_0` (inputs) .. `d_L` (outputs).
    pub dims: Vec<usize>,
    /// Activation of every hidden layer (the output layer is linear).
    pub activation: Activation,
}

impl Mlp {
    /// A network with widths `dims = [d_0, .., d_L]`: at least two, all positive.
    pub fn new(dims: Vec<usize>, activation: Activation) -> Result<Self> {
        let mlp = Mlp { dims, activation };
        mlp.validate()?;
        Ok(mlp)
    }

    /// Number of linear layers `L = dims.len() - 1`.
    pub fn num_layers(&self) -> usize {
        self.dims.len().saturating_sub(1)
    }

    /// `(p_l, q_l) = (d_l + 1, d_{l+1})`: shape of `W_l`.
    ///
    /// # Panics
    /// If `l >= self.num_layers()`.
    pub fn layer_shape(&self, l: usize) -> (usize, usize) {
        (self.dims[l] + 1, self.dims[l + 1])
    }

    /// Shapes of all weight matrices, `[(p_0, q_0), .., (p_{L-1}, q_{L-1})]`.
    pub fn layer_shapes(&self) -> Vec<(usize, usize)> {
        (0..self.num_layers())
            .map(|l| self.layer_shape(l))
            .collect()
    }

    /// Number of outputs `q_L = d_L` (0 for invalid widths).
    pub fn num_outputs(&self) -> usize {
        self.dims.last().copied().unwrap_or(0)
    }

    /// Random initial weights with a zero bias row. Non-bias entries are uniform on
    /// `(-a, a)` with `a = sqrt(6 / d_l)` (He) for hidden layers with ReLU or GELU, and
    /// `a = sqrt(6 / (d_l + d_{l+1}))` (Glorot) for hidden tanh / sigmoid / identity layers and
    /// for the (linear) output layer. `W_l` is `(d_l + 1) x d_{l+1}`.
    pub fn init_weights<T: Scalar, R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Vec<Mat<T>> {
        let layers = self.num_layers();
        (0..layers)
            .map(|l| {
                let (p, q) = self.layer_shape(l);
                let fan_in = (p - 1).max(1) as f64;
                let fan_out = q as f64;
                let he = matches!(self.activation, Activation::Relu | Activation::Gelu);
                let a = if l + 1 < layers && he {
                    (6.0 / fan_in).sqrt()
                } else {
                    (6.0 / (fan_in + fan_out)).sqrt()
                };
                let mut w = Mat::<T>::zeros(p, q);
                for j in 0..q {
                    for i in 0..p - 1 {
                        let u: f64 = rng.random();
                        w[(i, j)] = T::of(a * (2.0 * u - 1.0));
                    }
                }
                w
            })
            .collect()
    }

    /// Forward pass at `weights`: records `X_l`, `H_l` and `phi'(H_l)` for every layer.
    ///
    /// Shapes: `weights[l]` p_l x q_l (`L` of them), `x` B x d_0. Errors: wrong widths, layer
    /// count or shapes (naming the layer), a non-finite entry of `x` or of a weight matrix.
    pub fn forward<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        x: MatRef<'_, T>,
        par: Par,
    ) -> Result<Trace<T>> {
        self.run_forward(weights, x, None, par)
    }

    /// [`Mlp::forward`] into a caller-owned trace: when `trace` already fits the network and
    /// a batch of `x.nrows()` rows its buffers are reused (no allocation, no zeroing),
    /// otherwise it is replaced by a fresh one. Same values and errors as [`Mlp::forward`];
    /// on error `trace` is left unchanged.
    pub fn forward_into<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        x: MatRef<'_, T>,
        trace: &mut Trace<T>,
        par: Par,
    ) -> Result<()> {
        let fits = self.check_trace(trace).is_ok_and(|b| b == x.nrows());
        if !fits {
            *trace = self.run_forward(weights, x, None, par)?;
            return Ok(());
        }
        self.validate()?;
        self.check_weights(weights)?;
        expect_shape(x, Operand::Input, x.nrows(), self.dims[0])?;
        expect_finite(x, Operand::Input)?;
        trace.inputs[0].subcols_mut(0, self.dims[0]).copy_from(x);
        // The layers never write the bias columns; they are public fields, so reset them.
        for (l, xl) in trace.inputs.iter_mut().enumerate() {
            xl.col_mut(self.dims[l]).fill(T::one());
        }
        self.compute_layers(weights, trace, 0, None, par);
        Ok(())
    }

    /// Forward pass with additive offsets on the pre-activations:
    /// `H_l = X_l W_l + O_l` (`O_l` B x q_l, one per layer). With all `O_l = 0` it equals
    /// [`Mlp::forward`]; by definition `G_l = d ell / d O_l` at `O = 0`, which is what the
    /// finite-difference tests of [`Mlp::backward`] perturb.
    pub fn forward_with_offsets<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        x: MatRef<'_, T>,
        offsets: &[Mat<T>],
        par: Par,
    ) -> Result<Trace<T>> {
        self.run_forward(weights, x, Some(offsets), par)
    }

    /// Recomputes layers `start..L` of `trace` in place after `weights[start..]` changed;
    /// `X_start` (and everything before it) is reused unchanged. Allocates nothing.
    ///
    /// Errors: `start >= L`, weights or trace not fitting the network, non-finite weights of
    /// the recomputed layers or a non-finite entry of `X_start`.
    pub fn forward_from<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        trace: &mut Trace<T>,
        start: usize,
        par: Par,
    ) -> Result<()> {
        self.validate()?;
        let layers = self.num_layers();
        if start >= layers {
            return Err(AutodiffError::StartOutOfRange { start, layers });
        }
        self.check_weight_shapes(weights)?;
        for (l, w) in weights.iter().enumerate().skip(start) {
            expect_finite(w.as_ref(), Operand::Weights { layer: l })?;
        }
        self.check_trace(trace)?;
        expect_finite(trace.inputs[start].as_ref(), Operand::Input)?;
        self.compute_layers(weights, trace, start, None, par);
        Ok(())
    }

    /// Backward pass of an arbitrary output seed `S = d ell / dF` (B x q_L): returns
    /// `G_l = d ell / d H_l` (B x q_l) for every layer, `G_{L-1} = S` and
    ///
    /// `G_{l-1} = (G_l W_l[..p_l - 1, :]^T) ⊙ phi'(H_{l-1})`.
    ///
    /// Cost `2 B sum_l (p_l - 1) q_l` flops; allocates only the returned `G_l`.
    pub fn backward<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        trace: &Trace<T>,
        seed: MatRef<'_, T>,
        par: Par,
    ) -> Result<Vec<Mat<T>>> {
        let b = self.check_backward(weights, trace)?;
        expect_shape(seed, Operand::Seed, b, self.num_outputs())?;
        expect_finite(seed, Operand::Seed)?;
        let mut gs = self.alloc_gs(b);
        gs[self.num_layers() - 1].copy_from(seed);
        self.backward_unchecked(weights, trace, &mut gs, par);
        Ok(gs)
    }

    /// Backward pass of `m` stacked seeds of the same batch: `seed` is (m B) x q_L, row
    /// `r` belonging to batch row `r mod B`. Returns `G_l` ((m B) x q_l), block `i` being the
    /// [`Mlp::backward`] of seed block `i`; one pass instead of `m`, with `m`-fold larger
    /// matrix products (used for the K columns of the categorical Fisher square root).
    pub fn backward_stacked<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        trace: &Trace<T>,
        seed: MatRef<'_, T>,
        par: Par,
    ) -> Result<Vec<Mat<T>>> {
        let b = self.check_backward(weights, trace)?;
        self.check_stacked_seed(seed, b)?;
        let mut gs = self.alloc_gs(seed.nrows());
        gs[self.num_layers() - 1].copy_from(seed);
        self.backward_unchecked(weights, trace, &mut gs, par);
        Ok(gs)
    }

    /// [`Mlp::backward_stacked`] into caller-owned `gs` (`gs[l]` is `seed.nrows() x q_l`):
    /// allocates nothing, for hot loops over many seeds.
    pub fn backward_into<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        trace: &Trace<T>,
        seed: MatRef<'_, T>,
        gs: &mut [Mat<T>],
        par: Par,
    ) -> Result<()> {
        let b = self.check_backward(weights, trace)?;
        self.check_stacked_seed(seed, b)?;
        self.check_gs(gs, seed.nrows())?;
        gs[self.num_layers() - 1].copy_from(seed);
        self.backward_unchecked(weights, trace, gs, par);
        Ok(())
    }

    /// Backward of output unit `k`: the seed has column `k` all ones and zeros elsewhere, so
    /// row `n` of the returned `G_l` is `dF_nk / dH_l[n, :]` — the rows of
    /// `Delta_k = dF_k / dH_l` (B x q_l) of ALGORITHM.md section 3.2.
    pub fn output_jacobian_backward<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        trace: &Trace<T>,
        k: usize,
        par: Par,
    ) -> Result<Vec<Mat<T>>> {
        let b = self.check_backward(weights, trace)?;
        let outputs = self.num_outputs();
        if k >= outputs {
            return Err(AutodiffError::OutputUnitOutOfRange { unit: k, outputs });
        }
        let mut gs = self.alloc_gs(b);
        gs[self.num_layers() - 1].col_mut(k).fill(T::one());
        self.backward_unchecked(weights, trace, &mut gs, par);
        Ok(gs)
    }

    /// Weight gradients `dW_l = X_l^T G_l` (p_l x q_l) from a trace and the `G_l` of
    /// [`Mlp::backward`] (B x q_l each). Cost `2 B sum_l p_l q_l` flops.
    pub fn weight_grads<T: Scalar>(
        &self,
        trace: &Trace<T>,
        gs: &[Mat<T>],
        par: Par,
    ) -> Result<Vec<Mat<T>>> {
        let mut dws: Vec<Mat<T>> = self
            .layer_shapes()
            .into_iter()
            .map(|(p, q)| Mat::zeros(p, q))
            .collect();
        self.weight_grads_into(trace, gs, &mut dws, par)?;
        Ok(dws)
    }

    /// [`Mlp::weight_grads`] into caller-owned `dws` (`dws[l]` p_l x q_l); allocates nothing.
    pub fn weight_grads_into<T: Scalar>(
        &self,
        trace: &Trace<T>,
        gs: &[Mat<T>],
        dws: &mut [Mat<T>],
        par: Par,
    ) -> Result<()> {
        self.validate()?;
        let b = self.check_trace(trace)?;
        self.check_gs(gs, b)?;
        self.check_list_shapes(dws, "weight gradients", |l| Operand::Gradient { layer: l })?;
        for ((dw, x), g) in dws.iter_mut().zip(&trace.inputs).zip(gs) {
            linear::backward_weights(dw.as_mut(), x.as_ref(), g.as_ref(), par);
        }
        Ok(())
    }

    /// Objective and weight gradients in one call: forward, [`loss_and_seed`], backward,
    /// [`Mlp::weight_grads`]. Returns `(ell, [dW_0, .., dW_{L-1}])`.
    pub fn value_and_grads<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        x: MatRef<'_, T>,
        loss: &Loss<'_, T>,
        par: Par,
    ) -> Result<(T, Vec<Mat<T>>)> {
        let trace = self.forward(weights, x, par)?;
        let (value, seed) = loss_and_seed(loss, trace.output())?;
        let gs = self.backward(weights, &trace, seed.as_ref(), par)?;
        let dws = self.weight_grads(&trace, &gs, par)?;
        Ok((value, dws))
    }

    // ---------------------------------------------------------------- internals

    fn validate(&self) -> Result<()> {
        let reason = if self.dims.len() < 2 {
            Some("need at least two widths (inputs and outputs)")
        } else if self.dims.contains(&0) {
            Some("every width must be positive")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(AutodiffError::InvalidDims {
                dims: self.dims.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

    fn check_list_shapes<T>(
        &self,
        list: &[Mat<T>],
        what: &'static str,
        operand: impl Fn(usize) -> Operand,
    ) -> Result<()> {
        let layers = self.num_layers();
        if list.len() != layers {
            return Err(AutodiffError::LayerCount {
                what,
                expected: layers,
                got: list.len(),
            });
        }
        for (l, m) in list.iter().enumerate() {
            let (p, q) = self.layer_shape(l);
            expect_shape(m.as_ref(), operand(l), p, q)?;
        }
        Ok(())
    }

    fn check_weight_shapes<T>(&self, weights: &[Mat<T>]) -> Result<()> {
        self.check_list_shapes(weights, "weights", |l| Operand::Weights { layer: l })
    }

    fn check_weights<T: Scalar>(&self, weights: &[Mat<T>]) -> Result<()> {
        self.check_weight_shapes(weights)?;
        for (l, w) in weights.iter().enumerate() {
            expect_finite(w.as_ref(), Operand::Weights { layer: l })?;
        }
        Ok(())
    }

    /// `gs[l]` must be `rows x q_l` for every layer.
    fn check_gs<T>(&self, gs: &[Mat<T>], rows: usize) -> Result<()> {
        let layers = self.num_layers();
        if gs.len() != layers {
            return Err(AutodiffError::LayerCount {
                what: "layer gradients G",
                expected: layers,
                got: gs.len(),
            });
        }
        for (l, g) in gs.iter().enumerate() {
            let q = self.dims[l + 1];
            if g.nrows() != rows || g.ncols() != q {
                return Err(AutodiffError::TraceMismatch {
                    layer: l,
                    what: "layer gradient G_l",
                    expected: Shape(rows, q),
                    got: shape_of(g.as_ref()),
                });
            }
        }
        Ok(())
    }

    /// Checks every recorded matrix of `trace` against the network; returns the batch size.
    fn check_trace<T>(&self, trace: &Trace<T>) -> Result<usize> {
        let layers = self.num_layers();
        for (what, got, expected) in [
            ("trace inputs X_l", trace.inputs.len(), layers),
            ("trace pre-activations H_l", trace.pre.len(), layers),
            ("trace derivatives phi'(H_l)", trace.deriv.len(), layers - 1),
        ] {
            if got != expected {
                return Err(AutodiffError::LayerCount {
                    what,
                    expected,
                    got,
                });
            }
        }
        let b = trace.batch();
        let mismatch = |layer, what, expected: Shape, m: &Mat<T>| {
            if m.nrows() == expected.0 && m.ncols() == expected.1 {
                Ok(())
            } else {
                Err(AutodiffError::TraceMismatch {
                    layer,
                    what,
                    expected,
                    got: shape_of(m.as_ref()),
                })
            }
        };
        for l in 0..layers {
            let (p, q) = self.layer_shape(l);
            mismatch(l, "input X_l", Shape(b, p), &trace.inputs[l])?;
            mismatch(l, "pre-activation H_l", Shape(b, q), &trace.pre[l])?;
            if l + 1 < layers {
                mismatch(l, "derivative phi'(H_l)", Shape(b, q), &trace.deriv[l])?;
            }
        }
        Ok(b)
    }

    fn check_backward<T: Scalar>(&self, weights: &[Mat<T>], trace: &Trace<T>) -> Result<usize> {
        self.validate()?;
        self.check_weights(weights)?;
        self.check_trace(trace)
    }

    /// A stacked seed is (m B) x q_L for some `m >= 0`, and finite.
    fn check_stacked_seed<T: Scalar>(&self, seed: MatRef<'_, T>, b: usize) -> Result<()> {
        let q = self.num_outputs();
        let rows_ok = if b == 0 {
            seed.nrows() == 0
        } else {
            seed.nrows() % b == 0
        };
        if !rows_ok || seed.ncols() != q {
            return Err(AutodiffError::ShapeMismatch {
                operand: Operand::Seed,
                expected: Shape(b, q),
                got: shape_of(seed),
            });
        }
        expect_finite(seed, Operand::Seed)
    }

    fn alloc_gs<T: Scalar>(&self, rows: usize) -> Vec<Mat<T>> {
        self.dims[1..]
            .iter()
            .map(|&q| Mat::zeros(rows, q))
            .collect()
    }

    fn run_forward<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        x: MatRef<'_, T>,
        offsets: Option<&[Mat<T>]>,
        par: Par,
    ) -> Result<Trace<T>> {
        self.validate()?;
        self.check_weights(weights)?;
        let b = x.nrows();
        expect_shape(x, Operand::Input, b, self.dims[0])?;
        expect_finite(x, Operand::Input)?;
        if let Some(offsets) = offsets {
            let layers = self.num_layers();
            if offsets.len() != layers {
                return Err(AutodiffError::LayerCount {
                    what: "offsets",
                    expected: layers,
                    got: offsets.len(),
                });
            }
            for (l, o) in offsets.iter().enumerate() {
                let operand = Operand::Offset { layer: l };
                expect_shape(o.as_ref(), operand, b, self.dims[l + 1])?;
                expect_finite(o.as_ref(), operand)?;
            }
        }
        let layers = self.num_layers();
        let mut trace = Trace {
            inputs: (0..layers)
                .map(|l| {
                    let d = self.dims[l];
                    let mut xl = Mat::zeros(b, d + 1);
                    xl.col_mut(d).fill(T::one());
                    xl
                })
                .collect(),
            pre: self.alloc_gs(b),
            deriv: (0..layers - 1)
                .map(|l| Mat::zeros(b, self.dims[l + 1]))
                .collect(),
        };
        trace.inputs[0].subcols_mut(0, self.dims[0]).copy_from(x);
        self.compute_layers(weights, &mut trace, 0, offsets, par);
        Ok(trace)
    }

    /// Layers `start..L` of the tape, forward, into the buffers of `trace` (shapes checked).
    fn compute_layers<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        trace: &mut Trace<T>,
        start: usize,
        offsets: Option<&[Mat<T>]>,
        par: Par,
    ) {
        let layers = self.num_layers();
        for l in start..layers {
            let offset = offsets.map(|o| o[l].as_ref());
            linear::forward(
                trace.pre[l].as_mut(),
                trace.inputs[l].as_ref(),
                weights[l].as_ref(),
                offset,
                par,
            );
            if l + 1 < layers {
                let q = self.dims[l + 1];
                activation::forward(
                    self.activation,
                    trace.pre[l].as_ref(),
                    trace.inputs[l + 1].subcols_mut(0, q),
                    trace.deriv[l].as_mut(),
                );
            }
        }
    }

    /// The reversed sweep; `gs[L-1]` holds the seed, every shape has been checked.
    fn backward_unchecked<T: Scalar>(
        &self,
        weights: &[Mat<T>],
        trace: &Trace<T>,
        gs: &mut [Mat<T>],
        par: Par,
    ) {
        for l in (1..self.num_layers()).rev() {
            let (lower, upper) = gs.split_at_mut(l);
            let g_prev = &mut lower[l - 1];
            linear::backward_input(g_prev.as_mut(), upper[0].as_ref(), weights[l].as_ref(), par);
            activation::backward_in_place(g_prev.as_mut(), trace.deriv[l - 1].as_ref());
        }
    }
}

#[cfg(test)]
mod tests;
