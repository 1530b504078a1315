//! Parallelism chosen by problem size.
//!
//! On small machines (two vCPUs that give about one core of throughput) threads slow mid-size
//! work down; kernels therefore run sequentially unless the flop count is large enough for the
//! fork/join cost to pay off.

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

    /// Up to `threads` threads for kernels above the default threshold (`2e9` flops).
    pub fn with_threads(threads: usize) -> Self {
        ParPolicy {
            threads: threads.max(1),
            min_parallel_flops: 2e9,
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
        assert!(matches!(p.par(1e10), Par::Rayon(_)));
        assert!(matches!(ParPolicy::SEQ.par(1e12), Par::Seq));
    }
}
