//! The harness's own resource use, so a run can say when it was client-bound.

use std::time::Duration;

#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU time of this process.
    pub cpu: Duration,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
}

pub fn usage() -> Usage {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Usage::default();
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    // getrusage's peak survives execve: a harness started by a large process
    // (a test runner, a CI agent) would report its parent's peak. VmHWM belongs to
    // this program's own address space.
    let max_rss_kib = own_peak_rss_kib().unwrap_or(ru.ru_maxrss as u64);
    Usage { cpu: tv(ru.ru_utime) + tv(ru.ru_stime), max_rss_kib }
}

/// `VmHWM` from /proc/self/status (Linux), KiB.
fn own_peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_this_process_own() {
        let before = super::usage().max_rss_kib;
        assert!(before > 0);
        // 64 MiB touched: the peak must rise by about that much.
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        let after = super::usage().max_rss_kib;
        assert!(after >= before + 60 * 1024, "{before} → {after}");
    }
}
