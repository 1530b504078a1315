//! Fuzz target: see `bali_fuzz::csv`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bali_fuzz::csv(data));
