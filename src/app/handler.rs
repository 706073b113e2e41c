//! The protocol's handler for one-shot calls: each verb under the locks, every failure mapped to
//! its code. `serve` wraps it to hold the sessions it acquires.

use crate::error::{CodedError, to_coded};
use crate::layout::Layout;
use crate::platform;
use crate::protocol::{
    self, AcquireRequest, Acquired, Capabilities, Handler, Released, SessionRequest, Status,
    StatusRequest, Ticked,
};

/// Answers requests against one store; a store that could not be laid out is every verb's
/// answer but `capabilities`.
pub struct OneShot<'a> {
    layout: Result<&'a Layout, &'a CodedError>,
}

impl<'a> OneShot<'a> {
    pub fn new(layout: Result<&'a Layout, &'a CodedError>) -> OneShot<'a> {
        OneShot { layout }
    }

    pub fn layout(&self) -> Result<&'a Layout, CodedError> {
        self.layout.map_err(Clone::clone)
    }
}

impl Handler for OneShot<'_> {
    fn acquire(&mut self, request: AcquireRequest) -> Result<Acquired, CodedError> {
        super::acquire(self.layout()?, &request).map_err(|e| to_coded(&e))
    }

    fn tick(&mut self, request: SessionRequest) -> Result<Ticked, CodedError> {
        super::tick(self.layout()?, &request.session).map_err(|e| to_coded(&e))
    }

    fn release(&mut self, request: SessionRequest) -> Result<Released, CodedError> {
        super::release(self.layout()?, &request.session).map_err(|e| to_coded(&e))
    }

    fn status(&mut self, request: StatusRequest) -> Result<Status, CodedError> {
        let layout = self.layout()?;
        let profile = request.profile.as_ref();
        match request.usage {
            Some(true) => super::status_with_usage(layout, profile),
            _ => super::status(layout, profile),
        }
        .map_err(|e| to_coded(&e))
    }

    fn capabilities(&mut self) -> Result<Capabilities, CodedError> {
        let store = match self.layout {
            Ok(layout) => layout.credential_store(),
            Err(_) if platform::KEYCHAIN_BY_DEFAULT => "keychain",
            Err(_) => "file",
        };
        Ok(protocol::capabilities(platform::OWNER_PID_SUPPORTED, store))
    }
}
