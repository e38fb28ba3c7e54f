//! Bounded sets of what an identity has been seen doing, stored as 31-bit fingerprints:
//! a few hundred bytes per identity whatever the strings' lengths. A false "seen" needs a
//! 31-bit collision inside one identity's set (about 1 in 3·10⁷ for 64 entries): a missed
//! novelty, never a false alert. Beside each set, what calibrates its novelty: how often
//! the identity was observed in it and how many of its values it showed only once.

use std::cell::RefCell;
use std::net::Ipv6Addr;

use xxhash_rust::xxh3::xxh3_64;

use crate::context::memo::Memo;
use crate::context::network::{Place, Ranges};

/// A dimension of [`Fingerprints`]. Each judgement has a finer and a coarser level: an
/// action and its service, a network (/24, /48) and its place (the provider's class, see
/// [`crate::context::network`]), a client (family and major version) and its family. A
/// finer set that fills up leaves the judgement to the coarser one instead of going blind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Action = 0,
    Service = 1,
    Network = 2,
    Place = 3,
    Client = 4,
    ClientFamily = 5,
}

const DIMS: usize = 6;

/// Set on a stored fingerprint once its value is seen again: values seen once are what
/// Good–Turing's estimate counts. Fingerprints keep the other 31 bits.
const REPEATED: u32 = 1 << 31;

/// [`Fingerprints`]' `last` of a dimension whose last value is not in its items: no item
/// has this position, as a dimension holds at most 255.
const NOT_KEPT: u8 = u8::MAX;

/// The values an identity has used in each [`Dim`], in one exactly allocated buffer grouped
/// by dimension, with each dimension's length, overflow flag and number of observations
/// beside it. An insert reallocates, but only a value never seen before is inserted.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprints {
    items: Box<[u32]>,
    lens: [u8; DIMS],
    /// Bit `d` set when an insert found dimension `d` full: it has no stable baseline at
    /// that level (autoscaled addresses, a general-purpose tool); its coarser level judges.
    overflowed: u8,
    /// Observations per dimension (saturating): the sample size of the estimate, counted
    /// in active minutes (see [`Fingerprints::observe`]).
    observed: [u32; DIMS],
    /// The value each dimension showed last, as its position in the dimension's items
    /// ([`NOT_KEPT`] when it was not kept: the set was full, or nothing was shown yet): an
    /// episode of one value goes on while it repeats without a long gap. A position, not
    /// the value, saves 18 bytes an identity and says the same: items are only ever
    /// appended to their dimension and are distinct, so the value found is the last one
    /// exactly when it sits at the last one's position, and a value that was not kept is
    /// none of the values found.
    last: [u8; DIMS],
    /// New values per active minute lately (an average over about a day of them): a
    /// fleet whose instances come and go keeps finding new addresses, each then repeated
    /// for hours, which Good–Turing's singletons alone would miss.
    discovery: [f32; DIMS],
    /// Each dimension's missing mass as it stood when the open minute began (see
    /// [`Fingerprints::observe`]): every event of a minute is judged by the same history,
    /// so the same events in another order within it give the same findings.
    mass: [f32; DIMS],
}

impl Default for Fingerprints {
    fn default() -> Self {
        Fingerprints {
            items: Box::default(),
            lens: [0; DIMS],
            overflowed: 0,
            observed: [0; DIMS],
            last: [NOT_KEPT; DIMS],
            discovery: [0.0; DIMS],
            // No history: anything may be new.
            mass: [1.0; DIMS],
        }
    }
}

impl Fingerprints {
    fn range(&self, d: Dim) -> std::ops::Range<usize> {
        let i = d as usize;
        let start: usize = self.lens[..i].iter().map(|&n| usize::from(n)).sum();
        start..start + usize::from(self.lens[i])
    }

    pub fn contains(&self, d: Dim, fp: u32) -> bool {
        let fp = fp & !REPEATED;
        self.items[self.range(d)].iter().any(|&x| x & !REPEATED == fp)
    }

    /// Observes a value of dimension `d` (capped at `cap`, at most 255 values). Returns
    /// `None` when the value was known, else the chance, judged from the history before
    /// the open minute, that an observation shows a value never seen: the Good–Turing
    /// estimate of the missing mass, `(n₁ + 1) / (n + 1)`, taken over episodes rather than
    /// calls, as calls come in correlated runs (a CI job makes seventy calls from its one
    /// fresh address): `n` counts the minutes the identity was active, `n₁` the values
    /// seen in one episode only, an episode being a run of one value without a gap of
    /// [`EPISODE_GAP_MINUTES`] (`step`: whether this event opens a minute, and whether it
    /// comes after such a gap). An identity still discovering values has a high estimate,
    /// and a new value from it is no surprise; one that showed the same few values for a
    /// thousand minutes has a tiny one. A full dimension marks itself overflowed.
    pub fn observe(&mut self, d: Dim, fp: u32, cap: usize, step: Step) -> Option<f32> {
        let fp = fp & !REPEATED;
        let r = self.range(d);
        let i = d as usize;
        // The discovery average's weight: a plain mean over the first day of active
        // minutes, then about a day's horizon.
        let alpha = 1.0 / (self.observed[i].min(DISCOVERY_MINUTES) as f32 + 1.0);
        if step.new_minute || self.observed[i] == 0 {
            self.observed[i] = self.observed[i].saturating_add(1);
            self.discovery[i] *= 1.0 - alpha;
        }
        if let Some(at) = self.items[r.clone()].iter().position(|x| x & !REPEATED == fp) {
            let same_episode = !step.after_gap && usize::from(self.last[i]) == at;
            self.last[i] = at as u8;
            if !same_episode || step.paused {
                self.items[r.start + at] |= REPEATED;
            }
            return None;
        }
        if r.len() >= cap.min(usize::from(u8::MAX)) {
            self.overflowed |= 1 << d as u8;
            self.last[i] = NOT_KEPT;
        } else {
            self.last[i] = r.len() as u8;
            let mut items = Vec::with_capacity(self.items.len() + 1);
            items.extend_from_slice(&self.items[..r.end]);
            items.push(fp);
            items.extend_from_slice(&self.items[r.end..]);
            self.items = items.into_boxed_slice();
            self.lens[i] += 1;
        }
        self.discovery[i] += alpha;
        Some(self.mass[i])
    }

    /// Takes the history so far as what the next minute's events are judged by: called
    /// when a minute closes. The chance of a new value is the higher of Good–Turing's
    /// estimate and the recent discovery rate.
    pub fn close_minute(&mut self) {
        for d in [Dim::Action, Dim::Service, Dim::Network, Dim::Place, Dim::Client, Dim::ClientFamily] {
            let n = self.observed[d as usize] as f32;
            let good_turing = (self.singletons(d) as f32 + 1.0) / (n + 1.0);
            self.mass[d as usize] = good_turing.max(self.discovery[d as usize]).min(1.0);
        }
    }

    pub fn overflowed(&self, d: Dim) -> bool {
        self.overflowed & (1 << d as u8) != 0
    }

    pub fn len(&self, d: Dim) -> usize {
        usize::from(self.lens[d as usize])
    }

    pub fn is_empty(&self, d: Dim) -> bool {
        self.lens[d as usize] == 0
    }

    /// Observations of dimension `d` so far.
    pub fn observed(&self, d: Dim) -> u32 {
        self.observed[d as usize]
    }

    /// Values of dimension `d` seen exactly once.
    pub fn singletons(&self, d: Dim) -> usize {
        self.items[self.range(d)].iter().filter(|&&x| x & REPEATED == 0).count()
    }
}

/// Active minutes the discovery rate averages over: about a day of them.
const DISCOVERY_MINUTES: u32 = 1_440;

/// A quiet spell this long (or a change of value) ends an episode.
pub const EPISODE_GAP_MINUTES: i64 = 10;

/// Where an observation falls in the identity's activity: whether it opens a minute, and
/// whether it follows a gap of [`EPISODE_GAP_MINUTES`] or more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub new_minute: bool,
    /// After a pause of two minutes or more: the same value again is a use of its own (a
    /// key calling every few minutes from its one address repeats it), though the episode
    /// goes on.
    pub paused: bool,
    pub after_gap: bool,
}

/// Every observation a step of its own: for tests of the estimate alone.
#[cfg(test)]
const APART: Step = Step { new_minute: true, paused: true, after_gap: true };

pub fn fingerprint(s: &str) -> u32 {
    xxh3_64(s.as_bytes()) as u32
}

/// The network an address belongs to, as a fingerprint and a printable prefix: /24 for
/// IPv4, /48 for IPv6 (one site). Cloud providers and ISPs hand out neighbouring
/// addresses, so a host changing its address inside its /24 is not a new source.
pub fn network_of(ip: &str) -> Option<(u32, NetworkPrefix<'_>)> {
    if let Some(dot) = ip.rfind('.') {
        let prefix = &ip[..dot];
        if prefix.bytes().filter(|&b| b == b'.').count() == 2 && !ip.contains(':') {
            return Some((fingerprint(prefix), NetworkPrefix::V4(prefix)));
        }
    }
    let v6: Ipv6Addr = ip.parse().ok()?;
    let seg = v6.segments();
    let bits = (u64::from(seg[0]) << 32) | (u64::from(seg[1]) << 16) | u64::from(seg[2]);
    Some((xxh3_64(&bits.to_le_bytes()) as u32, NetworkPrefix::V6([seg[0], seg[1], seg[2]])))
}

/// Where an address is, as [`Ranges::classify`] places it, and its network as
/// [`network_of`] gives it: memoised per thread by the address (and the ranges), as an
/// identity mostly repeats its address and a fleet shares a few; the same as computing them.
pub fn place_and_network<'a>(ip: &'a str, ranges: &Ranges) -> (Option<Place>, Option<(u32, NetworkPrefix<'a>)>) {
    /// A network apart from its address: a v4 prefix is the address's first bytes.
    #[derive(Clone, Copy)]
    enum Network {
        V4(u32, usize),
        V6(u32, [u16; 3]),
    }
    /// Addresses are at most 45 bytes (an IPv4-mapped IPv6 address); longer sources are
    /// names or garbage, not worth a slot.
    const MAX_KEY: usize = 64;
    thread_local! {
        static MEMO: RefCell<Memo<(Option<Place>, Option<Network>)>> = RefCell::new(Memo::new(1_024, MAX_KEY));
    }
    let (place, network) = MEMO
        .with_borrow_mut(|memo| {
            memo.get_or_insert_with(ranges.id(), ip, || {
                let network = network_of(ip).map(|(fp, prefix)| match prefix {
                    NetworkPrefix::V4(p) => Network::V4(fp, p.len()),
                    NetworkPrefix::V6(segments) => Network::V6(fp, segments),
                });
                Some((ranges.classify(ip), network))
            })
        })
        .unwrap_or_default();
    let network = network.map(|n| match n {
        // `network_of` gave `&ip[..len]` of an equal address.
        Network::V4(fp, len) => (fp, NetworkPrefix::V4(&ip[..len])),
        Network::V6(fp, segments) => (fp, NetworkPrefix::V6(segments)),
    });
    (place, network)
}

/// A network prefix that formats as CIDR (only when an alert needs it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NetworkPrefix<'a> {
    V4(&'a str),
    V6([u16; 3]),
}

impl std::fmt::Display for NetworkPrefix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkPrefix::V4(p) => write!(f, "{p}.0/24"),
            NetworkPrefix::V6([a, b, c]) => write!(f, "{a:x}:{b:x}:{c:x}::/48"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_bounded_and_remember_overflow() {
        let mut s = Fingerprints::default();
        for i in 0..10 {
            s.observe(Dim::Network, i, 4, APART);
        }
        assert_eq!(s.len(Dim::Network), 4);
        assert!(s.overflowed(Dim::Network));
        assert!(s.observe(Dim::Network, 2, 4, APART).is_none());
        assert!(!s.overflowed(Dim::Action) && s.is_empty(Dim::Action));
    }

    #[test]
    fn dimensions_are_apart() {
        let mut s = Fingerprints::default();
        assert!(s.observe(Dim::Client, 7, 8, APART).is_some());
        assert!(s.observe(Dim::Action, 7, 64, APART).is_some(), "the same fingerprint in another dimension is new");
        assert!(s.observe(Dim::Service, 9, 16, APART).is_some());
        assert!(s.observe(Dim::Action, 8, 64, APART).is_some());
        assert!(s.observe(Dim::Network, 7, 16, APART).is_some());
        assert!(s.observe(Dim::Service, 9, 16, APART).is_none());
        assert!(!s.contains(Dim::Network, 9) && s.contains(Dim::Service, 9));
        assert_eq!([Dim::Action, Dim::Service, Dim::Network, Dim::Client].map(|d| s.len(d)), [2, 1, 1, 1]);
        assert!(s.observe(Dim::Service, 10, 1, APART).is_some(), "full: new, and overflowed");
        assert!(s.overflowed(Dim::Service) && !s.overflowed(Dim::Action));
        assert_eq!(s.items.len(), 5);
        assert!(s.contains(Dim::Client, 7) && s.contains(Dim::Action, 8));
        assert!(s.contains(Dim::Service, 9 | REPEATED), "the repeat bit is not part of the value");
    }

    #[test]
    fn the_missing_mass_falls_as_values_repeat_and_stays_high_while_they_do_not() {
        // A key that repeats three actions (and once showed a fourth): after 301 minutes a
        // new one is a one-in-75 event, the rate it discovered its values at.
        let mut stable = Fingerprints::default();
        for i in 0..300 {
            stable.observe(Dim::Action, i % 3, 64, APART);
        }
        assert_eq!(stable.observe(Dim::Action, 98, 64, APART), Some(1.0), "judged by the history as the minute began");
        stable.close_minute();
        let p = stable.observe(Dim::Action, 99, 64, APART).unwrap();
        // Good–Turing says 2 in 302; four values discovered in 301 minutes say more.
        assert!((p - 4.0 / 301.0).abs() < 1e-4, "{p}");
        // A key whose calls keep naming actions it used once: half of them are singletons.
        let mut discovering = Fingerprints::default();
        for i in 0..40 {
            discovering.observe(Dim::Action, if i % 2 == 0 { 1 } else { 100 + i }, 64, APART);
        }
        assert_eq!(discovering.singletons(Dim::Action), 20);
        discovering.close_minute();
        let p = discovering.observe(Dim::Action, 7, 64, APART).unwrap();
        assert!(p > 0.5, "{p}");
        assert_eq!(discovering.observed(Dim::Action), 41);
    }

    #[test]
    fn memoised_places_and_networks_are_the_computed_ones() {
        let ranges = Ranges::builtin();
        let sources = [
            "10.20.30.40",
            "185.220.101.7",
            "3.5.140.2",
            "2001:db8:1:2::1",
            "::ffff:10.0.0.1",
            "ec2.amazonaws.com",
            "",
            "x",
        ];
        for round in 0..2 {
            for ip in sources {
                let ip = ip.to_string();
                let expected = (ranges.classify(&ip), network_of(&ip));
                assert_eq!(place_and_network(&ip, ranges), expected, "{ip} (round {round})");
            }
        }
    }

    #[test]
    fn networks_are_slash_24_and_slash_48() {
        let (a, pa) = network_of("10.20.30.40").unwrap();
        let (b, _) = network_of("10.20.30.99").unwrap();
        let (c, _) = network_of("10.20.31.40").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(pa.to_string(), "10.20.30.0/24");
        let (d, pd) = network_of("2001:db8:1:2::1").unwrap();
        let (e, _) = network_of("2001:db8:1:ffff::7").unwrap();
        assert_eq!(d, e);
        assert_eq!(pd.to_string(), "2001:db8:1::/48");
        assert!(network_of("ec2.amazonaws.com").is_none());
        assert!(network_of("").is_none());
    }
}
