//! ALGORITHM.md 3.2 (`Improved`, the default): output layer first, then Gauss-Newton
//! preconditioned hidden targets with the proximal prior (Gauss-Seidel order).
//!
//! The output layer is an exact Bayesian linear regression on the likelihood's exact targets
//! where they exist (Gaussian: `T_L = Y`); otherwise (categorical) it takes the step-5 form
//! too, `T_L = F - alpha G_L D_L^{-1}` with the output Fisher `C_L = (1/B) sum_b (diag p_b -
//! p_b p_b^T)` and the proximal prior, and is still updated first.

use bali_autodiff::Trace;
use bali_kernels::{sub_scaled_in_place, Scalar};
use bali_mn::{FactorId, JitterPolicy, KronFactor};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};

use super::curvature::{output_fed_gram_diagonal_into, output_fed_gram_into};
use super::{fit_layer_buffers, fit_shape, prior, LayerState, Trainer};
use crate::config::{Fisher, Preconditioner, WdScale};
use crate::error::Result;

/// What step 5 reads besides the layer: the options, the EMA factor and whether this is a
/// curvature refresh step.
struct Step5<T> {
    alpha: T,
    gamma: T,
    floor: f64,
    beta: T,
    preconditioner: Preconditioner,
    jitter: JitterPolicy,
    refresh: bool,
}

/// Step 5 on one layer whose curvature EMA is up to date: `t <- t - alpha G D^{-1}` (`Kfac`)
/// or `t <- t - alpha G / ((1 + gamma) tr C~ / q + floor_abs)` (`Scalar`), with
/// `D = C~ + (gamma tr C~ / q + floor_abs) I` refactored and inverted on refresh steps (and
/// when none exists yet). `t` (B x q) holds `H` on entry; `g` is `G` (B x q). No curvature
/// (dead units: the gradient is zero too) leaves `t = H`. Returns the jitter retries and the
/// mean damped curvature `dbar = tr D / q = (1 + gamma) tr C~ / q + floor_abs` (0 without
/// curvature).
fn precondition<T: Scalar>(
    state: &mut LayerState<T>,
    l: usize,
    mut t: MatMut<'_, T>,
    g: MatRef<'_, T>,
    s: &Step5<T>,
    par: Par,
) -> Result<(u32, T)> {
    let Some(curv) = state.curvature.as_mut() else {
        unreachable!("step-5 layers carry a curvature EMA")
    };
    let q = t.ncols();
    let mean_diag = curv.mean_diag(s.beta);
    if curv.floor_abs.is_none() {
        // tr(C_l at step 1) / q: with bias correction C~ at step 1 is the batch C.
        curv.floor_abs = Some(T::of(s.floor) * mean_diag);
    }
    let floor_abs = curv.floor_abs.unwrap_or(T::zero());
    if mean_diag <= T::zero() {
        return Ok((0, T::zero()));
    }
    let dbar = (T::one() + s.gamma) * mean_diag + floor_abs;
    match s.preconditioner {
        Preconditioner::Kfac => {
            if s.refresh || state.damped.is_none() {
                let shift = s.gamma * mean_diag + floor_abs;
                let fill = |d: MatMut<'_, T>| {
                    curv.damped_lower_into(d, s.beta, shift);
                    Ok(())
                };
                match state.damped.as_mut() {
                    Some((factor, inverse)) => {
                        factor.refactor(fill, s.jitter, Par::Seq)?;
                        // D^{-1} once per refresh (2 q^3 flops): the B x q product G D^{-1}
                        // is then one GEMM, about twice as fast as two triangular solves
                        // with B right-hand sides.
                        factor.inverse_into(inverse.as_mut(), Par::Seq);
                    }
                    None => {
                        let mut d = Mat::<T>::zeros(q, q);
                        curv.damped_lower_into(d.as_mut(), s.beta, shift);
                        let factor =
                            KronFactor::new(d, FactorId::curvature(Some(l)), s.jitter, Par::Seq)?;
                        let inverse = factor.inverse(Par::Seq);
                        state.damped = Some((factor, inverse));
                    }
                }
            }
            let Some((factor, d_inv)) = state.damped.as_ref() else {
                unreachable!("the damped curvature factor was just built")
            };
            // T = H - alpha G D^{-1} (2 B q^2 flops).
            matmul(t.as_mut(), Accum::Add, g, d_inv.as_ref(), -s.alpha, par);
            Ok((factor.jitter().tries, dbar))
        }
        Preconditioner::Scalar => {
            sub_scaled_in_place(t, s.alpha / dbar, g);
            Ok((0, dbar))
        }
    }
}

impl<T: Scalar> Trainer<T> {
    /// One `Improved` step from the forward `trace` at the means (updated in place after
    /// the output layer); returns the jitter retries.
    pub(super) fn improved_step(
        &mut self,
        trace: &mut Trace<T>,
        y: MatRef<'_, T>,
        rho: T,
        par: Par,
    ) -> Result<u32> {
        let likelihood = self.config.likelihood;
        let n_layers = self.mlp().num_layers();
        let out = n_layers - 1;
        let q_out = self.mlp().num_outputs();
        let b = y.nrows();
        // Amortization: the curvature is computed on refresh steps only (and at the first
        // step, before any C_l exists).
        let refresh = self.step.is_multiple_of(self.config.refresh_every as u64)
            || self
                .layers
                .iter()
                .any(|state| state.curvature.as_ref().is_some_and(|c| c.step == 0));
        let beta = self.layers[0].stats.beta;
        let step5 = |alpha: f64| Step5 {
            alpha: T::of(alpha),
            gamma: T::of(self.config.gamma),
            floor: self.config.floor,
            beta,
            preconditioner: self.config.preconditioner,
            jitter: self.config.jitter,
            refresh,
        };
        let (output_step, hidden_step) =
            (step5(self.config.alpha), step5(self.config.hidden_alpha()));
        let mut targets = std::mem::take(&mut self.workspace.targets);
        fit_layer_buffers(&mut targets, &self.model.mlp().dims[1..], b);
        let result = (|| {
            // Step 2: the output layer first.
            let mut tries = if likelihood.exact_output_targets() {
                // Exact Bayesian linear regression on the likelihood's exact targets
                // (Gaussian: Y).
                self.update_layer(out, trace.inputs[out].as_ref(), y, rho)?
            } else {
                // Step-5 form: T_L = F - alpha G_L D_L^{-1}, G_L = d ell / dF.
                let ws = &mut self.workspace;
                let f = trace.output();
                fit_shape(&mut ws.seed, b, q_out);
                likelihood.seed_into(ws.seed.as_mut(), f, y);
                if refresh {
                    fit_shape(&mut ws.gram, q_out, q_out);
                    likelihood.output_fisher_sum_into(ws.gram.as_mut(), f);
                    if let Some(curv) = self.layers[out].curvature.as_mut() {
                        curv.update_from_gram(ws.gram.as_ref(), b, beta);
                    }
                }
                let t = &mut targets[out];
                t.copy_from(f);
                let (tries, dbar) = precondition(
                    &mut self.layers[out],
                    out,
                    t.as_mut(),
                    ws.seed.as_ref(),
                    &output_step,
                    par,
                )?;
                self.scale_shrinkage(out, &output_step, dbar);
                prior::move_proximal_mean(
                    &mut self.layers[out].prior,
                    T::of(self.config.lambda_out),
                    self.model.means()[out].as_ref(),
                );
                tries + self.update_layer(out, trace.inputs[out].as_ref(), t.as_ref(), rho)?
            };
            if n_layers == 1 {
                return Ok(tries);
            }
            // Step 3: F with the new output mean; G_l for the hidden layers.
            self.model
                .mlp()
                .forward_from(self.model.means(), trace, out, par)?;
            self.gradients(trace, y, par)?;
            self.hidden_curvature(trace, refresh, beta)?;
            let lambda = T::of(self.config.lambda);
            for (l, t) in targets.iter_mut().enumerate().take(out) {
                // Step 5: pseudo-targets T = H - alpha G D^{-1}.
                t.copy_from(&trace.pre[l]);
                let (layer_tries, dbar) = precondition(
                    &mut self.layers[l],
                    l,
                    t.as_mut(),
                    self.workspace.grads[l].as_ref(),
                    &hidden_step,
                    par,
                )?;
                tries += layer_tries;
                self.scale_shrinkage(l, &hidden_step, dbar);
                // Step 6: proximal times shrinkage prior,
                // Lambda_0 = lambda I + wd diag(1..1, 0), Lambda_0 M_0 = lambda M_prev.
                prior::move_proximal_mean(
                    &mut self.layers[l].prior,
                    lambda,
                    self.model.means()[l].as_ref(),
                );
                tries += self.update_layer(l, trace.inputs[l].as_ref(), t.as_ref(), rho)?;
            }
            Ok(tries)
        })();
        self.workspace.targets = targets;
        result
    }

    /// Step 6's shrinkage of layer `l`, whose mean damped curvature `precondition` just
    /// returned: under [`WdScale::Curvature`] (and `Evidence`) `Lambda_0 = lambda I + (alpha
    /// wd / dbar) E` (nothing to do without curvature, `dbar = 0`); under
    /// [`WdScale::Absolute`] `Lambda_0 = lambda I + wd E`, built once. With
    /// `input_relevance`, the first hidden layer's shrinkage is spread over its inputs
    /// (`prior::set_relevance_shrinkage`, every step, from the current mean).
    fn scale_shrinkage(&mut self, l: usize, s: &Step5<T>, dbar: T) {
        let output = l + 1 == self.mlp().num_layers();
        let relevance = self.config.input_relevance && l == 0 && !output;
        let shrink = match self.config.wd_scale {
            WdScale::Absolute if !relevance => return,
            WdScale::Absolute => T::of(self.config.wd),
            _ if dbar <= T::zero() => return,
            _ => s.alpha * T::of(self.config.wd) / dbar,
        };
        let lambda = T::of(if output {
            self.config.lambda_out
        } else {
            self.config.lambda
        });
        let prior = &mut self.layers[l].prior;
        if relevance {
            prior::set_relevance_shrinkage(prior, lambda, shrink, self.model.means()[l].as_ref());
        } else {
            prior::set_shrinkage(prior, lambda, shrink);
        }
    }

    /// Step 4 on refresh steps: every hidden layer's curvature EMA from `C_batch,l`. The
    /// layer feeding the output in closed form where the output Fisher is the identity;
    /// deeper layers (and all of them otherwise) from one backward pass of the stacked
    /// (q_L B) x q_L square-root Fisher seed (block k gives `Delta_k`), or of a B x q_L
    /// sampled-label seed with [`Fisher::Sampled`].
    fn hidden_curvature(&mut self, trace: &Trace<T>, refresh: bool, beta: T) -> Result<()> {
        if !refresh {
            return Ok(());
        }
        let likelihood = self.config.likelihood;
        let n_layers = self.mlp().num_layers();
        let out = n_layers - 1;
        let q_out = self.mlp().num_outputs();
        let b = trace.output().nrows();
        let last_hidden = out - 1;
        let (p_last, q_last) = self.mlp().layer_shape(last_hidden);
        let gram_par = self.par((b * p_last * p_last) as f64);
        // The Scalar preconditioner reads tr C~ only: the diagonal suffices.
        let diagonal_only = self.config.preconditioner == Preconditioner::Scalar;
        let closed_form = likelihood.identity_fisher();
        let ws = &mut self.workspace;
        if closed_form && !diagonal_only {
            fit_shape(&mut ws.gram, q_last, q_last);
            fit_shape(&mut ws.gram_scratch, q_last, q_last);
            output_fed_gram_into(
                ws.gram.as_mut(),
                ws.gram_scratch.as_mut(),
                self.model.means()[out].as_ref(),
                trace.deriv[last_hidden].as_ref(),
                gram_par,
            );
        }
        if closed_form && diagonal_only {
            ws.gram_diag.resize(q_last, T::zero());
            ws.gram_diag_scratch.resize(q_last, T::zero());
            output_fed_gram_diagonal_into(
                &mut ws.gram_diag,
                &mut ws.gram_diag_scratch,
                self.model.means()[out].as_ref(),
                trace.deriv[last_hidden].as_ref(),
            );
        }
        if last_hidden > 0 || !closed_form {
            let rows = match self.config.fisher {
                Fisher::Exact => q_out * b,
                Fisher::Sampled => b,
            };
            fit_shape(&mut ws.fisher_seed, rows, q_out);
            match self.config.fisher {
                Fisher::Exact => {
                    likelihood.fisher_sqrt_seed_into(ws.fisher_seed.as_mut(), trace.output())
                }
                Fisher::Sampled => likelihood.sampled_fisher_seed_into(
                    ws.fisher_seed.as_mut(),
                    trace.output(),
                    self.sampler.rng_mut(),
                ),
            }
            let stacked_flops: f64 = (1..n_layers)
                .map(|l| {
                    let (p, q) = self.model.mlp().layer_shape(l);
                    2.0 * (rows * (p - 1) * q) as f64
                })
                .sum();
            let stacked_par = self.policy.par(stacked_flops);
            fit_layer_buffers(&mut ws.stacked, &self.model.mlp().dims[1..], rows);
            self.model.mlp().backward_into(
                self.model.means(),
                trace,
                ws.fisher_seed.as_ref(),
                &mut ws.stacked,
                stacked_par,
            )?;
        }
        let stacked_rows = ws.fisher_seed.nrows();
        for l in 0..out {
            let (_, q) = self.model.mlp().layer_shape(l);
            let syrk_par = self.policy.par((stacked_rows * q * q) as f64);
            let ws = &self.workspace;
            let Some(curv) = self.layers[l].curvature.as_mut() else {
                unreachable!("Improved hidden layers carry a curvature EMA")
            };
            if closed_form && l == last_hidden {
                if diagonal_only {
                    curv.update_diagonal(&ws.gram_diag, b, beta);
                } else {
                    curv.update_from_gram(ws.gram.as_ref(), b, beta);
                }
            } else {
                curv.update(ws.stacked[l].as_ref(), b, beta, syrk_par);
            }
        }
        Ok(())
    }
}
