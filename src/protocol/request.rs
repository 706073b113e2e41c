//! Requests of protocol v1: one type per verb, used both to decode a request and to derive its
//! schema, so the two cannot disagree. Names are checked here, once, as they are decoded.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::error::{CodedError, ErrorCode};
use super::{PROTOCOL_VERSION, SUPPORTED_VERSIONS};

/// The longest lease a request may ask for: 30 days.
pub const MAX_LEASE_MS: u64 = 30 * 24 * 3600 * 1000;

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

    /// The verb, or `unknown_verb`.
    pub fn require(s: &str) -> Result<Verb, CodedError> {
        Verb::parse(s).ok_or_else(|| unknown_verb(s))
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

fn unknown_verb(verb: &str) -> CodedError {
    // Only a well-formed verb is repeated, never arbitrary input.
    let plain = !verb.is_empty()
        && verb.len() <= 32
        && verb
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-');
    let shown = if plain {
        format!("{verb:?} is not a verb")
    } else {
        "the verb is not known".to_owned()
    };
    CodedError::new(
        ErrorCode::UnknownVerb,
        format!(
            "{shown} of protocol {PROTOCOL_VERSION}; the verbs are acquire, tick, release, status and capabilities"
        ),
    )
}

/// The traits a checked string shares: read as `str`, shown as itself, decoded from the request
/// field `$field` through `parse`, and described in a schema as a plain string.
macro_rules! checked_string {
    ($ty:ident, $field:literal) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $ty::parse(&required_string(d, $field)?).map_err(to_de)
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                stringify!($ty).into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({"type": "string"})
            }
        }
    };
}

/// A profile name: 1 to 64 of letters, digits, `-`, `_`, `.`, not starting with `.`. Safe to
/// use as a path component; a value of this type has been checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProfileName(String);

impl ProfileName {
    pub fn parse(name: &str) -> Result<ProfileName, CodedError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(ProfileName(name.to_owned()))
        } else {
            // The name is not repeated: a bad one may be anything, even a pasted secret.
            Err(CodedError::new(
                ErrorCode::InvalidProfileName,
                "the profile name is not valid: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'",
            ))
        }
    }
}

checked_string!(ProfileName, "profile");

/// A session id as `acquire` returns it: letters, digits, `-`, `_`; at most 64. Safe to use as
/// a path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(id: &str) -> Result<SessionId, CodedError> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(SessionId(id.to_owned()))
        } else {
            Err(CodedError::invalid_request(
                "session must be a session id as returned by acquire (letters, digits, '-', '_')",
            ))
        }
    }
}

checked_string!(SessionId, "session");

// One enum and one parser for the request field, `--link-mode` and `CLAUTH_LINK_MODE`: a mode,
// or `auto` to probe for symlinks.
/// `link_mode` as a request may give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "LinkModeField")]
pub enum LinkModeRequest {
    Auto,
    Real,
    Fake,
}

impl LinkModeRequest {
    pub fn parse(s: &str) -> Option<LinkModeRequest> {
        match s {
            "auto" => Some(LinkModeRequest::Auto),
            "real" => Some(LinkModeRequest::Real),
            "fake" => Some(LinkModeRequest::Fake),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for LinkModeRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wrong = || {
            to_de(CodedError::invalid_request(
                "link_mode must be \"auto\", \"real\" or \"fake\"",
            ))
        };
        match Value::deserialize(d)? {
            Value::String(s) => LinkModeRequest::parse(&s).ok_or_else(wrong),
            Value::Null => Err(wrong()),
            _ => Err(to_de(CodedError::invalid_request(
                "link_mode must be a string",
            ))),
        }
    }
}

/// A profile field whose name is not checked yet. A request is decoded with it first, so that
/// a malformed field anywhere is answered `invalid_request` before a bad name is answered
/// `invalid_profile_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncheckedName;

impl<'de> Deserialize<'de> for UncheckedName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        required_string(d, "profile").map(|_| UncheckedName)
    }
}

/// `acquire`: start a session of a profile, named or picked.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(rename = "AcquireRequest")]
#[serde(bound(deserialize = "P: DeserializeOwned"))]
#[schemars(extend("anyOf" = [{"required": ["profile"]}, {"required": ["pick"]}]))]
#[schemars(extend("not" = {"required": ["profile", "pick"]}))]
pub struct AcquireRequest<P = ProfileName> {
    /// The profile name: 1 to 64 letters, digits, `-`, `_`, `.`, not starting with `.`.
    /// Required unless `pick` is given; never both.
    #[serde(default)]
    #[schemars(transform = no_default)]
    pub profile: Option<P>,
    /// Let the helper choose the profile with the most headroom (instead of `profile`).
    #[serde(default, deserialize_with = "pick")]
    #[schemars(transform = no_default)]
    pub pick: Option<Pick<P>>,
    /// The session ends when this process does (checked with its start time).
    #[serde(default, deserialize_with = "owner_pid")]
    #[schemars(transform = no_default)]
    #[schemars(range(min = 1, max = 2147483647))]
    pub owner_pid: Option<u32>,
    /// The session ends unless ticked within this many milliseconds.
    #[serde(default, deserialize_with = "lease_ms")]
    #[schemars(transform = no_default)]
    #[schemars(range(min = 1, max = 2592000000u64))]
    pub lease_ms: Option<u64>,
    /// How the runtime presents the claude home; `auto` (the default) probes for symlinks.
    pub link_mode: Option<LinkModeRequest>,
}

/// `acquire`'s `pick`: choose, among profiles with a login, the one with the most headroom.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(rename = "Pick")]
#[serde(bound(deserialize = "P: DeserializeOwned"))]
pub struct Pick<P = ProfileName> {
    /// Only these profiles (each must exist); default: every profile.
    #[serde(default, deserialize_with = "among")]
    #[schemars(transform = no_default)]
    #[schemars(length(min = 1))]
    pub among: Option<Vec<P>>,
    /// Only a profile with at least this much headroom (percent, 0 to 100) will do.
    #[serde(default, deserialize_with = "min_headroom")]
    #[schemars(transform = no_default)]
    #[schemars(range(min = 0, max = 100))]
    pub min_headroom: Option<f64>,
}

/// `tick` and `release`: a session returned by `acquire`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct SessionRequest {
    /// The session id (letters, digits, `-`, `_`; at most 64).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub session: SessionId,
}

/// `status`: every profile, or one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(rename = "StatusRequest")]
pub struct StatusRequest<P = ProfileName> {
    pub profile: Option<P>,
    /// Add each profile's usage and limits (`usage`, `usage_error`); asks the usage endpoint
    /// when the cached answer is older than a minute. Default `false`: no network at all.
    #[serde(default, deserialize_with = "flag")]
    #[schemars(transform = no_default)]
    pub usage: Option<bool>,
}

/// `capabilities`: no fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct CapabilitiesRequest {}

/// A request: the envelope's optional `protocol` and the verb's fields. Unknown fields are
/// ignored.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RequestOf<T> {
    /// When present, must be a protocol version this binary speaks (1).
    #[serde(default, deserialize_with = "version")]
    #[schemars(transform = no_default)]
    pub protocol: Option<u64>,
    #[serde(flatten)]
    pub body: T,
}

// Decoded in two steps (`id` and `verb` by the handler, the rest as the verb's `RequestOf`), so
// that an unknown verb gets its own code; this type describes the line for the schema.
/// A serve-mode request line: a one-shot request plus `verb` and an optional `id`.
#[derive(Debug, Clone, JsonSchema)]
pub struct ServeRequest {
    /// Echoed in the response; any JSON value.
    pub id: Option<Value>,
    pub protocol: Option<u64>,
    #[serde(flatten)]
    pub body: ServeVerb,
}

#[derive(Debug, Clone, JsonSchema)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum ServeVerb {
    Acquire(AcquireRequest),
    Tick(SessionRequest),
    Release(SessionRequest),
    Status(StatusRequest),
    Capabilities(CapabilitiesRequest),
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Acquire(AcquireRequest),
    Tick(SessionRequest),
    Release(SessionRequest),
    Status(StatusRequest),
    Capabilities(CapabilitiesRequest),
}

/// Decodes the request of `verb` from a JSON object. The `protocol` field is checked first;
/// unknown fields are ignored.
pub fn decode(verb: Verb, object: &Value) -> Result<Request, CodedError> {
    Ok(match verb {
        Verb::Acquire => {
            let unchecked = body::<AcquireRequest<UncheckedName>>(object)?;
            match (&unchecked.profile, &unchecked.pick) {
                (None, None) => {
                    return Err(CodedError::invalid_request(
                        "profile is required (or pick, to let the helper choose one)",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(CodedError::invalid_request(
                        "give either profile or pick, not both",
                    ));
                }
                _ => {}
            }
            Request::Acquire(body(object)?)
        }
        Verb::Tick => Request::Tick(body(object)?),
        Verb::Release => Request::Release(body(object)?),
        Verb::Status => {
            body::<StatusRequest<UncheckedName>>(object)?;
            Request::Status(body(object)?)
        }
        Verb::Capabilities => Request::Capabilities(body(object)?),
    })
}

fn body<T: DeserializeOwned>(object: &Value) -> Result<T, CodedError> {
    RequestOf::<T>::deserialize(object)
        .map(|r| r.body)
        .map_err(from_de)
}

// Codes travel through serde's string errors behind a separator no message contains, and come
// out again in `from_de`: serde's own messages may quote a value, so none is passed on as is.
const CODE_SEPARATOR: char = '\u{1f}';

fn to_de<E: de::Error>(err: CodedError) -> E {
    E::custom(format_args!(
        "{}{CODE_SEPARATOR}{}",
        err.code.as_str(),
        err.message
    ))
}

fn from_de(err: serde_json::Error) -> CodedError {
    let text = err.to_string();
    if let Some((code, message)) = text.split_once(CODE_SEPARATOR)
        && let Some(code) = ErrorCode::parse(code)
    {
        return CodedError::new(code, message);
    }
    match text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        Some(field) => CodedError::invalid_request(format!("{field} is required")),
        None => CodedError::invalid_request("the request does not have the fields of its verb"),
    }
}

/// A field that may be absent needs serde's `default`, which is not a default worth stating.
fn no_default(schema: &mut Schema) {
    schema.remove("default");
}

fn required_string<'de, D: Deserializer<'de>>(d: D, key: &str) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Null => Err(to_de(CodedError::invalid_request(format!(
            "{key} is required"
        )))),
        _ => Err(to_de(CodedError::invalid_request(format!(
            "{key} must be a string"
        )))),
    }
}

fn positive<'de, D: Deserializer<'de>>(d: D, key: &str, max: u64) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(v) if (1..=max).contains(&v) => Ok(Some(v)),
            _ => Err(to_de(CodedError::invalid_request(format!(
                "{key} must be a whole number from 1 to {max}"
            )))),
        },
        _ => Err(to_de(CodedError::invalid_request(format!(
            "{key} must be a number"
        )))),
    }
}

fn owner_pid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(positive(d, "owner_pid", i32::MAX as u64)?.map(|p| p as u32))
}

fn lease_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    positive(d, "lease_ms", MAX_LEASE_MS)
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        _ => Err(to_de(CodedError::invalid_request(
            "usage must be true or false",
        ))),
    }
}

fn pick<'de, D: Deserializer<'de>, P: DeserializeOwned>(d: D) -> Result<Option<Pick<P>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v @ Value::Object(_) => Pick::deserialize(v).map(Some).map_err(de::Error::custom),
        _ => Err(to_de(CodedError::invalid_request("pick must be an object"))),
    }
}

fn among<'de, D: Deserializer<'de>, P: DeserializeOwned>(d: D) -> Result<Option<Vec<P>>, D::Error> {
    let wrong = || {
        to_de(CodedError::invalid_request(
            "pick.among must be a non-empty array of profile names",
        ))
    };
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => items
            .into_iter()
            .map(|v| P::deserialize(v).map_err(de::Error::custom))
            .collect::<Result<Vec<P>, D::Error>>()
            .map(Some),
        _ => Err(wrong()),
    }
}

fn min_headroom<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(v) if (0.0..=100.0).contains(&v) => Ok(Some(v)),
            _ => Err(to_de(CodedError::invalid_request(
                "pick.min_headroom must be a number from 0 to 100",
            ))),
        },
        _ => Err(to_de(CodedError::invalid_request(
            "pick.min_headroom must be a number",
        ))),
    }
}

fn version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        // 1.0 is the number 1, whatever the sender's JSON library printed.
        Value::Number(n) => match n.as_f64() {
            Some(v) if SUPPORTED_VERSIONS.iter().any(|s| *s as f64 == v) => Ok(Some(v as u64)),
            _ => Err(to_de(CodedError::new(
                ErrorCode::UnsupportedProtocol,
                format!(
                    "protocol {n} is not supported; this helper speaks protocol {PROTOCOL_VERSION}"
                ),
            ))),
        },
        _ => Err(to_de(CodedError::invalid_request(
            "protocol must be a number",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn code(verb: Verb, v: Value) -> ErrorCode {
        decode(verb, &v).unwrap_err().code
    }

    #[test]
    fn each_bad_field_gets_its_code_and_the_protocol_is_checked_first() {
        assert_eq!(code(Verb::Acquire, json!({})), ErrorCode::InvalidRequest);
        assert_eq!(
            code(Verb::Acquire, json!({"profile": "../x"})),
            ErrorCode::InvalidProfileName
        );
        assert_eq!(
            code(Verb::Acquire, json!({"profile": "../x", "protocol": 2})),
            ErrorCode::UnsupportedProtocol
        );
        assert_eq!(
            code(Verb::Acquire, json!({"profile": "../x", "lease_ms": 0})),
            ErrorCode::InvalidRequest,
            "a malformed field is reported before a bad name"
        );
        assert_eq!(
            code(Verb::Tick, json!({"session": "a/b"})),
            ErrorCode::InvalidRequest
        );
        let err = decode(Verb::Acquire, &json!({"profile": "w", "owner_pid": 0})).unwrap_err();
        assert_eq!(
            err.message,
            "owner_pid must be a whole number from 1 to 2147483647"
        );
        let err = decode(Verb::Tick, &json!({})).unwrap_err();
        assert_eq!(err.message, "session is required");
    }

    #[test]
    fn a_secret_in_a_bad_field_is_never_repeated() {
        let secret = "sk-ant-oat01/secret+value";
        for v in [
            json!({"profile": secret}),
            json!({"profile": "w", "link_mode": secret}),
            json!({"profile": "w", "owner_pid": secret}),
            json!({"profile": "w", "protocol": secret}),
        ] {
            let err = decode(Verb::Acquire, &v).unwrap_err();
            assert!(!err.message.contains(secret), "{}", err.message);
        }
    }

    #[test]
    fn protocol_one_point_zero_is_one_and_unknown_fields_are_ignored() {
        let req = decode(
            Verb::Status,
            &json!({"protocol": 1.0, "whatever": [1], "profile": null}),
        )
        .unwrap();
        assert_eq!(
            req,
            Request::Status(StatusRequest {
                profile: None,
                usage: None
            })
        );
    }
}
