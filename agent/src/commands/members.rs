//! `serf members`: list the agent's members, as text columns or JSON.

use super::{connect, parse_flags, rpc_flags, texts, trim_space, unmarshal_tags, Ui};
use crate::go::columnize::simple_format;
use crate::go::flag::FlagSet;
use crate::go::json::{marshal_indent, Out};
use crate::go::net::tcp_addr_string;
use crate::rpc::codec::Member;

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool("detailed", false)
        .string("role", "")
        .string("status", "")
        .string("format", "text")
        .list("tag")
        .string("name", "");
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::MEMBERS, ui) else { return 1 };
    let mut tags = p.list("tag").to_vec();
    if !p.str("role").is_empty() {
        ui.output("Deprecation warning: 'Role' has been replaced with 'Tags'");
        tags.push(format!("role={}", p.str("role")));
    }
    let filter = match unmarshal_tags(&tags) {
        Ok(t) => t,
        Err(e) => {
            ui.error(&format!("Error: {e}"));
            return 1;
        }
    };
    let Some(mut client) = connect(&p, ui) else { return 1 };
    let members = match client.members_filtered(filter, p.str("status"), p.str("name")) {
        Ok(m) => m,
        Err(e) => {
            ui.error(&format!("Error retrieving members: {e}"));
            return 1;
        }
    };
    let out = match p.str("format") {
        "text" => text(&members, p.bool("detailed")),
        "json" => marshal_indent(&json(&members)),
        other => {
            ui.error(&format!("Encoding error: Invalid output format \"{other}\""));
            return 1;
        }
    };
    ui.output(trim_space(&out));
    0
}

/// The text table: `name|addr|status|tags[|Protocol Version…]` columnized.
pub fn text(members: &[Member], detailed: bool) -> String {
    let lines: Vec<String> = members
        .iter()
        .map(|m| {
            let tags: Vec<String> =
                m.tags.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
            let mut line = format!(
                "{}|{}|{}|{}",
                m.name,
                tcp_addr_string(m.addr.as_deref().unwrap_or(&[]), m.port),
                m.status,
                tags.join(",")
            );
            if detailed {
                line.push_str(&format!(
                    "|Protocol Version: {}|Available Protocol Range: [{}, {}]",
                    m.delegate_cur, m.delegate_min, m.delegate_max
                ));
            }
            line
        })
        .collect();
    simple_format(&lines)
}

/// The JSON document (rpc.md §7.1); `"members": null` when there are none.
pub fn json(members: &[Member]) -> Out {
    let list = if members.is_empty() {
        Out::Null
    } else {
        Out::Array(
            members
                .iter()
                .map(|m| {
                    Out::Object(vec![
                        ("name".into(), Out::str(&m.name)),
                        (
                            "addr".into(),
                            Out::str(&tcp_addr_string(m.addr.as_deref().unwrap_or(&[]), m.port)),
                        ),
                        ("port".into(), Out::Uint(u64::from(m.port))),
                        ("tags".into(), Out::string_map(m.tags.as_deref())),
                        ("status".into(), Out::str(&m.status)),
                        (
                            "protocol".into(),
                            Out::Object(vec![
                                ("max".into(), Out::Uint(u64::from(m.delegate_max))),
                                ("min".into(), Out::Uint(u64::from(m.delegate_min))),
                                ("version".into(), Out::Uint(u64::from(m.delegate_cur))),
                            ]),
                        ),
                    ])
                })
                .collect(),
        )
    };
    Out::Object(vec![("members".into(), list)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, last: u8, tags: &[(&str, &str)]) -> Member {
        Member {
            addr: Some(vec![127, 0, 1, last]),
            name: name.into(),
            port: 7946,
            status: "alive".into(),
            tags: Some(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            delegate_cur: 5,
            delegate_min: 2,
            delegate_max: 5,
            ..Default::default()
        }
    }

    #[test]
    fn text_columns_with_gutter_quirk() {
        let m = [member("nodeLongName", 72, &[]), member("nodeQ", 71, &[("a", "b")])];
        assert_eq!(
            text(&m, false),
            "nodeLongName  127.0.1.72:7946  alive  \nnodeQ         127.0.1.71:7946  alive  a=b"
        );
        assert_eq!(
            text(&m[1..], true),
            "nodeQ  127.0.1.71:7946  alive  a=b  Protocol Version: 5  Available Protocol Range: [2, 5]"
        );
    }

    #[test]
    fn json_shape() {
        let m = [member("nodeA", 1, &[("role", "web"), ("dc", "east")])];
        assert_eq!(
            marshal_indent(&json(&m)),
            "{\n  \"members\": [\n    {\n      \"name\": \"nodeA\",\n      \"addr\": \"127.0.1.1:7946\",\n      \
             \"port\": 7946,\n      \"tags\": {\n        \"dc\": \"east\",\n        \"role\": \"web\"\n      },\n      \
             \"status\": \"alive\",\n      \"protocol\": {\n        \"max\": 5,\n        \"min\": 2,\n        \
             \"version\": 5\n      }\n    }\n  ]\n}"
        );
        assert_eq!(marshal_indent(&json(&[])), "{\n  \"members\": null\n}");
    }
}
