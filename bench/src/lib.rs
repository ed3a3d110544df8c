//! Shared helpers for the benchmarks and the allocation-count tests.
