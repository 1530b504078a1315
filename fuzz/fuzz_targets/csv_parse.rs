//! The CSV reader of `bali fit --csv` must return a value or an error (with line and column)
//! for any input text, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (target, body) = text.split_once('\n').unwrap_or(("y", text));
        let _ = bali::data::parse_csv(body, std::path::Path::new("fuzz.csv"), target.trim());
    }
});
