//! The nodes one node sees alive (see `mod.rs`).

use runtime::InstanceHandle;
use wire::memberlist::NodeState;

use super::runtime_util::Node;

/// Names of the nodes `h` sees alive, sorted.
pub fn alive(h: &InstanceHandle<Node>) -> Vec<String> {
    let mut v = h
        .call(|ep, _| {
            ep.ml
                .nodes()
                .iter()
                .filter(|n| n.state == NodeState::Alive)
                .map(|n| n.name.to_string())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    v.sort();
    v
}
