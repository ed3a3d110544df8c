//! `serf reachability [-verbose]`: ping every member with the internal
//! `_serf_ping` query and compare the acks with the live members.

use std::collections::BTreeSet;

use super::{connect, interrupted, parse_flags, rpc_flags, texts, Ui};
use crate::go::flag::FlagSet;
use crate::rpc::client::{Incoming, QueryParams};
use crate::rpc::codec::query_record;

const TOO_MANY_ACKS: &str =
    "This could mean Serf is detecting false-failures due to a misconfiguration or network issue.";
const TOO_FEW_ACKS: &str =
    "This could mean Serf gossip packets are being lost due to a misconfiguration or network issue.";
const DUPLICATE_RESPONSES: &str =
    "Duplicate responses means there is a misconfiguration. Verify that node names are unique.";
const TROUBLESHOOTING: &str = "
Troubleshooting tips:
* Ensure that the bind addr:port is accessible by all other nodes
* If an advertise address is set, ensure it routes to the bind address
* Check that no nodes are behind a NAT
* If nodes are behind firewalls or iptables, check that Serf traffic is permitted (UDP and TCP)
* Verify networking equipment is functional";

/// Runs the command; returns the exit code.
#[allow(clippy::disallowed_methods)] // A CLI measuring wall time reads the clock.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool("verbose", false);
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::REACHABILITY, ui) else { return 1 };
    let verbose = p.bool("verbose");
    let Some(mut client) = connect(&p, ui) else { return 1 };
    let members = match client.members() {
        Ok(m) => m,
        Err(e) => {
            ui.error(&format!("Error getting members: {e}"));
            return 1;
        }
    };
    let live: BTreeSet<&str> =
        members.iter().filter(|m| m.status == "alive").map(|m| m.name.as_str()).collect();
    ui.output(&format!("Total members: {}, live members: {}", members.len(), live.len()));
    let params = QueryParams { request_ack: true, name: "_serf_ping".into(), ..Default::default() };
    if let Err(e) = client.query(params) {
        ui.error(&format!("Error sending query: {e}"));
        return 1;
    }
    ui.output("Starting reachability test...");
    let start = std::time::Instant::now();
    let mut last = start;
    let mut exit = 0;
    let mut dups = false;
    let mut num_acks = 0usize;
    let mut acks_from: Vec<String> = Vec::new();
    loop {
        match client.next_event(&interrupted) {
            Ok(None) => {
                ui.error("Test interrupted");
                return 1;
            }
            Ok(Some(Incoming::Query { record, .. })) => {
                if record.kind == query_record::DONE || record.from.is_empty() {
                    break;
                }
                if record.kind != query_record::ACK {
                    continue;
                }
                let a = record.from;
                if verbose {
                    ui.output(&format!("\tAck from '{a}'"));
                }
                num_acks += 1;
                if acks_from.contains(&a) {
                    dups = true;
                    ui.output(&format!("Duplicate response from '{a}'"));
                } else {
                    acks_from.push(a);
                }
                last = std::time::Instant::now();
            }
            Ok(Some(_)) => {}
            Err(_) => break,
        }
    }
    if verbose {
        let total = start.elapsed().as_secs_f64();
        let to_last = last.duration_since(start).as_secs_f64();
        ui.output(&format!("Query time: {total:.2} sec, time to last response: {to_last:.2} sec"));
    }
    if dups {
        ui.output(DUPLICATE_RESPONSES);
        exit = 1;
    }
    let n = live.len();
    if num_acks == n {
        ui.output("Successfully contacted all live nodes");
    } else if num_acks > n {
        ui.output("Received more acks than live nodes! Acks from non-live nodes:");
        for m in acks_from.iter().filter(|m| !live.contains(m.as_str())) {
            ui.output(&format!("\t{m}"));
        }
        ui.output(TOO_MANY_ACKS);
        ui.output(TROUBLESHOOTING);
        return 1;
    } else {
        ui.output("Received less acks than live nodes! Missing acks from:");
        for m in live.iter().filter(|m| !acks_from.iter().any(|a| a == *m)) {
            ui.output(&format!("\t{m}"));
        }
        ui.output(TOO_FEW_ACKS);
        ui.output(TROUBLESHOOTING);
        return 1;
    }
    exit
}
