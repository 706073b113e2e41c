//! clauth-helper: one Claude Code config directory per account, with sessions driven over a
//! JSON helper protocol.
//!
//! Dependencies point down: `protocol` (wire types, framing, dispatch) at the bottom beside
//! `ids`, `platform`, `fsx` and `layout`; `credentials`, `session`, `profile` and `lock` above
//! them; `runtime` (one runtime's build, sync and teardown) and `usage` (the usage endpoint, its
//! cache and `pick`'s choice); `app`, where locks, sessions and
//! runtimes meet; `ticker`, `serve`, `run` and `human` on top; `main.rs` above it all.

pub mod app;
pub mod cli;
pub mod completions;
pub mod credentials;
pub mod error;
pub mod fsx;
pub mod human;
pub mod ids;
pub mod keychain;
pub mod layout;
pub mod lock;
pub mod logins;
pub mod nodejson;
pub mod platform;
pub mod profile;
pub mod protocol;
pub mod run;
pub mod runtime;
pub mod serve;
pub mod session;
pub mod suggest;
pub mod ticker;
pub mod usage;
