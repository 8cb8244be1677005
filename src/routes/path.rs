//! Request paths as route rules see them, and the path patterns rules are written in.
//!
//! Matching happens on the percent-decoded path, split into segments. Anything an origin could
//! read differently from us is refused instead of guessed at ([`normalize`] returns
//! [`AmbiguousPath`]), because a path the gateway files under one rule and the origin serves as
//! another resource is an authentication bypass. Refused, per segment (after decoding `%XX`):
//!
//! - an empty segment other than the final one (`//`, `/a//b`): many servers merge slashes;
//! - `.` and `..` (also written `%2e`, `%2E%2e`…): servers resolve them;
//! - an encoded or raw `/`, `\`, `?`, `#` or `%` inside a segment (`%2F`, `%5C`, double
//!   encoding `%252F`): some servers decode once more or split on them;
//! - `;` (raw or `%3B`): Java servlet containers strip `;params` from segments;
//! - a segment ending in `.` or a space: Windows servers strip them (`/admin.` = `/admin`);
//! - control characters (including NUL, CR, LF), bytes that are not UTF-8, and a `%` not
//!   followed by two hex digits.
//!
//! A single trailing slash is ignored: `/a/` is matched as `/a` (frameworks such as Express
//! serve both from one route by default). Letter case is handled by the route table (see
//! [`super::RouteTable::find`]).

use percent_encoding::percent_decode_str;

/// A request path that was refused as ambiguous; the request must not reach any rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguousPath;

/// Splits a raw (percent-encoded) request path into decoded segments, or refuses it.
///
/// `/` gives no segments; `/a/b/` gives `["a", "b"]`.
pub fn normalize(raw: &str) -> Result<Vec<String>, AmbiguousPath> {
    let rest = raw.strip_prefix('/').ok_or(AmbiguousPath)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut segments = Vec::new();
    for raw_segment in rest.split('/') {
        segments.push(decode_segment(raw_segment)?);
    }
    Ok(segments)
}

fn decode_segment(raw: &str) -> Result<String, AmbiguousPath> {
    if raw.is_empty() {
        return Err(AmbiguousPath);
    }
    // Every `%` must start a valid escape: percent_decode leaves bad ones as they are, and an
    // origin might not.
    let bytes = raw.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(AmbiguousPath);
            }
        }
    }
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| AmbiguousPath)?;
    let s = decoded.into_owned();
    if s == "." || s == ".." || s.ends_with('.') || s.ends_with(' ') {
        return Err(AmbiguousPath);
    }
    if s.chars().any(|c| c.is_control() || matches!(c, '/' | '\\' | '?' | '#' | '%' | ';')) {
        return Err(AmbiguousPath);
    }
    Ok(s)
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// A literal segment, matched exactly (and case-folded in the second pass).
    Literal { exact: String, folded: String },
    /// `*`: exactly one segment.
    One,
    /// `**`: zero or more segments.
    Any,
}

/// A compiled path pattern: exact `/x`, prefix `/x/*` (same as `/x/**`: `/x` itself and
/// everything below), or a glob where `*` is one segment and `**` any number of segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
    parts: Vec<Part>,
}

impl PathPattern {
    /// Compiles a pattern; the error message says what is wrong with it.
    pub fn parse(source: &str) -> Result<PathPattern, String> {
        let rest = source.strip_prefix('/').ok_or("must start with '/'")?;
        let mut parts = Vec::new();
        if !rest.is_empty() {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let segs: Vec<&str> = rest.split('/').collect();
            let last = segs.len() - 1;
            for (i, seg) in segs.iter().enumerate() {
                let part = match *seg {
                    "" => return Err("empty segment ('//') in pattern".into()),
                    "**" => Part::Any,
                    // A trailing `/*` is the documented prefix form.
                    "*" if i == last => Part::Any,
                    "*" => Part::One,
                    s if s.contains('*') => {
                        return Err(format!("'*' must be a whole segment, found {s:?}"));
                    }
                    s => {
                        // Patterns are written decoded; reject what a request could never match.
                        if s == "." || s == ".." || s.ends_with('.') || s.ends_with(' ') {
                            return Err(format!("segment {s:?} can never match"));
                        }
                        if s.chars().any(|c| c.is_control() || matches!(c, '\\' | '?' | '#' | '%' | ';')) {
                            return Err(format!("segment {s:?} contains a character requests may not use"));
                        }
                        Part::Literal { exact: s.to_string(), folded: s.to_lowercase() }
                    }
                };
                parts.push(part);
            }
        }
        Ok(PathPattern { source: source.to_string(), parts })
    }

    /// The pattern as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the decoded `segments` match. With `folded`, the segments must already be
    /// lower-cased and literals compare case-insensitively.
    pub fn matches(&self, segments: &[String], folded: bool) -> bool {
        // Dynamic programming over (pattern part, segment): O(parts × segments), no backtracking
        // blow-up however many `**` a pattern has or however long the path is.
        let n = segments.len();
        let mut reach = vec![false; n + 1];
        reach[0] = true;
        for part in &self.parts {
            let mut next = vec![false; n + 1];
            match part {
                Part::Any => {
                    let mut seen = false;
                    for j in 0..=n {
                        seen |= reach[j];
                        next[j] = seen;
                    }
                }
                Part::One => {
                    for j in 0..n {
                        if reach[j] {
                            next[j + 1] = true;
                        }
                    }
                }
                Part::Literal { exact, folded: lower } => {
                    let want = if folded { lower } else { exact };
                    for j in 0..n {
                        if reach[j] && segments[j] == *want {
                            next[j + 1] = true;
                        }
                    }
                }
            }
            reach = next;
        }
        reach[n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        normalize(p).unwrap()
    }

    #[test]
    fn decodes_and_splits() {
        assert_eq!(segs("/"), Vec::<String>::new());
        assert_eq!(segs("/a/b"), vec!["a", "b"]);
        assert_eq!(segs("/a/b/"), vec!["a", "b"]);
        assert_eq!(segs("/%61dmin/x%20y"), vec!["admin", "x y"]);
        assert_eq!(segs("/caf%C3%A9"), vec!["café"]);
        assert_eq!(segs("/v1/items:batch"), vec!["v1", "items:batch"]);
    }

    #[test]
    fn refuses_what_an_origin_could_read_differently() {
        for p in [
            "", "a", "//", "//admin", "/a//b", "/a/./b", "/a/../admin", "/%2e%2e/admin", "/%2E/admin",
            "/admin%2Fsecret", "/admin%2fsecret", "/admin%5Csecret", "/admin\\secret", "/admin;x=1/secret",
            "/admin%3Bx/secret", "/admin%252Fsecret", "/admin%00", "/admin%0d%0a", "/admin%", "/admin%4",
            "/admin%zz", "/admin.", "/admin%2e", "/admin%20", "/admin%3Fx", "/admin%23x", "/%FF%FE",
            "/..;/admin", "/a/b//",
        ] {
            assert_eq!(normalize(p), Err(AmbiguousPath), "{p:?} should be refused");
        }
    }

    #[test]
    fn patterns() {
        let m = |pat: &str, path: &str| PathPattern::parse(pat).unwrap().matches(&segs(path), false);
        assert!(m("/api", "/api"));
        assert!(m("/api", "/api/"));
        assert!(!m("/api", "/api/x"));
        assert!(!m("/api", "/apix"));
        assert!(m("/api/*", "/api"));
        assert!(m("/api/*", "/api/x/y/z"));
        assert!(!m("/api/*", "/apix/y"));
        assert!(m("/api/**", "/api/a"));
        assert!(m("/**", "/"));
        assert!(m("/**", "/a/b/c"));
        assert!(m("/", "/"));
        assert!(!m("/", "/a"));
        assert!(m("/users/*/posts", "/users/42/posts"));
        assert!(!m("/users/*/posts", "/users/posts"));
        assert!(!m("/users/*/posts", "/users/1/2/posts"));
        assert!(m("/a/**/z", "/a/z"));
        assert!(m("/a/**/z", "/a/b/c/z"));
        assert!(!m("/a/**/z", "/a/b/c/z/d"));
        assert!(m("/**/edit", "/x/y/edit"));
        assert!(!m("/Admin", "/admin"));
    }

    #[test]
    fn folded_matching_ignores_case() {
        let p = PathPattern::parse("/Admin/**").unwrap();
        let lower: Vec<String> = segs("/ADMIN/x").iter().map(|s| s.to_lowercase()).collect();
        assert!(p.matches(&lower, true));
        assert!(!p.matches(&segs("/ADMIN/x"), false));
    }

    #[test]
    fn many_wildcards_on_a_long_path_stay_fast() {
        let p = PathPattern::parse("/**/a/**/b/**/c/**/d/**/e").unwrap();
        let long: Vec<String> = (0..5000).map(|i| format!("s{i}")).collect();
        assert!(!p.matches(&long, false));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in ["api", "/a//b", "/a*", "/a/*b", "/a/..", "/a;b", "/a%2F"] {
            assert!(PathPattern::parse(p).is_err(), "{p}");
        }
    }
}
