//! A raw RPC client for tests: builds request bytes with the codec and
//! reads back whatever the server sends, as generic msgpack values, until
//! it goes quiet or closes the connection.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use agent::rpc::codec::*;

/// A request header.
pub fn header(cmd: &str, seq: u64) -> Vec<u8> {
    RequestHeader { command: cmd.into(), seq }.to_vec().unwrap()
}

/// A request header followed by `body`.
pub fn req(cmd: &str, seq: u64, body: &impl Encode) -> Vec<u8> {
    let mut v = header(cmd, seq);
    v.extend(body.to_vec().unwrap());
    v
}

/// `handshake` version 1.
pub fn handshake(seq: u64) -> Vec<u8> {
    req("handshake", seq, &HandshakeRequest { version: 1 })
}

/// A map of string keys to any values, in the given order.
pub fn map(pairs: &[(&str, Value)]) -> Vec<u8> {
    Value::Map(pairs.iter().map(|(k, v)| (Value::Str(k.as_bytes().to_vec()), v.clone())).collect())
        .to_vec()
        .unwrap()
}

/// A str value.
pub fn s(text: &str) -> Value {
    Value::Str(text.as_bytes().to_vec())
}

/// What a connection returned.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// Every complete object received, in order.
    pub values: Vec<Value>,
    /// Bytes after the last complete object.
    pub leftover: usize,
    /// The server closed (EOF or reset) within the wait.
    pub closed: bool,
}

#[allow(clippy::disallowed_methods)] // Tests wait on real sockets.
fn now() -> Instant {
    Instant::now()
}

/// Connects to `addr`, retrying briefly.
pub fn connect(addr: &str) -> TcpStream {
    for _ in 0..50 {
        if let Ok(c) = TcpStream::connect(addr) {
            c.set_nodelay(true).unwrap();
            return c;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cannot connect to {addr}");
}

/// Reads until the server has been silent for `quiet`, closes, or `max`
/// has passed.
pub fn read_until_quiet(c: &mut TcpStream, quiet: Duration, max: Duration) -> Exchange {
    c.set_read_timeout(Some(quiet)).unwrap();
    let deadline = now() + max;
    let mut buf = Vec::new();
    let mut closed = false;
    let mut chunk = vec![0u8; 64 * 1024];
    while now() < deadline {
        match c.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let mut values = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match Value::from_slice(&buf[pos..]) {
            Ok((v, n)) => {
                values.push(v);
                pos += n;
            }
            Err(_) => break,
        }
    }
    Exchange { values, leftover: buf.len() - pos, closed }
}

/// Sends `bytes` on a new connection and collects the answer.
pub fn exchange(addr: &str, bytes: &[u8], quiet: Duration) -> Exchange {
    let mut c = connect(addr);
    c.write_all(bytes).unwrap();
    read_until_quiet(&mut c, quiet, Duration::from_secs(10))
}

/// The `Error` field of a response header value.
pub fn error_of(v: &Value) -> Option<&str> {
    v.get("Error").and_then(Value::as_str)
}

/// The `Seq` field of a response header value.
pub fn seq_of(v: &Value) -> Option<u64> {
    match v.get("Seq") {
        Some(Value::Int(i)) => u64::try_from(*i).ok(),
        Some(Value::Uint(u)) => Some(*u),
        _ => None,
    }
}

/// Whether `v` is a response header (exactly `Error` and `Seq`).
pub fn is_header(v: &Value) -> bool {
    matches!(v, Value::Map(m) if m.len() == 2) && error_of(v).is_some() && seq_of(v).is_some()
}
