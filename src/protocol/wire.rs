//! Wire types of protocol v1 and their codec.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use super::envelope::{ErrorBody, Event, EventBody, Failure, Flag, ProtocolV1, Success};

use crate::error::{CodedError, ErrorCode};

/// The protocol version this binary speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Every protocol version this binary answers.
pub const SUPPORTED_VERSIONS: &[u64] = &[1];

/// Requests larger than this are refused before parsing.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// The verbs of protocol v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Acquire,
    Tick,
    Release,
    Status,
    Capabilities,
}

impl Verb {
    pub const ALL: [Verb; 5] = [
        Verb::Acquire,
        Verb::Tick,
        Verb::Release,
        Verb::Status,
        Verb::Capabilities,
    ];

    pub fn parse(s: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Acquire => "acquire",
            Verb::Tick => "tick",
            Verb::Release => "release",
            Verb::Status => "status",
            Verb::Capabilities => "capabilities",
        }
    }
}

/// `link_mode` as a request may give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkModeField {
    Auto,
    Real,
    Fake,
}

/// `acquire`: start a session of a profile.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct AcquireRequest {
    /// The profile name: 1 to 64 letters, digits, `-`, `_`, `.`, not starting with `.`.
    pub profile: String,
    /// The session ends when this process does (checked with its start time).
    #[schemars(range(min = 1, max = 2147483647))]
    pub owner_pid: Option<u32>,
    /// The session ends unless ticked within this many milliseconds.
    #[schemars(range(min = 1, max = 2592000000u64))]
    pub lease_ms: Option<u64>,
    /// How the runtime presents the claude home; `auto` (the default) probes for symlinks.
    pub link_mode: Option<LinkModeField>,
}

/// `tick` and `release`: a session returned by `acquire`.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct SessionRequest {
    /// The session id (letters, digits, `-`, `_`; at most 64).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub session: String,
}

/// `status`: every profile, or one.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct StatusRequest {
    pub profile: Option<String>,
}

/// `capabilities`: no fields.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct CapabilitiesRequest {}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Acquire(AcquireRequest),
    Tick(SessionRequest),
    Release(SessionRequest),
    Status(StatusRequest),
    Capabilities,
}

fn invalid(message: impl Into<String>) -> CodedError {
    CodedError {
        code: ErrorCode::InvalidRequest,
        message: message.into(),
    }
}

/// Parses request bytes into a JSON object (no verb-specific checks yet).
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, CodedError> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(invalid(format!(
            "the request is larger than {MAX_REQUEST_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("the request is not valid UTF-8"))?;
    if text.trim().is_empty() {
        return Err(invalid("the request is empty; send one JSON object"));
    }
    // serde_json's messages name positions, never values, for syntax errors.
    let value: Value = serde_json::from_str(text)
        .map_err(|e| invalid(format!("the request is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(invalid("the request must be a JSON object")),
    }
}

/// Checks the optional `protocol` field of a request.
pub fn check_version(obj: &Map<String, Value>) -> Result<(), CodedError> {
    match obj.get("protocol") {
        None | Some(Value::Null) => Ok(()),
        // 1.0 is the number 1, whatever the sender's JSON library printed.
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if SUPPORTED_VERSIONS.iter().any(|s| *s as f64 == v) => Ok(()),
            _ => Err(CodedError {
                code: ErrorCode::UnsupportedProtocol,
                message: format!(
                    "protocol {n} is not supported; this helper speaks protocol {PROTOCOL_VERSION}"
                ),
            }),
        },
        Some(_) => Err(invalid("protocol must be a number")),
    }
}

fn string_field(
    obj: &Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Option<String>, CodedError> {
    match obj.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(invalid(format!("{key} is required"))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

fn positive_field(
    obj: &Map<String, Value>,
    key: &str,
    max: u64,
) -> Result<Option<u64>, CodedError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v >= 1 && v <= max => Ok(Some(v)),
            _ => Err(invalid(format!(
                "{key} must be a whole number from 1 to {max}"
            ))),
        },
        Some(_) => Err(invalid(format!("{key} must be a number"))),
    }
}

/// The longest lease a request may ask for: 30 days.
pub const MAX_LEASE_MS: u64 = 30 * 24 * 3600 * 1000;

/// Decodes the request of `verb` from its JSON object. Unknown fields are ignored.
pub fn decode(verb: Verb, obj: &Map<String, Value>) -> Result<Request, CodedError> {
    check_version(obj)?;
    Ok(match verb {
        Verb::Acquire => Request::Acquire(AcquireRequest {
            profile: string_field(obj, "profile", true)?.unwrap_or_default(),
            owner_pid: positive_field(obj, "owner_pid", i32::MAX as u64)?.map(|p| p as u32),
            lease_ms: positive_field(obj, "lease_ms", MAX_LEASE_MS)?,
            link_mode: match string_field(obj, "link_mode", false)?.as_deref() {
                None => None,
                Some("auto") => Some(LinkModeField::Auto),
                Some("real") => Some(LinkModeField::Real),
                Some("fake") => Some(LinkModeField::Fake),
                Some(_) => return Err(invalid("link_mode must be \"auto\", \"real\" or \"fake\"")),
            },
        }),
        Verb::Tick => Request::Tick(SessionRequest {
            session: string_field(obj, "session", true)?.unwrap_or_default(),
        }),
        Verb::Release => Request::Release(SessionRequest {
            session: string_field(obj, "session", true)?.unwrap_or_default(),
        }),
        Verb::Status => Request::Status(StatusRequest {
            profile: string_field(obj, "profile", false)?,
        }),
        Verb::Capabilities => Request::Capabilities,
    })
}

/// Optional behaviours a client may check for before relying on them.
pub const FEATURES: &[&str] = &[
    // A process's start time is only known on Unix; elsewhere owner_pid is refused.
    #[cfg(unix)]
    "owner_pid",
    "lease_ms",
    "env_remove",
    "link_mode",
    "serve",
    "serve_events",
    "held_sessions",
    "sync_report",
    "orphaned_runtimes",
];

/// The body of a `capabilities` response: what this binary speaks.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Capabilities {
    /// Every protocol version this binary answers.
    pub protocol_versions: Vec<u64>,
    pub verbs: Vec<String>,
    /// Optional behaviours; a client checks for one before relying on it.
    pub features: Vec<String>,
    /// The clauth-helper version.
    pub version: String,
}

pub fn capabilities() -> Capabilities {
    Capabilities {
        protocol_versions: SUPPORTED_VERSIONS.to_vec(),
        verbs: Verb::ALL.iter().map(|v| v.as_str().to_owned()).collect(),
        features: FEATURES.iter().map(|f| (*f).to_owned()).collect(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
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
        error: error_body(err),
    };
    serde_json::to_value(line).unwrap_or(Value::Null)
}

pub fn error_body(err: &CodedError) -> ErrorBody {
    ErrorBody {
        code: err.code,
        message: err.message.clone(),
        retryable: err.code.retryable(),
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

/// One line of output: compact JSON and a newline.
pub fn encode_line(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    bytes
}
