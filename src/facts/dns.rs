//! Facts about a DNS name, so that policy can tell a host name from data encoded into labels
//! (DNS exfiltration: `aGVsbG8gd29ybGQ.x.evil.example`). Only states what the name looks
//! like; the default bundle's `dns.rego` decides what is too long or too random.

use serde::Serialize;

/// `input.facts.dns` for a `dns` action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DnsFact {
    /// The queried name, lower case, without a trailing dot.
    pub name: String,
    /// Characters in the name (dots included).
    pub length: usize,
    /// Number of labels.
    pub labels: usize,
    /// Characters in the longest label.
    pub longest_label: usize,
    /// Shannon entropy of the longest label's characters, in hundredths of a bit per
    /// character (a random base32 label of 36 characters comes near 420, hex near 370; `www` is 0).
    pub longest_label_entropy_centibits: u32,
    /// Digits in the whole name.
    pub digits: usize,
    /// The name's last two labels (`evil.example` of `a.b.evil.example`), the part a query
    /// for data usually carries to its own server.
    pub registered_part: String,
    /// Characters in the labels before the registered part (dots not counted): how much a
    /// query can carry however it splits the data over labels.
    pub subdomain_length: usize,
    /// Shannon entropy of those characters taken together, in hundredths of a bit.
    pub subdomain_entropy_centibits: u32,
    /// Characters in labels before the registered part that are hexadecimal with at least one
    /// digit (`3f2a9c81…`): hex-encoded data stays under entropy thresholds (at most 4 bits
    /// per character) however random it is.
    pub subdomain_hex_chars: usize,
}

impl DnsFact {
    pub fn new(name: &str) -> DnsFact {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = if name.is_empty() {
            Vec::new()
        } else {
            name.split('.').collect()
        };
        let longest = labels.iter().copied().max_by_key(|l| l.len()).unwrap_or("");
        let split = labels.len().saturating_sub(2);
        let registered_part = labels[split..].join(".");
        let subdomain: String = labels[..split].concat();
        let subdomain_hex_chars = labels[..split]
            .iter()
            .filter(|l| {
                l.bytes().all(|b| b.is_ascii_hexdigit()) && l.bytes().any(|b| b.is_ascii_digit())
            })
            .map(|l| l.len())
            .sum();
        DnsFact {
            subdomain_length: subdomain.len(),
            subdomain_entropy_centibits: entropy_centibits(&subdomain),
            subdomain_hex_chars,
            length: name.len(),
            labels: labels.len(),
            longest_label: longest.len(),
            longest_label_entropy_centibits: entropy_centibits(longest),
            digits: name.bytes().filter(u8::is_ascii_digit).count(),
            registered_part,
            name,
        }
    }
}

/// Shannon entropy of the bytes of `s`, in hundredths of a bit per byte.
fn entropy_centibits(s: &str) -> u32 {
    if s.is_empty() {
        return 0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    (bits * 100.0).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_encoded_labels_differ() {
        let plain = DnsFact::new("WWW.Example.COM.");
        assert_eq!(plain.name, "www.example.com");
        assert_eq!((plain.labels, plain.longest_label), (3, 7));
        assert_eq!(plain.registered_part, "example.com");
        assert_eq!(DnsFact::new("www").longest_label_entropy_centibits, 0);
        let encoded = DnsFact::new("nbswy3dpeb3w64tmmqqhi2ltebuxgidbebzwkytsmv2a.x.evil.example");
        assert_eq!(encoded.longest_label, 44);
        assert!(encoded.longest_label_entropy_centibits > 380);
        assert_eq!(DnsFact::new("").labels, 0);
    }

    #[test]
    fn data_split_over_labels_or_hex_encoded_is_counted_whole() {
        let split = DnsFact::new("a1b2c3d4e5f6g7h8.q9w8e7r6t5y4u3i2.evil.com");
        assert_eq!(split.longest_label, 16);
        assert_eq!(split.subdomain_length, 32);
        assert!(split.subdomain_entropy_centibits > 400, "{split:?}");
        let hex = DnsFact::new("3f2a9c81d4e7.b6051c8a2f9e.cafe.www.evil.com");
        // `cafe` is hex but has no digit: a word, not data. `www` is not hex.
        assert_eq!(hex.subdomain_hex_chars, 24);
        let plain = DnsFact::new("api.github.com");
        assert_eq!((plain.subdomain_length, plain.subdomain_hex_chars), (3, 0));
        assert_eq!(DnsFact::new("com").subdomain_length, 0);
    }
}
