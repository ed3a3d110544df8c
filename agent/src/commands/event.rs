//! `serf event [options] name [payload]`: dispatch a user event.

use super::{connect, parse_flags, rpc_flags, texts, Ui};
use crate::go::flag::FlagSet;

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool("coalesce", true);
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::EVENT, ui) else { return 1 };
    let coalesce = p.bool("coalesce");
    let (name, payload) = match p.args.as_slice() {
        [] => {
            ui.error("An event name must be specified.");
            ui.error("");
            ui.error(texts::EVENT);
            return 1;
        }
        [name] => (name, None),
        [name, payload] => (name, Some(payload.as_bytes().to_vec())),
        _ => {
            ui.error("Too many command line arguments. Only a name and payload must be specified.");
            ui.error("");
            ui.error(texts::EVENT);
            return 1;
        }
    };
    let Some(mut client) = connect(&p, ui) else { return 1 };
    if let Err(e) = client.user_event(name, payload, coalesce) {
        ui.error(&format!("Error sending event: {e}"));
        return 1;
    }
    ui.output(&format!("Event '{name}' dispatched! Coalescing enabled: {coalesce}"));
    0
}
