//! Reading the process table from `/proc` (Linux): which processes are alive, in which
//! group, with which parent. Zombies count as gone: they hold no resources and only wait for
//! their parent (or init) to reap them.

/// One row of `/proc/<pid>/stat` that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id.
    pub pid: i32,
    /// State letter (`R`, `S`, `D`, `Z`, …).
    pub state: char,
    /// Parent pid.
    pub ppid: i32,
    /// Process group id.
    pub pgrp: i32,
}

/// Parses the content of `/proc/<pid>/stat`; `None` if it is not in the expected shape.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    // "pid (comm) state ppid pgrp …" where comm may itself contain spaces and parentheses.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some(ProcStat { pid, state, ppid, pgrp })
}

/// The stat of one process, `None` if it does not exist.
pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Every process currently in `/proc`.
pub fn all() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter_map(stat)
        .collect()
}

/// True if `pid` exists and is not a zombie.
pub fn is_live(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// Live members of process group `pgid`.
pub fn live_in_group(pgid: i32) -> Vec<i32> {
    all().into_iter().filter(|s| s.pgrp == pgid && s.state != 'Z' && s.state != 'X').map(|s| s.pid).collect()
}

/// Live descendants of `pid` (children, grandchildren, …), not `pid` itself.
pub fn live_descendants(pid: i32) -> Vec<i32> {
    let table = all();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for s in table.iter().filter(|s| s.ppid == p) {
            if !found.contains(&s.pid) {
                found.push(s.pid);
                frontier.push(s.pid);
            }
        }
    }
    found.retain(|p| is_live(*p));
    found
}

/// Inodes of the TCP sockets listening on `port` (IPv4 and IPv6), from `/proc/net/tcp{,6}`.
pub fn listening_inodes(port: u16) -> Vec<u64> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9)) else { continue };
            let Some(port_hex) = local.rsplit(':').next() else { continue };
            if *state == "0A" && u16::from_str_radix(port_hex, 16).ok() == Some(port) {
                if let Ok(inode) = inode.parse() {
                    found.push(inode);
                }
            }
        }
    }
    found
}

/// True if a live member of process group `pgid` holds a socket listening on `port`.
pub fn group_listens_on(pgid: i32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    live_in_group(pgid).into_iter().any(|pid| {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
        fds.filter_map(|e| e.ok()).any(|e| {
            std::fs::read_link(e.path()).is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parens() {
        let s = parse_stat("4242 (my (odd) name) S 1 4242 4242 0 -1 4194560").unwrap();
        assert_eq!(s, ProcStat { pid: 4242, state: 'S', ppid: 1, pgrp: 4242 });
    }

    #[test]
    fn sees_our_own_listening_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id() as i32;
        let my_group = stat(me).unwrap().pgrp;
        assert!(!listening_inodes(port).is_empty());
        assert!(group_listens_on(my_group, port));
        drop(l);
        assert!(!group_listens_on(my_group, port));
    }

    #[test]
    fn finds_ourselves_alive() {
        let me = std::process::id() as i32;
        assert!(is_live(me));
        assert!(stat(me).is_some());
    }
}
