//! Go's `flag` package semantics, which every `serf` subcommand exposes:
//!
//! * `-name value`, `-name=value`, `--name=value` (one or two dashes);
//! * booleans take no separate value: `-x`, `-x=false` (`-x false` leaves
//!   `false` as the first positional argument);
//! * parsing stops at the first positional argument, at `-` and after `--`;
//! * repeated flags overwrite, list flags append;
//! * errors are Go's texts: `flag provided but not defined: -x`, `flag needs
//!   an argument: -x`, `invalid value "v" for flag -x: parse error`,
//!   `invalid boolean value "v" for -x: parse error`, `bad flag syntax: ---x`;
//! * an undefined `-h`/`-help` asks for the usage text without an error.
//!
//! This is hand-written rather than built on clap: clap cannot stop at the
//! first positional argument while accepting single-dash long flags, nor
//! produce Go's messages, and the pre-pass needed to bridge the two would be
//! this parser anyway.

use std::collections::HashMap;

/// The kind and default of one flag.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `flag.Bool`.
    Bool(bool),
    /// `flag.String`.
    Str(String),
    /// `flag.Int` (64-bit, Go base-0 syntax: `10`, `0x1f`, `0o17`, `017`).
    Int(i64),
    /// `flag.Duration` (nanoseconds).
    Duration(i64),
    /// A repeatable string flag (serf's `AppendSliceValue`).
    List,
    /// A repeatable flag appending to another list flag's values (Go binds
    /// `-config-file` and `-config-dir` to one slice).
    ListInto(&'static str),
}

/// A parsed flag value.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// A bool.
    Bool(bool),
    /// A string.
    Str(String),
    /// An int.
    Int(i64),
    /// A duration in nanoseconds.
    Duration(i64),
    /// Every value given, in order.
    List(Vec<String>),
}

/// A set of flag definitions (Go `flag.FlagSet` with `ContinueOnError`).
#[derive(Clone, Debug, Default)]
pub struct FlagSet {
    defs: Vec<(&'static str, Kind)>,
}

/// Why parsing stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagError {
    /// `-h` or `-help` was given and is not defined: print the usage, fail.
    Help,
    /// A Go error message, to print on stderr before the usage.
    Invalid(String),
}

/// The values after parsing, and the remaining positional arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    values: HashMap<&'static str, Val>,
    /// Arguments after the flags.
    pub args: Vec<String>,
}

impl FlagSet {
    /// An empty set.
    pub fn new() -> Self {
        FlagSet::default()
    }

    /// Defines a flag; a later definition of the same name replaces it.
    pub fn define(&mut self, name: &'static str, kind: Kind) -> &mut Self {
        self.defs.retain(|(n, _)| *n != name);
        self.defs.push((name, kind));
        self
    }

    /// `flag.Bool`.
    pub fn bool(&mut self, name: &'static str, default: bool) -> &mut Self {
        self.define(name, Kind::Bool(default))
    }

    /// `flag.String`.
    pub fn string(&mut self, name: &'static str, default: &str) -> &mut Self {
        self.define(name, Kind::Str(default.to_string()))
    }

    /// `flag.Int`.
    pub fn int(&mut self, name: &'static str, default: i64) -> &mut Self {
        self.define(name, Kind::Int(default))
    }

    /// `flag.Duration`.
    pub fn duration(&mut self, name: &'static str, default_ns: i64) -> &mut Self {
        self.define(name, Kind::Duration(default_ns))
    }

    /// A repeatable flag collecting every value.
    pub fn list(&mut self, name: &'static str) -> &mut Self {
        self.define(name, Kind::List)
    }

    /// A repeatable flag whose values join list flag `target`'s, in
    /// command-line order.
    pub fn list_into(&mut self, name: &'static str, target: &'static str) -> &mut Self {
        self.define(name, Kind::ListInto(target))
    }

    /// Parses `args` (the arguments after the subcommand name).
    pub fn parse(&self, args: &[String]) -> Result<Parsed, FlagError> {
        let mut values: HashMap<&'static str, Val> = self
            .defs
            .iter()
            .map(|(n, k)| {
                let v = match k {
                    Kind::Bool(b) => Val::Bool(*b),
                    Kind::Str(s) => Val::Str(s.clone()),
                    Kind::Int(i) => Val::Int(*i),
                    Kind::Duration(d) => Val::Duration(*d),
                    Kind::List | Kind::ListInto(_) => Val::List(Vec::new()),
                };
                (*n, v)
            })
            .collect();
        let mut i = 0;
        while i < args.len() {
            let s = args[i].as_str();
            if s.len() < 2 || !s.starts_with('-') {
                break;
            }
            let mut dashes = 1;
            if s.as_bytes()[1] == b'-' {
                dashes = 2;
                if s.len() == 2 {
                    i += 1;
                    break;
                }
            }
            let body = &s[dashes..];
            if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
                return Err(FlagError::Invalid(format!("bad flag syntax: {s}")));
            }
            i += 1;
            let (name, value) = match body.bytes().skip(1).position(|c| c == b'=') {
                Some(p) => (&body[..p + 1], Some(&body[p + 2..])),
                None => (body, None),
            };
            let Some((def_name, kind)) = self.defs.iter().find(|(n, _)| *n == name) else {
                if name == "help" || name == "h" {
                    return Err(FlagError::Help);
                }
                return Err(FlagError::Invalid(format!("flag provided but not defined: -{name}")));
            };
            if let Kind::Bool(_) = kind {
                let b = match value {
                    None => true,
                    Some(v) => parse_bool(v).ok_or_else(|| {
                        FlagError::Invalid(format!(
                            "invalid boolean value {} for -{name}: parse error",
                            super::fmt::quote_str(v)
                        ))
                    })?,
                };
                values.insert(def_name, Val::Bool(b));
                continue;
            }
            let value = match value {
                Some(v) => v.to_string(),
                None => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => {
                        return Err(FlagError::Invalid(format!("flag needs an argument: -{name}")))
                    }
                },
            };
            let bad = |why: &str| {
                FlagError::Invalid(format!(
                    "invalid value {} for flag -{name}: {why}",
                    super::fmt::quote_str(&value)
                ))
            };
            let v = match kind {
                Kind::Str(_) => Val::Str(value.clone()),
                Kind::Int(_) => Val::Int(parse_int(&value).map_err(&bad)?),
                Kind::Duration(_) => Val::Duration(
                    super::time::parse_duration(&value).map_err(|_| bad("parse error"))?,
                ),
                Kind::List | Kind::ListInto(_) => {
                    let target = match kind {
                        Kind::ListInto(t) => *t,
                        _ => *def_name,
                    };
                    let mut l = match values.remove(target) {
                        Some(Val::List(l)) => l,
                        _ => Vec::new(),
                    };
                    l.push(value.clone());
                    values.insert(target, Val::List(l));
                    continue;
                }
                Kind::Bool(_) => unreachable!("handled above"),
            };
            values.insert(def_name, v);
        }
        Ok(Parsed { values, args: args[i..].to_vec() })
    }
}

impl Parsed {
    /// A bool flag's value (false if undefined).
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Val::Bool(true)))
    }

    /// A string flag's value (empty if undefined).
    pub fn str(&self, name: &str) -> &str {
        match self.values.get(name) {
            Some(Val::Str(s)) => s,
            _ => "",
        }
    }

    /// An int flag's value (0 if undefined).
    pub fn int(&self, name: &str) -> i64 {
        match self.values.get(name) {
            Some(Val::Int(i)) => *i,
            _ => 0,
        }
    }

    /// A duration flag's value in nanoseconds (0 if undefined).
    pub fn duration(&self, name: &str) -> i64 {
        match self.values.get(name) {
            Some(Val::Duration(d)) => *d,
            _ => 0,
        }
    }

    /// A list flag's values (empty if undefined or never given).
    pub fn list(&self, name: &str) -> &[String] {
        match self.values.get(name) {
            Some(Val::List(l)) => l,
            _ => &[],
        }
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)` with the flag package's error words
/// (`parse error`, `value out of range`).
pub fn parse_int(s: &str) -> Result<i64, &'static str> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    if digits.is_empty() || !underscores_ok(digits, prefixed) {
        return Err("parse error");
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || !clean.chars().all(|c| c.is_digit(radix)) {
        return Err("parse error");
    }
    let mag = u128::from_str_radix(&clean, radix).map_err(|_| "value out of range")?;
    let v = if neg { -(mag as i128) } else { mag as i128 };
    i64::try_from(v).map_err(|_| "value out of range")
}

/// Go allows `_` in base-0 literals only between digits (or right after a
/// base prefix).
fn underscores_ok(digits: &str, prefixed: bool) -> bool {
    if !digits.contains('_') {
        return true;
    }
    let b = digits.as_bytes();
    let mut prev_digit = prefixed;
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            if !prev_digit || i + 1 == b.len() {
                return false;
            }
            prev_digit = false;
        } else {
            prev_digit = true;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn set() -> FlagSet {
        let mut f = FlagSet::new();
        f.bool("coalesce", true)
            .string("rpc-addr", "127.0.0.1:7373")
            .int("relay-factor", 0)
            .duration("timeout", 0)
            .list("tag")
            .list_into("alias", "tag");
        f
    }

    #[test]
    fn forms_and_stop_at_first_positional() {
        let p = set()
            .parse(&argv(&[
                "-coalesce=false",
                "--rpc-addr=x:1",
                "-tag",
                "a=b",
                "-tag=c=d",
                "-alias=e",
                "-relay-factor",
                "3",
                "-timeout=1s",
                "name",
                "-rpc-addr=y",
            ]))
            .unwrap();
        assert!(!p.bool("coalesce"));
        assert_eq!(p.str("rpc-addr"), "x:1");
        assert_eq!(p.list("tag"), ["a=b", "c=d", "e"]);
        assert_eq!(p.int("relay-factor"), 3);
        assert_eq!(p.duration("timeout"), 1_000_000_000);
        assert_eq!(p.args, ["name", "-rpc-addr=y"]);
    }

    #[test]
    fn booleans_never_take_the_next_argument() {
        let p = set().parse(&argv(&["-coalesce", "false"])).unwrap();
        assert!(p.bool("coalesce"));
        assert_eq!(p.args, ["false"]);
    }

    #[test]
    fn terminators() {
        let p = set().parse(&argv(&["--", "-coalesce"])).unwrap();
        assert_eq!(p.args, ["-coalesce"]);
        let p = set().parse(&argv(&["-", "x"])).unwrap();
        assert_eq!(p.args, ["-", "x"]);
        let p = set().parse(&argv(&[])).unwrap();
        assert!(p.args.is_empty());
        assert_eq!(p.str("rpc-addr"), "127.0.0.1:7373");
    }

    #[test]
    fn go_error_texts() {
        let err = |a: &[&str]| match set().parse(&argv(a)) {
            Err(FlagError::Invalid(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(err(&["-x"]), "flag provided but not defined: -x");
        assert_eq!(err(&["--bogus=1"]), "flag provided but not defined: -bogus");
        assert_eq!(err(&["-rpc-addr"]), "flag needs an argument: -rpc-addr");
        assert_eq!(
            err(&["-relay-factor=abc"]),
            "invalid value \"abc\" for flag -relay-factor: parse error"
        );
        assert_eq!(
            err(&["-relay-factor=99999999999999999999"]),
            "invalid value \"99999999999999999999\" for flag -relay-factor: value out of range"
        );
        assert_eq!(err(&["-timeout=5"]), "invalid value \"5\" for flag -timeout: parse error");
        assert_eq!(
            err(&["-coalesce=maybe"]),
            "invalid boolean value \"maybe\" for -coalesce: parse error"
        );
        assert_eq!(err(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(err(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(set().parse(&argv(&["-h"])), Err(FlagError::Help));
        assert_eq!(set().parse(&argv(&["--help=1"])), Err(FlagError::Help));
    }

    #[test]
    fn go_int_syntax() {
        assert_eq!(parse_int("10"), Ok(10));
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(parse_int("0x1F"), Ok(31));
        assert_eq!(parse_int("017"), Ok(15));
        assert_eq!(parse_int("0o17"), Ok(15));
        assert_eq!(parse_int("0b101"), Ok(5));
        assert_eq!(parse_int("1_000"), Ok(1000));
        assert_eq!(parse_int("1__0"), Err("parse error"));
        assert_eq!(parse_int("08"), Err("parse error"));
        assert_eq!(parse_int(""), Err("parse error"));
        assert_eq!(parse_int("9223372036854775808"), Err("value out of range"));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
    }
}
