//! The invariants the fuzz targets assert, shared by the targets (`fuzz_targets/*.rs`).
//!
//! A decoder must never panic and must account for every message: it emits at least one
//! record, an event or the reason it is not one (but for a CloudTrail document of no
//! records, which holds nothing to account for); an event it emits is well formed (a
//! principal, no field over the cap) once the engine has judged it, and its canonical JSON
//! (what nhid republishes on lane topics) decodes back to the same event.

use nhid_decode::{DecodeContext, DecodeError, Format};
use nhid_model::event::AuditEvent;

/// A fixed transport time (2026-11-23T10:00:00Z), as a Kafka message carries: events
/// without a time of their own take it, so fuzzing is deterministic.
pub const TRANSPORT_TIME: i64 = 1_795_428_000_000;

/// Every record `bytes` decodes to as `format`.
pub fn decode(bytes: &[u8], format: Format) -> Vec<Result<AuditEvent<'_>, DecodeError>> {
    let ctx = DecodeContext { fallback_time: Some(TRANSPORT_TIME), max_event_bytes: 0 };
    let mut records = Vec::new();
    nhid_decode::decode(bytes, format, &ctx, &mut |record| records.push(record));
    records
}

/// Decodes `bytes` as `format` and checks every record; returns them.
pub fn check_decoder(bytes: &[u8], format: Format) -> Vec<Result<AuditEvent<'_>, DecodeError>> {
    let records = decode(bytes, format);
    assert!(!records.is_empty() || holds_no_records(bytes), "a message produced neither an event nor a dead letter");
    for record in &records {
        match record {
            Ok(event) => check_event(event),
            Err(e) => check_error(e),
        }
    }
    records
}

/// A CloudTrail document whose `Records` array is empty, or an Azure export whose `records`
/// is: a valid message of no events (`cloudtrail::tests` and `format_entra` assert that it
/// decodes to nothing).
pub fn holds_no_records(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| {
        ["Records", "records"].iter().any(|k| v.get(k).and_then(|r| r.as_array()).is_some_and(Vec::is_empty))
    })
}

/// A dead letter says why, in words.
pub fn check_error(e: &DecodeError) {
    assert!(!e.detail.is_empty(), "a dead letter without detail: {:?}", e.reason);
}

/// An event has a principal, and its canonical JSON reads back as the same event.
pub fn check_event(event: &AuditEvent<'_>) {
    assert!(!event.principal.id.is_empty(), "an event without a principal id");
    let json = serde_json::to_vec(event).expect("an event serializes");
    match nhid_decode::native::decode(std::str::from_utf8(&json).expect("JSON is UTF-8")) {
        // The record's raw text and the fields its decoder read of it are views of the
        // input, never serialized.
        Ok(again) => assert_eq!(
            AuditEvent { raw: event.raw, raw_fields: event.raw_fields.clone(), ..again },
            *event,
            "the canonical JSON of an event reads back as another"
        ),
        Err(e) => panic!("the canonical JSON of an event does not read back: {e}\n{}", String::from_utf8_lossy(&json)),
    }
}
