//! `serf leave`: the agent leaves gracefully and shuts down.

use super::{connect, parse_flags, rpc_flags, texts, Ui};
use crate::go::flag::FlagSet;

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::LEAVE, ui) else { return 1 };
    let Some(mut client) = connect(&p, ui) else { return 1 };
    if let Err(e) = client.leave() {
        ui.error(&format!("Error leaving: {e}"));
        return 1;
    }
    ui.output("Graceful leave complete");
    0
}
