//! Where a call comes from: a source address classified by the providers' published ranges.
//!
//! A key used from a cloud it never used, from a VPN exit, or from a residential address is
//! the signal; a runner on a new address of the same CI service is not. [`Ranges`] maps a
//! source, as an event carries it, to a [`Place`]: a [`Category`] and, when a published
//! range matched, the provider. The ranges are the dated copy in `data/ipranges`
//! (lord-alfred/ipranges, CC0), compiled in ([`Ranges::builtin`]); an operator can load a
//! fresher directory of the same layout ([`Ranges::load`]). Nothing is fetched at run time.
//!
//! # Categories of the shipped providers
//!
//! | folder | category | why |
//! |---|---|---|
//! | `amazon`, `google`, `microsoft`, `oracle` | cloud | general-purpose clouds; `google` also holds Google's own services |
//! | `github` | ci | GitHub's services and the GitHub-hosted Actions runners (Azure space GitHub publishes) |
//! | `cloudflare` | cdn | edge proxies and Workers: a call from there is fronted or serverless code |
//! | `digitalocean`, `linode`, `vultr` | hosting | rented VPSs: where a stolen key is often tried from |
//! | `protonvpn`, `apple-proxy` | anonymizer | VPN exits, iCloud Private Relay egress: the caller is hidden |
//! | `facebook`, `openai`, `perplexity`, `telegram` | other | one company's own network or bots, not rentable compute |
//! | any other folder name | other | a list an operator added |
//!
//! `facebook` is Meta's own autonomous systems (crawlers, webhooks, WhatsApp), not a CDN
//! customers put in front of their services, so it is `other`, not `cdn`. Upstream's `all`
//! folder (the union of the others) is ignored by [`Ranges::load`].
//!
//! Without a published range: `private` (RFC 1918, CGNAT 100.64/10, loopback, link-local,
//! IPv6 ULA fc00::/7, ::1, fe80::/10, GCP's `gce-internal-ip`), `service` (a cloud service
//! calling on the principal's behalf: CloudTrail's `ec2.amazonaws.com` or `AWS Internal`,
//! GCP's `private`, any hostname), and `public` (every other address, the documentation
//! ranges 192.0.2/24 etc. included: simulators and fixtures use them for the internet).
//!
//! # Overlaps
//!
//! Lists overlap: GitHub's Actions ranges and OpenAI's egress lie inside Azure's, Perplexity's
//! bots inside AWS's, and GitHub's and OpenAI's lists nest inside each other both ways. For an
//! address covered by several ranges:
//!
//! 1. Ranges of rentable compute (`cloud`, `hosting`) are landlords: any other list covering
//!    the address wins over them, whatever the sizes. A GitHub Actions runner is `ci (github)`
//!    even where GitHub publishes a block larger than Microsoft's.
//! 2. Otherwise the smallest range wins (OpenAI's /28 inside GitHub's /14 is `openai`).
//! 3. A tie (the same range in two lists) goes to the first category of anonymizer, ci, cdn,
//!    other, hosting, cloud; then to the provider name in alphabetical order. Never to load
//!    order: two directories with the same lists classify alike.
//!
//! Private addresses are private whatever a list says, and list lines inside special-purpose
//! space (documentation, benchmarking, multicast; Vultr's geofeed lists the documentation
//! ranges) are skipped.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_64;

use super::asn::{self, Asns};

/// What kind of network an address belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Private,
    Service,
    Cloud,
    Ci,
    Cdn,
    Hosting,
    Anonymizer,
    Other,
    Public,
}

/// The shipped providers' categories; [`Ranges::load`] uses the same table for folder names.
const PROVIDERS: &[(&str, Category)] = &[
    ("amazon", Category::Cloud),
    ("apple-proxy", Category::Anonymizer),
    ("cloudflare", Category::Cdn),
    ("digitalocean", Category::Hosting),
    ("facebook", Category::Other),
    ("github", Category::Ci),
    ("google", Category::Cloud),
    ("linode", Category::Hosting),
    ("microsoft", Category::Cloud),
    ("openai", Category::Other),
    ("oracle", Category::Cloud),
    ("perplexity", Category::Other),
    ("protonvpn", Category::Anonymizer),
    ("telegram", Category::Other),
    ("vultr", Category::Hosting),
];

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Private => "private",
            Category::Service => "service",
            Category::Cloud => "cloud",
            Category::Ci => "ci",
            Category::Cdn => "cdn",
            Category::Hosting => "hosting",
            Category::Anonymizer => "anonymizer",
            Category::Other => "other",
            Category::Public => "public",
        }
    }

    /// The category of a provider's folder name; a name not shipped is [`Category::Other`].
    pub fn of_provider(name: &str) -> Category {
        PROVIDERS.iter().find(|(n, _)| *n == name).map_or(Category::Other, |&(_, c)| c)
    }

    /// Landlords lose to any other list covering the same address (rule 1 of the module doc).
    fn is_landlord(self) -> bool {
        matches!(self, Category::Cloud | Category::Hosting)
    }

    /// Tie-break between two lists holding the same range: higher wins (rule 3).
    fn priority(self) -> u8 {
        match self {
            Category::Anonymizer => 6,
            Category::Ci => 5,
            Category::Cdn => 4,
            Category::Other => 3,
            Category::Hosting => 2,
            Category::Cloud => 1,
            Category::Private | Category::Service | Category::Public => 0,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one source is: its category and, when a published range matched, which provider.
/// The provider is an index into the [`Ranges`] that made the place: use it with that one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Place {
    pub category: Category,
    provider: u8,
    /// The autonomous system of a public address (0: unknown): from the loaded table
    /// ([`super::asn`]) or the event itself ([`Place::in_system`]).
    asn: u32,
}

/// `Place::provider` when no range matched; so at most 255 providers.
const NO_PROVIDER: u8 = u8::MAX;

impl Place {
    const fn of(category: Category) -> Place {
        Place { category, provider: NO_PROVIDER, asn: 0 }
    }

    /// A public address placed by the autonomous system its event names (Okta states it),
    /// which wins over the loaded table's; other places are unchanged.
    pub fn in_system(self, asn: Option<u32>) -> Place {
        match asn {
            Some(asn) if self.category == Category::Public => Place { asn, ..self },
            _ => self,
        }
    }

    /// A stable 32-bit key for this place's class (category and provider name, or a public
    /// address's autonomous system), for the per-identity fingerprint sets. A hash of
    /// "cloud:amazon", an AS number or "public", never the provider's index: the same class
    /// has the same key whatever directory was loaded.
    pub fn key(&self, ranges: &Ranges) -> u32 {
        match ranges.providers.get(usize::from(self.provider)) {
            Some(p) => p.key,
            None if self.asn != 0 => xxh3_64(&u64::from(self.asn).to_be_bytes()) as u32,
            None => xxh3_64(self.category.as_str().as_bytes()) as u32,
        }
    }
}

/// A place as an alert shows it: "cloud (amazon)", "public (AS7922 Comcast Cable
/// Communications, LLC)", "public". From [`Ranges::describe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Described<'a> {
    pub category: Category,
    pub provider: Option<&'a str>,
    /// A public address's autonomous system and, when the loaded table names it, its
    /// organisation.
    pub system: Option<(u32, Option<&'a str>)>,
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.provider, self.system) {
            (Some(p), _) => write!(f, "{} ({p})", self.category),
            (None, Some((asn, Some(name)))) => write!(f, "{} (AS{asn} {name})", self.category),
            (None, Some((asn, None))) => write!(f, "{} (AS{asn})", self.category),
            (None, None) => f.write_str(self.category.as_str()),
        }
    }
}

struct Provider {
    name: Box<str>,
    category: Category,
    /// [`Place::key`] of this provider's places, computed once.
    key: u32,
}

/// Sorted inclusive intervals of addresses, each with a value (a provider's index here, an
/// autonomous system in [`super::asn`]); separate vectors so the binary search touches only
/// the starts. Where intervals overlap, the one starting last answers.
pub(super) struct Table<T, V> {
    starts: Vec<T>,
    ends: Vec<T>,
    values: Vec<V>,
}

impl<T: Copy + Ord, V: Copy> Table<T, V> {
    /// From `(first, last, value)` rows in any order.
    pub(super) fn from_rows(mut rows: Vec<(T, T, V)>) -> Self {
        rows.sort_unstable_by_key(|r| r.0);
        Table {
            starts: rows.iter().map(|r| r.0).collect(),
            ends: rows.iter().map(|r| r.1).collect(),
            values: rows.iter().map(|r| r.2).collect(),
        }
    }

    pub(super) fn find(&self, ip: T) -> Option<V> {
        let i = self.starts.partition_point(|&s| s <= ip).checked_sub(1)?;
        (ip <= self.ends[i]).then_some(self.values[i])
    }

    pub(super) fn len(&self) -> usize {
        self.starts.len()
    }
}

/// Published ranges of a set of providers, ready for [`Ranges::classify`].
pub struct Ranges {
    v4: Table<u32, u8>,
    v6: Table<u128, u8>,
    /// Sorted by name, so indexes do not depend on load order either.
    providers: Vec<Provider>,
    /// Public addresses' autonomous systems, when a table was loaded ([`Ranges::with_asns`]).
    asns: Option<Asns>,
    /// Distinct for every `Ranges` made in the process: what memos of its places are kept
    /// under ([`Ranges::id`]), so that another set of ranges never answers from them.
    id: u64,
}

impl fmt::Debug for Ranges {
    /// A summary: the tables are tens of thousands of intervals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ranges")
            .field("providers", &self.providers.iter().map(|p| &*p.name).collect::<Vec<_>>())
            .field("v4_intervals", &self.v4.len())
            .field("v6_intervals", &self.v6.len())
            .field("asns", &self.asns)
            .finish()
    }
}

/// One problem found loading a ranges directory.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {text:?}: {reason}", path.display())]
    Line { path: PathBuf, line: usize, text: String, reason: &'static str },
    #[error("{}: has {found} but no {expected}: rename or merge it (see data/ipranges/README.md)", dir.display())]
    Unmerged { dir: PathBuf, found: &'static str, expected: &'static str },
    #[error("{}: folder name is not UTF-8", dir.display())]
    NotUtf8 { dir: PathBuf },
    #[error("{}: no provider folder with ipv4_merged.txt or ipv6_merged.txt", dir.display())]
    NoProviders { dir: PathBuf },
    #[error("{}: {count} providers, at most {max}", dir.display(), max = NO_PROVIDER)]
    TooManyProviders { dir: PathBuf, count: usize },
    #[error("{}: neither {} nor {} (see data/ipranges/README.md)", dir.display(), asn::FILES[0], asn::FILES[1])]
    NoAsnFiles { dir: PathBuf },
}

/// Every problem with a ranges directory, so that one run shows them all: one a line.
#[derive(Debug, thiserror::Error)]
pub struct RangesError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for RangesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// One provider's lists as text, and the path each is reported under.
struct List<'a> {
    name: &'a str,
    files: [(PathBuf, &'a str); 2],
}

/// The shipped lists: `include_str!` so the binary carries its dated copy. Not every provider
/// publishes IPv6 (no file, so "" here).
macro_rules! shipped {
    ($name:literal) => {
        ($name, include_str!(concat!("../../../../data/ipranges/", $name, "/ipv4_merged.txt")), "")
    };
    ($name:literal, v6) => {
        (
            $name,
            include_str!(concat!("../../../../data/ipranges/", $name, "/ipv4_merged.txt")),
            include_str!(concat!("../../../../data/ipranges/", $name, "/ipv6_merged.txt")),
        )
    };
}

const BUILTIN: &[(&str, &str, &str)] = &[
    shipped!("amazon", v6),
    shipped!("apple-proxy", v6),
    shipped!("cloudflare", v6),
    shipped!("digitalocean", v6),
    shipped!("facebook", v6),
    shipped!("github", v6),
    shipped!("google", v6),
    shipped!("linode", v6),
    shipped!("microsoft", v6),
    shipped!("openai"),
    shipped!("oracle"),
    shipped!("perplexity"),
    shipped!("protonvpn"),
    shipped!("telegram", v6),
    shipped!("vultr", v6),
];

const V4_FILE: &str = "ipv4_merged.txt";
const V6_FILE: &str = "ipv6_merged.txt";

impl Ranges {
    /// The dated copy shipped in `data/ipranges`, compiled in and parsed on first use
    /// (about 20 ms), then shared.
    pub fn builtin() -> &'static Ranges {
        static BUILTIN_RANGES: OnceLock<Ranges> = OnceLock::new();
        BUILTIN_RANGES.get_or_init(Ranges::shipped)
    }

    /// A copy of the shipped ranges of its own, to add a table of autonomous systems to.
    pub fn shipped() -> Ranges {
        let lists = BUILTIN.iter().map(|&(name, v4, v6)| List {
            name,
            files: [
                (Path::new("data/ipranges").join(name).join(V4_FILE), v4),
                (Path::new("data/ipranges").join(name).join(V6_FILE), v6),
            ],
        });
        // The shipped files are checked by this module's tests: failing here is a bug.
        Ranges::parse(lists).unwrap_or_else(|e| panic!("the shipped IP ranges do not parse:\n{e}"))
    }

    /// These ranges with public addresses placed by their autonomous system
    /// ([`super::asn`]).
    pub fn with_asns(self, asns: Asns) -> Ranges {
        // Places change: memos of the ranges without the table must not answer.
        Ranges { asns: Some(asns), id: next_id(), ..self }
    }

    /// The category of the provider whose places have `key` ([`Place::key`]), if any.
    pub fn category_of_key(&self, key: u32) -> Option<Category> {
        self.providers.iter().find(|p| p.key == key).map(|p| p.category)
    }

    /// How many providers' lists were loaded.
    pub fn provider_count(&self) -> usize {
        self.providers.len()
    }

    /// The autonomous systems' table, if one was loaded.
    pub fn asns(&self) -> Option<&Asns> {
        self.asns.as_ref()
    }

    /// Loads a directory of the same layout as `data/ipranges`: a folder per provider with
    /// `ipv4_merged.txt` and/or `ipv6_merged.txt`, one CIDR or bare address a line (blank
    /// lines and `#` comments skipped; unsorted and overlapping lines are fine). A folder's
    /// category comes from its name ([`Category::of_provider`]). Every problem is reported.
    pub fn load(dir: &Path) -> Result<Ranges, RangesError> {
        let fail = |problems| RangesError { problems };
        let entries =
            std::fs::read_dir(dir).map_err(|source| fail(vec![Problem::Read { path: dir.to_path_buf(), source }]))?;
        let mut problems = Vec::new();
        // (name, [(path, text)]) per provider folder; texts owned here, borrowed by `List`.
        let mut folders: Vec<(String, [(PathBuf, String); 2])> = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(source) => {
                    problems.push(Problem::Read { path: dir.to_path_buf(), source });
                    continue;
                }
            };
            let path = entry.path();
            // Follows symlinks: an operator may link providers in from elsewhere.
            if !path.is_dir() {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                problems.push(Problem::NotUtf8 { dir: path });
                continue;
            };
            // Hidden folders (.git) and upstream's union of every list are not providers.
            if name.starts_with('.') || name == "all" {
                continue;
            }
            let mut found = false;
            let mut files: [(PathBuf, String); 2] = Default::default();
            for (slot, (merged, raw)) in files.iter_mut().zip([(V4_FILE, "ipv4.txt"), (V6_FILE, "ipv6.txt")]) {
                let file = path.join(merged);
                match std::fs::read_to_string(&file) {
                    Ok(text) => {
                        found = true;
                        *slot = (file, text);
                    }
                    // A downloader's output not yet merged: say so rather than skip a provider.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if path.join(raw).exists() {
                            problems.push(Problem::Unmerged { dir: path.clone(), found: raw, expected: merged });
                        }
                    }
                    Err(source) => problems.push(Problem::Read { path: file, source }),
                }
            }
            // Folders with no list at all (upstream's utils/) are not providers.
            if found {
                folders.push((name, files));
            }
        }
        if folders.is_empty() && problems.is_empty() {
            problems.push(Problem::NoProviders { dir: dir.to_path_buf() });
        }
        if folders.len() > usize::from(NO_PROVIDER) {
            problems.push(Problem::TooManyProviders { dir: dir.to_path_buf(), count: folders.len() });
        }
        let lists = folders.iter().map(|(name, [(p4, t4), (p6, t6)])| List {
            name,
            files: [(p4.clone(), t4.as_str()), (p6.clone(), t6.as_str())],
        });
        match Ranges::parse(lists) {
            Ok(ranges) if problems.is_empty() => Ok(ranges),
            Ok(_) => Err(fail(problems)),
            Err(e) => {
                problems.extend(e.problems);
                Err(fail(problems))
            }
        }
    }

    /// Parses every list, then resolves overlaps into one flat table per family.
    fn parse<'a>(lists: impl IntoIterator<Item = List<'a>>) -> Result<Ranges, RangesError> {
        let mut lists: Vec<List<'a>> = lists.into_iter().collect();
        lists.sort_by(|a, b| a.name.cmp(b.name));
        let providers: Vec<Provider> = lists
            .iter()
            .map(|l| {
                let category = Category::of_provider(l.name);
                let key = xxh3_64(format!("{category}:{}", l.name).as_bytes()) as u32;
                Provider { name: l.name.into(), category, key }
            })
            .collect();
        let mut problems = Vec::new();
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (index, list) in lists.iter().enumerate() {
            // Callers keep the count under NO_PROVIDER; saturating keeps a wrong count harmless.
            let provider = u8::try_from(index).unwrap_or(NO_PROVIDER - 1);
            for (path, text) in &list.files {
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    match parse_cidr(line) {
                        Ok(cidr) if is_special(&cidr) => {}
                        Ok(Cidr { v6: false, start, end, len }) => v4.push(Interval { start, end, len, provider }),
                        Ok(Cidr { v6: true, start, end, len }) => v6.push(Interval { start, end, len, provider }),
                        Err(reason) => problems.push(Problem::Line {
                            path: path.clone(),
                            line: n + 1,
                            text: line.to_owned(),
                            reason,
                        }),
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(RangesError { problems });
        }
        let v4 = resolve(v4, &providers);
        let v6 = resolve(v6, &providers);
        Ok(Ranges {
            // IPv4 intervals came from u32 addresses: the conversion cannot fail.
            v4: Table {
                starts: v4.starts.iter().map(|&s| s as u32).collect(),
                ends: v4.ends.iter().map(|&e| e as u32).collect(),
                values: v4.values,
            },
            v6,
            providers,
            asns: None,
            id: next_id(),
        })
    }

    /// Distinct for every `Ranges` made in the process (a memo's scope).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Classifies a source as events carry it: an IPv4 or IPv6 address (surrounding
    /// whitespace and IPv4-mapped IPv6 "::ffff:1.2.3.4" accepted), or a service name.
    /// Empty, unspecified (0.0.0.0, ::) or garbage -> `None`. Once per event, so no
    /// allocation: one address parse and one binary search (about 80 ns for IPv4).
    pub fn classify(&self, source: &str) -> Option<Place> {
        let s = source.trim();
        // One parse per source: a colon is IPv6 (names have none), anything else tries IPv4.
        if s.contains(':') {
            let v6 = s.parse::<Ipv6Addr>().ok()?;
            // Dual-stack sockets report IPv4 peers this way: judge them as the IPv4 they are.
            return self.classify_ip(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4));
        }
        match s.parse::<Ipv4Addr>() {
            Ok(v4) => self.classify_ip(IpAddr::V4(v4)),
            Err(_) => classify_name(s),
        }
    }

    fn classify_ip(&self, ip: IpAddr) -> Option<Place> {
        if ip.is_unspecified() {
            return None;
        }
        if is_private(ip) {
            return Some(Place::of(Category::Private));
        }
        let provider = match ip {
            IpAddr::V4(v4) => self.v4.find(u32::from(v4)),
            IpAddr::V6(v6) => self.v6.find(u128::from(v6)),
        };
        Some(match provider {
            Some(p) => Place { category: self.providers[usize::from(p)].category, provider: p, asn: 0 },
            None => {
                Place { asn: self.asns.as_ref().and_then(|a| a.find(ip)).unwrap_or(0), ..Place::of(Category::Public) }
            }
        })
    }

    /// The provider's name ("amazon", "github") when a published range matched.
    pub fn provider(&self, place: Place) -> Option<&str> {
        self.providers.get(usize::from(place.provider)).map(|p| &*p.name)
    }

    /// What an alert shows: "cloud (amazon)", "public", "private". Formats only when shown.
    pub fn describe(&self, place: Place) -> Described<'_> {
        let system = (place.asn != 0).then(|| (place.asn, self.asns.as_ref().and_then(|a| a.name(place.asn))));
        Described { category: place.category, provider: self.provider(place), system }
    }
}

/// Distinct for every `Ranges` made in the process.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sources that are not addresses. CloudTrail writes the calling service ("ec2.amazonaws.com",
/// "AWS Internal") when a service acts on a principal's behalf; GCP writes "private" for
/// Google-internal calls and "gce-internal-ip" for a VM without an external address.
fn classify_name(s: &str) -> Option<Place> {
    let category = if s.eq_ignore_ascii_case("AWS Internal") || s.eq_ignore_ascii_case("private") {
        Category::Service
    } else if s.eq_ignore_ascii_case("gce-internal-ip") || s.eq_ignore_ascii_case("localhost") {
        Category::Private
    } else if is_hostname(s) {
        Category::Service
    } else {
        return None;
    };
    Some(Place::of(category))
}

/// A dotted DNS name ("lambda.amazonaws.com", a trailing dot allowed): at least two labels of
/// letters, digits and inner hyphens, the last not all digits (so "1.2.3.999" is garbage).
fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(label_ok)
        && s.rsplit('.').next().is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()))
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()          // 10/8, 172.16/12, 192.168/16
                || v4.is_loopback()  // 127/8
                || v4.is_link_local() // 169.254/16
                || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64/10
        }
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

/// One parsed line, both families as u128 (IPv4 in the low 32 bits).
struct Cidr {
    v6: bool,
    start: u128,
    end: u128,
    len: u8,
}

/// "1.2.3.0/24", "2a01:578::/32" or a bare address (a /32 or /128: ProtonVPN's raw list).
/// Host bits set ("1.2.3.4/24") are cleared, as upstream's merge does.
fn parse_cidr(line: &str) -> Result<Cidr, &'static str> {
    let (addr, len) = match line.split_once('/') {
        Some((addr, len)) => (addr, Some(len.parse::<u8>().map_err(|_| "prefix length is not a number")?)),
        None => (line, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| "not an IP address or CIDR")?;
    let (v6, bits, value) = match ip {
        IpAddr::V4(v4) => (false, 32, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, 128, u128::from(v6)),
    };
    let len = len.unwrap_or(bits);
    if len > bits {
        return Err(if v6 { "prefix length above 128" } else { "prefix length above 32" });
    }
    let (start, end) = span(value, len, bits);
    Ok(Cidr { v6, start, end, len })
}

/// First and last address of the /`len` holding `value`, in a `bits`-wide family.
fn span(value: u128, len: u8, bits: u8) -> (u128, u128) {
    // Host bits; a /0 is every address of the family.
    let host = if len == 0 { u128::MAX >> (128 - u32::from(bits)) } else { (1u128 << (bits - len)) - 1 };
    (value & !host, (value & !host) | host)
}

/// Special-purpose blocks (IANA's registries) that no provider can own. A list naming one
/// is a publishing slip (Vultr's geofeed lists the documentation ranges), so lines inside
/// them are skipped and those addresses stay `public` or `private`.
const SPECIAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // CGNAT
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 3),     // multicast, reserved, broadcast
];
const SPECIAL_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96), // unspecified, loopback, IPv4-compatible
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    (Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0), 48), // benchmarking
    (Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0), 28), // ORCHID
    (Ipv6Addr::new(0x2001, 0x20, 0, 0, 0, 0, 0, 0), 28), // ORCHIDv2
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

/// Whether a parsed line lies inside a special-purpose block.
fn is_special(c: &Cidr) -> bool {
    let inside = |(start, end): (u128, u128)| start <= c.start && c.end <= end;
    if c.v6 {
        SPECIAL_V6.iter().any(|&(a, len)| inside(span(u128::from(a), len, 128)))
    } else {
        SPECIAL_V4.iter().any(|&(a, len)| inside(span(u128::from(u32::from(a)), len, 32)))
    }
}

/// One published range before overlaps are resolved.
struct Interval {
    start: u128,
    end: u128,
    len: u8,
    provider: u8,
}

/// Flattens possibly overlapping intervals into disjoint ones, each address owned by the
/// winner of the module doc's rules, adjacent runs of one provider merged.
///
/// A sweep over the interval boundaries with the covering intervals in a set ordered by
/// rank: the set's maximum owns the stretch up to the next boundary. O(n log n).
fn resolve(intervals: Vec<Interval>, providers: &[Provider]) -> Table<u128, u8> {
    // Rank: not a landlord, longer prefix, category priority, earlier name; the index
    // makes duplicates distinct.
    let rank = |i: usize| {
        let iv = &intervals[i];
        let c = providers[usize::from(iv.provider)].category;
        (!c.is_landlord(), iv.len, c.priority(), Reverse(iv.provider), i)
    };
    // (point, is_start, interval): an interval ends at end + 1, absent when end is the last
    // address (then it runs to the end of the space).
    let mut events: Vec<(u128, bool, usize)> = Vec::with_capacity(intervals.len() * 2);
    for (i, iv) in intervals.iter().enumerate() {
        events.push((iv.start, true, i));
        if let Some(after) = iv.end.checked_add(1) {
            events.push((after, false, i));
        }
    }
    events.sort_unstable();
    let mut table: Table<u128, u8> = Table { starts: Vec::new(), ends: Vec::new(), values: Vec::new() };
    let mut active = BTreeSet::new();
    let mut e = 0;
    while e < events.len() {
        let point = events[e].0;
        while e < events.len() && events[e].0 == point {
            let (_, is_start, i) = events[e];
            if is_start {
                active.insert(rank(i));
            } else {
                active.remove(&rank(i));
            }
            e += 1;
        }
        let Some(&(.., i)) = active.last() else { continue };
        // The stretch ends before the next boundary; with none left, it is the last
        // interval's own end (only one that reaches the end of the space has no end event).
        let end = events.get(e).map_or(intervals[i].end, |&(next, ..)| next - 1);
        let provider = intervals[i].provider;
        match (table.ends.last_mut(), table.values.last()) {
            (Some(last_end), Some(&last)) if last == provider && last_end.checked_add(1) == Some(point) => {
                *last_end = end;
            }
            _ => {
                table.starts.push(point);
                table.ends.push(end);
                table.values.push(provider);
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> &'static Ranges {
        Ranges::builtin()
    }

    /// Category and provider of a source under the shipped ranges.
    fn place(source: &str) -> Option<(Category, Option<&'static str>)> {
        let r = builtin();
        r.classify(source).map(|p| (p.category, r.provider(p)))
    }

    #[test]
    fn shipped_providers_classify() {
        let cases: &[(&str, Category, &str)] = &[
            // amazon: 3.32.0.0/16
            ("3.32.17.4", Category::Cloud, "amazon"),
            // amazon IPv6: 2a01:578:0:7a00::/56
            ("2a01:578:0:7a00::1", Category::Cloud, "amazon"),
            // github.com itself: 140.82.112.0/20
            ("140.82.112.3", Category::Ci, "github"),
            // an Actions range, 4.148.0.0/14, inside Microsoft's 4.128.0.0/9
            ("4.148.10.20", Category::Ci, "github"),
            // the same /16 in both lists: 9.163.0.0/16
            ("9.163.1.1", Category::Ci, "github"),
            // Microsoft's 4.128.0.0/9 outside every GitHub range
            ("4.128.0.1", Category::Cloud, "microsoft"),
            // GitHub IPv6: 2a0a:a440::/29
            ("2a0a:a440::1", Category::Ci, "github"),
            // cloudflare: 104.16.0.0/13, and 2a06:98c0::/29
            ("104.16.1.1", Category::Cdn, "cloudflare"),
            ("2a06:98c0::1", Category::Cdn, "cloudflare"),
            // protonvpn: 2.58.241.66/32
            ("2.58.241.66", Category::Anonymizer, "protonvpn"),
            // iCloud Private Relay: 104.28.28.0/26
            ("104.28.28.1", Category::Anonymizer, "apple-proxy"),
            // digitalocean: 5.101.96.0/21; vultr 45.32.0.0/16; linode 23.92.16.0/20
            ("5.101.97.1", Category::Hosting, "digitalocean"),
            ("45.32.1.1", Category::Hosting, "vultr"),
            ("23.92.17.1", Category::Hosting, "linode"),
            // google 8.8.8.0/24; oracle 40.233.0.0/19
            ("8.8.8.8", Category::Cloud, "google"),
            ("40.233.1.1", Category::Cloud, "oracle"),
            // facebook 31.13.64.0/18; telegram 91.108.4.0/22
            ("31.13.64.1", Category::Other, "facebook"),
            ("91.108.4.1", Category::Other, "telegram"),
            // perplexity's 3.211.124.183/32 inside AWS's 3.208.0.0/12
            ("3.211.124.183", Category::Other, "perplexity"),
            ("3.211.124.184", Category::Cloud, "amazon"),
            // OpenAI's 4.151.71.176/28 inside GitHub's 4.148.0.0/14: the smaller wins
            ("4.151.71.177", Category::Other, "openai"),
            // GitHub's 9.129.16.0/22 inside OpenAI's 9.129.0.0/17: the smaller wins
            ("9.129.16.1", Category::Ci, "github"),
            ("9.129.64.1", Category::Other, "openai"),
            // IPv4-mapped IPv6 and surrounding whitespace
            ("::ffff:3.32.17.4", Category::Cloud, "amazon"),
            ("  140.82.112.3\n", Category::Ci, "github"),
        ];
        for &(source, category, provider) in cases {
            assert_eq!(place(source), Some((category, Some(provider))), "{source}");
        }
    }

    #[test]
    fn private_service_public_and_garbage() {
        let cases: &[(&str, Option<Category>)] = &[
            ("10.1.2.3", Some(Category::Private)),
            ("172.16.0.1", Some(Category::Private)),
            ("192.168.1.1", Some(Category::Private)),
            ("100.64.0.1", Some(Category::Private)),
            ("100.127.255.255", Some(Category::Private)),
            ("100.128.0.1", Some(Category::Public)),
            ("127.0.0.1", Some(Category::Private)),
            ("169.254.169.254", Some(Category::Private)),
            ("fd12:3456::1", Some(Category::Private)),
            ("::1", Some(Category::Private)),
            ("fe80::1", Some(Category::Private)),
            ("::ffff:10.0.0.1", Some(Category::Private)),
            ("gce-internal-ip", Some(Category::Private)),
            ("ec2.amazonaws.com", Some(Category::Service)),
            ("lambda.amazonaws.com", Some(Category::Service)),
            ("cloudformation.amazonaws.com", Some(Category::Service)),
            ("AWS Internal", Some(Category::Service)),
            ("storage.googleapis.com", Some(Category::Service)),
            ("private", Some(Category::Service)),
            // Documentation ranges stand for the internet in fixtures and the simulator (and
            // Vultr's shipped geofeed lists them: skipped as special-purpose space).
            ("198.51.100.24", Some(Category::Public)),
            ("203.0.113.7", Some(Category::Public)),
            ("2001:db8::1", Some(Category::Public)),
            ("81.2.69.142", Some(Category::Public)),
            ("", None),
            ("   ", None),
            ("0.0.0.0", None),
            ("::", None),
            ("not an ip", None),
            ("999.1.1.1", None),
            ("1.2.3", None),
            ("1.2.3.4/24", None),
            ("-bad-.example.com", None),
            ("unknown", None),
        ];
        for &(source, category) in cases {
            assert_eq!(builtin().classify(source).map(|p| p.category), category, "{source:?}");
        }
        assert_eq!(builtin().provider(builtin().classify("10.0.0.1").unwrap()), None);
    }

    #[test]
    fn describe_for_alerts() {
        let r = builtin();
        let shown = |s: &str| r.describe(r.classify(s).unwrap()).to_string();
        assert_eq!(shown("3.32.17.4"), "cloud (amazon)");
        assert_eq!(shown("140.82.112.3"), "ci (github)");
        assert_eq!(shown("81.2.69.142"), "public");
        assert_eq!(shown("10.0.0.1"), "private");
        assert_eq!(shown("ec2.amazonaws.com"), "service");
    }

    #[test]
    fn with_a_table_a_public_address_is_placed_by_its_autonomous_system() {
        let asns = Asns::parse([(
            PathBuf::from("asn-ipv4.csv"),
            "81.2.69.0,81.2.69.255,20712,Andrews & Arnold Ltd\n\
             73.0.0.0,73.255.255.255,7922,\"Comcast Cable Communications, LLC\"\n\
             3.32.0.0,3.32.255.255,16509,\"Amazon.com, Inc.\"\n",
        )])
        .unwrap();
        let r = Ranges::shipped().with_asns(asns);
        assert_ne!(r.id(), builtin().id(), "memos of the ranges without the table do not answer");
        let place = |s: &str| r.classify(s).unwrap();
        let shown = |p: Place| r.describe(p).to_string();
        assert_eq!(shown(place("81.2.69.142")), "public (AS20712 Andrews & Arnold Ltd)");
        assert_eq!(shown(place("73.12.4.5")), "public (AS7922 Comcast Cable Communications, LLC)");
        assert_eq!(shown(place("198.51.100.7")), "public", "in no system the table knows");
        assert_eq!(shown(place("3.32.17.4")), "cloud (amazon)", "a published range wins");
        // Two systems are two places; two addresses of one system, one.
        assert_ne!(place("81.2.69.142").key(&r), place("73.12.4.5").key(&r));
        assert_eq!(place("73.12.4.5").key(&r), place("73.200.0.1").key(&r));
        assert_ne!(place("198.51.100.7").key(&r), place("73.12.4.5").key(&r));
        // The system an event names wins, and keys alike with or without a table.
        let okta = place("81.2.69.142").in_system(Some(7922));
        assert_eq!(okta.key(&r), place("73.12.4.5").key(&r));
        assert_eq!(
            okta.key(builtin()),
            builtin().classify("81.2.69.142").unwrap().in_system(Some(7922)).key(builtin())
        );
        assert_eq!(builtin().describe(okta).to_string(), "public (AS7922)");
        assert_eq!(shown(place("3.32.17.4").in_system(Some(7922))), "cloud (amazon)", "only a public address");
    }

    #[test]
    fn builtin_holds_every_shipped_provider() {
        let r = builtin();
        let names: Vec<&str> = r.providers.iter().map(|p| &*p.name).collect();
        let shipped: Vec<&str> = PROVIDERS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, shipped);
        // Sorted and disjoint: what the binary search relies on.
        assert!(r.v4.starts.iter().zip(&r.v4.ends).all(|(s, e)| s <= e));
        assert!(r.v6.starts.iter().zip(&r.v6.ends).all(|(s, e)| s <= e));
        assert!(r.v4.ends.windows(2).zip(r.v4.starts.iter().skip(1)).all(|(w, &next)| w[0] < next));
        assert!(r.v6.ends.windows(2).zip(r.v6.starts.iter().skip(1)).all(|(w, &next)| w[0] < next));
    }

    /// The compiled-in copy is the directory: every folder shipped is compiled in, and
    /// loading `data/ipranges` from disk gives the same tables.
    #[test]
    fn builtin_is_the_shipped_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/ipranges");
        let loaded = Ranges::load(&dir).unwrap();
        let r = builtin();
        let names = |r: &Ranges| r.providers.iter().map(|p| p.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&loaded), names(r));
        assert_eq!((&loaded.v4.starts, &loaded.v4.ends, &loaded.v4.values), (&r.v4.starts, &r.v4.ends, &r.v4.values));
        assert_eq!((&loaded.v6.starts, &loaded.v6.ends, &loaded.v6.values), (&r.v6.starts, &r.v6.ends, &r.v6.values));
    }

    /// Writes `files` (relative path, contents) under a fresh temporary directory.
    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn load_reports_every_bad_line_with_file_and_line() {
        let dir = dir_with(&[
            ("amazon/ipv4_merged.txt", "3.32.0.0/16\n# a comment\n\n3.33.0.0/33\n"),
            ("github/ipv6_merged.txt", "2a0a:a440::/29\nnot-a-cidr\n"),
            ("vultr/ipv4.txt", "45.32.0.0/16\n"),
        ]);
        let err = Ranges::load(dir.path()).unwrap_err();
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let amazon = dir.path().join("amazon/ipv4_merged.txt");
        let github = dir.path().join("github/ipv6_merged.txt");
        assert!(text.contains(&format!("{}:4: \"3.33.0.0/33\": prefix length above 32", amazon.display())), "{text}");
        assert!(text.contains(&format!("{}:2: \"not-a-cidr\": not an IP address or CIDR", github.display())), "{text}");
        assert!(text.contains("vultr: has ipv4.txt but no ipv4_merged.txt"), "{text}");
    }

    #[test]
    fn load_reads_a_directory_and_merges_raw_lists() {
        let dir = dir_with(&[
            // Unsorted, overlapping, a bare address, host bits set: a downloader's raw output.
            ("amazon/ipv4_merged.txt", "3.33.0.0/16\n3.32.0.0/16\n3.32.5.0/24\n3.34.1.7/24\n"),
            ("amazon/ipv6_merged.txt", "2a01:578::/32\n"),
            ("protonvpn/ipv4_merged.txt", "3.32.9.9\n"),
            ("my-vpn-exits/ipv4_merged.txt", "185.220.101.0/24\n"),
            // A publishing slip: special-purpose space is no provider's.
            ("vultr/ipv4_merged.txt", "203.0.113.0/24\n10.0.0.0/8\n"),
            ("all/ipv4_merged.txt", "0.0.0.0/0\n"),
            ("utils/merge.py", ""),
        ]);
        let r = Ranges::load(dir.path()).unwrap();
        let got = |s: &str| r.classify(s).map(|p| (p.category, r.provider(p)));
        assert_eq!(got("3.33.200.1"), Some((Category::Cloud, Some("amazon"))));
        assert_eq!(got("3.34.1.200"), Some((Category::Cloud, Some("amazon"))));
        assert_eq!(got("3.32.9.9"), Some((Category::Anonymizer, Some("protonvpn"))));
        assert_eq!(got("3.32.9.10"), Some((Category::Cloud, Some("amazon"))));
        assert_eq!(got("2a01:578::1"), Some((Category::Cloud, Some("amazon"))));
        assert_eq!(got("185.220.101.1"), Some((Category::Other, Some("my-vpn-exits"))));
        assert_eq!(got("203.0.113.7"), Some((Category::Public, None)));
        assert_eq!(got("10.0.0.1"), Some((Category::Private, None)));
        // `all` is ignored, so this is in no range.
        assert_eq!(got("81.2.69.142"), Some((Category::Public, None)));
        // Amazon's 3.32/16 and 3.33/16 merged, protonvpn's /32 splitting them in three; then
        // amazon's 3.34.1/24 and my-vpn-exits: nothing of vultr's.
        assert_eq!(r.v4.starts.len(), 5, "{r:?}");
    }

    #[test]
    fn load_of_nothing_is_an_error() {
        let empty = tempfile::tempdir().unwrap();
        let err = Ranges::load(empty.path()).unwrap_err();
        assert!(matches!(err.problems[..], [Problem::NoProviders { .. }]), "{err}");
        let missing = empty.path().join("absent");
        assert!(matches!(Ranges::load(&missing).unwrap_err().problems[..], [Problem::Read { .. }]));
    }

    #[test]
    fn overlap_rules() {
        let list =
            |name: &'static str, v4: &'static str| List { name, files: [(PathBuf::new(), v4), (PathBuf::new(), "")] };
        let r = Ranges::parse([
            list("microsoft", "20.0.0.0/8\n30.0.0.0/16\n"),
            // A tenant larger than the landlord's block still wins (rule 1).
            list("github", "20.1.0.0/16\n30.0.0.0/8\n"),
            // Between tenants the smaller wins (rule 2), either way round.
            list("openai", "20.1.2.0/24\n30.0.0.0/12\n"),
            // The same range in two lists: anonymizer before cdn (rule 3).
            list("cloudflare", "40.0.0.0/24\n"),
            list("protonvpn", "40.0.0.0/24\n"),
            // Same category, same range: the name first alphabetically.
            list("zz-other", "50.0.0.0/24\n"),
            list("aa-other", "50.0.0.0/24\n"),
        ])
        .unwrap();
        let got = |s: &str| r.provider(r.classify(s).unwrap());
        assert_eq!(got("20.9.0.1"), Some("microsoft"));
        assert_eq!(got("20.1.0.1"), Some("github"));
        assert_eq!(got("20.1.2.1"), Some("openai"));
        assert_eq!(got("30.0.0.1"), Some("openai"));
        assert_eq!(got("30.32.0.1"), Some("github"));
        assert_eq!(got("40.0.0.1"), Some("protonvpn"));
        assert_eq!(got("50.0.0.1"), Some("aa-other"));
        assert_eq!(got("60.0.0.1"), None);
    }

    #[test]
    fn whole_space_ranges_do_not_overflow() {
        let r = Ranges::parse([List {
            name: "everything",
            files: [(PathBuf::new(), "0.0.0.0/0\n255.255.255.255\n"), (PathBuf::new(), "::/0\n")],
        }])
        .unwrap();
        assert_eq!(r.classify("255.255.255.255").map(|p| p.category), Some(Category::Other));
        assert_eq!(r.classify("1.1.1.1").map(|p| p.category), Some(Category::Other));
        assert_eq!(r.classify("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").map(|p| p.category), Some(Category::Other));
        assert_eq!(r.v4.starts.len(), 1);
        assert_eq!(r.v6.starts.len(), 1);
    }

    #[test]
    fn keys_do_not_depend_on_load_order_or_provider_set() {
        let a =
            dir_with(&[("amazon/ipv4_merged.txt", "3.32.0.0/16\n"), ("github/ipv4_merged.txt", "140.82.112.0/20\n")]);
        let b = dir_with(&[
            ("aaa-extra/ipv4_merged.txt", "185.220.101.0/24\n"),
            ("github/ipv4_merged.txt", "140.82.112.0/20\n"),
            ("amazon/ipv4_merged.txt", "3.32.0.0/16\n"),
        ]);
        let (ra, rb) = (Ranges::load(a.path()).unwrap(), Ranges::load(b.path()).unwrap());
        for source in ["140.82.112.3", "3.32.1.1", "81.2.69.142", "10.0.0.1", "ec2.amazonaws.com"] {
            let (pa, pb) = (ra.classify(source).unwrap(), rb.classify(source).unwrap());
            assert_eq!(pa.key(&ra), pb.key(&rb), "{source}");
            assert_eq!(pa.key(&ra), builtin().classify(source).unwrap().key(builtin()), "{source}");
        }
        // Indexes do differ between the two (github is 1 in `a`, 2 in `b`): keys are names.
        assert_ne!(ra.classify("140.82.112.3").unwrap().provider, rb.classify("140.82.112.3").unwrap().provider);
        // Reversed input order, same tables.
        let list =
            |name: &'static str, v4: &'static str| List { name, files: [(PathBuf::new(), v4), (PathBuf::new(), "")] };
        let fwd = Ranges::parse([list("amazon", "3.0.0.0/8\n"), list("vultr", "3.0.0.0/8\n")]).unwrap();
        let rev = Ranges::parse([list("vultr", "3.0.0.0/8\n"), list("amazon", "3.0.0.0/8\n")]).unwrap();
        let (pf, pr) = (fwd.classify("3.1.1.1").unwrap(), rev.classify("3.1.1.1").unwrap());
        assert_eq!((fwd.provider(pf), pf.key(&fwd)), (rev.provider(pr), pr.key(&rev)));
        // Distinct classes, distinct keys.
        let r = builtin();
        let keys: BTreeSet<u32> =
            ["3.32.1.1", "140.82.112.3", "104.16.1.1", "81.2.69.142", "10.0.0.1", "ec2.amazonaws.com"]
                .iter()
                .map(|s| r.classify(s).unwrap().key(r))
                .collect();
        assert_eq!(keys.len(), 6);
    }

    /// The per-event path: a million sources written into one stack buffer and classified,
    /// nothing allocated by this loop or by `classify` (which takes `&str` and returns a
    /// `Copy` value; its internals are searches over slices). No timing assertion.
    #[test]
    fn classify_a_million_without_allocating() {
        use std::io::Write;
        let r = builtin();
        let mut buf = [0u8; 64];
        let mut counts = [0u32; 9];
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..1_000_000 {
            // xorshift: spread over the whole IPv4 space.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut w = &mut buf[..];
            write!(w, "{}", Ipv4Addr::from(x)).unwrap();
            let len = 64 - w.len();
            let s = std::str::from_utf8(&buf[..len]).unwrap();
            if let Some(p) = r.classify(s) {
                counts[p.category as usize] += 1;
            }
        }
        assert!(counts[Category::Public as usize] > 500_000, "{counts:?}");
        assert!(counts[Category::Cloud as usize] > 0, "{counts:?}");
    }
}
