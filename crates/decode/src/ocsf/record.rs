//! The fields of the two OCSF classes nhid reads (API Activity, Authentication).

use std::borrow::Cow;

use serde::Deserialize;

use crate::lenient::{self, Read, nonempty};
use nhid_model::time::{Millis, RFC3339_RANGE, parse_rfc3339};

pub(super) type Str<'a> = Option<Cow<'a, str>>;

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Event<'a> {
    #[serde(deserialize_with = "number")]
    pub(super) class_uid: Option<u64>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) class_name: Str<'a>,
    /// Epoch milliseconds (OCSF `timestamp_t`); some producers write a date string.
    #[serde(borrow, deserialize_with = "timestamp")]
    pub(super) time: Option<Time<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) time_dt: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) metadata: Option<Metadata<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) actor: Option<ActorObject<'a>>,
    /// Authentication: the account signing in (the actor may be a process acting for it).
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) user: Option<User<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) api: Option<Api<'a>>,
    /// Authentication: the service signed in to.
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) service: Option<Named<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) dst_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) src_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) http_request: Option<HttpRequest<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) status: Str<'a>,
    #[serde(deserialize_with = "number")]
    pub(super) status_id: Option<u64>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) status_code: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) status_detail: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) activity_name: Str<'a>,
    #[serde(borrow, deserialize_with = "first_resource")]
    pub(super) resources: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) cloud: Option<Cloud<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) auth_protocol: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Metadata<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) uid: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) product: Option<Product<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Product<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) name: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct ActorObject<'a> {
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) user: Option<User<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) session: Option<Session<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) invoked_by: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) app_name: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) app_uid: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct User<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) uid: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) name: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) email_addr: Str<'a>,
    #[serde(borrow, rename = "type", deserialize_with = "lenient::string")]
    pub(super) kind: Str<'a>,
    #[serde(deserialize_with = "number")]
    pub(super) type_id: Option<u64>,
    /// OCSF 1.1 puts the access key here; 1.0 had it on the session only.
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) credential_uid: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) account: Option<Account<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Account<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) uid: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Session<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) uid: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) issuer: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) credential_uid: Str<'a>,
    #[serde(borrow, deserialize_with = "timestamp")]
    pub(super) created_time: Option<Time<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) created_time_dt: Str<'a>,
    #[serde(borrow, deserialize_with = "timestamp")]
    pub(super) expiration_time: Option<Time<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) expiration_time_dt: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Api<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) operation: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) service: Option<Named<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) response: Option<Response<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Response<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) error: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Named<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) name: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Endpoint<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) ip: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) svc_name: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct HttpRequest<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) user_agent: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Cloud<'a> {
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) account: Option<Account<'a>>,
}

/// A timestamp as OCSF writes it (epoch milliseconds) or as some producers do (a date string).
pub(super) enum Time<'a> {
    Millis(Millis),
    Text(Cow<'a, str>),
}

impl Time<'_> {
    pub(super) fn millis(&self) -> Option<Millis> {
        match self {
            // Not in `timestamp`: enum ids are read as numbers with it.
            Time::Millis(m) => Some(*m).filter(|m| RFC3339_RANGE.contains(m)),
            Time::Text(t) => parse_rfc3339(t),
        }
    }
}

fn timestamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Time<'de>>, D::Error> {
    struct Timestamp;
    impl<'de> Read<'de> for Timestamp {
        type Value = Option<Time<'de>>;
        fn i64(self, v: i64) -> Self::Value {
            Some(Time::Millis(v))
        }
        fn u64(self, v: u64) -> Self::Value {
            i64::try_from(v).ok().map(Time::Millis)
        }
        fn f64(self, v: f64) -> Self::Value {
            (v.is_finite() && v.abs() < 9e15).then_some(Time::Millis(v as i64))
        }
        fn borrowed_str(self, v: &'de str) -> Self::Value {
            Some(Time::Text(Cow::Borrowed(v)))
        }
        fn str(self, v: &str) -> Self::Value {
            Some(Time::Text(Cow::Owned(v.to_owned())))
        }
    }
    lenient::read(d, "a timestamp", Timestamp)
}

/// An enum id: a non-negative integer, also accepted as a numeric string.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match timestamp(d)? {
        Some(Time::Millis(n)) => u64::try_from(n).ok(),
        Some(Time::Text(t)) => t.trim().parse().ok(),
        None => None,
    })
}

/// `resources[]`: the first one's `uid`, else its `name`; elements that are not objects are skipped.
fn first_resource<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Str<'de>, D::Error> {
    #[derive(Default, Deserialize)]
    #[serde(default)]
    struct Resource<'a> {
        #[serde(borrow, deserialize_with = "lenient::string")]
        uid: Str<'a>,
        #[serde(borrow, deserialize_with = "lenient::string")]
        name: Str<'a>,
    }
    lenient::first_object(d, "a list of resources", |r: Resource<'de>| nonempty(r.uid).or(nonempty(r.name)))
}
