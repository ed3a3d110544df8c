//! A blocking RPC client, behaving like Go's `client.RPCClient` as the
//! `serf` CLI uses it (rpc.md §6):
//!
//! * dial with a 10 s timeout, `handshake` (Version 1), then `auth` only when
//!   a key is given; Seq counts from 1 per connection;
//! * every write has a 10 s deadline; reads have none (a silent server hangs
//!   the caller, as with Go — streaming waits can be interrupted instead);
//! * replies are routed by Seq. While waiting for one reply, records of live
//!   streams, monitors and queries are queued for [`Client::next_event`].
//!   Unlike Go, a message for a Seq whose handler is gone (a stopped stream,
//!   a duplicate `Authentication required`) is skipped *with* its body when
//!   the command says one follows, so the connection never desynchronises.
//!
//! Errors carry the text Go's CLI prints after its prefix (`client closed`,
//! `dial tcp …: connect: connection refused`, the agent's error string).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use wire::msgpack::Reader;
use wire::Error as WireError;

use crate::codec::{
    errors, query_record, AuthRequest, Command, Coordinate, CoordinateRequest, CoordinateResponse,
    Decode, Encode, EventRequest, ForceLeaveRequest, HandshakeRequest, JoinRequest, JoinResponse,
    KeyRequest, KeyResponse, LogRecord, Member, MembersFilteredRequest, MembersResponse,
    MonitorRequest, QueryRecord, QueryRequest, RequestHeader, RespondRequest, ResponseHeader,
    StatsResponse, StopRequest, StreamRequest, Tags, TagsRequest, Value,
};

/// Dial timeout and per-write deadline of Go's client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The IPC version this client speaks.
pub const IPC_VERSION: i32 = 1;

/// How often an interruptible wait checks its interrupt predicate.
const POLL_INTERVAL_MS: i32 = 100;

/// Why a call failed. [`std::fmt::Display`] gives Go's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The agent answered with this error string.
    Remote(String),
    /// The connection is gone (Go: `client closed`).
    Closed,
    /// A network error, already worded as Go words it (dial, write).
    Io(String),
    /// A reply body could not be decoded; the connection is unusable.
    Decode(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Remote(s) | ClientError::Io(s) | ClientError::Decode(s) => f.write_str(s),
            ClientError::Closed => f.write_str("client closed"),
        }
    }
}

impl std::error::Error for ClientError {}

/// The result of a client call.
pub type Result<T> = core::result::Result<T, ClientError>;

/// Identifies a stream, monitor or query: its request's Seq.
pub type StreamHandle = u64;

/// An asynchronous record delivered by [`Client::next_event`].
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A `stream` record, decoded as Go's generic map.
    Stream {
        /// The stream's handle.
        seq: StreamHandle,
        /// The record.
        record: Value,
    },
    /// A `monitor` log line.
    Log {
        /// The monitor's handle.
        seq: StreamHandle,
        /// The line, without newline.
        line: String,
    },
    /// A `query` ack, response or done record.
    Query {
        /// The query's handle.
        seq: StreamHandle,
        /// The record; after `done` the handle is gone.
        record: QueryRecord,
    },
}

/// Parameters of [`Client::query`] (Go's `client.QueryParam`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryParams {
    /// Restrict to these node names (`None` = all).
    pub filter_nodes: Option<Vec<String>>,
    /// Tag name → regexp filters.
    pub filter_tags: Option<Tags>,
    /// Ask nodes to ack.
    pub request_ack: bool,
    /// Extra relays for responses (0..=255).
    pub relay_factor: u8,
    /// Query timeout in nanoseconds (0 = the agent's default).
    pub timeout_ns: i64,
    /// The query name.
    pub name: String,
    /// Optional payload.
    pub payload: Option<Vec<u8>>,
}

/// A connected, handshaken (and, if asked, authenticated) RPC client.
#[derive(Debug)]
pub struct Client {
    conn: TcpStream,
    /// Received bytes not yet consumed start at `pos`.
    buf: Vec<u8>,
    pos: usize,
    seq: u64,
    /// The command of every Seq sent on this connection.
    sent: HashMap<u64, Command>,
    /// Streams, monitors and queries whose records are delivered.
    live: HashSet<u64>,
    /// Records that arrived while a reply was awaited.
    queued: VecDeque<Incoming>,
    closed: bool,
    /// `local->remote` for Go-style write error texts.
    endpoints: String,
}

impl Client {
    /// Dials `addr` (Go `host:port` syntax), performs the handshake, and
    /// authenticates when `auth_key` is non-empty.
    pub fn connect(addr: &str, auth_key: &str) -> Result<Client> {
        let conn = gonet::dial_tcp(addr, DEFAULT_TIMEOUT).map_err(ClientError::Io)?;
        Client::from_stream(conn, auth_key)
    }

    /// Wraps an already connected stream, then handshakes and authenticates.
    pub fn from_stream(conn: TcpStream, auth_key: &str) -> Result<Client> {
        conn.set_write_timeout(Some(DEFAULT_TIMEOUT))
            .map_err(|e| ClientError::Io(gonet::errno_text(&e)))?;
        let _ = conn.set_nodelay(true);
        let endpoints = match (conn.local_addr(), conn.peer_addr()) {
            (Ok(l), Ok(p)) => format!("{l}->{p}"),
            _ => String::new(),
        };
        let mut c = Client {
            conn,
            buf: Vec::with_capacity(4096),
            pos: 0,
            seq: 0,
            sent: HashMap::new(),
            live: HashSet::new(),
            queued: VecDeque::new(),
            closed: false,
            endpoints,
        };
        c.call(Command::Handshake, Some(&HandshakeRequest { version: IPC_VERSION }))?;
        if !auth_key.is_empty() {
            c.call(Command::Auth, Some(&AuthRequest { auth_key: auth_key.to_string() }))?;
        }
        Ok(c)
    }

    /// Whether the connection has been closed (by either side).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// `members`: every known member.
    pub fn members(&mut self) -> Result<Vec<Member>> {
        let r: MembersResponse = self.call_with_body(Command::Members, None)?;
        Ok(r.members.unwrap_or_default())
    }

    /// `members-filtered`: regexps anchored by the agent.
    pub fn members_filtered(
        &mut self,
        tags: Tags,
        status: &str,
        name: &str,
    ) -> Result<Vec<Member>> {
        let req = MembersFilteredRequest {
            name: name.to_string(),
            status: status.to_string(),
            tags: Some(tags),
        };
        let r: MembersResponse = self.call_with_body(Command::MembersFiltered, Some(&req))?;
        Ok(r.members.unwrap_or_default())
    }

    /// `join`: the number of nodes contacted.
    pub fn join(&mut self, addrs: Vec<String>, replay: bool) -> Result<i32> {
        let req = JoinRequest { existing: Some(addrs), replay };
        let r: JoinResponse = self.call_with_body(Command::Join, Some(&req))?;
        Ok(r.num)
    }

    /// `event`: a user event; `payload` nil when absent.
    pub fn user_event(
        &mut self,
        name: &str,
        payload: Option<Vec<u8>>,
        coalesce: bool,
    ) -> Result<()> {
        let req = EventRequest { coalesce, name: name.to_string(), payload };
        self.call(Command::Event, Some(&req))
    }

    /// `force-leave`, optionally pruning the member at once.
    pub fn force_leave(&mut self, node: &str, prune: bool) -> Result<()> {
        self.call(Command::ForceLeave, Some(&ForceLeaveRequest { node: node.to_string(), prune }))
    }

    /// `leave`: the agent leaves and shuts down.
    pub fn leave(&mut self) -> Result<()> {
        self.call::<RequestHeader>(Command::Leave, None)
    }

    /// `tags`: set `tags`, delete `delete`.
    pub fn update_tags(&mut self, tags: Tags, delete: Option<Vec<String>>) -> Result<()> {
        self.call(Command::Tags, Some(&TagsRequest { delete_tags: delete, tags: Some(tags) }))
    }

    /// `respond` to a query received on a stream.
    pub fn respond(&mut self, id: u64, payload: Option<Vec<u8>>) -> Result<()> {
        self.call(Command::Respond, Some(&RespondRequest { id, payload }))
    }

    /// `install-key`. On error the reply body (with per-node messages) is
    /// returned alongside.
    pub fn install_key(&mut self, key: &str) -> core::result::Result<KeyResponse, KeyError> {
        self.key_op(Command::InstallKey, Some(key))
    }

    /// `use-key`.
    pub fn use_key(&mut self, key: &str) -> core::result::Result<KeyResponse, KeyError> {
        self.key_op(Command::UseKey, Some(key))
    }

    /// `remove-key`.
    pub fn remove_key(&mut self, key: &str) -> core::result::Result<KeyResponse, KeyError> {
        self.key_op(Command::RemoveKey, Some(key))
    }

    /// `list-keys`.
    pub fn list_keys(&mut self) -> core::result::Result<KeyResponse, KeyError> {
        self.key_op(Command::ListKeys, None)
    }

    fn key_op(
        &mut self,
        cmd: Command,
        key: Option<&str>,
    ) -> core::result::Result<KeyResponse, KeyError> {
        let req = key.map(|k| KeyRequest { key: k.to_string() });
        match self.exchange::<KeyRequest, KeyResponse>(cmd, req.as_ref()) {
            Ok((err, body)) => match err {
                None => Ok(body.unwrap_or_default()),
                Some(e) => Err(KeyError { error: e, response: body.unwrap_or_default() }),
            },
            Err(e) => Err(KeyError { error: e, response: KeyResponse::default() }),
        }
    }

    /// `stats`.
    pub fn stats(&mut self) -> Result<StatsResponse> {
        self.call_with_body(Command::Stats, None)
    }

    /// `get-coordinate`: `None` when the agent has no coordinate for `node`.
    pub fn get_coordinate(&mut self, node: &str) -> Result<Option<Coordinate>> {
        let req = CoordinateRequest { node: node.to_string() };
        let r: CoordinateResponse = self.call_with_body(Command::GetCoordinate, Some(&req))?;
        Ok(r.ok.then_some(r.coord))
    }

    /// `stream`: subscribe to events matching `filter`.
    pub fn stream(&mut self, filter: &str) -> Result<StreamHandle> {
        self.start(Command::Stream, &StreamRequest { kind: filter.to_string() })
    }

    /// `monitor`: subscribe to log lines at `level` and above.
    pub fn monitor(&mut self, level: &str) -> Result<StreamHandle> {
        self.start(Command::Monitor, &MonitorRequest { log_level: level.to_string() })
    }

    /// `query`: records arrive through [`Client::next_event`] until `done`.
    pub fn query(&mut self, p: QueryParams) -> Result<StreamHandle> {
        let req = QueryRequest {
            filter_nodes: p.filter_nodes,
            filter_tags: p.filter_tags,
            name: p.name,
            payload: p.payload,
            relay_factor: p.relay_factor,
            request_ack: p.request_ack,
            timeout_ns: p.timeout_ns,
        };
        self.start(Command::Query, &req)
    }

    /// `stop`: ends a stream or monitor. Delivery stops locally first; any
    /// record still in flight is skipped.
    pub fn stop(&mut self, handle: StreamHandle) -> Result<()> {
        self.live.remove(&handle);
        self.queued.retain(|i| incoming_seq(i) != handle);
        self.call(Command::Stop, Some(&StopRequest { stop: handle }))
    }

    /// The next record of any live stream, monitor or query. Blocks until
    /// one arrives; `interrupted` is polled every 100 ms and, when it returns
    /// true, the wait ends with `Ok(None)`. A closed connection is
    /// [`ClientError::Closed`].
    pub fn next_event(&mut self, interrupted: &dyn Fn() -> bool) -> Result<Option<Incoming>> {
        loop {
            if let Some(i) = self.queued.pop_front() {
                return Ok(Some(i));
            }
            if self.closed {
                return Err(ClientError::Closed);
            }
            let Some(h) = self.read_value::<ResponseHeader>(Some(interrupted))? else {
                return Ok(None);
            };
            self.dispatch(h)?;
        }
    }

    /// Closes the connection; later calls fail with `client closed`.
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            let _ = self.conn.shutdown(std::net::Shutdown::Both);
        }
    }

    // ---- internals ----

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Sends header (+ body) in one write.
    fn send(&mut self, cmd: Command, seq: u64, body: Option<&dyn Encode>) -> Result<()> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        let header = RequestHeader { command: cmd.name().to_string(), seq };
        let mut out = header.to_vec().map_err(|e| ClientError::Io(e.to_string()))?;
        if let Some(b) = body {
            out.extend(b.to_vec().map_err(|e| ClientError::Io(e.to_string()))?);
        }
        self.sent.insert(seq, cmd);
        self.conn.write_all(&out).map_err(|e| {
            ClientError::Io(format!("write tcp {}: {}", self.endpoints, write_err_text(&e)))
        })
    }

    /// A header-only command.
    fn call<B: Encode>(&mut self, cmd: Command, body: Option<&B>) -> Result<()> {
        match self.exchange::<B, RequestHeader>(cmd, body)? {
            (None, _) => Ok(()),
            (Some(e), _) => Err(e),
        }
    }

    /// A command whose reply has a body; the body is discarded on error.
    fn call_with_body<R: Decode + Default>(
        &mut self,
        cmd: Command,
        body: Option<&dyn Encode>,
    ) -> Result<R> {
        let seq = self.next_seq();
        self.send(cmd, seq, body)?;
        match self.await_reply::<R>(cmd, seq)? {
            (None, r) => Ok(r.unwrap_or_default()),
            (Some(e), _) => Err(e),
        }
    }

    /// Sends a request and waits for its reply: the reply's error (if any)
    /// and its body (for commands that have one). Transport errors are `Err`.
    fn exchange<B: Encode, R: Decode>(
        &mut self,
        cmd: Command,
        body: Option<&B>,
    ) -> Result<(Option<ClientError>, Option<R>)> {
        let seq = self.next_seq();
        self.send(cmd, seq, body.map(|b| b as &dyn Encode))?;
        self.await_reply::<R>(cmd, seq)
    }

    fn await_reply<R: Decode>(
        &mut self,
        cmd: Command,
        seq: u64,
    ) -> Result<(Option<ClientError>, Option<R>)> {
        loop {
            let h = self.read_value::<ResponseHeader>(None)?.ok_or(ClientError::Closed)?;
            if h.seq != seq {
                self.dispatch(h)?;
                continue;
            }
            let body = if cmd.has_response_body() && h.error != errors::AUTH_REQUIRED {
                Some(self.read_value::<R>(None)?.ok_or(ClientError::Closed)?)
            } else {
                None
            };
            let err = (!h.error.is_empty()).then_some(ClientError::Remote(h.error));
            return Ok((err, body));
        }
    }

    /// Starts a stream, monitor or query; its records flow after the reply.
    fn start(&mut self, cmd: Command, body: &dyn Encode) -> Result<StreamHandle> {
        let seq = self.next_seq();
        self.send(cmd, seq, Some(body))?;
        match self.await_reply::<RequestHeader>(cmd, seq)? {
            (None, _) => {
                self.live.insert(seq);
                Ok(seq)
            }
            (Some(e), _) => Err(e),
        }
    }

    /// Handles a header that is not the awaited reply.
    fn dispatch(&mut self, h: ResponseHeader) -> Result<()> {
        let Some(&cmd) = self.sent.get(&h.seq) else {
            // Never sent on this connection: Go reads nothing more either.
            return Ok(());
        };
        if cmd.is_streaming() && self.live.contains(&h.seq) {
            let seq = h.seq;
            let incoming = match cmd {
                Command::Stream => {
                    let record = self.read_value::<Value>(None)?.ok_or(ClientError::Closed)?;
                    Incoming::Stream { seq, record }
                }
                Command::Monitor => {
                    let r = self.read_value::<LogRecord>(None)?.ok_or(ClientError::Closed)?;
                    Incoming::Log { seq, line: r.log }
                }
                _ => {
                    let record =
                        self.read_value::<QueryRecord>(None)?.ok_or(ClientError::Closed)?;
                    if record.kind == query_record::DONE {
                        self.live.remove(&seq);
                    }
                    Incoming::Query { seq, record }
                }
            };
            self.queued.push_back(incoming);
            return Ok(());
        }
        // A Seq whose handler is gone: skip the body the server attached.
        let has_body = if cmd.is_streaming() {
            h.error.is_empty()
        } else {
            cmd.has_response_body() && h.error != errors::AUTH_REQUIRED
        };
        if has_body {
            self.read_value::<Skip>(None)?.ok_or(ClientError::Closed)?;
        }
        Ok(())
    }

    /// Decodes one complete value from the buffer, reading more as needed.
    /// `Ok(None)` only when `interrupted` fired.
    fn read_value<T: Decode>(
        &mut self,
        interrupted: Option<&dyn Fn() -> bool>,
    ) -> Result<Option<T>> {
        loop {
            let avail = self.buf.get(self.pos..).unwrap_or(&[]);
            if !avail.is_empty() {
                let mut r = Reader::new(avail);
                match T::decode(&mut r) {
                    Ok(v) => {
                        self.pos += r.position();
                        if self.pos == self.buf.len() {
                            self.buf.clear();
                            self.pos = 0;
                        }
                        return Ok(Some(v));
                    }
                    Err(WireError::Truncated) => {}
                    Err(e) => {
                        self.close();
                        return Err(ClientError::Decode(format!("msgpack decode error: {e}")));
                    }
                }
            }
            if !self.fill(interrupted)? {
                return Ok(None);
            }
        }
    }

    /// Reads more bytes. Returns false if `interrupted` fired first.
    fn fill(&mut self, interrupted: Option<&dyn Fn() -> bool>) -> Result<bool> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        if let Some(stop) = interrupted {
            loop {
                if stop() {
                    return Ok(false);
                }
                if wait_readable(&self.conn, POLL_INTERVAL_MS) {
                    break;
                }
            }
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 8192];
        loop {
            match self.conn.read(&mut chunk) {
                Ok(0) => {
                    self.close();
                    return Err(ClientError::Closed);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if interrupted.is_some_and(|f| f()) {
                        return Ok(false);
                    }
                }
                Err(_) => {
                    self.close();
                    return Err(ClientError::Closed);
                }
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}

/// A failed key operation: the error and the reply body (per-node
/// `Messages`, counts), which the agent sends even on failure.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyError {
    /// What failed.
    pub error: ClientError,
    /// The body that came with the failure (empty for transport errors).
    pub response: KeyResponse,
}

/// Consumes one value of any shape.
struct Skip;

impl Decode for Skip {
    fn decode(r: &mut Reader<'_>) -> wire::Result<Self> {
        r.skip().map(|()| Skip)
    }
}

fn incoming_seq(i: &Incoming) -> u64 {
    match i {
        Incoming::Stream { seq, .. } | Incoming::Log { seq, .. } | Incoming::Query { seq, .. } => {
            *seq
        }
    }
}

fn write_err_text(e: &io::Error) -> String {
    if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
        "i/o timeout".to_string()
    } else {
        format!("write: {}", gonet::errno_text(e))
    }
}

/// Waits up to `timeout_ms` for `conn` to become readable (or closed).
fn wait_readable(conn: &TcpStream, timeout_ms: i32) -> bool {
    let mut fds = libc::pollfd { fd: conn.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: `fds` is a valid, initialised pollfd for the duration of the
    // call and the count passed is 1.
    let n = unsafe { libc::poll(&mut fds, 1, timeout_ms) };
    n > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn enc(v: &dyn Encode) -> Vec<u8> {
        v.to_vec().unwrap()
    }

    fn ok(seq: u64) -> Vec<u8> {
        enc(&ResponseHeader { error: String::new(), seq })
    }

    /// Runs `server` on one accepted connection of a loopback listener and
    /// returns the address to dial.
    fn serve(server: impl FnOnce(TcpStream) + Send + 'static) -> (String, thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            server(s);
        });
        (addr, h)
    }

    /// Reads one request header (+ body when the command has one).
    fn read_req(s: &mut TcpStream, buf: &mut Vec<u8>) -> (RequestHeader, Option<Value>) {
        fn one<T: Decode>(s: &mut TcpStream, buf: &mut Vec<u8>) -> T {
            loop {
                if let Ok((v, n)) = T::from_slice(buf) {
                    buf.drain(..n);
                    return v;
                }
                let mut c = [0u8; 1024];
                let n = s.read(&mut c).unwrap();
                assert!(n > 0, "client closed early");
                buf.extend_from_slice(&c[..n]);
            }
        }
        let h: RequestHeader = one(s, buf);
        let cmd = Command::from_name(&h.command).unwrap();
        let body = cmd.has_request_body().then(|| one::<Value>(s, buf));
        (h, body)
    }

    #[test]
    fn handshake_auth_and_seq_numbers() {
        let (addr, h) = serve(|mut s| {
            let mut b = Vec::new();
            let (h1, body) = read_req(&mut s, &mut b);
            assert_eq!((h1.command.as_str(), h1.seq), ("handshake", 1));
            assert_eq!(body.unwrap().get("Version"), Some(&Value::Int(1)));
            s.write_all(&ok(1)).unwrap();
            let (h2, body) = read_req(&mut s, &mut b);
            assert_eq!((h2.command.as_str(), h2.seq), ("auth", 2));
            assert_eq!(body.unwrap().get("AuthKey").and_then(Value::as_str), Some("k"));
            s.write_all(&ok(2)).unwrap();
            let (h3, _) = read_req(&mut s, &mut b);
            assert_eq!((h3.command.as_str(), h3.seq), ("members", 3));
            let mut out = ok(3);
            out.extend(enc(&MembersResponse {
                members: Some(vec![Member { name: "a".into(), ..Default::default() }]),
            }));
            // Split the reply across two writes to exercise reassembly.
            s.write_all(&out[..5]).unwrap();
            s.flush().unwrap();
            thread::sleep(Duration::from_millis(20));
            s.write_all(&out[5..]).unwrap();
        });
        let mut c = Client::connect(&addr, "k").unwrap();
        let m = c.members().unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "a");
        h.join().unwrap();
    }

    #[test]
    fn remote_errors_and_bodies_on_error() {
        let (addr, h) = serve(|mut s| {
            let mut b = Vec::new();
            read_req(&mut s, &mut b);
            s.write_all(&ok(1)).unwrap();
            // join: error and a body.
            read_req(&mut s, &mut b);
            let mut out = enc(&ResponseHeader { error: "1 error occurred".into(), seq: 2 });
            out.extend(enc(&JoinResponse { num: 0 }));
            // members: "Authentication required" twice, no body.
            s.write_all(&out).unwrap();
            read_req(&mut s, &mut b);
            let mut out = enc(&ResponseHeader { error: errors::AUTH_REQUIRED.into(), seq: 3 });
            out.extend(enc(&ResponseHeader { error: errors::AUTH_REQUIRED.into(), seq: 3 }));
            s.write_all(&out).unwrap();
            // list-keys: error with messages.
            read_req(&mut s, &mut b);
            let mut out =
                enc(&ResponseHeader { error: "1/1 nodes reported failure".into(), seq: 4 });
            out.extend(enc(&KeyResponse {
                messages: Some(vec![("n1".into(), "boom".into())]),
                num_err: 1,
                num_nodes: 1,
                num_resp: 1,
                ..Default::default()
            }));
            s.write_all(&out).unwrap();
            read_req(&mut s, &mut b);
            s.write_all(&ok(5)).unwrap();
        });
        let mut c = Client::connect(&addr, "").unwrap();
        assert_eq!(
            c.join(vec!["x".into()], false).unwrap_err(),
            ClientError::Remote("1 error occurred".into())
        );
        assert_eq!(c.members().unwrap_err().to_string(), "Authentication required");
        let e = c.list_keys().unwrap_err();
        assert_eq!(e.error.to_string(), "1/1 nodes reported failure");
        assert_eq!(e.response.messages.unwrap()[0].1, "boom");
        // The duplicate header was skipped without desynchronising.
        c.leave().unwrap();
        h.join().unwrap();
    }

    #[test]
    fn streams_queue_records_and_skip_after_stop() {
        let (addr, h) = serve(|mut s| {
            let mut b = Vec::new();
            read_req(&mut s, &mut b);
            s.write_all(&ok(1)).unwrap();
            let (st, _) = read_req(&mut s, &mut b);
            assert_eq!(st.command, "stream");
            s.write_all(&ok(2)).unwrap();
            let (mon, _) = read_req(&mut s, &mut b);
            assert_eq!(mon.command, "monitor");
            // A stream record arrives before the monitor's reply.
            let mut out = ok(2);
            out.extend(enc(&Value::Map(vec![(
                Value::Str(b"Event".to_vec()),
                Value::Str(b"user".to_vec()),
            )])));
            out.extend(ok(3));
            out.extend(ok(3));
            out.extend(enc(&LogRecord { log: "line one".into() }));
            s.write_all(&out).unwrap();
            let (stop, body) = read_req(&mut s, &mut b);
            assert_eq!(stop.command, "stop");
            assert_eq!(body.unwrap().get("Stop"), Some(&Value::Int(2)));
            // A late record for the stopped stream, then the stop reply.
            let mut out = ok(2);
            out.extend(enc(&Value::Map(vec![])));
            out.extend(ok(4));
            out.extend(ok(3));
            out.extend(enc(&LogRecord { log: "line two".into() }));
            s.write_all(&out).unwrap();
            thread::sleep(Duration::from_millis(50));
        });
        let mut c = Client::connect(&addr, "").unwrap();
        let st = c.stream("*").unwrap();
        let mon = c.monitor("debug").unwrap();
        let never = || false;
        match c.next_event(&never).unwrap().unwrap() {
            Incoming::Stream { seq, record } => {
                assert_eq!(seq, st);
                assert_eq!(record.get("Event").and_then(Value::as_str), Some("user"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.next_event(&never).unwrap(),
            Some(Incoming::Log { seq: mon, line: "line one".into() })
        );
        c.stop(st).unwrap();
        assert_eq!(
            c.next_event(&never).unwrap(),
            Some(Incoming::Log { seq: mon, line: "line two".into() })
        );
        // The server then closes the connection.
        assert_eq!(c.next_event(&never).unwrap_err(), ClientError::Closed);
        h.join().unwrap();
    }

    #[test]
    fn query_ends_with_done_and_interrupt_works() {
        let (addr, h) = serve(|mut s| {
            let mut b = Vec::new();
            read_req(&mut s, &mut b);
            s.write_all(&ok(1)).unwrap();
            let (q, body) = read_req(&mut s, &mut b);
            assert_eq!(q.command, "query");
            let body = body.unwrap();
            assert_eq!(body.get("FilterNodes"), Some(&Value::Nil));
            assert_eq!(body.get("FilterTags"), Some(&Value::Map(vec![])));
            let mut out = ok(2);
            for (from, kind) in [("n1", "ack"), ("n1", "response"), ("", "done")] {
                out.extend(ok(2));
                out.extend(enc(&QueryRecord {
                    from: from.into(),
                    payload: (kind == "response").then(|| b"hi\n".to_vec()),
                    kind: kind.into(),
                }));
            }
            s.write_all(&out).unwrap();
            // Keep the connection open and silent.
            thread::sleep(Duration::from_millis(400));
        });
        let mut c = Client::connect(&addr, "").unwrap();
        let q = c
            .query(QueryParams {
                filter_tags: Some(vec![]),
                name: "q".into(),
                ..Default::default()
            })
            .unwrap();
        let never = || false;
        let mut kinds = Vec::new();
        while let Some(Incoming::Query { seq, record }) = c.next_event(&never).unwrap() {
            assert_eq!(seq, q);
            kinds.push(record.kind.clone());
            if record.kind == "done" {
                break;
            }
        }
        assert_eq!(kinds, ["ack", "response", "done"]);
        #[allow(clippy::disallowed_methods)]
        let start = std::time::Instant::now();
        let deadline = start + Duration::from_millis(150);
        #[allow(clippy::disallowed_methods)]
        let stop = move || std::time::Instant::now() > deadline;
        assert_eq!(c.next_event(&stop).unwrap(), None);
        h.join().unwrap();
    }

    #[test]
    fn closed_connection_is_client_closed() {
        let (addr, h) = serve(|mut s| {
            let mut b = Vec::new();
            read_req(&mut s, &mut b);
            s.write_all(&ok(1)).unwrap();
            read_req(&mut s, &mut b);
            // Drop without answering (as for an invalid regexp).
        });
        let mut c = Client::connect(&addr, "").unwrap();
        assert_eq!(c.members_filtered(vec![], "", "[").unwrap_err().to_string(), "client closed");
        h.join().unwrap();
    }

    #[test]
    fn connection_refused_text() {
        let e = Client::connect("127.0.250.98:1", "").unwrap_err();
        assert_eq!(e.to_string(), "dial tcp 127.0.250.98:1: connect: connection refused");
    }
}
