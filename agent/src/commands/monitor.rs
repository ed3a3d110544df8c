//! `serf monitor [-log-level=level]`: stream the agent's log lines and
//! events until Ctrl-C (exit 0) or until the agent goes away (exit 1).

use super::{connect, interrupted, parse_flags, rpc_flags, texts, Ui};
use crate::go::flag::FlagSet;
use crate::go::fmt::sharp_v;
use crate::rpc::client::Incoming;
use crate::rpc::codec::Value;

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    fs.string("log-level", "INFO");
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::MONITOR, ui) else { return 1 };
    let Some(mut client) = connect(&p, ui) else { return 1 };
    let stream = match client.stream("*") {
        Ok(h) => h,
        Err(e) => {
            ui.error(&format!("Error starting stream: {e}"));
            return 1;
        }
    };
    let monitor = match client.monitor(p.str("log-level")) {
        Ok(h) => h,
        Err(e) => {
            ui.error(&format!("Error starting monitor: {e}"));
            let _ = client.stop(stream);
            return 1;
        }
    };
    loop {
        match client.next_event(&interrupted) {
            Ok(None) => {
                // Ctrl-C: stop both subscriptions (Go's deferred Stops).
                let _ = client.stop(monitor);
                let _ = client.stop(stream);
                return 0;
            }
            Ok(Some(Incoming::Log { line, .. })) => {
                if line.is_empty() {
                    break;
                }
                ui.info(&line);
            }
            Ok(Some(Incoming::Stream { record, .. })) => print_event(ui, &record),
            Ok(Some(Incoming::Query { .. })) => {}
            Err(_) => break,
        }
    }
    ui.info("");
    ui.output(
        "Remote side ended the monitor! This usually means that the\n\
         remote side has exited or crashed.",
    );
    1
}

/// `Event Info:` and one `\t<key>: <%#v of value>` line per record field.
/// Go ranges over a map (random order); this keeps the agent's order.
pub fn print_event(ui: &mut Ui<'_>, record: &Value) {
    ui.info("Event Info:");
    if let Value::Map(entries) = record {
        for (k, v) in entries {
            let key = match k {
                Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
                other => sharp_v(other),
            };
            let mut line = format!("\t{key}: ").into_bytes();
            line.extend_from_slice(sharp_v(v).as_bytes());
            ui.output_bytes(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines() {
        let rec = Value::Map(vec![
            (Value::Str(b"Event".to_vec()), Value::Str(b"user".to_vec())),
            (Value::Str(b"LTime".to_vec()), Value::Int(1)),
            (Value::Str(b"Payload".to_vec()), Value::Bin(b"hi".to_vec())),
            (Value::Str(b"Coalesce".to_vec()), Value::Bool(false)),
        ]);
        let mut out = Vec::new();
        print_event(&mut Ui::new(&mut out), &rec);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Event Info:\n\tEvent: \"user\"\n\tLTime: 1\n\tPayload: []byte{0x68, 0x69}\n\tCoalesce: false\n"
        );
    }
}
