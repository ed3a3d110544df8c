//! Event handlers (`protocol/serf.md` §13): `[filter=]command` scripts run
//! through `/bin/sh -c`, one at a time in event order, on their own thread
//! (never the engine's or the dispatcher's), with Go's environment and
//! stdin. A query handler that exits 0 with output answers the query.
//!
//! Bounds: the backlog holds [`BACKLOG`] events (beyond it events are
//! dropped with a log line); each script's combined stdout+stderr keeps
//! only its last [`OUTPUT_TAIL`] bytes, so a flooding script costs a pipe
//! read loop, not memory. A script running longer than a second is logged
//! once; like Go, it is not killed.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use engine::proto::serf::{Member, RespondError, Serf};
use engine::runtime::InstanceHandle;

use super::log::{Level, Logger};
use super::{matches, StreamItem};
use crate::config::EventScript;

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
    ) -> Option<Runner> {
        let (tx, rx) = crossbeam_channel::bounded(BACKLOG);
        let worker = Worker {
            rx,
            scripts: scripts.clone(),
            logger: logger.clone(),
            serf,
            name: name.to_string(),
        };
        let thread = std::thread::Builder::new()
            .name("agent-handlers".into())
            .spawn(move || worker.run())
            .ok()?;
        Some(Runner { tx, scripts, logger: logger.clone(), thread: Some(thread) })
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

    fn invoke(
        &self,
        script: &EventScript,
        item: &StreamItem,
        tags: &std::collections::BTreeMap<String, String>,
    ) {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(&script.script);
        let event = match item {
            StreamItem::Members { event, .. } => *event,
            StreamItem::User { .. } => "user",
            StreamItem::Query { .. } => "query",
        };
        cmd.env("SERF_EVENT", event);
        cmd.env("SERF_SELF_NAME", &self.name);
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
        let mut child = match cmd.spawn() {
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
        // Feed stdin on its own thread so a script that never reads cannot block us.
        let input = stdin_for(item);
        let stdin = child.stdin.take();
        let feeder = std::thread::spawn(move || {
            if let Some(mut s) = stdin {
                let _ = s.write_all(&input);
            }
        });
        // stdout and stderr share one bounded tail.
        let tail = Arc::new(Mutex::new(Tail::default()));
        let readers: Vec<_> = [
            child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>),
            child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|mut r| {
            let tail = tail.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    tail.lock().unwrap_or_else(|e| e.into_inner()).push(&buf[..n]);
                }
            })
        })
        .collect();
        let mut warned = false;
        let mut waited = Duration::ZERO;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) => {}
                Err(_) => break None,
            }
            std::thread::sleep(Duration::from_millis(10));
            waited += Duration::from_millis(10);
            if waited >= SLOW && !warned {
                warned = true;
                self.logger.log(
                    Level::Warn,
                    "agent",
                    &format!("Script '{}' slow, execution exceeding {:?}", script.script, SLOW),
                );
            }
        };
        let _ = feeder.join();
        for r in readers {
            let _ = r.join();
        }
        let output = tail.lock().unwrap_or_else(|e| e.into_inner()).bytes();
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
                let id = *id;
                let r = self.serf.call(move |s, now| s.respond(now, id, &output));
                // Go words it through the query's own `Respond` (which
                // prefixes every failure) and prints the event as
                // `query: <name>`. A query we no longer hold has passed its
                // deadline.
                let why = match r {
                    Ok(Err(RespondError::Failed(e))) => Some(e),
                    Ok(Err(RespondError::NoSuchQuery)) => {
                        Some("response is past the deadline".to_string())
                    }
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
    }
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
