//! Fuzz target: see `bali_fuzz::cli_options`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bali_fuzz::cli_options(data));
