//! The fields of a CloudTrail record nhid reads, as CloudTrail and Panther's samples spell them.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::lenient::{self, nonempty, strict_map};

/// The fields of a CloudTrail record nhid uses. Aliases are the lowercase spellings of
/// Panther's samples; unknown fields are skipped unread.
#[derive(Deserialize)]
pub(super) struct Record<'a> {
    /// Present only on a `{"Records":[...]}` document; its content is read separately.
    #[serde(rename = "Records", default)]
    pub(super) records: Option<IgnoredAny>,
    #[serde(rename = "eventID", alias = "eventid", borrow, default, deserialize_with = "lenient::string")]
    pub(super) event_id: Option<Cow<'a, str>>,
    #[serde(
        rename = "eventTime",
        alias = "eventtime",
        borrow,
        default,
        deserialize_with = "nhid_model::event::borrowed_opt"
    )]
    pub(super) event_time: Option<Cow<'a, str>>,
    /// Panther's normalized time; its samples sometimes carry only this.
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    pub(super) p_event_time: Option<Cow<'a, str>>,
    /// A shipper's time (Filebeat, Logstash, Fluent Bit write `@timestamp`): exported files
    /// sometimes carry only this.
    #[serde(rename = "@timestamp", borrow, default, deserialize_with = "lenient::string")]
    pub(super) shipped_at: Option<Cow<'a, str>>,
    #[serde(
        rename = "eventSource",
        alias = "eventsource",
        borrow,
        default,
        deserialize_with = "nhid_model::event::borrowed_opt"
    )]
    pub(super) event_source: Option<Cow<'a, str>>,
    #[serde(
        rename = "eventName",
        alias = "eventname",
        borrow,
        default,
        deserialize_with = "nhid_model::event::borrowed_opt"
    )]
    pub(super) event_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventType", alias = "eventtype", borrow, default, deserialize_with = "lenient::string")]
    pub(super) event_type: Option<Cow<'a, str>>,
    #[serde(rename = "userIdentity", alias = "useridentity", borrow, default, deserialize_with = "strict_map")]
    pub(super) user_identity: Option<UserIdentity<'a>>,
    #[serde(
        rename = "recipientAccountId",
        alias = "recipientaccountid",
        borrow,
        default,
        deserialize_with = "lenient::string"
    )]
    pub(super) recipient_account_id: Option<Cow<'a, str>>,
    #[serde(
        rename = "sourceIPAddress",
        alias = "sourceipaddress",
        borrow,
        default,
        deserialize_with = "lenient::string"
    )]
    pub(super) source_ip_address: Option<Cow<'a, str>>,
    #[serde(rename = "userAgent", alias = "useragent", borrow, default, deserialize_with = "lenient::string")]
    pub(super) user_agent: Option<Cow<'a, str>>,
    #[serde(rename = "errorCode", alias = "errorcode", borrow, default, deserialize_with = "lenient::string")]
    pub(super) error_code: Option<Cow<'a, str>>,
    #[serde(
        rename = "responseElements",
        alias = "responseelements",
        borrow,
        default,
        deserialize_with = "lenient::map"
    )]
    pub(super) response_elements: Option<ResponseElements<'a>>,
    #[serde(rename = "additionalEventData", alias = "additionaleventdata", default, deserialize_with = "lenient::map")]
    pub(super) additional_event_data: Option<AdditionalEventData>,
    #[serde(borrow, default, deserialize_with = "first_resource_arn")]
    pub(super) resources: Option<Cow<'a, str>>,
    /// Set by CloudTrail when the session's credentials were issued to the console.
    #[serde(
        rename = "sessionCredentialFromConsole",
        alias = "sessioncredentialfromconsole",
        default,
        deserialize_with = "lenient::flag"
    )]
    pub(super) session_credential_from_console: bool,
}

#[derive(Deserialize)]
pub(super) struct UserIdentity<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "lenient::string")]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(rename = "principalId", alias = "principalid", borrow, default, deserialize_with = "lenient::string")]
    pub(super) principal_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    pub(super) arn: Option<Cow<'a, str>>,
    #[serde(rename = "accountId", alias = "accountid", borrow, default, deserialize_with = "lenient::string")]
    pub(super) account_id: Option<Cow<'a, str>>,
    #[serde(rename = "accessKeyId", alias = "accesskeyid", borrow, default, deserialize_with = "lenient::string")]
    pub(super) access_key_id: Option<Cow<'a, str>>,
    #[serde(rename = "userName", alias = "username", borrow, default, deserialize_with = "lenient::string")]
    pub(super) user_name: Option<Cow<'a, str>>,
    #[serde(rename = "invokedBy", alias = "invokedby", borrow, default, deserialize_with = "lenient::string")]
    pub(super) invoked_by: Option<Cow<'a, str>>,
    #[serde(rename = "sessionContext", alias = "sessioncontext", borrow, default, deserialize_with = "lenient::map")]
    pub(super) session_context: Option<SessionContext<'a>>,
}

#[derive(Deserialize)]
pub(super) struct SessionContext<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::map")]
    pub(super) attributes: Option<SessionAttributes<'a>>,
    #[serde(rename = "sessionIssuer", alias = "sessionissuer", borrow, default, deserialize_with = "lenient::map")]
    pub(super) session_issuer: Option<SessionIssuer<'a>>,
    /// Only instance-profile credentials delivered by IMDS carry it; its content does not matter.
    #[serde(rename = "ec2RoleDelivery", alias = "ec2roledelivery", default)]
    pub(super) ec2_role_delivery: Option<IgnoredAny>,
    #[serde(
        rename = "sourceIdentity",
        alias = "sourceidentity",
        borrow,
        default,
        deserialize_with = "lenient::string"
    )]
    pub(super) source_identity: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct SessionAttributes<'a> {
    #[serde(rename = "creationDate", alias = "creationdate", borrow, default, deserialize_with = "lenient::string")]
    pub(super) creation_date: Option<Cow<'a, str>>,
    #[serde(rename = "mfaAuthenticated", alias = "mfaauthenticated", default, deserialize_with = "lenient::flag")]
    pub(super) mfa_authenticated: bool,
}

#[derive(Deserialize)]
pub(super) struct SessionIssuer<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    pub(super) arn: Option<Cow<'a, str>>,
    #[serde(rename = "userName", alias = "username", borrow, default, deserialize_with = "lenient::string")]
    pub(super) user_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct ResponseElements<'a> {
    #[serde(rename = "ConsoleLogin", alias = "consolelogin", borrow, default, deserialize_with = "lenient::string")]
    pub(super) console_login: Option<Cow<'a, str>>,
    /// IAM `CreateAccessKey`: the key it created (its id only; CloudTrail omits the secret).
    #[serde(rename = "accessKey", alias = "accesskey", borrow, default, deserialize_with = "lenient::map")]
    pub(super) access_key: Option<AccessKey<'a>>,
}

#[derive(Deserialize)]
pub(super) struct AccessKey<'a> {
    #[serde(rename = "accessKeyId", alias = "accesskeyid", borrow, default, deserialize_with = "lenient::string")]
    pub(super) access_key_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct AdditionalEventData {
    #[serde(
        rename = "bytesTransferredOut",
        alias = "bytestransferredout",
        default,
        deserialize_with = "lenient::unsigned"
    )]
    pub(super) bytes_transferred_out: Option<u64>,
}

/// `resources[]` is a list of `{ARN, accountId, type}`; the first ARN names the target.
fn first_resource_arn<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Resource<'a> {
        #[serde(rename = "ARN", alias = "arn", borrow, default, deserialize_with = "lenient::string")]
        arn: Option<Cow<'a, str>>,
    }
    lenient::first_object(d, "a list of resources", |r: Resource<'de>| nonempty(r.arn))
}
