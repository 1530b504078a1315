//! Criterion benchmarks of the dense kernels of `bali-kernels`, single thread, throughput in
//! flops (ALGORITHM.md section 7) or elements:
//! `syrk_ema` B p^2, `gemm_ema` 2 B p q, `cholesky` n^3/3, triangular solves n^2 k,
//! `kronecker_solve` 2 p^2 q + 2 q^2 p, activations and softmax in elements.
//! Measurements are short by default (10 samples, 1 s); pass criterion's own options to
//! lengthen them. `crates/bali-kernels/examples/kernel_timing.rs` prints GFLOP/s directly.

use std::hint::black_box;
use std::time::Duration;

use bali_kernels::{
    cholesky_lower_in_place, gemm_ema, log_softmax_rows, softmax_rows, solve_kronecker_in_place,
    solve_lower_in_place, solve_lower_transpose_in_place, syrk_ema, Activation,
};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use faer::{Mat, Par};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    g
}

fn random(m: usize, n: usize, seed: u64) -> Mat<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Mat::from_fn(m, n, |_, _| rng.random_range(-1.0..1.0))
}

/// A random SPD matrix (n x n, diagonally dominant, eigenvalues in (1, 4)).
fn spd(n: usize, seed: u64) -> Mat<f64> {
    bali_mn::dense::random_spd_dominant(n, &mut StdRng::seed_from_u64(seed))
}

fn cholesky_factor(n: usize, seed: u64) -> Mat<f64> {
    let mut l = spd(n, seed);
    cholesky_lower_in_place(l.as_mut(), Par::Seq).expect("spd is positive definite");
    l
}

fn bench_syrk_ema(c: &mut Criterion) {
    let mut g = group(c, "syrk_ema");
    for (b, p) in [(256usize, 128usize), (1024, 512), (1024, 1024)] {
        let x = random(b, p, 1);
        let s0 = random(p, p, 2);
        g.throughput(Throughput::Elements((b * p * p) as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{b}x{p}")),
            &x,
            |bch, x| {
                bch.iter_batched_ref(
                    || s0.clone(),
                    |s| syrk_ema(s.as_mut(), x.as_ref(), 0.9, 0.1, Par::Seq),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

fn bench_gemm_ema(c: &mut Criterion) {
    let mut g = group(c, "gemm_ema");
    for (b, p, q) in [
        (256usize, 128usize, 64usize),
        (1024, 512, 512),
        (1024, 1024, 1024),
    ] {
        let x = random(b, p, 1);
        let t = random(b, q, 3);
        let s0 = random(p, q, 2);
        g.throughput(Throughput::Elements((2 * b * p * q) as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("{b}x{p}x{q}")), |bch| {
            bch.iter_batched_ref(
                || s0.clone(),
                |s| gemm_ema(s.as_mut(), x.as_ref(), t.as_ref(), 0.9, 0.1, Par::Seq),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bench_cholesky(c: &mut Criterion) {
    let mut g = group(c, "cholesky");
    for n in [64usize, 256, 1024] {
        let a = spd(n, n as u64);
        g.throughput(Throughput::Elements((n * n * n / 3) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &a, |bch, a| {
            bch.iter_batched_ref(
                || a.clone(),
                |w| cholesky_lower_in_place(w.as_mut(), Par::Seq).expect("SPD"),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bench_triangular(c: &mut Criterion) {
    let mut g = group(c, "triangular_solve");
    for (n, k) in [(128usize, 128usize), (512, 512), (1024, 1024)] {
        let l = cholesky_factor(n, 5);
        let b = random(n, k, 6);
        g.throughput(Throughput::Elements((n * n * k) as u64));
        g.bench_function(BenchmarkId::new("lower", format!("{n}x{k}")), |bch| {
            bch.iter_batched_ref(
                || b.clone(),
                |x| solve_lower_in_place(l.as_ref(), x.as_mut(), Par::Seq),
                BatchSize::LargeInput,
            )
        });
        g.bench_function(
            BenchmarkId::new("lower_transpose", format!("{n}x{k}")),
            |bch| {
                bch.iter_batched_ref(
                    || b.clone(),
                    |x| solve_lower_transpose_in_place(l.as_ref(), x.as_mut(), Par::Seq),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();

    let mut g = group(c, "kronecker_solve");
    for (p, q) in [(129usize, 128usize), (513, 512), (1024, 1024)] {
        let l = cholesky_factor(p, 7);
        let r = cholesky_factor(q, 8);
        let v = random(p, q, 9);
        g.throughput(Throughput::Elements((2 * p * p * q + 2 * q * q * p) as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("{p}x{q}")), |bch| {
            bch.iter_batched_ref(
                || v.clone(),
                |x| solve_kronecker_in_place(l.as_ref(), r.as_ref(), x.as_mut(), Par::Seq),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bench_activations(c: &mut Criterion) {
    let mut g = group(c, "activation");
    let (b, q) = (256usize, 256usize);
    let h = random(b, q, 10) * faer::Scale(8.0);
    let mut out = Mat::<f64>::zeros(b, q);
    g.throughput(Throughput::Elements((b * q) as u64));
    for act in [
        Activation::Relu,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Sigmoid,
    ] {
        g.bench_function(BenchmarkId::new("value", act.name()), |bch| {
            bch.iter(|| act.apply(black_box(h.as_ref()), out.as_mut()))
        });
        g.bench_function(BenchmarkId::new("derivative", act.name()), |bch| {
            bch.iter(|| act.derivative_mat(black_box(h.as_ref()), out.as_mut()))
        });
    }
    g.finish();
}

fn bench_softmax(c: &mut Criterion) {
    let mut g = group(c, "softmax");
    for (b, k) in [(256usize, 10usize), (1024, 100)] {
        let z = random(b, k, 11) * faer::Scale(20.0);
        let mut out = Mat::<f64>::zeros(b, k);
        g.throughput(Throughput::Elements((b * k) as u64));
        g.bench_function(BenchmarkId::new("softmax", format!("{b}x{k}")), |bch| {
            bch.iter(|| softmax_rows(black_box(z.as_ref()), out.as_mut()))
        });
        g.bench_function(BenchmarkId::new("log_softmax", format!("{b}x{k}")), |bch| {
            bch.iter(|| log_softmax_rows(black_box(z.as_ref()), out.as_mut()))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_syrk_ema,
    bench_gemm_ema,
    bench_cholesky,
    bench_triangular,
    bench_activations,
    bench_softmax
);
criterion_main!(benches);
