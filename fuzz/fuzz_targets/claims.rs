//! Claims files: any text is parsed or refused with the file named (and line:col
//! for TOML errors).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = harness::claims::parse(Path::new("fuzz-claims.toml"), text) {
        assert!(e.starts_with("fuzz-claims.toml:"), "{e}");
    }
});
