//! One TCP stream as a non-blocking state machine: connect (outbound only),
//! write, read one frame. The worker owns the connections, their deadlines
//! and what happens with a finished frame; this module does the socket I/O
//! and spells failures the way Go's `net` package does.

use core::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use crate::proto::memberlist::StreamId;
use crate::time::Instant;
use crate::timer::TimerToken;
use crate::wire::memberlist::MAX_PUSH_STATE_BYTES;
use crate::wire::stream::{frame_len, ENCRYPT_HEADER_LEN};

use super::Key;

/// Largest frame a stream may carry: a sealed push-pull of the largest size
/// [`frame_len`] accepts.
pub(super) const MAX_FRAME: usize = MAX_PUSH_STATE_BYTES + ENCRYPT_HEADER_LEN;
/// Smallest read area of a connection buffer.
pub(super) const MIN_READ: usize = 4096;

/// Which side opened the stream.
#[derive(Clone, Copy, Debug)]
pub(super) enum Dir {
    /// We opened it for the engine's stream `id`.
    Out { id: StreamId, expects_reply: bool },
    /// A peer opened it on our listener.
    In,
}

/// Where the exchange is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Outbound: waiting for the handshake.
    Connecting,
    /// Writing `buf[pos..end]`.
    Writing,
    /// Reading into `buf[pos..]`.
    Reading,
}

/// How a connection failed.
#[derive(Debug)]
pub(super) enum Failure {
    Io(io::Error),
    /// The peer closed the stream; `partial` if part of a frame had arrived.
    Eof {
        partial: bool,
    },
    /// The bytes can never form a frame (too large, unknown type, bad msgpack).
    Frame(crate::wire::Error),
    /// The deadline passed.
    Timeout,
}

/// What [`Conn::drive`] achieved.
#[derive(Debug)]
pub(super) enum Progress {
    /// Waiting for readiness.
    Pending,
    /// Every byte of `buf[..end]` was written.
    Written,
    /// `buf[..len]` holds one complete frame.
    Frame(usize),
    /// The connection is dead.
    Failed(Failure),
}

/// One TCP connection.
#[derive(Debug)]
pub(super) struct Conn {
    pub stream: mio::net::TcpStream,
    /// The instance it belongs to.
    pub owner: Key,
    pub dir: Dir,
    pub phase: Phase,
    /// Request or reply bytes to write, then the read area (from the pool).
    pub buf: Vec<u8>,
    pub pos: usize,
    pub end: usize,
    pub remote: SocketAddr,
    pub deadline: Instant,
    pub timer: Option<TimerToken>,
}

impl Conn {
    /// Advances the exchange as far as the socket allows.
    pub fn drive(&mut self) -> Progress {
        match self.phase {
            Phase::Connecting => match self.connected() {
                Ok(true) => {
                    self.phase = Phase::Writing;
                    self.write()
                }
                Ok(false) => Progress::Pending,
                Err(e) => Progress::Failed(Failure::Io(e)),
            },
            Phase::Writing => self.write(),
            Phase::Reading => self.read(),
        }
    }

    /// Switches to reading a frame into the connection's buffer.
    pub fn start_reading(&mut self) {
        self.phase = Phase::Reading;
        self.pos = 0;
        if self.buf.len() < MIN_READ {
            self.buf.resize(MIN_READ, 0);
        }
    }

    /// Switches to writing `buf[..end]`.
    pub fn start_writing(&mut self, end: usize) {
        self.phase = Phase::Writing;
        self.pos = 0;
        self.end = end;
    }

    fn connected(&self) -> io::Result<bool> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) if e.raw_os_error() == Some(EINPROGRESS) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn write(&mut self) -> Progress {
        while self.pos < self.end {
            let Some(bytes) = self.buf.get(self.pos..self.end) else {
                return Progress::Failed(Failure::Io(io::ErrorKind::InvalidInput.into()));
            };
            match self.stream.write(bytes) {
                Ok(0) => return Progress::Failed(Failure::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Progress::Failed(Failure::Io(e)),
            }
        }
        Progress::Written
    }

    /// Reads until the socket is drained, then asks [`frame_len`] once
    /// (not after every read: a plain frame is re-parsed from its start).
    fn read(&mut self) -> Progress {
        let mut fresh = false;
        loop {
            if self.pos >= self.buf.len() {
                if fresh {
                    if let Some(p) = self.frame() {
                        return p;
                    }
                    fresh = false;
                }
                if self.buf.len() >= MAX_FRAME {
                    return Progress::Failed(Failure::Frame(crate::wire::Error::TooLarge));
                }
                let grown = self.buf.len().saturating_mul(2).clamp(MIN_READ, MAX_FRAME);
                self.buf.resize(grown, 0);
            }
            let Some(area) = self.buf.get_mut(self.pos..) else {
                return Progress::Failed(Failure::Io(io::ErrorKind::InvalidInput.into()));
            };
            match self.stream.read(area) {
                Ok(0) => {
                    if fresh {
                        if let Some(p) = self.frame() {
                            return p;
                        }
                    }
                    return Progress::Failed(Failure::Eof { partial: self.pos > 0 });
                }
                Ok(n) => {
                    self.pos += n;
                    fresh = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if fresh {
                        if let Some(p) = self.frame() {
                            return p;
                        }
                    }
                    return Progress::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Progress::Failed(Failure::Io(e)),
            }
        }
    }

    /// `Some` when the bytes read so far settle the frame either way.
    fn frame(&self) -> Option<Progress> {
        let bytes = self.buf.get(..self.pos)?;
        match frame_len(bytes) {
            Ok(Some(len)) => Some(Progress::Frame(len)),
            Ok(None) => None,
            Err(e) => Some(Progress::Failed(Failure::Frame(e))),
        }
    }

    /// Writes Go's text for `failure` into `out` (cleared first):
    /// `dial tcp R: connect: connection refused`, `dial tcp R: i/o timeout`,
    /// `read tcp L->R: i/o timeout`, `write tcp L->R: broken pipe`, `EOF`.
    pub fn describe(&self, failure: &Failure, out: &mut String) {
        out.clear();
        let op = match self.phase {
            Phase::Connecting => "dial",
            Phase::Writing => "write",
            Phase::Reading => "read",
        };
        let _ = match failure {
            Failure::Eof { partial: false } => out.write_str("EOF"),
            Failure::Eof { partial: true } => out.write_str("unexpected EOF"),
            Failure::Frame(e) => write!(out, "{e}"),
            Failure::Timeout | Failure::Io(_) => {
                if self.phase == Phase::Connecting {
                    let _ = write!(out, "dial tcp {}: ", self.remote);
                    if matches!(failure, Failure::Io(_)) {
                        out.push_str("connect: ");
                    }
                } else {
                    let _ = write!(out, "{op} tcp ");
                    if let Ok(local) = self.stream.local_addr() {
                        let _ = write!(out, "{local}->");
                    }
                    let _ = write!(out, "{}: ", self.remote);
                }
                match failure {
                    Failure::Io(e) => {
                        errno_text(e, out);
                        Ok(())
                    }
                    _ => out.write_str("i/o timeout"),
                }
            }
        };
    }
}

/// Linux's `EINPROGRESS`.
const EINPROGRESS: i32 = 115;

/// Go's text of the dial error for a connect that failed at once.
pub(super) fn dial_error(remote: SocketAddr, e: &io::Error, out: &mut String) {
    out.clear();
    let _ = write!(out, "dial tcp {remote}: connect: ");
    errno_text(e, out);
}

/// Appends Go's spelling of an OS error: the C library's message with a
/// lower-case first letter and no `(os error N)` suffix, e.g.
/// `connection refused`, `connection reset by peer`, `broken pipe`.
pub(super) fn errno_text(e: &io::Error, out: &mut String) {
    let start = out.len();
    let _ = write!(out, "{e}");
    if e.raw_os_error().is_some() {
        if let Some(at) = out.get(start..).and_then(|s| s.rfind(" (os error ")) {
            out.truncate(start + at);
        }
    }
    if let Some(first) = out.get(start..).and_then(|s| s.chars().next()) {
        if first.is_ascii_uppercase() {
            let mut b = [0u8; 4];
            let lower = first.to_ascii_lowercase().encode_utf8(&mut b);
            out.replace_range(start..start + 1, lower);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_texts_match_go() {
        let mut s = String::new();
        errno_text(&io::Error::from_raw_os_error(111), &mut s);
        assert_eq!(s, "connection refused");
        s.clear();
        errno_text(&io::Error::from_raw_os_error(104), &mut s);
        assert_eq!(s, "connection reset by peer");
        let addr: SocketAddr = "127.0.1.9:7946".parse().unwrap();
        dial_error(addr, &io::Error::from_raw_os_error(111), &mut s);
        assert_eq!(s, "dial tcp 127.0.1.9:7946: connect: connection refused");
    }
}
