//! Reliability and security suite: load, crashes, bad input and the store's protections, all
//! through the real binary. See RELIABILITY.md for what each test ran and what held.
//!
//! `cargo test --test reliability -- --nocapture` prints the counts of every test.

#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

mod common;

mod bad_input;
mod crash;
mod load;
mod locks;
mod races;
mod security;
mod trees;
