//! Fuzz target: see `bali_fuzz::posterior`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bali_fuzz::posterior(data));
