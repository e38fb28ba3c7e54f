//! The bounded sets several stages share. Each is also a metric label, so none grows with input.

use crate::string_enum;

string_enum! {
    /// How urgent an alert is, in increasing order.
    Severity {
        Info => "info",
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
}

impl Severity {
    /// One level up (critical stays critical).
    pub fn raised(self) -> Severity {
        match self {
            Severity::Info => Severity::Low,
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }

    /// One level down (info stays info).
    pub fn lowered(self) -> Severity {
        match self {
            Severity::Info | Severity::Low => Severity::Info,
            Severity::Medium => Severity::Low,
            Severity::High => Severity::Medium,
            Severity::Critical => Severity::High,
        }
    }
}

string_enum! {
    /// The response a detector asks for; the response policy narrows it to what the event allows.
    #[derive(Default)]
    Response {
        #[default]
        None => "none",
        NotifyOwner => "notify_owner",
        RotateSecret => "rotate_secret",
        RevokeSession => "revoke_session",
        RevokeCredential => "revoke_credential",
        DisablePrincipal => "disable_principal",
    }
}

string_enum! {
    /// What nhid asks the revocation service to do.
    ActionKind {
        RevokeSession => "revoke_session",
        RevokeCredential => "revoke_credential",
        RotateSecret => "rotate_secret",
        DisablePrincipal => "disable_principal",
        NotifyOwner => "notify_owner",
    }
}

string_enum! {
    /// Why a message (or one record of it) could not become an event.
    DeadLetterReason {
        TooLarge => "too_large",
        InvalidUtf8 => "invalid_utf8",
        InvalidJson => "invalid_json",
        NestingTooDeep => "nesting_too_deep",
        WrongType => "wrong_type",
        MissingPrincipal => "missing_principal",
        MissingTime => "missing_time",
        InvalidTime => "invalid_time",
        /// A time further ahead of the transport's own (or of the wall clock) than the
        /// configured skew allows: one forged date must not move nhid's clock.
        ImplausibleTime => "implausible_time",
        /// A string field longer than `MAX_FIELD_BYTES` (a megabyte principal id).
        FieldTooLong => "field_too_long",
        /// An output (alert, action, dead letter) the producer refused as larger than its
        /// `message.max.bytes`: replaced by a dead letter that says so.
        OutputTooLarge => "output_too_large",
        UnknownFormat => "unknown_format",
    }
}

/// A MITRE ATT&CK id as its technique and, for a sub-technique, the whole id: `T1078` is
/// (`T1078`, None), `T1078.004` is (`T1078`, Some(`T1078.004`)). `None` for anything else a
/// detector refers to (OWASP entries, URLs).
pub fn attack_technique(id: &str) -> Option<(&str, Option<&str>)> {
    let (technique, sub) = id.split_once('.').map_or((id, None), |(t, s)| (t, Some(s)));
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let valid = technique.strip_prefix('T').is_some_and(|n| digits(n, 4)) && sub.is_none_or(|s| digits(s, 3));
    valid.then_some((technique, sub.map(|_| id)))
}
