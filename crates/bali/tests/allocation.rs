//! A training step after the first allocates nothing: every `Trainer` step is run under a
//! counting global allocator (this test binary only), for both formulations, both hidden
//! preconditioners, one and two hidden layers, full batch and mini-batches, `f64` and `f32`;
//! and every MAP (Adam) step after the first, for both likelihoods.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bali::config::{BaliConfig, Fisher, Formulation, Preconditioner, SigmaSpec};
use bali::train::Trainer;
use bali_kernels::Scalar;
use faer::Mat;

/// Counts the allocations of the thread that has counting switched on.
struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counter only reads
// and writes thread-locals that need no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_of(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    ON.with(|on| on.set(true));
    f();
    ON.with(|on| on.set(false));
    COUNT.with(|c| c.get())
}

fn data<T: Scalar>(n: usize, d: usize, k: usize) -> (Mat<T>, Mat<T>) {
    let x = Mat::from_fn(n, d, |i, j| T::of((1.3 * i as f64 + 2.1 * j as f64).sin()));
    let y = Mat::from_fn(n, k, |i, j| {
        T::of((0.7 * i as f64).cos() + 0.3 * (0.4 * (i + j) as f64).sin())
    });
    (x, y)
}

fn check<T: Scalar>(dims: &[usize], config: BaliConfig, label: &str) {
    let n = 64.max(dims[0] + 8);
    let (x, y) = data::<T>(n, dims[0], dims[dims.len() - 1]);
    let mut trainer = Trainer::<T>::new(dims.to_vec(), config, n, 1).expect("valid options");
    // The first steps fill the workspace (and the damped-curvature factor).
    trainer
        .fit(x.as_ref(), y.as_ref(), 3, |_, _| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let count = allocations_of(|| {
        trainer
            .fit(x.as_ref(), y.as_ref(), 5, |_, _| {
                std::ops::ControlFlow::Continue(())
            })
            .unwrap_or_else(|e| panic!("{label}: {e}"));
    });
    assert_eq!(
        count, 0,
        "{label}: {count} allocations in 5 steps after the first 3"
    );
    // One batch given by the caller (the streaming update) allocates nothing either.
    let batch = trainer.batch_size();
    let (xb, yb) = (x.subrows(0, batch), y.subrows(0, batch));
    let count = allocations_of(|| {
        trainer
            .partial_fit(xb, yb)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
    });
    assert_eq!(count, 0, "{label}: {count} allocations in one partial_fit");
}

#[test]
fn steps_after_the_first_allocate_nothing() {
    for dims in [vec![3, 8, 1], vec![3, 8, 6, 2]] {
        for (formulation, preconditioner) in [
            (Formulation::Improved, Preconditioner::Kfac),
            (Formulation::Improved, Preconditioner::Scalar),
            (Formulation::Paper, Preconditioner::Kfac),
        ] {
            for batch_size in [None, Some(16)] {
                let config = BaliConfig {
                    formulation,
                    preconditioner,
                    batch_size,
                    ..BaliConfig::default()
                };
                let label = format!("{dims:?} {formulation:?}/{preconditioner:?} {batch_size:?}");
                check::<f64>(&dims, config.clone(), &label);
                // f32: a stronger inverse-Wishart prior keeps the hidden Sigma_l away from
                // the rounding floor on this tiny problem.
                let f32_config = BaliConfig {
                    hidden_sigma: SigmaSpec::Learned {
                        nu0_extra: 2.0,
                        s0_sq: 1e-2,
                    },
                    ..config
                };
                check::<f32>(&dims, f32_config, &format!("{label} f32"));
            }
        }
    }
    // A wide input layer: Lambda_N is 601 x 601, past the Cholesky's stack scratch.
    check::<f64>(&[600, 20, 1], BaliConfig::default(), "600-20-1");
    // The amortized curvature: refresh and reuse steps alike.
    let config = BaliConfig {
        refresh_every: 2,
        ..BaliConfig::default()
    };
    check::<f64>(&[3, 8, 6, 2], config, "refresh_every 2");
    // Classification: the output layer in the step-5 form, the stacked categorical Fisher
    // seed, and the sampled-label seed (one-hot targets).
    for (fisher, formulation) in [
        (Fisher::Exact, Formulation::Improved),
        (Fisher::Sampled, Formulation::Improved),
        (Fisher::Exact, Formulation::Paper),
    ] {
        for batch_size in [None, Some(16)] {
            let config = BaliConfig {
                fisher,
                formulation,
                batch_size,
                ..BaliConfig::classification()
            };
            check_classes(
                &[3, 8, 6, 4],
                config,
                &format!("categorical {fisher:?} {formulation:?} {batch_size:?}"),
            );
        }
    }
}

fn check_classes(dims: &[usize], config: BaliConfig, label: &str) {
    let n = 64;
    let k = dims[dims.len() - 1];
    let (x, _) = data::<f64>(n, dims[0], 1);
    let y = Mat::from_fn(n, k, |i, c| if (i * 5) % k == c { 1.0 } else { 0.0 });
    let mut trainer = Trainer::<f64>::new(dims.to_vec(), config, n, 1).expect("valid options");
    let go = |_: &Trainer<f64>, _: &_| std::ops::ControlFlow::Continue(());
    trainer
        .fit(x.as_ref(), y.as_ref(), 3, go)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let count = allocations_of(|| {
        trainer
            .fit(x.as_ref(), y.as_ref(), 5, go)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
    });
    assert_eq!(
        count, 0,
        "{label}: {count} allocations in 5 steps after the first 3"
    );
}

#[test]
fn map_steps_after_the_first_allocate_nothing() {
    use bali::likelihood::Likelihood;
    use bali::map::{LrSchedule, MapConfig, MapNet};
    for likelihood in [Likelihood::Gaussian, Likelihood::Categorical] {
        for batch_size in [None, Some(16)] {
            let dims = vec![3, 8, 6, 3];
            let n = 64;
            let (x, _) = data::<f64>(n, 3, 1);
            let y = Mat::from_fn(n, 3, |i, c| if (i * 5) % 3 == c { 1.0 } else { 0.0 });
            let config = MapConfig {
                likelihood,
                batch_size,
                schedule: LrSchedule::Cosine { horizon: 20 },
                ..MapConfig::default()
            };
            let label = format!("MAP {likelihood:?} batch {batch_size:?}");
            let mut net = MapNet::<f64>::new(dims, config, 1).expect("valid options");
            let go = |_: &MapNet<f64>| std::ops::ControlFlow::Continue(());
            net.fit(x.as_ref(), y.as_ref(), 3, go)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let count = allocations_of(|| {
                net.fit(x.as_ref(), y.as_ref(), 5, go)
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
            });
            assert_eq!(
                count, 0,
                "{label}: {count} allocations in 5 steps after the first 3"
            );
        }
    }
}

#[test]
fn the_counter_counts() {
    let count = allocations_of(|| {
        let v: Vec<u8> = Vec::with_capacity(16);
        std::hint::black_box(v);
    });
    assert_eq!(count, 1);
}
