//! What the decoders' unit tests share: running one format's decoder over a text, and
//! building the record a test case varies.

use nhid_model::event::AuditEvent;

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
