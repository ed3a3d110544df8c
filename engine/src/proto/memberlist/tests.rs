//! Unit tests of individual protocol rules (filled in below).
