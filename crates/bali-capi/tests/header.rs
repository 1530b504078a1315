//! The checked-in C header `include/bali.h` is what cbindgen generates from `src/lib.rs`
//! (with `cbindgen.toml`). Regenerate it with `BALI_UPDATE_HEADER=1 cargo test -p bali-capi
//! --test header`.

use std::path::Path;

#[test]
fn checked_in_header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("config");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen parses the crate")
        .write(&mut generated);
    let path = crate_dir.join("include/bali.h");
    if std::env::var_os("BALI_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "include/bali.h is stale: regenerate it with \
         `BALI_UPDATE_HEADER=1 cargo test -p bali-capi --test header` and commit it"
    );
}
