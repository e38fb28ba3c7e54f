//! GitHub audit log: organization / enterprise audit log events. PLACEHOLDER (issue 5): detects nothing, dead-letters everything.

use super::{DeadLetterReason, DecodeContext, DecodeError};
use crate::event::AuditEvent;

/// Whether the message carries this format's markers.
pub fn detect(_bytes: &[u8]) -> bool {
    false
}

pub fn decode<'a>(_text: &'a str, _ctx: &DecodeContext, emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>)) {
    emit(Err(DecodeError::new(DeadLetterReason::UnknownFormat, "github decoding is not implemented")))
}
