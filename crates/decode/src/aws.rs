//! How AWS names things, for the formats that carry AWS identities: CloudTrail itself,
//! CloudTrail as OCSF (Amazon Security Lake), and EKS's Kubernetes audit.

use std::borrow::Cow;

use crate::record::project;

/// `s3.amazonaws.com` → `s3`; `None` for an empty name.
pub fn service_name<'a>(event_source: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    project(event_source, |s| Some(s.strip_suffix(".amazonaws.com").unwrap_or(s))).filter(|s| !s.is_empty())
}

/// EC2 instance ids: `i-` and 8 or 17 hex digits.
pub fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|h| h.len() >= 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Console and SSO sessions are named after the person's email.
pub fn is_email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace))
}
