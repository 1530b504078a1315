//! Fuzz target: see `bali_fuzz::model_file`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bali_fuzz::model_file(data));
