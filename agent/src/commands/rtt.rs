//! `serf rtt [options] node1 [node2]`: estimated round-trip time between two
//! nodes from their Vivaldi coordinates.

use super::{connect, parse_flags, rpc_flags, texts, Ui};
use crate::go::flag::FlagSet;
use crate::go::fmt::quote_str;
use crate::rpc::codec::Coordinate as RpcCoordinate;
use engine::proto::coordinate::distance_duration;
use engine::wire::coordinate::{Coordinate, DIMENSIONALITY};

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let mut fs = FlagSet::new();
    rpc_flags(&mut fs);
    let Some(p) = parse_flags(&fs, args, texts::RTT, ui) else { return 1 };
    // Go connects before checking the arguments.
    let Some(mut client) = connect(&p, ui) else { return 1 };
    let mut nodes = p.args.clone();
    if nodes.len() == 1 {
        match client.stats() {
            Ok(stats) => nodes.push(stats.get("agent", "name").unwrap_or("").to_string()),
            Err(e) => {
                ui.error(&format!("Error querying agent: {e}"));
                return 1;
            }
        }
    } else if nodes.len() != 2 {
        ui.error("One or two node names must be specified");
        ui.error("");
        ui.error(texts::RTT);
        return 1;
    }
    let mut coords = Vec::with_capacity(2);
    for node in &nodes {
        match client.get_coordinate(node) {
            Ok(Some(c)) => coords.push(c),
            Ok(None) => {
                ui.error(&format!("Could not find a coordinate for node {}", quote_str(node)));
                return 1;
            }
            Err(e) => {
                ui.error(&format!("Error getting coordinates: {e}"));
                return 1;
            }
        }
    }
    let (Some(a), Some(b)) = (to_engine(&coords[0]), to_engine(&coords[1])) else {
        // Go's DistanceTo panics on mismatched dimensions.
        eprintln!("panic: dimensions aren't compatible");
        return 2;
    };
    ui.output(&format!("Estimated {} <-> {} rtt: {}", nodes[0], nodes[1], format_rtt(&a, &b)));
    0
}

/// The coordinate in the engine's fixed-dimension form, if it has 8 axes.
fn to_engine(c: &RpcCoordinate) -> Option<Coordinate> {
    let v = c.vec.as_deref().unwrap_or(&[]);
    let vec: [f64; DIMENSIONALITY] = v.try_into().ok()?;
    Some(Coordinate { vec, error: c.error, adjustment: c.adjustment, height: c.height })
}

/// `fmt.Sprintf("%.3f ms", a.DistanceTo(b).Seconds()*1000.0)`.
pub fn format_rtt(a: &Coordinate, b: &Coordinate) -> String {
    let d = distance_duration(a, b);
    // Go's Duration.Seconds(): whole seconds plus nanoseconds / 1e9.
    let secs = d.as_secs() as f64 + f64::from(d.subsec_nanos()) / 1e9;
    format!("{:.3} ms", secs * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_three_decimals() {
        let mut a = Coordinate { vec: [0.0; 8], error: 1.5, adjustment: 0.0, height: 1e-5 };
        let mut b = a;
        a.vec[0] = 0.0003;
        b.height = 2.2e-5;
        // 0.3 ms + 0.01 ms + 0.022 ms.
        assert_eq!(format_rtt(&a, &b), "0.332 ms");
        assert!(
            to_engine(&RpcCoordinate { vec: Some(vec![0.0; 3]), ..Default::default() }).is_none()
        );
    }
}
