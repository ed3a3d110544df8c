//! The `serf` subcommands (`shared/protocol/cli.md` §3) and what they share:
//! the command table, Go-style flag handling, the RPC flags and their
//! environment defaults, the Ctrl-C flag, and the output sink.
//!
//! Like Go's `cli.BasicUi{Writer: os.Stdout}`, a command prints its normal
//! output *and* its error messages on stdout; only flag-parse errors go to
//! stderr (followed by the usage text on stdout, exit 1).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::go::flag::{FlagError, FlagSet, Parsed};
use crate::rpc::codec::Tags;
use crate::rpc::Client;

pub mod agent;
pub mod event;
pub mod force_leave;
pub mod info;
pub mod join;
pub mod keygen;
pub mod keys;
pub mod leave;
pub mod members;
pub mod monitor;
pub mod query;
pub mod reachability;
pub mod rtt;
pub mod tags;
pub mod version;

/// Where a command writes: Go's UI writes everything to stdout.
pub struct Ui<'a> {
    out: &'a mut dyn Write,
}

impl<'a> Ui<'a> {
    /// A UI writing to `out`.
    pub fn new(out: &'a mut dyn Write) -> Self {
        Ui { out }
    }

    /// `Ui.Output`: the message and a newline. Write errors are ignored, as Go does.
    pub fn output(&mut self, msg: &str) {
        self.output_bytes(msg.as_bytes());
    }

    /// `Ui.Output` of bytes that need not be UTF-8 (payloads).
    pub fn output_bytes(&mut self, msg: &[u8]) {
        let _ = self.out.write_all(msg);
        let _ = self.out.write_all(b"\n");
        let _ = self.out.flush();
    }

    /// `Ui.Error`: same stream as output.
    pub fn error(&mut self, msg: &str) {
        self.output(msg);
    }

    /// `Ui.Info`: same stream as output.
    pub fn info(&mut self, msg: &str) {
        self.output(msg);
    }
}

/// One subcommand.
pub struct Spec {
    /// The name on the command line.
    pub name: &'static str,
    /// The help text (`Help()`), without a final newline.
    pub help: &'static str,
    /// Runs the command with the arguments after its name; returns the exit code.
    pub run: fn(&[String], &mut Ui<'_>) -> i32,
}

/// Strips the single newline the capture files end with.
const fn help(text: &'static str) -> &'static str {
    match text.as_bytes().split_last() {
        Some((b'\n', rest)) => match core::str::from_utf8(rest) {
            Ok(s) => s,
            Err(_) => text,
        },
        _ => text,
    }
}

/// The Go binary's help texts, captured by `scripts/capture-cli-help.sh`.
pub mod texts {
    use super::help;
    /// `serf agent -h`: Go's text, then our own flags in a block of their own.
    pub const AGENT: &str =
        help(concat!(include_str!("help/agent.txt"), include_str!("help/agent-extensions.txt")));
    /// The block of `serf agent -h` that Go's text does not have.
    pub const AGENT_EXTENSIONS: &str = include_str!("help/agent-extensions.txt");
    /// `serf event -h`.
    pub const EVENT: &str = help(include_str!("help/event.txt"));
    /// `serf force-leave -h`.
    pub const FORCE_LEAVE: &str = help(include_str!("help/force-leave.txt"));
    /// `serf info -h`.
    pub const INFO: &str = help(include_str!("help/info.txt"));
    /// `serf join -h`.
    pub const JOIN: &str = help(include_str!("help/join.txt"));
    /// `serf keygen -h`.
    pub const KEYGEN: &str = help(include_str!("help/keygen.txt"));
    /// `serf keys -h`.
    pub const KEYS: &str = help(include_str!("help/keys.txt"));
    /// `serf leave -h`.
    pub const LEAVE: &str = help(include_str!("help/leave.txt"));
    /// `serf members -h`.
    pub const MEMBERS: &str = help(include_str!("help/members.txt"));
    /// `serf monitor -h`.
    pub const MONITOR: &str = help(include_str!("help/monitor.txt"));
    /// `serf query -h`.
    pub const QUERY: &str = help(include_str!("help/query.txt"));
    /// `serf reachability -h`.
    pub const REACHABILITY: &str = help(include_str!("help/reachability.txt"));
    /// `serf rtt -h`.
    pub const RTT: &str = help(include_str!("help/rtt.txt"));
    /// `serf tags -h`.
    pub const TAGS: &str = help(include_str!("help/tags.txt"));
    /// `serf version -h` (empty).
    pub const VERSION: &str = help(include_str!("help/version.txt"));
    /// What `serf` alone prints on stderr: usage and command list.
    pub const COMMAND_LIST: &str = include_str!("help/commands.txt");
}

/// Every subcommand, in the order of the command list.
pub const COMMANDS: &[Spec] = &[
    Spec { name: "agent", help: texts::AGENT, run: agent::run },
    Spec { name: "event", help: texts::EVENT, run: event::run },
    Spec { name: "force-leave", help: texts::FORCE_LEAVE, run: force_leave::run },
    Spec { name: "info", help: texts::INFO, run: info::run },
    Spec { name: "join", help: texts::JOIN, run: join::run },
    Spec { name: "keygen", help: texts::KEYGEN, run: keygen::run },
    Spec { name: "keys", help: texts::KEYS, run: keys::run },
    Spec { name: "leave", help: texts::LEAVE, run: leave::run },
    Spec { name: "members", help: texts::MEMBERS, run: members::run },
    Spec { name: "monitor", help: texts::MONITOR, run: monitor::run },
    Spec { name: "query", help: texts::QUERY, run: query::run },
    Spec { name: "reachability", help: texts::REACHABILITY, run: reachability::run },
    Spec { name: "rtt", help: texts::RTT, run: rtt::run },
    Spec { name: "tags", help: texts::TAGS, run: tags::run },
    Spec { name: "version", help: texts::VERSION, run: version::run },
];

/// The subcommand called `name`.
pub fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// Adds `-rpc-addr` (default `$SERF_RPC_ADDR`, else `127.0.0.1:7373`) and
/// `-rpc-auth` (default `$SERF_RPC_AUTH`).
pub fn rpc_flags(fs: &mut FlagSet) {
    let addr = std::env::var("SERF_RPC_ADDR").ok().filter(|s| !s.is_empty());
    let auth = std::env::var("SERF_RPC_AUTH").unwrap_or_default();
    fs.string("rpc-addr", addr.as_deref().unwrap_or("127.0.0.1:7373"));
    fs.string("rpc-auth", &auth);
}

/// Parses flags the way every Go subcommand does; on failure prints Go's
/// message on stderr (none for `-h`) and the usage on stdout, and returns
/// `None` (the command then exits 1).
pub fn parse_flags(fs: &FlagSet, args: &[String], help: &str, ui: &mut Ui<'_>) -> Option<Parsed> {
    match fs.parse(args) {
        Ok(p) => Some(p),
        Err(FlagError::Help) => {
            ui.output(help);
            None
        }
        Err(FlagError::Invalid(msg)) => {
            eprintln!("{msg}");
            ui.output(help);
            None
        }
    }
}

/// Connects with the parsed `-rpc-addr`/`-rpc-auth`, printing Go's error.
pub fn connect(p: &Parsed, ui: &mut Ui<'_>) -> Option<Client> {
    match Client::connect(p.str("rpc-addr"), p.str("rpc-auth")) {
        Ok(c) => Some(c),
        Err(e) => {
            ui.error(&format!("Error connecting to Serf agent: {e}"));
            None
        }
    }
}

/// Serf's `UnmarshalTags`: `key=value` pairs (split at the first `=`, key
/// non-empty) into a map; a later duplicate key wins. The error is
/// `Invalid tag: '<tag>'`.
pub fn unmarshal_tags(pairs: &[String]) -> Result<Tags, String> {
    let mut out: Tags = Vec::new();
    for tag in pairs {
        match tag.split_once('=') {
            Some((k, v)) if !k.is_empty() => match out.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => out.push((k.to_string(), v.to_string())),
            },
            _ => return Err(format!("Invalid tag: '{tag}'")),
        }
    }
    Ok(out)
}

/// Go's `strings.TrimSpace`.
pub fn trim_space(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace())
}

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Catches SIGINT for the whole process, as the Go CLI does for every
/// command: Ctrl-C no longer kills it; commands that watch for it
/// (`monitor`, `query`, `reachability`) check [`interrupted`], the others
/// carry on.
pub fn catch_interrupts() {
    let flag = INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    // Registering only fails for a forbidden signal, which SIGINT is not.
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(flag));
}

/// Whether SIGINT arrived since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_like_go() {
        let t = unmarshal_tags(&["a=b".into(), "c=d=e".into(), "a=z".into(), "e=".into()]).unwrap();
        assert_eq!(
            t,
            vec![("a".into(), "z".into()), ("c".into(), "d=e".into()), ("e".into(), String::new())]
        );
        assert_eq!(unmarshal_tags(&["foo".into()]), Err("Invalid tag: 'foo'".into()));
        assert_eq!(unmarshal_tags(&["=x".into()]), Err("Invalid tag: '=x'".into()));
    }

    #[test]
    fn help_texts_are_the_captured_ones() {
        assert!(texts::MEMBERS.starts_with("Usage: serf members [options]"));
        assert!(texts::MEMBERS.ends_with("RPC auth token of the Serf agent."));
        assert_eq!(texts::VERSION, "");
        assert!(texts::COMMAND_LIST.ends_with("Prints the Serf version\n\n"));
        assert_eq!(COMMANDS.len(), 15);
        assert!(find("force-leave").is_some() && find("bogus").is_none());
    }
}
