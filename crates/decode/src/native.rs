//! nhid's own canonical JSON (`schemas/audit-event.schema.json`), one event per message.

use super::DecodeError;
use crate::record::parse_canonical;
use nhid_model::event::AuditEvent;
use nhid_model::vocab::DeadLetterReason;

pub mod one_pass;

/// The event `text` holds: read in one pass when it is shaped as nhid writes events
/// ([`one_pass`]), else by serde.
pub fn decode(text: &str) -> Result<AuditEvent<'_>, DecodeError> {
    match one_pass::read(text) {
        Some(event) => Ok(event),
        None => checked(by_serde(text)?),
    }
}

/// `event`, unless it names no principal.
pub(crate) fn checked(event: AuditEvent<'_>) -> Result<AuditEvent<'_>, DecodeError> {
    if event.principal.id.is_empty() {
        return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "empty principal id"));
    }
    Ok(event)
}

/// The event `text` holds, read by serde: every shape the schema allows, and the reason
/// for what it refuses.
pub fn by_serde(text: &str) -> Result<AuditEvent<'_>, DecodeError> {
    parse_canonical(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::event::{CredentialKind, Outcome, PrincipalType};

    const GOOD: &str = r#"{"id":"e1","time":"2026-11-23T10:00:00Z","principal":{"id":"svc-billing","type":"service_account","owner":"team-billing"},"credential":{"id":"AKIAEXAMPLE","kind":"static_key"},"actor":{},"action":"s3:GetObject","service":"s3","outcome":"success","source":{"ip":"10.1.2.3"},"source_format":"native"}"#;

    #[test]
    fn decodes_a_canonical_event_borrowing_its_strings() {
        let e = decode(GOOD).unwrap();
        assert_eq!(e.principal.kind, PrincipalType::ServiceAccount);
        assert_eq!(e.credential.kind, CredentialKind::StaticKey);
        assert_eq!(e.outcome, Outcome::Success);
        // Borrowed, optional fields included: no allocation per string on the hot path.
        use std::borrow::Cow::Borrowed;
        assert!(matches!(e.principal.id, Borrowed(_)));
        assert!(matches!(e.principal.owner, Some(Borrowed(_))));
        assert!(matches!(e.credential.id, Some(Borrowed(_))));
        assert!(matches!(e.source.ip, Some(Borrowed(_))));
        // It round-trips through its own serialization.
        let again = serde_json::to_string(&e).unwrap();
        assert_eq!(decode(&again).unwrap(), e);
    }

    #[test]
    fn names_what_is_missing_or_wrong() {
        let no_principal =
            GOOD.replace(r#""principal":{"id":"svc-billing","type":"service_account","owner":"team-billing"},"#, "");
        assert_eq!(decode(&no_principal).unwrap_err().reason, DeadLetterReason::MissingPrincipal);
        let empty = GOOD.replace(r#""id":"svc-billing""#, r#""id":"""#);
        assert_eq!(decode(&empty).unwrap_err().reason, DeadLetterReason::MissingPrincipal);
        let no_time = GOOD.replace(r#""time":"2026-11-23T10:00:00Z","#, "");
        assert_eq!(decode(&no_time).unwrap_err().reason, DeadLetterReason::MissingTime);
        let bad_time = GOOD.replace("2026-11-23T10:00:00Z", "yesterday");
        assert_eq!(decode(&bad_time).unwrap_err().reason, DeadLetterReason::InvalidTime);
        let wrong_type = GOOD.replace(r#""action":"s3:GetObject""#, r#""action":42"#);
        assert_eq!(decode(&wrong_type).unwrap_err().reason, DeadLetterReason::WrongType);
        let bad_enum = GOOD.replace(r#""type":"service_account""#, r#""type":"robot""#);
        assert_eq!(decode(&bad_enum).unwrap_err().reason, DeadLetterReason::WrongType);
    }

    #[test]
    fn an_array_for_an_object_or_a_number_nhid_cannot_hold_is_a_wrong_type() {
        let principal = r#"{"id":"svc-billing","type":"service_account","owner":"team-billing"}"#;
        let credential = r#"{"id":"AKIAEXAMPLE","kind":"static_key"}"#;
        let big = "9".repeat(400);
        for (case, text) in [
            ("principal array", GOOD.replace(principal, r#"["svc-x","service_account"]"#)),
            ("credential array", GOOD.replace(credential, r#"["AKIAEXAMPLE","static_key"]"#)),
            ("actor array", GOOD.replace(r#""actor":{}"#, r#""actor":[]"#)),
            ("source array", GOOD.replace(r#"{"ip":"10.1.2.3"}"#, r#"["10.1.2.3"]"#)),
            ("event array", r#"["e1","2026-11-23T10:00:00Z",{"id":"svc-x","type":"bot"},{},{},"a","s",null,"success",{},null,"native"]"#.to_owned()),
            ("enum number", GOOD.replace(r#""type":"service_account""#, r#""type":3"#)),
            ("enum huge number", GOOD.replace(r#""type":"service_account""#, &format!(r#""type":{big}"#))),
            ("string huge number", GOOD.replace(r#""action":"s3:GetObject""#, &format!(r#""action":{big}"#))),
            ("count huge number", GOOD.replace(r#""outcome""#, &format!(r#""bytes_out":{big},"outcome""#))),
            ("count infinite", GOOD.replace(r#""outcome""#, r#""bytes_out":1e400,"outcome""#)),
        ] {
            let err = decode(&text).expect_err(case);
            assert_eq!(err.reason, DeadLetterReason::WrongType, "{case}: {}", err.detail);
            assert!(!err.detail.contains("999"), "{case}: {}", err.detail);
        }
        // A huge number in a field nhid does not read is skipped, not refused.
        assert!(decode(&GOOD.replace(r#""outcome""#, &format!(r#""extra":{big},"outcome""#))).is_ok());
    }
}
