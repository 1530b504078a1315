//! ALGORITHM.md 3.2 (`Improved`, the default): output layer first, then Gauss-Newton
//! preconditioned hidden targets with the proximal prior (Gauss-Seidel order).

use bali_autodiff::Trace;
use bali_kernels::{sub_scaled_in_place, Scalar};
use bali_mn::{FactorId, KronFactor};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

use super::curvature::{output_fed_gram_diagonal_into, output_fed_gram_into};
use super::{fit_layer_buffers, fit_shape, prior, Trainer};
use crate::config::Preconditioner;
use crate::error::{BaliError, Result};

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
        if !likelihood.exact_output_targets() {
            return Err(BaliError::Unsupported {
                what: "an output layer without exact targets (3.2 step 5 form)",
                needs: "the categorical likelihood (not built yet)",
            });
        }
        let n_layers = self.mlp().num_layers();
        let out = n_layers - 1;
        let q_out = self.mlp().num_outputs();
        // Step 2: exact Bayesian linear regression of the output layer on the likelihood's
        // exact targets (Gaussian: Y).
        let mut tries = self.update_layer(out, trace.inputs[out].as_ref(), y, rho)?;
        if n_layers == 1 {
            return Ok(tries);
        }
        // Step 3: F with the new output mean; G_l for the hidden layers.
        self.model
            .mlp()
            .forward_from(self.model.means(), trace, out, par)?;
        self.gradients(trace, y, par)?;
        // Step 4: curvature factors. The layer feeding the output in closed form where the
        // output Fisher is the identity; deeper layers from the stacked
        // `Delta_k = dF_k / dH_l`, one backward pass of the (q_L B) x q_L square-root Fisher
        // seed (block k of the result is the backward pass of output unit k).
        let b = y.nrows();
        let last_hidden = out - 1;
        // Amortization: the curvature is computed on refresh steps only (and at the first
        // step, before any C_l exists).
        let refresh = self.step.is_multiple_of(self.config.refresh_every as u64)
            || self.layers[..out]
                .iter()
                .any(|state| state.curvature.as_ref().is_some_and(|c| c.step == 0));
        let (p_last, q_last) = self.mlp().layer_shape(last_hidden);
        let gram_par = self.par((b * p_last * p_last) as f64);
        // The Scalar preconditioner reads tr C~ only: the diagonal suffices.
        let diagonal_only = self.config.preconditioner == Preconditioner::Scalar;
        let closed_form = refresh && likelihood.identity_fisher();
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
        let stacked_needed = refresh && (last_hidden > 0 || !likelihood.identity_fisher());
        if stacked_needed {
            fit_shape(&mut ws.fisher_seed, q_out * b, q_out);
            likelihood.fisher_sqrt_seed_into(ws.fisher_seed.as_mut(), trace.output());
            let stacked_flops: f64 = (1..n_layers)
                .map(|l| {
                    let (p, q) = self.model.mlp().layer_shape(l);
                    2.0 * (q_out * b * (p - 1) * q) as f64
                })
                .sum();
            let stacked_par = self.policy.par(stacked_flops);
            fit_layer_buffers(&mut ws.stacked, &self.model.mlp().dims[1..], q_out * b);
            self.model.mlp().backward_into(
                self.model.means(),
                trace,
                ws.fisher_seed.as_ref(),
                &mut ws.stacked,
                stacked_par,
            )?;
        }
        let beta = self.layers[0].stats.beta;
        let alpha = T::of(self.config.hidden_alpha());
        let gamma = T::of(self.config.gamma);
        let lambda = T::of(self.config.lambda);
        let floor = self.config.floor;
        let mut targets = std::mem::take(&mut self.workspace.targets);
        fit_layer_buffers(&mut targets, &self.model.mlp().dims[1..], b);
        let result = (|| {
            for (l, t) in targets.iter_mut().enumerate().take(out) {
                let (_, q) = self.mlp().layer_shape(l);
                let syrk_par = self.par((b * q_out * q * q) as f64);
                let ws = &self.workspace;
                let state = &mut self.layers[l];
                let Some(curv) = state.curvature.as_mut() else {
                    unreachable!("Improved hidden layers carry a curvature EMA")
                };
                if closed_form && l == last_hidden {
                    if diagonal_only {
                        curv.update_diagonal(&ws.gram_diag, b, beta);
                    } else {
                        curv.update_from_gram(ws.gram.as_ref(), b, beta);
                    }
                } else if refresh {
                    curv.update(ws.stacked[l].as_ref(), b, beta, syrk_par);
                }
                let mean_diag = curv.mean_diag(beta);
                if curv.floor_abs.is_none() {
                    // tr(C_l at step 1) / q: with bias correction C~ at step 1 is the batch C.
                    curv.floor_abs = Some(T::of(floor) * mean_diag);
                }
                let floor_abs = curv.floor_abs.unwrap_or(T::zero());
                let h = trace.pre[l].as_ref();
                let g = ws.grads[l].as_ref();
                t.copy_from(h);
                // Step 5: pseudo-targets. No curvature: the gradient is zero too (dead
                // units), the targets are H.
                if mean_diag > T::zero() {
                    match self.config.preconditioner {
                        Preconditioner::Kfac => {
                            if refresh || state.damped.is_none() {
                                let shift = gamma * mean_diag + floor_abs;
                                let fill = |d: faer::MatMut<'_, T>| {
                                    curv.damped_lower_into(d, beta, shift);
                                    Ok(())
                                };
                                match state.damped.as_mut() {
                                    Some((factor, inverse)) => {
                                        factor.refactor(fill, self.config.jitter, Par::Seq)?;
                                        // D^{-1} once per refresh (2 q^3 flops): the B x q
                                        // product G D^{-1} is then one GEMM, about twice as
                                        // fast as two triangular solves with B right-hand
                                        // sides.
                                        factor.inverse_into(inverse.as_mut(), Par::Seq);
                                    }
                                    None => {
                                        let mut d = Mat::<T>::zeros(q, q);
                                        curv.damped_lower_into(d.as_mut(), beta, shift);
                                        let factor = KronFactor::new(
                                            d,
                                            FactorId::curvature(Some(l)),
                                            self.config.jitter,
                                            Par::Seq,
                                        )?;
                                        let inverse = factor.inverse(Par::Seq);
                                        state.damped = Some((factor, inverse));
                                    }
                                }
                            }
                            let Some((factor, d_inv)) = state.damped.as_ref() else {
                                unreachable!("the damped curvature factor was just built")
                            };
                            tries += factor.jitter().tries;
                            // T = H - alpha G D^{-1} (2 B q^2 flops).
                            matmul(t.as_mut(), Accum::Add, g, d_inv.as_ref(), -alpha, par);
                        }
                        Preconditioner::Scalar => {
                            let scale = alpha / ((T::one() + gamma) * mean_diag + floor_abs);
                            sub_scaled_in_place(t.as_mut(), scale, g);
                        }
                    }
                }
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
}
