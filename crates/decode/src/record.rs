//! What every format's decoder does with a record, whatever its fields: parse it into the
//! format's borrowed struct, name it, and find its time.

use std::borrow::Cow;

use serde::Deserialize;

use crate::{DecodeContext, DecodeError};
use nhid_model::event::Object;
use nhid_model::time::{Millis, parse_rfc3339};
use nhid_model::vocab::DeadLetterReason;

/// Parses a record that must be a JSON object. serde would read an array positionally into
/// the struct's fields, so an array is refused first, as a wrong type named by `not_an_object`.
pub fn parse_object<'a, T: Deserialize<'a>>(text: &'a str, not_an_object: &'static str) -> Result<T, DecodeError> {
    if text.trim_start().starts_with('[') {
        return Err(DecodeError::new(DeadLetterReason::WrongType, not_an_object));
    }
    parse(text)
}

/// Parses a record of a format whose messages are one object each, with no other layout to
/// tell apart: an array (serde would read it positionally into the fields) or a scalar is a
/// wrong type.
pub fn parse_event_object<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError> {
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError::new(DeadLetterReason::WrongType, "an event is a json object"));
    }
    parse(text)
}

/// Parses a message of one of nhid's own schemas (the canonical event, control messages),
/// whose structs name their required fields: a missing one gets its own reason. The message
/// and every object inside it must be JSON objects, not arrays read positionally.
pub fn parse_canonical<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError> {
    sonic_rs::from_str::<Object<T>>(text).map(|Object(t)| t).map_err(|e| DecodeError::from_serde(&e))
}

/// Parses `text` into `T`; a parser error keeps only its first line, since later lines may
/// quote the input, which can hold secrets (request parameters).
pub fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError> {
    sonic_rs::from_str(text).map_err(|e| json_error(&e))
}

pub fn json_error(e: &sonic_rs::Error) -> DecodeError {
    let mut err = DecodeError::from_json(e);
    if let Some(cut) = err.detail.find('\n') {
        err.detail.truncate(cut);
    }
    err
}

/// The id of a record that carries none: a hash of its bytes, so that a redelivered copy
/// keeps its id and is counted once.
pub fn content_id(raw: &str) -> Cow<'static, str> {
    Cow::Owned(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(raw.as_bytes())))
}

/// When the event happened. The format's own timestamp decides when present, and an
/// unreadable one dead-letters the record (`invalid`): guessing would misplace the event in
/// its identity's baseline. Without it, the first readable secondary time (a receive time,
/// Panther's `p_event_time`) serves, then the transport's (`missing` when there is none).
pub fn event_time<'a>(
    own: Option<Cow<'a, str>>,
    invalid: &'static str,
    secondary: impl IntoIterator<Item = Option<Cow<'a, str>>>,
    ctx: &DecodeContext,
    missing: &'static str,
) -> Result<Millis, DecodeError> {
    if let Some(t) = own {
        return parse_rfc3339(&t).ok_or_else(|| DecodeError::new(DeadLetterReason::InvalidTime, invalid));
    }
    secondary
        .into_iter()
        .flatten()
        .find_map(|t| parse_rfc3339(&t))
        .or(ctx.fallback_time)
        .ok_or_else(|| DecodeError::new(DeadLetterReason::MissingTime, missing))
}

/// A part of a string that keeps borrowing from the input when the string does.
pub fn project<'a>(s: &Cow<'a, str>, part: impl FnOnce(&str) -> Option<&str>) -> Option<Cow<'a, str>> {
    match s {
        Cow::Borrowed(s) => part(s).map(Cow::Borrowed),
        Cow::Owned(s) => part(s).map(|p| Cow::Owned(p.to_owned())),
    }
}

/// A delivery document `{KEY: [record, ...]}` and nothing else (`key` quoted, as it is
/// written): CloudTrail's `{"Records": [...]}`, Azure's diagnostic export `{"records": [...]}`
/// (every Event Hubs message, every storage blob line). It is split into its records in one
/// validating pass (the general path needs three), so a document costs about what its
/// records cost one per message. `None`: another layout; `Some(Err)`: the array is not valid
/// JSON, so no record can be trusted.
pub fn split_document<'t>(text: &'t str, key: &str) -> Option<Result<Vec<&'t str>, DecodeError>> {
    fn ws(s: &str) -> &str {
        s.trim_start_matches([' ', '\t', '\n', '\r'])
    }
    let array = &text[document_array(text.as_bytes(), key.as_bytes())?..];
    let mut records = Vec::new();
    let mut end = text.len() - array.len() + 1;
    for item in sonic_rs::to_array_iter(array) {
        let item = match item {
            Ok(v) => v,
            Err(e) => return Some(Err(json_error(&e))),
        };
        let Cow::Borrowed(raw) = item.as_raw_cow() else {
            return None;
        };
        end = (raw.as_ptr() as usize).checked_sub(text.as_ptr() as usize)? + raw.len();
        records.push(raw);
    }
    let rest = ws(ws(text.get(end..)?).strip_prefix(']')?).strip_prefix('}')?;
    ws(rest).is_empty().then_some(Ok(records))
}

/// Whether `bytes` opens a delivery document `{KEY: [`, give or take whitespace.
pub fn is_document(bytes: &[u8], key: &[u8]) -> bool {
    document_array(bytes, key).is_some()
}

/// Where the array of a delivery document `{KEY: [` starts (at its `[`).
fn document_array(bytes: &[u8], key: &[u8]) -> Option<usize> {
    let mut rest = bytes;
    for token in [&b"{"[..], key, b":"] {
        rest = rest.trim_ascii_start().strip_prefix(token)?;
    }
    let array = rest.trim_ascii_start();
    array.starts_with(b"[").then(|| bytes.len() - array.len())
}

/// The raw string value of `key` in the outermost object, if it is a string without escapes.
pub fn top_level_string<'a>(bytes: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let value = top_level_value(bytes, key)?.strip_prefix(b"\"")?;
    let len = memchr::memchr2(b'"', b'\\', value)?;
    (value[len] == b'"').then(|| std::str::from_utf8(&value[..len]).ok()).flatten()
}

/// The text from the value of `key` in the outermost object on, if the object has that key:
/// a key an attacker can put in a field's nested object (a request's parameters) is not
/// one. A string-aware scan that tracks depth; it runs only on messages that passed a
/// cheap test.
pub fn top_level_value<'a>(bytes: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i + 1;
                let end = string_end(bytes, start)?;
                i = end + 1;
                if depth == 1 && &bytes[start..end] == key {
                    let rest = bytes[i..].trim_ascii_start().strip_prefix(b":")?.trim_ascii_start();
                    return Some(rest);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The length of the JSON value `bytes` starts with, if it ends within `max` bytes: a
/// string, an object or array (brackets counted, strings skipped), or a scalar up to the
/// next separator.
pub fn value_len(bytes: &[u8], max: usize) -> Option<usize> {
    let bytes = &bytes[..bytes.len().min(max)];
    match bytes.first()? {
        b'"' => string_end(bytes, 1).map(|end| end + 1),
        b'{' | b'[' => {
            let (mut depth, mut i) = (0usize, 0usize);
            while i < bytes.len() {
                match bytes[i] {
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    b'"' => i = string_end(bytes, i + 1)?,
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => memchr::memchr3(b',', b'}', b']', bytes),
    }
}

/// Index of the closing quote of a string whose content starts at `start`.
fn string_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}
