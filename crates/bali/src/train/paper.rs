//! ALGORITHM.md 3.1 (`Paper`): all layers from one forward and one backward pass at the
//! current means, `T_l = H_l - alpha G_l` for the hidden layers, the likelihood's exact
//! targets for the output layer (Gaussian: `alpha_L = sigma^2`, so `T_L = Y`) or, where none
//! exist (categorical), `T_L = F - alpha_L G_L` with the output step size `alpha`; prior
//! `M_0 = 0`, `Lambda_0 = lambda I`.

use bali_autodiff::Trace;
use bali_kernels::{sub_scaled_in_place, Scalar};
use faer::{MatRef, Par};

use super::{fit_layer_buffers, Trainer};
use crate::error::Result;

impl<T: Scalar> Trainer<T> {
    /// One `Paper` step from the forward `trace` at the means; returns the jitter retries.
    pub(super) fn paper_step(
        &mut self,
        trace: &Trace<T>,
        y: MatRef<'_, T>,
        rho: T,
        par: Par,
    ) -> Result<u32> {
        let n_layers = self.mlp().num_layers();
        self.gradients(trace, y, par)?;
        let alpha = T::of(self.config.hidden_alpha());
        let alpha_out = T::of(self.config.alpha);
        let exact = self.config.likelihood.exact_output_targets();
        let b = y.nrows();
        let mut targets = std::mem::take(&mut self.workspace.targets);
        fit_layer_buffers(&mut targets, &self.model.mlp().dims[1..], b);
        let mut tries = 0;
        let result = (|| {
            for (l, t) in targets.iter_mut().enumerate() {
                let x_l = trace.inputs[l].as_ref();
                let output = l + 1 == n_layers;
                tries += if output && exact {
                    self.update_layer(l, x_l, y, rho)?
                } else {
                    // G_L of the output layer is the seed d ell / dF.
                    let step = if output { alpha_out } else { alpha };
                    t.copy_from(&trace.pre[l]);
                    sub_scaled_in_place(t.as_mut(), step, self.workspace.grads[l].as_ref());
                    self.update_layer(l, x_l, t.as_ref(), rho)?
                };
            }
            Ok(tries)
        })();
        self.workspace.targets = targets;
        result
    }
}
