//! Snapshots (`protocol/serf.md` §12): Go's text format, replayed at start
//! (rejoin known nodes, do not re-deliver old events) and appended as the
//! cluster changes.
//!
//! Writes leave the event pipeline through a bounded channel to a writer
//! thread that owns the file: it flushes at most every 500 ms, fsyncs on
//! leave and close, and compacts the file when it outgrows
//! `max(128 KiB, 2 × 128 B × alive nodes)`. If the writer falls behind by
//! [`WRITE_BACKLOG`] lines, lines are dropped and counted rather than
//! stalling events.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use engine::proto::serf::{Member, MemberEventKind, Restore};

use super::log::{Level, Logger};

/// Lines buffered for the writer thread.
pub const WRITE_BACKLOG: usize = 1024;
/// Smallest size at which the file is compacted.
const MIN_COMPACT_SIZE: u64 = 128 * 1024;
/// Bytes per alive node budgeted before compaction.
const BYTES_PER_NODE: u64 = 128;
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// The state a snapshot file describes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Alive nodes, name → address.
    pub alive: BTreeMap<String, SocketAddr>,
    pub clock: u64,
    pub event_clock: u64,
    pub query_clock: u64,
    /// Lines that were not understood.
    pub unrecognized: Vec<String>,
}

/// Replays snapshot text (§12). A `leave` clears alive nodes and clocks
/// unless `rejoin_after_leave`.
pub fn replay(text: &str, rejoin_after_leave: bool) -> Replayed {
    let mut r = Replayed::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("alive: ") {
            let Some((name, addr)) = rest.rsplit_once(' ') else {
                r.unrecognized.push(line.to_string());
                continue;
            };
            match addr.parse::<SocketAddr>() {
                Ok(a) => {
                    r.alive.insert(name.to_string(), a);
                }
                Err(_) => r.unrecognized.push(line.to_string()),
            }
        } else if let Some(name) = line.strip_prefix("not-alive: ") {
            r.alive.remove(name);
        } else if let Some(v) = line.strip_prefix("clock: ") {
            r.clock = v.trim().parse().unwrap_or(r.clock);
        } else if let Some(v) = line.strip_prefix("event-clock: ") {
            r.event_clock = v.trim().parse().unwrap_or(r.event_clock);
        } else if let Some(v) = line.strip_prefix("query-clock: ") {
            r.query_clock = v.trim().parse().unwrap_or(r.query_clock);
        } else if line == "leave" {
            if !rejoin_after_leave {
                r.alive.clear();
                r.clock = 0;
                r.event_clock = 0;
                r.query_clock = 0;
            }
        } else if line.starts_with('#') || line.starts_with("coordinate: ") || line.is_empty() {
        } else {
            r.unrecognized.push(line.to_string());
        }
    }
    r
}

enum Msg {
    Line(String),
    /// Flush now (and fsync when true).
    Sync(bool),
}

/// Records cluster changes to the snapshot file.
pub struct Snapshotter {
    replayed: Replayed,
    tx: Sender<Msg>,
    writer: Option<JoinHandle<()>>,
    logger: Logger,
    alive: BTreeMap<String, SocketAddr>,
    last_clock: u64,
    last_event_clock: u64,
    last_query_clock: u64,
    leaving: bool,
    dropped: u64,
}

impl Snapshotter {
    /// Opens (creating if needed) and replays the snapshot at `path`.
    pub fn open(
        path: &Path,
        rejoin_after_leave: bool,
        logger: &Logger,
    ) -> Result<Snapshotter, String> {
        let shown = path.display().to_string();
        let file =
            OpenOptions::new().create(true).append(true).read(true).open(path).map_err(|e| {
                format!("failed to open snapshot: {}", gonet::path_error("open", &shown, &e))
            })?;
        let mut text = String::new();
        for line in BufReader::new(&file).lines() {
            match line {
                Ok(l) => {
                    text.push_str(&l);
                    text.push('\n');
                }
                Err(e) => {
                    return Err(format!(
                        "failed to read snapshot: {}",
                        gonet::path_error("read", &shown, &e)
                    ))
                }
            }
        }
        if rejoin_after_leave && text.lines().any(|l| l == "leave") {
            logger.log(Level::Info, "serf", "Ignoring previous leave in snapshot");
        }
        let replayed = replay(&text, rejoin_after_leave);
        for l in &replayed.unrecognized {
            logger.log(Level::Warn, "serf", &format!("Unrecognized snapshot line: {l}"));
        }
        let (tx, rx) = crossbeam_channel::bounded(WRITE_BACKLOG);
        let alive = replayed.alive.clone();
        let w = Writer {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            logger: logger.clone(),
            alive: alive.clone(),
            clocks: (replayed.clock, replayed.event_clock, replayed.query_clock),
            size: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            dirty: false,
        };
        let writer = std::thread::Builder::new()
            .name("agent-snapshot".into())
            .spawn(move || w.run(rx))
            .map_err(|e| format!("failed to start snapshot writer: {e}"))?;
        Ok(Snapshotter {
            last_clock: replayed.clock,
            last_event_clock: replayed.event_clock,
            last_query_clock: replayed.query_clock,
            replayed,
            tx,
            writer: Some(writer),
            logger: logger.clone(),
            alive,
            leaving: false,
            dropped: 0,
        })
    }

    /// What the engine restores from: clocks and nodes to rejoin.
    pub fn restore(&self) -> Restore {
        Restore {
            clock: self.replayed.clock,
            event_clock: self.replayed.event_clock,
            query_clock: self.replayed.query_clock,
            alive: self.replayed.alive.iter().map(|(n, a)| (n.clone(), *a)).collect(),
        }
    }

    fn send(&mut self, m: Msg) {
        match self.tx.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                if self.dropped.is_power_of_two() {
                    self.logger.log(
                        Level::Warn,
                        "serf",
                        "Snapshot writer is behind, dropping records",
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// A member event.
    pub fn member(&mut self, kind: MemberEventKind, m: &Member) {
        if self.leaving {
            return;
        }
        match kind {
            MemberEventKind::Join => {
                let addr = m.socket_addr();
                self.alive.insert(m.name.to_string(), addr);
                self.send(Msg::Line(format!("alive: {} {}\n", m.name, addr)));
            }
            MemberEventKind::Leave | MemberEventKind::Failed => {
                self.alive.remove(&*m.name);
                self.send(Msg::Line(format!("not-alive: {}\n", m.name)));
            }
            MemberEventKind::Update | MemberEventKind::Reap => {}
        }
    }

    /// The member clock now; records `clock - 1` when it advanced.
    pub fn clock(&mut self, clock: u64) {
        let last = clock.saturating_sub(1);
        if last > self.last_clock {
            self.last_clock = last;
            self.send(Msg::Line(format!("clock: {last}\n")));
        }
    }

    /// A user event was seen at `ltime`.
    pub fn event_clock(&mut self, ltime: u64) {
        if !self.leaving && ltime > self.last_event_clock {
            self.last_event_clock = ltime;
            self.send(Msg::Line(format!("event-clock: {ltime}\n")));
        }
    }

    /// A query was seen at `ltime`.
    pub fn query_clock(&mut self, ltime: u64) {
        if !self.leaving && ltime > self.last_query_clock {
            self.last_query_clock = ltime;
            self.send(Msg::Line(format!("query-clock: {ltime}\n")));
        }
    }

    /// Our graceful leave: record it and stop recording events.
    pub fn leave(&mut self) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        self.send(Msg::Line("leave\n".to_string()));
        self.send(Msg::Sync(true));
    }

    /// Flushes buffered lines (without fsync).
    pub fn flush(&mut self) {
        self.send(Msg::Sync(false));
    }

    /// Flushes, fsyncs and stops the writer.
    pub fn close(mut self) {
        let _ = self.tx.send(Msg::Sync(true));
        let (tx, _) = crossbeam_channel::bounded(1);
        drop(core::mem::replace(&mut self.tx, tx));
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    logger: Logger,
    alive: BTreeMap<String, SocketAddr>,
    clocks: (u64, u64, u64),
    size: u64,
    dirty: bool,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            match rx.recv_timeout(FLUSH_INTERVAL) {
                Ok(Msg::Line(l)) => self.write(&l),
                Ok(Msg::Sync(fsync)) => self.sync(fsync),
                Err(RecvTimeoutError::Timeout) => self.sync(false),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.sync(true);
    }

    fn write(&mut self, line: &str) {
        self.track(line);
        if let Err(e) = self.out.write_all(line.as_bytes()) {
            self.logger.log(Level::Err, "serf", &format!("Failed to write to snapshot: {e}"));
            return;
        }
        self.size += line.len() as u64;
        self.dirty = true;
        let limit = MIN_COMPACT_SIZE.max(2 * BYTES_PER_NODE * self.alive.len() as u64);
        if self.size > limit {
            if let Err(e) = self.compact() {
                self.logger.log(Level::Err, "serf", &format!("Failed to compact snapshot: {e}"));
            }
        }
    }

    /// Mirrors what the file describes, for compaction.
    fn track(&mut self, line: &str) {
        let r = replay(line, true);
        if let Some(rest) = line.strip_prefix("not-alive: ") {
            self.alive.remove(rest.trim_end());
        }
        self.alive.extend(r.alive);
        if r.clock > 0 {
            self.clocks.0 = r.clock;
        }
        if r.event_clock > 0 {
            self.clocks.1 = r.event_clock;
        }
        if r.query_clock > 0 {
            self.clocks.2 = r.query_clock;
        }
    }

    fn sync(&mut self, fsync: bool) {
        if self.dirty {
            if let Err(e) = self.out.flush() {
                self.logger.log(Level::Err, "serf", &format!("Failed to flush snapshot: {e}"));
            }
            self.dirty = false;
        }
        if fsync {
            let _ = self.out.get_ref().sync_all();
        }
    }

    /// Rewrites the file with only what it describes now.
    fn compact(&mut self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("compact");
        let mut text = String::new();
        for (name, addr) in &self.alive {
            text.push_str(&format!("alive: {name} {addr}\n"));
        }
        text.push_str(&format!("clock: {}\n", self.clocks.0));
        text.push_str(&format!("event-clock: {}\n", self.clocks.1));
        text.push_str(&format!("query-clock: {}\n", self.clocks.2));
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        self.out.flush()?;
        std::fs::rename(&tmp, &self.path)?;
        let file = OpenOptions::new().append(true).open(&self.path)?;
        self.out = BufWriter::new(file);
        self.size = text.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_follows_go_rules() {
        let text = "alive: n1 127.0.1.1:7946\nalive: node with space 127.0.1.2:7946\nclock: 4\n\
                    event-clock: 9\nquery-clock: 3\nnot-alive: n1\n# comment\ncoordinate: x\nbogus\n";
        let r = replay(text, false);
        assert_eq!(r.alive.keys().collect::<Vec<_>>(), ["node with space"]);
        assert_eq!((r.clock, r.event_clock, r.query_clock), (4, 9, 3));
        assert_eq!(r.unrecognized, ["bogus"]);
        let left = format!("{text}leave\nclock: 5\n");
        let r = replay(&left, false);
        assert!(r.alive.is_empty());
        assert_eq!((r.clock, r.event_clock, r.query_clock), (5, 0, 0));
        let r = replay(&left, true);
        assert_eq!(r.alive.len(), 1);
        assert_eq!(r.event_clock, 9);
    }

    #[test]
    fn records_round_trip_through_the_file() {
        let dir = std::env::temp_dir().join(format!("serf-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("snap");
        let log = Logger::new(Level::Err, Box::new(std::io::sink()));
        let mut s = Snapshotter::open(&path, false, &log).unwrap();
        let m = Member {
            name: "a".into(),
            addr: "127.0.0.5".parse().unwrap(),
            port: 7946,
            tags: Default::default(),
            status: engine::proto::serf::MemberStatus::Alive,
            vsn: [1, 5, 2, 2, 5, 5],
        };
        s.member(MemberEventKind::Join, &m);
        s.clock(6);
        s.event_clock(3);
        s.event_clock(2);
        s.query_clock(1);
        s.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "alive: a 127.0.0.5:7946\nclock: 5\nevent-clock: 3\nquery-clock: 1\n");
        let s = Snapshotter::open(&path, false, &log).unwrap();
        let r = s.restore();
        assert_eq!((r.clock, r.event_clock, r.query_clock), (5, 3, 1));
        assert_eq!(r.alive, vec![("a".to_string(), "127.0.0.5:7946".parse().unwrap())]);
        s.close();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
