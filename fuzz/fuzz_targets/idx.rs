//! Fuzz target: see `bali_fuzz::idx`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bali_fuzz::idx(data));
