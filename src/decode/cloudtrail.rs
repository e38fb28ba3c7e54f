//! AWS CloudTrail: one record, a `{"Records":[...]}` document, or one record per line.
//! (Being written; see the CloudTrail task.)

use super::{DeadLetterReason, DecodeContext, DecodeError};
use crate::event::AuditEvent;

pub fn decode<'a>(
    _text: &'a str,
    _ctx: &DecodeContext,
    emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>),
) {
    emit(Err(DecodeError::new(
        DeadLetterReason::UnknownFormat,
        "cloudtrail decoder not built yet",
    )))
}
