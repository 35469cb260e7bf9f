//! The two builds' source trees: the head is the working tree as it is (or a
//! ref), the base a ref checked out into a worktree of the same repository that
//! persists between gates, so its build cache stays warm. Worktrees live under
//! the repository's git directory (`.git/harness-gate/<name>`): never shown as
//! untracked files, never globbed by a project's tools.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

/// One build's tree, as the report names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// `base` or `head`.
    pub side: String,
    /// The ref as given (`origin/main`, `HEAD~1`), or `working tree`.
    pub given: String,
    /// The commit it resolved to (for the working tree: HEAD's).
    pub commit: String,
    /// The working tree had changes not committed.
    pub uncommitted: bool,
    pub root: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git (is it installed and on PATH?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} (in {}) failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The top of the repository `dir` is in.
pub fn repo_root(dir: &Path) -> Result<PathBuf, String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])
        .map_err(|e| format!("{} is not inside a git repository: the gate builds refs of one ({e})", dir.display()))?;
    Ok(PathBuf::from(top))
}

/// The commit `rev` names, or an error that says how to make it available.
pub fn resolve(root: &Path, rev: &str) -> Result<String, String> {
    git(root, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).map_err(|_| {
        format!(
            "{rev:?} names no commit in {}: fetch it first (git fetch origin {rev}; in GitHub Actions, \
             actions/checkout with fetch-depth: 0)",
            root.display()
        )
    })
}

/// The working tree as it is: HEAD's commit, and whether anything is uncommitted.
pub fn working_tree(root: &Path) -> Result<Tree, String> {
    let commit = resolve(root, "HEAD")?;
    let status = git(root, &["status", "--porcelain", "--untracked-files=no"])?;
    Ok(Tree {
        side: "head".into(),
        given: "working tree".into(),
        commit,
        uncommitted: !status.is_empty(),
        root: root.to_owned(),
    })
}

/// `commit` checked out in the worktree `name`, made on first use and reused
/// (its untracked build output kept) after.
pub fn checkout(root: &Path, side: &str, given: &str, commit: &str) -> Result<Tree, String> {
    let common = PathBuf::from(git(root, &["rev-parse", "--path-format=absolute", "--git-common-dir"])?);
    let dir = common.join("harness-gate").join(side);
    let registered = git(root, &["worktree", "list", "--porcelain"])?
        .lines()
        .any(|l| l.strip_prefix("worktree ").is_some_and(|p| Path::new(p) == dir));
    if registered && dir.is_dir() {
        git(&dir, &["checkout", "--quiet", "--detach", "--force", commit])?;
        // Tracked files as the commit has them; untracked build caches stay.
        git(&dir, &["reset", "--quiet", "--hard", commit])?;
    } else {
        git(root, &["worktree", "prune"])?;
        // A directory git no longer knows (restored from a CI cache into a new
        // clone): checked out afresh, its untracked build output moved back in.
        let kept = dir.with_extension("kept");
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&kept);
            std::fs::rename(&dir, &kept).map_err(|e| format!("cannot move {} aside: {e}", dir.display()))?;
        }
        let path = dir.to_string_lossy().into_owned();
        git(root, &["worktree", "add", "--quiet", "--detach", &path, commit])?;
        if kept.exists() {
            move_untracked(&kept, &dir)?;
            std::fs::remove_dir_all(&kept).map_err(|e| format!("cannot clear {}: {e}", kept.display()))?;
        }
    }
    Ok(Tree { side: side.into(), given: given.into(), commit: commit.into(), uncommitted: false, root: dir })
}

/// Moves every top-level entry of `from` that `to` lacks (build output, caches) into `to`.
fn move_untracked(from: &Path, to: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let target = to.join(entry.file_name());
        if entry.file_name() != ".git" && target.symlink_metadata().is_err() {
            std::fs::rename(entry.path(), &target)
                .map_err(|e| format!("cannot move {} back: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Links each of `paths` (relative to the two `dir`s) from `from` into `to`
/// when `to` lacks it: installed dependencies are borrowed, not installed again.
pub fn share(from: &Path, to: &Path, paths: &[String]) -> Result<(), String> {
    for p in paths {
        let (source, link) = (from.join(p), to.join(p));
        if link.exists() {
            continue;
        }
        let source = source.canonicalize().map_err(|_| {
            format!("[gate] share names {p:?}, which {} does not have: install it there first", from.display())
        })?;
        if link.symlink_metadata().is_ok() {
            // A link left dangling (its target moved): made again below.
            std::fs::remove_file(&link).map_err(|e| format!("cannot replace {}: {e}", link.display()))?;
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::os::unix::fs::symlink(&source, &link)
            .map_err(|e| format!("cannot link {} to {}: {e}", link.display(), source.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| git(dir.path(), args).unwrap();
        run(&["init", "--quiet"]);
        std::fs::write(dir.path().join("f"), "one").unwrap();
        run(&["add", "f"]);
        run(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "one"]);
        std::fs::write(dir.path().join("f"), "two").unwrap();
        run(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-am", "two"]);
        dir
    }

    #[test]
    fn a_ref_is_checked_out_and_reused_with_its_untracked_files() {
        let r = repo();
        let root = repo_root(r.path()).unwrap();
        let first = resolve(&root, "HEAD~1").unwrap();
        let tree = checkout(&root, "base", "HEAD~1", &first).unwrap();
        assert_eq!(std::fs::read_to_string(tree.root.join("f")).unwrap(), "one");
        std::fs::write(tree.root.join("cache"), "warm").unwrap();
        std::fs::write(tree.root.join("f"), "edited").unwrap();
        let second = resolve(&root, "HEAD").unwrap();
        let again = checkout(&root, "base", "HEAD", &second).unwrap();
        assert_eq!(again.root, tree.root);
        assert_eq!(std::fs::read_to_string(again.root.join("f")).unwrap(), "two", "tracked files as committed");
        assert_eq!(std::fs::read_to_string(again.root.join("cache")).unwrap(), "warm", "build output kept");
        assert!(working_tree(&root).unwrap().commit == second);

        // A new clone with the old worktree's directory restored (a CI cache):
        // checked out afresh, the build output kept.
        let clone = tempfile::tempdir().unwrap();
        git(clone.path(), &["clone", "--quiet", &root.to_string_lossy(), "."]).unwrap();
        let restored = clone.path().join(".git/harness-gate/base");
        std::fs::create_dir_all(restored.join("target")).unwrap();
        std::fs::write(restored.join("target/cache"), "warm").unwrap();
        let fresh = checkout(clone.path(), "base", "HEAD~1", &first).unwrap();
        assert_eq!(std::fs::read_to_string(fresh.root.join("f")).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(fresh.root.join("target/cache")).unwrap(), "warm");
    }

    #[test]
    fn a_missing_ref_says_how_to_fetch_it() {
        let r = repo();
        let e = resolve(r.path(), "origin/nowhere").unwrap_err();
        assert!(e.contains("git fetch") && e.contains("fetch-depth"), "{e}");
    }

    #[test]
    fn uncommitted_changes_are_seen() {
        let r = repo();
        assert!(!working_tree(r.path()).unwrap().uncommitted);
        std::fs::write(r.path().join("f"), "three").unwrap();
        assert!(working_tree(r.path()).unwrap().uncommitted);
    }
}
