//! OCSF API Activity and Authentication events written from the OCSF schema and Amazon
//! Security Lake's published CloudTrail-to-OCSF mapping (not copied from a real export):
//! the corpus holds no event of these classes. Each with the type, credential kind and
//! outcome it must decode to.

use nhid_model::event::{CredentialKind, Outcome, PrincipalType};

/// Events shaped after the documented mappings (see the module comment), one per line.
pub const DOCUMENTED: &[(&str, PrincipalType, CredentialKind, Outcome)] = &[
    (
        r#"{"metadata":{"product":{"version":"1.08","name":"CloudTrail","vendor_name":"AWS","feature":{"name":"Management"}},"uid":"0fe5e4a5-3d6b-4b5a-9c1f-000000000001","profiles":["cloud","datetime"],"version":"1.1.0"},"time":1700000000000,"time_dt":"2023-11-14T22:13:20.000Z","cloud":{"region":"us-east-1","provider":"AWS"},"api":{"response":{"error":null,"message":null},"operation":"CreateUser","version":null,"service":{"name":"iam.amazonaws.com"},"request":{"uid":"REQ1"}},"actor":{"user":{"type":"AssumedRole","name":"terraform","uid":"arn:aws:sts::111122223333:assumed-role/terraform/tf-run-9","uid_alt":"AROAEXAMPLE:tf-run-9","account":{"uid":"111122223333"},"credential_uid":"ASIAEXAMPLEEXAMPLE02"},"session":{"created_time":1699999000000,"mfa":false,"issuer":"arn:aws:iam::111122223333:role/terraform"}},"http_request":{"user_agent":"APN/1.0 HashiCorp/1.0 Terraform/1.6.0"},"src_endpoint":{"ip":"10.0.0.12"},"resources":[{"uid":"arn:aws:iam::111122223333:user/new-user"}],"class_name":"API Activity","class_uid":6003,"category_name":"Application Activity","category_uid":6,"severity_id":1,"severity":"Informational","activity_name":"Create","activity_id":1,"type_uid":600301,"type_name":"API Activity: Create","status":"Success","status_id":1,"unmapped":{"requestParameters.userName":"new-user"}}"#,
        PrincipalType::ServiceAccount,
        CredentialKind::ShortLivedToken,
        Outcome::Success,
    ),
    (
        r#"{"metadata":{"product":{"name":"CloudTrail","vendor_name":"AWS"},"uid":"0fe5e4a5-3d6b-4b5a-9c1f-000000000002","version":"1.1.0"},"time":1700000060000,"cloud":{"region":"eu-west-1","provider":"AWS","account":{"uid":"111122223333"}},"api":{"response":{"error":"AccessDenied","message":"User is not authorized to perform: s3:ListBucket"},"operation":"ListObjects","service":{"name":"s3.amazonaws.com"}},"actor":{"user":{"type":"IAMUser","name":"legacy-backup","uid":"arn:aws:iam::111122223333:user/legacy-backup","credential_uid":"AKIAEXAMPLEEXAMPLE03"}},"http_request":{"user_agent":"aws-sdk-go/1.44.0"},"src_endpoint":{"ip":"198.51.100.44"},"class_uid":6003,"category_uid":6,"activity_id":2,"type_uid":600302,"status":"Failure","status_id":2}"#,
        PrincipalType::ServiceAccount,
        CredentialKind::StaticKey,
        Outcome::Denied,
    ),
    (
        r#"{"metadata":{"product":{"name":"CloudTrail","vendor_name":"AWS"},"uid":"0fe5e4a5-3d6b-4b5a-9c1f-000000000003","version":"1.1.0"},"time":1700000120000,"cloud":{"provider":"AWS","account":{"uid":"111122223333"}},"api":{"operation":"Decrypt","service":{"name":"kms.amazonaws.com"}},"actor":{"user":{"type":"AWSService","uid":"cloudtrail.amazonaws.com"},"invoked_by":"cloudtrail.amazonaws.com"},"src_endpoint":{"domain":"cloudtrail.amazonaws.com"},"class_uid":6003,"category_uid":6,"type_uid":600302,"status_id":1}"#,
        PrincipalType::Workload,
        CredentialKind::Unknown,
        Outcome::Success,
    ),
    (
        r#"{"metadata":{"product":{"name":"CloudTrail","vendor_name":"AWS"},"uid":"0fe5e4a5-3d6b-4b5a-9c1f-000000000004","version":"1.1.0"},"time":1700000180000,"cloud":{"provider":"AWS","account":{"uid":"111122223333"}},"user":{"type":"Root","uid":"arn:aws:iam::111122223333:root","account":{"uid":"111122223333"}},"actor":{"user":{"type":"Root","uid":"arn:aws:iam::111122223333:root"}},"src_endpoint":{"ip":"203.0.113.30"},"http_request":{"user_agent":"Mozilla/5.0"},"class_name":"Authentication","class_uid":3002,"category_uid":3,"activity_id":1,"activity_name":"Logon","type_uid":300201,"is_mfa":false,"status":"Success","status_id":1,"dst_endpoint":{"svc_name":"https://console.aws.amazon.com/console/home"}}"#,
        PrincipalType::Human,
        CredentialKind::Unknown,
        Outcome::Success,
    ),
    (
        r#"{"metadata":{"product":{"name":"Okta","vendor_name":"Okta"},"uid":"okta-evt-1","version":"1.1.0"},"time":1700000240000,"user":{"type_id":1,"type":"User","uid":"00ub0oNGTSWTBKOLGLNR","name":"isaac.brock@example.com","email_addr":"isaac.brock@example.com"},"actor":{"session":{"uid":"102nZHxBsSzSRWmDcTzVG8tQw","created_time_dt":"2023-11-14T22:00:00Z"}},"service":{"name":"Salesforce.com"},"src_endpoint":{"ip":"192.0.2.55"},"auth_protocol":"SAML","auth_protocol_id":5,"logon_type":"Network","is_mfa":true,"class_uid":3002,"category_uid":3,"activity_id":1,"activity_name":"Logon","type_uid":300201,"status":"Failure","status_id":2,"status_detail":"VERIFICATION_ERROR"}"#,
        PrincipalType::Human,
        CredentialKind::Session,
        Outcome::Failure,
    ),
];
