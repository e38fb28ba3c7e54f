//! What the decoders' unit tests share: running one format's decoder over a text, and
//! building the record a test case varies.

use nhid_model::event::{AuditEvent, CredentialKind, Outcome, PrincipalType, SourceFormat};

use crate::{DecodeContext, DecodeError};

/// A format's `decode`.
pub type Decoder = for<'a> fn(&'a str, &DecodeContext, &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>));

/// Every record `decode` emits for `text`.
pub fn decode_all<'a>(decode: Decoder, text: &'a str, ctx: &DecodeContext) -> Vec<Result<AuditEvent<'a>, DecodeError>> {
    let mut out = Vec::new();
    decode(text, ctx, &mut |r| out.push(r));
    out
}

/// The one record `decode` emits for `text`, without a fallback time.
pub fn one(decode: Decoder, text: &str) -> Result<AuditEvent<'_>, DecodeError> {
    let mut out = decode_all(decode, text, &DecodeContext::default());
    assert_eq!(out.len(), 1, "{text}");
    out.remove(0)
}

/// `decode_all` and `one` for the format whose `decode` is in scope where this is expanded.
macro_rules! decoder_helpers {
    () => {
        #[allow(dead_code)]
        fn decode_all<'a>(
            text: &'a str,
            ctx: &$crate::DecodeContext,
        ) -> Vec<Result<nhid_model::event::AuditEvent<'a>, $crate::DecodeError>> {
            $crate::testing::decode_all(decode, text, ctx)
        }
        fn one(text: &str) -> Result<nhid_model::event::AuditEvent<'_>, $crate::DecodeError> {
            $crate::testing::one(decode, text)
        }
    };
}
pub(crate) use decoder_helpers;

/// A JSON object of `defaults` (key and raw JSON value) and `fields` (raw `"key":value`
/// text); a field replaces the default of the same key, and empty fields are left out.
pub fn object_with(defaults: &[(&str, &str)], fields: &[&str]) -> String {
    let given = fields.concat();
    let mut members: Vec<String> = defaults
        .iter()
        .filter(|(k, _)| !given.contains(&format!(r#""{k}":"#)))
        .map(|(k, v)| format!(r#""{k}":{v}"#))
        .collect();
    members.extend(fields.iter().filter(|f| !f.is_empty()).map(|f| f.to_string()));
    format!("{{{}}}", members.join(","))
}

/// The triad of an event: delegating user, agent, session.
pub fn triad<'e>(e: &'e AuditEvent<'_>) -> [Option<&'e str>; 3] {
    [&e.actor.delegating_user, &e.actor.agent_id, &e.actor.session_id].map(|f| f.as_deref())
}

/// A row of a classification table as GCP and Kubernetes write theirs: case, the identity's
/// JSON, extra fields, principal id, type, credential kind, credential id, and the two
/// attribution fields the format carries (each format's table says which).
pub type ClassificationRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    PrincipalType,
    CredentialKind,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// What a row of a format's classification table says of its event: who acted, with which
/// credential, on whose behalf ([`triad`]), read from which format.
pub fn assert_classified(
    case: &str,
    e: &AuditEvent<'_>,
    principal: (&str, PrincipalType),
    credential: (CredentialKind, Option<&str>),
    attribution: [Option<&str>; 3],
    format: SourceFormat,
) {
    assert_eq!((e.principal.id.as_ref(), e.principal.kind), principal, "{case}: principal");
    assert_eq!((e.credential.kind, e.credential.id.as_deref()), credential, "{case}: credential");
    assert_eq!(triad(e), attribution, "{case}: delegating user, agent, session");
    assert_eq!(e.source_format, format, "{case}");
}

/// A classification case: a message, and what its event must say about who acted and how.
pub struct Case {
    pub name: &'static str,
    pub text: String,
    pub kind: PrincipalType,
    pub principal: &'static str,
    pub credential: CredentialKind,
    /// Checked by the formats whose cases name it.
    pub credential_id: Option<&'static str>,
    pub delegating_user: Option<&'static str>,
    pub agent_id: Option<&'static str>,
    pub session_id: Option<&'static str>,
    pub outcome: Outcome,
}

/// A service account that signed in with nothing more: each case says what differs.
impl Default for Case {
    fn default() -> Self {
        Case {
            name: "",
            text: String::new(),
            kind: PrincipalType::ServiceAccount,
            principal: "",
            credential: CredentialKind::Unknown,
            credential_id: None,
            delegating_user: None,
            agent_id: None,
            session_id: None,
            outcome: Outcome::Success,
        }
    }
}

impl Case {
    /// Asserts what the case expects of `e`, its event.
    pub fn check(&self, e: &AuditEvent<'_>) {
        let name = self.name;
        assert_eq!(e.principal.kind, self.kind, "{name}");
        assert_eq!(e.principal.id, self.principal, "{name}");
        assert_eq!(e.credential.kind, self.credential, "{name}");
        assert_eq!(triad(e), [self.delegating_user, self.agent_id, self.session_id], "{name}");
        assert_eq!(e.outcome, self.outcome, "{name}");
    }
}

/// Runs a format's classification table: there are enough cases to cover the platform's kinds
/// of identity, the format's `detect` claims every text, and every event is what its case
/// expects. The events are returned for the format's own checks.
pub fn check_table<'c>(
    cases: &'c [Case],
    detect: fn(&[u8]) -> bool,
    decode: Decoder,
) -> Vec<(&'c Case, AuditEvent<'c>)> {
    assert!(cases.len() >= 15);
    cases
        .iter()
        .map(|c| {
            assert!(detect(c.text.as_bytes()), "{}: detected", c.name);
            let e = one(decode, &c.text).unwrap_or_else(|err| panic!("{}: {err}", c.name));
            c.check(&e);
            (c, e)
        })
        .collect()
}
