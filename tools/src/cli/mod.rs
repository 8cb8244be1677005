//! `edge-auth`: the operator CLI. It talks to the same Upstash REST endpoint as the worker and
//! uses the worker's key schema and command builders (`edge_auth::revocation`), so what it
//! writes is exactly what the worker reads.

pub mod rest;
pub mod token;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use edge_auth::revocation::session::{token_from_random, TOKEN_BYTES};
use edge_auth::revocation::writes::{self, CreateOutcome};
use edge_auth::revocation::{keys, KeySchema, SessionLimitPolicy};
use rand::RngCore;

use rest::Rest;

/// Command line of `edge-auth`.
#[derive(Parser, Debug)]
#[command(name = "edge-auth", version, about = "Operate edge-auth: revoke tokens, manage sessions and permissions, mint test tokens")]
pub struct Cli {
    /// Upstash REST URL.
    #[arg(long, global = true, env = "UPSTASH_REDIS_REST_URL")]
    url: Option<String>,
    /// Upstash REST token (prefer the environment variable: argv is visible to other users).
    #[arg(long, global = true, env = "UPSTASH_REDIS_REST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Key prefix; must match the worker's REDIS_PREFIX.
    #[arg(long, global = true, env = "REDIS_PREFIX", default_value = keys::DEFAULT_PREFIX)]
    prefix: String,
    /// Timeout of each REST call, milliseconds.
    #[arg(long, global = true, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Revoke one JWT by issuer and jti, until its exp (+ leeway).
    RevokeJti {
        #[arg(long)]
        iss: String,
        #[arg(long)]
        jti: String,
        /// The token's exp (Unix seconds).
        #[arg(long)]
        exp: u64,
        /// Extra seconds to keep the entry after exp (the verifier's clock leeway).
        #[arg(long, default_value_t = 60)]
        leeway: u64,
    },
    /// Revoke a JWT given whole; its iss/jti/exp are read WITHOUT verifying its signature.
    RevokeToken {
        /// The compact JWT.
        jwt: String,
        #[arg(long, default_value_t = 60)]
        leeway: u64,
    },
    /// Logout everywhere: revoke every token of a subject issued before a cutoff.
    RevokeSubject {
        #[arg(long)]
        iss: String,
        #[arg(long)]
        sub: String,
        /// Cutoff, Unix seconds (default now): tokens with iat < cutoff are revoked.
        #[arg(long)]
        at: Option<u64>,
        /// Drop the cutoff after this many seconds (default: keep it).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Opaque sessions.
    #[command(subcommand)]
    Session(SessionCmd),
    /// Permissions that extend a subject's token scopes.
    #[command(subcommand)]
    Perms(PermsCmd),
    /// Refresh tokens (valid only while present in Redis).
    #[command(subcommand)]
    Refresh(RefreshCmd),
    /// Sign a test token for local use.
    Mint(MintArgs),
}

#[derive(Subcommand, Debug)]
enum SessionCmd {
    /// Create a session and print its opaque token (the only time it is shown).
    Create {
        #[arg(long)]
        sub: String,
        #[arg(long)]
        device: String,
        /// A permission of the session (repeatable).
        #[arg(long = "perm")]
        perms: Vec<String>,
        /// A role of the session (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Initial Redis TTL, seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        /// Absolute lifetime cap, seconds (0: the TTL).
        #[arg(long, env = "SESSION_MAX_LIFETIME_SECS", default_value_t = 2_592_000)]
        max_lifetime: u64,
        /// Sessions per subject (0 = unlimited).
        #[arg(long, env = "MAX_SESSIONS_PER_SUBJECT", default_value_t = 0)]
        max_sessions: u32,
        /// evict_oldest or refuse.
        #[arg(long, env = "SESSION_LIMIT_POLICY", default_value = "evict_oldest")]
        limit_policy: String,
    },
    /// List a subject's live sessions (devices).
    List {
        #[arg(long)]
        sub: String,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End every session of a subject on one device.
    Kick {
        #[arg(long)]
        sub: String,
        #[arg(long)]
        device: String,
    },
    /// End every session of a subject.
    KickAll {
        #[arg(long)]
        sub: String,
    },
}

#[derive(Subcommand, Debug)]
enum PermsCmd {
    /// Replace the subject's permissions (none: remove them all).
    Set {
        #[arg(long)]
        sub: String,
        perms: Vec<String>,
    },
    /// Print the subject's permissions, one per line.
    Get {
        #[arg(long)]
        sub: String,
    },
}

#[derive(Subcommand, Debug)]
enum RefreshCmd {
    /// Register a refresh token as valid.
    Add {
        #[arg(long)]
        iss: String,
        #[arg(long)]
        jti: String,
        /// Valid for this many seconds.
        #[arg(long, conflicts_with = "exp", required_unless_present = "exp")]
        ttl: Option<u64>,
        /// Valid until this Unix time.
        #[arg(long)]
        exp: Option<u64>,
    },
    /// Revoke a refresh token.
    Revoke {
        #[arg(long)]
        iss: String,
        #[arg(long)]
        jti: String,
    },
}

#[derive(Args, Debug)]
struct MintArgs {
    /// HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 or EdDSA.
    #[arg(long, default_value = "HS256")]
    alg: String,
    /// Key file (PEM private key; raw secret bytes for HS*) or, for HS*, the secret itself.
    #[arg(long)]
    key: String,
    #[arg(long)]
    kid: Option<String>,
    #[arg(long)]
    iss: Option<String>,
    #[arg(long)]
    sub: Option<String>,
    /// Audience (repeatable).
    #[arg(long)]
    aud: Vec<String>,
    /// exp = iat + this many seconds (negative: already expired).
    #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
    exp_in: i64,
    /// Omit exp.
    #[arg(long)]
    no_exp: bool,
    /// nbf = iat + this many seconds.
    #[arg(long, allow_negative_numbers = true)]
    nbf_in: Option<i64>,
    /// iat (default now).
    #[arg(long)]
    iat: Option<u64>,
    /// `auto` (random), `none` (omit) or a value.
    #[arg(long, default_value = "auto")]
    jti: String,
    /// Header typ.
    #[arg(long, default_value = "JWT")]
    typ: String,
    /// Extra claim `key=value` (value parsed as JSON if it is JSON; repeatable).
    #[arg(long = "claim")]
    claims: Vec<String>,
}

/// Runs the CLI with the process arguments; returns the exit code. Errors are one line on
/// stderr, prefixed `edge-auth: error:`.
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
                let _ = e.print();
                return std::process::ExitCode::from(if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand { 2 } else { 0 });
            }
            let msg = e.render().to_string();
            // clap's message up to its blank line (drops the usage block), on one line.
            let head: Vec<&str> = msg.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            let head = head.join(" ");
            eprintln!("edge-auth: error: {} (see --help)", head.trim_start_matches("error: "));
            return std::process::ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-auth: error: {}", e.replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

fn rest(cli: &Cli) -> Result<Rest, String> {
    let url = cli.url.as_deref().ok_or("no REST URL: pass --url or set UPSTASH_REDIS_REST_URL")?;
    let token = cli.token.as_deref().ok_or("no REST token: set UPSTASH_REDIS_REST_TOKEN (or pass --token)")?;
    Rest::new(url, token, Duration::from_millis(cli.timeout_ms.max(1)))
}

fn run(cli: Cli) -> Result<(), String> {
    let keys = KeySchema::new(cli.prefix.clone());
    let now = token::now();
    match &cli.command {
        Cmd::Mint(m) => {
            let spec = token::MintSpec {
                alg: m.alg.clone(),
                key: m.key.clone(),
                kid: m.kid.clone(),
                typ: m.typ.clone(),
                iss: m.iss.clone(),
                sub: m.sub.clone(),
                aud: m.aud.clone(),
                exp_in: (!m.no_exp).then_some(m.exp_in),
                nbf_in: m.nbf_in,
                iat: m.iat,
                jti: m.jti.clone(),
                claims: m.claims.clone(),
            };
            println!("{}", token::mint(&spec)?);
        }
        Cmd::RevokeJti { iss, jti, exp, leeway } => {
            non_empty(&[("--iss", iss), ("--jti", jti)])?;
            rest(&cli)?.one(writes::revoke_jti(&keys, iss, jti, *exp, now, *leeway))?;
            println!("revoked jti {jti} of {iss} (kept {}s)", exp.saturating_add(*leeway).saturating_sub(now).max(1));
        }
        Cmd::RevokeToken { jwt, leeway } => {
            let c = token::decode_unverified(jwt)?;
            eprintln!("note: token decoded WITHOUT verifying its signature (iss, jti and exp taken as written)");
            rest(&cli)?.one(writes::revoke_jti(&keys, &c.iss, &c.jti, c.exp, now, *leeway))?;
            println!("revoked jti {} of {} (kept {}s)", c.jti, c.iss, c.exp.saturating_add(*leeway).saturating_sub(now).max(1));
        }
        Cmd::RevokeSubject { iss, sub, at, ttl } => {
            non_empty(&[("--iss", iss), ("--sub", sub)])?;
            let cutoff = at.unwrap_or(now);
            rest(&cli)?.one(writes::revoke_subject(&keys, iss, sub, cutoff, *ttl))?;
            println!("revoked tokens of {sub} at {iss} issued before {cutoff}");
        }
        Cmd::Session(s) => session(&cli, &keys, s, now)?,
        Cmd::Perms(PermsCmd::Set { sub, perms }) => {
            non_empty(&[("--sub", sub)])?;
            rest(&cli)?.one(writes::set_perms(&keys, sub, perms))?;
            println!("{} permission(s) set for {sub}", perms.len());
        }
        Cmd::Perms(PermsCmd::Get { sub }) => {
            let v = rest(&cli)?.one(writes::get_perms(&keys, sub))?;
            let mut perms = v.as_strings().ok_or("unexpected reply to SMEMBERS")?;
            perms.sort();
            for p in perms {
                println!("{p}");
            }
        }
        Cmd::Refresh(RefreshCmd::Add { iss, jti, ttl, exp }) => {
            non_empty(&[("--iss", iss), ("--jti", jti)])?;
            let ttl = match (ttl, exp) {
                (Some(t), _) => *t,
                (None, Some(e)) if *e > now => e - now,
                (None, Some(_)) => return Err("--exp is in the past".into()),
                (None, None) => return Err("pass --ttl or --exp".into()),
            };
            rest(&cli)?.one(writes::add_refresh(&keys, iss, jti, ttl))?;
            println!("refresh token {jti} of {iss} valid for {ttl}s");
        }
        Cmd::Refresh(RefreshCmd::Revoke { iss, jti }) => {
            let v = rest(&cli)?.one(writes::revoke_refresh(&keys, iss, jti))?;
            match v.as_int() {
                Some(1) => println!("refresh token {jti} of {iss} revoked"),
                _ => println!("refresh token {jti} of {iss} was not present (already revoked or expired)"),
            }
        }
    }
    Ok(())
}

fn session(cli: &Cli, keys: &KeySchema, cmd: &SessionCmd, now: u64) -> Result<(), String> {
    match cmd {
        SessionCmd::Create { sub, device, perms, roles, ttl, max_lifetime, max_sessions, limit_policy } => {
            non_empty(&[("--sub", sub), ("--device", device)])?;
            let policy = SessionLimitPolicy::parse("--limit-policy", limit_policy).map_err(|e| format!("{}: {}", e.field, e.message))?;
            let mut bytes = [0u8; TOKEN_BYTES];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let opaque = token_from_random(&bytes);
            let mut s = writes::new_session(sub, Some(device), &keys::token_hash(&opaque), now, *ttl, *max_lifetime);
            s.permissions = perms.clone();
            s.roles = roles.clone();
            let v = rest(cli)?.one(writes::create_session(keys, &s, *max_sessions, policy))?;
            match writes::parse_create_session(&v).map_err(|e| e.to_string())? {
                CreateOutcome::Created { evicted } => {
                    println!("{opaque}");
                    if evicted > 0 {
                        eprintln!("note: evicted {evicted} oldest session(s) of {sub} (MAX_SESSIONS_PER_SUBJECT={max_sessions})");
                    }
                }
                CreateOutcome::Refused { live } => {
                    return Err(format!("{sub} already has {live} session(s), the maximum (MAX_SESSIONS_PER_SUBJECT={max_sessions}, policy refuse)"));
                }
            }
        }
        SessionCmd::List { sub, json } => {
            let v = rest(cli)?.one(writes::list_sessions(keys, sub))?;
            let listed = writes::parse_list_sessions(&v).map_err(|e| e.to_string())?;
            if !json {
                println!("{:<14} {:<20} {:>12} {:>12} {:>8}  PERMISSIONS", "SESSION", "DEVICE", "CREATED", "EXPIRES", "TTL");
            }
            for l in listed {
                let s = &l.session;
                if *json {
                    let mut o = serde_json::to_value(s).unwrap_or_default();
                    o["session"] = s.token_hash.clone().into();
                    o["ttl_left"] = l.ttl.into();
                    println!("{o}");
                } else {
                    let short: String = s.token_hash.chars().take(12).collect();
                    println!("{:<14} {:<20} {:>12} {:>12} {:>8}  {}", short, s.device.as_deref().unwrap_or("-"), s.created, s.expires, l.ttl, s.permissions.join(","));
                }
            }
        }
        SessionCmd::Kick { sub, device } => {
            let n = rest(cli)?.one(writes::kick_device(keys, sub, device))?;
            println!("ended {} session(s) of {sub} on {device}", n.as_int().unwrap_or(0));
        }
        SessionCmd::KickAll { sub } => {
            let n = rest(cli)?.one(writes::kick_all(keys, sub))?;
            println!("ended {} session(s) of {sub}", n.as_int().unwrap_or(0));
        }
    }
    Ok(())
}

fn non_empty(fields: &[(&str, &String)]) -> Result<(), String> {
    match fields.iter().find(|(_, v)| v.trim().is_empty()) {
        Some((name, _)) => Err(format!("{name} must not be empty")),
        None => Ok(()),
    }
}
