//! Test fixture generator, not a model of AWS: the simulator's benign population written as
//! the CloudTrail records one AWS account would log for it, so that a test can splice real
//! CloudTrail (an attack recorded in that account) into days of ordinary traffic.
//!
//! Only identities AWS itself would log are kept, each shaped the way CloudTrail shows its
//! kind, so the decoder classifies it from the platform's own fields:
//! - static access keys (service accounts, API keys): an `IAMUser` calling with its `AKIA` key;
//! - hourly tokens of service accounts: an `AssumedRole` session of a role named after it
//!   (`ASIA` key, `sessionContext` with its issue time); of workloads: an EC2 instance-profile
//!   session (the instance id as session name, `ec2RoleDelivery`);
//! - people: an IAM user at the console (`ConsoleLogin`, then `ASIA` console-session keys
//!   with MFA and `sessionCredentialFromConsole`).
//!
//! OAuth clients and AI agents call SaaS APIs and tool servers, not AWS: they have no record.
//! The principal id nhid derives is the IAM user or role ARN, so the inventory lists those.

use nhid_model::event::{AuditEvent, CredentialKind, Outcome, PrincipalType};
use nhid_model::time::{Millis, format_rfc3339};
use serde_json::{Value, json};

/// A simulated principal as the account shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsPrincipal {
    /// The id the CloudTrail decoder derives: the IAM user's or the role's ARN.
    pub arn: String,
    /// The simulated type, which the organisation's inventory states (an API key is an IAM
    /// user to AWS; the inventory knows what it is for).
    pub kind: PrincipalType,
    pub owner: Option<String>,
}

/// The CloudTrail record of one canonical simulated event in `account`, and the principal it
/// names; `None` for principals AWS would not log (OAuth clients, AI agents).
pub fn record(account: &str, ev: &AuditEvent<'_>) -> Option<(Value, AwsPrincipal)> {
    let name: &str = &ev.principal.id;
    let key = ev.credential.id.as_deref();
    let console_login = ev.action.ends_with(":ConsoleLogin");
    let mut rec = json!({
        "eventVersion": "1.08",
        "eventTime": cloudtrail_time(ev.time),
        "eventSource": format!("{}.amazonaws.com", ev.service),
        "eventName": ev.action.split_once(':').map_or(&*ev.action, |(_, op)| op),
        "awsRegion": "us-east-1",
        "sourceIPAddress": ev.source.ip.as_deref(),
        "userAgent": ev.source.user_agent.as_deref(),
        "requestParameters": null,
        "responseElements": null,
        "requestID": format!("{:016X}", hash(&ev.id)),
        "eventID": ev.id.as_ref(),
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
    });
    let (identity, arn) = match (ev.principal.kind, ev.credential.kind) {
        (PrincipalType::Human, _) => {
            let arn = format!("arn:aws:iam::{account}:user/{name}");
            let mut identity = iam_user(account, name, &arn);
            if console_login {
                rec["eventType"] = "AwsConsoleSignIn".into();
                rec["eventSource"] = "signin.amazonaws.com".into();
                let result = if ev.outcome == Outcome::Success { "Success" } else { "Failure" };
                rec["responseElements"] = json!({ "ConsoleLogin": result });
                rec["additionalEventData"] = json!({"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": "Yes"});
            } else {
                // The simulator's console session `cs_<hex>` becomes its temporary key.
                let session = key?.strip_prefix("cs_")?.to_ascii_uppercase();
                identity["accessKeyId"] = format!("ASIA{session}").into();
                identity["sessionContext"] = json!({"sessionIssuer": {}, "webIdFederationData": {}, "attributes": {
                    "creationDate": ev.credential.issued_at.map(cloudtrail_time), "mfaAuthenticated": "true"}});
                rec["sessionCredentialFromConsole"] = "true".into();
            }
            (identity, arn)
        }
        (_, CredentialKind::StaticKey) => {
            let arn = format!("arn:aws:iam::{account}:user/{name}");
            let mut identity = iam_user(account, name, &arn);
            identity["accessKeyId"] = key?.into();
            (identity, arn)
        }
        (kind @ (PrincipalType::ServiceAccount | PrincipalType::ApiKey | PrincipalType::Workload), _)
            if key.is_some_and(|k| k.starts_with("ASIA")) =>
        {
            let arn = format!("arn:aws:iam::{account}:role/{name}");
            let issued = ev.credential.issued_at.unwrap_or(ev.time);
            let instance = format!("i-{:017x}", hash(name) >> 4);
            let session =
                if kind == PrincipalType::Workload { instance } else { format!("botocore-session-{}", issued / 1_000) };
            let mut context = json!({
                "sessionIssuer": {"type": "Role", "principalId": role_id(name), "arn": arn, "accountId": account, "userName": name},
                "webIdFederationData": {},
                "attributes": {"creationDate": cloudtrail_time(issued), "mfaAuthenticated": "false"},
            });
            if kind == PrincipalType::Workload {
                context["ec2RoleDelivery"] = "2.0".into();
            }
            let identity = json!({
                "type": "AssumedRole",
                "principalId": format!("{}:{session}", role_id(name)),
                "arn": format!("arn:aws:sts::{account}:assumed-role/{name}/{session}"),
                "accountId": account,
                "accessKeyId": key,
                "sessionContext": context,
            });
            (identity, arn)
        }
        _ => return None,
    };
    rec["userIdentity"] = identity;
    match ev.outcome {
        Outcome::Success => {}
        Outcome::Denied if !console_login => {
            rec["errorCode"] = "AccessDenied".into();
            rec["errorMessage"] = format!("User: {arn} is not authorized to perform: {}", ev.action).into();
        }
        Outcome::Failure if !console_login => rec["errorCode"] = "ServiceUnavailable".into(),
        _ => {}
    }
    if let Some(resource) = ev.resource.as_deref() {
        rec["resources"] = json!([{"accountId": account, "type": "AWS::S3::Object", "ARN": resource}]);
    }
    if let Some(bytes) = ev.bytes_out {
        rec["additionalEventData"] = json!({"bytesTransferredIn": 0, "bytesTransferredOut": bytes});
    }
    let principal = AwsPrincipal { arn, kind: ev.principal.kind, owner: ev.principal.owner.as_deref().map(Into::into) };
    Some((rec, principal))
}

/// CloudTrail writes whole seconds: `2020-11-01T09:30:03Z`.
pub fn cloudtrail_time(t: Millis) -> String {
    let full = format_rfc3339(t);
    format!("{}Z", &full[..19])
}

fn iam_user(account: &str, name: &str, arn: &str) -> Value {
    json!({"type": "IAMUser", "principalId": unique_id("AIDA", name), "arn": arn, "accountId": account, "userName": name})
}

fn role_id(name: &str) -> String {
    unique_id("AROA", name)
}

/// IAM unique ids: a type prefix and 17 base-32 characters, stable per name.
fn unique_id(prefix: &str, name: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let h = hash(name) as u128 | (u128::from(hash(prefix)) << 64);
    let tail: String = (0..17).map(|i| ALPHABET[(h >> (5 * i)) as usize & 31] as char).collect();
    format!("{prefix}{tail}")
}

fn hash(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}
