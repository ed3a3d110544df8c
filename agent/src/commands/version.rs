//! `serf version`: the version lines of the Go binary this replaces.

use super::Ui;

/// The version the Debian serf 0.9.4 binary reports.
pub const VERSION: &str = "0.8.2-dev";
/// Newest Serf protocol spoken.
pub const PROTOCOL_MAX: u8 = 5;
/// Oldest Serf protocol understood.
pub const PROTOCOL_MIN: u8 = 2;

/// Runs the command (arguments are ignored, as in Go); returns 0.
pub fn run(_args: &[String], ui: &mut Ui<'_>) -> i32 {
    ui.output(VERSION);
    ui.output(&format!("Agent Protocol: {PROTOCOL_MAX} (Understands back to: {PROTOCOL_MIN})"));
    0
}
