//! Runs `dense::verify_random_problem` and prints the report and its wall time.
//!
//! `cargo run --release -p bali-mn --example verify_dense -- [p] [q] [n] [seed] [samples]`

use bali_mn::dense::{verify_random_problem, VerifyConfig};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let d = VerifyConfig::default();
    let cfg = VerifyConfig {
        p: args.first().copied().unwrap_or(d.p),
        q: args.get(1).copied().unwrap_or(d.q),
        n: args.get(2).copied().unwrap_or(d.n),
        seed: args.get(3).map(|&s| s as u64).unwrap_or(d.seed),
        samples: args.get(4).copied().unwrap_or(d.samples),
    };
    let start = Instant::now();
    match verify_random_problem(&cfg) {
        Ok(r) => {
            println!("{cfg:?}\n{r}");
            println!("time {:.3} s", start.elapsed().as_secs_f64());
            if !r.passed {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
