//! `serf agent`: parse and validate the configuration (cli.md §2). Starting
//! the agent runtime is not part of this binary yet; this command says so
//! and exits 1 after validating, exactly where the Go agent would start.

use super::{texts, Ui};
use crate::config::{self, Loaded, ReadError};

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let loaded = match read(args, ui) {
        Some(l) => l,
        None => return 1,
    };
    ui.output("==> Starting Serf agent...");
    if let Err(e) = config::prepare_start(&loaded.config) {
        ui.output(&format!("==> {e}"));
        return 1;
    }
    ui.output(
        "==> Failed to start the Serf agent: the agent runtime is not built into this binary yet",
    );
    1
}

/// Reads the configuration from `args` (flags, files, defaults), printing
/// warnings and errors the way the Go agent does (`==> ` prefix on the
/// first line). `None` means "exit 1".
pub fn read(args: &[String], ui: &mut Ui<'_>) -> Option<Loaded> {
    match config::read_config(args) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                ui.output(&format!("==> {w}"));
            }
            Some(loaded)
        }
        Err(ReadError::Usage(msg)) => {
            if let Some(msg) = msg {
                eprintln!("{msg}");
            }
            ui.output(&format!("==> {}", texts::AGENT));
            None
        }
        Err(ReadError::Invalid { warnings, message }) => {
            for w in &warnings {
                ui.output(&format!("==> {w}"));
            }
            ui.output(&format!("==> {message}"));
            None
        }
    }
}
