//! One node's view of another (see `mod.rs`).

use runtime::InstanceHandle;
use wire::memberlist::NodeState;

use super::runtime_util::Node;

/// The state in which `h` sees node `name`, if it knows it.
pub fn state_of(h: &InstanceHandle<Node>, name: &'static str) -> Option<NodeState> {
    h.call(move |ep, _| ep.ml.node(name).map(|n| n.state)).ok().flatten()
}
