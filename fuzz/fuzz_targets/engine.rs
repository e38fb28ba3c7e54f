//! The engine on a stream of messages: the input's lines, each one Kafka message (a line
//! starting `@lifecycle ` or `@result ` goes to that control topic instead). Seeds are
//! real audit logs and the fixtures' streams (`fuzz/seed.py`).
//!
//! Asserts what a transport relies on: no panic; every message is accounted for (an
//! event, an applied control message, or a dead letter with a reason, of its own bytes
//! capped at `MAX_DEAD_LETTER_BYTES`; a CloudTrail document of no records holds nothing);
//! no output larger than a broker takes; and the same stream gives the same alert and
//! action ids (they are idempotency keys downstream).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhid_engine::inventory::Inventory;
use nhid_engine::{ControlKind, Engine, EngineConfig, MAX_DEAD_LETTER_BYTES, Origin, Outputs, detect};

/// librdkafka's default `message.max.bytes`, what the producer takes unless configured
/// down: docs/security.md promises no output larger than a broker takes.
const OUTPUT_CAP: usize = 1_000_000;

/// A fixed wall clock (2027-01-01T00:00:00Z): the plausibility bound on event times must
/// not depend on when the fuzzer runs.
fn wall_clock() -> i64 {
    1_798_761_600_000
}

/// Runs the stream through a new engine; returns every alert and action id, in order.
fn run(stream: &[u8]) -> Vec<String> {
    let detectors = detect::load(None).expect("the built-in detectors load");
    let config = EngineConfig { normalize: true, wall_clock, ..EngineConfig::default() };
    let engine = Engine::new(detectors, Inventory::default(), config);
    let mut out = Outputs::default();
    let mut ids = Vec::new();
    for (offset, line) in stream.split(|&b| b == b'\n').enumerate() {
        out.clear();
        let origin = Origin { source: "audit", partition: 0, offset: offset as i64 };
        let control = [(&b"@lifecycle "[..], ControlKind::Lifecycle), (b"@result ", ControlKind::ActionResult)]
            .into_iter()
            .find_map(|(prefix, kind)| line.strip_prefix(prefix).map(|rest| (kind, rest)));
        let (message, accounted) = match control {
            Some((kind, message)) => {
                let before = applied(&out);
                engine.control(kind, message, origin, &mut out);
                (message, applied(&out) - before)
            }
            None => (line, engine.process(line, origin, None, &mut out).events),
        };
        let dead = out.dead_letters.len() as u64;
        assert!(
            accounted + dead > 0 || nhid_fuzz::holds_no_records(message),
            "message {offset} was neither processed nor dead-lettered"
        );
        for d in &out.dead_letters {
            assert!(!d.detail.is_empty(), "a dead letter without detail: {:?}", d.reason);
            assert_eq!(d.original_len, message.len(), "a dead letter's size is its message's");
            assert!(d.bytes.len() <= MAX_DEAD_LETTER_BYTES, "a dead letter of {} bytes", d.bytes.len());
            assert!(message.starts_with(&d.bytes), "a dead letter keeps the beginning of its message");
            assert!(d.to_json().to_string().len() <= OUTPUT_CAP, "a dead letter larger than a broker takes");
        }
        for alert in &out.alerts {
            let json = serde_json::to_vec(alert).expect("an alert serializes");
            assert!(json.len() <= OUTPUT_CAP, "an alert of {} bytes", json.len());
            ids.push(alert.alert_id.clone());
        }
        for action in &out.actions {
            let json = serde_json::to_vec(action).expect("an action serializes");
            assert!(json.len() <= OUTPUT_CAP, "an action of {} bytes", json.len());
            ids.push(action.action_id.clone());
        }
        for n in &out.normalized {
            assert!(n.json.len() <= OUTPUT_CAP, "a normalized event of {} bytes", n.json.len());
        }
    }
    ids
}

/// Control messages applied so far (the stats count them; a malformed one is a dead letter).
fn applied(out: &Outputs) -> u64 {
    out.stats.lifecycle_events.iter().sum::<u64>() + out.stats.action_results.values().sum::<u64>()
}

fuzz_target!(|stream: &[u8]| {
    let ids = run(stream);
    assert_eq!(ids, run(stream), "the same stream gave other alert or action ids");
});
