//! Parallelism chosen by problem size.
//!
//! On small machines (two vCPUs that give about one core of throughput) threads slow mid-size
//! work down; kernels therefore run sequentially unless the flop count is large enough for the
//! fork/join cost to pay off.
//!
//! Measured on the 2-vCPU Zen 4 development VM (`kernel_timing -- 2` against `-- 1`, f64):
//! with the second vCPU idle, two threads break even at about 2e7 flops for GEMM/SYRK
//! (`n = 256`: 1.6-1.7x), 5e7 for Cholesky (`n = 512`: 1.0x, `n = 1024`: 1.5x) and 1e8 for
//! triangular solves with many right-hand sides (`n = k = 512`: 1.6x, `n = k = 256`: 0.8x).
//! With the second vCPU busy (other builds), two threads were slower at every size, up to
//! 1024^3 (SYRK 0.6x, Cholesky 0.7-0.9x). The default threshold, 5e8 flops, is therefore
//! well above every idle break-even point; pass `threads = 1` on a shared two-vCPU machine.

use faer::Par;

/// How many threads a caller allows, and from which flop count threading starts to pay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParPolicy {
    /// Maximum number of threads (1 = always sequential).
    pub threads: usize,
    /// Minimum flop count of one kernel call before it is run in parallel.
    pub min_parallel_flops: f64,
}

impl ParPolicy {
    /// Always sequential.
    pub const SEQ: ParPolicy = ParPolicy {
        threads: 1,
        min_parallel_flops: f64::INFINITY,
    };

    /// Default minimum flop count for threading (see the module documentation).
    pub const DEFAULT_MIN_PARALLEL_FLOPS: f64 = 5e8;

    /// Up to `threads` threads for kernels above [`Self::DEFAULT_MIN_PARALLEL_FLOPS`].
    pub fn with_threads(threads: usize) -> Self {
        ParPolicy {
            threads: threads.max(1),
            min_parallel_flops: Self::DEFAULT_MIN_PARALLEL_FLOPS,
        }
    }

    /// The [`Par`] to use for a kernel of `flops` floating-point operations.
    pub fn par(&self, flops: f64) -> Par {
        par_for_flops(self.threads, self.min_parallel_flops, flops)
    }
}

impl Default for ParPolicy {
    fn default() -> Self {
        ParPolicy::SEQ
    }
}

/// `Par::Seq` when `threads <= 1` or `flops < min_parallel_flops`, else `Par::rayon(threads)`.
pub fn par_for_flops(threads: usize, min_parallel_flops: f64, flops: f64) -> Par {
    if threads <= 1 || flops < min_parallel_flops {
        Par::Seq
    } else {
        Par::rayon(threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_problems_stay_sequential() {
        let p = ParPolicy::with_threads(2);
        assert!(matches!(p.par(1e6), Par::Seq));
        assert!(matches!(p.par(4e8), Par::Seq));
        assert!(matches!(p.par(1e10), Par::Rayon(_)));
        assert!(matches!(ParPolicy::with_threads(0).par(1e12), Par::Seq));
        assert!(matches!(ParPolicy::SEQ.par(1e12), Par::Seq));
    }
}
