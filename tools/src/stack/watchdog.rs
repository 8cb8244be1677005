//! A watchdog that outlives the launcher: if the launcher dies without tearing the stack down
//! (SIGKILL, crash), it kills every process group of the stack.
//!
//! `PR_SET_PDEATHSIG` only reaches the launcher's direct children. `node_modules/.bin/wrangler`
//! is a small node wrapper that starts the real wrangler, which starts workerd: when the
//! launcher is SIGKILLed, the wrapper dies but the rest would keep running. The watchdog is a
//! `sh` process in its own session that reads process-group ids on its stdin; when stdin
//! reaches EOF without the line `exit`, the launcher is gone, and it sends SIGTERM to every
//! group, then SIGKILL 2 s later, and removes the stack's temporary directory (if asked to).

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use super::error::StackError;

const SCRIPT: &str = r#"
groups=""
while IFS= read -r line; do
  case "$line" in
    exit) exit 0 ;;
    ''|*[!0-9]*) ;;
    *) groups="$groups $line" ;;
  esac
done
[ -z "$groups" ] && exit 0
for g in $groups; do kill -TERM "-$g" 2>/dev/null; done
sleep 2
for g in $groups; do kill -KILL "-$g" 2>/dev/null; done
[ -n "$1" ] && rm -rf -- "$1"
exit 0
"#;

/// The running watchdog.
pub struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts the watchdog (`sh -c …`) in its own session, with its output discarded. If it
    /// has to act, it also removes `cleanup_dir`.
    pub fn start(cleanup_dir: Option<&Path>) -> Result<Self, StackError> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(SCRIPT).arg("edge-auth-dev-watchdog").arg(cleanup_dir.map(Path::as_os_str).unwrap_or_default()).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: setsid and sigprocmask are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                super::child::clear_signal_mask();
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| StackError::io("starting the watchdog (sh)", e))?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }

    /// The watchdog's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Hands a process group to the watchdog.
    pub fn watch(&mut self, pgid: i32) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{pgid}");
            let _ = s.flush();
        }
    }

    /// Tells the watchdog the stack was torn down, and waits for it to exit.
    pub fn dismiss(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = writeln!(s, "exit");
            let _ = s.flush();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.dismiss();
    }
}
