//! The human-readable banner printed when the stack is up.

use super::StackInfo;

/// The banner text: URLs, ready-to-paste commands, then `extra_lines` (e.g. a minted token
/// and a curl line that uses it), then how to stop.
pub fn banner(info: &StackInfo, extra_lines: &[String]) -> String {
    let mut out = String::new();
    out.push_str("edge-auth dev stack is up\n");
    out.push_str(&format!("  worker   {}\n", info.worker));
    out.push_str(&format!("  origin   {}   (echoes every request as JSON)\n", info.origin));
    out.push_str(&format!("  upstash  {}   (Upstash REST; token below)\n", info.upstash));
    out.push_str(&format!("  redis    127.0.0.1:{}\n", info.redis_port));
    out.push_str(&format!("  logs     {}\n", info.logs_dir));
    out.push('\n');
    out.push_str("Try:\n");
    out.push_str(&format!("  curl -i {}/\n", info.worker));
    out.push_str(&format!("  curl -s {}/any/path?x=1   # what the origin receives without the gateway\n", info.origin));
    out.push_str(&format!(
        "  curl -s -H 'Authorization: Bearer {}' -d '[\"PING\"]' {}/\n",
        info.upstash_token, info.upstash
    ));
    out.push_str(&format!("  redis-cli -p {} ping\n", info.redis_port));
    for line in extra_lines {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str("Ctrl-C stops everything.\n");
    out
}

/// Prints [`banner`] to stdout and flushes.
pub fn print_banner(info: &StackInfo, extra_lines: &[String]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner(info, extra_lines).as_bytes());
    let _ = out.flush();
}
