//! The per-isolate circuit breaker in front of KV reads (ARCHITECTURE.md,
//! "Failure behaviour"). A KV read that fails or times out costs the request its
//! time-out on top of the database work it then does anyway; when KV is down, every
//! request would pay that. After `failures` consecutive failed reads the breaker
//! opens: for `open_ms` the cache layers skip KV (outcome `bypass`) and answer from
//! the database at its plain cost. Then one read is let through; if it fails the
//! breaker opens again at once, if it succeeds the breaker closes. While that
//! one read is out, every other request still bypasses KV (half-open admits one
//! probe, not every request that arrives at once); a probe that never reports
//! (its request dropped) frees the slot after [`PROBE_GRACE_MS`].
//!
//! The state lives for the isolate (a thread-local: Workers run one isolate per
//! thread), not for a request. Requests with an injected fault (`x-bench-kv-fault`)
//! use a breaker of their own, so a test or bench that injects faults never opens
//! the breaker that real traffic of the same isolate uses.

use std::cell::Cell;
use std::rc::Rc;

/// When the breaker opens and for how long (`KV_BREAKER_FAILURES`, `KV_BREAKER_OPEN_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub failures: u32,
    pub open_ms: u64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy { failures: 5, open_ms: 10_000 }
    }
}

/// How long a half-open probe holds the one slot before another may probe.
pub const PROBE_GRACE_MS: f64 = 1000.0;

#[derive(Default)]
pub struct KvBreaker {
    consecutive_failures: Cell<u32>,
    open_until_ms: Cell<f64>,
    /// Half-open: a probe is out until then.
    probe_until_ms: Cell<f64>,
    /// Opened at least once and not closed by a success since: the first failure
    /// after the open period opens it again.
    tripped: Cell<bool>,
}

thread_local! {
    static TRAFFIC: Rc<KvBreaker> = Rc::default();
    static INJECTED: Rc<KvBreaker> = Rc::default();
}

/// What happened to a KV read, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadResult {
    /// KV answered (a value or a miss).
    Answered,
    /// KV failed or did not answer within the time-out.
    Failed,
}

impl KvBreaker {
    /// This isolate's breaker for real traffic, or for fault-injected requests.
    pub fn for_isolate(fault_injected: bool) -> Rc<KvBreaker> {
        if fault_injected {
            INJECTED.with(Rc::clone)
        } else {
            TRAFFIC.with(Rc::clone)
        }
    }

    /// Whether a read may go to KV at `now_ms`; after an open period, only one
    /// (the probe) until its result is recorded.
    pub fn allows(&self, now_ms: f64) -> bool {
        if now_ms < self.open_until_ms.get() {
            return false;
        }
        if !self.tripped.get() {
            return true;
        }
        if now_ms < self.probe_until_ms.get() {
            return false;
        }
        self.probe_until_ms.set(now_ms + PROBE_GRACE_MS);
        true
    }

    /// Counts one read's result; returns true when this result opened the breaker.
    pub fn record(&self, result: ReadResult, now_ms: f64, policy: BreakerPolicy) -> bool {
        self.probe_until_ms.set(0.0);
        match result {
            ReadResult::Answered => {
                self.consecutive_failures.set(0);
                self.tripped.set(false);
                false
            }
            ReadResult::Failed => {
                let failures = self.consecutive_failures.get() + 1;
                if self.tripped.get() || failures >= policy.failures.max(1) {
                    self.consecutive_failures.set(0);
                    self.tripped.set(true);
                    self.open_until_ms.set(now_ms + policy.open_ms as f64);
                    true
                } else {
                    self.consecutive_failures.set(failures);
                    false
                }
            }
        }
    }

    /// Whether the breaker is open at `now_ms` (for logs and tests; takes no probe slot).
    pub fn is_open(&self, now_ms: f64) -> bool {
        now_ms < self.open_until_ms.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy { failures: 3, open_ms: 1000 };

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = KvBreaker::default();
        assert!(!b.record(ReadResult::Failed, 0.0, POLICY));
        assert!(!b.record(ReadResult::Failed, 1.0, POLICY));
        // A success in between starts the count again.
        b.record(ReadResult::Answered, 2.0, POLICY);
        assert!(!b.record(ReadResult::Failed, 3.0, POLICY));
        assert!(!b.record(ReadResult::Failed, 4.0, POLICY));
        assert!(b.allows(4.0));
        assert!(b.record(ReadResult::Failed, 5.0, POLICY));
        assert!(!b.allows(5.0) && !b.allows(1004.9));
        assert!(b.allows(1005.0));
    }

    #[test]
    fn one_failure_after_the_open_period_reopens_one_success_closes() {
        let b = KvBreaker::default();
        for t in 0..3 {
            b.record(ReadResult::Failed, t as f64, POLICY);
        }
        assert!(b.is_open(10.0));
        assert!(b.record(ReadResult::Failed, 1500.0, POLICY), "the probe failed: open again");
        assert!(b.is_open(2000.0));
        b.record(ReadResult::Answered, 2600.0, POLICY);
        assert!(!b.record(ReadResult::Failed, 2700.0, POLICY), "closed: counting from zero again");
        assert!(b.allows(2700.0));
    }

    #[test]
    fn injected_faults_have_their_own_breaker() {
        let traffic = KvBreaker::for_isolate(false);
        let injected = KvBreaker::for_isolate(true);
        for t in 0..10 {
            injected.record(ReadResult::Failed, t as f64, POLICY);
        }
        assert!(injected.is_open(20.0));
        assert!(traffic.allows(20.0));
        assert!(Rc::ptr_eq(&traffic, &KvBreaker::for_isolate(false)));
    }

    #[test]
    fn half_open_lets_one_probe_through_until_it_reports() {
        let b = KvBreaker::default();
        for t in 0..3 {
            b.record(ReadResult::Failed, f64::from(t), POLICY);
        }
        assert!(!b.allows(500.0), "open");
        // Open period over: one probe, the requests arriving with it bypass.
        assert!(b.allows(1002.0));
        assert!(!b.allows(1003.0) && !b.allows(1500.0), "one probe at a time");
        // It answered: closed, everyone reads again.
        b.record(ReadResult::Answered, 1600.0, POLICY);
        assert!(b.allows(1601.0) && b.allows(1602.0));
        // Tripped again; a probe that never reports frees the slot after its grace.
        for t in 0..3 {
            b.record(ReadResult::Failed, 2000.0 + f64::from(t), POLICY);
        }
        assert!(b.allows(3003.0));
        assert!(!b.allows(3500.0));
        assert!(b.allows(3003.0 + PROBE_GRACE_MS));
    }
}
