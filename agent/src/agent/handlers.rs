//! Event handlers (`protocol/serf.md` §13): `[filter=]command` scripts run
//! through `/bin/sh -c`, one at a time in event order, on their own thread
//! (never the engine's or the dispatcher's), with Go's environment and
//! stdin. A query handler that exits 0 with output answers the query.
//!
//! Bounds: the backlog holds [`BACKLOG`] events (beyond it events are
//! dropped with a log line); each script's combined stdout+stderr keeps
//! only its last [`OUTPUT_TAIL`] bytes, so a flooding script costs a pipe
//! read loop, not memory. A script running longer than a second is logged
//! once; like Go, it is not killed. Each run is supervised by the handler
//! thread alone, in one `poll(2)` loop over the script's pipes and a pidfd.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use engine::proto::serf::{Member, RespondError, Serf};
use engine::runtime::InstanceHandle;

use super::log::{Level, Logger};
use super::{matches, StreamItem};
use crate::config::EventScript;
use crate::metrics::Counters;

/// Events waiting for handlers before new ones are dropped.
pub const BACKLOG: usize = 1024;
/// Bytes of a script's output kept (Go keeps 8 KiB).
pub const OUTPUT_TAIL: usize = 8 * 1024;
/// A script running longer than this is logged.
const SLOW: Duration = Duration::from_secs(1);

/// The handler thread and its queue.
pub struct Runner {
    tx: Sender<StreamItem>,
    scripts: Arc<Mutex<Vec<EventScript>>>,
    logger: Logger,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Runner {
    /// Starts the thread if any handler is configured (it can be added by a
    /// reload later, so the thread always runs).
    pub fn start(
        scripts: Arc<Mutex<Vec<EventScript>>>,
        logger: &Logger,
        serf: InstanceHandle<Serf>,
        name: &str,
        counters: Arc<Counters>,
    ) -> Option<Runner> {
        let (tx, rx) = crossbeam_channel::bounded(BACKLOG);
        let worker = Worker {
            rx,
            scripts: scripts.clone(),
            logger: logger.clone(),
            serf,
            name: name.to_string(),
            counters: counters.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("agent-handlers".into())
            .spawn(move || worker.run())
            .ok()?;
        Some(Runner { tx, scripts, logger: logger.clone(), counters, thread: Some(thread) })
    }

    /// Queues an event for the handlers whose filter matches it.
    pub fn dispatch(&self, item: &StreamItem) {
        let wanted = {
            let scripts = self.scripts.lock().unwrap_or_else(|e| e.into_inner());
            let (kind, name) = kind_name(item);
            scripts.iter().any(|s| matches(std::slice::from_ref(&s.filter), kind, name))
        };
        if !wanted {
            return;
        }
        match self.tx.try_send(item.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                Counters::inc(&self.counters.handler_drops);
                self.logger.log(Level::Warn, "agent", "Event handler backlog full, dropping event");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Stops taking events; the thread finishes the script it is running.
    pub fn stop(mut self) {
        let (tx, _) = crossbeam_channel::bounded(1);
        self.tx = tx;
        if let Some(t) = self.thread.take() {
            // Do not wait for a hung script: the process is exiting.
            drop(t);
        }
    }
}

fn kind_name(item: &StreamItem) -> (&'static str, &str) {
    match item {
        StreamItem::Members { event, .. } => (event, ""),
        StreamItem::User { name, .. } => ("user", name),
        StreamItem::Query { name, .. } => ("query", name),
    }
}

struct Worker {
    rx: Receiver<StreamItem>,
    scripts: Arc<Mutex<Vec<EventScript>>>,
    logger: Logger,
    serf: InstanceHandle<Serf>,
    name: String,
    counters: Arc<Counters>,
}

/// Writes `s` with tabs and newlines escaped as `\t` / `\n` (stdin fields).
fn escape(s: &str) -> String {
    s.replace('\t', "\\t").replace('\n', "\\n")
}

/// The stdin of a handler for `item` (§13).
pub fn stdin_for(item: &StreamItem) -> Vec<u8> {
    match item {
        StreamItem::Members { members, .. } => {
            let mut out = String::new();
            for m in members {
                out.push_str(&member_line(m));
            }
            out.into_bytes()
        }
        StreamItem::User { payload, .. } | StreamItem::Query { payload, .. } => {
            let mut p = payload.clone();
            if !p.is_empty() && p.last() != Some(&b'\n') {
                p.push(b'\n');
            }
            p
        }
    }
}

/// `name \t ip \t role \t k=v,k=v \n`.
fn member_line(m: &Member) -> String {
    let role = m.tags.get("role").map_or("", String::as_str);
    let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}\t{}\t{}\t{}\n", escape(&m.name), m.addr, escape(role), escape(&tags.join(",")))
}

/// `SERF_TAG_<KEY>`: upper case, anything outside `[A-Z0-9_]` becomes `_`.
pub fn tag_env_name(key: &str) -> String {
    let up = key.to_uppercase();
    let cleaned: String = up
        .chars()
        .map(|c| if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' { c } else { '_' })
        .collect();
    format!("SERF_TAG_{cleaned}")
}

impl Worker {
    fn run(self) {
        while let Ok(item) = self.rx.recv() {
            let scripts: Vec<EventScript> =
                self.scripts.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let tags = self.serf.call(|s, _| s.tags().clone()).unwrap_or_default();
            let (kind, name) = kind_name(&item);
            for s in scripts.iter().filter(|s| matches(std::slice::from_ref(&s.filter), kind, name))
            {
                self.invoke(s, &item, &tags);
            }
        }
    }

    /// Runs one script for `item` and acts on its outcome: logs a failure
    /// and the output, answers a query with the output of a script that
    /// exited 0.
    fn invoke(
        &self,
        script: &EventScript,
        item: &StreamItem,
        tags: &std::collections::BTreeMap<String, String>,
    ) {
        let event = kind_name(item).0;
        Counters::inc(&self.counters.handler_runs);
        let mut cmd = command_for(script, item, tags, &self.name);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.logger.log(
                    Level::Err,
                    "agent",
                    &format!("Error invoking script '{}': {e}", script.script),
                );
                return;
            }
        };
        let (status, output) = supervise(child, &stdin_for(item), || {
            self.logger.log(
                Level::Warn,
                "agent",
                &format!("Script '{}' slow, execution exceeding {:?}", script.script, SLOW),
            );
        });
        let ok = status.is_some_and(|s| s.success());
        if !ok {
            let code =
                status.and_then(|s| s.code()).map_or("signal".to_string(), |c| c.to_string());
            self.logger.log(
                Level::Err,
                "agent",
                &format!("Error invoking script '{}': exit status {code}", script.script),
            );
        }
        self.logger.log(
            Level::Debug,
            "agent",
            &format!("Event '{event}' script output: {}", String::from_utf8_lossy(&output)),
        );
        if let StreamItem::Query { id, name, .. } = item {
            if ok && !output.is_empty() {
                self.answer(*id, name, output);
            }
        }
    }

    /// Sends a query handler's output as the query's response.
    fn answer(&self, id: u64, name: &str, output: Vec<u8>) {
        let r = self.serf.call(move |s, now| s.respond(now, id, &output));
        // Go words it through the query's own `Respond` (which prefixes
        // every failure) and prints the event as `query: <name>`. A query
        // we no longer hold has passed its deadline.
        let why = match r {
            Ok(Err(RespondError::Failed(e))) => Some(e),
            Ok(Err(RespondError::NoSuchQuery)) => Some("response is past the deadline".to_string()),
            _ => None,
        };
        if let Some(why) = why {
            self.logger.log(
                Level::Warn,
                "agent",
                &format!(
                    "Failed to respond to query 'query: {name}': failed to respond to key \
                     query: {why}"
                ),
            );
        }
    }
}

/// `/bin/sh -c <script>` with Go's environment for `item` and all three
/// standard streams piped.
fn command_for(
    script: &EventScript,
    item: &StreamItem,
    tags: &std::collections::BTreeMap<String, String>,
    self_name: &str,
) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(&script.script);
    cmd.env("SERF_EVENT", kind_name(item).0);
    cmd.env("SERF_SELF_NAME", self_name);
    cmd.env("SERF_SELF_ROLE", tags.get("role").map_or("", String::as_str));
    for (k, v) in tags {
        cmd.env(tag_env_name(k), v);
    }
    match item {
        StreamItem::User { name, ltime, .. } => {
            cmd.env("SERF_USER_EVENT", name);
            cmd.env("SERF_USER_LTIME", ltime.to_string());
        }
        StreamItem::Query { name, ltime, .. } => {
            cmd.env("SERF_QUERY_NAME", name);
            cmd.env("SERF_QUERY_LTIME", ltime.to_string());
        }
        StreamItem::Members { .. } => {}
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Drives a running script on the calling thread alone: writes `input` to
/// its stdin as the pipe accepts it (a script that never reads cannot block
/// us), keeps the last [`OUTPUT_TAIL`] bytes of stdout and stderr together,
/// and waits for its exit, all in one `poll(2)` loop on the pipes and a
/// pidfd of the child — no helper threads, no sleeping. `slow` is called
/// once if the script runs longer than [`SLOW`]. Returns when the script has
/// exited and both output pipes are closed (as Go's `Cmd.Wait` does), with
/// its exit status (`None` if it could not be read).
fn supervise(
    mut child: Child,
    input: &[u8],
    slow: impl FnOnce(),
) -> (Option<std::process::ExitStatus>, Vec<u8>) {
    let mut stdin = child.stdin.take();
    let mut outputs = [child.stdout.take().map(Pipe::Out), child.stderr.take().map(Pipe::Err)];
    for fd in stdin.iter().map(AsRawFd::as_raw_fd).chain(outputs.iter().flatten().map(Pipe::fd)) {
        set_nonblocking(fd);
    }
    let pidfd = pidfd_open(child.id());
    let mut exited = pidfd.is_none();
    let mut written = 0;
    let mut tail = Tail::default();
    let mut slow = Some(slow);
    #[allow(clippy::disallowed_methods)] // a script's run time is wall time
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        if written == input.len() {
            stdin = None; // EOF for the script
        }
        if exited && outputs.iter().all(Option::is_none) {
            break;
        }
        let mut fds = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 4];
        if let Some(s) = &stdin {
            fds[0] = libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
        }
        for (slot, out) in fds[1..3].iter_mut().zip(&outputs) {
            if let Some(o) = out {
                *slot = libc::pollfd { fd: o.fd(), events: libc::POLLIN, revents: 0 };
            }
        }
        if let (Some(fd), false) = (&pidfd, exited) {
            fds[3] = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        }
        let timeout = match slow {
            Some(_) => SLOW.saturating_sub(started.elapsed()).as_millis().max(1) as i32,
            None => -1,
        };
        // SAFETY: `fds` is a valid array of 4 pollfds; negative fds are ignored.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
        if started.elapsed() >= SLOW {
            if let Some(f) = slow.take() {
                f();
            }
        }
        if fds[0].revents != 0 {
            if let Some(s) = &mut stdin {
                match s.write(&input[written..]) {
                    Ok(k) => written += k,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => written = input.len(), // the script closed its stdin
                }
            }
        }
        for (i, out) in outputs.iter_mut().enumerate() {
            if fds[i + 1].revents == 0 {
                continue;
            }
            if let Some(o) = out {
                match o.read(&mut buf) {
                    Ok(0) => *out = None,
                    Ok(k) => tail.push(&buf[..k]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => *out = None,
                }
            }
        }
        if fds[3].revents != 0 {
            exited = true;
        }
    }
    drop(stdin);
    (child.wait().ok(), tail.bytes())
}

/// A script's stdout or stderr.
enum Pipe {
    Out(std::process::ChildStdout),
    Err(std::process::ChildStderr),
}

impl Pipe {
    fn fd(&self) -> std::os::fd::RawFd {
        match self {
            Pipe::Out(p) => p.as_raw_fd(),
            Pipe::Err(p) => p.as_raw_fd(),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Pipe::Out(p) => p.read(buf),
            Pipe::Err(p) => p.read(buf),
        }
    }
}

fn set_nonblocking(fd: std::os::fd::RawFd) {
    // SAFETY: `fd` is an open pipe end owned by the caller; F_GETFL/F_SETFL
    // only change its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// A pidfd for `pid` (Linux 5.3+): readable once the process exits. `None`
/// on older kernels, where [`supervise`] then waits for the exit after the
/// output pipes close.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as std::os::fd::RawFd) })
}

/// The last [`OUTPUT_TAIL`] bytes written.
#[derive(Default)]
struct Tail {
    buf: std::collections::VecDeque<u8>,
}

impl Tail {
    fn push(&mut self, b: &[u8]) {
        self.buf.extend(b);
        let excess = self.buf.len().saturating_sub(OUTPUT_TAIL);
        self.buf.drain(..excess);
    }
    fn bytes(&self) -> Vec<u8> {
        self.buf.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::proto::serf::MemberStatus;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn stdin_and_env_formats() {
        let mut tags = std::collections::BTreeMap::new();
        tags.insert("role".to_string(), "web".to_string());
        tags.insert("dc".to_string(), "east".to_string());
        let m = Member {
            name: Arc::from("nodeA"),
            addr: IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1)),
            port: 7946,
            tags: Arc::new(tags),
            status: MemberStatus::Alive,
            vsn: [1, 5, 2, 2, 5, 5],
        };
        let item = StreamItem::Members { event: "member-join", members: vec![m] };
        assert_eq!(stdin_for(&item), b"nodeA\t127.0.1.1\tweb\tdc=east,role=web\n");
        let u =
            StreamItem::User { ltime: 3, name: "d".into(), payload: b"x".to_vec(), coalesce: true };
        assert_eq!(stdin_for(&u), b"x\n");
        let u = StreamItem::User { ltime: 3, name: "d".into(), payload: vec![], coalesce: true };
        assert_eq!(stdin_for(&u), b"");
        assert_eq!(tag_env_name("my-tag.x"), "SERF_TAG_MY_TAG_X");
        assert_eq!(escape("a\tb\nc"), "a\\tb\\nc");
    }

    fn sh(script: &str) -> Child {
        Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    fn supervise_feeds_stdin_and_collects_both_outputs() {
        let (st, out) = supervise(sh("cat; echo err >&2; exit 3"), b"hello\n", || {});
        assert_eq!(st.and_then(|s| s.code()), Some(3));
        assert_eq!(out, b"hello\nerr\n");
    }

    #[test]
    fn supervise_survives_a_script_that_never_reads_and_floods() {
        // 1 MiB of stdin nobody reads, 4 MiB of output: bounded tail, no hang.
        let input = vec![b'x'; 1 << 20];
        let (st, out) =
            supervise(sh("head -c 4194304 /dev/zero | tr '\\0' y; echo end"), &input, || {});
        assert!(st.unwrap().success());
        assert_eq!(out.len(), OUTPUT_TAIL);
        assert!(out.ends_with(b"yyyend\n"));
    }

    #[test]
    fn supervise_reports_a_slow_script_once() {
        let mut calls = 0;
        #[allow(clippy::disallowed_methods)] // measures the script's wall time
        let t = std::time::Instant::now();
        let (st, out) = supervise(sh("exec >&- 2>&-; sleep 1.3"), b"", || calls += 1);
        assert!(st.unwrap().success());
        assert!(out.is_empty());
        assert_eq!(calls, 1);
        assert!(t.elapsed() >= Duration::from_millis(1300));
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut t = Tail::default();
        for _ in 0..100 {
            t.push(&[7u8; 1000]);
        }
        t.push(b"end");
        let b = t.bytes();
        assert_eq!(b.len(), OUTPUT_TAIL);
        assert!(b.ends_with(b"end"));
    }
}
