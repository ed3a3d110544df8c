//! The agent's log: Go's `log` line format (`2026/11/22 01:41:48 [INFO]
//! serf: ...`), a level filter for the console, a ring of the last 512
//! lines (all levels) that `monitor` replays, live monitor subscribers with
//! bounded buffers, and optional syslog.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::config::LogLevel;

/// Lines kept for monitors that attach later (Go keeps 512).
pub const RING_LINES: usize = 512;
/// Lines a slow monitor may fall behind before lines are dropped for it.
pub const MONITOR_BUFFER: usize = 512;

/// Severity of a line, ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Err,
}

impl Level {
    /// The tag inside the brackets.
    pub fn tag(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Err => "ERR",
        }
    }

    /// The level of a configured log level.
    pub fn of(l: LogLevel) -> Level {
        match l.name() {
            "TRACE" => Level::Trace,
            "DEBUG" => Level::Debug,
            "INFO" => Level::Info,
            "WARN" => Level::Warn,
            _ => Level::Err,
        }
    }

    /// Parses a level name, case-insensitive (`monitor -log-level`).
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_uppercase().as_str() {
            "TRACE" => Some(Level::Trace),
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARN" => Some(Level::Warn),
            "ERR" | "ERROR" => Some(Level::Err),
            _ => None,
        }
    }
}

impl From<engine::proto::serf::Level> for Level {
    fn from(l: engine::proto::serf::Level) -> Self {
        use engine::proto::serf::Level as L;
        match l {
            L::Debug => Level::Debug,
            L::Info => Level::Info,
            L::Warn => Level::Warn,
            L::Error => Level::Err,
        }
    }
}

struct Monitor {
    id: u64,
    level: Level,
    tx: Sender<String>,
}

struct Inner {
    level: Level,
    out: Box<dyn Write + Send>,
    ring: VecDeque<(Level, String)>,
    monitors: Vec<Monitor>,
    next_id: u64,
    syslog: bool,
    dropped: u64,
    /// Called (outside the lock) after a line reached a monitor's channel.
    notifier: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// The agent's logger; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Logger {
    inner: Arc<Mutex<Inner>>,
}

impl core::fmt::Debug for Logger {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Logger")
    }
}

/// Go's gsyslog facility names and their values.
fn syslog_facility(name: &str) -> Option<libc::c_int> {
    Some(match name.to_ascii_uppercase().as_str() {
        "KERN" => libc::LOG_KERN,
        "USER" => libc::LOG_USER,
        "MAIL" => libc::LOG_MAIL,
        "DAEMON" => libc::LOG_DAEMON,
        "AUTH" => libc::LOG_AUTH,
        "SYSLOG" => libc::LOG_SYSLOG,
        "LPR" => libc::LOG_LPR,
        "NEWS" => libc::LOG_NEWS,
        "UUCP" => libc::LOG_UUCP,
        "CRON" => libc::LOG_CRON,
        "AUTHPRIV" => libc::LOG_AUTHPRIV,
        "FTP" => libc::LOG_FTP,
        "LOCAL0" => libc::LOG_LOCAL0,
        "LOCAL1" => libc::LOG_LOCAL1,
        "LOCAL2" => libc::LOG_LOCAL2,
        "LOCAL3" => libc::LOG_LOCAL3,
        "LOCAL4" => libc::LOG_LOCAL4,
        "LOCAL5" => libc::LOG_LOCAL5,
        "LOCAL6" => libc::LOG_LOCAL6,
        "LOCAL7" => libc::LOG_LOCAL7,
        _ => return None,
    })
}

/// What the Go agent hands syslog for a log line: the priority from the
/// line's `[LEVEL]` tag (one step above the name: DEBUG is sent as
/// LOG_INFO, INFO as LOG_NOTICE; an untagged line as LOG_NOTICE) and the
/// text after `[LEVEL] ` (the date prefix is syslog's to add).
fn syslog_record(line: &str) -> (libc::c_int, &str) {
    let tagged = line.find('[').and_then(|x| {
        let y = line[x..].find(']')?;
        Some((&line[x + 1..x + y], line.get(x + y + 2..).unwrap_or("")))
    });
    let Some((level, rest)) = tagged else { return (libc::LOG_NOTICE, line) };
    let prio = match level {
        "TRACE" => libc::LOG_DEBUG,
        "DEBUG" => libc::LOG_INFO,
        "INFO" => libc::LOG_NOTICE,
        "WARN" => libc::LOG_WARNING,
        "ERR" => libc::LOG_ERR,
        "CRIT" => libc::LOG_CRIT,
        _ => libc::LOG_NOTICE,
    };
    (prio, rest)
}

/// Local wall-clock time as Go's default log prefix: `2006/01/02 15:04:05`.
pub fn timestamp() -> String {
    #[allow(clippy::disallowed_methods)] // the agent owns the wall clock
    let now = std::time::SystemTime::now();
    let secs = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let t = secs as libc::time_t;
    // SAFETY: `localtime_r` only writes into the `tm` we pass and reads `t`.
    let mut tm: libc::tm = unsafe { core::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return "1970/01/01 00:00:00".into();
    }
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

impl Logger {
    /// A logger writing lines at `level` or above to `out`, each indented by
    /// four spaces as the Go agent prints them.
    pub fn new(level: Level, out: Box<dyn Write + Send>) -> Self {
        Logger {
            inner: Arc::new(Mutex::new(Inner {
                level,
                out,
                ring: VecDeque::with_capacity(RING_LINES),
                monitors: Vec::new(),
                next_id: 0,
                syslog: false,
                dropped: 0,
                notifier: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Also send lines to syslog with `facility` (any of Go's gsyslog
    /// names, case-insensitive: `KERN`, `USER`, ..., `LOCAL0`–`LOCAL7`),
    /// tagged `serf[pid]` as the Go agent's lines are.
    pub fn enable_syslog(&self, facility: &str) -> Result<(), String> {
        let Some(fac) = syslog_facility(facility) else {
            return Err(format!("invalid syslog facility: {facility}"));
        };
        static IDENT: &[u8] = b"serf\0";
        // SAFETY: `IDENT` is a static NUL-terminated string; openlog keeps the pointer.
        unsafe { libc::openlog(IDENT.as_ptr().cast(), libc::LOG_PID, fac) };
        self.lock().syslog = true;
        Ok(())
    }

    /// Changes the console level (SIGHUP reload).
    pub fn set_level(&self, level: Level) {
        self.lock().level = level;
    }

    /// The console level.
    pub fn level(&self) -> Level {
        self.lock().level
    }

    /// Logs `text` from `component` at `level`.
    pub fn log(&self, level: Level, component: &str, text: &str) {
        let line = format!("{} [{}] {}: {}", timestamp(), level.tag(), component, text);
        self.line(level, line);
    }

    /// Logs an already formatted line (`YYYY/MM/DD ... [LEVEL] ...`).
    pub fn line(&self, level: Level, line: String) {
        let mut g = self.lock();
        if level >= g.level {
            let _ = writeln!(g.out, "    {line}");
            let _ = g.out.flush();
            if g.syslog {
                let (prio, message) = syslog_record(&line);
                if let Ok(c) = std::ffi::CString::new(message) {
                    // SAFETY: a valid NUL-terminated message and a constant "%s" format.
                    unsafe { libc::syslog(prio, c"%s".as_ptr(), c.as_ptr()) };
                }
            }
        }
        let mut dropped = 0;
        let mut delivered = false;
        g.monitors.retain(|m| {
            if level < m.level {
                return true;
            }
            match m.tx.try_send(line.clone()) {
                Ok(()) => {
                    delivered = true;
                    true
                }
                Err(TrySendError::Full(_)) => {
                    dropped += 1;
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
        g.dropped += dropped;
        if g.ring.len() == RING_LINES {
            g.ring.pop_front();
        }
        g.ring.push_back((level, line));
        let notify = if delivered { g.notifier.clone() } else { None };
        drop(g);
        if let Some(f) = notify {
            f();
        }
    }

    /// Registers a function called after a line is delivered to a monitor
    /// (the RPC server wakes its poll). It runs on the logging thread,
    /// outside the logger's lock, and must not log.
    pub fn set_notifier(&self, f: Arc<dyn Fn() + Send + Sync>) {
        self.lock().notifier = Some(f);
    }

    /// Attaches a monitor at `level`: the ring is replayed first (filtered),
    /// then new lines arrive. Returns an id for [`Logger::detach`].
    pub fn attach(&self, level: Level) -> (u64, Receiver<String>) {
        let (tx, rx) = crossbeam_channel::bounded(MONITOR_BUFFER);
        let mut g = self.lock();
        for (l, line) in &g.ring {
            if *l >= level {
                let _ = tx.try_send(line.clone());
            }
        }
        g.next_id += 1;
        let id = g.next_id;
        g.monitors.push(Monitor { id, level, tx });
        (id, rx)
    }

    /// Detaches a monitor.
    pub fn detach(&self, id: u64) {
        self.lock().monitors.retain(|m| m.id != id);
    }

    /// Lines dropped because a monitor was too slow.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

/// A `Write` that appends to a shared buffer (tests).
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_records_as_go_sends_them() {
        let line = "2026/12/07 10:00:00 [INFO] agent: Serf agent starting";
        assert_eq!(syslog_record(line), (libc::LOG_NOTICE, "agent: Serf agent starting"));
        assert_eq!(syslog_record("d [DEBUG] memberlist: x").0, libc::LOG_INFO);
        assert_eq!(syslog_record("d [TRACE] memberlist: x").0, libc::LOG_DEBUG);
        assert_eq!(syslog_record("d [WARN] serf: x"), (libc::LOG_WARNING, "serf: x"));
        assert_eq!(syslog_record("d [ERR] agent: x").0, libc::LOG_ERR);
        assert_eq!(syslog_record("no tag at all"), (libc::LOG_NOTICE, "no tag at all"));
        assert_eq!(syslog_record("d [ODD] x"), (libc::LOG_NOTICE, "x"));
        assert_eq!(syslog_record("d [INFO]"), (libc::LOG_NOTICE, ""));
        for f in ["kern", "AUTHPRIV", "ftp", "Local7", "DAEMON", "user", "cron"] {
            assert!(syslog_facility(f).is_some(), "{f}");
        }
        assert_eq!(syslog_facility("LOCAL8"), None);
    }

    #[test]
    fn console_filters_monitors_replay_all_levels() {
        let buf = Captured::default();
        let log = Logger::new(Level::Info, Box::new(buf.clone()));
        log.log(Level::Debug, "serf", "quiet");
        log.log(Level::Info, "agent", "Serf agent starting");
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("quiet"));
        let line = out.lines().next().unwrap();
        assert!(
            line.starts_with("    20") && line.ends_with(" [INFO] agent: Serf agent starting"),
            "{line}"
        );
        assert_eq!(line.len(), 4 + 19 + " [INFO] agent: Serf agent starting".len());
        // A debug monitor sees both from the ring, an info one only the second.
        let (_, debug) = log.attach(Level::Debug);
        let (id, info) = log.attach(Level::Info);
        assert_eq!(debug.try_iter().count(), 2);
        assert_eq!(info.try_iter().count(), 1);
        log.log(Level::Warn, "serf", "x");
        assert_eq!(info.try_iter().count(), 1);
        log.detach(id);
        log.log(Level::Warn, "serf", "y");
        assert!(info.try_recv().is_err());
    }

    #[test]
    fn the_notifier_runs_when_a_monitor_gets_a_line() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let log = Logger::new(Level::Err, Box::new(std::io::sink()));
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        log.set_notifier(Arc::new(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        }));
        log.log(Level::Info, "t", "nobody listens");
        assert_eq!(n.load(Ordering::SeqCst), 0);
        let (_, rx) = log.attach(Level::Warn);
        log.log(Level::Info, "t", "below the monitor's level");
        assert_eq!(n.load(Ordering::SeqCst), 0);
        log.log(Level::Warn, "t", "seen");
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert_eq!(rx.try_iter().count(), 1);
    }

    #[test]
    fn a_slow_monitor_loses_lines_not_memory() {
        let log = Logger::new(Level::Err, Box::new(std::io::sink()));
        let (_, rx) = log.attach(Level::Info);
        for i in 0..2000 {
            log.log(Level::Info, "t", &i.to_string());
        }
        assert_eq!(rx.len(), MONITOR_BUFFER);
        assert!(log.dropped() >= 2000 - MONITOR_BUFFER as u64);
        assert_eq!(Level::parse("err"), Some(Level::Err));
        assert_eq!(Level::parse("bogus"), None);
    }
}
