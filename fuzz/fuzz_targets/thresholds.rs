//! k6-style thresholds: any expression parses or is refused, and what parses
//! evaluates on an empty and a filled histogram.
#![no_main]

use harness::thresholds::{Observed, Threshold};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (series, expr) = text.split_once('\n').unwrap_or(("*", text));
    if let Ok(t) = Threshold::parse(series, expr) {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let _ = t.evaluate(&Observed { corrected: &h, requests: 0, errors: 0, seconds: 0.0 });
        h.record(1500).unwrap();
        let v = t.evaluate(&Observed { corrected: &h, requests: 1, errors: 1, seconds: 1.0 });
        assert!(!v.actual.is_nan() || !v.pass, "a NaN must not pass: {v:?}");
    }
});
