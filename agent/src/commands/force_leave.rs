//! `serf force-leave [options] name`: move a member to "left".

use super::{connect, parse_flags, rpc_flags, texts, Ui};
use crate::go::flag::FlagSet;

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool("prune", false);
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::FORCE_LEAVE, ui) else { return 1 };
    let [node] = p.args.as_slice() else {
        ui.error("A node name must be specified to force leave.");
        ui.error("");
        ui.error(texts::FORCE_LEAVE);
        return 1;
    };
    let Some(mut client) = connect(&p, ui) else { return 1 };
    if let Err(e) = client.force_leave(node, p.bool("prune")) {
        ui.error(&format!("Error force leaving: {e}"));
        return 1;
    }
    0
}
