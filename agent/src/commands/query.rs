//! `serf query [options] name [payload]`: dispatch a query and print the
//! acks and responses as they arrive (text) or at the end (JSON).

use super::{connect, interrupted, parse_flags, rpc_flags, texts, trim_space, unmarshal_tags, Ui};
use crate::go::flag::FlagSet;
use crate::go::json::{marshal_indent, Out};
use crate::rpc::client::{Incoming, QueryParams};
use crate::rpc::codec::query_record;

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    fs.list("node")
        .list("tag")
        .duration("timeout", 0)
        .bool("no-ack", false)
        .string("format", "text")
        .int("relay-factor", 0);
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::QUERY, ui) else { return 1 };
    let filter_tags = match unmarshal_tags(p.list("tag")) {
        Ok(t) => t,
        Err(e) => {
            ui.error(&format!("Error: {e}"));
            return 1;
        }
    };
    let (name, payload) = match p.args.as_slice() {
        [] => {
            ui.error("A query name must be specified.");
            ui.error("");
            ui.error(texts::QUERY);
            return 1;
        }
        [name] => (name.clone(), None),
        [name, payload] => (name.clone(), Some(payload.as_bytes().to_vec())),
        _ => {
            ui.error("Too many command line arguments. Only a name and payload must be specified.");
            ui.error("");
            ui.error(texts::QUERY);
            return 1;
        }
    };
    let relay_factor = match u8::try_from(p.int("relay-factor")) {
        Ok(r) => r,
        Err(_) => {
            ui.error("Relay factor must be between 0 and 255");
            return 1;
        }
    };
    let Some(mut client) = connect(&p, ui) else { return 1 };
    let no_ack = p.bool("no-ack");
    let mut out = match p.str("format") {
        "text" => Collector::Text { name: name.clone(), no_ack, acks: 0, responses: 0 },
        "json" => Collector::Json { acks: Vec::new(), responses: Vec::new() },
        other => {
            ui.error(&format!("Invalid format: {other}"));
            return 1;
        }
    };
    let nodes = p.list("node");
    let params = QueryParams {
        filter_nodes: (!nodes.is_empty()).then(|| nodes.to_vec()),
        filter_tags: Some(filter_tags),
        request_ack: !no_ack,
        relay_factor,
        timeout_ns: p.duration("timeout"),
        name,
        payload,
    };
    if let Err(e) = client.query(params) {
        ui.error(&format!("Error sending query: {e}"));
        return 1;
    }
    out.started(ui);
    loop {
        match client.next_event(&interrupted) {
            Ok(None) => return 1,
            Ok(Some(Incoming::Query { record, .. })) => {
                // Go ends the loop on a closed channel, which reads as an
                // empty name; an empty `From` does the same.
                if record.kind == query_record::DONE || record.from.is_empty() {
                    break;
                }
                match record.kind.as_str() {
                    query_record::ACK => out.ack(ui, &record.from),
                    query_record::RESPONSE => {
                        out.response(ui, &record.from, record.payload.as_deref().unwrap_or(&[]))
                    }
                    _ => {}
                }
            }
            Ok(Some(_)) => {}
            // The connection dropped: Go closes the channels and finishes.
            Err(_) => break,
        }
    }
    out.finished(ui)
}

/// Go's `textQueryRespFormat` / `jsonQueryRespFormat`.
enum Collector {
    Text { name: String, no_ack: bool, acks: usize, responses: usize },
    Json { acks: Vec<String>, responses: Vec<(String, Vec<u8>)> },
}

impl Collector {
    fn started(&self, ui: &mut Ui<'_>) {
        if let Collector::Text { name, .. } = self {
            ui.output(&format!("Query '{name}' dispatched"));
        }
    }

    fn ack(&mut self, ui: &mut Ui<'_>, from: &str) {
        match self {
            Collector::Text { acks, .. } => {
                *acks += 1;
                ui.info(&format!("Ack from '{from}'"));
            }
            Collector::Json { acks, .. } => acks.push(from.to_string()),
        }
    }

    fn response(&mut self, ui: &mut Ui<'_>, from: &str, payload: &[u8]) {
        match self {
            Collector::Text { responses, .. } => {
                *responses += 1;
                let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
                let mut line = format!("Response from '{from}': ").into_bytes();
                line.extend_from_slice(payload);
                ui.output_bytes(&line);
            }
            Collector::Json { responses, .. } => {
                match responses.iter_mut().find(|(f, _)| f == from) {
                    Some(slot) => slot.1 = payload.to_vec(),
                    None => responses.push((from.to_string(), payload.to_vec())),
                }
            }
        }
    }

    fn finished(&self, ui: &mut Ui<'_>) -> i32 {
        match self {
            Collector::Text { no_ack, acks, responses, .. } => {
                if !no_ack {
                    ui.output(&format!("Total Acks: {acks}"));
                }
                ui.output(&format!("Total Responses: {responses}"));
            }
            Collector::Json { acks, responses } => {
                ui.output(trim_space(&marshal_indent(&json(acks, responses))));
            }
        }
        0
    }
}

/// rpc.md §7.3: `Acks` null when empty, `Responses` sorted by node.
fn json(acks: &[String], responses: &[(String, Vec<u8>)]) -> Out {
    let acks = if acks.is_empty() {
        Out::Null
    } else {
        Out::Array(acks.iter().map(|a| Out::str(a)).collect())
    };
    let mut resp: Vec<(String, Out)> =
        responses.iter().map(|(f, p)| (f.clone(), Out::Str(p.clone()))).collect();
    resp.sort_by(|a, b| a.0.cmp(&b.0));
    Out::Object(vec![("Acks".into(), acks), ("Responses".into(), Out::Object(resp))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        assert_eq!(
            marshal_indent(&json(&["nodeB".into()], &[("nodeB".into(), b"resp-from-nodeB\n".to_vec())])),
            "{\n  \"Acks\": [\n    \"nodeB\"\n  ],\n  \"Responses\": {\n    \"nodeB\": \"resp-from-nodeB\\n\"\n  }\n}"
        );
        assert_eq!(marshal_indent(&json(&[], &[])), "{\n  \"Acks\": null,\n  \"Responses\": {}\n}");
    }
}
