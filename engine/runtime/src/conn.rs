//! One TCP stream as a non-blocking state machine: connect (outbound only),
//! write, read. The worker owns the connections, their deadlines and what
//! happens with the bytes read; this module does the socket I/O and spells
//! failures the way Go's `net` package does. It never looks inside the
//! bytes: the endpoint frames them (`Endpoint::handle_stream_data`).

use core::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use proto::memberlist::StreamId;
use proto::time::Instant;
use proto::timer::TimerToken;

use super::Key;

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
    /// The endpoint asked for more bytes than the limit it gave itself.
    TooLarge,
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
    /// New bytes arrived: `buf[..pos]` is everything read so far, and the
    /// socket is drained for now, or the buffer is full, or the peer closed
    /// the stream (`eof`). The endpoint says whether a frame is complete.
    Read { eof: bool },
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

    /// Switches to reading into the connection's buffer from its start.
    pub fn start_reading(&mut self) {
        self.phase = Phase::Reading;
        self.pos = 0;
        if self.buf.len() < MIN_READ {
            self.buf.resize(MIN_READ, 0);
        }
    }

    /// Makes room for more bytes of a frame of at most `limit` bytes once
    /// the buffer is full (doubling, capped at `limit`); `false` if the
    /// bytes read so far already reach `limit`.
    pub fn grow(&mut self, limit: usize) -> bool {
        if self.pos >= limit {
            return false;
        }
        if self.pos >= self.buf.len() {
            let grown = self.buf.len().saturating_mul(2).clamp(MIN_READ, limit.max(MIN_READ));
            self.buf.resize(grown, 0);
        }
        true
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

    /// Reads until the socket is drained, the buffer is full or the peer
    /// closes; reports new bytes once (the endpoint re-frames a plain frame
    /// from its start, so not after every read).
    fn read(&mut self) -> Progress {
        let mut fresh = false;
        loop {
            let Some(area) = self.buf.get_mut(self.pos..) else {
                return Progress::Failed(Failure::Io(io::ErrorKind::InvalidInput.into()));
            };
            if area.is_empty() {
                // Full: the endpoint decides how far the frame may grow.
                return Progress::Read { eof: false };
            }
            match self.stream.read(area) {
                Ok(0) if fresh => return Progress::Read { eof: true },
                Ok(0) => return Progress::Failed(Failure::Eof { partial: self.pos > 0 }),
                Ok(n) => {
                    self.pos += n;
                    fresh = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if fresh { Progress::Read { eof: false } } else { Progress::Pending };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Progress::Failed(Failure::Io(e)),
            }
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
            Failure::TooLarge => write!(out, "{}", wire::Error::TooLarge),
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
                        gonet::write_errno_text(e, out);
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
