//! `serf keys -install|-use|-remove <key> | -list`: manage the cluster's
//! encryption keyring.

use super::{connect, parse_flags, rpc_flags, texts, Ui};
use crate::go::columnize::simple_format;
use crate::go::flag::FlagSet;
use crate::rpc::client::KeyError;

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    fs.string("install", "").string("use", "").string("remove", "").bool("list", false);
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::KEYS, ui) else { return 1 };
    let list = p.bool("list");
    let mut found = list;
    for arg in ["install", "use", "remove"].map(|f| p.str(f)) {
        if found && !arg.is_empty() {
            ui.error("Only one of -install, -use, -remove, or -list allowed");
            return 1;
        }
        found = found || !arg.is_empty();
    }
    if !found {
        ui.error(texts::KEYS);
        return 1;
    }
    let Some(mut client) = connect(&p, ui) else { return 1 };
    // Info lines carry the "==> " prefix (Go's PrefixedUi).
    if list {
        ui.info("==> Asking all members for installed keys...");
        match client.list_keys() {
            Ok(resp) => {
                ui.info("==> Keys gathered, listing cluster keys...");
                ui.output("");
                let lines: Vec<String> = resp
                    .keys
                    .iter()
                    .flatten()
                    .map(|(k, n)| format!("{k} | [{n}/{}]", resp.num_nodes))
                    .collect();
                ui.output(&simple_format(&lines));
                0
            }
            Err(e) => failed(ui, &e, "Failed to gather member keys"),
        }
    } else {
        let (op, key) = if !p.str("install").is_empty() {
            (Op::Install, p.str("install"))
        } else if !p.str("use").is_empty() {
            (Op::Use, p.str("use"))
        } else {
            (Op::Remove, p.str("remove"))
        };
        let (start, done, fail) = op.texts();
        ui.info(&format!("==> {start}"));
        let r = match op {
            Op::Install => client.install_key(key),
            Op::Use => client.use_key(key),
            Op::Remove => client.remove_key(key),
        };
        match r {
            Ok(_) => {
                ui.info(&format!("==> {done}"));
                0
            }
            Err(e) => failed(ui, &e, fail),
        }
    }
}

/// A keyring change.
#[derive(Clone, Copy)]
enum Op {
    Install,
    Use,
    Remove,
}

impl Op {
    /// Start line, success line, error prefix.
    fn texts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Op::Install => (
                "Installing key on all members...",
                "Successfully installed key!",
                "Error installing key",
            ),
            Op::Use => (
                "Changing primary key on all members...",
                "Successfully changed primary key!",
                "Error changing primary key",
            ),
            Op::Remove => (
                "Removing key on all members...",
                "Successfully removed key!",
                "Error removing key",
            ),
        }
    }
}

/// The per-node failure table, a blank line and `<what>: <error>`.
fn failed(ui: &mut Ui<'_>, e: &KeyError, what: &str) -> i32 {
    let messages = e.response.messages.as_deref().unwrap_or(&[]);
    if !messages.is_empty() {
        let lines: Vec<String> =
            messages.iter().map(|(node, msg)| format!("failed: | {node} | {msg}")).collect();
        ui.error(&simple_format(&lines));
    }
    ui.error("");
    ui.error(&format!("{what}: {}", e.error));
    1
}
