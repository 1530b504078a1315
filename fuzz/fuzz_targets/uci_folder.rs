//! Fuzz target: see `bali_fuzz::uci_folder`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bali_fuzz::uci_folder(data));
