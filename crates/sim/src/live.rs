//! Live mode, for `nhid-sim demo`: the batch run's population and attacks, stepped forward in
//! event time as the demo's clock advances.
//!
//! [`Live::history`] first gives the benign traffic of the `history` before `now`, for an
//! engine to learn every identity past its learning period; [`Live::advance`] then gives
//! the traffic up to each new moment, with an attack starting every `attack_every` from
//! 5 s after `now`. Attacks run at a compressed pace (`attacks::LIVE`), so each is alerted
//! seconds after its first malicious call; [`Live::injected`] lists them as their first
//! malicious event goes out.
//!
//! # Rates
//!
//! Identities call at the batch run's rates, in the history and live alike. The rate
//! baselines an engine learns from the history are what live traffic is judged against:
//! live rates above the history's would be a spike on every identity, and the history
//! cannot be shorter than the learning period. So the live rate is tied to the cost of the
//! history, about 5,000 events per principal and day: the default 100 principals with two
//! days of history give about a million history events, then 5–7 benign events/s live, and
//! about as many again from the attacks. More principals raise both in proportion.

use std::io;

use super::attacks::Schedule;
use super::{Estate, Label, Sim};
use nhid_engine::{Engine, Origin, Outputs};
use nhid_model::time::{DAY, MINUTE, Millis, SECOND};

/// The first attack starts this long after `now`.
const FIRST_ATTACK_AFTER: Millis = 5 * SECOND;
/// Calendars (nightly batches, working days) run this many days past `now`; a demo left
/// running longer keeps its steady traffic, without batches or people.
const DAYS_AFTER_NOW: i64 = 7;

#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub seed: u64,
    /// Identities of every type, humans included.
    pub principals: usize,
    /// Benign traffic given by [`Live::history`]. It must exceed the engine's learning period
    /// (`state.learning_secs`, one day by default) by an hour at least: machines are first
    /// seen when the history starts (agents up to 30 min later), and an attack on a victim
    /// still learning goes unseen.
    pub history: Millis,
    /// An attack starts every this long of event time, the first 5 s after `now`; zero or
    /// less: no attacks.
    pub attack_every: Millis,
    /// The population: the classic one, or the cloud estate (whose live attacks are still the
    /// six original ones, on its classic identities).
    pub estate: Estate,
}

impl Default for LiveConfig {
    fn default() -> Self {
        // Two days: a full day after learning, as the batch run's acceptance test measures.
        LiveConfig { seed: 7, principals: 100, history: 2 * DAY, attack_every: 20 * SECOND, estate: Estate::Classic }
    }
}

/// A live simulation: history first, then consecutive windows of event time.
///
/// Each event is given as canonical JSON without a trailing newline, with its principal id
/// (the Kafka key). Events come in non-decreasing time; the same configuration and `now`
/// give the same events whatever the windows.
pub struct Live {
    sim: Sim,
    schedule: Schedule,
    /// The end of the history and the start of live traffic.
    now: Millis,
    /// Start of the next minute to draft.
    next_minute: Millis,
    /// The first draft of the minute drafted last that was not given out yet.
    next_draft: usize,
    /// Attacks whose first malicious event was given out, in that order.
    injected: Vec<Label>,
}

impl Live {
    /// Builds the population so that `now` (event time) ends the history. A demo that takes
    /// a while to feed the history to its engine should map its clock to event time so that
    /// live traffic begins at `now`; otherwise its first [`Live::advance`] catches up at once.
    pub fn new(cfg: &LiveConfig, now: Millis) -> Live {
        let start = (now - cfg.history.max(0)).div_euclid(MINUTE) * MINUTE;
        // Calendars count days from a UTC midnight, as the batch run's do.
        let epoch = start.div_euclid(DAY) * DAY;
        let days = ((now - epoch) / DAY + 1 + DAYS_AFTER_NOW) as u32;
        Live {
            sim: Sim::new(cfg.seed, cfg.principals, days, epoch, cfg.estate),
            schedule: Schedule::new(now + FIRST_ATTACK_AFTER, cfg.attack_every, cfg.principals),
            now,
            next_minute: start,
            next_draft: 0,
            injected: Vec::new(),
        }
    }

    /// Gives every event from `now - history` to `now`: benign traffic only, in time order.
    /// Call it once, before [`Live::advance`].
    pub fn history(&mut self, out: &mut dyn FnMut(&[u8], &str)) -> io::Result<()> {
        self.emit_until(self.now, out)
    }

    /// Feeds the [`Live::history`] straight into `engine`, outputs dropped, as if it had been
    /// running all along (what `nhid-sim demo` and the Kafka benchmark start from). Returns how
    /// many events it fed.
    pub fn warm(&mut self, engine: &Engine) -> io::Result<u64> {
        let mut out = Outputs::default();
        let mut n = 0;
        self.history(&mut |event, _| {
            engine.process(event, Origin { source: "history", partition: 0, offset: n as i64 }, None, &mut out);
            out.clear();
            n += 1;
        })?;
        Ok(n)
    }

    /// Gives every event not given yet with a time before `until`: benign traffic and the
    /// attacks scheduled there. Call it with increasing `until` as the clock advances; each
    /// call gives the window from the previous `until` (or `now`).
    pub fn advance(&mut self, until: Millis, out: &mut dyn FnMut(&[u8], &str)) -> io::Result<()> {
        self.emit_until(until, out)
    }

    /// Attacks whose first malicious event was given out, in that order, with their labels
    /// complete. A caller printing them as they come keeps how many it has printed.
    pub fn injected(&self) -> &[Label] {
        &self.injected
    }

    fn emit_until(&mut self, until: Millis, out: &mut dyn FnMut(&[u8], &str)) -> io::Result<()> {
        loop {
            let Sim { drafts, writer, pop, labels, .. } = &mut self.sim;
            if let Some(d) = drafts.get(self.next_draft) {
                if d.time >= until {
                    return Ok(());
                }
                let who = &pop[d.who as usize];
                writer.line.clear();
                if let Some(label) = writer.append(d, pop, labels)? {
                    self.injected.push(labels[label].clone());
                }
                // The writer ends every line with a newline; a Kafka message has none.
                out(&writer.line[..writer.line.len() - 1], &who.id);
                self.next_draft += 1;
            } else if self.next_minute < until {
                let end = self.next_minute + MINUTE;
                let Sim { rng, pop, attacks, labels, .. } = &mut self.sim;
                self.schedule.plan_until(end, pop, attacks, labels, rng);
                self.sim.draft_minute(self.next_minute);
                self.next_minute = end;
                self.next_draft = 0;
            } else {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::DEFAULT_START;
    use nhid_decode::native;
    use nhid_model::time::HOUR;

    /// One given event: the `until` of the call that gave it, its key and its line.
    type Given = (Millis, String, String);

    /// Every event of a run, with the labels of the attacks injected in it.
    fn record(cfg: &LiveConfig, now: Millis, window: Millis, live: Millis) -> (Vec<Given>, Vec<Label>) {
        let mut sim = Live::new(cfg, now);
        let mut events = Vec::new();
        let text = |line: &[u8]| String::from_utf8(line.to_vec()).unwrap();
        sim.history(&mut |line, key| events.push((now, key.to_owned(), text(line)))).unwrap();
        let mut until = now;
        while until < now + live {
            until += window;
            sim.advance(until, &mut |line, key| events.push((until, key.to_owned(), text(line)))).unwrap();
        }
        (events, sim.injected().to_vec())
    }

    fn lines_before(events: &[Given], end: Millis) -> Vec<&str> {
        events.iter().map(|(_, _, l)| l.as_str()).filter(|l| native::decode(l).unwrap().time < end).collect()
    }

    #[test]
    fn windows_hold_their_events_in_order_and_the_seed_fixes_everything() {
        let cfg = LiveConfig { principals: 30, history: 26 * HOUR, ..LiveConfig::default() };
        // Not on a minute: the history ends, and the attacks start, inside one.
        let now = DEFAULT_START + 2 * DAY + 37_250;
        let window = 100;
        let (events, labels) = record(&cfg, now, window, 4 * MINUTE);
        let mut last = Millis::MIN;
        for (until, key, line) in &events {
            assert!(!line.ends_with('\n'));
            let e = native::decode(line).unwrap();
            assert_eq!(e.principal.id, key.as_str());
            assert!(e.time >= last, "out of order at {}", e.id);
            last = e.time;
            let from = if *until == now { now - cfg.history - MINUTE } else { until - window };
            assert!((from..*until).contains(&e.time), "{} outside [{from}, {until})", e.id);
        }
        let history = events.iter().filter(|(until, ..)| *until == now).count();
        eprintln!("{history} history events, {} in 4 min live", events.len() - history);
        assert!(history > 50_000, "{history}");

        // The first six attacks, the last spiking two minutes after its start, are one of each
        // scenario, on distinct principals, after `now`.
        assert!(labels.len() >= 6, "{labels:#?}");
        let scenarios: BTreeSet<&str> = labels.iter().map(|l| l.scenario.as_str()).collect();
        assert_eq!(scenarios.len(), 6, "{scenarios:?}");
        let victims: BTreeSet<&str> = labels.iter().map(|l| l.principal_id.as_str()).collect();
        assert_eq!(victims.len(), labels.len());
        for l in &labels {
            assert!(now < l.start && l.start <= l.first_malicious_time && l.first_malicious_time <= l.end, "{l:?}");
            let id = format!("\"id\":\"{}\"", l.first_malicious_event_id);
            assert!(events.iter().any(|(_, key, line)| key == &l.principal_id && line.contains(&id)), "{l:?}");
        }

        // The same seed and `now` give the same events whatever the windows; another seed does not.
        let end = now + 4 * MINUTE;
        let (again, labels_again) = record(&cfg, now, 7_000, 4 * MINUTE);
        assert_eq!(lines_before(&events, end), lines_before(&again, end));
        let before_end =
            |labels: Vec<Label>| labels.into_iter().filter(|l| l.first_malicious_time < end).collect::<Vec<_>>();
        assert_eq!(before_end(labels), before_end(labels_again));
        let (other, _) = record(&LiveConfig { seed: 8, ..cfg }, now, 1_000, MINUTE);
        assert_ne!(lines_before(&events, now), lines_before(&other, now));
    }
}
