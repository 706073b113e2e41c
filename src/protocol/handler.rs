//! One dispatch for every way a request arrives: a [`Handler`] answers decoded requests, and the
//! functions here decode, dispatch and frame for one-shot calls and serve lines alike.

use std::io::{Read, Write};

use serde::Serialize;
use serde_json::Value;

use super::MAX_REQUEST_BYTES;
use super::envelope::{failure, success};
use super::error::{CodedError, ErrorCode};
use super::framing::{parse_object, read_oneshot, write_line};
use super::request::{AcquireRequest, Request, SessionRequest, StatusRequest, Verb, decode};
use super::response::{Acquired, Capabilities, Released, Status, Ticked};

/// The side that carries requests out. The protocol knows nothing of how.
pub trait Handler {
    fn acquire(&mut self, request: AcquireRequest) -> Result<Acquired, CodedError>;
    fn tick(&mut self, request: SessionRequest) -> Result<Ticked, CodedError>;
    fn release(&mut self, request: SessionRequest) -> Result<Released, CodedError>;
    fn status(&mut self, request: StatusRequest) -> Result<Status, CodedError>;
    /// Answered without a store: a client may ask before anything is set up.
    fn capabilities(&mut self) -> Result<Capabilities, CodedError>;
}

fn body(value: impl Serialize) -> Result<Value, CodedError> {
    serde_json::to_value(value)
        .map_err(|e| CodedError::new(ErrorCode::Io, format!("cannot encode the response: {e}")))
}

/// Runs one decoded request; the result is the response body (without the envelope).
pub fn dispatch(handler: &mut impl Handler, request: Request) -> Result<Value, CodedError> {
    match request {
        Request::Acquire(r) => body(handler.acquire(r)?),
        Request::Tick(r) => body(handler.tick(r)?),
        Request::Release(r) => body(handler.release(r)?),
        Request::Status(r) => body(handler.status(r)?),
        Request::Capabilities(_) => body(handler.capabilities()?),
    }
}

/// Answers the one-shot request of `verb` held in `bytes`: a full envelope.
pub fn answer(handler: &mut impl Handler, verb: &str, bytes: &[u8]) -> Value {
    let result = (|| {
        // The verb is on the command line, so it is checked before the request is read.
        let verb = Verb::require(verb)?;
        let request = decode(verb, &parse_object(bytes)?)?;
        dispatch(handler, request)
    })();
    match result {
        Ok(body) => success(None, &body),
        Err(err) => failure(None, &err),
    }
}

/// One-shot framing: one JSON object from `input`, one line to `output`. Returns whether the
/// response was `ok`, which decides the exit status.
pub fn oneshot(
    handler: &mut impl Handler,
    verb: &str,
    input: &mut impl Read,
    output: &mut impl Write,
) -> bool {
    let response = match read_oneshot(input) {
        Ok(bytes) => answer(handler, verb, &bytes),
        Err(e) => failure(
            None,
            &CodedError::new(
                ErrorCode::Io,
                format!("cannot read the request from standard input: {e}"),
            ),
        ),
    };
    let _ = write_line(output, &response);
    response.get("ok") == Some(&Value::Bool(true))
}

/// Answers one serve line: a one-shot request plus `verb` and an optional `id`, which the
/// response echoes (`null` when the line is not an object). `None` for a blank line.
pub fn answer_line(handler: &mut impl Handler, bytes: &[u8]) -> Option<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let (id, result) = match parse_object(bytes) {
        Err(e) => (Value::Null, Err(e)),
        Ok(object) => {
            let id = object.get("id").cloned().unwrap_or(Value::Null);
            let result = serve_verb(&object)
                .and_then(|verb| decode(verb, &object))
                .and_then(|request| dispatch(handler, request));
            (id, result)
        }
    };
    Some(match result {
        Ok(body) => success(Some(&id), &body),
        Err(e) => failure(Some(&id), &e),
    })
}

/// The answer to a serve line longer than a request may be.
pub fn line_too_long() -> Value {
    failure(
        Some(&Value::Null),
        &CodedError::invalid_request(format!(
            "the request line is longer than {MAX_REQUEST_BYTES} bytes"
        )),
    )
}

fn serve_verb(object: &Value) -> Result<Verb, CodedError> {
    match object.get("verb") {
        Some(Value::String(v)) => Verb::require(v),
        Some(_) => Err(CodedError::invalid_request("verb must be a string")),
        None => Err(CodedError::invalid_request(
            "verb is required in serve mode",
        )),
    }
}
