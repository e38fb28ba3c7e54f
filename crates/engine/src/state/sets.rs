//! Bounded sets of what an identity has been seen doing, stored as 32-bit fingerprints:
//! a few hundred bytes per identity whatever the strings' lengths. A false "seen" needs a
//! 32-bit collision inside one identity's set (about 1 in 10⁸ for 64 entries): a missed
//! novelty, never a false alert.

use std::net::Ipv6Addr;

use xxhash_rust::xxh3::xxh3_64;

/// A dimension of [`Fingerprints`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Action = 0,
    Service = 1,
    Network = 2,
    UserAgent = 3,
}

/// The actions, services, networks and user agents an identity has used, in one exactly
/// allocated buffer grouped by dimension (in [`Dim`] order), with each dimension's length
/// and overflow flag beside it: 24 bytes inline where four sets took 128, and no growth
/// slack. An insert reallocates, but only a value never seen before is inserted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fingerprints {
    items: Box<[u32]>,
    lens: [u8; 4],
    /// Bit `d` set when an insert found dimension `d` full: it has no stable baseline
    /// (autoscaled IPs, a general-purpose tool), so novelty in it is not evidence.
    overflowed: u8,
}

impl Fingerprints {
    fn range(&self, d: Dim) -> std::ops::Range<usize> {
        let i = d as usize;
        let start: usize = self.lens[..i].iter().map(|&n| usize::from(n)).sum();
        start..start + usize::from(self.lens[i])
    }

    pub fn contains(&self, d: Dim, fp: u32) -> bool {
        self.items[self.range(d)].contains(&fp)
    }

    /// Inserts into dimension `d` (capped at `cap`, at most 255); returns whether the value
    /// was new. A full dimension marks itself overflowed.
    pub fn insert(&mut self, d: Dim, fp: u32, cap: usize) -> bool {
        let r = self.range(d);
        if self.items[r.clone()].contains(&fp) {
            return false;
        }
        if r.len() >= cap.min(usize::from(u8::MAX)) {
            self.overflowed |= 1 << d as u8;
        } else {
            let mut items = Vec::with_capacity(self.items.len() + 1);
            items.extend_from_slice(&self.items[..r.end]);
            items.push(fp);
            items.extend_from_slice(&self.items[r.end..]);
            self.items = items.into_boxed_slice();
            self.lens[d as usize] += 1;
        }
        true
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
}

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
            s.insert(Dim::Network, i, 4);
        }
        assert_eq!(s.len(Dim::Network), 4);
        assert!(s.overflowed(Dim::Network));
        assert!(!s.insert(Dim::Network, 2, 4));
        assert!(!s.overflowed(Dim::Action) && s.is_empty(Dim::Action));
    }

    #[test]
    fn dimensions_are_apart() {
        let mut s = Fingerprints::default();
        assert!(s.insert(Dim::UserAgent, 7, 8));
        assert!(s.insert(Dim::Action, 7, 64), "the same fingerprint in another dimension is new");
        assert!(s.insert(Dim::Service, 9, 16));
        assert!(s.insert(Dim::Action, 8, 64));
        assert!(s.insert(Dim::Network, 7, 16));
        assert!(!s.insert(Dim::Service, 9, 16));
        assert!(!s.contains(Dim::Network, 9) && s.contains(Dim::Service, 9));
        assert_eq!([Dim::Action, Dim::Service, Dim::Network, Dim::UserAgent].map(|d| s.len(d)), [2, 1, 1, 1]);
        assert!(s.insert(Dim::Service, 10, 1), "full: new, and overflowed");
        assert!(s.overflowed(Dim::Service) && !s.overflowed(Dim::Action));
        assert_eq!(s.items.len(), 5);
        assert!(s.contains(Dim::UserAgent, 7) && s.contains(Dim::Action, 8));
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
