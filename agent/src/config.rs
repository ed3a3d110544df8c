//! The `serf agent` configuration (`shared/protocol/cli.md` §2): command-line
//! flags, JSON config files and directories, Go's merge rules, defaults and
//! validation, with the Go agent's messages.
//!
//! Loading happens in the Go agent's stages, so that errors and warnings come
//! out in the same order and with the same words:
//!
//! 1. [`read_config`] — everything the Go agent checks *before* it prints
//!    `==> Starting Serf agent...`: flags, `-tag` syntax, durations, config
//!    files, merge, node name, event handler specs, interface, the deprecated
//!    role, minimum intervals, log level, syslog, bind/advertise addresses,
//!    encryption key encoding and profile. The result is a typed
//!    [`AgentConfig`] plus the `==> ` notices printed on the way.
//! 2. [`prepare_start`] — what fails *after* that line: the tags file
//!    against configured tags, the keyring file against `-encrypt`, loading
//!    both files, and Serf's own limits (protocol range, user event size
//!    limit, key size). It returns the tags and keys the runtime starts with.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::go::base64::decode_std;
use crate::go::flag::{FlagError, FlagSet};
use crate::go::json::{self, JValue};
use crate::go::net as gonet;
use crate::go::time::{format_duration, parse_duration};

/// Port used when `-bind`/`-advertise` has none.
pub const DEFAULT_BIND_PORT: u16 = 7946;
/// Serf protocol versions this agent speaks.
pub const PROTOCOL_MIN: u8 = 2;
/// Newest Serf protocol (the default).
pub const PROTOCOL_MAX: u8 = 5;
/// Serf's hard cap on `user_event_size_limit`.
pub const USER_EVENT_SIZE_LIMIT_MAX: i64 = 9216;
/// Lower bound applied to `retry_interval` (with a warning).
pub const MIN_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Lower bound applied to `broadcast_timeout` (with a warning).
pub const MIN_BROADCAST_TIMEOUT: Duration = Duration::from_secs(1);
/// Port of `-http-addr` when none is given (Consul's HTTP port).
pub const DEFAULT_HTTP_PORT: u16 = 8500;
/// Port of `-dns-addr` when none is given (Consul's DNS port).
pub const DEFAULT_DNS_PORT: u16 = 8600;
/// The DNS domain when `-domain` is not given.
pub const DEFAULT_DOMAIN: &str = "consul.";
/// The datacenter name when `datacenter` is not configured.
pub const DEFAULT_DATACENTER: &str = "dc1";
/// Largest `dns_ttl` (DNS TTLs are 32-bit seconds; a day is plenty).
pub const MAX_DNS_TTL: Duration = Duration::from_secs(24 * 3600);

/// Log levels in increasing severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `TRACE`
    Trace,
    /// `DEBUG`
    Debug,
    /// `INFO` (default)
    Info,
    /// `WARN`
    Warn,
    /// `ERR`
    Err,
}

impl LogLevel {
    /// Parses a level case-insensitively (`debug`, `WARN`, ...).
    pub fn parse(s: &str) -> Option<LogLevel> {
        match s.to_ascii_uppercase().as_str() {
            "TRACE" => Some(LogLevel::Trace),
            "DEBUG" => Some(LogLevel::Debug),
            "INFO" => Some(LogLevel::Info),
            "WARN" => Some(LogLevel::Warn),
            "ERR" => Some(LogLevel::Err),
            _ => None,
        }
    }

    /// The upper-case name as it appears in log lines.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Err => "ERR",
        }
    }
}

/// memberlist timing profile (memberlist.md §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `lan` (default).
    Lan,
    /// `wan`.
    Wan,
    /// `local`.
    Local,
}

impl Profile {
    /// The name as configured and as printed in the startup banner.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Lan => "lan",
            Profile::Wan => "wan",
            Profile::Local => "local",
        }
    }
}

/// Which events an event handler (or an RPC stream) receives
/// (`shared/protocol/serf.md` §13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFilter {
    /// `member-join`, `member-leave`, `member-failed`, `member-update`,
    /// `member-reap`, `user`, `query` or `*`.
    pub event: String,
    /// For `user:<name>` / `query:<name>`: the name; empty matches all.
    pub name: String,
}

impl EventFilter {
    /// Whether the event type is one Serf knows.
    pub fn is_valid(&self) -> bool {
        matches!(
            self.event.as_str(),
            "member-join"
                | "member-leave"
                | "member-failed"
                | "member-update"
                | "member-reap"
                | "user"
                | "query"
                | "*"
        )
    }
}

/// Parses a filter list such as `member-join,user:deploy` (`""` = `*`).
pub fn parse_event_filter(spec: &str) -> Vec<EventFilter> {
    let spec = if spec.is_empty() { "*" } else { spec };
    spec.split(',')
        .map(|ev| {
            if let Some(name) = ev.strip_prefix("user:") {
                EventFilter { event: "user".into(), name: name.into() }
            } else if let Some(name) = ev.strip_prefix("query:") {
                EventFilter { event: "query".into(), name: name.into() }
            } else {
                EventFilter { event: ev.into(), name: String::new() }
            }
        })
        .collect()
}

/// One handler: a filter and the command run through `/bin/sh -c`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventScript {
    /// Which events.
    pub filter: EventFilter,
    /// The shell command.
    pub script: String,
}

impl EventScript {
    /// Parses `[filter=]command` (split at the first `=`) into one script
    /// per filter entry.
    pub fn parse(spec: &str) -> Vec<EventScript> {
        let (filter, script) = match spec.split_once('=') {
            Some((f, s)) => (f, s),
            None => ("", spec),
        };
        parse_event_filter(filter)
            .into_iter()
            .map(|filter| EventScript { filter, script: script.to_string() })
            .collect()
    }

    /// The `stats` key of this handler: `<event>:<name>`.
    pub fn stats_key(&self) -> String {
        format!("{}:{}", self.filter.event, self.filter.name)
    }
}

impl std::fmt::Display for EventScript {
    /// `Event 'user:deploy' invoking 'deploy.sh'`, as in Go's error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.filter.name.is_empty() {
            write!(f, "Event '{}' invoking '{}'", self.filter.event, self.script)
        } else {
            write!(
                f,
                "Event '{}:{}' invoking '{}'",
                self.filter.event, self.filter.name, self.script
            )
        }
    }
}

/// The validated agent configuration the runtime starts from.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// Node name (default: the host name).
    pub node_name: String,
    /// Tags, including `role` when the deprecated `-role` was used.
    pub tags: BTreeMap<String, String>,
    /// Where tags are persisted (`-tags-file`).
    pub tags_file: Option<PathBuf>,
    /// The gossip bind address (port 7946 unless given); `-iface` may have
    /// picked the IP.
    pub bind: SocketAddr,
    /// The configured `bind` string (for messages).
    pub bind_raw: String,
    /// `-iface`.
    pub interface: Option<String>,
    /// The advertised address, if configured.
    pub advertise: Option<SocketAddr>,
    /// The decoded `-encrypt` key (length checked by [`prepare_start`]).
    pub encrypt_key: Option<Vec<u8>>,
    /// `-keyring-file`.
    pub keyring_file: Option<PathBuf>,
    /// Minimum log level.
    pub log_level: LogLevel,
    /// RPC listen address as configured (Go `net.Listen` syntax).
    pub rpc_addr: String,
    /// RPC auth key (config file only); empty = none.
    pub rpc_auth: String,
    /// Serf protocol version as configured (range checked by [`prepare_start`]).
    pub protocol: i64,
    /// Replay old user events on the startup join.
    pub replay_on_join: bool,
    /// Inbound query response limit, bytes.
    pub query_response_size_limit: i64,
    /// Outbound query limit, bytes.
    pub query_size_limit: i64,
    /// User event limit, bytes (≤ 9216, checked by [`prepare_start`]).
    pub user_event_size_limit: i64,
    /// `-join` addresses (the agent exits 1 if none succeeds).
    pub start_join: Vec<String>,
    /// Event handlers, one entry per filter.
    pub event_handlers: Vec<EventScript>,
    /// The raw `-event-handler` specs, in order (SIGHUP reload compares).
    pub event_handler_specs: Vec<String>,
    /// Timing profile.
    pub profile: Profile,
    /// `-snapshot`.
    pub snapshot_path: Option<PathBuf>,
    /// Leave gracefully on SIGTERM.
    pub leave_on_terminate: bool,
    /// Skip the graceful leave on SIGINT.
    pub skip_leave_on_interrupt: bool,
    /// mDNS cluster name (`-discover`).
    pub discover: Option<String>,
    /// How often to retry failed nodes.
    pub reconnect_interval: Duration,
    /// How long to retry failed nodes before reaping.
    pub reconnect_timeout: Duration,
    /// How long left nodes are remembered.
    pub tombstone_timeout: Duration,
    /// Disable name conflict resolution.
    pub disable_name_resolution: bool,
    /// The `disable_coordinates` key as read; like Go 0.9.4 the agent does
    /// not apply it (see [`crate::agent::serf_config`]).
    pub disable_coordinates: bool,
    /// Also log to syslog.
    pub enable_syslog: bool,
    /// Syslog facility (`LOCAL0`).
    pub syslog_facility: String,
    /// `-retry-join` addresses.
    pub retry_join: Vec<String>,
    /// 0 = retry forever.
    pub retry_max_attempts: i64,
    /// Between retry-join attempts (≥ 1 s).
    pub retry_interval: Duration,
    /// Ignore a previous leave found in the snapshot.
    pub rejoin_after_leave: bool,
    /// statsite sink address.
    pub statsite_addr: Option<String>,
    /// statsd sink address.
    pub statsd_addr: Option<String>,
    /// Max wait for leave/force-leave broadcasts (≥ 1 s).
    pub broadcast_timeout: Duration,
    /// Compress user messages (on unless `-disable-compression`).
    pub enable_compression: bool,
    /// The HTTP API's listen address (`-http-addr`; serf-rs only, off by
    /// default). Without an IP it binds to loopback.
    pub http_addr: Option<SocketAddr>,
    /// The DNS interface's listen address, UDP and TCP (`-dns-addr`;
    /// serf-rs only, off by default). Without an IP it binds to loopback.
    pub dns_addr: Option<SocketAddr>,
    /// The DNS domain answered, lower case with a final dot (`consul.`).
    pub domain: String,
    /// The datacenter name in HTTP answers and DNS names (`dc1`).
    pub datacenter: String,
    /// TTL of DNS answers (`dns_ttl`, default 0).
    pub dns_ttl: Duration,
}

/// A configuration that passed [`read_config`], and the lines the Go agent
/// prints while reading it (each shown as `==> <line>`): deprecation and
/// minimum-value warnings, `Using interface ...`.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The configuration.
    pub config: AgentConfig,
    /// Notices, in order.
    pub warnings: Vec<String>,
}

/// Why [`read_config`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Flag parsing failed: print the message (if any) on stderr, then the
    /// usage text on stdout; exit 1.
    Usage(Option<String>),
    /// Print the notices so far, then `==> <message>`; exit 1.
    Invalid {
        /// Notices printed before the error.
        warnings: Vec<String>,
        /// The error text.
        message: String,
    },
}

/// Everything merge-able, as Go's `Config` struct holds it (zero = unset).
#[derive(Clone, Debug, Default, PartialEq)]
struct Raw {
    node_name: String,
    role: String,
    disable_coordinates: bool,
    tags: Option<BTreeMap<String, String>>,
    tags_file: String,
    bind: String,
    advertise: String,
    encrypt_key: String,
    keyring_file: String,
    log_level: String,
    rpc_addr: String,
    rpc_auth: String,
    protocol: i64,
    replay_on_join: bool,
    query_response_size_limit: i64,
    query_size_limit: i64,
    user_event_size_limit: i64,
    start_join: Vec<String>,
    event_handlers: Vec<String>,
    profile: String,
    snapshot_path: String,
    leave_on_terminate: bool,
    skip_leave_on_interrupt: bool,
    discover: String,
    interface: String,
    reconnect_interval: i64,
    reconnect_timeout: i64,
    tombstone_timeout: i64,
    disable_name_resolution: bool,
    enable_syslog: bool,
    syslog_facility: String,
    retry_join: Vec<String>,
    retry_max_attempts: i64,
    retry_interval: i64,
    rejoin_after_leave: bool,
    statsite_addr: String,
    statsd_addr: String,
    broadcast_timeout: i64,
    enable_compression: bool,
    http_addr: String,
    dns_addr: String,
    domain: String,
    datacenter: String,
    dns_ttl: i64,
}

const SECOND_NS: i64 = 1_000_000_000;

impl Raw {
    /// Go's `DefaultConfig()`.
    fn defaults() -> Raw {
        Raw {
            tags: Some(BTreeMap::new()),
            bind: "0.0.0.0".into(),
            log_level: "INFO".into(),
            rpc_addr: "127.0.0.1:7373".into(),
            protocol: i64::from(PROTOCOL_MAX),
            profile: "lan".into(),
            retry_interval: 30 * SECOND_NS,
            syslog_facility: "LOCAL0".into(),
            query_response_size_limit: 1024,
            query_size_limit: 1024,
            user_event_size_limit: 512,
            broadcast_timeout: 5 * SECOND_NS,
            ..Raw::default()
        }
    }

    /// Go's `MergeConfig(self, b)`: non-empty strings and non-zero numbers
    /// override, booleans only switch on, `protocol` only when positive, tags
    /// merge key by key, lists concatenate, and `enable_compression` always
    /// comes from `b`.
    fn merge(mut self, b: &Raw) -> Raw {
        fn s(dst: &mut String, src: &str) {
            if !src.is_empty() {
                *dst = src.to_string();
            }
        }
        fn n(dst: &mut i64, src: i64) {
            if src != 0 {
                *dst = src;
            }
        }
        fn on(dst: &mut bool, src: bool) {
            if src {
                *dst = true;
            }
        }
        s(&mut self.node_name, &b.node_name);
        s(&mut self.role, &b.role);
        on(&mut self.disable_coordinates, b.disable_coordinates);
        if let Some(bt) = &b.tags {
            let t = self.tags.get_or_insert_with(BTreeMap::new);
            t.extend(bt.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        s(&mut self.bind, &b.bind);
        s(&mut self.advertise, &b.advertise);
        s(&mut self.encrypt_key, &b.encrypt_key);
        s(&mut self.log_level, &b.log_level);
        if b.protocol > 0 {
            self.protocol = b.protocol;
        }
        s(&mut self.rpc_addr, &b.rpc_addr);
        s(&mut self.rpc_auth, &b.rpc_auth);
        on(&mut self.replay_on_join, b.replay_on_join);
        s(&mut self.profile, &b.profile);
        s(&mut self.snapshot_path, &b.snapshot_path);
        on(&mut self.leave_on_terminate, b.leave_on_terminate);
        on(&mut self.skip_leave_on_interrupt, b.skip_leave_on_interrupt);
        s(&mut self.discover, &b.discover);
        s(&mut self.interface, &b.interface);
        n(&mut self.reconnect_interval, b.reconnect_interval);
        n(&mut self.reconnect_timeout, b.reconnect_timeout);
        n(&mut self.tombstone_timeout, b.tombstone_timeout);
        on(&mut self.disable_name_resolution, b.disable_name_resolution);
        s(&mut self.tags_file, &b.tags_file);
        s(&mut self.keyring_file, &b.keyring_file);
        on(&mut self.enable_syslog, b.enable_syslog);
        n(&mut self.retry_max_attempts, b.retry_max_attempts);
        n(&mut self.retry_interval, b.retry_interval);
        on(&mut self.rejoin_after_leave, b.rejoin_after_leave);
        s(&mut self.syslog_facility, &b.syslog_facility);
        s(&mut self.statsite_addr, &b.statsite_addr);
        s(&mut self.statsd_addr, &b.statsd_addr);
        n(&mut self.query_response_size_limit, b.query_response_size_limit);
        n(&mut self.query_size_limit, b.query_size_limit);
        n(&mut self.user_event_size_limit, b.user_event_size_limit);
        n(&mut self.broadcast_timeout, b.broadcast_timeout);
        s(&mut self.http_addr, &b.http_addr);
        s(&mut self.dns_addr, &b.dns_addr);
        s(&mut self.domain, &b.domain);
        s(&mut self.datacenter, &b.datacenter);
        n(&mut self.dns_ttl, b.dns_ttl);
        self.enable_compression = b.enable_compression;
        self.event_handlers.extend(b.event_handlers.iter().cloned());
        self.start_join.extend(b.start_join.iter().cloned());
        self.retry_join.extend(b.retry_join.iter().cloned());
        self
    }
}

/// The agent's flags (cli.md §2.1).
fn flag_set() -> FlagSet {
    let mut fs = FlagSet::new();
    fs.string("bind", "")
        .string("advertise", "")
        .list("config-file")
        .list_into("config-dir", "config-file")
        .string("encrypt", "")
        .string("keyring-file", "")
        .list("event-handler")
        .list("join")
        .bool("replay", false)
        .string("log-level", "")
        .string("node", "")
        .int("protocol", -1)
        .string("role", "")
        .string("rpc-addr", "")
        .string("profile", "")
        .string("snapshot", "")
        .list("tag")
        .string("discover", "")
        .string("iface", "")
        .string("tags-file", "")
        .bool("syslog", false)
        .list("retry-join")
        .int("retry-max", 0)
        .string("retry-interval", "")
        .bool("rejoin", false)
        .bool("disable-compression", false)
        .string("broadcast-timeout", "")
        // serf-rs only: the HTTP API and DNS interface (off by default).
        .string("http-addr", "")
        .string("dns-addr", "")
        .string("domain", "");
    fs
}

/// Reads the configuration: flags in `args` (after `agent`), the config
/// files and directories they name, defaults, and every check the Go agent
/// makes before printing `Starting Serf agent...`. Warnings are kept in
/// the order Go prints them, also when a later check fails.
pub fn read_config(args: &[String]) -> Result<Loaded, ReadError> {
    let mut warnings = Vec::new();
    let (cmd, config_paths) = parse_flags(args)?;
    let config = merge_and_check(cmd, &config_paths, &mut warnings)
        .map_err(|message| ReadError::Invalid { warnings: warnings.clone(), message })?;
    Ok(Loaded { config, warnings })
}

/// The command line as a [`Raw`] layer, and the config paths it names
/// (`-config-file` and `-config-dir` feed one ordered list).
fn parse_flags(args: &[String]) -> Result<(Raw, Vec<String>), ReadError> {
    let p = match flag_set().parse(args) {
        Ok(p) => p,
        Err(FlagError::Help) => return Err(ReadError::Usage(None)),
        Err(FlagError::Invalid(m)) => return Err(ReadError::Usage(Some(m))),
    };
    let invalid = |message| ReadError::Invalid { warnings: Vec::new(), message };
    let mut cmd = Raw {
        bind: p.str("bind").into(),
        advertise: p.str("advertise").into(),
        encrypt_key: p.str("encrypt").into(),
        keyring_file: p.str("keyring-file").into(),
        event_handlers: p.list("event-handler").to_vec(),
        start_join: p.list("join").to_vec(),
        replay_on_join: p.bool("replay"),
        log_level: p.str("log-level").into(),
        node_name: p.str("node").into(),
        protocol: p.int("protocol"),
        role: p.str("role").into(),
        rpc_addr: p.str("rpc-addr").into(),
        profile: p.str("profile").into(),
        snapshot_path: p.str("snapshot").into(),
        discover: p.str("discover").into(),
        interface: p.str("iface").into(),
        tags_file: p.str("tags-file").into(),
        enable_syslog: p.bool("syslog"),
        retry_join: p.list("retry-join").to_vec(),
        retry_max_attempts: p.int("retry-max"),
        rejoin_after_leave: p.bool("rejoin"),
        enable_compression: !p.bool("disable-compression"),
        http_addr: p.str("http-addr").into(),
        dns_addr: p.str("dns-addr").into(),
        domain: p.str("domain").into(),
        ..Raw::default()
    };
    let mut tags = BTreeMap::new();
    for tag in p.list("tag") {
        match tag.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                tags.insert(k.to_string(), v.to_string());
            }
            _ => return Err(invalid(format!("Error: Invalid tag: '{tag}'"))),
        }
    }
    cmd.tags = Some(tags);
    for (flag, slot) in [
        ("retry-interval", &mut cmd.retry_interval),
        ("broadcast-timeout", &mut cmd.broadcast_timeout),
    ] {
        let v = p.str(flag);
        if !v.is_empty() {
            *slot = parse_duration(v).map_err(|e| invalid(format!("Error: {e}")))?;
        }
    }
    Ok((cmd, p.list("config-file").to_vec()))
}

/// Files, then the command line, over the defaults; then Go's checks in
/// Go's order. The error is the text Go prints.
fn merge_and_check(
    cmd: Raw,
    config_paths: &[String],
    warnings: &mut Vec<String>,
) -> Result<AgentConfig, String> {
    let mut raw = Raw::defaults();
    if !config_paths.is_empty() {
        raw = raw.merge(&read_config_paths(config_paths)?);
    }
    let mut raw = raw.merge(&cmd);

    if raw.node_name.is_empty() {
        raw.node_name = hostname().map_err(|e| format!("Error determining hostname: {e}"))?;
    }
    let event_handlers = event_scripts(&raw.event_handlers)?;
    if !raw.interface.is_empty() && !interface_exists(&raw.interface) {
        return Err("Invalid network interface: route ip+net: no such network interface".into());
    }
    let mut tags = raw.tags.clone().unwrap_or_default();
    if !raw.role.is_empty() {
        warnings.push("Deprecation warning: 'Role' has been replaced with 'Tags'".to_string());
        tags.insert("role".to_string(), raw.role.clone());
    }
    raise_minimums(&mut raw, warnings);
    if raw.disable_coordinates {
        warnings.push(
            "Warning: 'disable_coordinates' has no effect: as in Go Serf 0.9.4, network \
             coordinates stay enabled"
                .to_string(),
        );
    }

    // Logging.
    let Some(log_level) = LogLevel::parse(&raw.log_level) else {
        return Err(format!(
            "Invalid log level: {}. Valid log levels are: [TRACE DEBUG INFO WARN ERR]",
            raw.log_level.to_ascii_uppercase()
        ));
    };
    if raw.enable_syslog {
        check_syslog(&raw.syslog_facility).map_err(|e| format!("Syslog setup failed: {e}"))?;
    }

    // Addresses, key, profile.
    let bind = bind_address(&raw, warnings)?;
    let advertise = if raw.advertise.is_empty() {
        None
    } else {
        Some(addr_parts(&raw.advertise).map_err(|e| format!("Invalid advertise address: {e}"))?)
    };
    let encrypt_key =
        decode_std(&raw.encrypt_key).map_err(|e| format!("Invalid encryption key: {e}"))?;
    let profile = match raw.profile.as_str() {
        "lan" => Profile::Lan,
        "wan" => Profile::Wan,
        "local" => Profile::Local,
        other => return Err(format!("Unknown profile: {other}")),
    };
    let outer = outer_interfaces(&raw)?;
    let checked =
        Checked { tags, event_handlers, log_level, bind, advertise, encrypt_key, profile, outer };
    Ok(agent_config(raw, checked))
}

/// The `-event-handler` specs as scripts; Go rejects one with an unknown
/// event type.
fn event_scripts(specs: &[String]) -> Result<Vec<EventScript>, String> {
    let mut out = Vec::new();
    for spec in specs {
        for script in EventScript::parse(spec) {
            if !script.filter.is_valid() {
                return Err(format!("Invalid event script: {script}"));
            }
            out.push(script);
        }
    }
    Ok(out)
}

/// Go raises intervals below their minimum with a warning, and warns about
/// `rejoin` without a snapshot.
fn raise_minimums(raw: &mut Raw, warnings: &mut Vec<String>) {
    let min_retry = MIN_RETRY_INTERVAL.as_nanos() as i64;
    if raw.retry_interval < min_retry {
        raw.retry_interval = min_retry;
        warnings.push(format!(
            "Warning: 'RetryInterval' is too low. Setting to {}",
            format_duration(raw.retry_interval)
        ));
    }
    let min_bcast = MIN_BROADCAST_TIMEOUT.as_nanos() as i64;
    if raw.broadcast_timeout < min_bcast {
        raw.broadcast_timeout = min_bcast;
        warnings.push(format!(
            "Warning: 'BroadcastTimeout' is too low. Setting to {}",
            format_duration(raw.broadcast_timeout)
        ));
    }
    if raw.rejoin_after_leave && raw.snapshot_path.is_empty() {
        warnings.push("Warning: 'RejoinAfterLeave' enabled without snapshot file".to_string());
    }
}

/// The bind address, with `-iface` applied as Go applies it: a wildcard
/// IPv4 bind takes the interface's first non-link-local address, any other
/// bind must be one of the interface's addresses.
fn bind_address(raw: &Raw, warnings: &mut Vec<String>) -> Result<SocketAddr, String> {
    let bind = addr_parts(&raw.bind).map_err(|e| format!("Invalid bind address: {e}"))?;
    if raw.interface.is_empty() {
        return Ok(bind);
    }
    let addrs = interface_addrs(&raw.interface)
        .map_err(|e| format!("Failed to get interface addresses: {e}"))?;
    if addrs.is_empty() {
        return Err(format!("Interface '{}' has no addresses", raw.interface));
    }
    if bind.ip().is_unspecified() && bind.ip().is_ipv4() {
        let Some(ip) = addrs.iter().find(|ip| !is_link_local_unicast(ip)) else {
            return Err(format!("Failed to find usable address for interface '{}'", raw.interface));
        };
        warnings.push(format!("Using interface '{}' address '{}'", raw.interface, ip));
        Ok(SocketAddr::new(*ip, bind.port()))
    } else if !addrs.contains(&bind.ip()) {
        Err(format!("Interface '{}' has no '{}' address", raw.interface, bind.ip()))
    } else {
        Ok(bind)
    }
}

/// The checked settings of the HTTP API and the DNS interface.
struct Outer {
    http_addr: Option<SocketAddr>,
    dns_addr: Option<SocketAddr>,
    domain: String,
    datacenter: String,
    dns_ttl: Duration,
}

/// Checks `http_addr`, `dns_addr`, `domain`, `datacenter` and `dns_ttl`
/// (serf-rs only; Go Serf has no such settings).
fn outer_interfaces(raw: &Raw) -> Result<Outer, String> {
    let http_addr = (!raw.http_addr.is_empty())
        .then(|| listen_addr(&raw.http_addr, DEFAULT_HTTP_PORT))
        .transpose()
        .map_err(|e| format!("Invalid HTTP address: {e}"))?;
    let dns_addr = (!raw.dns_addr.is_empty())
        .then(|| listen_addr(&raw.dns_addr, DEFAULT_DNS_PORT))
        .transpose()
        .map_err(|e| format!("Invalid DNS address: {e}"))?;
    let domain = if raw.domain.is_empty() { DEFAULT_DOMAIN } else { raw.domain.as_str() };
    let domain = dns_domain(domain).map_err(|e| format!("Invalid domain '{}': {e}", raw.domain))?;
    let datacenter =
        if raw.datacenter.is_empty() { DEFAULT_DATACENTER } else { raw.datacenter.as_str() };
    dns_label(datacenter).map_err(|e| format!("Invalid datacenter '{datacenter}': {e}"))?;
    if raw.dns_ttl < 0 || raw.dns_ttl as u128 > MAX_DNS_TTL.as_nanos() {
        return Err(format!(
            "Invalid dns_ttl: {} (must be between 0s and {})",
            format_duration(raw.dns_ttl),
            format_duration(MAX_DNS_TTL.as_nanos() as i64)
        ));
    }
    Ok(Outer {
        http_addr,
        dns_addr,
        domain,
        datacenter: datacenter.to_ascii_lowercase(),
        dns_ttl: Duration::from_nanos(raw.dns_ttl as u64),
    })
}

/// A listen address for `-http-addr` / `-dns-addr`: `ip:port`, `ip`
/// (default port), `:port` or `port` (loopback), `host[:port]` (resolved).
pub fn listen_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let loopback = |port: &str| {
        port.parse::<u16>()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .map_err(|_| format!("address {s}: invalid port"))
    };
    if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if let Some(port) = s.strip_prefix(':') {
        return loopback(port);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return loopback(s);
    }
    let with_port = match gonet::split_host_port(s) {
        Err(e) if e.ends_with("missing port in address") => format!("{s}:{default_port}"),
        Err(e) => return Err(e),
        Ok(_) => s.to_string(),
    };
    gonet::resolve_tcp_addr(&with_port)
}

/// A DNS domain: labels of letters, digits, `-` and `_`, 1–63 bytes each,
/// at most 253 bytes; returned lower case with a final dot.
pub fn dns_domain(s: &str) -> Result<String, String> {
    let bare = s.strip_suffix('.').unwrap_or(s);
    if bare.is_empty() {
        return Err("empty".into());
    }
    if bare.len() > 253 {
        return Err("longer than 253 bytes".into());
    }
    for label in bare.split('.') {
        dns_label(label)?;
    }
    Ok(format!("{}.", bare.to_ascii_lowercase()))
}

/// One DNS label of letters, digits, `-` and `_`, 1–63 bytes.
pub fn dns_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty label".into());
    }
    if label.len() > 63 {
        return Err(format!("label '{label}' is longer than 63 bytes"));
    }
    if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!("label '{label}' has the character {c:?}"));
    }
    Ok(())
}

/// What the checks of [`merge_and_check`] produced from the raw strings.
struct Checked {
    tags: BTreeMap<String, String>,
    event_handlers: Vec<EventScript>,
    log_level: LogLevel,
    bind: SocketAddr,
    advertise: Option<SocketAddr>,
    encrypt_key: Vec<u8>,
    profile: Profile,
    outer: Outer,
}

/// The typed configuration from the merged layers and their checked parts.
fn agent_config(raw: Raw, c: Checked) -> AgentConfig {
    let opt_path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let dur_or = |ns: i64, default: Duration| {
        if ns != 0 {
            Duration::from_nanos(ns.max(0) as u64)
        } else {
            default
        }
    };
    AgentConfig {
        node_name: raw.node_name.clone(),
        tags: c.tags,
        tags_file: opt_path(&raw.tags_file),
        bind: c.bind,
        bind_raw: raw.bind.clone(),
        interface: opt(&raw.interface),
        advertise: c.advertise,
        encrypt_key: (!c.encrypt_key.is_empty()).then_some(c.encrypt_key),
        keyring_file: opt_path(&raw.keyring_file),
        log_level: c.log_level,
        rpc_addr: raw.rpc_addr.clone(),
        rpc_auth: raw.rpc_auth.clone(),
        protocol: raw.protocol,
        replay_on_join: raw.replay_on_join,
        query_response_size_limit: raw.query_response_size_limit,
        query_size_limit: raw.query_size_limit,
        user_event_size_limit: raw.user_event_size_limit,
        start_join: raw.start_join.clone(),
        event_handlers: c.event_handlers,
        event_handler_specs: raw.event_handlers.clone(),
        profile: c.profile,
        snapshot_path: opt_path(&raw.snapshot_path),
        leave_on_terminate: raw.leave_on_terminate,
        skip_leave_on_interrupt: raw.skip_leave_on_interrupt,
        discover: opt(&raw.discover),
        reconnect_interval: dur_or(raw.reconnect_interval, Duration::from_secs(30)),
        reconnect_timeout: dur_or(raw.reconnect_timeout, Duration::from_secs(24 * 3600)),
        tombstone_timeout: dur_or(raw.tombstone_timeout, Duration::from_secs(24 * 3600)),
        disable_name_resolution: raw.disable_name_resolution,
        disable_coordinates: raw.disable_coordinates,
        enable_syslog: raw.enable_syslog,
        syslog_facility: raw.syslog_facility.clone(),
        retry_join: raw.retry_join.clone(),
        retry_max_attempts: raw.retry_max_attempts,
        retry_interval: Duration::from_nanos(raw.retry_interval as u64),
        rejoin_after_leave: raw.rejoin_after_leave,
        statsite_addr: opt(&raw.statsite_addr),
        statsd_addr: opt(&raw.statsd_addr),
        broadcast_timeout: Duration::from_nanos(raw.broadcast_timeout as u64),
        enable_compression: raw.enable_compression,
        http_addr: c.outer.http_addr,
        dns_addr: c.outer.dns_addr,
        domain: c.outer.domain,
        datacenter: c.outer.datacenter,
        dns_ttl: c.outer.dns_ttl,
    }
}

/// Go's `ReadConfigPaths`: each path is a file, or a directory whose
/// `*.json` files are read in name order (not recursively); later files
/// override earlier ones by the merge rules.
fn read_config_paths(paths: &[String]) -> Result<Raw, String> {
    let mut result = Raw::default();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("Error reading '{path}': {}", os_err("open", path, &e)))?;
        if !meta.is_dir() {
            let data = std::fs::read(path)
                .map_err(|e| format!("Error reading '{path}': {}", os_err("read", path, &e)))?;
            let c = decode_config(&data).map_err(|e| format!("Error decoding '{path}': {e}"))?;
            result = result.merge(&c);
            continue;
        }
        let mut entries: Vec<(String, bool)> = std::fs::read_dir(path)
            .map_err(|e| format!("Error reading '{path}': {}", os_err("readdirent", path, &e)))?
            .filter_map(Result::ok)
            .map(|e| {
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                (e.file_name().to_string_lossy().into_owned(), is_dir)
            })
            .collect();
        entries.sort();
        for (name, is_dir) in entries {
            if is_dir || !name.ends_with(".json") {
                continue;
            }
            let sub = Path::new(path).join(&name).to_string_lossy().into_owned();
            let data = std::fs::read(&sub)
                .map_err(|e| format!("Error reading '{sub}': {}", os_err("read", &sub, &e)))?;
            let c = decode_config(&data).map_err(|e| format!("Error decoding '{sub}': {e}"))?;
            result = result.merge(&c);
        }
    }
    Ok(result)
}

/// Go's `*os.PathError` text: `open /x: no such file or directory`.
use gonet::path_error as os_err;

/// The kinds of config-file fields (mapstructure targets).
#[derive(Clone, Copy)]
enum FieldKind {
    Str,
    Bool,
    Int,
    List,
    Map,
}

/// Every config-file key of serf 0.9.4 (cli.md §2.1, §2.2).
const FIELDS: &[(&str, FieldKind)] = &[
    ("node_name", FieldKind::Str),
    ("role", FieldKind::Str),
    ("disable_coordinates", FieldKind::Bool),
    ("tags", FieldKind::Map),
    ("tags_file", FieldKind::Str),
    ("bind", FieldKind::Str),
    ("advertise", FieldKind::Str),
    ("encrypt_key", FieldKind::Str),
    ("keyring_file", FieldKind::Str),
    ("log_level", FieldKind::Str),
    ("rpc_addr", FieldKind::Str),
    ("rpc_auth", FieldKind::Str),
    ("protocol", FieldKind::Int),
    ("replay_on_join", FieldKind::Bool),
    ("query_response_size_limit", FieldKind::Int),
    ("query_size_limit", FieldKind::Int),
    ("user_event_size_limit", FieldKind::Int),
    ("start_join", FieldKind::List),
    ("event_handlers", FieldKind::List),
    ("profile", FieldKind::Str),
    ("snapshot_path", FieldKind::Str),
    ("leave_on_terminate", FieldKind::Bool),
    ("skip_leave_on_interrupt", FieldKind::Bool),
    ("discover", FieldKind::Str),
    ("interface", FieldKind::Str),
    ("reconnect_interval", FieldKind::Str),
    ("reconnect_timeout", FieldKind::Str),
    ("tombstone_timeout", FieldKind::Str),
    ("disable_name_resolution", FieldKind::Bool),
    ("enable_syslog", FieldKind::Bool),
    ("syslog_facility", FieldKind::Str),
    ("retry_join", FieldKind::List),
    ("retry_max_attempts", FieldKind::Int),
    ("retry_interval", FieldKind::Str),
    ("rejoin_after_leave", FieldKind::Bool),
    ("statsite_addr", FieldKind::Str),
    ("statsd_addr", FieldKind::Str),
    ("broadcast_timeout", FieldKind::Str),
    ("enable_compression", FieldKind::Bool),
    // serf-rs only (the HTTP API and the DNS interface).
    ("http_addr", FieldKind::Str),
    ("dns_addr", FieldKind::Str),
    ("domain", FieldKind::Str),
    ("datacenter", FieldKind::Str),
    ("dns_ttl", FieldKind::Str),
];

/// A decoded field value.
enum FieldVal {
    Str(String),
    Bool(bool),
    Int(i64),
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

fn unconvertible(name: &str, want: &str, v: &JValue) -> String {
    format!(
        "'{name}' expected type '{want}', got unconvertible type '{}', value: '{}'",
        v.go_type(),
        v.go_v()
    )
}

/// One element decoded as a Go string (nil → "").
fn decode_string(name: &str, v: &JValue, errs: &mut Vec<String>) -> String {
    match v {
        JValue::Null => String::new(),
        JValue::Str(s) => s.clone(),
        other => {
            errs.push(unconvertible(name, "string", other));
            String::new()
        }
    }
}

fn decode_field(
    name: &str,
    kind: FieldKind,
    v: &JValue,
    errs: &mut Vec<String>,
) -> Option<FieldVal> {
    if *v == JValue::Null {
        return None;
    }
    match kind {
        FieldKind::Str => match v {
            JValue::Str(s) => Some(FieldVal::Str(s.clone())),
            other => {
                errs.push(unconvertible(name, "string", other));
                None
            }
        },
        FieldKind::Bool => match v {
            JValue::Bool(b) => Some(FieldVal::Bool(*b)),
            other => {
                errs.push(unconvertible(name, "bool", other));
                None
            }
        },
        FieldKind::Int => match v {
            // Go's int(float64) truncates; out-of-range values become MinInt64.
            JValue::Number(n) => Some(FieldVal::Int(if n.is_finite() && n.abs() < 9.2e18 {
                *n as i64
            } else {
                i64::MIN
            })),
            other => {
                errs.push(unconvertible(name, "int", other));
                None
            }
        },
        FieldKind::List => match v {
            JValue::Array(items) => {
                let before = errs.len();
                let list: Vec<String> = items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| decode_string(&format!("{name}[{i}]"), x, errs))
                    .collect();
                (errs.len() == before).then_some(FieldVal::List(list))
            }
            other => {
                errs.push(format!(
                    "'{name}': source data must be an array or slice, got {}",
                    other.go_kind()
                ));
                None
            }
        },
        FieldKind::Map => match v {
            JValue::Object(entries) => {
                let before = errs.len();
                let map: BTreeMap<String, String> = entries
                    .iter()
                    .map(|(k, x)| (k.clone(), decode_string(&format!("{name}[{k}]"), x, errs)))
                    .collect();
                (errs.len() == before).then_some(FieldVal::Map(map))
            }
            other => {
                errs.push(format!("'{name}' expected a map, got '{}'", other.go_kind()));
                None
            }
        },
    }
}

/// Go's `DecodeConfig`: one JSON value (the first in the file) decoded with
/// mapstructure (`ErrorUnused`), then the duration strings parsed.
fn decode_config(data: &[u8]) -> Result<Raw, String> {
    let root = json::decode_first(data)?;
    let entries = match &root {
        JValue::Null => return Ok(Raw::default()),
        JValue::Object(e) => e,
        other => return Err(format!("'' expected a map, got '{}'", other.go_kind())),
    };
    let mut used = vec![false; entries.len()];
    let mut errs = Vec::new();
    let mut raw = Raw::default();
    let mut durations: Vec<(&str, String)> = Vec::new();
    for &(name, kind) in FIELDS {
        // mapstructure: an exact key, else a case-insensitive one.
        let idx = entries
            .iter()
            .position(|(k, _)| k == name)
            .or_else(|| entries.iter().position(|(k, _)| k.eq_ignore_ascii_case(name)));
        let Some(idx) = idx else { continue };
        used[idx] = true;
        let Some(val) = decode_field(name, kind, &entries[idx].1, &mut errs) else { continue };
        match (name, val) {
            ("node_name", FieldVal::Str(s)) => raw.node_name = s,
            ("role", FieldVal::Str(s)) => raw.role = s,
            ("disable_coordinates", FieldVal::Bool(b)) => raw.disable_coordinates = b,
            ("tags", FieldVal::Map(m)) => raw.tags = Some(m),
            ("tags_file", FieldVal::Str(s)) => raw.tags_file = s,
            ("bind", FieldVal::Str(s)) => raw.bind = s,
            ("advertise", FieldVal::Str(s)) => raw.advertise = s,
            ("encrypt_key", FieldVal::Str(s)) => raw.encrypt_key = s,
            ("keyring_file", FieldVal::Str(s)) => raw.keyring_file = s,
            ("log_level", FieldVal::Str(s)) => raw.log_level = s,
            ("rpc_addr", FieldVal::Str(s)) => raw.rpc_addr = s,
            ("rpc_auth", FieldVal::Str(s)) => raw.rpc_auth = s,
            ("protocol", FieldVal::Int(i)) => raw.protocol = i,
            ("replay_on_join", FieldVal::Bool(b)) => raw.replay_on_join = b,
            ("query_response_size_limit", FieldVal::Int(i)) => raw.query_response_size_limit = i,
            ("query_size_limit", FieldVal::Int(i)) => raw.query_size_limit = i,
            ("user_event_size_limit", FieldVal::Int(i)) => raw.user_event_size_limit = i,
            ("start_join", FieldVal::List(l)) => raw.start_join = l,
            ("event_handlers", FieldVal::List(l)) => raw.event_handlers = l,
            ("profile", FieldVal::Str(s)) => raw.profile = s,
            ("snapshot_path", FieldVal::Str(s)) => raw.snapshot_path = s,
            ("leave_on_terminate", FieldVal::Bool(b)) => raw.leave_on_terminate = b,
            ("skip_leave_on_interrupt", FieldVal::Bool(b)) => raw.skip_leave_on_interrupt = b,
            ("discover", FieldVal::Str(s)) => raw.discover = s,
            ("interface", FieldVal::Str(s)) => raw.interface = s,
            ("disable_name_resolution", FieldVal::Bool(b)) => raw.disable_name_resolution = b,
            ("enable_syslog", FieldVal::Bool(b)) => raw.enable_syslog = b,
            ("syslog_facility", FieldVal::Str(s)) => raw.syslog_facility = s,
            ("retry_join", FieldVal::List(l)) => raw.retry_join = l,
            ("retry_max_attempts", FieldVal::Int(i)) => raw.retry_max_attempts = i,
            ("rejoin_after_leave", FieldVal::Bool(b)) => raw.rejoin_after_leave = b,
            ("statsite_addr", FieldVal::Str(s)) => raw.statsite_addr = s,
            ("statsd_addr", FieldVal::Str(s)) => raw.statsd_addr = s,
            ("enable_compression", FieldVal::Bool(b)) => raw.enable_compression = b,
            ("http_addr", FieldVal::Str(s)) => raw.http_addr = s,
            ("dns_addr", FieldVal::Str(s)) => raw.dns_addr = s,
            ("domain", FieldVal::Str(s)) => raw.domain = s,
            ("datacenter", FieldVal::Str(s)) => raw.datacenter = s,
            (
                "reconnect_interval" | "reconnect_timeout" | "tombstone_timeout" | "retry_interval"
                | "broadcast_timeout" | "dns_ttl",
                FieldVal::Str(s),
            ) => durations.push((name, s)),
            _ => {}
        }
    }
    let mut unused: Vec<&str> =
        entries.iter().zip(&used).filter(|(_, u)| !**u).map(|((k, _), _)| k.as_str()).collect();
    if !unused.is_empty() {
        unused.sort_unstable();
        errs.push(format!("'' has invalid keys: {}", unused.join(", ")));
    }
    if !errs.is_empty() {
        let mut points: Vec<String> = errs.iter().map(|e| format!("* {e}")).collect();
        points.sort();
        return Err(format!("{} error(s) decoding:\n\n{}", errs.len(), points.join("\n")));
    }
    // Durations, in Go's order.
    for name in [
        "reconnect_interval",
        "reconnect_timeout",
        "tombstone_timeout",
        "retry_interval",
        "broadcast_timeout",
        "dns_ttl",
    ] {
        let Some((_, s)) = durations.iter().find(|(n, _)| *n == name) else { continue };
        if s.is_empty() {
            continue;
        }
        let d = parse_duration(s)?;
        match name {
            "reconnect_interval" => raw.reconnect_interval = d,
            "reconnect_timeout" => raw.reconnect_timeout = d,
            "tombstone_timeout" => raw.tombstone_timeout = d,
            "retry_interval" => raw.retry_interval = d,
            "dns_ttl" => raw.dns_ttl = d,
            _ => raw.broadcast_timeout = d,
        }
    }
    Ok(raw)
}

/// Go's `Config.AddrParts`: `host[:port]` with port 7946 when missing, the
/// host resolved (IP literal or name).
pub fn addr_parts(address: &str) -> Result<SocketAddr, String> {
    let with_port = match gonet::split_host_port(address) {
        Err(e) if e.ends_with("missing port in address") => {
            format!("{address}:{DEFAULT_BIND_PORT}")
        }
        _ => address.to_string(),
    };
    gonet::split_host_port(&with_port)?;
    gonet::resolve_tcp_addr(&with_port)
}

fn hostname() -> Result<String, String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes
    // at most that many and we stop at the first NUL.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(gonet::errno_text(&std::io::Error::last_os_error()));
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

fn interface_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else { return false };
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// The IP addresses of interface `name`.
fn interface_addrs(name: &str) -> Result<Vec<IpAddr>, String> {
    Ok(gonet::interface_addrs()?.into_iter().filter(|a| a.name == name).map(|a| a.ip).collect())
}

fn is_link_local_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// gsyslog's checks: a known facility, and a reachable local syslog socket.
fn check_syslog(facility: &str) -> Result<(), String> {
    const FACILITIES: &[&str] = &[
        "KERN", "USER", "MAIL", "DAEMON", "AUTH", "SYSLOG", "LPR", "NEWS", "UUCP", "CRON",
        "AUTHPRIV", "FTP", "LOCAL0", "LOCAL1", "LOCAL2", "LOCAL3", "LOCAL4", "LOCAL5", "LOCAL6",
        "LOCAL7",
    ];
    if !FACILITIES.contains(&facility.to_ascii_uppercase().as_str()) {
        return Err("invalid syslog facility".to_string());
    }
    for path in ["/dev/log", "/var/run/syslog", "/var/run/log"] {
        if let Ok(s) = std::os::unix::net::UnixDatagram::unbound() {
            if s.connect(path).is_ok() {
                return Ok(());
            }
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Ok(());
        }
    }
    Err("Unix syslog delivery error".to_string())
}

/// What the runtime starts with after [`prepare_start`].
#[derive(Clone, Debug, PartialEq)]
pub struct StartPlan {
    /// The tags to announce: the configured ones, or those restored from the
    /// tags file.
    pub tags: BTreeMap<String, String>,
    /// Encryption keys, primary first; empty = no encryption.
    pub keys: Vec<Vec<u8>>,
    /// The Serf protocol version (validated, as Go's `uint8` conversion).
    pub protocol: u8,
}

/// Why the agent could not start, worded as the Go agent prints it (after
/// `==> `).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// Go's `agent.Create` failed: `Failed to setup the Serf agent: <msg>`.
    Setup(String),
    /// Go's `agent.Start` failed: `Failed to start the Serf agent: <msg>`.
    Start(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Setup(m) => write!(f, "Failed to setup the Serf agent: {m}"),
            StartError::Start(m) => write!(f, "Failed to start the Serf agent: {m}"),
        }
    }
}

/// The checks the Go agent makes after `Starting Serf agent...`: loads the
/// tags file (which must not be combined with configured tags) and the
/// keyring file (which must not be combined with `-encrypt`), then applies
/// Serf's limits: protocol in 2..=5, `user_event_size_limit` ≤ 9216, keys of
/// 16, 24 or 32 bytes.
pub fn prepare_start(c: &AgentConfig) -> Result<StartPlan, StartError> {
    let mut tags = c.tags.clone();
    if let Some(path) = &c.tags_file {
        if !c.tags.is_empty() {
            return Err(StartError::Setup("Tags config not allowed while using tag files".into()));
        }
        let p = path.to_string_lossy();
        if std::fs::metadata(path).is_ok() {
            let data = std::fs::read(path).map_err(|e| {
                StartError::Setup(format!("Failed to read tags file: {}", os_err("read", &p, &e)))
            })?;
            tags = decode_tags_file(&data)
                .map_err(|e| StartError::Setup(format!("Failed to decode tags file: {e}")))?;
        }
    }
    let mut keys = Vec::new();
    if let Some(path) = &c.keyring_file {
        if c.encrypt_key.is_some() {
            return Err(StartError::Setup(
                "Encryption key not allowed while using a keyring".into(),
            ));
        }
        let p = path.to_string_lossy();
        std::fs::metadata(path).map_err(|e| StartError::Setup(os_err("stat", &p, &e)))?;
        let data = std::fs::read(path).map_err(|e| {
            StartError::Setup(format!("Failed to read keyring file: {}", os_err("read", &p, &e)))
        })?;
        let encoded = decode_keyring_file(&data)
            .map_err(|e| StartError::Setup(format!("Failed to decode keyring file: {e}")))?;
        for k in &encoded {
            let key = decode_std(k).map_err(|e| {
                StartError::Setup(format!("Failed to decode key from keyring: {e}"))
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(StartError::Setup("Keyring file contains no keys".into()));
        }
        if keys.iter().any(|k| !valid_key_len(k)) {
            return Err(StartError::Setup(
                "Failed to restore keyring: key size must be 16, 24 or 32 bytes".into(),
            ));
        }
    }
    // Serf's own checks, in serf.Create's order. Go converts with uint8().
    let protocol = c.protocol as u8;
    let creating = |m: String| StartError::Start(format!("Error creating Serf: {m}"));
    if protocol < PROTOCOL_MIN {
        return Err(creating(format!(
            "Protocol version '{protocol}' too low. Must be in range: [{PROTOCOL_MIN}, {PROTOCOL_MAX}]"
        )));
    }
    if protocol > PROTOCOL_MAX {
        return Err(creating(format!(
            "Protocol version '{protocol}' too high. Must be in range: [{PROTOCOL_MIN}, {PROTOCOL_MAX}]"
        )));
    }
    if c.user_event_size_limit > USER_EVENT_SIZE_LIMIT_MAX {
        return Err(creating(format!(
            "user event size limit exceeds limit of {USER_EVENT_SIZE_LIMIT_MAX} bytes"
        )));
    }
    if let Some(k) = &c.encrypt_key {
        if !valid_key_len(k) {
            return Err(creating(
                "Failed to create memberlist: key size must be 16, 24 or 32 bytes".into(),
            ));
        }
        // The -encrypt key becomes the primary key.
        keys.retain(|x| x != k);
        keys.insert(0, k.clone());
    }
    Ok(StartPlan { tags, keys, protocol })
}

fn valid_key_len(k: &[u8]) -> bool {
    matches!(k.len(), 16 | 24 | 32)
}

/// `json.Unmarshal` into `map[string]string`.
fn decode_tags_file(data: &[u8]) -> Result<BTreeMap<String, String>, String> {
    match json::unmarshal(data)? {
        JValue::Null => Ok(BTreeMap::new()),
        JValue::Object(entries) => {
            let mut out = BTreeMap::new();
            let mut first_err = None;
            for (k, v) in entries {
                match v {
                    JValue::Str(s) => {
                        out.insert(k, s);
                    }
                    JValue::Null => {
                        out.insert(k, String::new());
                    }
                    other => {
                        first_err.get_or_insert(format!(
                            "json: cannot unmarshal {} into Go value of type string",
                            other.json_kind()
                        ));
                    }
                }
            }
            first_err.map_or(Ok(out), Err)
        }
        other => Err(format!(
            "json: cannot unmarshal {} into Go value of type map[string]string",
            other.json_kind()
        )),
    }
}

/// `json.Unmarshal` into `[]string`.
fn decode_keyring_file(data: &[u8]) -> Result<Vec<String>, String> {
    match json::unmarshal(data)? {
        JValue::Null => Ok(Vec::new()),
        JValue::Array(items) => {
            let mut out = Vec::new();
            let mut first_err = None;
            for v in items {
                match v {
                    JValue::Str(s) => out.push(s),
                    JValue::Null => out.push(String::new()),
                    other => {
                        first_err.get_or_insert(format!(
                            "json: cannot unmarshal {} into Go value of type string",
                            other.json_kind()
                        ));
                    }
                }
            }
            first_err.map_or(Ok(out), Err)
        }
        other => Err(format!(
            "json: cannot unmarshal {} into Go value of type []string",
            other.json_kind()
        )),
    }
}

impl AgentConfig {
    /// The RPC listen address, parsed (`host:port`, host resolved).
    pub fn rpc_socket_addr(&self) -> Result<SocketAddr, String> {
        gonet::resolve_tcp_addr(&self.rpc_addr).map_err(|e| format!("listen tcp: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    /// A fresh scratch directory for config files.
    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("serf-config-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn load(args: &[&str]) -> Loaded {
        read_config(&argv(args)).unwrap()
    }

    fn error(args: &[&str]) -> String {
        match read_config(&argv(args)) {
            Err(ReadError::Invalid { message, .. }) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = load(&["-node=n1"]).config;
        assert_eq!(c.node_name, "n1");
        assert_eq!(c.bind, "0.0.0.0:7946".parse().unwrap());
        assert_eq!(c.advertise, None);
        assert_eq!(c.rpc_addr, "127.0.0.1:7373");
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.protocol, 5);
        assert_eq!(c.profile, Profile::Lan);
        assert_eq!(c.retry_interval, Duration::from_secs(30));
        assert_eq!(c.broadcast_timeout, Duration::from_secs(5));
        assert_eq!(c.reconnect_interval, Duration::from_secs(30));
        assert_eq!(c.reconnect_timeout, Duration::from_secs(86400));
        assert_eq!(c.tombstone_timeout, Duration::from_secs(86400));
        assert_eq!(c.syslog_facility, "LOCAL0");
        assert_eq!((c.query_size_limit, c.query_response_size_limit), (1024, 1024));
        assert_eq!(c.user_event_size_limit, 512);
        assert!(c.enable_compression);
        assert!(c.tags.is_empty() && c.event_handlers.is_empty());
        // Node name defaults to the host name.
        assert_eq!(load(&[]).config.node_name, hostname().unwrap());
    }

    #[test]
    fn every_flag() {
        let l = load(&[
            "-node=a",
            "-bind=127.0.0.5",
            "-advertise=10.0.0.1:8000",
            "-join=x",
            "-join",
            "y",
            "-retry-join=z",
            "-retry-interval=1m30s",
            "-retry-max=3",
            "-replay",
            "-profile=wan",
            "-protocol=4",
            "-log-level=debug",
            "-tag",
            "k=v",
            "-tag=k2=a=b",
            "-encrypt=/2aLpXdzftBnAq1YcPOEDpnfROAsStWdMKSuHkIiedI=",
            "-snapshot=/tmp/snap",
            "-rejoin",
            "-event-handler=user:deploy=d.sh",
            "-event-handler=x.sh",
            "-disable-compression",
            "-broadcast-timeout=2s",
            "-rpc-addr=127.0.0.5:7000",
            "-discover=c",
            "-role=web",
            "-tags-file=",
            "-keyring-file=",
        ]);
        let c = l.config;
        assert_eq!(c.bind, "127.0.0.5:7946".parse().unwrap());
        assert_eq!(c.advertise, Some("10.0.0.1:8000".parse().unwrap()));
        assert_eq!(c.start_join, ["x", "y"]);
        assert_eq!(c.retry_join, ["z"]);
        assert_eq!(c.retry_interval, Duration::from_secs(90));
        assert_eq!(c.retry_max_attempts, 3);
        assert!(c.replay_on_join && c.rejoin_after_leave);
        assert_eq!(c.profile, Profile::Wan);
        assert_eq!(c.protocol, 4);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.tags.get("k").map(String::as_str), Some("v"));
        assert_eq!(c.tags.get("k2").map(String::as_str), Some("a=b"));
        assert_eq!(c.tags.get("role").map(String::as_str), Some("web"));
        assert_eq!(c.encrypt_key.as_ref().map(Vec::len), Some(32));
        assert_eq!(c.snapshot_path, Some(PathBuf::from("/tmp/snap")));
        assert_eq!(c.event_handlers.len(), 2);
        assert_eq!(
            c.event_handlers[0].filter,
            EventFilter { event: "user".into(), name: "deploy".into() }
        );
        assert_eq!(c.event_handlers[1].filter.event, "*");
        assert!(!c.enable_compression);
        assert_eq!(c.broadcast_timeout, Duration::from_secs(2));
        assert_eq!(c.rpc_addr, "127.0.0.5:7000");
        assert_eq!(c.discover.as_deref(), Some("c"));
        assert_eq!(l.warnings, ["Deprecation warning: 'Role' has been replaced with 'Tags'"]);
    }

    #[test]
    fn merge_rules_across_files_and_flags() {
        let d = scratch("merge");
        let a = write(
            &d,
            "a.json",
            r#"{"node_name": "fromfile", "tags": {"a": "1", "b": "2"}, "start_join": ["j1"],
                "replay_on_join": true, "protocol": 3, "enable_compression": false,
                "event_handlers": ["e1.sh"], "retry_interval": "5s", "rpc_auth": "secret"}"#,
        );
        let b = write(
            &d,
            "b.json",
            r#"{"tags": {"b": "3"}, "start_join": ["j2"], "replay_on_join": false,
                "protocol": 0, "node_name": "", "log_level": "warn"}"#,
        );
        let c = load(&["-config-file", &a, "-config-file", &b, "-join=j3", "-tag=c=4"]).config;
        // Non-empty strings override, empty ones do not.
        assert_eq!(c.node_name, "fromfile");
        assert_eq!(c.log_level, LogLevel::Warn);
        // Tags merge key by key; lists concatenate in order.
        let tags: Vec<(&str, &str)> =
            c.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(tags, [("a", "1"), ("b", "3"), ("c", "4")]);
        assert_eq!(c.start_join, ["j1", "j2", "j3"]);
        assert_eq!(c.event_handler_specs, ["e1.sh"]);
        // Booleans only switch on; protocol only when > 0.
        assert!(c.replay_on_join);
        assert_eq!(c.protocol, 3);
        // Compression: the command line always decides.
        assert!(c.enable_compression);
        assert_eq!(c.retry_interval, Duration::from_secs(5));
        assert_eq!(c.rpc_auth, "secret");
        // A flag overrides the files.
        assert_eq!(load(&["-config-file", &a, "-node=cli"]).config.node_name, "cli");
    }

    #[test]
    fn config_dir_reads_json_files_in_name_order() {
        let d = scratch("dir");
        write(&d, "b.json", r#"{"node_name": "second"}"#);
        write(&d, "a.json", r#"{"node_name": "first", "tags": {"x": "1"}}"#);
        write(&d, "c.txt", "not json");
        std::fs::create_dir_all(d.join("sub.json")).unwrap();
        let c = load(&["-config-dir", d.to_str().unwrap()]).config;
        assert_eq!(c.node_name, "second");
        assert_eq!(c.tags.len(), 1);
    }

    #[test]
    fn config_file_errors_like_go() {
        let d = scratch("errors");
        let f = write(&d, "bad.json", r#"{"bogus_key": 1, "another": 2, "node_name": "x"}"#);
        assert_eq!(
            error(&["-config-file", &f]),
            format!("Error decoding '{f}': 1 error(s) decoding:\n\n* '' has invalid keys: another, bogus_key")
        );
        let f = write(&d, "types.json", r#"{"node_name": 5, "protocol": "x", "tags": 3, "zz": 1}"#);
        assert_eq!(
            error(&["-config-file", &f]),
            format!(
                "Error decoding '{f}': 4 error(s) decoding:\n\n* '' has invalid keys: zz\n\
                 * 'node_name' expected type 'string', got unconvertible type 'float64', value: '5'\n\
                 * 'protocol' expected type 'int', got unconvertible type 'string', value: 'x'\n\
                 * 'tags' expected a map, got 'float64'"
            )
        );
        let f = write(
            &d,
            "list.json",
            r#"{"start_join": "x", "retry_join": [1], "tags": {"a": true}}"#,
        );
        assert_eq!(
            error(&["-config-file", &f]),
            format!(
                "Error decoding '{f}': 3 error(s) decoding:\n\n\
                 * 'retry_join[0]' expected type 'string', got unconvertible type 'float64', value: '1'\n\
                 * 'start_join': source data must be an array or slice, got string\n\
                 * 'tags[a]' expected type 'string', got unconvertible type 'bool', value: 'true'"
            )
        );
        let f = write(&d, "dur.json", r#"{"reconnect_interval": "1x"}"#);
        assert_eq!(
            error(&["-config-file", &f]),
            format!("Error decoding '{f}': time: unknown unit \"x\" in duration \"1x\"")
        );
        let f = write(&d, "arr.json", "[]");
        assert_eq!(
            error(&["-config-file", &f]),
            format!("Error decoding '{f}': '' expected a map, got 'slice'")
        );
        let f = write(&d, "trunc.json", "{\"a\":");
        assert_eq!(error(&["-config-file", &f]), format!("Error decoding '{f}': unexpected EOF"));
        assert_eq!(
            error(&["-config-file", "/nonexistent/x.json"]),
            "Error reading '/nonexistent/x.json': open /nonexistent/x.json: no such file or directory"
        );
        // Case-insensitive key match and null values are accepted.
        let f = write(&d, "case.json", r#"{"Node_Name": "x", "tags": null, "start_join": [null]}"#);
        let c = load(&["-config-file", &f]).config;
        assert_eq!(c.node_name, "x");
        assert_eq!(c.start_join, [""]);
    }

    #[test]
    fn validation_messages() {
        assert_eq!(error(&["-tag", "foo"]), "Error: Invalid tag: 'foo'");
        assert_eq!(error(&["-tag", "=x"]), "Error: Invalid tag: '=x'");
        assert_eq!(error(&["-retry-interval=bogus"]), "Error: time: invalid duration \"bogus\"");
        assert_eq!(
            error(&["-log-level=foo"]),
            "Invalid log level: FOO. Valid log levels are: [TRACE DEBUG INFO WARN ERR]"
        );
        assert_eq!(error(&["-profile=bad"]), "Unknown profile: bad");
        assert_eq!(
            error(&["-event-handler=member-join,bogus=x.sh"]),
            "Invalid event script: Event 'bogus' invoking 'x.sh'"
        );
        assert_eq!(
            error(&["-iface=nosuch0"]),
            "Invalid network interface: route ip+net: no such network interface"
        );
        assert_eq!(
            error(&["-bind=foo:bar:baz"]),
            "Invalid bind address: address foo:bar:baz: too many colons in address"
        );
        assert_eq!(
            error(&["-bind=1.2.3.4:99999"]),
            "Invalid bind address: address 99999: invalid port"
        );
        assert_eq!(
            error(&["-advertise=1.2.3.4:abc"]),
            "Invalid advertise address: address tcp/abc: unknown port"
        );
        assert_eq!(
            error(&["-encrypt=zzz"]),
            "Invalid encryption key: illegal base64 data at input byte 0"
        );
        assert_eq!(
            read_config(&argv(&["-x"])),
            Err(ReadError::Usage(Some("flag provided but not defined: -x".into())))
        );
        assert_eq!(read_config(&argv(&["--h"])), Err(ReadError::Usage(None)));
    }

    #[test]
    fn http_dns_settings() {
        let c = load(&[]).config;
        assert_eq!((c.http_addr, c.dns_addr), (None, None), "off by default");
        assert_eq!((c.domain.as_str(), c.datacenter.as_str()), ("consul.", "dc1"));
        assert_eq!(c.dns_ttl, Duration::ZERO);
        let c = load(&["-http-addr=:8501", "-dns-addr=127.0.0.9", "-domain=Serf.Example"]).config;
        assert_eq!(c.http_addr, Some("127.0.0.1:8501".parse().unwrap()));
        assert_eq!(c.dns_addr, Some("127.0.0.9:8600".parse().unwrap()));
        assert_eq!(c.domain, "serf.example.");
        assert_eq!(
            load(&["-http-addr=8502"]).config.http_addr,
            Some("127.0.0.1:8502".parse().unwrap())
        );
        assert_eq!(
            load(&["-http-addr=[::1]:8503"]).config.http_addr,
            Some("[::1]:8503".parse().unwrap())
        );
        assert_eq!(load(&["-http-addr=::1"]).config.http_addr, Some("[::1]:8500".parse().unwrap()));
        let d = scratch("outer");
        let f = write(
            &d,
            "outer.json",
            r#"{"http_addr": "127.0.0.2:9000", "dns_addr": ":53", "domain": "lan.",
                "datacenter": "East-1", "dns_ttl": "30s"}"#,
        );
        let c = load(&["-config-file", &f]).config;
        assert_eq!(c.http_addr, Some("127.0.0.2:9000".parse().unwrap()));
        assert_eq!(c.dns_addr, Some("127.0.0.1:53".parse().unwrap()));
        assert_eq!((c.domain.as_str(), c.datacenter.as_str()), ("lan.", "east-1"));
        assert_eq!(c.dns_ttl, Duration::from_secs(30));
        // The command line overrides the file.
        let c = load(&["-config-file", &f, "-domain=x"]).config;
        assert_eq!(c.domain, "x.");

        assert_eq!(
            error(&["-http-addr=127.0.0.1:99999"]),
            "Invalid HTTP address: address 99999: invalid port"
        );
        assert_eq!(
            error(&["-http-addr=:http"]),
            "Invalid HTTP address: address :http: invalid port"
        );
        assert_eq!(
            error(&["-dns-addr=a:b:c"]),
            "Invalid DNS address: address a:b:c: too many colons in address"
        );
        assert_eq!(error(&["-domain=a..b"]), "Invalid domain 'a..b': empty label");
        assert_eq!(error(&["-domain=."]), "Invalid domain '.': empty");
        assert_eq!(
            error(&["-domain=a b"]),
            "Invalid domain 'a b': label 'a b' has the character ' '"
        );
        let long = "x".repeat(64);
        assert_eq!(
            error(&["-domain", &long]),
            format!("Invalid domain '{long}': label '{long}' is longer than 63 bytes")
        );
        let f = write(&d, "ttl.json", r#"{"dns_ttl": "-1s"}"#);
        assert_eq!(
            error(&["-config-file", &f]),
            "Invalid dns_ttl: -1s (must be between 0s and 24h0m0s)"
        );
        let f = write(&d, "dc.json", r#"{"datacenter": "a.b"}"#);
        assert_eq!(
            error(&["-config-file", &f]),
            "Invalid datacenter 'a.b': label 'a.b' has the character '.'"
        );
    }

    #[test]
    fn minimums_are_warnings() {
        let l = load(&["-retry-interval=500ms", "-broadcast-timeout=1ms", "-rejoin"]);
        assert_eq!(l.config.retry_interval, MIN_RETRY_INTERVAL);
        assert_eq!(l.config.broadcast_timeout, MIN_BROADCAST_TIMEOUT);
        assert_eq!(
            l.warnings,
            [
                "Warning: 'RetryInterval' is too low. Setting to 1s",
                "Warning: 'BroadcastTimeout' is too low. Setting to 1s",
                "Warning: 'RejoinAfterLeave' enabled without snapshot file",
            ]
        );
    }

    #[test]
    fn event_scripts() {
        let s = EventScript::parse("member-join,user:deploy,query=run.sh --x=1");
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].script, "run.sh --x=1");
        assert_eq!(s[1].to_string(), "Event 'user:deploy' invoking 'run.sh --x=1'");
        assert_eq!(s[1].stats_key(), "user:deploy");
        assert_eq!(EventScript::parse("h.sh")[0].stats_key(), "*:");
        assert!(!parse_event_filter("Member-Join")[0].is_valid());
        assert!(parse_event_filter("")[0].is_valid());
    }

    fn start(args: &[&str]) -> Result<StartPlan, StartError> {
        prepare_start(&load(args).config)
    }

    #[test]
    fn start_checks() {
        let msg = |r: Result<StartPlan, StartError>| r.unwrap_err().to_string();
        assert_eq!(
            msg(start(&["-protocol=1"])),
            "Failed to start the Serf agent: Error creating Serf: Protocol version '1' too low. Must be in range: [2, 5]"
        );
        assert_eq!(
            msg(start(&["-protocol=6"])),
            "Failed to start the Serf agent: Error creating Serf: Protocol version '6' too high. Must be in range: [2, 5]"
        );
        // Go converts to uint8: 258 is protocol 2.
        assert_eq!(start(&["-protocol=258"]).unwrap().protocol, 2);
        assert_eq!(start(&["-protocol=0"]).unwrap().protocol, 5);
        assert_eq!(
            msg(start(&["-encrypt=YWJj"])),
            "Failed to start the Serf agent: Error creating Serf: Failed to create memberlist: key size must be 16, 24 or 32 bytes"
        );
        let d = scratch("start");
        let f = write(&d, "uesl.json", r#"{"user_event_size_limit": 9217}"#);
        assert_eq!(
            msg(start(&["-config-file", &f])),
            "Failed to start the Serf agent: Error creating Serf: user event size limit exceeds limit of 9216 bytes"
        );
        let f = write(&d, "ok.json", r#"{"user_event_size_limit": 9216}"#);
        assert!(start(&["-config-file", &f]).is_ok());
    }

    #[test]
    fn tags_and_keyring_files() {
        let d = scratch("files");
        let tf = write(&d, "tags.json", r#"{"a": "b"}"#);
        assert_eq!(
            start(&["-tags-file", &tf, "-tag", "x=y"]).unwrap_err(),
            StartError::Setup("Tags config not allowed while using tag files".into())
        );
        assert_eq!(
            start(&["-tags-file", &tf, "-role", "r"]).unwrap_err(),
            StartError::Setup("Tags config not allowed while using tag files".into())
        );
        let plan = start(&["-tags-file", &tf]).unwrap();
        assert_eq!(plan.tags.get("a").map(String::as_str), Some("b"));
        // A missing tags file is fine (it is written later).
        let missing = d.join("none.json");
        assert!(start(&["-tags-file", missing.to_str().unwrap()]).unwrap().tags.is_empty());
        let bad = write(&d, "badtags.json", r#"{"a": 1}"#);
        assert_eq!(
            start(&["-tags-file", &bad]).unwrap_err().to_string(),
            "Failed to setup the Serf agent: Failed to decode tags file: json: cannot unmarshal number into Go value of type string"
        );

        let k1 = "/2aLpXdzftBnAq1YcPOEDpnfROAsStWdMKSuHkIiedI=";
        let k2 = "qTSZo3M+NotXko4wjU6OnOGMB89vYZtNjH6sLxZPVC4=";
        let kr = write(&d, "keyring.json", &format!(r#"["{k2}", "{k1}"]"#));
        assert_eq!(
            start(&["-keyring-file", &kr, "-encrypt", k1]).unwrap_err(),
            StartError::Setup("Encryption key not allowed while using a keyring".into())
        );
        let plan = start(&["-keyring-file", &kr]).unwrap();
        assert_eq!(plan.keys.len(), 2);
        assert_eq!(plan.keys[0], decode_std(k2).unwrap());
        let empty = write(&d, "empty.json", "[]");
        assert_eq!(
            start(&["-keyring-file", &empty]).unwrap_err(),
            StartError::Setup("Keyring file contains no keys".into())
        );
        let short = write(&d, "short.json", r#"["YWJj"]"#);
        assert_eq!(
            start(&["-keyring-file", &short]).unwrap_err(),
            StartError::Setup(
                "Failed to restore keyring: key size must be 16, 24 or 32 bytes".into()
            )
        );
        let junk = write(&d, "junk.json", "{");
        assert_eq!(
            start(&["-keyring-file", &junk]).unwrap_err(),
            StartError::Setup("Failed to decode keyring file: unexpected end of JSON input".into())
        );
        assert_eq!(
            start(&["-keyring-file", "/nonexistent"]).unwrap_err(),
            StartError::Setup("stat /nonexistent: no such file or directory".into())
        );
        // With -encrypt only, that key is the keyring.
        assert_eq!(start(&["-encrypt", k1]).unwrap().keys, [decode_std(k1).unwrap()]);
    }
}
