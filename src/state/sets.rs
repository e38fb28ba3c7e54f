//! Bounded sets of what an identity has been seen doing, stored as 32-bit fingerprints:
//! a few hundred bytes per identity whatever the strings' lengths. A false "seen" needs a
//! 32-bit collision inside one identity's set (about 1 in 10⁸ for 64 entries): a missed
//! novelty, never a false alert.

use std::net::Ipv6Addr;

use xxhash_rust::xxh3::xxh3_64;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FingerprintSet {
    items: Vec<u32>,
    /// Set when an insert found the set full: the dimension has no stable baseline
    /// (autoscaled IPs, a general-purpose tool), so novelty in it is not evidence.
    pub overflowed: bool,
}

impl FingerprintSet {
    pub fn contains(&self, fp: u32) -> bool {
        self.items.contains(&fp)
    }

    /// Inserts; returns whether the value was new. A full set marks itself overflowed.
    pub fn insert(&mut self, fp: u32, cap: usize) -> bool {
        if self.contains(fp) {
            return false;
        }
        if self.items.len() >= cap {
            self.overflowed = true;
        } else {
            self.items.push(fp);
        }
        true
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
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
        let mut s = FingerprintSet::default();
        for i in 0..10 {
            s.insert(i, 4);
        }
        assert_eq!(s.len(), 4);
        assert!(s.overflowed);
        assert!(!s.insert(2, 4));
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
