//! Normalisations for comparing CLI output where the Go binary itself is
//! random or timing-dependent (map orders, arrival orders, timings); each
//! is applied to both outputs alike.
#![allow(dead_code)]

pub fn exact(s: &str) -> String {
    s.to_string()
}

/// `members` text: rows sorted, tags cells sorted, trailing gutters
/// dropped (Go trims only its last row, and which row is last is random).
pub fn norm_members(s: &str) -> String {
    let mut lines: Vec<String> = s
        .lines()
        .map(|l| {
            l.trim_end()
                .split(' ')
                .map(|tok| {
                    if tok.contains('=') {
                        let mut parts: Vec<&str> = tok.split(',').collect();
                        parts.sort_unstable();
                        parts.join(",")
                    } else {
                        tok.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

pub fn sorted_lines(s: &str) -> String {
    let mut lines: Vec<&str> = s.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// JSON with `members` sorted by name and `Acks` sorted.
pub fn norm_json(s: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(s) else { return s.to_string() };
    if let Some(m) = v.get_mut("members").and_then(|m| m.as_array_mut()) {
        m.sort_by_key(|x| x["name"].as_str().unwrap_or("").to_string());
    }
    if let Some(a) = v.get_mut("Acks").and_then(|a| a.as_array_mut()) {
        a.sort_by_key(|x| x.as_str().unwrap_or("").to_string());
    }
    format!("{v:#}")
}

/// `query` text: first line and the totals exact, the rest as a multiset.
pub fn norm_query(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let totals = lines.iter().rev().take_while(|l| l.starts_with("Total ")).count();
    if lines.len() < 1 + totals {
        return s.to_string();
    }
    let mut middle: Vec<&str> = lines[1..lines.len() - totals].to_vec();
    middle.sort_unstable();
    let mut out = vec![lines[0]];
    out.extend(middle);
    out.extend(&lines[lines.len() - totals..]);
    out.join("\n")
}

/// `info`: volatile counters masked (text and JSON forms).
pub fn norm_info(s: &str) -> String {
    const VOLATILE: &[&str] = &[
        "goroutines",
        "event_time",
        "member_time",
        "query_time",
        "event_queue",
        "query_queue",
        "intent_queue",
        "health_score",
        "coordinate_resets",
    ];
    s.lines()
        .map(|l| {
            for k in VOLATILE {
                if l.starts_with(&format!("\t{k} = ")) {
                    return format!("\t{k} = N");
                }
                if l.trim_start().starts_with(&format!("\"{k}\": ")) {
                    let indent = &l[..l.len() - l.trim_start().len()];
                    let comma = if l.ends_with(',') { "," } else { "" };
                    return format!("{indent}\"{k}\": N{comma}");
                }
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `rtt`: `... rtt: 0.342 ms` → `... rtt: N ms`, checking the format.
pub fn norm_rtt(s: &str) -> String {
    s.lines()
        .map(|l| match l.split_once(" rtt: ") {
            Some((head, ms)) => {
                let num = ms.strip_suffix(" ms").unwrap_or("bad");
                let (int, frac) = num.split_once('.').unwrap_or(("", ""));
                assert!(
                    !int.is_empty() && frac.len() == 3 && num.parse::<f64>().is_ok(),
                    "bad rtt {l:?}"
                );
                format!("{head} rtt: N ms")
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `reachability`: timings masked, ack lines sorted in place.
pub fn norm_reach(s: &str) -> String {
    let mut acks: Vec<&str> = s.lines().filter(|l| l.starts_with("\tAck from")).collect();
    acks.sort_unstable();
    let mut acks = acks.into_iter();
    s.lines()
        .map(|l| {
            if l.starts_with("\tAck from") {
                acks.next().unwrap_or("").to_string()
            } else if l.starts_with("Query time: ") {
                "Query time: N sec, time to last response: N sec".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `Event Info:` block that mentions `needle`, lines sorted.
pub fn event_block(out: &str, needle: &str) -> Option<String> {
    let lines: Vec<&str> = out.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if *l != "Event Info:" {
            continue;
        }
        let mut block: Vec<&str> =
            lines[i + 1..].iter().take_while(|l| l.starts_with('\t')).copied().collect();
        if block.iter().any(|l| l.contains(needle)) {
            block.sort_unstable();
            return Some(block.join("\n"));
        }
    }
    None
}
