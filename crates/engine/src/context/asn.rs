//! Which autonomous system a public address belongs to, from a table the operator loads.
//!
//! The providers' published ranges ([`super::network`]) name the clouds, CI services, CDNs,
//! hosting companies and anonymisers; every other address is `public`, one place for the
//! whole internet. An on-premises key's office ISP and an attacker's residential line are
//! then the same place and only a new /24 tells them apart, which an identity calling from
//! many addresses stops noticing. With an IP-to-ASN table loaded (`ip_asn_dir`), a public
//! address is placed by its autonomous system: "public (AS7922 Comcast Cable Communications,
//! LLC)" is another place than "public (AS3320 Deutsche Telekom AG)". What an attacker can
//! still do: residential proxy networks sell exits by ISP, so a thief who knows the key's
//! office ISP can call from another address in the same system, one more /24 there.
//!
//! The table is not shipped: the open ones (RouteViews with DB-IP and NRO data, CC BY 4.0,
//! republished daily by ip-location-db) are 30 MB, change daily and must be attributed;
//! `data/ipranges/README.md` says where to get one and how to refresh it. An event that
//! names its autonomous system itself (Okta's `securityContext.asNumber`) is placed by it
//! with or without a table.
//!
//! # Format
//!
//! A directory holding `asn-ipv4.csv` and/or `asn-ipv6.csv` as ip-location-db publishes
//! them: one inclusive range a line, `first,last,asn,organisation`, the organisation
//! quoted when it holds a comma (`1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."`). Blank
//! lines, `#` comments and a header line are skipped; unsorted lines are fine. Where
//! ranges overlap, the one starting last wins (the more specific in a routing table).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::network::{Problem, RangesError, Table};

/// The files read from an `ip_asn_dir`, as ip-location-db names them.
pub const FILES: [&str; 2] = ["asn-ipv4.csv", "asn-ipv6.csv"];

/// An IP-to-ASN table with the organisations' names.
pub struct Asns {
    v4: Table<u32, u32>,
    v6: Table<u128, u32>,
    names: HashMap<u32, Box<str>>,
}

impl std::fmt::Debug for Asns {
    /// A summary: the tables are hundreds of thousands of ranges.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asns")
            .field("v4_ranges", &self.v4.len())
            .field("v6_ranges", &self.v6.len())
            .field("systems", &self.names.len())
            .finish()
    }
}

impl Asns {
    /// Reads `asn-ipv4.csv` and `asn-ipv6.csv` from `dir` (either may be absent, not both),
    /// reporting every bad line at once.
    pub fn load(dir: &Path) -> Result<Asns, RangesError> {
        let mut problems = Vec::new();
        let mut texts = Vec::new();
        for name in FILES {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => texts.push((path, text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => problems.push(Problem::Read { path, source }),
            }
        }
        if texts.is_empty() && problems.is_empty() {
            problems.push(Problem::NoAsnFiles { dir: dir.to_path_buf() });
        }
        match Asns::parse(texts.iter().map(|(p, t)| (p.clone(), t.as_str()))) {
            Ok(asns) if problems.is_empty() => Ok(asns),
            Ok(_) => Err(RangesError { problems }),
            Err(e) => {
                problems.extend(e.problems);
                Err(RangesError { problems })
            }
        }
    }

    /// Parses tables' text, each with the path its lines are reported under.
    pub fn parse<'a>(files: impl IntoIterator<Item = (PathBuf, &'a str)>) -> Result<Asns, RangesError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        let mut names = HashMap::new();
        let mut problems = Vec::new();
        for (path, text) in files {
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') || (n == 0 && line.starts_with("ip_range_start")) {
                    continue;
                }
                match parse_line(line) {
                    Ok((IpAddr::V4(a), IpAddr::V4(b), asn, name)) => {
                        v4.push((u32::from(a), u32::from(b), asn));
                        names.entry(asn).or_insert_with(|| name.into());
                    }
                    Ok((IpAddr::V6(a), IpAddr::V6(b), asn, name)) => {
                        v6.push((u128::from(a), u128::from(b), asn));
                        names.entry(asn).or_insert_with(|| name.into());
                    }
                    Ok(_) => problems.push(line_problem(&path, n, line, "the range's ends are of two families")),
                    Err(reason) => problems.push(line_problem(&path, n, line, reason)),
                }
            }
        }
        if !problems.is_empty() {
            return Err(RangesError { problems });
        }
        Ok(Asns { v4: Table::from_rows(v4), v6: Table::from_rows(v6), names })
    }

    /// The autonomous system announcing `ip`, if the table has one.
    pub fn find(&self, ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(v4) => self.v4.find(u32::from(v4)),
            IpAddr::V6(v6) => self.v6.find(u128::from(v6)),
        }
    }

    /// The organisation of an autonomous system, as the table names it.
    pub fn name(&self, asn: u32) -> Option<&str> {
        self.names.get(&asn).map(|n| &**n).filter(|n| !n.is_empty())
    }

    /// Ranges held, both families.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn line_problem(path: &Path, n: usize, line: &str, reason: &'static str) -> Problem {
    Problem::Line { path: path.to_path_buf(), line: n + 1, text: line.to_owned(), reason }
}

/// `first,last,asn,organisation`; the organisation may be quoted, `""` inside for a quote.
fn parse_line(line: &str) -> Result<(IpAddr, IpAddr, u32, String), &'static str> {
    let mut fields = line.splitn(4, ',');
    let mut next = || fields.next().map(str::trim).ok_or("expected first,last,asn,organisation");
    let first: IpAddr = next()?.parse().map_err(|_| "the first address is not an IP address")?;
    let last: IpAddr = next()?.parse().map_err(|_| "the last address is not an IP address")?;
    let asn: u32 = next()?.parse().map_err(|_| "the autonomous system is not a number")?;
    let name = fields.next().unwrap_or_default().trim();
    let name = match name.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"').ok_or("the organisation's quote is not closed")?.replace("\"\"", "\""),
        None => name.to_owned(),
    };
    let ordered = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a <= b,
        (IpAddr::V6(a), IpAddr::V6(b)) => a <= b,
        _ => true,
    };
    if !ordered {
        return Err("the first address is after the last");
    }
    Ok((first, last, asn, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Asns {
        Asns::parse([(PathBuf::from("asn-ipv4.csv"), text)]).unwrap()
    }

    #[test]
    fn finds_the_system_of_an_address_of_either_family_with_its_organisation() {
        let asns = table(
            "ip_range_start,ip_range_end,autonomous_system_number,autonomous_system_organization\n\
             73.0.0.0,73.255.255.255,7922,\"Comcast Cable Communications, LLC\"\n\
             # a comment\n\
             \n\
             1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
             2a02:2e0::,2a02:2e0:ffff:ffff:ffff:ffff:ffff:ffff,3320,Deutsche Telekom AG\n\
             5.5.5.0,5.5.5.255,64500,\"Quoted \"\"name\"\"\"\n",
        );
        let find = |ip: &str| asns.find(ip.parse().unwrap());
        assert_eq!(find("73.12.34.56"), Some(7922));
        assert_eq!(find("1.0.0.0"), Some(13335), "first address included");
        assert_eq!(find("1.0.0.255"), Some(13335), "last address included");
        assert_eq!(find("1.0.1.0"), None, "between ranges");
        assert_eq!(find("0.255.255.255"), None, "before every range");
        assert_eq!(find("2a02:2e0:1::5"), Some(3320));
        assert_eq!(asns.name(7922), Some("Comcast Cable Communications, LLC"));
        assert_eq!(asns.name(64500), Some("Quoted \"name\""));
        assert_eq!(asns.name(3320), Some("Deutsche Telekom AG"));
        assert_eq!(asns.len(), 4);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_file_and_number() {
        let err = Asns::parse([(
            PathBuf::from("asn-ipv4.csv"),
            "1.0.0.0,1.0.0.255,13335,ok\n\
             1.0.0.x,1.0.0.255,1,bad first\n\
             1.0.0.0,1.0.0.255,AS1,bad asn\n\
             1.0.0.9,1.0.0.1,1,reversed\n\
             1.0.0.0,::1,1,families\n\
             1.0.0.0,1.0.0.255,1,\"unclosed\n\
             1.0.0.0\n",
        )])
        .unwrap_err();
        let lines: Vec<usize> = err
            .problems
            .iter()
            .map(|p| match p {
                Problem::Line { line, .. } => *line,
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7]);
        assert!(
            err.to_string().starts_with("asn-ipv4.csv:2: \"1.0.0.x,1.0.0.255,1,bad first\": the first address"),
            "{err}"
        );
    }

    /// Real rows of ip-location-db's tables (`tests/data/asn`, CC BY 4.0).
    #[test]
    fn reads_the_published_tables() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/asn");
        let asns = Asns::load(&dir).unwrap();
        assert_eq!(asns.len(), 1_180 + 81);
        let find = |ip: &str| asns.find(ip.parse().unwrap());
        assert_eq!(find("73.12.34.56"), Some(7922));
        assert_eq!(asns.name(7922), Some("Comcast Cable Communications, LLC"));
        assert_eq!(find("2.164.77.12"), Some(3320));
        assert_eq!(find("2003:e5:1234::1"), Some(3320));
        assert_eq!(asns.name(3320), Some("Deutsche Telekom AG"));
        assert_eq!(find("74.0.0.1"), None, "not in the excerpt");
    }

    #[test]
    fn a_directory_without_either_file_is_an_error_and_one_file_is_enough() {
        let dir = tempfile::tempdir().unwrap();
        let err = Asns::load(dir.path()).unwrap_err();
        assert!(matches!(err.problems[..], [Problem::NoAsnFiles { .. }]), "{err}");
        std::fs::write(dir.path().join("asn-ipv6.csv"), "2001:db8::,2001:db8::ffff,64501,Example\n").unwrap();
        let asns = Asns::load(dir.path()).unwrap();
        assert_eq!(asns.find("2001:db8::10".parse().unwrap()), Some(64501));
    }
}
