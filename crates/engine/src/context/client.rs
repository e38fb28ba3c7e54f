//! User agents as clients: the product that made the call and its major version.
//!
//! Current SDKs and CLIs put the service, the command, the OS, the language runtime and
//! the features in their user agent (`aws-cli/2.17.0 ... md/command#s3.cp`,
//! `aws-sdk-go-v2/1.30.3 ... api/s3#1.58.2`, `gcloud/456.0.0 command/gcloud.compute...`),
//! so the raw string changes with every call and every new service looks like a never-seen
//! client. [`client`] keeps what identifies the caller: its family (`aws-cli`, `terraform`,
//! `chrome`) and major version (`2`, `1`, `120`). An identity's history is kept at both
//! levels, so a new command of the same CLI is not novel and a script suddenly calling with
//! `python-requests` is.
//!
//! Rules, in order (names compared ignoring ASCII case):
//! - the input is cut to its first [`SCAN_BYTES`] bytes (on a character boundary), trimmed,
//!   stripped of the console's surrounding brackets (`[...]`) and of the suffixes Google's
//!   front ends append (`,gzip(gfe)`, `(gzip)`); `(none supplied)` is the empty client;
//! - a browser (`Mozilla/...` first) is named by the token that identifies it: bots
//!   (`Googlebot/2.1`), then Edge (`Edg/`, `EdgA/`, `EdgiOS/`, `Edge/`), Opera (`OPR/`,
//!   `OPiOS/`), Samsung Internet, Yandex, Vivaldi, Electron apps, headless Chrome,
//!   Firefox (`Firefox/`, `FxiOS/`), Chrome (`Chrome/`, `CriOS/`), Chromium, Safari (major
//!   from `Version/`), Internet Explorer (`MSIE n`, or `Trident/` with `rv:n`); a
//!   `Mozilla/5.0` that names none of them stays `mozilla/5`;
//! - otherwise a tool that names the SDK under it wins wherever it appears: `Terraform/`
//!   (over `terraform-provider-aws` and `aws-sdk-go`), `gcloud/` and `gsutil/` (over
//!   `google-cloud-sdk` and `apitools`), `RubyGems/` (over `Ruby,`);
//! - AWS Partner Network prefixes (`APN/1.0 Partner/1.0 Product/1.2`) name the product;
//! - known names with spaces (`AWS Internal`, `GitHub CLI 2.40.1`, `Kubernetes Java Client/18`,
//!   `Microsoft Office/16.0`) keep their words;
//! - Azure SDKs (`azsdk-python-storage-blob/12.27.1`) are named by language (`azsdk-python`,
//!   no major: each package has its own version);
//! - anything else keeps its first product token, up to the first `/`, whitespace or
//!   punctuation (`,;()[]`), with a trailing `_<uuid>` removed (`stratus-red-team_<uuid>`,
//!   one per run). A service name as user agent (`lambda.amazonaws.com`) is its own family.
//!
//! The major is the leading number of the version, a leading `v` stripped (`v1.28.2` -> `1`,
//! gcloud's `456.0.0` -> `456`); a version that is not a number (`abc123`, a commit hash
//! like `06ad960`, `${project.version}`) or longer than [`MAX_MAJOR_DIGITS`] digits (a date,
//! a build id) gives none. A first token without `/` followed by a version word
//! (`Chrome 114.0.0 / Mac OS X`) takes its major from that word.
//!
//! Nothing is allocated: the family and major borrow the input (keeping its case) or, for
//! the browser families, are static lowercase names; comparisons go through
//! [`Client::fingerprints`] or [`Client`]'s `Display`, both ASCII-case-insensitive.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use xxhash_rust::xxh3::xxh3_64;

use super::memo::Memo;

/// Bytes of a user agent that are looked at: the product and its version always come
/// first, and the input is attacker-controlled, so the work per event is bounded.
pub const SCAN_BYTES: usize = 512;

/// Digits a major version may have; longer numbers are dates or build ids, not versions.
pub const MAX_MAJOR_DIGITS: usize = 6;

/// A user agent as a client: the product that made the call and its major version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client<'a> {
    /// The product: a slice of the user agent (its case kept) or a static lowercase name
    /// (`chrome`, `edge`, ...). Empty when the user agent is empty or supplied nothing.
    pub family: &'a str,
    /// The leading number of the product's version, without a leading `v`; ASCII digits.
    pub major: Option<&'a str>,
    /// A web browser a person would use (not a bot, an Electron app or headless Chrome).
    pub browser: bool,
}

/// Normalises a raw user agent. Never fails: an unrecognised string keeps its first product token
/// (up to the first '/' or whitespace) as the family; empty -> family "".
pub fn client(user_agent: &str) -> Client<'_> {
    let ua = clean(window(user_agent));
    let (name, version, rest) = head(ua);
    if name.is_empty() {
        return Client::EMPTY;
    }
    if name.eq_ignore_ascii_case("mozilla") {
        return mozilla(name, version, rest);
    }
    if let Some(tool) = tool(ua) {
        return tool;
    }
    if name.eq_ignore_ascii_case("apn")
        && let Some(product) = apn(rest)
    {
        return product;
    }
    if let Some(named) = multi_word(ua) {
        return named;
    }
    if name.len() > AZSDK.len() && name.as_bytes()[..AZSDK.len()].eq_ignore_ascii_case(AZSDK.as_bytes()) {
        let language_end = name[AZSDK.len()..].find('-').map_or(name.len(), |i| AZSDK.len() + i);
        return Client::new(&name[..language_end], None);
    }
    let family = strip_uuid_suffix(name);
    let major = match version {
        Some(version) => major(version),
        // `Chrome 114.0.0 / Mac OS X 10.15.7`: a name, a space, a version.
        None if ua.as_bytes().get(name.len()).is_some_and(u8::is_ascii_whitespace) => {
            rest.split_ascii_whitespace().next().and_then(major)
        }
        None => None,
    };
    Client { family, major, browser: BROWSER_NAMES.iter().any(|b| family.eq_ignore_ascii_case(b)) }
}

/// [`client`] and its [`Client::fingerprints`], memoised per thread by the user agent's
/// first [`SCAN_BYTES`] (all [`client`] reads): the same as computing them, cheaper when
/// the user agent repeats, as an identity's mostly does.
pub fn fingerprinted(user_agent: &str) -> (Client<'_>, (u32, u32)) {
    thread_local! {
        static MEMO: RefCell<Memo<Shape>> = RefCell::new(Memo::new(256, SCAN_BYTES));
    }
    let computed = std::cell::Cell::new(None);
    let shape = MEMO.with_borrow_mut(|memo| {
        memo.get_or_insert_with(0, window(user_agent), || {
            let c = client(user_agent);
            let fingerprints = c.fingerprints();
            computed.set(Some((c, fingerprints)));
            Shape::of(c, user_agent, fingerprints)
        })
    });
    if let Some(found) = computed.get() {
        return found;
    }
    shape.and_then(|s| s.client(user_agent)).unwrap_or_else(|| {
        let c = client(user_agent);
        (c, c.fingerprints())
    })
}

/// A [`Client`] apart from the user agent it came from: its strings as positions in the
/// user agent or as the static names [`client`] gives browsers, so that it can be rebuilt
/// from an equal user agent.
#[derive(Clone, Copy, Debug)]
struct Shape {
    family: Part,
    major: Option<Part>,
    browser: bool,
    fingerprints: (u32, u32),
}

#[derive(Clone, Copy, Debug)]
enum Part {
    /// Start and length in the user agent (at most [`SCAN_BYTES`] are read).
    Span(u16, u16),
    Static(&'static str),
}

impl Part {
    /// `s` as a slice of `user_agent`, else as one of the static names; `None` for anything
    /// else (never from [`client`]: such a client is just not memoised).
    fn of(s: &str, user_agent: &str) -> Option<Part> {
        let start = (s.as_ptr() as usize).wrapping_sub(user_agent.as_ptr() as usize);
        if start <= user_agent.len() && s.len() <= user_agent.len() - start {
            return Some(Part::Span(u16::try_from(start).ok()?, u16::try_from(s.len()).ok()?));
        }
        let names = BROWSER_TOKENS.iter().map(|t| t.1).chain(["msie", "safari", Client::EMPTY.family]);
        names.into_iter().find(|n| *n == s).map(Part::Static)
    }

    fn get(self, user_agent: &str) -> Option<&str> {
        match self {
            Part::Span(start, len) => user_agent.get(usize::from(start)..usize::from(start) + usize::from(len)),
            Part::Static(s) => Some(s),
        }
    }
}

impl Shape {
    fn of(c: Client<'_>, user_agent: &str, fingerprints: (u32, u32)) -> Option<Shape> {
        let major = match c.major {
            Some(m) => Some(Part::of(m, user_agent)?),
            None => None,
        };
        Some(Shape { family: Part::of(c.family, user_agent)?, major, browser: c.browser, fingerprints })
    }

    /// The client of a user agent equal to the one this shape was taken from.
    fn client(self, user_agent: &str) -> Option<(Client<'_>, (u32, u32))> {
        let major = match self.major {
            Some(m) => Some(m.get(user_agent)?),
            None => None,
        };
        Some((Client { family: self.family.get(user_agent)?, major, browser: self.browser }, self.fingerprints))
    }
}

impl<'a> Client<'a> {
    const EMPTY: Client<'static> = Client { family: "", major: None, browser: false };

    const fn new(family: &'a str, major: Option<&'a str>) -> Self {
        Client { family, major, browser: false }
    }

    /// Case-insensitive 32-bit fingerprints of "family/major" and of "family" alone: xxh3 of
    /// the ASCII-lowercased bytes, so the first is `xxh3_64(client.to_string())` truncated.
    /// Without a major both are the family's. Lowercased into a stack buffer: a family longer
    /// than [`SCAN_BYTES`] or a major longer than [`MAX_MAJOR_DIGITS`] (only when built by
    /// hand, never by [`client`]) is truncated there.
    pub fn fingerprints(&self) -> (u32, u32) {
        let mut buf = [0u8; SCAN_BYTES + 1 + MAX_MAJOR_DIGITS];
        let n = lowercase_into(&mut buf[..SCAN_BYTES], self.family);
        let family = xxh3_64(&buf[..n]) as u32;
        let Some(major) = self.major else {
            return (family, family);
        };
        buf[n] = b'/';
        let m = lowercase_into(&mut buf[n + 1..n + 1 + MAX_MAJOR_DIGITS], major);
        (xxh3_64(&buf[..n + 1 + m]) as u32, family)
    }
}

impl fmt::Display for Client<'_> {
    /// `aws-cli/2`, `chrome/120`, `github-hookshot`: the family ASCII-lowercased.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.family;
        while let Some(upper) = rest.find(|c: char| c.is_ascii_uppercase()) {
            f.write_str(&rest[..upper])?;
            f.write_char(char::from(rest.as_bytes()[upper].to_ascii_lowercase()))?;
            rest = &rest[upper + 1..];
        }
        f.write_str(rest)?;
        if let Some(major) = self.major {
            f.write_char('/')?;
            f.write_str(major)?;
        }
        Ok(())
    }
}

/// Copies `s` ASCII-lowercased into `buf`, as much as fits; returns the bytes written.
fn lowercase_into(buf: &mut [u8], s: &str) -> usize {
    let n = s.len().min(buf.len());
    for (to, from) in buf.iter_mut().zip(&s.as_bytes()[..n]) {
        *to = from.to_ascii_lowercase();
    }
    n
}

/// The first [`SCAN_BYTES`] bytes, cut back to a character boundary.
fn window(s: &str) -> &str {
    if s.len() <= SCAN_BYTES {
        return s;
    }
    let mut end = SCAN_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Trimmed, without the suffixes Google's front ends append and the console's brackets.
fn clean(ua: &str) -> &str {
    let mut s = ua.trim();
    loop {
        let before = s.len();
        s = s.strip_suffix(",gzip(gfe)").unwrap_or(s);
        s = s.strip_suffix("(gzip)").unwrap_or(s).trim_end();
        if s.len() == before {
            break;
        }
    }
    if s.eq_ignore_ascii_case("(none supplied)") {
        return "";
    }
    s.trim_start_matches(['[', '(', ' ', '\t', '\n', '\r'])
}

/// Punctuation around tokens: `[S3Console/0.4,`, `(KHTML,`, `Gecko)`, `MSIE 6.0;`.
fn is_punct(b: u8) -> bool {
    matches!(b, b'[' | b']' | b'(' | b')' | b',' | b';')
}

/// Where a product name ends. All delimiters are ASCII, so byte positions found with them
/// are character boundaries.
fn is_delimiter(b: u8) -> bool {
    b == b'/' || b.is_ascii_whitespace() || is_punct(b)
}

/// The first product: its name (up to `/`, whitespace or punctuation), its version (after
/// `/`, up to whitespace or punctuation) and what follows the first whitespace.
fn head(ua: &str) -> (&str, Option<&str>, &str) {
    let name_end = ua.bytes().position(is_delimiter).unwrap_or(ua.len());
    let name = &ua[..name_end];
    let token_end =
        name_end + ua[name_end..].bytes().position(|b| b.is_ascii_whitespace()).unwrap_or(ua.len() - name_end);
    let rest = &ua[token_end..];
    let version = ua[name_end..].strip_prefix('/').map(|v| {
        let end = v.bytes().position(|b| b.is_ascii_whitespace() || is_punct(b)).unwrap_or(v.len());
        &v[..end]
    });
    (name, version, rest)
}

/// Whitespace-separated tokens without surrounding punctuation.
fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split_ascii_whitespace().map(trim_punct).filter(|t| !t.is_empty())
}

fn trim_punct(token: &str) -> &str {
    let b = token.as_bytes();
    let start = b.iter().position(|&c| !is_punct(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| !is_punct(c)).map_or(start, |i| i + 1);
    &token[start..end]
}

/// A token as product name and version: `Chrome/120.0` -> (`Chrome`, `120.0`).
fn product(token: &str) -> (&str, Option<&str>) {
    match token.split_once('/') {
        Some((name, version)) => (name, Some(version)),
        None => (token, None),
    }
}

/// The leading number of a version, a leading `v` stripped; none when the version is not a
/// number (a hash such as `06ad960` starts with digits but continues with letters).
fn major(version: &str) -> Option<&str> {
    let v = version.strip_prefix(['v', 'V']).unwrap_or(version);
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > MAX_MAJOR_DIGITS || v.as_bytes().get(digits).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some(&v[..digits])
}

/// Tools that put the SDK or runtime they run on in their user agent too: the tool is the
/// client, wherever it appears (`APN/1.0 HashiCorp/1.0 Terraform/1.1.2 ... aws-sdk-go/1.44`).
const TOOLS: [&str; 4] = ["terraform", "gcloud", "gsutil", "rubygems"];

fn tool(ua: &str) -> Option<Client<'_>> {
    tokens(ua)
        .map(product)
        .find(|(name, _)| TOOLS.iter().any(|t| name.eq_ignore_ascii_case(t)))
        .map(|(name, version)| Client::new(name, version.and_then(major)))
}

/// `APN/1.0 Partner/1.0 Product/1.2 ...`: the AWS Partner Network's convention; the product
/// (the partner when nothing follows it).
fn apn(rest: &str) -> Option<Client<'_>> {
    let mut it = tokens(rest);
    let partner = it.next()?;
    let (name, version) = product(it.next().unwrap_or(partner));
    (!name.is_empty()).then(|| Client::new(name, version.and_then(major)))
}

/// Client names with spaces in them, which the first-token rule would cut.
const MULTI_WORD: [&str; 4] = ["AWS Internal", "GitHub CLI", "Kubernetes Java Client", "Microsoft Office"];

fn multi_word(ua: &str) -> Option<Client<'_>> {
    let bytes = ua.as_bytes();
    let known = MULTI_WORD.iter().find(|m| {
        bytes.len() >= m.len()
            && bytes[..m.len()].eq_ignore_ascii_case(m.as_bytes())
            && matches!(bytes.get(m.len()), None | Some(b' ' | b'/'))
    })?;
    // An ASCII match: `known.len()` is a character boundary.
    let (family, after) = ua.split_at(known.len());
    let version = match after.strip_prefix('/') {
        Some(v) => Some(v),
        None => after.split_ascii_whitespace().next(),
    };
    Some(Client::new(family, version.and_then(major)))
}

/// Azure SDKs name the package: `azsdk-python-storage-blob/12.27.1`.
const AZSDK: &str = "azsdk-";

/// Families that are browsers when they come first (`Chrome 114.0.0 / Mac OS X`, `Opera/9.80`).
const BROWSER_NAMES: [&str; 6] = ["chrome", "firefox", "safari", "edge", "opera", "msie"];

/// `stratus-red-team_8b255a24-d33d-4750-bd4b-4007124741df` -> `stratus-red-team`.
fn strip_uuid_suffix(name: &str) -> &str {
    let b = name.as_bytes();
    if b.len() <= 37 || b[b.len() - 37] != b'_' {
        return name;
    }
    let uuid = &b[b.len() - 36..];
    let is_uuid = uuid
        .iter()
        .enumerate()
        .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() });
    // An ASCII `_` at `len - 37`: a character boundary.
    if is_uuid { &name[..b.len() - 37] } else { name }
}

/// Browser tokens in precedence order (lower first): what Edge, Opera, Samsung Internet and
/// Electron add to Chrome's user agent, and Chrome and Firefox to Safari's, names them.
const BROWSER_TOKENS: [(&str, &str, u8, bool); 17] = [
    ("Edg", "edge", 1, true),
    ("EdgA", "edge", 1, true),
    ("EdgiOS", "edge", 1, true),
    ("Edge", "edge", 1, true),
    ("OPR", "opera", 2, true),
    ("OPiOS", "opera", 2, true),
    ("SamsungBrowser", "samsungbrowser", 3, true),
    ("YaBrowser", "yabrowser", 3, true),
    ("Vivaldi", "vivaldi", 3, true),
    ("Electron", "electron", 4, false),
    ("HeadlessChrome", "headlesschrome", 5, false),
    ("Firefox", "firefox", 6, true),
    ("FxiOS", "firefox", 6, true),
    ("Chrome", "chrome", 7, true),
    ("CriOS", "chrome", 7, true),
    ("Chromium", "chromium", 7, true),
    ("Safari", "safari", 8, true),
];

/// A `Mozilla/...` user agent: the browser (or bot) its tokens name.
fn mozilla<'a>(name: &'a str, version: Option<&'a str>, rest: &'a str) -> Client<'a> {
    let mut best: Option<(u8, Client<'a>)> = None;
    let mut safari_version = None;
    let mut msie = None;
    let mut trident = false;
    let mut prev = "";
    for token in tokens(rest) {
        let (token_name, token_version) = product(token);
        if prev.eq_ignore_ascii_case("msie") {
            msie = major(token);
        }
        prev = token;
        let Some(token_version) = token_version else {
            continue;
        };
        if token_name.eq_ignore_ascii_case("version") {
            safari_version = major(token_version);
            continue;
        }
        if token_name.eq_ignore_ascii_case("trident") {
            trident = true;
            continue;
        }
        let hit = if token_name.len() > 3 && token_name.as_bytes()[token_name.len() - 3..].eq_ignore_ascii_case(b"bot")
        {
            Some((0, Client::new(token_name, major(token_version))))
        } else {
            BROWSER_TOKENS
                .iter()
                .find(|(t, ..)| token_name.eq_ignore_ascii_case(t))
                .map(|&(_, family, rank, browser)| (rank, Client { family, major: major(token_version), browser }))
        };
        if let Some((rank, found)) = hit
            && best.is_none_or(|(r, _)| rank < r)
        {
            best = Some((rank, found));
        }
    }
    // Internet Explorer 11 names itself only by `Trident/7.0` and `rv:11.0`.
    let rv = || tokens(rest).find_map(|t| t.strip_prefix("rv:")).and_then(major);
    match best {
        Some((_, Client { family: "safari", .. })) => Client { family: "safari", major: safari_version, browser: true },
        Some((_, found)) => found,
        None if msie.is_some() || trident => Client { family: "msie", major: msie.or_else(rv), browser: true },
        None => Client::new(name, version.and_then(major)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use xxhash_rust::xxh3::xxh3_64;

    use super::*;

    #[test]
    fn memoised_clients_are_the_computed_ones() {
        for round in 0..2 {
            for &(ua, ..) in TABLE {
                // A copy at another address: positions, not pointers, are memoised.
                let ua = ua.to_string();
                let (c, fingerprints) = fingerprinted(&ua);
                assert_eq!(c, client(&ua), "{ua} (round {round})");
                assert_eq!(fingerprints, client(&ua).fingerprints());
            }
        }
    }

    /// (user agent, Display, browser)
    const TABLE: &[(&str, &str, bool)] = &[
        // The brief's examples.
        (
            "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/s3#1.58.2",
            "aws-sdk-go-v2/1",
            false,
        ),
        (
            "aws-cli/2.17.0 md/awscrt#0.20.11 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython \
             cfg/retry-mode#standard md/installer#exe md/distrib#amzn.2 md/prompt#off md/command#s3.cp",
            "aws-cli/2",
            false,
        ),
        ("aws-cli/2.15.30 Python/3.11.8 Linux/5.10 exe/x86_64.amzn.2 prompt/off command/s3.cp", "aws-cli/2", false),
        ("aws-sdk-js/3.600.0 ua/2.1 os/linux#5.10 lang/js md/nodejs#20.12 api/dynamodb#3.600.0", "aws-sdk-js/3", false),
        (
            "Boto3/1.34.1 md/Botocore#1.34.1 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.11 md/pyimpl#CPython \
             cfg/retry-mode#legacy Botocore/1.34.1",
            "boto3/1",
            false,
        ),
        (
            "aws-sdk-java/2.25.1 Linux/5.10 OpenJDK_64-Bit_Server_VM/17 Java/17 vendor/Amazon.com_Inc. io/sync \
             http/Apache cfg/retry-mode/legacy",
            "aws-sdk-java/2",
            false,
        ),
        ("[aws-sdk-go-v2/1.30 os/linux lang/go#1.22.5]", "aws-sdk-go-v2/1", false),
        ("[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.1 Linux/5.10]", "s3console/0", false),
        ("console.amazonaws.com", "console.amazonaws.com", false),
        ("AWS Internal", "aws internal", false),
        ("lambda.amazonaws.com", "lambda.amazonaws.com", false),
        (
            "Terraform/1.7.0 (+https://www.terraform.io) terraform-provider-aws/5.31.0 \
             (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go/1.49.8 (go1.21.5; linux; amd64)",
            "terraform/1",
            false,
        ),
        ("kubectl/v1.28.2 (linux/amd64) kubernetes/89a4ea3", "kubectl/1", false),
        (
            "kube-controller-manager/v1.28.2 (linux/amd64) kubernetes/89a4ea3/system:serviceaccount:kube-system:x",
            "kube-controller-manager/1",
            false,
        ),
        (
            "google-cloud-sdk gcloud/456.0.0 command/gcloud.compute.instances.list invocation-id/0123abcd \
             environment/None environment-version/None",
            "gcloud/456",
            false,
        ),
        ("google-api-go-client/0.5 gke-metadata-server", "google-api-go-client/0", false),
        ("gcloud-golang/0.1", "gcloud-golang/0", false),
        ("grpc-go/1.60", "grpc-go/1", false),
        ("curl/8.4.0", "curl/8", false),
        ("python-requests/2.31.0", "python-requests/2", false),
        ("Go-http-client/1.1", "go-http-client/1", false),
        ("okhttp/4.12.0", "okhttp/4", false),
        ("GitHub-Hookshot/abc123", "github-hookshot", false),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 \
             Safari/537.36",
            "chrome/120",
            true,
        ),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "firefox/121", true),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 \
             Safari/605.1.15",
            "safari/17",
            true,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 \
             Safari/537.36 Edg/120.0.2210.91",
            "edge/120",
            true,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 \
             Safari/537.36 OPR/106.0.0.0",
            "opera/106",
            true,
        ),
        ("Mozilla/5.0 (compatible; unknown)", "mozilla/5", false),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "googlebot/2", false),
        ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", "msie/6", true),
        ("Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko", "msie/11", true),
        ("", "", false),
        ("   ", "", false),
        // Real user agents, tests/data/panther_analysis_labeled_events/rule_tests.jsonl.gz
        // (AWS.CloudTrail):
        (
            "APN/1.0 HashiCorp/1.0 Terraform/1.1.2 (+https://www.terraform.io) terraform-provider-aws/3.76.1 \
             (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go/1.44.157 (go1.19.3; darwin; arm64) \
             HashiCorp-terraform-exec/0.17.3",
            "terraform/1",
            false,
        ),
        (
            "aws-sdk-go/1.29.7 (go1.13.7; darwin; amd64) APN/1.0 HashiCorp/1.0 Terraform/0.12.24 (+https://www.terraform.io)",
            "terraform/0",
            false,
        ),
        (
            "Boto3/1.26.2 Python/3.10.8 Linux/4.14.294-220.533.amzn2.x86_64 exec-env/AWS_ECS_FARGATE Botocore/1.29.2",
            "boto3/1",
            false,
        ),
        (
            "aws-cli/2.13.5 Python/3.11.4 Linux/4.14.255-314-253.539.amzn2.x86_64 exec-env/CloudShell \
             exe/x86_64.amzn.2 prompt/off command/ec2.start-instances",
            "aws-cli/2",
            false,
        ),
        (
            "aws-cli/2.15.59 md/awscrt#0.19.19 ua/2.0 os/macos#22.6.0 md/arch#arm64 lang/python#3.11.11 \
             md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off md/command#sts.get-caller-identity",
            "aws-cli/2",
            false,
        ),
        ("aws-cli/1.11.76 Python/2.7.10 Darwin/17.7.0 botocore/1.5.39", "aws-cli/1", false),
        (
            "aws-internal/3 aws-sdk-java/1.11.706 Linux/4.9.184-0.1.ac.235.83.329.metal1.x86_64 \
             OpenJDK_64-Bit_Server_VM/25.242-b08 java/1.8.0_242 vendor/Oracle_Corporation",
            "aws-internal/3",
            false,
        ),
        (
            "aws-sdk-go-v2/1.14.0 os/macos lang/go/1.17.6 md/GOOS/darwin md/GOARCH/arm64 api/iam/1.17.0",
            "aws-sdk-go-v2/1",
            false,
        ),
        ("aws-sdk-go/1.40.21 (go1.17; linux; amd64) exec-env/AWS_Lambda_go1.x", "aws-sdk-go/1", false),
        ("awslambda-worker/1.0 rusoto/0.47.0 rust/1.55.0 linux", "awslambda-worker/1", false),
        (
            "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.11.666 Linux/4.9.184-0.1.ac.235.83.329.metal1.x86_64 \
             OpenJDK_64-Bit_Server_VM/25.232-b09 java/1.8.0_232 vendor/Oracle_Corporation]",
            "s3console/0",
            false,
        ),
        (
            "[Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36]",
            "chrome/131",
            true,
        ),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:124.0) Gecko/20100101 Firefox/124.0", "firefox/124", true),
        ("stratus-red-team_8b255a24-d33d-4750-bd4b-4007124741df", "stratus-red-team", false),
        ("Python-httplib2/0.8 (gzip)", "python-httplib2/0", false),
        ("Jersey/${project.version}", "jersey", false),
        ("Mozilla/2.0 (compatible; NEWT ActiveX; Win32)", "mozilla/2", false),
        ("Mozilla", "mozilla", false),
        ("amazon-ssm-agent/3.2.0", "amazon-ssm-agent/3", false),
        ("trufflehog/3.63.0", "trufflehog/3", false),
        ("68319f60-9dec-43b2-9702-de3a08c9d8a3", "68319f60-9dec-43b2-9702-de3a08c9d8a3", false),
        // (Amazon.EKS.Audit):
        ("kubelet/v1.32.0 (linux/arm64) kubernetes/e105b10", "kubelet/1", false),
        ("kube-probe/1.28", "kube-probe/1", false),
        ("Kubernetes Java Client/18.0.0-SNAPSHOT", "kubernetes java client/18", false),
        ("ELB-HealthChecker/2.0", "elb-healthchecker/2", false),
        // (GCP.AuditLog, callerSuppliedUserAgent, with Google front ends' suffixes):
        (
            "google-cloud-sdk gcloud/431.0.0 command/gcloud.iam.service-accounts.create \
             invocation-id/b2ea5dab8c9b4bff8bc15ab299dff79e environment/devshell environment-version/None \
             client-os/LINUX client-os-ver/5.15.107 client-pltf-arch/x86_64 interactive/True from-script/False \
             python/3.9.2 term/screen (Linux 5.15.107+),gzip(gfe)",
            "gcloud/431",
            false,
        ),
        (
            "apitools Python/3.13.7 gsutil/5.35 (linux) analytics/enabled interactive/True \
             invocation-id/8ad1636b4f184078859fe329c196a5c3 command/rewrite-k google-cloud-sdk/548.0.0,gzip(gfe)",
            "gsutil/5",
            false,
        ),
        ("google-api-go-client/0.5 gke-metadata-server,gzip(gfe)", "google-api-go-client/0", false),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:109.0) Gecko/20100101 Firefox/119.0,gzip(gfe),gzip(gfe)",
            "firefox/119",
            true,
        ),
        ("Terraform/0.13.2 terraform-provider-google/3.90.1", "terraform/0", false),
        ("(gzip),gzip(gfe)", "", false),
        ("(none supplied)", "", false),
        ("google-cloud-sdk", "google-cloud-sdk", false),
        ("GoogleHC/1.0", "googlehc/1", false),
        // (GitHub.Audit):
        ("GitHub CLI 2.40.1", "github cli/2", false),
        ("NPM/10.2.4 NODE/V18.19.0 LINUX X64 WORKSPACES/FALSE", "npm/10", false),
        ("yarn/3.6.4-core npm/? node/v20.10.0 darwin arm64", "yarn/3", false),
        (r#"pip/24.0 {"ci":null,"cpu":"aarch64","distro":{"name":"Alpine Linux"}}"#, "pip/24", false),
        ("Ruby, RubyGems/3.4.22 linux-x86_64 Ruby/3.1.4 (2023-03-30 patchlevel 223)", "rubygems/3", false),
        ("git/2.39.3", "git/2", false),
        ("launch/production", "launch", false),
        // (Okta.SystemLog):
        ("Go-http-client/2.0 PS_mxzqarw", "go-http-client/2", false),
        ("okta-auth-js/7.7.0 okta-signin-widget-7.21.0", "okta-auth-js/7", false),
        ("Okta-Integrations", "okta-integrations", false),
        (
            "Mozilla/5.0 (Linux; Android 11; ONEPLUS A6013) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/104.0.0.0 \
             Mobile Safari/537.36",
            "chrome/104",
            true,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.1 \
             Safari/605.1.15",
            "safari/16",
            true,
        ),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML", "mozilla/5", false),
        // (Auth0.Events, a parsed form):
        ("Chrome 114.0.0 / Mac OS X 10.15.7", "chrome/114", true),
        // (PushSecurity.Activity):
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 \
             Safari/537.36 Edg/123.0.2420.81",
            "edge/123",
            true,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/58.0.3029.110 \
             Safari/537.36 Edge/16.16299",
            "edge/16",
            true,
        ),
        // (Azure.Audit and Azure.MonitorActivity userAgentHeader):
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Visual Studio Code/1.75.0 \
             Chrome/102.0.5005.167 Electron/19.1.9 Safari/537.36",
            "electron/19",
            false,
        ),
        ("Microsoft Office/16.0", "microsoft office/16", false),
        ("BAV2ROPC", "bav2ropc", false),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/1.1.1.1", "chrome/1", true),
        ("AZURECLI/2.79.0 (RPM) azsdk-python-storage-blob/12.16.0 Python/3.12.9", "azurecli/2", false),
        ("azsdk-python-storage-blob/12.27.1 Python/3.12.9", "azsdk-python", false),
        ("Microsoft.Azure.Storage/9.0", "microsoft.azure.storage/9", false),
        ("Fuzz Faster U Fool v1.3.1-dev", "fuzz", false),
        // (OpenAI.Audit, Databricks.Audit, Wiz.Audit, Gravitational.TeleportAudit):
        ("PostmanRuntime/7.29.2", "postmanruntime/7", false),
        ("TruffleHog/3.0 (Security Audit)", "trufflehog/3", false),
        ("Wiz-Terraform-Provider/1.13.3433", "wiz-terraform-provider/1", false),
        ("Examplecorp Spacedeck-web/99.9 (Hackintosh; ARM Cortex A1000)", "examplecorp", false),
        // tests/data/falco_k8s_audit_traces/k8s_audit/*.json:
        ("kubectl/v1.17.3 (darwin/amd64) kubernetes/06ad960", "kubectl/1", false),
        ("kubeadm/v1.16.2 (linux/amd64) kubernetes/c97fe50", "kubeadm/1", false),
        (
            "kube-controller-manager/v1.17.3 (linux/amd64) kubernetes/06ad960/tokens-controller",
            "kube-controller-manager/1",
            false,
        ),
    ];

    #[test]
    fn normalises_user_agents() {
        let mut failures = Vec::new();
        for &(ua, want, browser) in TABLE {
            let got = client(ua);
            if got.to_string() != want || got.browser != browser {
                failures.push(format!("{ua:?}: got {got} (browser {}), want {want} (browser {browser})", got.browser));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn fingerprints_hash_the_lowercased_display() {
        for &(ua, want, _) in TABLE {
            let c = client(ua);
            let family = want.rsplit_once('/').filter(|_| c.major.is_some()).map_or(want, |(f, _)| f);
            assert_eq!(c.fingerprints(), (xxh3_64(want.as_bytes()) as u32, xxh3_64(family.as_bytes()) as u32), "{ua}");
        }
    }

    #[test]
    fn per_call_variants_are_one_client() {
        let same = [
            (
                "aws-cli/2.15.59 md/awscrt#0.19.19 ua/2.0 os/macos#22.6.0 md/arch#arm64 md/command#lambda.list-functions",
                "aws-cli/2.17.0 md/awscrt#0.20.11 ua/2.0 os/linux#5.10 md/arch#x86_64 md/command#sts.get-caller-identity",
            ),
            (
                "aws-cli/2.13.5 Python/3.11.4 Linux/4.14.255 exec-env/CloudShell prompt/off command/ec2.start-instances",
                "aws-cli/2.13.5 Python/3.11.4 Linux/4.14.255 exec-env/CloudShell prompt/off command/ec2.stop-instances",
            ),
            (
                "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 api/s3#1.58.2",
                "aws-sdk-go-v2/1.14.0 os/macos lang/go/1.17.6 api/iam/1.17.0",
            ),
            (
                "google-cloud-sdk gcloud/548.0.0 command/gcloud.storage.cp",
                "google-cloud-sdk gcloud/548.0.0 command/gcloud.kms.keys.versions.disable",
            ),
            (
                "NPM/10.2.4 NODE/V18.19.0 LINUX X64 WORKSPACES/FALSE",
                "npm/10.2.4 node/v18.19.0 linux x64 workspaces/false",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.61 Safari/537.36",
            ),
        ];
        for (a, b) in same {
            assert_eq!(client(a).fingerprints(), client(b).fingerprints(), "{a} vs {b}");
        }
        let (v1, v2) =
            (client("aws-cli/1.18.39 Python/3.7.2 Darwin/19.4.0 botocore/1.15.24"), client("aws-cli/2.13.0"));
        assert_ne!(v1.fingerprints().0, v2.fingerprints().0);
        assert_eq!(v1.fingerprints().1, v2.fingerprints().1);
        assert_ne!(client("curl/8.4.0").fingerprints().1, client("python-requests/2.31.0").fingerprints().1);
    }

    #[test]
    fn long_input_is_cut_on_a_character_boundary() {
        // A two-byte character straddles byte 512.
        let ua = format!("{}é/1.0", "a".repeat(SCAN_BYTES - 1));
        let c = client(&ua);
        assert_eq!(c.family.len(), SCAN_BYTES - 1);
        assert_eq!(c.major, None);
        let huge = "x".repeat(1 << 20);
        assert_eq!(client(&huge).family.len(), SCAN_BYTES);
        assert_eq!(client(&format!("curl/8.4.0 {huge}")).to_string(), "curl/8");
    }

    #[test]
    fn hand_built_clients_are_truncated_not_panicking() {
        let family = "F".repeat(2 * SCAN_BYTES);
        let c = Client { family: &family, major: Some("12345678901234"), browser: false };
        let (with_major, alone) = c.fingerprints();
        assert_ne!(with_major, alone);
        assert_eq!(Client { family: "AWS-CLI", major: Some("2"), browser: false }.to_string(), "aws-cli/2");
    }

    proptest! {
        #[test]
        fn any_string_is_a_client(ua in "(?s).{0,700}", prefix in prop::sample::select(vec!["", "Mozilla/5.0 ", "APN/1.0 ", "[", "aws-cli/2.1 "])) {
            let ua = format!("{prefix}{ua}");
            let c = client(&ua);
            prop_assert!(c.family.len() <= SCAN_BYTES);
            if let Some(m) = c.major {
                prop_assert!(!m.is_empty() && m.len() <= MAX_MAJOR_DIGITS && m.bytes().all(|b| b.is_ascii_digit()));
            }
            prop_assert!(!c.family.is_empty() || c.major.is_none());
            let shown = c.to_string();
            prop_assert_eq!(c.fingerprints().0, xxh3_64(shown.as_bytes()) as u32);
        }

        #[test]
        fn multibyte_at_the_cut(pad in 0usize..8, ch in prop::char::any()) {
            let ua = format!("{}{ch}{ch}{ch} x/1", "b".repeat(SCAN_BYTES - 4 + pad));
            let c = client(&ua);
            prop_assert!(c.family.len() <= SCAN_BYTES);
            let _ = c.fingerprints();
        }
    }
}
