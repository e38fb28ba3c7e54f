//! The CloudTrail record read in one pass over its text, for records shaped as CloudTrail
//! writes them: the fields nhid reads as strings without escapes (or `null`), the rest
//! checked as JSON and skipped unread, whatever they hold (`requestParameters` holds what
//! the call was given, escapes and all).
//!
//! It is the hot path's reader, as `native::one_pass` is for canonical events: the serde
//! reader pays, on every field, for a visitor, a key matched against aliases and the lenient
//! readers' `deserialize_any`; on a CloudTrail replay that was over a quarter of the time.
//! Anything else (an escape in a field read, a field read twice, a value of another type than
//! CloudTrail writes, a `Records` document, a number serde might refuse) this declines, and
//! the serde reader ([`super::by_serde`]) reads or refuses it with its reason. What this
//! accepts, it reads to the record serde reads (`tests/cloudtrail_dataset.rs` holds it on
//! the Panther and Stratus records, a property test here on records changed at random, and
//! the `cloudtrail` fuzz target on whatever it finds).

use serde::de::IgnoredAny;

use super::record::{
    AccessKey, AdditionalEventData, Record, ResponseElements, SessionAttributes, SessionContext, SessionIssuer,
    UserIdentity,
};
use crate::scan::{Reader, Seen};

/// The record `text` holds, or `None` when this reader declines it.
pub(super) fn read(text: &str) -> Option<Record<'_>> {
    let mut r = Reader { text, at: 0 };
    let record = r.record()?;
    r.end()?;
    Some(record)
}

impl<'a> Reader<'a> {
    fn record(&mut self) -> Option<Record<'a>> {
        let mut rec = Record {
            records: None,
            event_id: None,
            event_time: None,
            p_event_time: None,
            shipped_at: None,
            event_source: None,
            event_name: None,
            event_type: None,
            user_identity: None,
            recipient_account_id: None,
            source_ip_address: None,
            user_agent: None,
            error_code: None,
            response_elements: None,
            additional_event_data: None,
            resources: None,
            session_credential_from_console: false,
        };
        let mut seen = Seen::default();
        self.object(|r, key| {
            // A key and its lowercase spelling (Panther's) are one field: serde refuses both.
            match key {
                "eventID" | "eventid" => {
                    seen.first(0)?;
                    rec.event_id = r.optional_text()?
                }
                "eventTime" | "eventtime" => {
                    seen.first(1)?;
                    rec.event_time = r.optional_text()?
                }
                "p_event_time" => {
                    seen.first(2)?;
                    rec.p_event_time = r.optional_text()?
                }
                "@timestamp" => {
                    seen.first(3)?;
                    rec.shipped_at = r.optional_text()?
                }
                "eventSource" | "eventsource" => {
                    seen.first(4)?;
                    rec.event_source = r.optional_text()?
                }
                "eventName" | "eventname" => {
                    seen.first(5)?;
                    rec.event_name = r.optional_text()?
                }
                "eventType" | "eventtype" => {
                    seen.first(6)?;
                    rec.event_type = r.optional_text()?
                }
                "userIdentity" | "useridentity" => {
                    seen.first(7)?;
                    rec.user_identity = r.nullable(Self::user_identity)?
                }
                "recipientAccountId" | "recipientaccountid" => {
                    seen.first(8)?;
                    rec.recipient_account_id = r.optional_text()?
                }
                "sourceIPAddress" | "sourceipaddress" => {
                    seen.first(9)?;
                    rec.source_ip_address = r.optional_text()?
                }
                "userAgent" | "useragent" => {
                    seen.first(10)?;
                    rec.user_agent = r.optional_text()?
                }
                "errorCode" | "errorcode" => {
                    seen.first(11)?;
                    rec.error_code = r.optional_text()?
                }
                "responseElements" | "responseelements" => {
                    seen.first(12)?;
                    rec.response_elements = r.nullable(Self::response_elements)?
                }
                "additionalEventData" | "additionaleventdata" => {
                    seen.first(13)?;
                    rec.additional_event_data = r.nullable(Self::additional_event_data)?
                }
                "resources" => {
                    seen.first(14)?;
                    rec.resources = r.nullable(Self::first_resource_arn)?.flatten()
                }
                "sessionCredentialFromConsole" | "sessioncredentialfromconsole" => {
                    seen.first(15)?;
                    rec.session_credential_from_console = r.flag()?
                }
                // A document of records: read as one by the serde reader.
                "Records" => return None,
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(rec)
    }

    fn user_identity(&mut self) -> Option<UserIdentity<'a>> {
        let mut u = UserIdentity {
            kind: None,
            principal_id: None,
            arn: None,
            account_id: None,
            access_key_id: None,
            user_name: None,
            invoked_by: None,
            session_context: None,
        };
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                "type" => {
                    seen.first(0)?;
                    u.kind = r.optional_text()?
                }
                "principalId" | "principalid" => {
                    seen.first(1)?;
                    u.principal_id = r.optional_text()?
                }
                "arn" => {
                    seen.first(2)?;
                    u.arn = r.optional_text()?
                }
                "accountId" | "accountid" => {
                    seen.first(3)?;
                    u.account_id = r.optional_text()?
                }
                "accessKeyId" | "accesskeyid" => {
                    seen.first(4)?;
                    u.access_key_id = r.optional_text()?
                }
                "userName" | "username" => {
                    seen.first(5)?;
                    u.user_name = r.optional_text()?
                }
                "invokedBy" | "invokedby" => {
                    seen.first(6)?;
                    u.invoked_by = r.optional_text()?
                }
                "sessionContext" | "sessioncontext" => {
                    seen.first(7)?;
                    u.session_context = r.nullable(Self::session_context)?
                }
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(u)
    }

    fn session_context(&mut self) -> Option<SessionContext<'a>> {
        let mut c =
            SessionContext { attributes: None, session_issuer: None, ec2_role_delivery: None, source_identity: None };
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                "attributes" => {
                    seen.first(0)?;
                    c.attributes = r.nullable(Self::session_attributes)?
                }
                "sessionIssuer" | "sessionissuer" => {
                    seen.first(1)?;
                    c.session_issuer = r.nullable(Self::session_issuer)?
                }
                // Present or not is all that counts.
                "ec2RoleDelivery" | "ec2roledelivery" => {
                    seen.first(2)?;
                    c.ec2_role_delivery = r.nullable(Self::skip)?.map(|()| IgnoredAny)
                }
                "sourceIdentity" | "sourceidentity" => {
                    seen.first(3)?;
                    c.source_identity = r.optional_text()?
                }
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(c)
    }

    fn session_attributes(&mut self) -> Option<SessionAttributes<'a>> {
        let mut a = SessionAttributes { creation_date: None, mfa_authenticated: false };
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                "creationDate" | "creationdate" => {
                    seen.first(0)?;
                    a.creation_date = r.optional_text()?
                }
                "mfaAuthenticated" | "mfaauthenticated" => {
                    seen.first(1)?;
                    a.mfa_authenticated = r.flag()?
                }
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(a)
    }

    fn session_issuer(&mut self) -> Option<SessionIssuer<'a>> {
        let mut i = SessionIssuer { arn: None, user_name: None };
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                "arn" => {
                    seen.first(0)?;
                    i.arn = r.optional_text()?
                }
                "userName" | "username" => {
                    seen.first(1)?;
                    i.user_name = r.optional_text()?
                }
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(i)
    }

    fn response_elements(&mut self) -> Option<ResponseElements<'a>> {
        let mut e = ResponseElements { console_login: None, access_key: None };
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                "ConsoleLogin" | "consolelogin" => {
                    seen.first(0)?;
                    e.console_login = r.optional_text()?
                }
                "accessKey" | "accesskey" => {
                    seen.first(1)?;
                    e.access_key = r.nullable(Self::access_key)?
                }
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(e)
    }

    fn access_key(&mut self) -> Option<AccessKey<'a>> {
        let mut k = AccessKey { access_key_id: None };
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                "accessKeyId" | "accesskeyid" => {
                    seen.first(0)?;
                    k.access_key_id = r.optional_text()?
                }
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(k)
    }

    fn additional_event_data(&mut self) -> Option<AdditionalEventData> {
        let mut d = AdditionalEventData { bytes_transferred_out: None };
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                // An integer; a fraction (S3 writes `0.0` at times) is left to serde.
                "bytesTransferredOut" | "bytestransferredout" => {
                    seen.first(0)?;
                    d.bytes_transferred_out = r.nullable(Self::integer)?
                }
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(d)
    }

    /// `resources[]`: the first nonempty ARN of its objects.
    fn first_resource_arn(&mut self) -> Option<Option<std::borrow::Cow<'a, str>>> {
        let mut first = None;
        self.array(|r| {
            let mut arn = None;
            let mut seen = Seen::default();
            r.object(|r, key| {
                match key {
                    "ARN" | "arn" => {
                        seen.first(0)?;
                        arn = r.optional_text()?
                    }
                    _ => r.skip()?,
                }
                Some(())
            })?;
            if first.is_none() {
                first = arn.filter(|a: &std::borrow::Cow<'a, str>| !a.is_empty());
            }
            Some(())
        })?;
        Some(first)
    }

    /// `true`, `false`, or a string that is `true` in any case (CloudTrail writes
    /// `sessionContext` booleans as strings); `null` is false.
    fn flag(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' | b'f' => self.boolean(),
            b'n' => self.literal("null").map(|()| false),
            _ => self.string().map(|s| s.eq_ignore_ascii_case("true")),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::DecodeContext;

    /// Both readers' events for `text`: the one-pass reader's (`None` when it declines) and serde's.
    fn both(text: &str) -> (Option<Result<String, String>>, Result<String, String>) {
        let show = |r: Result<nhid_model::event::AuditEvent<'_>, crate::DecodeError>| {
            r.map(|e| format!("{e:?}")).map_err(|e| e.detail)
        };
        let (fast, serde) = super::super::both_readers(text, &DecodeContext::default());
        (fast.map(show), show(serde))
    }

    const RECORD: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:i-0abc","arn":"arn:aws:sts::123456789012:assumed-role/app/i-0abc","accountId":"123456789012","accessKeyId":"ASIAEXAMPLE","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLE","arn":"arn:aws:iam::123456789012:role/app","accountId":"123456789012","userName":"app"},"webIdFederationData":{},"attributes":{"creationDate":"2024-05-01T11:00:00Z","mfaAuthenticated":"false"},"ec2RoleDelivery":"2.0"}},"eventTime":"2024-05-01T12:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7","userAgent":"aws-sdk-go/1.44 (go1.20; linux; amd64)","requestParameters":{"bucketName":"b","key":"a \"quoted\" key \u00e9","Host":"b.s3.amazonaws.com","list":[1,2.5,-3,true,null]},"responseElements":null,"additionalEventData":{"bytesTransferredIn":0,"bytesTransferredOut":1024},"requestID":"R1","eventID":"E1","readOnly":true,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/a"},{"accountId":"123456789012","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::b"}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"123456789012","eventCategory":"Data","tlsDetails":{"tlsVersion":"TLSv1.3"}}"#;

    #[test]
    fn reads_a_record_as_serde_does_and_declines_what_it_does_not_read() {
        let (fast, serde) = both(RECORD);
        assert_eq!(fast, Some(serde.clone()), "a data event");
        assert!(serde.unwrap().contains("arn:aws:s3:::b/a"));
        for (case, changed) in [
            ("an escape in a field read", RECORD.replace("GetObject", r"Get\u004fbject")),
            ("a field twice", RECORD.replace(r#""readOnly""#, r#""eventName":"PutObject","readOnly""#)),
            (
                "a field and its lowercase spelling",
                RECORD.replace(r#""readOnly""#, r#""eventname":"PutObject","readOnly""#),
            ),
            ("a number where a string is read", RECORD.replace(r#""eventType":"AwsApiCall""#, r#""eventType":1"#)),
            ("a document of records", format!(r#"{{"Records":[{RECORD}]}}"#)),
            ("an exponent in a skipped value", RECORD.replace("2.5", "2.5e3")),
            (
                "a fraction where an integer is read",
                RECORD.replace(r#""bytesTransferredOut":1024"#, r#""bytesTransferredOut":1024.0"#),
            ),
            ("trailing text", format!("{RECORD} x")),
            ("invalid JSON in a skipped value", RECORD.replace("[1,2.5", "[1,,2.5")),
        ] {
            let (fast, serde) = both(&changed);
            assert_eq!(fast, None, "{case}: {serde:?}");
        }
        for (case, changed) in [
            ("lowercase keys", RECORD.replace("eventName", "eventname").replace("userIdentity", "useridentity")),
            (
                "null fields",
                RECORD.replace(r#""userAgent":"aws-sdk-go/1.44 (go1.20; linux; amd64)""#, r#""userAgent":null"#),
            ),
            (
                "a response",
                RECORD.replace(
                    r#""responseElements":null"#,
                    r#""responseElements":{"accessKey":{"accessKeyId":"AKIANEW","status":"Active"}}"#,
                ),
            ),
            ("a boolean flag", RECORD.replace(r#""mfaAuthenticated":"false""#, r#""mfaAuthenticated":true"#)),
            (
                "whitespace",
                serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(RECORD).unwrap()).unwrap(),
            ),
        ] {
            let (fast, serde) = both(&changed);
            assert_eq!(fast, Some(serde), "{case}");
        }
    }

    /// A scalar of any type.
    fn leaf() -> BoxedStrategy<String> {
        let leaf = prop_oneof![
            20 => "[a-zA-Z0-9:/._@ -]{0,12}".prop_map(|s| format!("\"{s}\"")),
            1 => Just(r#""esc\"aped\u00e9""#.to_owned()),
            6 => prop::sample::select(vec!["TRUE", "true", "False", "AssumedRole", "Root", "AWSService", "ConsoleLogin"])
                .prop_map(|s| format!("\"{s}\"")),
            2 => Just(r#""2024-05-01T12:00:00Z""#.to_owned()),
            2 => Just(r#""arn:aws:iam::123456789012:role/app""#.to_owned()),
            6 => Just("null".to_owned()),
            1 => prop_oneof![Just("true"), Just("false")].prop_map(str::to_owned),
            1 => prop_oneof![Just("0"), Just("1024"), Just("-3"), Just("2.5"), Just("1e3"), Just("18446744073709551616")]
                .prop_map(str::to_owned),
        ];
        leaf.boxed()
    }

    /// Any value, nested as deep as a skipped field's may be.
    fn any_value() -> BoxedStrategy<String> {
        leaf()
            .prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
                    prop::collection::vec((key(), inner), 0..4).prop_map(|fields| {
                        let fields: Vec<String> = fields.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                        format!("{{{}}}", fields.join(","))
                    }),
                ]
            })
            .boxed()
    }

    /// A string of the kinds records hold, or `null`.
    fn text() -> BoxedStrategy<String> {
        prop_oneof![
            8 => "[a-zA-Z0-9:/._@ -]{0,12}".prop_map(|s| format!("\"{s}\"")),
            4 => prop::sample::select(vec!["TRUE", "true", "False", "AssumedRole", "IAMUser", "Root", "AWSService", ""])
                .prop_map(|s| format!("\"{s}\"")),
            1 => Just(r#""2024-05-01T12:00:00Z""#.to_owned()),
            1 => Just(r#""arn:aws:iam::123456789012:role/app""#.to_owned()),
            2 => Just("null".to_owned()),
        ]
        .boxed()
    }

    /// An object with any of `fields`, each of its usual shape, now and then of any other.
    fn object(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
        let fields: Vec<BoxedStrategy<Option<String>>> = fields
            .into_iter()
            .map(|(k, usual)| {
                let value = prop_oneof![40 => usual, 1 => leaf(), 1 => any_value()];
                prop::option::weighted(0.4, value.prop_map(move |v| format!("\"{k}\":{v}"))).boxed()
            })
            .collect();
        fields.prop_map(|f| format!("{{{}}}", f.into_iter().flatten().collect::<Vec<_>>().join(","))).boxed()
    }

    /// The keys the reader reads, at any level, their lowercase spellings, and others.
    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "arn",
            "ARN",
            "type",
            "accessKeyId",
            "userName",
            "attributes",
            "Records",
            "awsRegion",
        ])
    }

    /// A record: the essential fields (so that most decode), then fields of any shape, the
    /// caller's identity down to its session's fields.
    fn record() -> impl Strategy<Value = String> {
        let strings = |keys: &[&'static str]| keys.iter().map(|&k| (k, text())).collect::<Vec<_>>();
        let flag = prop_oneof![
            1 => text(),
            2 => prop::sample::select(vec![r#""TRUE""#, r#""True""#, r#""true""#, r#""false""#, "true", "false"]).prop_map(str::to_owned),
        ]
        .boxed();
        let attributes = vec![("creationDate", text()), ("mfaAuthenticated", flag.clone())];
        let context = object(vec![
            ("attributes", object(attributes)),
            ("sessionIssuer", object(strings(&["arn", "userName", "type"]))),
            ("ec2RoleDelivery", any_value()),
            ("sourceIdentity", text()),
            ("webIdFederationData", any_value()),
        ]);
        let mut identity =
            strings(&["type", "principalId", "arn", "accountId", "accessKeyId", "userName", "invokedBy"]);
        identity.push(("sessionContext", context));
        let resources = prop::collection::vec(object(strings(&["ARN", "arn", "type"])), 0..3)
            .prop_map(|r| format!("[{}]", r.join(",")))
            .boxed();
        let integer = prop_oneof![Just("1024".to_owned()), Just("0".to_owned()), Just("2.5".to_owned())].boxed();
        let mut top = strings(&[
            "eventID",
            "eventSource",
            "eventType",
            "recipientaccountid",
            "sourceIPAddress",
            "useragent",
            "errorCode",
            "p_event_time",
            "@timestamp",
        ]);
        top.extend([
            ("sessionCredentialFromConsole", flag),
            ("resources", resources),
            (
                "responseElements",
                object(vec![("ConsoleLogin", text()), ("accessKey", object(strings(&["accessKeyId"])))]),
            ),
            (
                "additionalEventData",
                object(vec![("bytesTransferredOut", integer.clone()), ("bytesTransferredIn", integer)]),
            ),
            ("requestParameters", any_value()),
        ]);
        let identity = prop_oneof![
            1 => Just(r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accessKeyId":"AKIAEXAMPLE"}"#.to_owned()),
            3 => object(identity),
        ];
        (identity, object(top)).prop_map(|(identity, top)| {
            let rest = top.trim_start_matches('{').trim_end_matches('}');
            let rest = if rest.is_empty() { String::new() } else { format!(",{rest}") };
            format!(r#"{{"eventTime":"2024-05-01T12:00:00Z","eventName":"GetObject","userIdentity":{identity}{rest}}}"#)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the one-pass reader accepts, serde reads to the same event or refuses
        /// for the same reason.
        #[test]
        fn reads_what_it_accepts_as_serde_does(text in record()) {
            let (fast, serde) = both(&text);
            if let Some(fast) = fast {
                prop_assert_eq!(fast, serde);
            }
        }
    }

    /// The generator makes records of both kinds, or the property above would hold of nothing.
    #[test]
    fn the_generated_records_are_both_read_and_declined() {
        use proptest::strategy::ValueTree as _;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let records = record();
        let mut accepted = 0;
        for _ in 0..1000 {
            let text = records.new_tree(&mut runner).unwrap().current();
            accepted += usize::from(both(&text).0.is_some());
        }
        assert!((200..=900).contains(&accepted), "{accepted} of 1000 accepted");
    }
}
