//! clauth-helper: one Claude Code config directory per account, with sessions driven over a
//! JSON helper protocol.

pub mod credentials;
pub mod error;
pub mod fsx;
pub mod helper;
pub mod hold;
pub mod layout;
pub mod lock;
pub mod platform;
pub mod profile;
pub mod protocol;
pub mod run;
pub mod runtime;
pub mod serve;
pub mod session;
