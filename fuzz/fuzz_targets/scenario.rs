//! The scenario parser on any text: never a panic, a hang or an unbounded
//! allocation, and every error names the file and a line:col inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = Path::new("fuzz.toml");
    if let Err(e) = harness::scenario::parse(file, text, &|name| (name == "HOST").then(|| "127.0.0.1".to_owned())) {
        let lines = text.split('\n').count();
        assert!(e.line >= 1 && e.line <= lines, "line {} outside 1..={lines}: {e}", e.line);
        assert!(e.col >= 1, "column 0: {e}");
        assert!(e.to_string().starts_with("fuzz.toml:"), "{e}");
    }
});
