//! `rate_spike`: calls far more than the identity's own count model allows, over the last
//! 1, 5, 15 or 60 minutes. A burst shows in one minute; a quiet key exfiltrating at 18
//! calls a minute (60 times its rate, below any fixed per-minute bar) shows within a
//! minute too, and a slow read at a few times the usual rate in a quarter or a whole hour.
//!
//! The model is the identity's own: its expected calls per minute for this hour and how
//! much its minutes vary (a negative binomial where they vary more than a Poisson process:
//! batches, retries, paging). The bar is a false-alarm budget, `max_probability` per
//! window tested, instead of a count floor, so a key that makes one call every three
//! minutes is held to its own rate and a noisy batch to its own noise. Evaluated on every
//! event, so it fires as soon as the count clears the bar, not when the window ends.

use serde::Deserialize;

use super::{Finding, Kind, carries_excess, count_test, round_probability, round2};
use crate::state::Observation;
use crate::state::baseline::WINDOWS;
use crate::state::seasonal::MARGIN;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSpike {
    /// Fire when the count over some window is this improbable under the identity's
    /// model. About 6,000 windows are tested per identity and day: 1e-8 is a budget of
    /// well under one false alarm per 1,000 identity-days where the model holds.
    pub max_probability: f64,
    /// And at least this many times the expected count: an effect a person would call a
    /// spike, not a significant few percent on a very busy identity.
    pub ratio: f32,
    /// Calls in one minute below which nothing fires: 0 for machines (their own model is
    /// the bar). The human lane keeps one: a person paging through a console makes a
    /// hundred calls in a minute and is no leaked key; an inhuman rate is.
    #[serde(default)]
    pub min_count: u32,
    /// And more than this many times the identity's busiest window of the last days (its
    /// own surges: a function's traffic bursts, a backlog drained). Surges vary in size:
    /// twice the biggest one seen is no rarer than a new one at the next busy hour.
    pub peak_margin: f32,
    /// And this event's credential made at least this share of the identity's calls of the
    /// last minute or so ([`Observation::credential_share`]) at the bar, and proportionally
    /// more of a count further above it ([`super::carries_excess`]). A workload that scales
    /// out (a function's cold starts, a fleet's new instances, more tasks) spreads a surge
    /// over many credentials, each holding its usual few; a stolen credential carries the
    /// whole excess alone, which is `1 - expected/observed` of the count (at least
    /// `1 - 1/ratio`).
    pub min_share: f32,
    /// Raise nothing for a job's session calling from where its jobs run
    /// ([`Observation::usual_job`]): CI jobs vary in size by tenfold and more, and a big
    /// deploy is not a theft. What this gives up: the volume of a thief inside the job
    /// itself (a poisoned build step); what it does that the jobs never did is still
    /// `scope_drift`'s and `privilege_change`'s, and the session carried off the runner is
    /// judged as ever.
    #[serde(default)]
    pub quiet_for_jobs: bool,
}

impl Kind for RateSpike {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        if !obs.learned
            || obs.minute_count < self.min_count
            || obs.credential_share < self.min_share
            || (self.quiet_for_jobs && obs.usual_job())
        {
            return None;
        }
        let e = &obs.expected;
        let floors = std::array::from_fn(|i| {
            (MARGIN * WINDOWS[i] as f32 * e.recurring).max(self.peak_margin * obs.window_peaks[i])
        });
        let (i, expected, p) = count_test(&obs.calls_in, &obs.window_models, &floors, self.ratio)?;
        let observed = obs.calls_in[i] as f32;
        if p > self.max_probability
            || !carries_excess(obs.credential_share_bound(), self.min_share, self.ratio, observed, expected as f32)
        {
            return None;
        }
        // Over a longer window, the credential must be making the excess now: a quarter or an
        // hour still holding a surge that has ended (its last warm environment back at its
        // usual pace) is no theft in progress. At `ratio` times the expected count, the
        // excess alone runs at `ratio - 1` times the usual minute, as that window's model
        // has it (its slow level: the minute's own model follows a sustained read), on top
        // of the credential's share of the usual minute: the sole environment left after a
        // function's burst makes all of the function's usual calls, none of them excess.
        if i > 0
            && let Some(recent) = obs.credential_recent
        {
            let usual_minute = expected / WINDOWS[i] as f64;
            let excess_now = f64::from(recent) - f64::from(obs.credential_share) * usual_minute;
            if excess_now < f64::from(self.ratio - 1.0) * usual_minute {
                return None;
            }
        }
        let (w, observed, expected) = (WINDOWS[i], obs.calls_in[i], expected as f32);
        let over = if w == 1 { "in one minute".to_string() } else { format!("in {w} minutes") };
        Some(Finding {
            severity: None,
            response: None,
            evidence: crate::evidence! {
                "window_minutes" => w,
                "observed" => observed,
                "expected" => round2(expected),
                "observed_per_minute" => obs.minute_count,
                "baseline_per_minute" => round2(e.mean),
                "expected_variance" => round2(obs.window_models[i].1),
                "recurring_peak_per_minute" => (e.recurring > 0.0).then(|| round2(e.recurring)),
                "usual_peak" => (obs.window_peaks[i] > 0.0).then(|| round2(obs.window_peaks[i])),
                "ratio" => round2(observed as f32 / expected.max(0.01)),
                "credential_share" => round2(obs.credential_share),
                "probability" => round_probability(p),
            },
            summary: format!(
                "{} made {observed} calls {over} against {expected:.1} expected from its baseline (chance {:.1e}).",
                ev.principal.id, p
            ),
            unit: ev.time.div_euclid(MINUTE),
            probability: Some(p),
            baseline: Some(format!(
                "{expected:.1} calls per {w} minutes (variance {:.1}) at this hour, learned over {} minutes",
                obs.window_models[i].1, obs.baseline_minutes
            )),
            // The count is the identity's, whichever credentials made it (a function's
            // concurrent cold starts each hold one): one finding.
            key: 0,
            references: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, observe, shipped};
    use super::*;
    use crate::context::network::Ranges;
    use crate::state::Identity;
    use nhid_model::time::{DAY, SECOND};

    /// Feeds `per_minute(m)` calls in each minute `m` of `minutes`; returns the first
    /// finding with the minute and second it fired in.
    fn run(
        id: &mut Identity,
        minutes: std::ops::Range<i64>,
        per_minute: impl Fn(i64) -> u32,
    ) -> Option<(i64, i64, Finding)> {
        run_with(id, minutes, per_minute, |_, _| "AKIA1")
    }

    /// As [`run`], the `k`th call of minute `m` made with credential `credential(m, k)`.
    fn run_with(
        id: &mut Identity,
        minutes: std::ops::Range<i64>,
        per_minute: impl Fn(i64) -> u32,
        credential: impl Fn(i64, u32) -> &'static str,
    ) -> Option<(i64, i64, Finding)> {
        let d = shipped("rate_spike");
        let mut ev = event(0, PrincipalType::ApiKey);
        for m in minutes {
            let n = per_minute(m);
            for k in 0..n {
                ev.credential.id = Some(credential(m, k).into());
                ev.time = m * MINUTE + i64::from(k) * (MINUTE / i64::from(n.max(1)));
                let obs = id.observe(&ev, DAY, Ranges::builtin());
                if let Some((_, f)) = d.check(PrincipalType::ApiKey, &ev, &obs) {
                    return Some((m, (ev.time % MINUTE) / SECOND, f));
                }
            }
        }
        None
    }

    /// A learned identity's observation with the given window models and counts, no
    /// recurring or recent peak, and the event's credential holding `share` of the recent
    /// calls, `recent` of its own.
    fn modelled<'e>(
        ev: &'e AuditEvent<'_>,
        models: [(f32, f32); 4],
        calls: [u32; 4],
        share: f32,
        recent: f32,
    ) -> Observation<'e> {
        let mut obs = observe(ev);
        obs.learned = true;
        obs.expected.recurring = 0.0;
        obs.window_models = models;
        obs.window_peaks = [0.0; 4];
        obs.calls_in = calls;
        obs.credential_share = share;
        obs.credential_recent = Some(recent);
        obs
    }

    #[test]
    fn a_quiet_key_reading_at_eighteen_a_minute_is_caught_within_the_minute() {
        // One call every three minutes for two days, then 18 a minute.
        let mut id = Identity::new(PrincipalType::ApiKey, None, 0);
        let day = DAY / MINUTE;
        assert!(run(&mut id, 0..2 * day, |m| u32::from(m % 3 == 0)).is_none(), "its own rate is quiet");
        let (m, s, f) = run(&mut id, 2 * day..2 * day + 15, |_| 18).expect("caught");
        assert_eq!((m, f.evidence["window_minutes"].as_u64()), (2 * day, Some(1)), "{f:?}");
        assert!(s < 40, "fired at second {s}");
        assert!(f.probability.unwrap() <= 1e-8);
    }

    #[test]
    fn a_bursty_identity_is_held_to_its_own_noise() {
        // Quiet, with a burst of 25 calls every half hour: bursts are its normal.
        let mut id = Identity::new(PrincipalType::ApiKey, None, 0);
        let day = DAY / MINUTE;
        let bursty = |m: i64| if m % 30 == 7 { 25 } else { u32::from(m % 4 == 0) };
        assert!(run(&mut id, 0..day, bursty).is_none());
        assert!(run(&mut id, day..3 * day, bursty).is_none(), "its bursts do not page");
        // A read at twenty times its bursts' size does.
        assert!(run(&mut id, 3 * day..3 * day + 5, |_| 500).is_some());
    }

    #[test]
    fn a_slow_exfiltration_shows_over_a_longer_window() {
        // Four calls a minute, steady; then fourteen a minute for an hour: never a burst
        // (one such minute is a one-in-3,000 minute), but five of them are far outside the
        // model, even as the short horizon starts to follow.
        let mut id = Identity::new(PrincipalType::ApiKey, None, 0);
        let day = DAY / MINUTE;
        assert!(run(&mut id, 0..2 * day, |_| 4).is_none());
        let (m, _, f) = run(&mut id, 2 * day..2 * day + 60, |_| 14).expect("caught");
        assert!(f.evidence["window_minutes"].as_u64().unwrap() > 1, "{f:?}");
        assert!(m - 2 * day <= 15, "after {} minutes", m - 2 * day);
    }

    #[test]
    fn a_surge_spread_over_many_credentials_is_a_workload_scaling_out() {
        // A function: six calls a minute from its two warm execution environments (each
        // with its own session key) for two days. Then 120 a minute for ten minutes, which
        // its model says never happens: spread over six environments, it is its traffic;
        // carried by one key, it is that key's theft.
        const ENVS: [&str; 6] = ["ASIA0", "ASIA1", "ASIA2", "ASIA3", "ASIA4", "ASIA5"];
        let day = DAY / MINUTE;
        let history = |id: &mut Identity| {
            assert!(run_with(id, 0..2 * day, |_| 6, |_, k| ENVS[k as usize % 2]).is_none());
        };
        let mut scaled = Identity::new(PrincipalType::ApiKey, None, 0);
        history(&mut scaled);
        let surge = run_with(&mut scaled, 2 * day..2 * day + 10, |_| 120, |_, k| ENVS[k as usize % 6]);
        assert!(surge.is_none(), "{surge:?}");

        let mut stolen = Identity::new(PrincipalType::ApiKey, None, 0);
        history(&mut stolen);
        // The two environments keep their pace; the thief's calls all use the first key.
        let theft = |_: i64, k: u32| if k.is_multiple_of(20) { ENVS[1] } else { ENVS[0] };
        let (m, _, f) = run_with(&mut stolen, 2 * day..2 * day + 10, |_| 120, theft).expect("caught");
        assert_eq!(m, 2 * day, "{f:?}");
        assert!(f.evidence["credential_share"].as_f64().unwrap() >= 0.5, "{f:?}");
    }

    #[test]
    fn a_job_of_any_size_from_where_jobs_run_is_its_size_and_its_session_elsewhere_is_not() {
        // A deploy role: one job a day at 10:00, each with its own session (a short-lived
        // token), 20 calls a minute for five minutes from a self-hosted runner, idle in
        // between. On the fourth day a job twenty times that size.
        use nhid_model::event::CredentialKind;
        use nhid_model::time::HOUR;
        let d = shipped("rate_spike");
        let first_finding = |kind: CredentialKind, big_job_ip: &'static str, quiet_for_jobs: bool| {
            let mut id = Identity::new(PrincipalType::ServiceAccount, None, 10 * HOUR);
            let mut ev = event(0, PrincipalType::ServiceAccount);
            ev.credential.kind = kind;
            ev.source.user_agent = Some("aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/linux#6.5.0".into());
            for day in 0..4 {
                let (per_minute, ip) = if day == 3 { (400, big_job_ip) } else { (20, "10.0.0.7") };
                ev.credential.id =
                    Some(if kind == CredentialKind::StaticKey { "AKIA1".into() } else { format!("ASIA{day}").into() });
                ev.source.ip = Some(ip.into());
                for k in 0..5 * per_minute {
                    ev.time = day * DAY + 10 * HOUR + i64::from(k) * MINUTE / i64::from(per_minute);
                    let obs = id.observe(&ev, DAY, Ranges::builtin());
                    let quiet = RateSpike {
                        quiet_for_jobs,
                        ..d.params::<RateSpike>(PrincipalType::ServiceAccount).unwrap().clone()
                    };
                    if let Some(f) = quiet.check(PrincipalType::ServiceAccount, &ev, &obs) {
                        return Some((day, f));
                    }
                }
            }
            None
        };
        let session = CredentialKind::ShortLivedToken;
        assert!(first_finding(session, "10.0.0.8", true).is_none(), "a big job from a runner");
        // The same job judged as any burst (what `quiet_for_jobs` silences)...
        assert_eq!(first_finding(session, "10.0.0.8", false).map(|(day, _)| day), Some(3));
        // ...a job's session used from a kind of network the role never used...
        assert_eq!(first_finding(session, "185.220.101.7", true).map(|(day, _)| day), Some(3));
        // ...and a static key, which no job mints, are.
        assert_eq!(first_finding(CredentialKind::StaticKey, "10.0.0.8", true).map(|(day, _)| day), Some(3));
    }

    #[test]
    fn a_credential_must_carry_the_excess_not_just_half_the_calls() {
        // A function at about one call a minute bursts to twelve in a minute over two warm
        // environments, the busier holding 52 %: at eleven times the expectation the excess
        // is 91 % of the count, which neither environment carries. A thief's key does.
        let d = shipped("rate_spike");
        let ev = event(10 * DAY, PrincipalType::Workload);
        let models = [(1.12, 1.12), (5.6, 5.6), (16.8, 16.8), (67.0, 67.0)];
        let mut obs = modelled(&ev, models, [12, 14, 25, 75], 0.52, 6.0);
        assert!(d.check(PrincipalType::Workload, &ev, &obs).is_none(), "a burst over two environments");
        obs.credential_share = 0.95;
        assert!(d.check(PrincipalType::Workload, &ev, &obs).is_some(), "one key carrying it");
        // At the bar itself (three times the expectation) half the calls is enough; at
        // twelve times, it is not.
        assert!(carries_excess(0.5, 0.5, 3.0, 3.0, 1.0));
        assert!(!carries_excess(0.5, 0.5, 3.0, 12.0, 1.0));
    }

    #[test]
    fn an_hour_that_still_holds_an_ended_surge_is_no_theft_in_progress() {
        let d = shipped("rate_spike");
        let ev = event(10 * DAY, PrincipalType::ServiceAccount);
        // Twenty calls a minute usually; the last hour held 6,000 (a surge), the last
        // minute a usual twenty.
        let models = [(20.0, 40.0), (100.0, 200.0), (300.0, 600.0), (1_200.0, 2_400.0)];
        let mut obs = modelled(&ev, models, [20, 100, 300, 6_000], 0.7, 12.0);
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "the surge has ended");
        // The same hour with this credential making sixty calls a minute now: in progress.
        obs.credential_recent = Some(60.0);
        let (_, f) = d.check(PrincipalType::ServiceAccount, &ev, &obs).expect("in progress");
        assert_eq!(f.evidence["window_minutes"], 60);
        // The function's one environment left after its burst, making all of its calls at
        // a busy minute's pace (45 against 20): its usual calls are no excess.
        obs.credential_share = 1.0;
        obs.credential_recent = Some(45.0);
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "the burst has ended");
    }
}
