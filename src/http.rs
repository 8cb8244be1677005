//! The few HTTP shapes the core needs, independent of any runtime.
//!
//! The glue builds a [`RequestHead`] from the runtime's request once; the core reads it and
//! answers with decisions. Outbound calls (JWKS, Upstash REST) go through [`HttpClient`], which
//! the glue implements with `worker::Fetch` and tests implement with fakes.

/// What the core may read of an incoming request. Header names are lower-case; values are the
/// raw strings the runtime gave (the runtime joins repeated headers with ", ").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// Scheme of the request URL (`https` or `http`).
    pub scheme: String,
    /// Host from the request URL (no port).
    pub host: String,
    /// Path, percent-encoded as received, always starting with `/`.
    pub path: String,
    /// Raw query string without `?`, if any.
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// First value of a header (name must be lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// All values of a header (name must be lower-case).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Parses the glue's one-string form of a request (`js/runtime.js` `requestHead`): method,
    /// URL, then name and value of each header, separated by `\n`. `None` if the URL is not
    /// absolute http(s) or a header has no value.
    pub fn from_flat(flat: &str) -> Option<RequestHead> {
        let mut fields = flat.split('\n');
        let method = fields.next()?.to_string();
        let (scheme, host, path, query) = Self::split_url(fields.next()?)?;
        let mut headers = Vec::new();
        while let Some(name) = fields.next() {
            headers.push((name.to_string(), fields.next()?.to_string()));
        }
        Some(RequestHead { method, scheme, host, path, query, headers })
    }

    /// Parses a URL such as `https://host:8787/a/b?x=1` into scheme, host, path and query.
    /// Returns `None` for anything that is not an absolute http(s) URL.
    pub fn split_url(url: &str) -> Option<(String, String, String, Option<String>)> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let rest = rest.split('#').next().unwrap_or("");
        let (authority, path_query) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => match rest.find('?') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            },
        };
        let host = authority.rsplit('@').next().unwrap_or("");
        let host = if host.starts_with('[') {
            host.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
        } else {
            host.split(':').next().unwrap_or("").to_string()
        };
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (path_query, None),
        };
        let path = if path.is_empty() { "/".to_string() } else { path.to_string() };
        Some((scheme, host.to_ascii_lowercase(), path, query))
    }
}

/// Header pairs in the glue's one-string form (`name\nvalue\nname\nvalue`), read by
/// `js/runtime.js`. A pair whose name or value holds `\n` would shift every pair after it, so
/// such a pair is left out (the core never builds one: it sets only visible ASCII).
pub fn flatten_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if name.contains('\n') || value.contains('\n') {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(name);
        out.push('\n');
        out.push_str(value);
    }
    out
}

/// An outbound request made by the core (JWKS, discovery, Upstash REST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The request is abandoned after this many milliseconds.
    pub timeout_ms: u32,
}

/// The answer to an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why an outbound request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No answer within the timeout.
    Timeout,
    /// Connection refused, DNS failure, reset…
    Network(String),
}

/// Sends outbound HTTP requests. Futures need not be `Send` (Workers are single-threaded).
#[allow(async_fn_in_trait)]
pub trait HttpClient {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, FetchError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let (s, h, p, q) = RequestHead::split_url("https://Api.Example.com:8443/a/b?x=1&y=2#frag").unwrap();
        assert_eq!((s.as_str(), h.as_str(), p.as_str(), q.as_deref()), ("https", "api.example.com", "/a/b", Some("x=1&y=2")));
        let (_, h, p, q) = RequestHead::split_url("http://127.0.0.1:8787").unwrap();
        assert_eq!((h.as_str(), p.as_str(), q), ("127.0.0.1", "/", None));
        let (_, h, p, q) = RequestHead::split_url("http://[::1]:80?a").unwrap();
        assert_eq!((h.as_str(), p.as_str(), q.as_deref()), ("[::1]", "/", Some("a")));
        assert!(RequestHead::split_url("ftp://x/").is_none());
        assert!(RequestHead::split_url("nonsense").is_none());
    }

    #[test]
    fn reads_the_one_string_request_head() {
        let h = RequestHead::from_flat("POST\nhttps://a.example/x?y=1\nauthorization\nBearer t\ncookie\na=1; b=2").unwrap();
        assert_eq!((h.method.as_str(), h.host.as_str(), h.path.as_str(), h.query.as_deref()), ("POST", "a.example", "/x", Some("y=1")));
        assert_eq!(h.header("authorization"), Some("Bearer t"));
        assert_eq!(h.header("cookie"), Some("a=1; b=2"));
        let bare = RequestHead::from_flat("GET\nhttp://h/").unwrap();
        assert!(bare.headers.is_empty());
        // A header value may be empty; a name without a value is malformed.
        assert_eq!(RequestHead::from_flat("GET\nhttp://h/\nx-a\n").unwrap().header("x-a"), Some(""));
        assert!(RequestHead::from_flat("GET\nhttp://h/\nx-a").is_none());
        assert!(RequestHead::from_flat("GET").is_none());
        assert!(RequestHead::from_flat("GET\nnot a url").is_none());
    }

    #[test]
    fn flattened_pairs_never_shift() {
        assert_eq!(flatten_pairs([("a", "1"), ("b", "")]), "a\n1\nb\n");
        assert_eq!(flatten_pairs([("x", "evil\nx-auth-admin\ntrue"), ("b", "2")]), "b\n2");
        assert_eq!(flatten_pairs(std::iter::empty()), "");
    }
}
