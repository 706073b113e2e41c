//! The helper's side of the protocol: decoded requests dispatched to the runtime, one-shot
//! framing over any reader and writer.

use std::io::{Read, Write};

use serde_json::Value;

use crate::error::{CodedError, ErrorCode, code_of, message_of};
use crate::layout::Layout;
use crate::protocol::{self, Request, Verb};
use crate::runtime::{self, AcquireOptions, LinkModeRequest};

/// Turns any failure into the coded error the wire carries.
pub fn to_coded(err: &anyhow::Error) -> CodedError {
    CodedError {
        code: code_of(err),
        message: message_of(err),
    }
}

/// Runs one decoded request.
pub fn dispatch(
    layout: Result<&Layout, &CodedError>,
    request: Request,
) -> Result<Value, CodedError> {
    if let Request::Capabilities = request {
        // Needs no store: a client may ask before anything is set up.
        return serde_json::to_value(protocol::capabilities()).map_err(|e| to_coded(&e.into()));
    }
    let layout = layout.map_err(Clone::clone)?;
    run_request(layout, request).map_err(|e| to_coded(&e))
}

fn run_request(layout: &Layout, request: Request) -> anyhow::Result<Value> {
    Ok(match request {
        Request::Acquire(req) => {
            serde_json::to_value(runtime::acquire(layout, &acquire_options(req))?)?
        }
        Request::Tick(r) => serde_json::to_value(runtime::tick(layout, &r.session)?)?,
        Request::Release(r) => serde_json::to_value(runtime::release(layout, &r.session)?)?,
        Request::Status(protocol::StatusRequest { profile }) => {
            serde_json::to_value(runtime::status(layout, profile.as_deref())?)?
        }
        Request::Capabilities => serde_json::to_value(protocol::capabilities())?,
    })
}

/// An acquire request in the runtime's terms.
pub fn acquire_options(req: protocol::AcquireRequest) -> AcquireOptions {
    let protocol::AcquireRequest {
        profile,
        owner_pid,
        lease_ms,
        link_mode,
    } = req;
    AcquireOptions {
        profile,
        owner_pid,
        lease_ms,
        link_mode: link_mode.map(LinkModeRequest::from),
        held_session: None,
    }
}

/// Answers one request of `verb` read from `bytes`; the response is a full envelope.
pub fn answer(layout: Result<&Layout, &CodedError>, verb: &str, bytes: &[u8]) -> Value {
    let result = (|| -> Result<Value, CodedError> {
        // The verb is on the command line, so it is checked before the request is read.
        let verb = Verb::parse(verb).ok_or_else(|| unknown_verb(verb))?;
        let obj = protocol::parse_object(bytes)?;
        let request = protocol::decode(verb, &obj)?;
        dispatch(layout, request)
    })();
    match result {
        Ok(body) => protocol::success(None, &body),
        Err(err) => protocol::failure(None, &err),
    }
}

pub fn unknown_verb(verb: &str) -> CodedError {
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
    CodedError {
        code: ErrorCode::UnknownVerb,
        message: format!(
            "{shown} of protocol {}; the verbs are acquire, tick, release, status and capabilities",
            protocol::PROTOCOL_VERSION
        ),
    }
}

/// One-shot framing: one JSON object from `input`, one line to `output`. Returns whether the
/// response was `ok`, which decides the exit status.
pub fn oneshot(
    layout: Result<&Layout, &CodedError>,
    verb: &str,
    input: &mut impl Read,
    output: &mut impl Write,
) -> bool {
    let mut bytes = Vec::new();
    let limit = protocol::MAX_REQUEST_BYTES as u64 + 1;
    let response = match input.take(limit).read_to_end(&mut bytes) {
        Ok(_) => answer(layout, verb, &bytes),
        Err(e) => protocol::failure(
            None,
            &CodedError {
                code: ErrorCode::Io,
                message: format!("cannot read the request from standard input: {e}"),
            },
        ),
    };
    let ok = response.get("ok") == Some(&Value::Bool(true));
    let _ = output.write_all(&protocol::encode_line(&response));
    let _ = output.flush();
    ok
}

impl From<protocol::LinkModeField> for LinkModeRequest {
    fn from(m: protocol::LinkModeField) -> Self {
        match m {
            protocol::LinkModeField::Auto => LinkModeRequest::Auto,
            protocol::LinkModeField::Real => LinkModeRequest::Real,
            protocol::LinkModeField::Fake => LinkModeRequest::Fake,
        }
    }
}
