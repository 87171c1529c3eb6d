//! RFC 8785 (JCS) serialization of `serde_json::Value` straight into a byte buffer.
//!
//! Every entry field is canonicalized on the appending task, and `serde_json_canonicalizer`
//! spends most of that time re-encoding every object key as UTF-16 to sort it. Here keys are
//! sorted only when the map's own order (UTF-8 byte order, which `serde_json::Map` keeps) can
//! differ from JCS's UTF-16 order, i.e. when a key holds a character above U+FFFF. Integers are
//! written by their exact decimal text, also beyond ±2^53, where RFC 8785 would round them
//! through a double and make neighbours collide (the audit log stores no such integer, see
//! `integers_only`, so its entries are RFC 8785 byte for byte); fractions are left to
//! `serde_json_canonicalizer`.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
#[error("cannot canonicalize a number: {0}")]
pub struct JcsError(String);

/// Append the JCS bytes of `value` to `out`.
pub fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes()),
            (_, Some(i)) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
            // Fractions follow ECMAScript's double formatting: not ours to redo.
            _ => out.extend(
                serde_json_canonicalizer::to_vec(value).map_err(|e| JcsError(e.to_string()))?,
            ),
        },
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out)?,
    }
    Ok(())
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) -> Result<(), JcsError> {
    out.push(b'{');
    // UTF-8 byte order is code point order, which is UTF-16 order unless a character above
    // U+FFFF (4 UTF-8 bytes, lead byte >= 0xF0) meets one in U+E000..=U+FFFF.
    if map.keys().any(|k| k.bytes().any(|b| b >= 0xF0)) {
        let mut members: Vec<(&String, &Value)> = map.iter().collect();
        members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        write_members(members.into_iter(), out)?;
    } else {
        write_members(map.iter(), out)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_members<'a>(
    members: impl Iterator<Item = (&'a String, &'a Value)>,
    out: &mut Vec<u8>,
) -> Result<(), JcsError> {
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(k, out);
        out.push(b':');
        write_value(v, out)?;
    }
    Ok(())
}

/// A JSON string as JCS writes it: only `"`, `\` and the C0 controls are escaped.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\x08' => b"\\b",
            b'\x0c' => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jcs(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(v, &mut out).unwrap();
        out
    }

    fn same_as_reference(v: &Value) {
        assert_eq!(
            String::from_utf8_lossy(&jcs(v)),
            String::from_utf8_lossy(&serde_json_canonicalizer::to_vec(v).unwrap()),
            "{v}"
        );
    }

    #[test]
    fn matches_serde_json_canonicalizer_on_edge_cases() {
        let cases = [
            json!(null),
            json!([true, false, null, 0, -0, 1, -1]),
            json!({"b": 1, "a": {"z": [], "y": {}}, "": "empty key"}),
            json!(9007199254740992u64),
            json!(-9007199254740992i64),
            json!(1.5),
            json!(1e300),
            json!(-0.0),
            json!(
                "quote \" backslash \\ slash / controls \u{0}\u{1}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1f} del \u{7f} ls \u{2028} é 😀"
            ),
            // UTF-16 order differs from code point order here: U+1F600 sorts before U+E000.
            json!({"\u{e000}": 1, "😀": 2, "a": 3, "\u{ffff}": 4, "\u{10000}": 5}),
            json!({"nested": {"\u{e000}": [{"😀": "x", "b": "\u{1b}[0m"}]}}),
        ];
        for v in &cases {
            same_as_reference(v);
        }
    }

    #[test]
    fn integers_beyond_two_to_the_53_keep_their_exact_digits() {
        for (v, text) in [
            (json!(9007199254740993u64), "9007199254740993"),
            (json!(18446744073709551615u64), "18446744073709551615"),
            (json!(-9223372036854775808i64), "-9223372036854775808"),
        ] {
            assert_eq!(String::from_utf8(jcs(&v)).unwrap(), text);
        }
    }

    #[test]
    fn matches_serde_json_canonicalizer_on_generated_values() {
        // A small deterministic generator (xorshift): no extra test dependency.
        struct Gen(u64);
        impl Gen {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0
            }
            fn string(&mut self) -> String {
                const CHARS: &[char] = &[
                    'a',
                    'b',
                    'Z',
                    '0',
                    '_',
                    '"',
                    '\\',
                    '/',
                    '\n',
                    '\t',
                    '\u{0}',
                    '\u{1f}',
                    '\u{7f}',
                    'é',
                    '\u{2028}',
                    '\u{e000}',
                    '\u{ffff}',
                    '😀',
                    '\u{10000}',
                ];
                let len = (self.next() % 6) as usize;
                (0..len)
                    .map(|_| CHARS[(self.next() % CHARS.len() as u64) as usize])
                    .collect()
            }
            fn value(&mut self, depth: u32) -> Value {
                match self.next() % if depth > 3 { 5 } else { 7 } {
                    0 => Value::Null,
                    1 => Value::Bool(self.next().is_multiple_of(2)),
                    2 => json!((self.next() % 20_000) as i64 - 10_000),
                    // Integers up to 2^53, where RFC 8785 writes them exactly too.
                    3 => json!((self.next() >> (self.next() % 64)) & ((1u64 << 53) - 1)),
                    4 => Value::String(self.string()),
                    5 => Value::Array(
                        (0..self.next() % 4)
                            .map(|_| self.value(depth + 1))
                            .collect(),
                    ),
                    _ => Value::Object(
                        (0..self.next() % 5)
                            .map(|_| (self.string(), self.value(depth + 1)))
                            .collect(),
                    ),
                }
            }
        }
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            same_as_reference(&g.value(0));
        }
    }
}
