//! Timing of the MLP tape on an MNIST-sized network (784-200-200-10, B = 1000, sequential):
//! forward, one backward, the K = 10 per-unit backward passes of the curvature factor (one
//! at a time and as one stacked pass) and the weight gradients, in f64 and f32.
//!
//! `cargo run --release -p bali-autodiff --example autodiff_timing [batch]`

use bali_autodiff::{loss_and_seed, Activation, Loss, Mlp};
use bali_kernels::Scalar;
use faer::{Mat, Par};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// Best-of-`reps` wall time of `f`, in seconds.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn run<T: Scalar>(batch: usize) -> Result<(), bali_autodiff::AutodiffError> {
    let mlp = Mlp::new(vec![784, 200, 200, 10], Activation::Relu)?;
    let mut rng = StdRng::seed_from_u64(0);
    let w: Vec<Mat<T>> = mlp.init_weights(&mut rng);
    let x = Mat::<T>::from_fn(batch, 784, |_, _| T::of(rng.random_range(0.0..1.0)));
    let labels: Vec<usize> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let par = Par::Seq;
    // Matrix-product flops: forward 2 B sum p q; backward 2 B sum_{l>0} (p_l - 1) q_l.
    let fwd_flops: f64 = mlp
        .layer_shapes()
        .iter()
        .map(|&(p, q)| 2.0 * (batch * p * q) as f64)
        .sum();
    let bwd_flops: f64 = mlp.layer_shapes()[1..]
        .iter()
        .map(|&(p, q)| 2.0 * (batch * (p - 1) * q) as f64)
        .sum();
    let reps = 5;
    let mut trace = mlp.forward(&w, x.as_ref(), par)?;
    let t_fwd = best_of(reps, || trace = mlp.forward(&w, x.as_ref(), par).unwrap());
    let (_, seed) = loss_and_seed(
        &Loss::SoftmaxCrossEntropy { labels: &labels },
        trace.output(),
    )?;
    let mut gs = mlp.backward(&w, &trace, seed.as_ref(), par)?;
    let t_bwd = best_of(reps, || {
        mlp.backward_into(&w, &trace, seed.as_ref(), &mut gs, par)
            .unwrap()
    });
    let t_units = best_of(reps, || {
        for k in 0..10 {
            std::hint::black_box(mlp.output_jacobian_backward(&w, &trace, k, par).unwrap());
        }
    });
    let stacked_seed = Mat::<T>::from_fn(10 * batch, 10, |r, k| {
        if r / batch == k {
            T::one()
        } else {
            T::zero()
        }
    });
    let t_stacked = best_of(reps, || {
        std::hint::black_box(
            mlp.backward_stacked(&w, &trace, stacked_seed.as_ref(), par)
                .unwrap(),
        );
    });
    let t_dw = best_of(reps, || {
        std::hint::black_box(mlp.weight_grads(&trace, &gs, par).unwrap());
    });
    let gf = |flops: f64, t: f64| flops / t * 1e-9;
    println!(
        "{} B={batch}: forward {:.2} ms ({:.1} GFLOP/s), backward {:.2} ms ({:.1} GFLOP/s), \
         10 unit backwards {:.2} ms, stacked 10-seed backward {:.2} ms, weight grads {:.2} ms ({:.1} GFLOP/s)",
        T::NAME,
        t_fwd * 1e3,
        gf(fwd_flops, t_fwd),
        t_bwd * 1e3,
        gf(bwd_flops, t_bwd),
        t_units * 1e3,
        t_stacked * 1e3,
        t_dw * 1e3,
        gf(fwd_flops, t_dw),
    );
    Ok(())
}

fn main() -> Result<(), bali_autodiff::AutodiffError> {
    let batch = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    run::<f64>(batch)?;
    run::<f32>(batch)?;
    Ok(())
}
