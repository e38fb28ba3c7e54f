//! Bytes → canonical [`AuditEvent`]s. One Kafka message or one file line is one
//! *message*; a message may hold several events (a CloudTrail `{"Records":[...]}` document).
//!
//! Decoding never panics and never stops the stream: whatever cannot become an event is
//! returned as a [`DecodeError`] whose [`DeadLetterReason`] is counted and dead-lettered.
//! [`control`] reads nhid's own control topics (lifecycle events, action results) the same way.
//!
//! # Layout
//! - one module per format (`cloudtrail`, `k8s`, `github`, `okta`, `gcp`, `entra`, `ocsf`,
//!   `native`), each with its `detect` and `decode`; the large ones are folders that keep the
//!   record's fields apart from the classification of its principal;
//! - `record`: what every decoder does with a record (parse it, name it, time it);
//! - `lenient`: the serde readers that let optional fields of the wrong type read as absent;
//! - `aws`: AWS naming, shared by CloudTrail, OCSF from Security Lake, and EKS.

mod aws;
pub mod azure_activity;
pub mod cloudtrail;
pub mod control;
pub mod entra;
pub mod gcp;
pub mod github;
pub mod k8s;
mod lenient;
pub mod native;
pub mod ocsf;
pub mod okta;
mod record;
mod scan;
#[cfg(test)]
mod testing;

use memchr::memmem;
use record::split_document;

use nhid_model::event::AuditEvent;
use nhid_model::string_enum;
use nhid_model::time::Millis;
use nhid_model::vocab::DeadLetterReason;

/// Default for `max_event_bytes`: larger messages are dead-lettered unread.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

string_enum! {
    /// The format of an input, or `auto` to detect it per message.
    #[derive(Default)]
    Format {
        /// Detect the format of every message from its keys.
        #[default]
        Auto => "auto",
        Native => "native",
        Cloudtrail => "cloudtrail",
        /// Kubernetes audit (`audit.k8s.io/v1` Event), EKS included.
        K8sAudit => "k8s_audit",
        /// GitHub audit log (organization / enterprise audit log, streamed or exported).
        Github => "github",
        /// Okta System Log.
        Okta => "okta",
        /// GCP Cloud Audit Logs (a `LogEntry` with an `AuditLog` `protoPayload`).
        GcpAudit => "gcp_audit",
        /// Entra ID sign-ins and directory audits: Graph, diagnostic-settings and Log
        /// Analytics shapes.
        Entra => "entra",
        /// Azure Resource Manager activity log (diagnostic-settings export).
        AzureActivity => "azure_activity",
        /// OCSF API Activity (6003) and Authentication (3002).
        Ocsf => "ocsf",
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct DecodeError {
    pub reason: DeadLetterReason,
    /// Human-readable cause, short and lowercase; never contains field values that may be secrets.
    pub detail: String,
    /// Index of the failing record inside a multi-record message (CloudTrail `Records`);
    /// `None` when the whole message failed. The dead letter keeps the whole message.
    pub record: Option<usize>,
}

impl DecodeError {
    pub fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        DecodeError { reason, detail: detail.into(), record: None }
    }

    pub fn in_record(mut self, index: usize) -> Self {
        self.record = Some(index);
        self
    }

    /// Maps a typed deserialization error to a reason. serde reports missing fields and
    /// custom errors as plain messages; the fields every message kind must have are named
    /// so operators can count them apart (`principal` and `principal_id` alike).
    pub(crate) fn from_serde(e: &sonic_rs::Error) -> Self {
        let msg = e.to_string();
        if msg.contains("missing field `principal") {
            DecodeError::new(DeadLetterReason::MissingPrincipal, "no principal")
        } else if msg.contains("missing field `time`") {
            DecodeError::new(DeadLetterReason::MissingTime, "no time")
        } else if msg.contains("not a valid RFC 3339") {
            DecodeError::new(DeadLetterReason::InvalidTime, "time is not a valid RFC 3339 timestamp")
        } else {
            DecodeError::from_json(e)
        }
    }

    /// Maps a parser error to the reason an operator can act on.
    ///
    /// JSON puts no bound on numbers, but the parser reads every number it must look at as an
    /// `f64` and calls one beyond it (400 digits, `1e400`) a syntax error. Such a number is
    /// valid JSON of the wrong type: where a string is expected it is one, and where a number
    /// is expected it is outside the field's range, as a negative count is (`wrong_type` too).
    pub(crate) fn from_json(e: &sonic_rs::Error) -> Self {
        let text = redact(e.to_string().lines().next().unwrap_or_default());
        let reason = if text.contains("ecursion limit") {
            DeadLetterReason::NestingTooDeep
        } else if text.starts_with("Float number must be finite") || text.starts_with("Number is bigger than") {
            let at = text.find(" at line").map_or("", |i| &text[i..]);
            return DecodeError::new(DeadLetterReason::WrongType, format!("number out of range{at}"));
        } else if e.is_syntax() || e.is_eof() {
            DeadLetterReason::InvalidJson
        } else {
            DeadLetterReason::WrongType
        };
        DecodeError::new(reason, text)
    }
}

/// Parser messages quote the offending input (`invalid type: string "AKIA…"`); the
/// detail travels to logs and dead-letter headers, so quoted input is cut out.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    quote = Some(c);
                }
            }
        }
    }
    out
}

/// Context the transport knows about a message and the decoder does not.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeContext {
    /// Used for events that carry no timestamp of their own: the Kafka message timestamp,
    /// or in a file the latest event time seen before. Events never get wall-clock time.
    pub fallback_time: Option<Millis>,
    pub max_event_bytes: usize,
}

/// Decodes one message, calling `emit` once per record: an event or the reason it is not one.
/// Errors that concern the whole message are returned as one `Err` record.
pub fn decode<'a>(
    bytes: &'a [u8],
    format: Format,
    ctx: &DecodeContext,
    emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>),
) {
    let text = match sized_text(bytes, ctx.max_event_bytes) {
        Ok(t) => t,
        Err(e) => return emit(Err(e)),
    };
    // A canonical event shaped as nhid writes it goes straight to the one-pass reader, which
    // nests two deep at most: no nesting scan, no format detection (an object of the schema's
    // fields alone is a canonical event whatever detection would make of it). What it
    // declines is checked and detected as below.
    if matches!(format, Format::Auto | Format::Native)
        && let Some(event) = native::one_pass::read(text)
    {
        return emit(Ok(event));
    }
    if let Err(e) = nesting_within(text) {
        return emit(Err(e));
    }
    // Azure's diagnostic exports (every Event Hubs message, every storage blob line) wrap their
    // records in `{"records": [...]}`, of one log category or several: each record is
    // detected and decoded on its own, and a bad one loses only itself.
    if matches!(format, Format::Auto | Format::Entra | Format::AzureActivity)
        && let Some(split) = split_document(text, "\"records\"")
    {
        return match split {
            Ok(records) => {
                for (i, record) in records.into_iter().enumerate() {
                    decode_text(record, format, ctx, &mut |r| emit(r.map_err(|e| e.in_record(i))));
                }
            }
            Err(e) => emit(Err(e)),
        };
    }
    decode_text(text, format, ctx, emit)
}

/// Decodes one checked message (or one record of an Azure export) of `format`.
fn decode_text<'a>(
    text: &'a str,
    format: Format,
    ctx: &DecodeContext,
    emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>),
) {
    let format = match format {
        Format::Auto => match detect(text.as_bytes()) {
            Some(f) => f,
            None => {
                return emit(Err(DecodeError::new(
                    DeadLetterReason::UnknownFormat,
                    "not a format nhid reads (canonical, cloudtrail, k8s_audit, github, okta, gcp_audit, entra, azure_activity, ocsf)",
                )));
            }
        },
        f => f,
    };
    match format {
        Format::Native => emit(native::decode(text)),
        Format::Cloudtrail => cloudtrail::decode(text, ctx, emit),
        Format::K8sAudit => k8s::decode(text, ctx, emit),
        Format::Github => github::decode(text, ctx, emit),
        Format::Okta => okta::decode(text, ctx, emit),
        Format::GcpAudit => gcp::decode(text, ctx, emit),
        Format::Entra => entra::decode(text, ctx, emit),
        Format::AzureActivity => azure_activity::decode(text, ctx, emit),
        Format::Ocsf => ocsf::decode(text, ctx, emit),
        Format::Auto => unreachable!("resolved above"),
    }
}

/// The checks every message passes before it is parsed, whatever it holds (audit events,
/// control messages): a size ceiling (`0` means the default), UTF-8, and a nesting limit.
pub fn checked_text(bytes: &[u8], max_bytes: usize) -> Result<&str, DecodeError> {
    let text = sized_text(bytes, max_bytes)?;
    nesting_within(text)?;
    Ok(text)
}

/// `bytes` as text, within the size ceiling (`0` means the default) and valid UTF-8.
fn sized_text(bytes: &[u8], max_bytes: usize) -> Result<&str, DecodeError> {
    let max = max_event_bytes(max_bytes);
    if bytes.len() > max {
        return Err(too_large(bytes.len(), max));
    }
    // The SIMD check answers valid or not; std's names where it is not.
    simdutf8::basic::from_utf8(bytes).map_err(|_| {
        let e = std::str::from_utf8(bytes).expect_err("invalid for both");
        DecodeError::new(DeadLetterReason::InvalidUtf8, e.to_string())
    })
}

/// Refuses JSON nested deeper than [`MAX_NESTING`].
fn nesting_within(text: &str) -> Result<(), DecodeError> {
    if nesting_exceeds(text.as_bytes(), MAX_NESTING) {
        return Err(DecodeError::new(
            DeadLetterReason::NestingTooDeep,
            format!("json nesting deeper than {MAX_NESTING}"),
        ));
    }
    Ok(())
}

/// The size ceiling `max_bytes` configures (`0`: the default).
fn max_event_bytes(max_bytes: usize) -> usize {
    if max_bytes == 0 { DEFAULT_MAX_EVENT_BYTES } else { max_bytes }
}

/// Why a message of `len` bytes is refused unread, whether it was held whole or only counted
/// as it streamed past (an overlong line of a file).
pub fn too_large(len: usize, max: usize) -> DecodeError {
    DecodeError::new(DeadLetterReason::TooLarge, format!("message of {len} bytes exceeds max_event_bytes {max}"))
}

/// Audit events nest a handful of levels; the parser skips unknown fields recursively, so
/// deeper input is refused before it is parsed.
pub const MAX_NESTING: usize = 64;

/// Whether JSON nesting exceeds `limit`. Depth needs that many opening brackets, and
/// finding them is a SIMD search (an audit event has a few dozen), so the exact
/// string-aware scan runs only on suspicious input.
fn nesting_exceeds(bytes: &[u8], limit: usize) -> bool {
    if memchr::memchr2_iter(b'[', b'{', bytes).nth(limit).is_none() {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Keys read from a record's start by [`by_first_keys`], and bytes of values skipped to reach
/// them, at most: past those the markers decide.
const FIRST_KEYS: usize = 8;
const FIRST_KEYS_BYTES: usize = 512;

/// The format told by a key at the top level of the record, read from its start: nhid's own
/// events (`principal`) and CloudTrail's records (`eventVersion`, `eventName`, ...; a
/// document's `Records`) are told within their first keys, without scanning the message for
/// markers. Only keys of the record itself count, never those of a nested object an
/// attacker fills (a request's parameters). `None`: not told by its first keys, or an
/// escaped key, or long values before them; the markers decide.
fn by_first_keys(bytes: &[u8]) -> Option<Format> {
    let mut rest = bytes.trim_ascii_start().strip_prefix(b"{")?;
    for _ in 0..FIRST_KEYS {
        let key = rest.trim_ascii_start().strip_prefix(b"\"")?;
        let end = memchr::memchr2(b'"', b'\\', key)?;
        if key[end] != b'"' {
            return None;
        }
        match &key[..end] {
            b"principal" => return Some(Format::Native),
            b"eventVersion" | b"eventSource" | b"eventName" | b"eventsource" | b"eventname" | b"Records" => {
                return Some(Format::Cloudtrail);
            }
            _ => {}
        }
        let value = key[end + 1..].trim_ascii_start().strip_prefix(b":")?.trim_ascii_start();
        let len = record::value_len(value, FIRST_KEYS_BYTES.checked_sub(bytes.len() - value.len())?)?;
        rest = value[len..].trim_ascii_start().strip_prefix(b",")?;
    }
    None
}

/// A format's own marker test (`<module>::detect`).
type Detect = fn(&[u8]) -> bool;

/// Detects the format from the keys present. A key in quotes cannot occur inside a JSON
/// string value (its quotes would be escaped), so a substring search is exact enough.
pub fn detect(bytes: &[u8]) -> Option<Format> {
    use std::sync::LazyLock;
    // An Azure export envelope holds records of any format, each detected alone (`decode`
    // splits it first): the envelope itself is none.
    if record::is_document(bytes, b"\"records\"") {
        return None;
    }
    if let Some(format) = by_first_keys(bytes) {
        return Some(format);
    }
    static EVENT: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\"event"));
    static RECORDS: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\"Records\""));
    static NATIVE: LazyLock<[memmem::Finder<'static>; 2]> =
        LazyLock::new(|| [b"\"principal\"" as &[u8], b"\"outcome\""].map(memmem::Finder::new));
    // CloudTrail first: a canonical event has no `eventName`-like keys, but a CloudTrail record
    // can have a `"principal"` key in its request (Lambda `AddPermission`, for one). One scan
    // for `"event` covers the four spellings of its keys (Panther samples use lowercase).
    let cloudtrail_key = EVENT.find_iter(bytes).any(|at| {
        let rest = &bytes[at + 6..];
        [&b"Source\""[..], b"Name\"", b"source\"", b"name\""].iter().any(|k| rest.starts_with(k))
    });
    // The platforms' own markers, most specific first; each module's `detect` must be false
    // for every event of the other formats (the dataset tests check it on the real corpus).
    let specific: [(Detect, Format); 7] = [
        (k8s::detect, Format::K8sAudit),
        (gcp::detect, Format::GcpAudit),
        (ocsf::detect, Format::Ocsf),
        (entra::detect, Format::Entra),
        (azure_activity::detect, Format::AzureActivity),
        (okta::detect, Format::Okta),
        (github::detect, Format::Github),
    ];
    if let Some((_, format)) = specific.iter().find(|(detect, _)| detect(bytes)) {
        return Some(*format);
    }
    if cloudtrail_key || RECORDS.find(bytes).is_some() {
        return Some(Format::Cloudtrail);
    }
    // `outcome` too, so a canonical event that lost its principal is named as such.
    if NATIVE.iter().any(|f| f.find(bytes).is_some()) {
        return Some(Format::Native);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(bytes: &[u8]) -> Vec<Result<AuditEvent<'_>, DecodeError>> {
        let mut out = Vec::new();
        let ctx = DecodeContext { max_event_bytes: 4096, ..Default::default() };
        decode(bytes, Format::Auto, &ctx, &mut |r| out.push(r));
        out
    }

    fn reason(bytes: &[u8]) -> DeadLetterReason {
        let out = decode_all(bytes);
        assert_eq!(out.len(), 1);
        out[0].clone().unwrap_err().reason
    }

    /// nhid's own events and CloudTrail's records are told by their first keys, and only by
    /// keys of the record: a nested object's keys, which a caller chooses (a request's
    /// parameters), are skipped; what the first keys do not tell, the markers do.
    #[test]
    fn the_first_keys_of_the_record_tell_its_format() {
        let first = |s: &str| by_first_keys(s.as_bytes());
        assert_eq!(
            first(r#"{"id":"e1","time":"2026-11-02T00:00:00Z","principal":{"id":"svc"}}"#),
            Some(Format::Native)
        );
        assert_eq!(first(r#" { "eventVersion" : "1.09", "userIdentity": {}}"#), Some(Format::Cloudtrail));
        assert_eq!(first(r#"{"Records":[{"eventVersion":"1.09"}]}"#), Some(Format::Cloudtrail));
        // Lambda's AddPermission names a `principal` in its request: still CloudTrail.
        let add_permission = r#"{"requestParameters":{"principal":"s3.amazonaws.com","statementId":"a\"b}"},"awsRegion":"us-east-1","eventName":"AddPermission20150331v2"}"#;
        assert_eq!(first(add_permission), Some(Format::Cloudtrail));
        assert_eq!(detect(add_permission.as_bytes()), Some(Format::Cloudtrail));
        // Told by the markers instead: keys the table leaves out, a key that is escaped, values
        // too long to skip, or more keys than it reads.
        assert_eq!(first(r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get"}"#), None);
        assert_eq!(first(r#"{"princ\u0069pal":{"id":"svc"}}"#), None);
        let long = format!(r#"{{"a":"{}","principal":{{"id":"svc"}}}}"#, "x".repeat(FIRST_KEYS_BYTES));
        assert_eq!(first(&long), None);
        assert_eq!(detect(long.as_bytes()), Some(Format::Native));
        let many: String = (0..FIRST_KEYS).map(|i| format!(r#""k{i}":{i},"#)).collect();
        assert_eq!(first(&format!(r#"{{{many}"principal":{{}}}}"#)), None);
        assert_eq!(first(r#"{"a":[1,{"b":"]"}],"n":-1.5e3,"t":true,"principal":{}}"#), Some(Format::Native));
    }

    #[test]
    fn bad_messages_get_a_reason() {
        assert_eq!(reason(b"\xff\xfe{}"), DeadLetterReason::InvalidUtf8);
        assert_eq!(reason(b"hello"), DeadLetterReason::UnknownFormat);
        assert_eq!(reason(br#"{"principal": "#), DeadLetterReason::InvalidJson);
        assert_eq!(reason(&vec![b' '; 5000]), DeadLetterReason::TooLarge);
        // A canonical event the one-pass reader would read whole is held to the ceiling too.
        let agent = "a".repeat(5000);
        let big = format!(
            r#"{{"id":"e1","time":"2026-11-23T10:00:00Z","principal":{{"id":"svc","type":"service_account"}},"action":"s3:GetObject","service":"s3","outcome":"success","source":{{"user_agent":"{agent}"}}}}"#
        );
        assert!(native::one_pass::read(&big).is_some());
        assert_eq!(reason(big.as_bytes()), DeadLetterReason::TooLarge);
        // One it would read but for its empty principal id is refused as naming no principal.
        let nameless = r#"{"id":"e1","time":"2026-11-23T10:00:00Z","principal":{"id":"","type":"service_account"},"action":"s3:GetObject","service":"s3","outcome":"success"}"#;
        assert!(native::one_pass::read(nameless).is_none());
        assert!(native::one_pass::read(&nameless.replace(r#"{"id":"""#, r#"{"id":"svc""#)).is_some());
        assert_eq!(reason(nameless.as_bytes()), DeadLetterReason::MissingPrincipal);
        let bomb = format!(r#"{{"principal":{}1{}}}"#, "[".repeat(300), "]".repeat(300));
        assert_eq!(reason(bomb.as_bytes()), DeadLetterReason::NestingTooDeep);
    }

    #[test]
    fn details_do_not_quote_the_input() {
        let out = decode_all(br#"{"principal":{"id":"x","type":"AKIASECRETVALUE"}}"#);
        let detail = &out[0].as_ref().unwrap_err().detail;
        assert!(!detail.contains("AKIASECRETVALUE") && !detail.contains('\n'), "{detail}");
    }

    #[test]
    fn a_principal_key_inside_a_cloudtrail_request_does_not_make_it_native() {
        let add_permission = br#"{"eventSource":"lambda.amazonaws.com","eventName":"AddPermission20150331v2","requestParameters":{"functionName":"f","action":"lambda:InvokeFunction","principal":"s3.amazonaws.com"}}"#;
        assert_eq!(detect(add_permission), Some(Format::Cloudtrail));
        assert_eq!(detect(br#"{"id":"e1","principal":{"id":"svc"}}"#), Some(Format::Native));
    }

    #[test]
    fn brackets_inside_strings_are_not_nesting() {
        let text = format!(r#"{{"principal":"{}"}}"#, "[".repeat(500));
        assert!(!nesting_exceeds(text.as_bytes(), MAX_NESTING));
        let escaped = format!(r#"{{"a":"\\\"{}"}}"#, "{".repeat(500));
        assert!(!nesting_exceeds(escaped.as_bytes(), MAX_NESTING));
    }

    #[test]
    fn nesting_bomb_in_an_ignored_field_does_not_overflow_the_stack() {
        let depth = 100_000;
        let bomb = format!(r#"{{"extra":{}{},"principal":1}}"#, "[".repeat(depth), "]".repeat(depth));
        let mut out = Vec::new();
        let ctx = DecodeContext { max_event_bytes: 1 << 20, ..Default::default() };
        decode(bomb.as_bytes(), Format::Auto, &ctx, &mut |r| out.push(r));
        assert!(out[0].is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_all(&bytes);
        }

        #[test]
        fn arbitrary_json_like_text_never_panics(s in r#"[\{\}\[\]":,a-z0-9 \\]{0,200}"#) {
            let _ = decode_all(s.as_bytes());
        }
    }
}
