//! HTTP/1.1 request heads, strictly: the head is parsed by `httparse`
//! (bounded header count), then checked for what this server accepts.
//!
//! Limits: [`MAX_HEAD`] bytes of request line and headers (431 beyond),
//! [`MAX_HEADERS`] headers (431), [`MAX_BODY`] bytes of body (413; no
//! endpoint takes a body, so it is read and dropped), no
//! `Transfer-Encoding` (501: chunked request bodies are refused rather
//! than half-supported), one `Content-Length` only (400), a request target
//! of origin form (`/path?query`, 400 otherwise), HTTP/1.0 and 1.1.

/// Largest request head (request line and headers), bytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest number of headers.
pub const MAX_HEADERS: usize = 64;
/// Largest request body, bytes (read and discarded).
pub const MAX_BODY: usize = 64 * 1024;

/// Request methods the API knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    /// Any other token (answered 405).
    Other,
}

/// A parsed request, owned (a blocking query keeps it while it waits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The method as sent (for 405 texts).
    pub method_text: String,
    /// The percent-decoded path.
    pub path: String,
    /// Query parameters, decoded, in order (repeats kept).
    pub query: Vec<(String, String)>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

impl Request {
    /// The first value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether `key` is present (with or without a value).
    pub fn has(&self, key: &str) -> bool {
        self.query.iter().any(|(k, _)| k == key)
    }

    /// Every value of `key`.
    pub fn params<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A request the server refuses before routing: answered with `status`
/// and `text`, then the connection is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    pub text: &'static str,
}

const fn reject(status: u16, text: &'static str) -> Reject {
    Reject { status, text }
}

/// What [`parse`] found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A request whose head is `head` bytes followed by `body` bytes.
    Complete { request: Request, head: usize, body: usize },
}

/// Parses the request head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= MAX_HEAD {
                return Err(reject(431, "Request header fields too large"));
            }
            return Ok(Parsed::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(431, "Request header fields too large"))
        }
        Err(httparse::Error::Version) => {
            return Err(reject(505, "HTTP version not supported"));
        }
        Err(_) => return Err(reject(400, "Bad request")),
    };
    if head > MAX_HEAD {
        return Err(reject(431, "Request header fields too large"));
    }
    let version = req.version.unwrap_or(1);
    let method_text = req.method.unwrap_or("").to_string();
    let method = match method_text.as_str() {
        "GET" => Method::Get,
        "PUT" => Method::Put,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or("");
    let mut body = 0usize;
    let mut seen_length = false;
    let mut keep_alive = version == 1;
    let mut has_host = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = core::str::from_utf8(h.value).map_err(|_| reject(400, "Bad Content-Length"))?;
            let n: usize = v.trim().parse().map_err(|_| reject(400, "Bad Content-Length"))?;
            if seen_length && n != body {
                return Err(reject(400, "Conflicting Content-Length"));
            }
            seen_length = true;
            body = n;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(reject(501, "Transfer-Encoding is not supported"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let t = trim(token);
                if t.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("host") {
            has_host = true;
        }
    }
    if version == 1 && !has_host {
        return Err(reject(400, "Missing Host header"));
    }
    if body > MAX_BODY {
        return Err(reject(413, "Request body too large"));
    }
    if !target.starts_with('/') {
        return Err(reject(400, "Bad request target"));
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(raw_path, false).ok_or(reject(400, "Bad path encoding"))?;
    let mut query = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k, true).ok_or(reject(400, "Bad query encoding"))?;
        let v = percent_decode(v, true).ok_or(reject(400, "Bad query encoding"))?;
        query.push((k, v));
    }
    let request = Request { method, method_text, path, query, keep_alive };
    Ok(Parsed::Complete { request, head, body })
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |i| i + 1);
    b.get(start..end).unwrap_or(&[])
}

/// Decodes `%XX` escapes (and `+` as a space in query parts); `None` for
/// a bad escape or bytes that are not UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = |j: usize| b.get(j).and_then(|&h| (h as char).to_digit(16));
                let (hi, lo) = (hex(i + 1)?, hex(i + 2)?);
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (Request, usize, usize) {
        match parse(text.as_bytes()).unwrap() {
            Parsed::Complete { request, head, body } => (request, head, body),
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn request_heads() {
        let (r, head, body) = ok(
            "GET /v1/catalog/nodes?index=5&wait=1s&node-meta=a%3Ab&x HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/v1/catalog/nodes");
        assert_eq!(r.param("index"), Some("5"));
        assert_eq!(r.param("node-meta"), Some("a:b"));
        assert!(r.has("x") && !r.has("y"));
        assert!(r.keep_alive);
        assert_eq!((body, head), (0, 77));
        let (r, _, body) = ok(
            "PUT /v1/agent/join/a%20b HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert_eq!(
            (r.method, r.path.as_str(), r.keep_alive, body),
            (Method::Put, "/v1/agent/join/a b", false, 3)
        );
        let (r, _, _) = ok("GET / HTTP/1.0\r\n\r\n");
        assert!(!r.keep_alive, "HTTP/1.0 closes by default");
        let (r, _, _) = ok("GET /?q=a+b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(r.keep_alive);
        assert_eq!(r.param("q"), Some("a b"));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(Parsed::Partial));
    }

    #[test]
    fn rejects() {
        let status = |t: &[u8]| parse(t).map(|_| 0).unwrap_or_else(|r| r.status);
        assert_eq!(status(b"\x00\x01garbage\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400, "no Host");
        assert_eq!(status(b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status(b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status(b"GET /%ff HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "not UTF-8");
        assert_eq!(status(b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
        assert_eq!(
            status(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(status(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"), 413);
        assert_eq!(status(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 400);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many), 431);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(status(&big), 431);
        assert_eq!(percent_decode("a%2Fb+c", true).as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%4", false), None);
    }
}
