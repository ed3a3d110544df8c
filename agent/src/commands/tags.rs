//! `serf tags -set key=value -delete key`: change the agent's tags.

use super::{connect, parse_flags, rpc_flags, texts, unmarshal_tags, Ui};
use crate::go::flag::FlagSet;

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    fs.list("set").list("delete");
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::TAGS, ui) else { return 1 };
    if p.list("set").is_empty() && p.list("delete").is_empty() {
        ui.output(texts::TAGS);
        return 1;
    }
    // Go connects before validating the tags.
    let Some(mut client) = connect(&p, ui) else { return 1 };
    let tags = match unmarshal_tags(p.list("set")) {
        Ok(t) => t,
        Err(e) => {
            ui.error(&format!("Error: {e}"));
            return 1;
        }
    };
    let delete = (!p.list("delete").is_empty()).then(|| p.list("delete").to_vec());
    if let Err(e) = client.update_tags(tags, delete) {
        ui.error(&format!("Error setting tags: {e}"));
        return 1;
    }
    ui.output("Successfully updated agent tags");
    0
}
