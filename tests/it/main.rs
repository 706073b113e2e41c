//! Integration tests through the real binary, each on its own copy of a fixture home.

#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

mod cli;
mod concurrency;
mod conformance;
mod credentials;
mod errors;
mod harness;
mod home;
mod keychain;
mod lifecycle;
mod people;
mod profiles;
mod progress;
mod run;
mod schema;
mod security;
mod serve;
mod sync;
mod usage;
