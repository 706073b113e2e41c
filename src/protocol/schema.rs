//! JSON Schemas of every request, response, error and event of protocol v1, derived from the
//! Rust types that are serialised. `protocol/schema/` holds them; a test keeps it current.

use schemars::{JsonSchema, generate::SchemaSettings};
use serde_json::Value;

use super::envelope::{Answer, Event, Failure};
use super::request::{
    AcquireRequest, CapabilitiesRequest, RequestOf, ServeRequest, SessionRequest, StatusRequest,
};
use super::response::{Acquired, Capabilities, Released, Status, Ticked};

fn schema_of<T: JsonSchema>(title: &str) -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(map) = &mut schema {
        map.insert("title".into(), Value::String(title.into()));
    }
    schema
}

/// Every schema, by file name (without `.schema.json`).
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "acquire.request",
            schema_of::<RequestOf<AcquireRequest>>("acquire request"),
        ),
        (
            "acquire.response",
            schema_of::<Answer<Acquired>>("acquire response"),
        ),
        (
            "tick.request",
            schema_of::<RequestOf<SessionRequest>>("tick request"),
        ),
        (
            "tick.response",
            schema_of::<Answer<Ticked>>("tick response"),
        ),
        (
            "release.request",
            schema_of::<RequestOf<SessionRequest>>("release request"),
        ),
        (
            "release.response",
            schema_of::<Answer<Released>>("release response"),
        ),
        (
            "status.request",
            schema_of::<RequestOf<StatusRequest>>("status request"),
        ),
        (
            "status.response",
            schema_of::<Answer<Status>>("status response"),
        ),
        (
            "capabilities.request",
            schema_of::<RequestOf<CapabilitiesRequest>>("capabilities request"),
        ),
        (
            "capabilities.response",
            schema_of::<Answer<Capabilities>>("capabilities response"),
        ),
        ("error", schema_of::<Failure>("error response (any verb)")),
        (
            "serve.request",
            schema_of::<ServeRequest>("serve request line"),
        ),
        ("serve.event", schema_of::<Event>("serve event line")),
    ]
}
