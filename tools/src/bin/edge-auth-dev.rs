//! `edge-auth-dev`: runs the whole local stack (redis-server, the Upstash REST server, the test
//! origin, `wrangler dev` on the prebuilt worker) until Ctrl-C.
//!
//! Human mode prints the URLs and commands to try. `--json` prints one JSON line (see
//! `edge_auth_tools::stack::StackInfo`) when the stack is ready, and tears the stack down when
//! stdin reaches EOF, so a test process that dies for any reason takes the stack with it.
//! On a start failure it prints the reason and log tails to stderr (and, with `--json`, a line
//! `{"error": "..."}` to stdout) and exits 1.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use edge_auth_tools::stack::dev_profile::DevProfile;
use edge_auth_tools::stack::{self, Stack, StackOptions};

/// Command line of `edge-auth-dev`.
#[derive(Parser, Debug)]
#[command(about = "Run the edge-auth worker locally with redis-server, an Upstash REST server and an echoing origin")]
struct Args {
    /// Print one JSON line when ready and stop when stdin closes (for tests and scripts).
    #[arg(long)]
    json: bool,
    /// Directory of the prebuilt worker bundle (holding index.js). Default: <repo>/build.
    #[arg(long)]
    bundle_dir: Option<PathBuf>,
    /// Start the Upstash REST server without its admin endpoints (stats, fault injection).
    #[arg(long)]
    no_admin: bool,
    /// An extra worker var, KEY=VALUE; repeatable; overrides the defaults and --vars-file.
    #[arg(long = "var", value_name = "KEY=VALUE")]
    vars: Vec<String>,
    /// A JSON object of extra worker vars (non-string values are passed as JSON text).
    #[arg(long)]
    vars_file: Option<PathBuf>,
    /// Port for the worker. Default: a free port.
    #[arg(long)]
    worker_port: Option<u16>,
    /// wrangler's --log-level: debug, info, log, warn, error, none.
    #[arg(long, default_value = "log")]
    log_level: String,
    /// Seconds wrangler dev may take to answer its first request.
    #[arg(long, default_value_t = 60)]
    ready_timeout: u64,
    /// Configure the worker with the dev profile (an HS256 issuer with a fresh secret, example
    /// routes, a signed assertion) and print a working token with curl lines.
    #[arg(long)]
    dev: bool,
    /// Keep the logs directory after a clean shutdown (also env EDGE_AUTH_KEEP_LOGS=1).
    #[arg(long, env = "EDGE_AUTH_KEEP_LOGS", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    keep_logs: bool,
}

/// Why the launcher stops.
enum Stop {
    Signal,
    StdinClosed,
}

/// Lines added to the human banner after the built-in ones: with `--dev`, a minted token and
/// the curl lines that use it.
fn extra_banner_lines(info: &stack::StackInfo, dev: Option<&DevProfile>) -> Vec<String> {
    let Some(dev) = dev else { return Vec::new() };
    let cli = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("edge-auth")))
        .unwrap_or_else(|| PathBuf::from("edge-auth"));
    dev.banner_lines(info, &cli)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Stop>();

    // Signal handlers first, so a Ctrl-C during start-up still tears down what was started.
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    {
        let cancel = cancel.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (mut int, mut term) = match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
                    (Ok(i), Ok(t)) => (i, t),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                cancel.store(true, Ordering::SeqCst);
                let _ = tx.send(Stop::Signal);
            });
        });
    }
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("edge-auth-dev: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
        Err(_) => {
            eprintln!("edge-auth-dev: cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        let cancel = cancel.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            cancel.store(true, Ordering::SeqCst);
            let _ = tx.send(Stop::StdinClosed);
        });
    }

    let dev = args.dev.then(DevProfile::generate);
    let mut vars = dev.as_ref().map(DevProfile::vars).unwrap_or_default();
    if let Some(path) = &args.vars_file {
        match stack::vars::read_vars_file(path) {
            Ok(v) => vars.extend(v),
            Err(e) => return fail(&args, &e),
        }
    }
    for v in &args.vars {
        match stack::vars::parse_var(v) {
            Ok(kv) => vars.push(kv),
            Err(e) => return fail(&args, &e),
        }
    }
    let opts = StackOptions {
        bundle_dir: args.bundle_dir.clone(),
        admin: !args.no_admin,
        vars,
        worker_port: args.worker_port,
        log_level: args.log_level.clone(),
        ready_timeout: Duration::from_secs(args.ready_timeout),
        cancel: Some(cancel.clone()),
        keep_logs: args.keep_logs,
        ..StackOptions::default()
    };

    // Started from the main thread: children die with it (PR_SET_PDEATHSIG).
    let mut running = match Stack::start(&opts) {
        Ok(s) => s,
        Err(e) if e.cancelled => return ExitCode::from(130),
        Err(e) => return fail(&args, &e),
    };

    let info = running.info().clone();
    if args.json {
        let line = serde_json::to_string(&info).unwrap_or_else(|_| "{}".to_string());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    } else {
        stack::print_banner(&info, &extra_banner_lines(&info, dev.as_ref()));
    }

    let mut code = ExitCode::SUCCESS;
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(Stop::Signal) | Ok(Stop::StdinClosed) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = running.check_alive() {
                    eprintln!("{e}");
                    code = ExitCode::FAILURE;
                    break;
                }
            }
        }
    }
    if let Err(e) = running.shutdown() {
        eprintln!("{e}");
        code = ExitCode::FAILURE;
    }
    code
}

/// Reports a start failure and returns exit code 1.
fn fail(args: &Args, e: &stack::StackError) -> ExitCode {
    eprintln!("{e}");
    if args.json {
        let line = serde_json::json!({ "error": e.to_string() });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    ExitCode::FAILURE
}
