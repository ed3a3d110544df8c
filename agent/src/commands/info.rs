//! `serf info`: the agent's `stats`, as text or JSON.

use super::{connect, parse_flags, rpc_flags, texts, trim_space, Ui};
use crate::go::flag::FlagSet;
use crate::go::json::{marshal_indent, Out};
use crate::rpc::codec::StatsResponse;

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    fs.string("format", "text");
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::INFO, ui) else { return 1 };
    let Some(mut client) = connect(&p, ui) else { return 1 };
    let stats = match client.stats() {
        Ok(s) => s,
        Err(e) => {
            ui.error(&format!("Error querying agent: {e}"));
            return 1;
        }
    };
    let out = match p.str("format") {
        "text" => text(&stats),
        "json" => marshal_indent(&json(&stats)),
        other => {
            ui.error(&format!("Encoding error: Invalid output format \"{other}\""));
            return 1;
        }
    };
    ui.output(trim_space(&out));
    0
}

/// A section name and its entries (`None` for a nil map).
type Section<'a> = (&'a str, Option<Vec<(&'a str, &'a str)>>);

/// Sections sorted, and within each its entries sorted (Go sorts the keys).
fn sorted(stats: &StatsResponse) -> Vec<Section<'_>> {
    let mut sections: Vec<Section<'_>> = stats
        .0
        .iter()
        .flatten()
        .map(|(name, entries)| {
            let entries = entries.as_ref().map(|e| {
                let mut v: Vec<(&str, &str)> =
                    e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                v.sort_by(|a, b| a.0.cmp(b.0));
                v.dedup_by(|a, b| a.0 == b.0);
                v
            });
            (name.as_str(), entries)
        })
        .collect();
    sections.sort_by(|a, b| a.0.cmp(b.0));
    sections.dedup_by(|a, b| a.0 == b.0);
    sections
}

/// `key:` then `\t<k> = <v>` lines, everything sorted.
pub fn text(stats: &StatsResponse) -> String {
    let mut out = String::new();
    for (name, entries) in sorted(stats) {
        out.push_str(&format!("{name}:\n"));
        for (k, v) in entries.iter().flatten() {
            out.push_str(&format!("\t{k} = {v}\n"));
        }
    }
    out
}

/// rpc.md §7.2.
pub fn json(stats: &StatsResponse) -> Out {
    if stats.0.is_none() {
        return Out::Null;
    }
    Out::Object(
        sorted(stats)
            .into_iter()
            .map(|(name, entries)| {
                let v = match entries {
                    None => Out::Null,
                    Some(e) => Out::Object(
                        e.into_iter().map(|(k, v)| (k.to_string(), Out::str(v))).collect(),
                    ),
                };
                (name.to_string(), v)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> StatsResponse {
        StatsResponse(Some(vec![
            (
                "serf".into(),
                Some(vec![("members".into(), "2".into()), ("failed".into(), "0".into())]),
            ),
            ("agent".into(), Some(vec![("name".into(), "nodeA".into())])),
            ("event_handlers".into(), Some(vec![])),
        ]))
    }

    #[test]
    fn text_is_sorted() {
        assert_eq!(
            text(&stats()),
            "agent:\n\tname = nodeA\nevent_handlers:\nserf:\n\tfailed = 0\n\tmembers = 2\n"
        );
    }

    #[test]
    fn json_is_sorted() {
        assert_eq!(
            marshal_indent(&json(&stats())),
            "{\n  \"agent\": {\n    \"name\": \"nodeA\"\n  },\n  \"event_handlers\": {},\n  \"serf\": {\n    \
             \"failed\": \"0\",\n    \"members\": \"2\"\n  }\n}"
        );
    }
}
