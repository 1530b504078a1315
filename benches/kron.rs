//! Criterion benchmarks of the Kronecker-factored algebra at a few shapes, throughput in
//! flops (ALGORITHM.md section 7): `potrf` n^3/3, `kron_factor_solve`
//! p^3/3 + q^3/3 + 2p^2q + 2q^2p, `kron_solve` 2p^2q + 2q^2p, `mn_sample` p^2q + q^2p.
//! The full sweep against NumPy is `bali bench kron` (docs/benchmarks.md).

use std::hint::black_box;
use std::time::Duration;

use bali_mn::dense::{random_spd_dominant as random_spd, random_uniform as random_mat};
use bali_mn::{kron_solve, FactorId, JitterPolicy, KronFactor, MatrixNormal};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use faer::{Mat, Par};
use rand::rngs::StdRng;
use rand::SeedableRng;

const SHAPES: [(usize, usize); 3] = [(33, 50), (129, 128), (513, 512)];
const POTRF_SIZES: [usize; 3] = [64, 256, 1024];

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    g
}

fn factor(a: &Mat<f64>, id: FactorId) -> KronFactor<f64> {
    KronFactor::new(a.clone(), id, JitterPolicy::NONE, Par::Seq).expect("random_spd is SPD")
}

fn inputs(p: usize, q: usize) -> (Mat<f64>, Mat<f64>, Mat<f64>) {
    let mut rng = StdRng::seed_from_u64((p * 7919 + q) as u64);
    (
        random_spd(p, &mut rng),
        random_spd(q, &mut rng),
        random_mat(p, q, &mut rng),
    )
}

fn bench_potrf(c: &mut Criterion) {
    let mut g = group(c, "potrf");
    for n in POTRF_SIZES {
        let a: Mat<f64> = random_spd(n, &mut StdRng::seed_from_u64(n as u64));
        g.throughput(Throughput::Elements((n * n * n / 3) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &a, |bch, a| {
            bch.iter(|| black_box(factor(a, FactorId::matrix())))
        });
    }
    g.finish();
}

fn solve_flops(p: usize, q: usize) -> usize {
    2 * p * p * q + 2 * q * q * p
}

fn bench_kron_factor_solve(c: &mut Criterion) {
    let mut g = group(c, "kron_factor_solve");
    for (p, q) in SHAPES {
        let (a, b, v) = inputs(p, q);
        g.throughput(Throughput::Elements(
            (p * p * p / 3 + q * q * q / 3 + solve_flops(p, q)) as u64,
        ));
        g.bench_function(BenchmarkId::from_parameter(format!("{p}x{q}")), |bch| {
            bch.iter(|| {
                let fa = factor(&a, FactorId::row_precision(None));
                let fb = factor(&b, FactorId::col_cov(None));
                black_box(kron_solve(&fa, &fb, v.as_ref(), Par::Seq))
            })
        });
    }
    g.finish();
}

fn bench_kron_solve(c: &mut Criterion) {
    let mut g = group(c, "kron_solve");
    for (p, q) in SHAPES {
        let (a, b, v) = inputs(p, q);
        let fa = factor(&a, FactorId::row_precision(None));
        let fb = factor(&b, FactorId::col_cov(None));
        g.throughput(Throughput::Elements(solve_flops(p, q) as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("{p}x{q}")), |bch| {
            bch.iter(|| black_box(kron_solve(&fa, &fb, v.as_ref(), Par::Seq)))
        });
    }
    g.finish();
}

fn bench_mn_sample(c: &mut Criterion) {
    let mut g = group(c, "mn_sample");
    for (p, q) in SHAPES {
        let (a, b, _) = inputs(p, q);
        let mn = MatrixNormal::new(
            Mat::zeros(p, q),
            factor(&a, FactorId::row_precision(None)),
            factor(&b, FactorId::col_cov(None)),
        )
        .expect("shapes agree");
        let mut w = Mat::<f64>::zeros(p, q);
        let mut rng = StdRng::seed_from_u64(11);
        g.throughput(Throughput::Elements((p * p * q + q * q * p) as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("{p}x{q}")), |bch| {
            bch.iter(|| {
                mn.sample_into(w.as_mut(), &mut rng, Par::Seq);
                black_box(w.as_ref());
            })
        });
    }
    g.finish();
}

criterion_group!(
    kron,
    bench_potrf,
    bench_kron_factor_solve,
    bench_kron_solve,
    bench_mn_sample
);
criterion_main!(kron);
