//! The output directory, checked before any work: a run or bench that cannot write
//! its results must say so at the start, not after the load has been spent.

use std::io::Write;
use std::path::Path;

/// Free space below which nothing starts: a run rewrites its result file every
/// 5 s and writes an interval log and a report; a bench writes dozens of them.
pub const MIN_FREE_BYTES: u64 = 32 << 20;

/// Creates `dir` if needed and proves it writable: a probe file written, synced
/// and removed, and at least [`MIN_FREE_BYTES`] free on its file system.
pub fn check(dir: &Path) -> Result<(), String> {
    let what = |e: &dyn std::fmt::Display| {
        format!(
            "the output directory {} is not writable: {e}; choose another with --out, or fix its permissions",
            dir.display()
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| what(&e))?;
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    let written = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; 64 * 1024])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| what(&e))?;
    enough_free(dir, free_bytes(dir))
}

/// Refuses a file system with less than [`MIN_FREE_BYTES`] free (unknown: allowed).
fn enough_free(dir: &Path, free: Option<u64>) -> Result<(), String> {
    match free {
        Some(free) if free < MIN_FREE_BYTES => Err(format!(
            "only {:.1} MiB free where the results go ({}); a run needs at least {} MiB: free some space or \
             choose another directory with --out",
            free as f64 / (1 << 20) as f64,
            dir.display(),
            MIN_FREE_BYTES >> 20
        )),
        _ => Ok(()),
    }
}

/// Bytes an unprivileged writer may still use on `dir`'s file system.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a NUL-terminated path and a zeroed struct statvfs fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_directory_passes_and_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b");
        check(&out).unwrap();
        assert!(out.is_dir());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "the probe is removed");
    }

    #[test]
    fn an_unwritable_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let e = check(&file.join("out")).unwrap_err();
        assert!(e.contains("not-a-dir") && e.contains("--out"), "{e}");
    }

    #[test]
    fn a_nearly_full_file_system_is_refused() {
        let e = enough_free(Path::new("/results"), Some(5 << 20)).unwrap_err();
        assert!(e.contains("5.0 MiB free") && e.contains("/results"), "{e}");
        assert!(enough_free(Path::new("/r"), Some(MIN_FREE_BYTES)).is_ok());
        assert!(enough_free(Path::new("/r"), None).is_ok());
        assert!(free_bytes(Path::new("/")).is_some_and(|b| b > 0));
    }
}
