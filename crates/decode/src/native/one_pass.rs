//! The canonical event read in one pass over its bytes, for events shaped as nhid, its
//! simulator and its re-keying stage write them: the schema's fields, strings without
//! escapes, integers, `null`s and JSON whitespace.
//!
//! It is the hot path's reader: the serde reader ([`super::by_serde`]) pays for its
//! generality on every field (a visitor per value, a key matched as an enum, an option
//! peeked for `null`), and on canonical events that was half the whole pipeline's time.
//! Anything else (an escape, a field the schema does not name or named twice, a value of
//! another type, a number the event cannot hold, content rules carried by the re-keying
//! stage, a principal without an id) this declines, and the serde reader reads or refuses
//! it with its reason. So that reader stays the reference: what this accepts, it reads to
//! the same event (a property test in `native` and the `native` fuzz target hold this), and
//! it never refuses.

use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, RawFields, Source, SourceFormat,
};

use crate::scan::{Reader, Seen};

/// The event `text` holds, or `None` when this reader declines it.
pub fn read(text: &str) -> Option<AuditEvent<'_>> {
    Reader { text, at: 0 }.event()
}

impl<'a> Reader<'a> {
    fn event(&mut self) -> Option<AuditEvent<'a>> {
        let (mut id, mut time, mut principal, mut action, mut service, mut outcome) =
            (None, None, None, None, None, None);
        let (mut credential, mut actor, mut source) = (Credential::default(), Actor::default(), Source::default());
        let (mut resource, mut bytes_out, mut source_format) = (None, None, SourceFormat::default());
        let mut seen = Seen::default();
        self.object(|r, name| {
            match name {
                "id" => {
                    seen.first(0)?;
                    id = Some(r.text_field()?)
                }
                "time" => {
                    seen.first(1)?;
                    time = Some(r.time()?)
                }
                "principal" => {
                    seen.first(2)?;
                    principal = Some(r.principal()?)
                }
                "credential" => {
                    seen.first(3)?;
                    credential = r.credential()?
                }
                "actor" => {
                    seen.first(4)?;
                    actor = r.actor()?
                }
                "action" => {
                    seen.first(5)?;
                    action = Some(r.text_field()?)
                }
                "service" => {
                    seen.first(6)?;
                    service = Some(r.text_field()?)
                }
                "resource" => {
                    seen.first(7)?;
                    resource = r.optional_text()?
                }
                "outcome" => {
                    seen.first(8)?;
                    outcome = Some(Outcome::parse(r.string()?)?)
                }
                "source" => {
                    seen.first(9)?;
                    source = r.source()?
                }
                "bytes_out" => {
                    seen.first(10)?;
                    bytes_out = r.nullable(Self::integer)?
                }
                "source_format" => {
                    seen.first(11)?;
                    source_format = SourceFormat::parse(r.string()?)?
                }
                _ => return None,
            };
            Some(())
        })?;
        // Nothing may follow; checked before the event is built, which is then built once,
        // where the caller keeps it (an event is some 600 bytes, and each move a copy).
        self.end()?;
        Some(AuditEvent {
            id: id?,
            time: time?,
            principal: principal?,
            credential,
            actor,
            action: action?,
            service: service?,
            resource,
            outcome: outcome?,
            source,
            bytes_out,
            source_format,
            rules: Vec::new(),
            raw: "",
            raw_fields: RawFields::default(),
        })
    }

    fn principal(&mut self) -> Option<Principal<'a>> {
        let (mut id, mut kind, mut name, mut owner, mut tenant, mut inferred) = (None, None, None, None, None, false);
        let mut seen = Seen::default();
        self.object(|r, field| {
            match field {
                "id" => {
                    seen.first(0)?;
                    id = Some(r.text_field()?)
                }
                "type" => {
                    seen.first(1)?;
                    kind = Some(PrincipalType::parse(r.string()?)?)
                }
                "name" => {
                    seen.first(2)?;
                    name = r.optional_text()?
                }
                "owner" => {
                    seen.first(3)?;
                    owner = r.optional_text()?
                }
                "tenant" => {
                    seen.first(4)?;
                    tenant = r.optional_text()?
                }
                "type_inferred" => {
                    seen.first(5)?;
                    inferred = r.boolean()?
                }
                _ => return None,
            };
            Some(())
        })?;
        // An empty id names no principal: the serde reader's path refuses it, with its reason.
        let id = id.filter(|id| !id.is_empty())?;
        Some(Principal { id, kind: kind?, name, owner, tenant, inferred })
    }

    fn credential(&mut self) -> Option<Credential<'a>> {
        let mut c = Credential::default();
        let mut seen = Seen::default();
        self.object(|r, field| {
            match field {
                "id" => {
                    seen.first(0)?;
                    c.id = r.optional_text()?
                }
                "kind" => {
                    seen.first(1)?;
                    c.kind = CredentialKind::parse(r.string()?)?
                }
                "issued_at" => {
                    seen.first(2)?;
                    c.issued_at = r.nullable(Self::time)?
                }
                "expires_at" => {
                    seen.first(3)?;
                    c.expires_at = r.nullable(Self::time)?
                }
                _ => return None,
            };
            Some(())
        })?;
        Some(c)
    }

    fn actor(&mut self) -> Option<Actor<'a>> {
        let mut a = Actor::default();
        let mut seen = Seen::default();
        self.object(|r, field| {
            match field {
                "delegating_user" => {
                    seen.first(0)?;
                    a.delegating_user = r.optional_text()?
                }
                "agent_id" => {
                    seen.first(1)?;
                    a.agent_id = r.optional_text()?
                }
                "session_id" => {
                    seen.first(2)?;
                    a.session_id = r.optional_text()?
                }
                // An impersonator (Kubernetes) is rare: left to the serde reader.
                "impersonator" => {
                    seen.first(3)?;
                    r.literal("null")?
                }
                _ => return None,
            };
            Some(())
        })?;
        Some(a)
    }

    fn source(&mut self) -> Option<Source<'a>> {
        let mut s = Source::default();
        let mut seen = Seen::default();
        self.object(|r, field| {
            match field {
                "ip" => {
                    seen.first(0)?;
                    s.ip = r.optional_text()?
                }
                "user_agent" => {
                    seen.first(1)?;
                    s.user_agent = r.optional_text()?
                }
                "asn" => {
                    seen.first(2)?;
                    s.asn = r.nullable(Self::integer)?.map(u32::try_from).transpose().ok()?;
                }
                "country" => {
                    seen.first(3)?;
                    s.country = r.optional_text()?
                }
                _ => return None,
            };
            Some(())
        })?;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::by_serde;
    use proptest::prelude::*;

    /// A field of an object as text: its name and its value.
    type Field = (String, String);

    fn field(name: &str, value: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Option<Field>> {
        let name = name.to_owned();
        value.prop_map(move |v| Some((name.clone(), v))).boxed()
    }

    /// A field that may be absent.
    fn optional(name: &str, value: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Option<Field>> {
        prop::option::of(field(name, value).prop_map(Option::unwrap)).boxed()
    }

    fn quoted(pattern: &'static str) -> BoxedStrategy<String> {
        pattern.prop_map(|s| format!("\"{s}\"")).boxed()
    }

    fn text() -> BoxedStrategy<String> {
        prop_oneof![quoted("[a-zA-Z0-9:/._@ -]{1,20}"), quoted("[a-zé€😀]{1,9}")].boxed()
    }

    fn nullable(value: BoxedStrategy<String>) -> BoxedStrategy<String> {
        prop_oneof![4 => value, 1 => Just("null".to_owned())].boxed()
    }

    fn one_of(texts: &[&str]) -> BoxedStrategy<String> {
        prop::sample::select(texts.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>()).boxed()
    }

    fn time() -> BoxedStrategy<String> {
        one_of(&[
            "2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00.123Z",
            "2026-11-23T11:00:00+01:00",
            "1999-12-31 23:59:59",
        ])
    }

    /// Any value, of the shapes an event holds and of those it must not.
    fn anything() -> BoxedStrategy<String> {
        let odd = prop::sample::select(vec![
            r#""""#,
            r#""a\"b""#,
            r#""a\\b""#,
            r#""\u00e9t\u00e9""#,
            "\"tab\there\"",
            "\"line\nbreak\"",
            "null",
            "true",
            "false",
            "0",
            "7",
            "007",
            "-1",
            "1.5",
            "1e3",
            "4294967295",
            "4294967296",
            "18446744073709551615",
            "18446744073709551616",
            "[]",
            r#"["a"]"#,
            "{}",
            r#"{"id":"x"}"#,
            "nul",
            "tru",
            r#""open"#,
            "\"robot\"",
            "\"yesterday\"",
            "\"2026-13-01T00:00:00Z\"",
            "\"service_account\"",
            "\"static_key\"",
            "\"success\"",
            "\"k8s_audit\"",
        ]);
        prop_oneof![3 => odd.prop_map(str::to_owned), 1 => text(), 1 => time()].boxed()
    }

    /// What becomes of an object's fields before they are written.
    #[derive(Clone, Debug)]
    enum Change {
        None,
        /// A field's value replaced by another.
        Value(prop::sample::Index, String),
        /// A field written twice.
        Twice(prop::sample::Index),
        /// A field the schema does not name.
        Unknown(String, String),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            6 => Just(Change::None),
            2 => (any::<prop::sample::Index>(), anything()).prop_map(|(i, v)| Change::Value(i, v)),
            1 => any::<prop::sample::Index>().prop_map(Change::Twice),
            1 => (prop::sample::select(vec!["extra", "rules", "raw", "ID", "impersonator"]), anything())
                .prop_map(|(k, v)| Change::Unknown(k.to_owned(), v)),
        ]
    }

    /// An object of `fields` (those present), in any order, changed or not, with JSON
    /// whitespace of any kind between its tokens.
    fn object(fields: Vec<BoxedStrategy<Option<Field>>>) -> BoxedStrategy<String> {
        let space = prop::sample::select(vec!["", "", " ", "\n  ", "\t", "\r\n"]);
        (fields, change(), space)
            .prop_map(|(fields, change, space)| {
                let mut fields: Vec<Field> = fields.into_iter().flatten().collect();
                match change {
                    Change::None => {}
                    Change::Value(i, v) if !fields.is_empty() => {
                        let at = i.index(fields.len());
                        fields[at].1 = v;
                    }
                    Change::Twice(i) if !fields.is_empty() => {
                        let twice = fields[i.index(fields.len())].clone();
                        fields.push(twice);
                    }
                    Change::Unknown(k, v) => fields.push((k, v)),
                    _ => {}
                }
                (fields, space)
            })
            .prop_flat_map(|(fields, space)| (Just(fields).prop_shuffle(), Just(space)))
            .prop_map(|(fields, s)| {
                let body: Vec<String> = fields.iter().map(|(k, v)| format!("{s}\"{k}\"{s}:{s}{v}{s}")).collect();
                format!("{s}{{{}}}{s}", body.join(","))
            })
            .boxed()
    }

    /// Canonical events as nhid writes them and as others might, some changed.
    fn event() -> BoxedStrategy<String> {
        let principal = object(vec![
            field("id", text()),
            field("type", one_of(&["service_account", "human", "ai_agent", "workload", "unknown"])),
            optional("name", nullable(text())),
            optional("owner", nullable(text())),
            optional("tenant", nullable(text())),
            optional("type_inferred", prop::sample::select(vec!["true".to_owned(), "false".to_owned()]).boxed()),
        ]);
        let credential = object(vec![
            optional("id", nullable(text())),
            optional("kind", one_of(&["static_key", "short_lived_token", "session", "unknown"])),
            optional("issued_at", nullable(time())),
            optional("expires_at", nullable(time())),
        ]);
        let actor = object(vec![
            optional("delegating_user", nullable(text())),
            optional("agent_id", nullable(text())),
            optional("session_id", nullable(text())),
            optional("impersonator", Just("null".to_owned())),
        ]);
        let source = object(vec![
            optional("ip", nullable(text())),
            optional("user_agent", nullable(text())),
            optional("asn", nullable((0..=u64::from(u32::MAX)).prop_map(|n| n.to_string()).boxed())),
            optional("country", nullable(text())),
        ]);
        object(vec![
            field("id", text()),
            field("time", time()),
            field("principal", principal),
            optional("credential", credential),
            optional("actor", actor),
            field("action", text()),
            field("service", text()),
            optional("resource", nullable(text())),
            field("outcome", one_of(&["success", "failure", "denied"])),
            optional("source", source),
            optional("bytes_out", nullable(any::<u64>().prop_map(|n| n.to_string()).boxed())),
            optional("source_format", one_of(&["native", "cloudtrail", "okta"])),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// What this reads, serde reads to the same event; what it declines, serde decides.
        #[test]
        fn reads_what_it_accepts_as_serde_does(text in event()) {
            if let Some(event) = read(&text) {
                prop_assert_eq!(by_serde(&text).map_err(|e| e.detail), Ok(event));
            }
        }
    }

    /// The property above says nothing unless both cases come up often.
    #[test]
    fn the_generated_events_are_both_read_and_declined() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let events = event();
        let mut accepted = 0;
        for _ in 0..1_000 {
            let text = events.new_tree(&mut runner).unwrap().current();
            accepted += usize::from(read(&text).is_some());
        }
        assert!((200..=800).contains(&accepted), "{accepted} of 1,000 read");
    }

    #[test]
    fn reads_the_shapes_nhid_writes_and_declines_the_rest() {
        let good = r#"{"id":"e1","time":"2026-11-23T10:00:00Z","principal":{"id":"svc-billing","type":"service_account","owner":"team-billing"},"credential":{"id":"AKIAEXAMPLE","kind":"static_key","issued_at":null},"actor":{},"action":"s3:GetObject","service":"s3","outcome":"success","source":{"ip":"10.1.2.3","asn":16509},"bytes_out":1024,"source_format":"native"}"#;
        let event = read(good).expect("a canonical event");
        assert_eq!(Ok(event), by_serde(good).map_err(|e| e.detail));
        let pretty = serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(good).unwrap()).unwrap();
        assert!(read(&pretty).is_some(), "whitespace between tokens");
        for (case, changed) in [
            ("an escape", good.replace("svc-billing", r"svc\u002dbilling")),
            ("a field twice", good.replace(r#""actor":{}"#, r#""actor":{},"actor":{}"#)),
            ("a field not in the schema", good.replace(r#""actor":{}"#, r#""actor":{},"extra":1"#)),
            ("rules carried by re-keying", good.replace(r#""actor":{}"#, r#""actor":{},"rules":[]"#)),
            ("an impersonator", good.replace(r#""actor":{}"#, r#""actor":{"impersonator":{}}"#)),
            ("a leading zero", good.replace("1024", "01024")),
            ("a fraction", good.replace("1024", "1024.0")),
            ("an exponent", good.replace("1024", "1e3")),
            ("a negative count", good.replace("1024", "-1")),
            ("an asn past u32", good.replace("16509", "4294967296")),
            ("a count past u64", good.replace("1024", "18446744073709551616")),
            ("an unknown type", good.replace("service_account", "robot")),
            ("an unreadable time", good.replace("2026-11-23T10:00:00Z", "yesterday")),
            ("a missing action", good.replace(r#""action":"s3:GetObject","#, "")),
            ("trailing text", format!("{good} x")),
            ("a second object", format!("{good}{good}")),
            ("a raw control character", good.replace("svc-billing", "svc\u{1}billing")),
            ("an unterminated string", good[..40].to_owned()),
        ] {
            assert!(read(&changed).is_none(), "{case}: {changed}");
        }
    }
}
