//! One child process of the stack: started in its own process group, tied to our lifetime,
//! its output captured to log files, and torn down by killing its whole group.
//!
//! Why a group: `wrangler dev` (node) starts `workerd`; killing only wrangler leaves workerd
//! running. Every child is started with `setsid()`, so it leads a new group that its own
//! children inherit, and teardown signals the group (`kill(-pgid, …)`).
//!
//! `PR_SET_PDEATHSIG(SIGKILL)` makes the kernel kill the direct child when the *thread* that
//! spawned it exits; start the stack from a thread that lives as long as the stack (the
//! launcher does it from `main`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::error::StackError;
use super::procs;

/// A running child process of the stack.
pub struct ManagedChild {
    /// Short name used in messages and log file names (`redis`, `upstash`, `origin`, `wrangler`).
    pub name: &'static str,
    child: Child,
    /// The process group id (equal to the child's pid, since it called `setsid`).
    pub pgid: i32,
    /// Where the child's stdout goes.
    pub stdout_log: PathBuf,
    /// Where the child's stderr goes.
    pub stderr_log: PathBuf,
    listening: Option<Receiver<String>>,
    exited: Option<std::process::ExitStatus>,
}

impl ManagedChild {
    /// Starts `cmd` in its own session and process group, with stdin closed, stderr to
    /// `<logs_dir>/<name>.stderr.log` and stdout to `<logs_dir>/<name>.stdout.log`. With
    /// `watch_listening`, stdout passes through a reader thread that also reports the first
    /// line starting with `LISTENING ` (see [`ManagedChild::wait_listening`]).
    pub fn spawn(name: &'static str, mut cmd: Command, logs_dir: &Path, watch_listening: bool) -> Result<Self, StackError> {
        let stdout_log = logs_dir.join(format!("{name}.stdout.log"));
        let stderr_log = logs_dir.join(format!("{name}.stderr.log"));
        let stderr_file = File::create(&stderr_log).map_err(|e| StackError::io(format!("creating {}", stderr_log.display()), e))?;
        let stdout_file = File::create(&stdout_log).map_err(|e| StackError::io(format!("creating {}", stdout_log.display()), e))?;
        cmd.stdin(Stdio::null()).stderr(Stdio::from(stderr_file));
        if watch_listening {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(Stdio::from(stdout_file.try_clone().map_err(|e| StackError::io("duplicating a log file", e))?));
        }
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (setsid, prctl, getppid, sigprocmask, _exit)
        // between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl: then nobody would kill us.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                clear_signal_mask();
                Ok(())
            });
        }
        let program = format!("{:?}", cmd.get_program());
        let mut child = cmd.spawn().map_err(|e| StackError::io(format!("starting {name} ({program})"), e))?;
        let pgid = child.id() as i32;
        let listening = if watch_listening {
            let stdout = child.stdout.take();
            let (tx, rx) = mpsc::channel();
            let mut log = stdout_file;
            std::thread::Builder::new()
                .name(format!("{name}-stdout"))
                .spawn(move || {
                    let Some(stdout) = stdout else { return };
                    let mut sent = false;
                    let mut reader = BufReader::new(stdout);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let _ = log.write_all(line.as_bytes());
                                let _ = log.flush();
                                if !sent {
                                    if let Some(url) = line.trim_end().strip_prefix("LISTENING ") {
                                        let _ = tx.send(url.trim().to_string());
                                        sent = true;
                                    }
                                }
                            }
                        }
                    }
                })
                .map_err(|e| StackError::io("starting a log thread", e))?;
            Some(rx)
        } else {
            None
        };
        Ok(ManagedChild { name, child, pgid, stdout_log, stderr_log, listening, exited: None })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` if the child has exited (reaping it), `None` while it runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// Fails if the child has exited; the error carries its log tails.
    pub fn ensure_running(&mut self, stage: &str) -> Result<(), StackError> {
        match self.exit_status() {
            Some(status) => Err(StackError::child(format!("{} exited ({status}) while {stage}", self.name), self)),
            None => Ok(()),
        }
    }

    /// Waits until the child prints `LISTENING <url>` and returns the url. Fails if it exits,
    /// `timeout` passes, or `cancelled()` turns true.
    pub fn wait_listening(&mut self, timeout: Duration, cancelled: &dyn Fn() -> bool) -> Result<String, StackError> {
        let deadline = Instant::now() + timeout;
        loop {
            if cancelled() {
                return Err(StackError::cancelled());
            }
            let Some(rx) = &self.listening else {
                return Err(StackError::msg(format!("{} is not watched for a LISTENING line", self.name)));
            };
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(url) => return Ok(url),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Stdout closed without the line; let the exit check below explain.
                    std::thread::sleep(Duration::from_millis(100));
                    self.ensure_running("starting")?;
                    return Err(StackError::child(format!("{} closed stdout without printing LISTENING", self.name), self));
                }
            }
            self.ensure_running("starting")?;
            if Instant::now() >= deadline {
                return Err(StackError::child(format!("{} did not print LISTENING within {timeout:?}", self.name), self));
            }
        }
    }

    /// The last `lines` lines of stdout and stderr, for error messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for (label, path) in [("stdout", &self.stdout_log), ("stderr", &self.stderr_log)] {
            let tail = tail_of(path, lines);
            out.push_str(&format!("--- {} {label} ({}) ---\n", self.name, path.display()));
            if tail.is_empty() {
                out.push_str("(empty)\n");
            } else {
                out.push_str(&tail);
                if !tail.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Sends `sig` to the child's whole process group.
    pub fn signal_group(&self, sig: libc::c_int) {
        // SAFETY: plain syscall; a group that no longer exists gives ESRCH, which is fine.
        unsafe {
            libc::kill(-self.pgid, sig);
        }
    }

    /// Pids of the live (non-zombie) processes of the child's group, the child included
    /// unless it has been reaped.
    pub fn live_group_members(&mut self) -> Vec<i32> {
        let _ = self.exit_status();
        procs::live_in_group(self.pgid)
    }
}

/// Unblocks every signal. Signals blocked in the parent stay blocked across exec; call this
/// between fork and exec so a child starts clean.
///
/// # Safety
/// Async-signal-safe (only `sigemptyset` and `sigprocmask`); meant for `pre_exec`.
pub unsafe fn clear_signal_mask() {
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
}

/// Kills every child's process group: SIGTERM, then SIGKILL for whatever is left after `grace`,
/// and reaps the direct children. Returns the pids still alive afterwards (should be empty).
pub fn terminate_all(children: &mut [ManagedChild], grace: Duration) -> Vec<(String, i32)> {
    // Processes started by a child that left its group (none seen so far) are still found
    // through the parent links, collected before anything dies and reparents.
    let mut descendants: Vec<(String, i32)> = Vec::new();
    for c in children.iter() {
        for pid in procs::live_descendants(c.pid() as i32) {
            descendants.push((c.name.to_string(), pid));
        }
    }
    for c in children.iter_mut().rev() {
        if c.exit_status().is_none() || !procs::live_in_group(c.pgid).is_empty() {
            c.signal_group(libc::SIGTERM);
        }
    }
    for (_, pid) in &descendants {
        // SAFETY: plain syscall on a pid we saw as our descendant a moment ago.
        unsafe {
            libc::kill(*pid, libc::SIGTERM);
        }
    }
    let all_gone = |children: &mut [ManagedChild], descendants: &[(String, i32)]| {
        children.iter_mut().all(|c| c.live_group_members().is_empty()) && descendants.iter().all(|(_, p)| !procs::is_live(*p))
    };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !all_gone(children, &descendants) {
        std::thread::sleep(Duration::from_millis(25));
    }
    if !all_gone(children, &descendants) {
        for c in children.iter_mut() {
            c.signal_group(libc::SIGKILL);
        }
        for (_, pid) in &descendants {
            if procs::is_live(*pid) {
                // SAFETY: as above.
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !all_gone(children, &descendants) {
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    for c in children.iter_mut() {
        if c.exited.is_none() {
            if let Ok(status) = c.child.wait() {
                c.exited = Some(status);
            }
        }
    }
    let mut left = Vec::new();
    for c in children.iter_mut() {
        for pid in c.live_group_members() {
            left.push((c.name.to_string(), pid));
        }
    }
    for (name, pid) in descendants {
        if procs::is_live(pid) && !left.iter().any(|(_, p)| *p == pid) {
            left.push((name, pid));
        }
    }
    left
}

/// The last `lines` lines of a file (reads at most the last 64 KiB).
pub fn tail_of(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = strip_ansi(&String::from_utf8_lossy(&buf));
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..].join("\n")
}

/// `text` without ANSI escape sequences (`ESC [ … letter`), which wrangler and esbuild print
/// even when not on a terminal.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour_codes() {
        assert_eq!(strip_ansi("\u{1b}[31m\u{1b}[41;97mERROR\u{1b}[0m plain"), "ERROR plain");
    }
}
