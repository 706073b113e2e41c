//! The helper protocol v1 on the wire: verbs, request decoding, response envelopes and framing.
//!
//! Nothing here touches the file system; `helper` dispatches decoded requests.

pub mod envelope;
pub mod schema;
pub mod wire;

pub use wire::*;
