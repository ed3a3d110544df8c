//! `serf join [options] address ...`: ask the agent to join a cluster.

use super::{connect, parse_flags, rpc_flags, texts, Ui};
use crate::go::flag::FlagSet;

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool("replay", false);
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::JOIN, ui) else { return 1 };
    if p.args.is_empty() {
        ui.error("At least one address to join must be specified.");
        ui.error("");
        ui.error(texts::JOIN);
        return 1;
    }
    let Some(mut client) = connect(&p, ui) else { return 1 };
    match client.join(p.args.clone(), p.bool("replay")) {
        Ok(n) => {
            ui.output(&format!("Successfully joined cluster by contacting {n} nodes."));
            0
        }
        Err(e) => {
            ui.error(&format!("Error joining the cluster: {e}"));
            1
        }
    }
}
