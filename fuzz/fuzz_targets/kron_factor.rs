//! Building a Kronecker factor from arbitrary (possibly indefinite, NaN or infinite) symmetric
//! matrices must give a factor or an error naming the pivot, never a panic or NaN factor.
#![no_main]
use bali_mn::{FactorId, JitterPolicy, KronFactor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n % 12) as usize + 1;
    let vals: Vec<f64> = rest
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    if vals.len() < n * n {
        return;
    }
    let a = faer::Mat::from_fn(n, n, |i, j| vals[i.max(j) * n + i.min(j)]);
    let policy = JitterPolicy::bounded(3, 1e-8);
    if let Ok(f) = KronFactor::new(a, FactorId::matrix(), policy, faer::Par::Seq) {
        let l = f.chol();
        for j in 0..n {
            for i in j..n {
                assert!(l[(i, j)].is_finite(), "non-finite Cholesky factor entry");
            }
        }
        assert!(f.log_det().is_finite() || f.log_det() == f64::NEG_INFINITY);
    }
});
