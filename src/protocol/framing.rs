//! Framing: how requests are read and responses written. One-shot: one JSON object on stdin,
//! one line on stdout. Serve: newline-delimited objects both ways. Every read is bounded and
//! every line is flushed as it is written.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::mpsc;

use serde_json::Value;

use super::MAX_REQUEST_BYTES;
use super::error::CodedError;

/// Parses request bytes into a JSON object (no verb-specific checks yet).
pub fn parse_object(bytes: &[u8]) -> Result<Value, CodedError> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(CodedError::invalid_request(format!(
            "the request is larger than {MAX_REQUEST_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CodedError::invalid_request("the request is not valid UTF-8"))?;
    if text.trim().is_empty() {
        return Err(CodedError::invalid_request(
            "the request is empty; send one JSON object",
        ));
    }
    // serde_json's messages name positions, never values, for syntax errors.
    let value: Value = serde_json::from_str(text)
        .map_err(|e| CodedError::invalid_request(format!("the request is not valid JSON: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(CodedError::invalid_request(
            "the request must be a JSON object",
        ))
    }
}

/// Reads a one-shot request: everything up to end of input, at most one byte more than a
/// request may hold (so an oversized one is recognised without being held in memory).
pub fn read_oneshot(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// One line of output: compact JSON and a newline, flushed.
pub fn write_line(output: &mut impl Write, value: &Value) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    output.write_all(&bytes)?;
    output.flush()
}

/// What the serve reader hands over.
pub enum Input {
    Line(Vec<u8>),
    /// A line longer than a request may be; it was skipped.
    TooLong,
    End,
}

/// Reads request lines on a thread, so the caller can tick while its peer is silent, and sends
/// each, as `wrap` makes it, on `tx`: the caller's own channel, where other things that wake it
/// arrive too.
pub fn send_lines<T: Send + 'static>(
    input: impl Read + Send + 'static,
    tx: mpsc::Sender<T>,
    wrap: fn(Input) -> T,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(input);
        // A request may be as long as a one-shot one, plus its line ending.
        let limit = MAX_REQUEST_BYTES as u64 + 2;
        loop {
            let mut line = Vec::new();
            let msg = match (&mut reader).take(limit).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(wrap(Input::End));
                    return;
                }
                Ok(_) if line.last() != Some(&b'\n') && line.len() as u64 >= limit => {
                    if !skip_line(&mut reader) {
                        let _ = tx.send(wrap(Input::TooLong));
                        let _ = tx.send(wrap(Input::End));
                        return;
                    }
                    Input::TooLong
                }
                Ok(_) => {
                    while matches!(line.last(), Some(b'\n' | b'\r')) {
                        line.pop();
                    }
                    Input::Line(line)
                }
            };
            if tx.send(wrap(msg)).is_err() {
                return;
            }
        }
    });
}

/// Discards input up to and including the next newline without holding it in memory. Returns
/// false at end of input.
fn skip_line(reader: &mut impl BufRead) -> bool {
    loop {
        let (found, used) = match reader.fill_buf() {
            Ok([]) | Err(_) => return false,
            Ok(buf) => match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, buf.len()),
            },
        };
        reader.consume(used);
        if found {
            return true;
        }
    }
}
