//! The local stack: `redis-server`, the Upstash REST server, the test origin and `wrangler dev`
//! on the prebuilt worker bundle, each on a free port, each in its own process group, all torn
//! down together.
//!
//! Shared by the `edge-auth-dev` command and the end-to-end tests (which run that command with
//! `--json`). Start it from a thread that lives as long as the stack: children are tied to the
//! spawning thread with `PR_SET_PDEATHSIG` (see [`child`]). If the process that started the
//! stack dies without tearing it down, a [`watchdog`] kills every process group it left.
//!
//! ```no_run
//! use edge_auth_tools::stack::{Stack, StackOptions};
//! let stack = Stack::start(&StackOptions::default()).unwrap();
//! println!("{}", stack.info().worker);
//! stack.shutdown().unwrap();
//! ```

pub mod banner;
pub mod child;
pub mod dev_profile;
pub mod error;
pub mod locate;
pub mod probe;
pub mod procs;
pub mod vars;
pub mod watchdog;
pub mod wrangler;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use serde::{Deserialize, Serialize};

pub use banner::{banner, print_banner};
use child::ManagedChild;
use watchdog::Watchdog;
pub use error::StackError;

/// How to start the stack. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Repository root. Default: [`locate::repo_root`] (env `EDGE_AUTH_ROOT`, else walk up).
    pub root: Option<PathBuf>,
    /// Directory of the prebuilt worker bundle, holding `index.js`. Default: `<root>/build`.
    pub bundle_dir: Option<PathBuf>,
    /// Start the Upstash REST server with `--admin` (stats and fault injection). Default: true.
    pub admin: bool,
    /// Extra worker vars, applied after (and overriding) `ORIGIN_URL`,
    /// `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN`. Default: none.
    pub vars: Vec<(String, String)>,
    /// Port for the worker. Default: a free port.
    pub worker_port: Option<u16>,
    /// wrangler's `--log-level`. Default: `log` (shows the worker's console output).
    pub log_level: String,
    /// How long `wrangler dev` may take to answer its first request. Default: 60 s.
    pub ready_timeout: Duration,
    /// Set to true (e.g. by a signal handler) to abandon a start in progress. Default: none.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Keep the logs directory after a clean shutdown. Default: false (it is always kept
    /// after a failure).
    pub keep_logs: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            root: None,
            bundle_dir: None,
            admin: true,
            vars: Vec::new(),
            worker_port: None,
            log_level: "log".to_string(),
            ready_timeout: Duration::from_secs(60),
            cancel: None,
            keep_logs: false,
        }
    }
}

/// One started process, as reported in [`StackInfo::processes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// `watchdog`, `redis`, `upstash`, `origin` or `wrangler`.
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Its process group (every process it starts stays in it, e.g. workerd under wrangler).
    pub pgid: i32,
}

/// Where the running stack can be reached. This is the `--json` line of `edge-auth-dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackInfo {
    /// The worker, e.g. `http://127.0.0.1:8787` (no trailing slash).
    pub worker: String,
    /// The echoing test origin (no trailing slash).
    pub origin: String,
    /// The Upstash REST server (no trailing slash).
    pub upstash: String,
    /// Bearer token of the Upstash REST server.
    pub upstash_token: String,
    /// Port of redis-server on 127.0.0.1.
    pub redis_port: u16,
    /// Directory with every child's stdout/stderr logs and the temporary wrangler config.
    pub logs_dir: String,
    /// Pid of the process that started the stack.
    pub launcher_pid: u32,
    /// The started processes, in start order.
    pub processes: Vec<ProcessInfo>,
}

/// A running stack. Dropping it tears everything down (see [`Stack::shutdown`] to learn
/// whether that was clean).
pub struct Stack {
    info: StackInfo,
    children: Vec<ManagedChild>,
    watchdog: Option<Watchdog>,
    logs_dir: PathBuf,
    keep_logs: bool,
    torn_down: bool,
}

/// Time a child gets after SIGTERM before its group gets SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

impl Stack {
    /// Starts redis-server, the Upstash REST server, the test origin and `wrangler dev`, in
    /// that order, waiting for each to be ready. On failure everything started is torn down
    /// and the error carries the log tails; the logs directory is kept.
    pub fn start(opts: &StackOptions) -> Result<Stack, StackError> {
        let cancel = opts.cancel.clone();
        let cancelled = move || cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst));

        let root = match &opts.root {
            Some(r) => r.clone(),
            None => locate::repo_root()?,
        };
        let bundle_dir = opts.bundle_dir.clone().unwrap_or_else(|| root.join("build"));
        let bundle_dir = bundle_dir.canonicalize().map_err(|e| {
            StackError::io(format!("bundle directory {} (build the worker first, e.g. `worker-build --release`)", bundle_dir.display()), e)
        })?;
        let main = bundle_dir.join("index.js");
        if !main.is_file() {
            return Err(StackError::msg(format!("{} not found: build the worker first", main.display())));
        }
        let wrangler_bin = locate::program(root.join("node_modules/.bin/wrangler"), "WRANGLER_BIN");
        if wrangler_bin.components().count() > 1 && !wrangler_bin.is_file() {
            return Err(StackError::msg(format!("{} not found: run `npm ci` in {}", wrangler_bin.display(), root.display())));
        }
        let redis_bin = locate::program("redis-server", "REDIS_SERVER_BIN");
        let upstash_bin = locate::sibling_tool("upstash-rest-server", "UPSTASH_SERVER_BIN")?;
        let origin_bin = locate::sibling_tool("test-origin", "TEST_ORIGIN_BIN")?;

        let logs_dir = make_logs_dir()?;
        let watchdog = Watchdog::start((!opts.keep_logs).then_some(logs_dir.as_path()))?;
        let watchdog_pid = watchdog.pid();
        let mut stack = Stack {
            info: StackInfo {
                worker: String::new(),
                origin: String::new(),
                upstash: String::new(),
                upstash_token: random_hex(24),
                redis_port: 0,
                logs_dir: logs_dir.to_string_lossy().into_owned(),
                launcher_pid: std::process::id(),
                processes: vec![ProcessInfo { name: "watchdog".to_string(), pid: watchdog_pid, pgid: watchdog_pid as i32 }],
            },
            children: Vec::new(),
            watchdog: Some(watchdog),
            logs_dir: logs_dir.clone(),
            keep_logs: opts.keep_logs,
            torn_down: false,
        };
        let result = stack.start_children(opts, &cancelled, &redis_bin, &upstash_bin, &origin_bin, &wrangler_bin, &main);
        match result {
            Ok(()) => Ok(stack),
            Err(e) => {
                stack.keep_logs = true;
                let left = stack.teardown();
                let mut e = e.with_logs_dir(logs_dir);
                if !left.is_empty() {
                    e.details.push_str(&format!("\nprocesses left after teardown: {left:?}"));
                }
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_children(
        &mut self,
        opts: &StackOptions,
        cancelled: &dyn Fn() -> bool,
        redis_bin: &std::path::Path,
        upstash_bin: &std::path::Path,
        origin_bin: &std::path::Path,
        wrangler_bin: &std::path::Path,
        main: &std::path::Path,
    ) -> Result<(), StackError> {
        let logs_dir = self.logs_dir.clone();

        // 1. redis-server. A port taken between our probe and its bind makes it exit: retry.
        let mut attempt = 0;
        let redis_port = loop {
            attempt += 1;
            let port = probe::free_port().map_err(|e| StackError::io("finding a free port", e))?;
            let mut cmd = Command::new(redis_bin);
            cmd.args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
                .args(["--daemonize", "no", "--protected-mode", "yes"])
                .arg("--dir")
                .arg(&logs_dir);
            let child = ManagedChild::spawn("redis", cmd, &logs_dir, false)?;
            self.push(child);
            match self.wait_redis(port, Duration::from_secs(10), cancelled) {
                Ok(()) => break port,
                Err(e) if attempt < 3 && !e.cancelled && self.last_exited() => {
                    let _ = self.children.pop();
                    self.info.processes.pop();
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        self.info.redis_port = redis_port;

        // 2. The Upstash REST server.
        let mut cmd = Command::new(upstash_bin);
        cmd.args(["--listen", "127.0.0.1:0"])
            .arg("--redis-url")
            .arg(format!("redis://127.0.0.1:{redis_port}"))
            // Through the environment: argv is visible to every user of the machine.
            .env("UPSTASH_REST_TOKEN", &self.info.upstash_token)
            .env_remove("UPSTASH_REST_ADMIN");
        if opts.admin {
            cmd.arg("--admin");
        }
        let mut child = ManagedChild::spawn("upstash", cmd, &logs_dir, true)?;
        let url = child.wait_listening(Duration::from_secs(15), cancelled);
        self.push(child);
        self.info.upstash = url?.trim_end_matches('/').to_string();

        // 3. The test origin.
        let mut cmd = Command::new(origin_bin);
        cmd.args(["--listen", "127.0.0.1:0"]);
        let mut child = ManagedChild::spawn("origin", cmd, &logs_dir, true)?;
        let url = child.wait_listening(Duration::from_secs(15), cancelled);
        self.push(child);
        self.info.origin = url?.trim_end_matches('/').to_string();

        // 4. wrangler dev on the prebuilt bundle.
        let mut vars = vec![
            ("ORIGIN_URL".to_string(), self.info.origin.clone()),
            ("UPSTASH_REDIS_REST_URL".to_string(), self.info.upstash.clone()),
            ("UPSTASH_REDIS_REST_TOKEN".to_string(), self.info.upstash_token.clone()),
        ];
        vars.extend(opts.vars.iter().cloned());
        let config = logs_dir.join("wrangler.toml");
        std::fs::write(&config, wrangler::config_toml(main, &vars))
            .map_err(|e| StackError::io(format!("writing {}", config.display()), e))?;
        // Secrets go where wrangler dev reads secrets from (beside the config), so its banner
        // and logs show them as hidden.
        let secrets = logs_dir.join(".dev.vars");
        std::fs::write(&secrets, wrangler::dev_vars(&vars))
            .map_err(|e| StackError::io(format!("writing {}", secrets.display()), e))?;
        let state_dir = logs_dir.join("wrangler-state");
        std::fs::create_dir_all(&state_dir).map_err(|e| StackError::io("creating the wrangler state directory", e))?;
        // A free port can be taken by someone else before workerd binds it: then wrangler
        // exits with "Address already in use", and we try again with other ports.
        let mut attempt = 0;
        let port = loop {
            attempt += 1;
            let port = match opts.worker_port {
                Some(p) => p,
                None => probe::free_port().map_err(|e| StackError::io("finding a free port", e))?,
            };
            let inspector_port = probe::free_port().map_err(|e| StackError::io("finding a free port", e))?;
            let cmd = wrangler::dev_command(&wrangler::DevArgs {
                wrangler: wrangler_bin,
                config: &config,
                port,
                inspector_port,
                log_level: &opts.log_level,
                state_dir: &state_dir,
            });
            let child = ManagedChild::spawn("wrangler", cmd, &logs_dir, false)?;
            self.push(child);
            match self.wait_worker(port, opts.ready_timeout, cancelled) {
                Ok(()) => break port,
                Err(e) if attempt < 3 && opts.worker_port.is_none() && !e.cancelled && self.last_lost_port_race() => {
                    if let Some(mut c) = self.children.pop() {
                        let _ = child::terminate_all(std::slice::from_mut(&mut c), TERM_GRACE);
                        let _ = std::fs::rename(&c.stdout_log, logs_dir.join(format!("wrangler.attempt{attempt}.stdout.log")));
                        let _ = std::fs::rename(&c.stderr_log, logs_dir.join(format!("wrangler.attempt{attempt}.stderr.log")));
                    }
                    self.info.processes.pop();
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        self.info.worker = format!("http://127.0.0.1:{port}");
        Ok(())
    }

    fn push(&mut self, child: ManagedChild) {
        if let Some(w) = self.watchdog.as_mut() {
            w.watch(child.pgid);
        }
        self.info.processes.push(ProcessInfo { name: child.name.to_string(), pid: child.pid(), pgid: child.pgid });
        self.children.push(child);
    }

    fn last_exited(&mut self) -> bool {
        self.children.last_mut().is_some_and(|c| c.exit_status().is_some())
    }

    /// True if the last child (wrangler) exited because its port was taken.
    fn last_lost_port_race(&mut self) -> bool {
        let Some(c) = self.children.last_mut() else { return false };
        c.exit_status().is_some() && c.log_tails(50).contains("Address already in use")
    }

    fn wait_redis(&mut self, port: u16, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<(), StackError> {
        let deadline = Instant::now() + timeout;
        loop {
            if cancelled() {
                return Err(StackError::cancelled());
            }
            let Some(child) = self.children.last_mut() else { return Err(StackError::msg("redis was not started")) };
            // Ours, not another stack's that took the port first (then ours exits: retried).
            if probe::redis_pid(port) == Some(child.pid()) {
                return Ok(());
            }
            child.ensure_running("starting")?;
            if Instant::now() >= deadline {
                return Err(StackError::child(format!("redis-server did not answer PING on port {port} within {timeout:?}"), child));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_worker(&mut self, port: u16, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<(), StackError> {
        let deadline = Instant::now() + timeout;
        loop {
            if cancelled() {
                return Err(StackError::cancelled());
            }
            let Some(child) = self.children.last_mut() else { return Err(StackError::msg("wrangler was not started")) };
            // Only ask once wrangler's own processes hold the port: a free port picked a moment
            // ago may have gone to someone else, whose answer would prove nothing.
            if procs::group_listens_on(child.pgid, port) && probe::http_status(port, "/", Duration::from_secs(10)).is_some() {
                return Ok(());
            }
            child.ensure_running("starting")?;
            if Instant::now() >= deadline {
                return Err(StackError::child(
                    format!("wrangler dev did not answer an HTTP request on port {port} within {timeout:?}"),
                    child,
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where the stack can be reached.
    pub fn info(&self) -> &StackInfo {
        &self.info
    }

    /// Fails if any child has exited since the start (its log tails are in the error).
    pub fn check_alive(&mut self) -> Result<(), StackError> {
        for c in self.children.iter_mut() {
            c.ensure_running("running")?;
        }
        Ok(())
    }

    /// Tears everything down and checks that no process of the stack is left.
    pub fn shutdown(mut self) -> Result<(), StackError> {
        let left = self.teardown();
        if left.is_empty() {
            Ok(())
        } else {
            Err(StackError::msg(format!("processes still alive after teardown: {left:?}")).with_logs_dir(self.logs_dir.clone()))
        }
    }

    /// SIGTERM to every group, SIGKILL after [`TERM_GRACE`]; returns what is still alive.
    fn teardown(&mut self) -> Vec<(String, i32)> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let left = child::terminate_all(&mut self.children, TERM_GRACE);
        if let Some(mut w) = self.watchdog.take() {
            w.dismiss();
        }
        if left.is_empty() && !self.keep_logs {
            let _ = std::fs::remove_dir_all(&self.logs_dir);
        }
        left
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let left = self.teardown();
        if !left.is_empty() {
            eprintln!("edge-auth dev stack: processes still alive after teardown: {left:?}");
        }
    }
}

/// A fresh directory under the system temp dir for this run's logs and config.
fn make_logs_dir() -> Result<PathBuf, StackError> {
    let dir = std::env::temp_dir().join(format!("edge-auth-dev-{}-{}", std::process::id(), random_hex(4)));
    std::fs::create_dir_all(&dir).map_err(|e| StackError::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// `n` random bytes as lower-case hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
