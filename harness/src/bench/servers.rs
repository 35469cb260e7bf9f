//! The local stack of `harness bench`: two `wrangler dev` processes (cache on, and
//! wrangler.toml's `cache-off` env) on free loopback ports, each with its own
//! persisted KV and D1 state, migrated before it starts. Each runs in its own
//! process group, so stopping it (on drop: every path, panics included) ends
//! workerd with it and a terminal's Ctrl-C reaches only the harness.

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{BenchError, Observer};
use crate::target::worker::{get_health, Health};
use crate::target::SetupClient;

/// The repository the bench runs from: where wrangler.toml and node_modules are.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub wrangler: PathBuf,
}

/// The repository around `start`: the first directory from it upwards that holds
/// wrangler.toml.
pub fn repo_root(start: &Path) -> Option<PathBuf> {
    let start = start.canonicalize().unwrap_or_else(|_| start.to_owned());
    start.ancestors().find(|d| d.join("wrangler.toml").is_file()).map(Path::to_owned)
}

impl Workspace {
    /// The first directory from `start` upwards that holds wrangler.toml; the
    /// wrangler it installed with `npm ci` unless `wrangler` names another.
    pub fn find(start: &Path, wrangler: Option<PathBuf>) -> Result<Workspace, BenchError> {
        let root = repo_root(start).ok_or_else(|| {
            BenchError::Setup(format!(
                "no wrangler.toml in {} or above: run `harness bench` from the repository (or pass --root DIR), \
                 or give --target-on URL --target-off URL for deployed workers",
                start.canonicalize().unwrap_or_else(|_| start.to_owned()).display()
            ))
        })?;
        let wrangler = wrangler.unwrap_or_else(|| root.join("node_modules/.bin/wrangler"));
        if !wrangler.is_file() {
            return Err(BenchError::Setup(format!(
                "wrangler is not installed ({} is missing): run `scripts/setup` in {} (it runs `npm ci` from \
                 package-lock.json and installs the Rust tools the worker build needs)",
                wrangler.display(),
                root.display()
            )));
        }
        Ok(Workspace { root, wrangler })
    }
}

/// Secrets of one local run, fresh for each: nothing outside the run knows them.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub bench: String,
    pub jwt: String,
    /// 32 bytes, base64: the AES-256-GCM key for stored provider API keys.
    pub encryption_key: String,
}

impl Secrets {
    pub fn random() -> Secrets {
        use base64::Engine;
        use rand::Rng;
        let mut rng = rand::rng();
        let hex = |rng: &mut rand::rngs::ThreadRng| hex::encode(rng.random::<[u8; 16]>());
        Secrets {
            bench: hex(&mut rng),
            jwt: hex(&mut rng),
            encryption_key: base64::engine::general_purpose::STANDARD.encode(rng.random::<[u8; 32]>()),
        }
    }
}

/// CPUs for the harness and for the servers, when there are enough to keep them
/// apart (ARCHITECTURE.md, "Measurement"): the load generator on CPU 0, workerd and wrangler on the
/// rest. With fewer than 4, pinning would starve the servers (each request passes
/// two workerd processes and node), so nothing is pinned.
pub fn cpu_split() -> Option<(usize, Vec<usize>)> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (n >= 4).then(|| (0, (1..n).collect()))
}

/// Restricts the calling process (and what it starts later) to `cpus`.
pub fn pin_to(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it for CPUs below
    // CPU_SETSIZE, which available_parallelism stays under.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A free loopback port: bound, read and released. Another process could take it
/// before wrangler binds it; `LocalServer::start` then tries again with another.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Waits for `child` to end, or kills it when `cancel` is set (`None`); calls
/// `every_10s` with the seconds waited so far, so that a long build is not a
/// silent minute.
fn wait_child(
    child: &mut Child,
    cancel: &AtomicBool,
    mut every_10s: impl FnMut(u64),
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let start = Instant::now();
    let mut reported = 0;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let waited = start.elapsed().as_secs();
        if waited / 10 > reported {
            reported = waited / 10;
            every_10s(waited);
        }
        if cancel.load(Ordering::Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a set-up command to its end, with its output in `log`; an error carries
/// the output's last lines.
pub fn run_logged(
    mut cmd: Command,
    what: &str,
    log: &Path,
    cancel: &AtomicBool,
    observer: &dyn Observer,
) -> Result<(), BenchError> {
    let file = File::create(log).map_err(|e| BenchError::Setup(format!("cannot create {}: {e}", log.display())))?;
    let err_file = file.try_clone().map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err_file)
        .spawn()
        .map_err(|e| BenchError::Setup(format!("cannot run {what}: {e}")))?;
    let progress = |waited: u64| {
        let last = tail(log, 1);
        let last = last.trim();
        let last: String = last.chars().take(100).collect();
        observer.say(&format!(
            "  … {what}: {waited} s so far{}",
            if last.is_empty() { String::new() } else { format!(" ({last})") }
        ));
    };
    match wait_child(&mut child, cancel, progress).map_err(|e| BenchError::Setup(format!("{what}: {e}")))? {
        None => Err(BenchError::Interrupted),
        Some(s) if s.success() => Ok(()),
        Some(s) => {
            Err(BenchError::Setup(format!("{what} failed ({s}); its output ({}):\n{}", log.display(), tail(log, 15))))
        }
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One `wrangler dev`, stopped with its whole process group when dropped.
pub struct LocalServer {
    /// `cache-on` or `cache-off`.
    pub name: String,
    pub url: String,
    pub log: PathBuf,
    child: Child,
    /// Kills the group when the harness dies ([`watchdog`]); reaped on stop.
    watchdog: Option<Child>,
    /// Held open while the harness lives: the watchdog's stdin.
    _lifeline: Option<std::io::PipeWriter>,
    stopped: bool,
    /// What asks it to stop (SIGKILL follows after 5 s).
    pub stop_signal: libc::c_int,
}

/// A process in the server's group that kills the group when the harness is
/// gone, however it went (a SIGKILL runs no destructor): it reads a pipe whose
/// only writer the harness holds, and the read ends when the harness's end is
/// closed — at its exit. `wrangler dev` does not stop workerd when its own node
/// process is killed, so without it a killed bench left both running (issue 28:
/// two groups seen alive two hours later).
fn watchdog(pgid: u32) -> std::io::Result<(Child, std::io::PipeWriter)> {
    // std's pipes are close-on-exec: no other child inherits the writer.
    let (reader, writer) = std::io::pipe()?;
    let child = Command::new("sh")
        .args(["-c", "read -r _; kill -KILL 0"])
        .stdin(reader)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(pgid as i32)
        .spawn()?;
    Ok((child, writer))
}

/// What a server's `GET /health` said.
/// How long `wrangler dev` may take to answer its first `/health` (a cold worker
/// build happens before it, in `scripts/build-worker`).
const READY_TIMEOUT: Duration = Duration::from_secs(180);

pub struct ServerSpec<'a> {
    pub name: &'a str,
    /// The wrangler.toml env (`cache-off`), or the top level.
    pub env: Option<&'a str>,
    /// Its persisted KV/D1 state.
    pub state: &'a Path,
    pub log: &'a Path,
    /// CPUs the server (and workerd under it) may use; empty: any.
    pub cpus: &'a [usize],
    /// The port wanted; a free one when it is `None` or in use.
    pub port: Option<u16>,
    /// Apply the D1 migrations first (not when starting again on migrated state).
    pub migrate: bool,
}

impl LocalServer {
    /// Migrates the server's D1 state, then starts `wrangler dev` on a free port.
    pub fn start(
        ws: &Workspace,
        spec: &ServerSpec,
        secrets: &Secrets,
        cancel: &AtomicBool,
        observer: &dyn Observer,
    ) -> Result<LocalServer, BenchError> {
        std::fs::create_dir_all(spec.state)
            .map_err(|e| BenchError::Setup(format!("cannot create {}: {e}", spec.state.display())))?;
        let env_args: Vec<&str> = spec.env.map(|e| vec!["--env", e]).unwrap_or_default();
        if spec.migrate {
            let mut migrate = wrangler(ws);
            migrate
                .args(["d1", "migrations", "apply", "DB", "--local", "--persist-to"])
                .arg(spec.state)
                .args(&env_args);
            let migrate_log = spec.log.with_extension("migrate.log");
            run_logged(
                migrate,
                &format!("{}: wrangler d1 migrations apply", spec.name),
                &migrate_log,
                cancel,
                observer,
            )?;
        }

        let free = || free_port().map_err(|e| BenchError::Setup(format!("no free loopback port: {e}")));
        let port = match spec.port {
            Some(p) if TcpListener::bind(("127.0.0.1", p)).is_ok() => p,
            Some(p) => {
                let other = free()?;
                observer.say(&format!("{}: port {p} is in use; using {other}", spec.name));
                other
            }
            None => free()?,
        };
        let inspector = free_port().map_err(|e| BenchError::Setup(format!("no free loopback port: {e}")))?;
        let log = File::create(spec.log).map_err(|e| BenchError::Setup(format!("{}: {e}", spec.log.display())))?;
        let log2 = log.try_clone().map_err(|e| BenchError::Setup(e.to_string()))?;
        let mut cmd = wrangler(ws);
        cmd.args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string(), "--inspector-port", &inspector.to_string()])
            .args(["--local", "--show-interactive-dev-session=false", "--persist-to"])
            .arg(spec.state)
            .args(["--var", &format!("BENCH_SECRET:{}", secrets.bench)])
            .args(["--var", &format!("JWT_SECRET:{}", secrets.jwt)])
            .args(["--var", &format!("ENCRYPTION_KEY:{}", secrets.encryption_key)])
            .args(&env_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if !spec.cpus.is_empty() {
            let cpus = spec.cpus.to_vec();
            // SAFETY: between fork and exec only sched_setaffinity runs (async-signal-safe).
            unsafe {
                cmd.pre_exec(move || pin_to(&cpus));
            }
        }
        LocalServer::spawn(spec.name, format!("http://127.0.0.1:{port}"), spec.log, cmd)
    }

    /// Starts `cmd` (its output already directed) in a process group of its own:
    /// stopped as a whole, and out of reach of the terminal's Ctrl-C, which the
    /// harness handles.
    pub fn spawn(name: &str, url: String, log: &Path, mut cmd: Command) -> Result<LocalServer, BenchError> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .process_group(0)
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {name} ({program}): {e}")))?;
        let (watchdog, lifeline) = match watchdog(child.id()) {
            Ok((w, l)) => (Some(w), Some(l)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Setup(format!("cannot start the watchdog of {name} (sh): {e}")));
            }
        };
        Ok(LocalServer {
            name: name.to_owned(),
            url,
            log: log.to_owned(),
            child,
            watchdog,
            _lifeline: lifeline,
            stopped: false,
            stop_signal: libc::SIGTERM,
        })
    }

    /// Waits for `GET /health`; fails when the process ends first (with its log's
    /// last lines), after [`READY_TIMEOUT`], or on Ctrl-C.
    pub fn wait_ready(&mut self, agent: &SetupClient, cancel: &AtomicBool) -> Result<Health, BenchError> {
        let url = self.url.clone();
        self.wait_for("GET /health", READY_TIMEOUT, cancel, || get_health(agent, &url).ok())
    }

    /// Waits until `ready` gives an answer; fails when the process ends first (with
    /// its log's last lines), after `timeout`, or on Ctrl-C.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        cancel: &AtomicBool,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Result<T, BenchError> {
        let started = Instant::now();
        loop {
            if let Some(reason) = self.exited() {
                return Err(BenchError::Server(format!(
                    "{reason} before it answered; its log ({}):\n{}",
                    self.log.display(),
                    tail(&self.log, 15)
                )));
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(BenchError::Interrupted);
            }
            if let Some(answer) = ready() {
                return Ok(answer);
            }
            if started.elapsed() > timeout {
                return Err(BenchError::Server(format!(
                    "{} did not answer {what} within {} s; its log ({}):\n{}",
                    self.name,
                    timeout.as_secs(),
                    self.log.display(),
                    tail(&self.log, 15)
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Why the process is gone, if it is.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("the {} server exited ({status})", self.name)),
            Ok(None) => None,
            Err(e) => Some(format!("the {} server cannot be checked: {e}", self.name)),
        }
    }

    /// Ends the process group: its stop signal (SIGTERM), then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: signals our own child's process group (created with process_group(0)).
        unsafe { libc::killpg(pgid, self.stop_signal) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // workerd may outlive wrangler's node process: the group goes, whatever is left of it
        // (the watchdog with it).
        // SAFETY: as above.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        if let Some(w) = self.watchdog.as_mut() {
            let _ = w.wait();
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wrangler(ws: &Workspace) -> Command {
    let mut cmd = Command::new(&ws.wrangler);
    cmd.current_dir(&ws.root).env("WRANGLER_SEND_METRICS", "false").env("CI", "1");
    cmd
}
