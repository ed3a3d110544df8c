//! Serf-layer tests (below).
