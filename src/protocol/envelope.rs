//! The envelope of every line on the wire as Rust types: what is serialised is what the JSON
//! Schemas under `protocol/schema/` are derived from.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::error::{CodedError, ErrorCode};
use super::response::{SyncReport, Usage};

/// `"protocol": 1`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtocolV1;

impl Serialize for ProtocolV1 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(super::PROTOCOL_VERSION)
    }
}

impl JsonSchema for ProtocolV1 {
    fn schema_name() -> Cow<'static, str> {
        "ProtocolV1".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "const": 1, "description": "The protocol version: 1."})
    }
}

/// A boolean that is always `B`: `"ok": true` on success, `false` on failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag<const B: bool>;

impl<const B: bool> Serialize for Flag<B> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(B)
    }
}

impl<const B: bool> JsonSchema for Flag<B> {
    fn schema_name() -> Cow<'static, str> {
        if B { "True".into() } else { "False".into() }
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "boolean", "const": B})
    }
}

/// A successful response: the envelope and the verb's fields.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Success<T> {
    pub protocol: ProtocolV1,
    /// serve only: the request's `id`, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    pub ok: Flag<true>,
    #[serde(flatten)]
    pub body: T,
}

/// A failed response.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Failure {
    pub protocol: ProtocolV1,
    /// serve only: the request's `id`, echoed (`null` when the line was not a JSON object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    pub ok: Flag<false>,
    pub error: ErrorBody,
}

/// Why a request failed. Callers switch on `code`, never on `message`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// A sentence for people; it never holds a secret.
    pub message: String,
    /// Whether the same request may succeed if sent again unchanged.
    pub retryable: bool,
    /// `no_headroom` only: the earliest time (RFC 3339, UTC) a profile it looked at gets
    /// headroom again; omitted when none is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<String>,
}

/// Either answer to a request of one verb.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Answer<T> {
    Success(Success<T>),
    Failure(Failure),
}

/// A serve-mode event line: no `id`, an `event` name, and the session it concerns.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Event {
    pub protocol: ProtocolV1,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventBody {
    /// A tick saved or moved something: refreshed credentials, adopted entries, copies.
    Synced {
        session: String,
        #[serde(flatten)]
        report: SyncReport,
    },
    /// The session was released by another process; this one no longer holds it.
    SessionEnded { session: String },
    /// A background tick failed; the session is still held and ticking goes on.
    TickFailed { session: String, error: ErrorBody },
    /// The session's account passed 90 % of a usage window: time to offer another profile.
    Usage {
        session: String,
        profile: String,
        /// The window's name: `five_hour`, `seven_day`, or another the server reported.
        window: String,
        utilization: f64,
        /// RFC 3339, UTC; `null` when the server named no time.
        resets_at: Option<String>,
        /// Every figure of the answer.
        usage: Usage,
    },
}

/// `{"protocol": 1, "ok": true, ...body}`; `id` is echoed when given (serve).
pub fn success(id: Option<&Value>, body: &impl Serialize) -> Value {
    let line = Success {
        protocol: ProtocolV1,
        id: id.cloned(),
        ok: Flag,
        body,
    };
    serde_json::to_value(line).unwrap_or(Value::Null)
}

/// `{"protocol": 1, "ok": false, "error": {code, message, retryable}}`.
pub fn failure(id: Option<&Value>, err: &CodedError) -> Value {
    let line = Failure {
        protocol: ProtocolV1,
        id: id.cloned(),
        ok: Flag,
        error: ErrorBody::of(err),
    };
    serde_json::to_value(line).unwrap_or(Value::Null)
}

impl ErrorBody {
    pub fn of(err: &CodedError) -> ErrorBody {
        ErrorBody {
            code: err.code,
            message: err.message.clone(),
            retryable: err.code.retryable(),
            resets_at: err.resets_at.clone(),
        }
    }
}

/// An event line for serve.
pub fn event(body: EventBody) -> Value {
    serde_json::to_value(Event {
        protocol: ProtocolV1,
        body,
    })
    .unwrap_or(Value::Null)
}
