//! Identity state as bytes: the records of the changelog topic, which a restarted or
//! rebalanced nhid restores instead of re-reading days of input.
//!
//! A record is `[VERSION, kind, home (4 bytes, little-endian), body]`, keyed by
//! [`key_of`] its principal id. The body is postcard, serde's compact binary form: no field
//! names, so a state type whose fields changed would misread an older body rather than
//! fail. Any such change changes the bytes `tests::the_format_is_pinned` expects: bump
//! [`VERSION`] with it, and records of another version are then refused
//! ([`SnapshotError::Version`]), never misread.

use nhid_model::event::PrincipalType;
use nhid_model::time::Millis;

use super::{Identity, Tombstone};

/// The format of every record's body; see the module's documentation.
pub const VERSION: u8 = 3;

const IDENTITY: u8 = 0;
const TOMBSTONE: u8 = 1;
const THROUGH: u8 = 2;
/// A [`THROUGH`] mark with the progress of each source of a re-keyed partition.
const THROUGH_SOURCES: u8 = 3;
const HEAD: usize = 6;

/// One record of the changelog, decoded.
#[derive(Debug)]
pub enum Record {
    /// An identity's state. `detectors` is the fingerprint of the detector list its alert
    /// marks are indexed by ([`crate::Engine`]'s): another list drops the marks.
    Identity { id: Box<str>, detectors: u64, identity: Box<Identity> },
    /// What an identity evicted for idleness left (see [`super::StateStore`]).
    Tombstone { key: u64, last_seen: Millis, kind: PrincipalType, shown: u8 },
    /// The partition's state is in the changelog up to input offset `offset` (the next one
    /// to read): written at each snapshot, whether or not any identity changed. For a
    /// partition of the events topic, the state also holds every event of each of `sources`
    /// up to its place there, those after `offset` included (see [`SourceDone`]).
    Through { offset: i64, sources: Vec<SourceDone> },
}

/// How far the events of one source partition are in a partition's state: the detection
/// stage applies a re-keyed partition's events in event-time order across their sources,
/// so its state holds, of each source, every event up to a place, some of them after the
/// partition's committed offset; a restore skips those when it reads them again.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceDone {
    pub topic: String,
    pub partition: i32,
    /// The last event applied: its source message's offset and its index in that message.
    pub offset: i64,
    pub index: u32,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum SnapshotError {
    #[error("snapshot format {0}, this nhid reads format {VERSION}")]
    Version(u8),
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
}

/// The changelog key of a principal: a hash of its id (8 bytes, whatever the id's length),
/// the same for its state and its tombstone, so that compaction keeps the latest of either.
pub fn key_of(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// The changelog key of a partition's [`Record::Through`].
pub fn through_key(home: u32) -> u64 {
    key_of(&format!("\0nhid-through:{home}"))
}

pub fn identity(id: &str, detectors: u64, identity: &Identity) -> Vec<u8> {
    encode(IDENTITY, identity.home(), &(id, detectors, identity))
}

pub(super) fn tombstone(key: u64, t: &Tombstone) -> Vec<u8> {
    encode(TOMBSTONE, t.home, &(key, t.last_seen, t.kind, t.shown))
}

/// A partition's mark; `sources` is empty but for a partition of the events topic (whose
/// marks are then of their own kind, so that the others' stay as they were).
pub fn through(home: u32, offset: i64, sources: &[SourceDone]) -> Vec<u8> {
    if sources.is_empty() { encode(THROUGH, home, &offset) } else { encode(THROUGH_SOURCES, home, &(offset, sources)) }
}

fn encode(kind: u8, home: u32, body: &impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&home.to_le_bytes());
    postcard::to_io(body, &mut out).expect("state serializes into a vector");
    out
}

/// The partition (`crate::Origin::home`) a record of this format belongs to, read from its
/// head alone.
pub fn home_of(bytes: &[u8]) -> Option<u32> {
    match *bytes {
        [VERSION, _, h0, h1, h2, h3, ..] => Some(u32::from_le_bytes([h0, h1, h2, h3])),
        _ => None,
    }
}

/// The partition (`crate::Origin::home`) a record belongs to, and the record.
pub fn decode(bytes: &[u8]) -> Result<(u32, Record), SnapshotError> {
    let corrupt = |e: postcard::Error| SnapshotError::Corrupt(e.to_string());
    let [version, kind, h0, h1, h2, h3, ..] = *bytes else {
        return Err(SnapshotError::Corrupt(format!("{} bytes, shorter than a record's head", bytes.len())));
    };
    if version != VERSION {
        return Err(SnapshotError::Version(version));
    }
    let home = u32::from_le_bytes([h0, h1, h2, h3]);
    let body = &bytes[HEAD..];
    let record = match kind {
        IDENTITY => {
            let (id, detectors, identity): (Box<str>, u64, Box<Identity>) =
                postcard::from_bytes(body).map_err(corrupt)?;
            Record::Identity { id, detectors, identity }
        }
        TOMBSTONE => {
            let (key, last_seen, kind, shown) = postcard::from_bytes(body).map_err(corrupt)?;
            Record::Tombstone { key, last_seen, kind, shown }
        }
        THROUGH => Record::Through { offset: postcard::from_bytes(body).map_err(corrupt)?, sources: Vec::new() },
        THROUGH_SOURCES => {
            let (offset, sources) = postcard::from_bytes(body).map_err(corrupt)?;
            Record::Through { offset, sources }
        }
        other => return Err(SnapshotError::Corrupt(format!("unknown record kind {other}"))),
    };
    Ok((home, record))
}
