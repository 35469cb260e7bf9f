//! The one Ctrl-C path: SIGINT, SIGTERM and SIGHUP set one process-wide flag,
//! which the run loop and the bench poll; each stops what it is doing and writes
//! what it has. A second signal while the flag is set ends the process at once
//! (exit 130), for a user whose stop does not come fast enough.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// The process's cancel flag, its signal handlers installed on first use.
pub fn flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            // Registration fails only for forbidden signals, which these are not.
            // The conditional shutdown goes first: it sees the flag before this
            // signal sets it, so only a second signal ends the process.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag));
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        flag
    }))
}
