//! URL facts: every URL is parsed with WHATWG semantics (the `url` crate), so that policy sees
//! the host a client will really contact: lower case without a trailing dot, IPv4 written in
//! decimal, hex, octal or short form turned into the dotted quad, the IPv4 address hidden in an
//! IPv6 one extracted, userinfo dropped, the default port filled in.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use url::{Host, Url};

/// Longest URL text kept in a fact (the host and port are always parsed from the whole).
const MAX_RAW: usize = 2048;

/// One URL as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UrlFact {
    /// Where the URL was found: `params.url`, `command 3 argv[1]`, `action.http`.
    pub source: String,
    /// The text as written (cut at 2 KiB).
    pub raw: String,
    /// `http`, `https`, ...; absent for a bare host written as a command argument.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The normalised host ("" when the URL has none).
    pub host: String,
    /// `domain`, `ipv4`, `ipv6` or `none`.
    pub host_kind: &'static str,
    /// The host as IP addresses (an IP literal, plus the IPv4 embedded in an IPv6 one).
    pub ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub path: String,
    /// The URL carried `user:password@` (dropped from `host`).
    pub userinfo: bool,
    /// IPv4 addresses written inside a host name (`127.0.0.1.nip.io`, `10-0-0-1.sslip.io`,
    /// `7f000001.nip.io`): wildcard DNS services answer with them, so a name can reach an
    /// address that no literal shows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub name_ips: Vec<String>,
    /// Credential shapes in the URL (`github_token`, `api_key`, … as the audit log's
    /// redaction knows them): a token in a URL leaves with the request to its host.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<&'static str>,
    /// `rfc3986` on the second fact stated for a text that RFC 3986 parsers (curl, Python's
    /// urllib, many libraries) read with another host than WHATWG does
    /// (`http://a.example\@169.254.169.254/`); absent on the WHATWG reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading: Option<&'static str>,
}

impl UrlFact {
    /// Parse an absolute URL. `None` when the text is not one.
    pub fn parse(raw: &str, source: String) -> Option<UrlFact> {
        let url = Url::parse(raw.trim()).ok()?;
        Some(UrlFact::from_url(&url, raw, source, true))
    }

    /// The same text as an RFC 3986 parser reads it, when that names another host: WHATWG ends
    /// the authority of a special scheme at a `\` as well as at `/`, `?` and `#`, so
    /// `http://a.example\@169.254.169.254/` is `a.example` to a browser or Node and
    /// `169.254.169.254` to curl or Python. Both readings are judged.
    pub fn other_reading(&self) -> Option<UrlFact> {
        let raw = self.raw.trim();
        let (scheme, rest) = raw.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if !authority.contains('\\') {
            return None;
        }
        let host_port = authority.rsplit('@').next().unwrap_or_default();
        let url = Url::parse(&format!("{scheme}://{host_port}/")).ok()?;
        let mut other = UrlFact::from_url(&url, raw, self.source.clone(), self.scheme.is_some());
        if other.host == self.host {
            return None;
        }
        other.path = self.path.clone();
        other.reading = Some("rfc3986");
        Some(other)
    }

    /// This fact, then the other reading of its text when there is one.
    pub fn readings(self) -> impl Iterator<Item = UrlFact> {
        let other = self.other_reading();
        std::iter::once(self).chain(other)
    }

    /// A command argument that names a host without a scheme (`curl 2852039166/latest`,
    /// `curl metadata.google.internal/...`): read the way curl reads it, as `http://`.
    pub fn from_bare_operand(word: &str, source: String) -> Option<UrlFact> {
        let first = word.split(['/', '?', '#']).next().unwrap_or_default();
        if first.is_empty()
            || word.starts_with(['.', '-', '~', '/', '$', '*'])
            || first
                .chars()
                .any(|c| c.is_whitespace() || c == '=' || c == '@')
        {
            return None;
        }
        let url = Url::parse(&format!("http://{word}")).ok()?;
        let numeric_host = first
            .split(':')
            .next()
            .is_some_and(|h| h.chars().all(|c| c.is_ascii_digit()));
        match url.host()? {
            // A small plain number (`head -n 20`) is not an address anyone writes as one.
            Host::Ipv4(ip) if numeric_host && u32::from(ip) < 0x0100_0000 => return None,
            Host::Domain(d) if !d.contains('.') => return None,
            _ => {}
        }
        Some(UrlFact::from_url(&url, word, source, false))
    }

    /// Dotted-quad addresses inside a word that is no URL itself (`--resolve
    /// x:80:169.254.169.254`, `--connect-to ::10.0.0.5:`): programs connect to them all the
    /// same.
    pub fn embedded_addresses(word: &str, source: &str) -> Vec<UrlFact> {
        word.split([':', '=', '@', ','])
            .filter(|piece| piece.parse::<Ipv4Addr>().is_ok())
            .filter_map(|piece| UrlFact::from_bare_operand(piece, source.to_string()))
            .collect()
    }

    fn from_url(url: &Url, raw: &str, source: String, with_scheme: bool) -> UrlFact {
        let (host, host_kind, ips) = match url.host() {
            Some(Host::Ipv4(ip)) => (ip.to_string(), "ipv4", vec![ip.to_string()]),
            Some(Host::Ipv6(ip)) => {
                let mut ips = vec![ip.to_string()];
                ips.extend(embedded_ipv4(&ip).iter().map(|v4| v4.to_string()));
                (ip.to_string(), "ipv6", ips)
            }
            Some(Host::Domain(d)) => match special_ipv4(d) {
                // A non-special scheme keeps its host opaque; clients that connect to it
                // still read numbers the way browsers do.
                Some(ip) => (ip.to_string(), "ipv4", vec![ip.to_string()]),
                None => (normalize_host(d), "domain", Vec::new()),
            },
            None => (String::new(), "none", Vec::new()),
        };
        let name_ips = if host_kind == "domain" {
            name_ipv4s(&host).iter().map(|ip| ip.to_string()).collect()
        } else {
            Vec::new()
        };
        // As written, with the query decoded (`ghp%5F…` is `ghp_…` to the host) and with
        // the path decoded (`/%41KIA…` is `/AKIA…` in the server's log).
        let mut credentials = crate::audit::redact::token_shapes_in(raw);
        let decoded_path = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
        let decoded = url
            .query_pairs()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(std::iter::once(decoded_path.into_owned()));
        for text in decoded {
            for shape in crate::audit::redact::token_shapes_in(&text) {
                if !credentials.contains(&shape) {
                    credentials.push(shape);
                }
            }
        }
        let mut cut = raw.len().min(MAX_RAW);
        while !raw.is_char_boundary(cut) {
            cut -= 1;
        }
        UrlFact {
            source,
            raw: raw[..cut].to_string(),
            scheme: with_scheme.then(|| url.scheme().to_string()),
            host,
            host_kind,
            ips,
            port: url.port_or_known_default(),
            path: url.path().to_string(),
            userinfo: !url.username().is_empty() || url.password().is_some(),
            name_ips,
            credentials,
            reading: None,
        }
    }
}

/// The IPv4 addresses a host name spells: four numeric labels in a row (`127.0.0.1.nip.io`),
/// four numbers joined by dashes inside a label (`x-10-0-0-1.sslip.io`), or a label of eight
/// hex digits (`7f000001.nip.io`).
fn name_ipv4s(host: &str) -> Vec<Ipv4Addr> {
    let octet = |s: &str| (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    let quad = |parts: &[&str]| -> Option<Ipv4Addr> {
        let mut o = [0u8; 4];
        for (i, p) in parts.iter().enumerate() {
            if !octet(p) {
                return None;
            }
            o[i] = p.parse().ok()?;
        }
        Some(Ipv4Addr::from(o))
    };
    let mut out = Vec::new();
    let labels: Vec<&str> = host.split('.').collect();
    out.extend(labels.windows(4).filter_map(quad));
    for label in &labels {
        let parts: Vec<&str> = label.split('-').collect();
        out.extend(parts.windows(4).filter_map(quad));
        if label.len() == 8
            && label.bytes().all(|b| b.is_ascii_hexdigit())
            && let Ok(n) = u32::from_str_radix(label, 16)
        {
            out.push(Ipv4Addr::from(n));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The IPv4 address a WHATWG host parser reads in `host` (`0xa9fea9fe`, `127.1`, `0177.0.0.1`).
fn special_ipv4(host: &str) -> Option<Ipv4Addr> {
    if !host.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    match Url::parse(&format!("http://{host}/")).ok()?.host()? {
        Host::Ipv4(ip) => Some(ip),
        _ => None,
    }
}

/// Lower case, no IPv6 brackets, no trailing dot: the form policy and the pin map compare.
/// A character a URL scheme may hold (RFC 3986: letters, digits, `+`, `-`, `.`).
pub fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+.-".contains(c)
}

pub fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// IPv4 addresses carried inside an IPv6 address by the well-known transition schemes.
pub fn embedded_ipv4(ip: &Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let mut out = Vec::new();
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (the deprecated compatible form; not :: or ::1).
    if s[..5] == [0; 5] && (s[5] == 0xffff || (s[5] == 0 && u32::from(tail) > 1)) {
        out.push(tail);
    }
    // 64:ff9b::/96 (NAT64 well-known prefix, RFC 6052).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        out.push(tail);
    }
    // 2002:AABB:CCDD::/48 (6to4): the IPv4 address follows the prefix.
    if s[0] == 0x2002 {
        out.push(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    // 2001:0000::/32 (Teredo): the server in bits 32..64, the client obfuscated in the last 32.
    if s[0] == 0x2001 && s[1] == 0 {
        out.push(Ipv4Addr::new(o[4], o[5], o[6], o[7]));
        out.push(Ipv4Addr::from(!u32::from(tail)));
    }
    // ISATAP interface identifiers (::0:5efe:a.b.c.d and ::200:5efe:a.b.c.d).
    if (s[4] == 0 || s[4] == 0x0200) && s[5] == 0x5efe {
        out.push(tail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4s(s: &str) -> Vec<String> {
        embedded_ipv4(&s.parse().unwrap())
            .into_iter()
            .map(|a| a.to_string())
            .collect()
    }

    #[test]
    fn finds_ipv4_inside_ipv6_transition_addresses() {
        assert_eq!(v4s("::ffff:127.0.0.1"), ["127.0.0.1"]);
        assert_eq!(v4s("::10.0.0.1"), ["10.0.0.1"]);
        assert_eq!(v4s("64:ff9b::a9fe:a9fe"), ["169.254.169.254"]);
        assert_eq!(v4s("2002:c0a8:0101::1"), ["192.168.1.1"]);
        // Teredo: server 65.54.227.120, client 192.168.0.1 stored inverted (3f57:fffe).
        assert_eq!(
            v4s("2001:0:4136:e378:8000:63bf:3f57:fffe"),
            ["65.54.227.120", "192.168.0.1"]
        );
        assert_eq!(v4s("fe80::5efe:a00:1"), ["10.0.0.1"]);
        assert!(v4s("2606:4700::1111").is_empty());
        assert!(v4s("::1").is_empty());
        assert!(v4s("::").is_empty());
    }

    fn host(raw: &str) -> (String, &'static str, Vec<String>, Option<u16>) {
        let f = UrlFact::parse(raw, "t".into()).unwrap();
        (f.host, f.host_kind, f.ips, f.port)
    }

    #[test]
    fn ipv4_in_every_form_becomes_the_dotted_quad() {
        for raw in [
            "http://2852039166/latest/meta-data/",
            "http://0xa9fea9fe/latest",
            "http://0xA9.0xFE.0xA9.0xFE/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://169.254.169.254./",
            "HTTP://user:pw@169.254.169.254:80/",
        ] {
            let (h, kind, ips, _) = host(raw);
            assert_eq!((h.as_str(), kind), ("169.254.169.254", "ipv4"), "{raw}");
            assert_eq!(ips, ["169.254.169.254"], "{raw}");
        }
        assert_eq!(host("http://127.1:9482/").0, "127.0.0.1");
        assert_eq!(host("http://127.1:9482/").3, Some(9482));
        assert_eq!(host("http://0177.0.0.1:9482/").0, "127.0.0.1");
        assert_eq!(host("http://0/").0, "0.0.0.0");
    }

    #[test]
    fn hosts_are_normalised_and_defaults_filled() {
        let (h, kind, ips, port) = host("HTTPS://Api.Example.COM./v1");
        assert_eq!(
            (h.as_str(), kind, ips.len(), port),
            ("api.example.com", "domain", 0, Some(443))
        );
        let f = UrlFact::parse("http://u:p@example.com@evil.test/", "t".into()).unwrap();
        assert_eq!(f.host, "evil.test");
        assert!(f.userinfo);
        let (h, kind, ips, _) = host("http://[::ffff:a9fe:a9fe]/");
        assert_eq!((h.as_str(), kind), ("::ffff:169.254.169.254", "ipv6"));
        assert_eq!(ips, ["::ffff:169.254.169.254", "169.254.169.254"]);
        // Non-special schemes keep an opaque host; the numbers are still read as an address.
        assert_eq!(host("gopher2://0xa9fea9fe/x").0, "169.254.169.254");
        assert!(UrlFact::parse("not a url", "t".into()).is_none());
    }

    #[test]
    fn a_backslash_in_the_authority_states_both_readings() {
        let other = |raw: &str| {
            let u = UrlFact::parse(raw, "t".into()).unwrap();
            (
                u.host.clone(),
                u.other_reading().map(|o| (o.host, o.ips, o.reading)),
            )
        };
        let (host, o) = other("http://a.example\\@169.254.169.254/latest");
        assert_eq!(host, "a.example");
        assert_eq!(
            o,
            Some((
                "169.254.169.254".into(),
                vec!["169.254.169.254".into()],
                Some("rfc3986")
            ))
        );
        // Numeric forms are read the same way in the other reading.
        let (_, o) = other("https://docs.example\\@0xa9fea9fe:80/x");
        assert_eq!(o.map(|o| o.0).as_deref(), Some("169.254.169.254"));
        // Only a backslash before the authority ends makes a difference.
        assert_eq!(other("http://a.example/x\\@169.254.169.254").1, None);
        assert_eq!(other("http://user@a.example/").1, None);
        assert_eq!(other("http://a.example#\\@169.254.169.254/").1, None);
    }

    #[test]
    fn addresses_inside_option_values_are_stated() {
        let hosts = |w: &str| {
            UrlFact::embedded_addresses(w, "t")
                .into_iter()
                .map(|u| u.host)
                .collect::<Vec<_>>()
        };
        assert_eq!(hosts("x:80:169.254.169.254"), ["169.254.169.254"]);
        assert_eq!(hosts("::10.0.0.5:"), ["10.0.0.5"]);
        assert!(hosts("1.2.3").is_empty());
        assert!(hosts("version=2").is_empty());
    }

    #[test]
    fn bare_operands_name_hosts_the_way_curl_reads_them() {
        let f = |w: &str| UrlFact::from_bare_operand(w, "t".into()).map(|u| u.host);
        assert_eq!(f("2852039166/latest").as_deref(), Some("169.254.169.254"));
        assert_eq!(f("0xa9fea9fe").as_deref(), Some("169.254.169.254"));
        assert_eq!(f("127.1:9482/v1").as_deref(), Some("127.0.0.1"));
        assert_eq!(
            f("metadata.google.internal/computeMetadata/v1/").as_deref(),
            Some("metadata.google.internal")
        );
        assert_eq!(f("20"), None);
        assert_eq!(f("-n"), None);
        assert_eq!(f("./a.txt"), None);
        assert_eq!(f("TODO"), None);
    }

    #[test]
    fn tokens_in_a_url_are_stated_also_when_percent_encoded() {
        let shapes = |raw: &str| UrlFact::parse(raw, "t".into()).unwrap().credentials;
        let token = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";
        assert_eq!(
            shapes(&format!("https://evil.example/c?t={token}")),
            ["github_token"]
        );
        assert_eq!(
            shapes("https://evil.example/c?t=ghp%5F0123456789abcdefghijklmnopqrstuvwxyz"),
            ["github_token"]
        );
        assert_eq!(
            shapes("https://evil.example/AKIAIOSFODNN7EXAMPLE"),
            ["aws_access_key"]
        );
        assert!(shapes("https://docs.rs/regorus/latest/regorus/").is_empty());
    }

    #[test]
    fn addresses_spelled_inside_host_names_are_stated() {
        let ips = |raw: &str| UrlFact::parse(raw, "t".into()).unwrap().name_ips;
        assert_eq!(ips("http://127.0.0.1.nip.io:9482/"), ["127.0.0.1"]);
        assert_eq!(
            ips("http://app.169.254.169.254.nip.io/"),
            ["169.254.169.254"]
        );
        assert_eq!(ips("http://x-10-0-0-1.sslip.io/"), ["10.0.0.1"]);
        assert_eq!(ips("http://7f000001.nip.io/"), ["127.0.0.1"]);
        assert_eq!(ips("http://a9fea9fe.nip.io/"), ["169.254.169.254"]);
        // Not four octets: nothing.
        assert!(ips("http://v1.2.3.example.com/").is_empty());
        assert!(ips("http://1.2.3.256.example.com/").is_empty());
        assert!(ips("https://docs.rs/tokio/").is_empty());
        // A literal address is `ips`, not a name.
        assert!(ips("http://127.0.0.1/").is_empty());
    }
}
