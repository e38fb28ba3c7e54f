//! Where the cloud estate's calls come from: the address ranges providers publish, from the
//! dated copy in `data/ipranges` (its README names the upstream, the licence and how to refresh
//! it), compiled in. GitHub-hosted runners get a fresh VM address per job from GitHub's ranges
//! (the meta API's lists, whose bulk is the `actions` list inside Azure's space); Lambda
//! functions outside a VPC and Fargate tasks get a new AWS public address per cold start or
//! task; a stolen key is tried from a hosting provider or an anonymising network.
//!
//! An address is drawn by choosing a published prefix with a weight of its size (capped at a
//! /16, so the few huge blocks do not hold every draw), then a host inside it.

use std::sync::OnceLock;

use rand::RngExt;

use super::Rng;

/// A provider whose published IPv4 ranges the simulator draws addresses from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    /// GitHub's meta API (hosted runners' `actions` list, hooks, web, api).
    GitHub,
    /// AWS `ip-ranges.json`: EC2, Lambda and Fargate public addresses among them.
    Amazon,
    DigitalOcean,
    Vultr,
    Linode,
    /// ProtonVPN exit addresses.
    ProtonVpn,
}

impl Provider {
    const ALL: [Provider; 6] = [
        Provider::GitHub,
        Provider::Amazon,
        Provider::DigitalOcean,
        Provider::Vultr,
        Provider::Linode,
        Provider::ProtonVpn,
    ];

    fn text(self) -> &'static str {
        match self {
            Provider::GitHub => include_str!("../../../data/ipranges/github/ipv4_merged.txt"),
            Provider::Amazon => include_str!("../../../data/ipranges/amazon/ipv4_merged.txt"),
            Provider::DigitalOcean => include_str!("../../../data/ipranges/digitalocean/ipv4_merged.txt"),
            Provider::Vultr => include_str!("../../../data/ipranges/vultr/ipv4_merged.txt"),
            Provider::Linode => include_str!("../../../data/ipranges/linode/ipv4_merged.txt"),
            Provider::ProtonVpn => include_str!("../../../data/ipranges/protonvpn/ipv4_merged.txt"),
        }
    }

    fn index(self) -> usize {
        Provider::ALL.iter().position(|&p| p == self).unwrap_or(0)
    }

    /// The provider's prefixes, parsed on first use.
    pub fn ranges(self) -> &'static Ranges {
        static PARSED: [OnceLock<Ranges>; 6] = [const { OnceLock::new() }; 6];
        PARSED[self.index()].get_or_init(|| Ranges::parse(self.text()))
    }

    /// The folder of `data/ipranges` the provider's list comes from.
    fn folder(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Amazon => "amazon",
            Provider::DigitalOcean => "digitalocean",
            Provider::Vultr => "vultr",
            Provider::Linode => "linode",
            Provider::ProtonVpn => "protonvpn",
        }
    }

    /// A host address in one of the provider's prefixes that nhid places at the provider.
    /// Lists nest: GitHub's Actions blocks of Azure space hold OpenAI's published egress,
    /// and an address both claim is OpenAI's (the more specific list); a runner never holds
    /// it, so such a draw is drawn again.
    pub fn address(self, rng: &mut Rng) -> [u8; 4] {
        let places = nhid_engine::context::network::Ranges::builtin();
        let mut ip = self.ranges().address(rng);
        for _ in 0..16 {
            let place = places.classify(&std::net::Ipv4Addr::from(ip).to_string());
            if place.and_then(|p| places.provider(p)) == Some(self.folder()) {
                break;
            }
            ip = self.ranges().address(rng);
        }
        ip
    }
}

/// Published prefixes, sorted by base address, with the cumulative weights draws use.
pub(crate) struct Ranges {
    /// `(base, size)` in addresses.
    prefixes: Vec<(u32, u32)>,
    cumulative: Vec<u64>,
}

/// Prefixes larger than this weigh as much as it does.
const MAX_WEIGHT: u64 = 1 << 16;

impl Ranges {
    fn parse(text: &str) -> Ranges {
        let mut prefixes: Vec<(u32, u32)> = text.lines().filter_map(parse_cidr).collect();
        prefixes.sort_unstable();
        let mut total = 0;
        let cumulative = prefixes
            .iter()
            .map(|&(_, size)| {
                total += u64::from(size).min(MAX_WEIGHT);
                total
            })
            .collect();
        Ranges { prefixes, cumulative }
    }

    fn address(&self, rng: &mut Rng) -> [u8; 4] {
        let Some(&total) = self.cumulative.last() else {
            return [192, 0, 2, 1];
        };
        let x = rng.random_range(0..total);
        let i = self.cumulative.partition_point(|&c| c <= x);
        let (base, size) = self.prefixes[i.min(self.prefixes.len() - 1)];
        // Not the network or broadcast address of a prefix that has others.
        let host = if size >= 4 { rng.random_range(1..size - 1) } else { rng.random_range(0..size) };
        (base + host).to_be_bytes()
    }

    /// Whether `ip` lies in one of the prefixes.
    #[cfg(test)]
    pub fn contains(&self, ip: [u8; 4]) -> bool {
        let ip = u32::from_be_bytes(ip);
        let i = self.prefixes.partition_point(|&(base, _)| base <= ip);
        i > 0 && ip - self.prefixes[i - 1].0 < self.prefixes[i - 1].1
    }

    /// The prefixes of at least `min_size` addresses.
    pub fn large(&self, min_size: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.prefixes.iter().copied().filter(move |&(_, size)| size >= min_size)
    }
}

/// `a.b.c.d/n` as `(base, size)`; `None` for anything else (comments, IPv6, blank lines).
fn parse_cidr(line: &str) -> Option<(u32, u32)> {
    let (addr, len) = line.trim().split_once('/')?;
    let len: u32 = len.parse().ok().filter(|&l| (8..=32).contains(&l))?;
    let mut octets = [0u8; 4];
    let mut parts = addr.split('.');
    for o in &mut octets {
        *o = parts.next()?.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let size = 1u32 << (32 - len).min(31);
    let base = u32::from_be_bytes(octets) & !(size - 1);
    Some((base, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_provider_has_ranges_and_draws_inside_them() {
        let mut rng = Rng::seed_from_u64(1);
        for p in Provider::ALL {
            let r = p.ranges();
            assert!(r.prefixes.len() >= 10, "{p:?}: {}", r.prefixes.len());
            let places = nhid_engine::context::network::Ranges::builtin();
            for _ in 0..2_000 {
                let ip = p.address(&mut rng);
                assert!(r.contains(ip), "{p:?}: {ip:?}");
                // Never an address a more specific list claims (OpenAI's inside GitHub's).
                let place = places.classify(&std::net::Ipv4Addr::from(ip).to_string()).unwrap();
                assert_eq!(places.provider(place), Some(p.folder()), "{p:?}: {ip:?}");
            }
        }
        assert!(!Provider::GitHub.ranges().contains([10, 20, 0, 1]));
        assert_eq!(parse_cidr("4.148.0.0/14"), Some((u32::from_be_bytes([4, 148, 0, 0]), 1 << 18)));
        assert_eq!(parse_cidr("2a02::/32"), None);
    }
}
