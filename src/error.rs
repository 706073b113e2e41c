//! Errors inside the program: `anyhow` chains that carry a [`CodedError`] to the protocol edge,
//! where every failure becomes one stable code.

pub use crate::protocol::{CodedError, ErrorCode};

/// Builds an `anyhow::Error` carrying `code`.
pub fn coded(code: ErrorCode, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CodedError::new(code, message))
}

/// The code of the first coded error in the chain; anything else is `io`.
pub fn code_of(err: &anyhow::Error) -> ErrorCode {
    err.chain()
        .find_map(|e| e.downcast_ref::<CodedError>())
        .map(|e| e.code)
        .unwrap_or(ErrorCode::Io)
}

/// The message for the wire: the whole context chain, outermost first.
pub fn message_of(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

/// Turns any failure into the coded error the wire carries.
pub fn to_coded(err: &anyhow::Error) -> CodedError {
    let resets_at = err
        .chain()
        .find_map(|e| e.downcast_ref::<CodedError>())
        .and_then(|e| e.resets_at.clone());
    CodedError::new(code_of(err), message_of(err)).with_resets_at(resets_at)
}
