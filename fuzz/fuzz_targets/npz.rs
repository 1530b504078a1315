//! Fuzz target: see `bali_fuzz::npz`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bali_fuzz::npz(data));
