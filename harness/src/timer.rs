//! A sub-millisecond timer for the open-model dispatcher.
//!
//! tokio's timer wheel has 1 ms ticks and rounds deadlines up, so sends land 1–2 ms
//! after their intended time: at a few ms of server latency that is most of the
//! measurement, and every send would count as late. A Linux timerfd armed with the
//! exact remaining time wakes the reactor within microseconds instead, without
//! spinning. Written on libc because the tokio timerfd crates are unmaintained.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

pub struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
}

impl PreciseTimer {
    pub fn new() -> io::Result<PreciseTimer> {
        // SAFETY: timerfd_create returns a new descriptor or -1.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we own from here on.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged until dropped,
        // and the AsyncFd owns it for its whole life.
        let fd = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(PreciseTimer { fd })
    }

    fn arm(&self, after: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                // A zero value would disarm the timer: at least 1 ns.
                tv_nsec: (after.subsec_nanos().max(1)) as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd and a valid itimerspec.
        let rc = unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Completes at `deadline` (or at once if it has passed).
    pub async fn sleep_until(&self, deadline: Instant) -> io::Result<()> {
        let now = Instant::now();
        if deadline <= now {
            return Ok(());
        }
        self.arm(deadline - now)?;
        loop {
            let mut guard = self.fd.readable().await?;
            let mut expirations = 0u64;
            // SAFETY: reading 8 bytes into a u64 from a timerfd.
            let n = unsafe {
                libc::read(self.fd.as_raw_fd(), (&mut expirations as *mut u64).cast(), std::mem::size_of::<u64>())
            };
            if n == 8 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_at_the_deadline_not_before() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = PreciseTimer::new().unwrap();
            for us in [300u64, 1500, 2500] {
                let deadline = Instant::now() + Duration::from_micros(us);
                t.sleep_until(deadline).await.unwrap();
                assert!(Instant::now() >= deadline);
            }
            // A passed deadline returns at once.
            t.sleep_until(Instant::now() - Duration::from_millis(1)).await.unwrap();
        });
    }
}
