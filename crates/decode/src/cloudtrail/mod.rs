//! AWS CloudTrail: one record, a `{"Records":[...]}` document, or one record per message.
//!
//! Records are parsed straight into borrowed structs: strings point into the message, and
//! everything the detector does not need is skipped by the parser without being built.
//! Real exports and the samples detection teams write by hand disagree on shapes (Panther
//! spells keys in lowercase, `responseElements` is an object, `null` or a string), so optional
//! fields that have the wrong type read as absent; only a wrong-typed essential field
//! (`eventTime`, `eventName`, `eventSource`, `userIdentity`) dead-letters the record.
//!
//! `record` holds the fields read; `identity` decides who called, from `userIdentity`.

mod identity;
mod one_pass;
mod record;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::IpAddr;

use sonic_rs::JsonValueTrait;

use crate::lenient::nonempty;
use crate::record::{content_id, event_time, json_error, parse_object, split_document};
use crate::{DecodeContext, DecodeError};
use identity::{Signals, classify, is_console_agent};
use nhid_model::event::{AuditEvent, Outcome, RawFields, Source, SourceFormat};
use nhid_model::vocab::DeadLetterReason;
use record::Record;

pub fn decode<'a>(text: &'a str, ctx: &DecodeContext, emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>)) {
    // CloudTrail delivers `{"Records":[...]}` and nothing else.
    if let Some(split) = split_document(text, "\"Records\"") {
        return match split {
            Ok(records) => {
                for (i, raw) in records.into_iter().enumerate() {
                    emit(decode_record(raw, ctx).map_err(|e| e.in_record(i)));
                }
            }
            Err(e) => emit(Err(e)),
        };
    }
    // Any other layout: one pass reads a single record or, in a `Records` document, only
    // notes the array, whose records are then decoded one by one so that one bad record
    // loses only itself.
    let top = match parse_record(text) {
        Ok(r) => r,
        Err(e) => return emit(Err(e)),
    };
    if top.records.is_none() {
        return emit(to_event(top, text, ctx));
    }
    let array = match sonic_rs::get(text, ["Records"]) {
        Ok(v) => v,
        Err(e) => return emit(Err(json_error(&e))),
    };
    if !array.is_array() {
        return emit(Err(DecodeError::new(DeadLetterReason::WrongType, "records is not an array")));
    }
    // A `&str` input yields slices of itself; an owned copy would mean sonic-rs changed that.
    let Cow::Borrowed(array) = array.as_raw_cow() else {
        return emit(Err(DecodeError::new(DeadLetterReason::WrongType, "records array not borrowable")));
    };
    for (i, item) in sonic_rs::to_array_iter(array).enumerate() {
        let item = match item {
            Ok(v) => v,
            // The array is validated above, so this is unreachable in practice; stop, the rest is unreadable.
            Err(e) => return emit(Err(json_error(&e).in_record(i))),
        };
        let Cow::Borrowed(raw) = item.as_raw_cow() else {
            emit(Err(DecodeError::new(DeadLetterReason::WrongType, "record not borrowable").in_record(i)));
            continue;
        };
        emit(decode_record(raw, ctx).map_err(|e| e.in_record(i)));
    }
}

fn decode_record<'a>(raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    parse_record(raw).and_then(|r| to_event(r, raw, ctx))
}

/// Records shaped as CloudTrail writes them are read in one pass ([`one_pass`]); the rest,
/// and every refusal with its reason, by serde.
fn parse_record(raw: &str) -> Result<Record<'_>, DecodeError> {
    match one_pass::read(raw) {
        Some(record) => Ok(record),
        None => by_serde(raw),
    }
}

fn by_serde(raw: &str) -> Result<Record<'_>, DecodeError> {
    parse_object(raw, "a record is a json object, not an array")
}

/// The event of the record `raw`, read by the one-pass reader (`None` when it declines) and
/// by serde: for the tests and the fuzz target that hold the two to the same reading.
#[doc(hidden)]
pub fn both_readers<'a>(
    raw: &'a str,
    ctx: &DecodeContext,
) -> (Option<Result<AuditEvent<'a>, DecodeError>>, Result<AuditEvent<'a>, DecodeError>) {
    (one_pass::read(raw).map(|r| to_event(r, raw, ctx)), by_serde(raw).and_then(|r| to_event(r, raw, ctx)))
}

fn to_event<'a>(rec: Record<'a>, raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    // As the record has them, for content rules (`AuditEvent::raw_fields`).
    let raw_fields = RawFields::new([
        rec.event_name.clone(),
        rec.event_source.clone(),
        rec.user_identity.as_ref().and_then(|u| u.kind.clone()),
        rec.user_identity.as_ref().and_then(|u| u.arn.clone()),
        rec.user_agent.clone(),
    ]);
    let event_name = nonempty(rec.event_name);
    if rec.user_identity.is_none() && event_name.is_none() {
        return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "no useridentity and no eventname"));
    }
    let time = event_time(
        rec.event_time,
        "eventtime is not a timestamp",
        [nonempty(rec.shipped_at), nonempty(rec.p_event_time)],
        ctx,
        "no eventtime",
    )?;
    let service = nonempty(rec.event_source).and_then(|s| crate::aws::service_name(&s)).unwrap_or(Cow::Borrowed("aws"));
    // Sized exactly, once: `format!` guesses short and grows it on every record.
    let action = Cow::Owned([&*service, ":", event_name.as_deref().unwrap_or("unknown")].concat());
    let (console_login, created_key) = match rec.response_elements {
        Some(r) => (r.console_login, r.access_key.and_then(|k| nonempty(k.access_key_id))),
        None => (None, None),
    };
    let outcome = outcome(nonempty(rec.error_code).as_deref(), console_login.is_some_and(|c| c == "Failure"));

    let mut user_agent = nonempty(rec.user_agent);
    let signals = Signals {
        console_event: rec.event_type.as_deref() == Some("AwsConsoleSignIn")
            || event_name.as_deref() == Some("ConsoleLogin")
            || rec.session_credential_from_console,
        console_login: event_name.as_deref() == Some("ConsoleLogin"),
        browser: user_agent.as_deref().is_some_and(is_console_agent),
    };
    let identity = classify(rec.user_identity, nonempty(rec.recipient_account_id), &signals);
    if user_agent.is_none() {
        // The AWS service that acted is the closest thing to a client this call has.
        user_agent = identity.invoked_by.clone();
    }

    Ok(AuditEvent {
        // Without an eventID the record is named by its bytes.
        id: nonempty(rec.event_id).unwrap_or_else(|| content_id(raw)),
        time,
        principal: identity.principal,
        credential: identity.credential,
        actor: identity.actor,
        action,
        service,
        // CloudTrail lists no resource for a new access key, yet the key is what the call
        // acted on, and what a responder revokes.
        resource: nonempty(rec.resources).or(created_key),
        outcome,
        source: Source {
            ip: nonempty(rec.source_ip_address).filter(|s| s.parse::<IpAddr>().is_ok()),
            user_agent,
            asn: None,
            country: None,
        },
        bytes_out: rec.additional_event_data.and_then(|d| d.bytes_transferred_out),
        source_format: SourceFormat::Cloudtrail,
        rules: Vec::new(),
        raw,
        raw_fields,
    })
}

fn outcome(error_code: Option<&str>, console_login_failed: bool) -> Outcome {
    match error_code {
        Some(code) if is_denial(code) => Outcome::Denied,
        Some(_) => Outcome::Failure,
        None if console_login_failed => Outcome::Failure,
        None => Outcome::Success,
    }
}

/// `Client.`/`Server.` prefixes are EC2's; `VpceAccessDenied` is a VPC endpoint policy denial.
fn is_denial(code: &str) -> bool {
    let code = code.strip_prefix("Client.").or_else(|| code.strip_prefix("Server.")).unwrap_or(code);
    code.contains("AccessDenied")
        || code.starts_with("Unauthorized")
        || code.contains("NotAuthorized")
        || code.contains("Forbidden")
}
