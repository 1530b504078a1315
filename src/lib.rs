//! Holder package for the cross-crate integration tests (`tests/`) and criterion benchmarks
//! (`benches/`) of the BALI workspace. The code lives in `crates/`.
