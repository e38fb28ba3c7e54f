//! Canonical events of the simulator in other platforms' shapes, for the benchmarks.

use serde_json::{Value, json};

/// A canonical event as a CloudTrail record, shaped like real ones (~1 KiB, nested identity,
/// request parameters the decoder skips).
pub fn cloudtrail(l: &[u8]) -> Vec<u8> {
    let e: Value = serde_json::from_slice(l).unwrap();
    let (service, op) = e["action"].as_str().unwrap().split_once(':').unwrap_or(("aws", "Call"));
    let key = e["credential"]["id"].as_str().unwrap_or("ASIAEXAMPLE");
    let pid = e["principal"]["id"].as_str().unwrap();
    let identity = if key.starts_with("AKIA") {
        json!({"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": format!("arn:aws:iam::123456789012:user/{pid}"),
               "accountId": "123456789012", "accessKeyId": key, "userName": pid})
    } else {
        json!({"type": "AssumedRole", "principalId": format!("AROAEXAMPLE:{pid}"),
               "arn": format!("arn:aws:sts::123456789012:assumed-role/{pid}/session-1"),
               "accountId": "123456789012", "accessKeyId": key,
               "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                   "arn": format!("arn:aws:iam::123456789012:role/{pid}"), "accountId": "123456789012", "userName": pid},
                   "attributes": {"creationDate": "2026-11-02T00:00:00Z", "mfaAuthenticated": "false"}}})
    };
    let mut r = json!({
        "eventVersion": "1.09", "userIdentity": identity, "eventTime": e["time"],
        "eventSource": format!("{service}.amazonaws.com"), "eventName": op, "awsRegion": "us-east-1",
        "sourceIPAddress": e["source"]["ip"], "userAgent": e["source"]["user_agent"],
        "requestParameters": {"bucketName": "example-data", "key": "reports/2026/11/part-0001.parquet", "Host": "example-data.s3.us-east-1.amazonaws.com"},
        "responseElements": null, "requestID": "8H5MAV3XZ3F2Q7TE", "eventID": e["id"], "readOnly": true,
        "eventType": "AwsApiCall", "managementEvent": false, "recipientAccountId": "123456789012",
        "eventCategory": "Data", "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "example-data.s3.us-east-1.amazonaws.com"}
    });
    if e["outcome"] != "success" {
        r["errorCode"] = "AccessDenied".into();
    }
    serde_json::to_vec(&r).unwrap()
}
