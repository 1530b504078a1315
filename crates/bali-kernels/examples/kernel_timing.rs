//! Timing of the dense kernels against faer's defaults (best of several runs, GFLOP/s).
//!
//! `cargo run --release -p bali-kernels --example kernel_timing -- [threads] [sweep|syrk|act|acc]`
//! (`threads` = 1 or 2; `sweep` also scans faer's Cholesky block parameters; `syrk` times
//! only the tall-skinny SYRK-EMA shapes).

use bali_kernels::{
    cholesky_lower_in_place, solve_kronecker_in_place, solve_lower_in_place,
    solve_lower_transpose_in_place, syrk_ema, Activation, Scalar,
};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{self, LltParams, LltRegularization};
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par, Spec};
use std::time::Instant;

fn spd<T: Scalar>(n: usize) -> Mat<T> {
    let x = Mat::<T>::from_fn(n, n, |i, j| {
        T::of((((i * 7 + j * 13) % 17) as f64) / 17.0 - 0.5)
    });
    let mut a = Mat::<T>::from_fn(
        n,
        n,
        |i, j| if i == j { T::of(n as f64) } else { T::zero() },
    );
    faer::linalg::matmul::matmul(
        a.as_mut(),
        Accum::Add,
        x.as_ref(),
        x.transpose(),
        T::one(),
        Par::Seq,
    );
    a
}

/// Best wall time of `f(true)` minus the best time of `f(false)`; `f(run)` resets its inputs
/// (a copy) and runs the kernel only when `run` is true.
fn best(reps: usize, mut f: impl FnMut(bool)) -> f64 {
    let mut total = f64::INFINITY;
    let mut copy = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f(false);
        copy = copy.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        f(true);
        total = total.min(t.elapsed().as_secs_f64());
    }
    (total - copy).max(1e-9)
}

fn reps(flops: f64) -> usize {
    ((4e9 / flops) as usize).clamp(8, 2000)
}

fn faer_default_cholesky<T: Scalar>(a: faer::MatMut<'_, T>, par: Par) {
    let n = a.nrows();
    let params: Spec<LltParams, T> = Spec::default();
    let mut mem = MemBuffer::new(factor::cholesky_in_place_scratch::<T>(n, par, params));
    factor::cholesky_in_place(
        a,
        LltRegularization::default(),
        par,
        MemStack::new(&mut mem),
        params,
    )
    .unwrap();
}

fn cholesky_table<T: Scalar>(par: Par) {
    println!(
        "Cholesky {} (n^3/3 flops): ours vs faer default, GFLOP/s",
        T::NAME
    );
    for &n in &[32usize, 64, 128, 256, 512, 1024, 2048] {
        let a = spd::<T>(n);
        let mut w = a.clone();
        let flops = (n as f64).powi(3) / 3.0;
        let r = reps(flops);
        let t_ours = best(r, |run| {
            w.copy_from(&a);
            if run {
                cholesky_lower_in_place(w.as_mut(), par).unwrap()
            }
        });
        let t_faer = best(r, |run| {
            w.copy_from(&a);
            if run {
                faer_default_cholesky(w.as_mut(), par)
            }
        });
        println!(
            "  n={n:5}: ours {:7.1} us {:6.2} GF/s | faer default {:7.1} us {:6.2} GF/s",
            t_ours * 1e6,
            flops / t_ours / 1e9,
            t_faer * 1e6,
            flops / t_faer / 1e9
        );
    }
}

fn cholesky_sweep<T: Scalar>(par: Par) {
    println!(
        "Cholesky {} parameter sweep (block_size, recursion_threshold): GFLOP/s",
        T::NAME
    );
    let combos = [
        (64usize, 16usize),
        (64, 32),
        (32, 32),
        (96, 32),
        (128, 32),
        (128, 64),
        (256, 64),
        (256, 128),
    ];
    for &n in &[
        32usize, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
    ] {
        let a = spd::<T>(n);
        let mut w = a.clone();
        let flops = (n as f64).powi(3) / 3.0;
        let r = reps(flops);
        let mut line = format!("  n={n:5}:");
        for &(bs, rt) in &combos {
            let mut p: Spec<LltParams, T> = Spec::default();
            p.block_size = bs;
            p.recursion_threshold = rt;
            let mut mem = MemBuffer::new(factor::cholesky_in_place_scratch::<T>(n, par, p));
            let t = best(r, |run| {
                w.copy_from(&a);
                if run {
                    factor::cholesky_in_place(
                        w.as_mut(),
                        LltRegularization::default(),
                        par,
                        MemStack::new(&mut mem),
                        p,
                    )
                    .unwrap();
                }
            });
            line += &format!(" ({bs},{rt}) {:5.1}", flops / t / 1e9);
        }
        println!("{line}");
    }
}

fn solves<T: Scalar>(par: Par) {
    let n = 1024;
    let a = spd::<T>(n);
    let mut l = a.clone();
    cholesky_lower_in_place(l.as_mut(), par).unwrap();
    let b = Mat::<T>::from_fn(n, n, |i, j| T::of(((i + 3 * j) % 7) as f64 - 3.0));
    let mut x = b.clone();
    let flops = (n * n * n) as f64;
    let t = best(5, |run| {
        x.copy_from(&b);
        if run {
            solve_lower_in_place(l.as_ref(), x.as_mut(), par)
        }
    });
    println!(
        "trsm {} L^-1 B   n=k={n}: {:6.2} GF/s",
        T::NAME,
        flops / t / 1e9
    );
    let t = best(5, |run| {
        x.copy_from(&b);
        if run {
            solve_lower_transpose_in_place(l.as_ref(), x.as_mut(), par)
        }
    });
    println!(
        "trsm {} L^-T B   n=k={n}: {:6.2} GF/s",
        T::NAME,
        flops / t / 1e9
    );
    // Kronecker factor + solve at p = q = 1024.
    let (p, q) = (n as f64, n as f64);
    let kflops = p.powi(3) / 3.0 + q.powi(3) / 3.0 + 2.0 * p * p * q + 2.0 * q * q * p;
    let mut lf = a.clone();
    let mut rf = a.clone();
    let t = best(3, |run| {
        lf.copy_from(&a);
        rf.copy_from(&a);
        x.copy_from(&b);
        if run {
            cholesky_lower_in_place(lf.as_mut(), par).unwrap();
            cholesky_lower_in_place(rf.as_mut(), par).unwrap();
            solve_kronecker_in_place(lf.as_ref(), rf.as_ref(), x.as_mut(), par);
        }
    });
    println!(
        "kronecker {} factor+solve p=q={n}: {:6.2} GF/s ({:.1} ms)",
        T::NAME,
        kflops / t / 1e9,
        t * 1e3
    );
}

fn syrk<T: Scalar>(par: Par) {
    let (bn, p) = (1024, 1024);
    let x = Mat::<T>::from_fn(bn, p, |i, j| {
        T::of(((i * 5 + j * 3) % 11) as f64 / 11.0 - 0.5)
    });
    let s0 = Mat::<T>::from_fn(p, p, |i, j| T::of(((i + j) % 5) as f64));
    let mut s = s0.clone();
    let flops = (bn * p * p) as f64;
    for beta in [0.0, 0.9, 1.0] {
        let t = best(5, |run| {
            s.copy_from(&s0);
            if run {
                syrk_ema(s.as_mut(), x.as_ref(), T::of(beta), T::of(0.1), par)
            }
        });
        println!(
            "syrk_ema {} (B,p)=(1024,1024) beta={beta}: {:6.2} GF/s ({:.2} ms)",
            T::NAME,
            flops / t / 1e9,
            t * 1e3
        );
    }
    let t = best(5, |run| {
        s.copy_from(&s0);
        if run {
            faer_lower_syrk(s.as_mut(), x.as_ref(), par)
        }
    });
    println!(
        "faer triangular matmul {} (no scaling): {:6.2} GF/s ({:.2} ms)",
        T::NAME,
        flops / t / 1e9,
        t * 1e3
    );
    let t = best(5, |run| {
        s.copy_from(&s0);
        if run {
            faer::linalg::matmul::matmul(
                s.as_mut(),
                Accum::Add,
                x.transpose(),
                x.as_ref(),
                T::of(0.1),
                par,
            )
        }
    });
    println!(
        "faer full gemm X^T X {}: {:6.2} GF/s (2Bp^2)",
        T::NAME,
        2.0 * flops / t / 1e9
    );
}

/// Tall-skinny SYRK-EMA shapes (B, p) of the BALI layers: `syrk_ema` against faer's
/// triangular matmul, GFLOP/s counted as `B p^2`.
fn syrk_small<T: Scalar>(par: Par) {
    let shapes = [
        (455usize, 14usize),
        (455, 50),
        (455, 51),
        (1000, 9),
        (1000, 51),
        (1000, 101),
        (1024, 401),
        (1024, 785),
    ];
    let extra: Vec<(usize, usize)> = if std::env::args().any(|a| a == "more") {
        vec![
            (1, 50),
            (4, 50),
            (8, 50),
            (16, 50),
            (32, 50),
            (64, 50),
            (16, 128),
            (32, 128),
            (64, 128),
            (1024, 128),
            (1000, 160),
            (1024, 160),
            (1000, 200),
            (1024, 256),
            (100_000, 20),
        ]
    } else {
        Vec::new()
    };
    for &(bn, p) in shapes.iter().chain(&extra) {
        let x = Mat::<T>::from_fn(bn, p, |i, j| {
            T::of(((i * 5 + j * 3) % 11) as f64 / 11.0 - 0.5)
        });
        let s0 = Mat::<T>::from_fn(p, p, |i, j| T::of(((i + j) % 5) as f64));
        let mut s = s0.clone();
        let flops = (bn * p * p) as f64;
        let r = reps(flops).max(200);
        let mut line = format!("syrk_ema {} (B,p)=({bn:4},{p:3}):", T::NAME);
        for beta in [0.0, 0.9, 1.0] {
            let t = best(r, |run| {
                s.copy_from(&s0);
                if run {
                    syrk_ema(s.as_mut(), x.as_ref(), T::of(beta), T::of(0.1), par)
                }
            });
            line += &format!(" beta={beta} {:6.2} GF/s", flops / t / 1e9);
        }
        let t = best(r, |run| {
            s.copy_from(&s0);
            if run {
                faer_lower_syrk(s.as_mut(), x.as_ref(), par)
            }
        });
        line += &format!(" | faer {:6.2} GF/s", flops / t / 1e9);
        println!("{line}");
    }
}

fn activations<T: Scalar>() {
    let n = 1 << 16;
    let h: Vec<T> = (0..n)
        .map(|i| T::of((i as f64 / n as f64 - 0.5) * 16.0))
        .collect();
    let mut out = vec![T::zero(); n];
    for act in [
        Activation::Relu,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Sigmoid,
    ] {
        let t = best(50, |run| {
            if run {
                act.apply_slice(&h, &mut out)
            }
        });
        let ts = best(20, |run| {
            if run {
                for (o, &v) in out.iter_mut().zip(&h) {
                    *o = act.value(v);
                }
            }
        });
        let td = best(50, |run| {
            if run {
                act.derivative_slice(&h, &mut out)
            }
        });
        println!(
            "{} {:8}: simd {:6.2} ns/elem (derivative {:6.2}), scalar {:6.2} ns/elem",
            T::NAME,
            act.name(),
            t / n as f64 * 1e9,
            td / n as f64 * 1e9,
            ts / n as f64 * 1e9
        );
    }
}

/// Largest relative error (in units of machine epsilon) of the SIMD slice kernels against the
/// scalar `std` reference on a dense sweep of `[-lim, lim]`.
fn accuracy<T: Scalar>(lim: f64) {
    let n = 2_000_001;
    let h: Vec<T> = (0..n)
        .map(|i| T::of(lim * (2.0 * i as f64 / (n - 1) as f64 - 1.0)))
        .collect();
    let mut out = vec![T::zero(); n];
    for act in [Activation::Tanh, Activation::Gelu, Activation::Sigmoid] {
        for derivative in [false, true] {
            if derivative {
                act.derivative_slice(&h, &mut out);
            } else {
                act.apply_slice(&h, &mut out);
            }
            let mut worst: f64 = 0.0;
            let mut worst_abs: f64 = 0.0;
            let mut at = 0.0;
            // Relative error where the result is well above the flush-to-zero range of the SIMD
            // `exp`, absolute error everywhere (GELU' crosses zero near h = -0.75).
            let floor = T::min_positive_value().to_f64() * 1e10;
            for (&x, &y) in h.iter().zip(&out) {
                let r = if derivative {
                    act.derivative(x)
                } else {
                    act.value(x)
                };
                let (y, r) = (y.to_f64(), r.to_f64());
                worst_abs = worst_abs.max((y - r).abs() / T::EPS.to_f64());
                let e = (y - r).abs() / r.abs() / T::EPS.to_f64();
                if r.abs() > floor
                    && e > worst
                    && !(act == Activation::Gelu && derivative && r.abs() < 0.01)
                {
                    worst = e;
                    at = x.to_f64();
                }
            }
            println!(
                "{} {:8} {:10}: max relative error {:5.2} eps (at h = {at:.4}), absolute {:5.2} eps",
                T::NAME,
                act.name(),
                if derivative { "derivative" } else { "value" },
                worst,
                worst_abs
            );
        }
    }
}

/// faer's `S <- S + 0.1 X^T X` on the lower triangle: the baseline of the SYRK timings.
fn faer_lower_syrk<T: Scalar>(s: MatMut<'_, T>, x: MatRef<'_, T>, par: Par) {
    triangular::matmul(
        s,
        BlockStructure::TriangularLower,
        Accum::Add,
        x.transpose(),
        BlockStructure::Rectangular,
        x,
        BlockStructure::Rectangular,
        T::of(0.1),
        par,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let par = if threads > 1 {
        Par::rayon(threads)
    } else {
        Par::Seq
    };
    println!("threads = {threads}");
    if args.iter().any(|a| a == "acc") {
        accuracy::<f64>(40.0);
        accuracy::<f32>(20.0);
        return;
    }
    if args.iter().any(|a| a == "act") {
        activations::<f64>();
        activations::<f32>();
        return;
    }
    if args.iter().any(|a| a == "syrk") {
        syrk_small::<f64>(par);
        syrk_small::<f32>(par);
        return;
    }
    if args.iter().any(|a| a == "sweep") {
        cholesky_sweep::<f64>(par);
        cholesky_sweep::<f32>(par);
        return;
    }
    cholesky_table::<f64>(par);
    cholesky_table::<f32>(par);
    solves::<f64>(par);
    solves::<f32>(par);
    syrk::<f64>(par);
    syrk::<f32>(par);
    if threads == 1 {
        activations::<f64>();
        activations::<f32>();
    }
}
