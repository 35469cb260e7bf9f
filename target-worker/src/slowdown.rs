//! A known regression for calibrating a regression gate (`CALIBRATION_WORK`):
//! extra CPU work on one code path, the auth middleware every caller route
//! passes, switched by configuration so a "slower build" needs no code change.
//!
//! Work rather than a sleep: workerd's timers have whole-millisecond steps
//! (a 0.3 ms `setTimeout` returns at once, 1 ms takes ~1.3 ms), and its clock
//! stands still during computation, so a timed busy-wait would never end. Each
//! round is one SHA-256 of 32 bytes; what that costs in time is measured by
//! the calibration (`bench/gate-calibrate`), not assumed.

use sha2::{Digest, Sha256};

/// The most rounds a configuration may ask for (well under a second of CPU).
pub const MAX_ROUNDS: u32 = 1_000_000;

/// Runs `rounds` chained SHA-256 rounds; the result is kept from the optimiser.
pub fn work(rounds: u32) {
    let mut digest = [0u8; 32];
    for _ in 0..rounds {
        digest = Sha256::digest(digest).into();
    }
    std::hint::black_box(digest);
}
