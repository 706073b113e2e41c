//! JSON as Claude Code (Node) reads and writes it.
//!
//! `JSON.stringify` writes a string cut in the middle of a surrogate pair (an emoji cut by a
//! length limit) as a lone surrogate escape, `"\ud83d"`, and `JSON.parse` reads it back; a
//! strict parser refuses the whole document. Documents are read here with every lone surrogate
//! escape carried through as a marker (U+FDD0, a noncharacter, then the escape's four hex
//! digits as written), and written back with the marker turned into the same escape again, so
//! what Claude Code wrote comes back byte for byte. A U+FDD0 the document holds itself is
//! marked too (`fdd0`) and comes back as the escape `\ufdd0`, which reads the same. Apart from
//! that the output is `JSON.stringify(doc, null, 2)`'s: two-space indents, `": "`, keys in
//! their order, non-ASCII as is, control characters escaped as Node escapes them.

use std::borrow::Cow;

use memchr::memmem;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The marker, U+FDD0, in UTF-8.
const MARK: &[u8] = "\u{FDD0}".as_bytes();

/// Parses what Node's `JSON.parse` reads (as far as this program needs: every JSON text,
/// lone surrogate escapes included).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(&mark(bytes))
}

/// Writes `value` as `JSON.stringify(value, null, 2)` would, lone surrogates as they were read.
pub fn to_vec_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    Ok(unmark(serde_json::to_vec_pretty(value)?))
}

/// The text with each lone surrogate escape and each U+FDD0 replaced by the marker and four
/// hex digits. Untouched (and not copied) when it holds neither, which a scan finds fast.
pub fn mark(bytes: &[u8]) -> Cow<'_, [u8]> {
    let escapes = memmem::find_iter(bytes, b"\\u");
    let marks = memmem::find_iter(bytes, MARK);
    let mut edits: Vec<(usize, usize, [u8; 4])> = Vec::new();
    for at in escapes {
        if !escape_starts_at(bytes, at) {
            continue;
        }
        let Some(unit) = hex4(bytes, at + 2) else {
            continue;
        };
        let lone = match unit {
            0xD800..=0xDBFF => {
                !(bytes.get(at + 6..at + 8) == Some(b"\\u")
                    && hex4(bytes, at + 8).is_some_and(|u| (0xDC00..=0xDFFF).contains(&u)))
            }
            0xDC00..=0xDFFF => {
                !(at >= 6
                    && bytes[at - 6..at - 4] == *b"\\u"
                    && escape_starts_at(bytes, at - 6)
                    && hex4(bytes, at - 4).is_some_and(|u| (0xD800..=0xDBFF).contains(&u)))
            }
            0xFDD0 => true,
            _ => false,
        };
        if lone {
            let mut digits = [0u8; 4];
            digits.copy_from_slice(&bytes[at + 2..at + 6]);
            edits.push((at, 6, digits));
        }
    }
    for at in marks {
        edits.push((at, MARK.len(), *b"fdd0"));
    }
    if edits.is_empty() {
        return Cow::Borrowed(bytes);
    }
    edits.sort_unstable_by_key(|e| e.0);
    let mut out = Vec::with_capacity(bytes.len() + edits.len() * 4);
    let mut from = 0;
    for (at, len, digits) in edits {
        out.extend_from_slice(&bytes[from..at]);
        out.extend_from_slice(MARK);
        out.extend_from_slice(&digits);
        from = at + len;
    }
    out.extend_from_slice(&bytes[from..]);
    Cow::Owned(out)
}

/// The serialised text with each marker and its four hex digits turned into `\uXXXX`.
pub fn unmark(text: Vec<u8>) -> Vec<u8> {
    if memmem::find(&text, MARK).is_none() {
        return text;
    }
    let mut out = Vec::with_capacity(text.len());
    write_unmarked(&mut out, &text).expect("a Vec takes every write");
    out
}

/// Writes `text` to `out` with each marker and its four hex digits turned into `\uXXXX`, for
/// a document written piece by piece (a marker never spans two values).
pub fn write_unmarked(out: &mut dyn std::io::Write, text: &[u8]) -> std::io::Result<()> {
    let mut from = 0;
    for at in memmem::find_iter(text, MARK) {
        let digits = at + MARK.len();
        if at < from || hex4(text, digits).is_none() {
            continue;
        }
        out.write_all(&text[from..at])?;
        out.write_all(b"\\u")?;
        out.write_all(&text[digits..digits + 4])?;
        from = digits + 4;
    }
    out.write_all(&text[from..])
}

/// Whether the backslash at `at` starts an escape (it is not itself escaped): an odd number of
/// backslashes ends at it.
fn escape_starts_at(bytes: &[u8], at: usize) -> bool {
    let run = bytes[..=at]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    run % 2 == 1
}

fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = bytes.get(at..at + 4)?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn round_trip(text: &str) -> String {
        let v: Value = from_slice(text.as_bytes()).unwrap();
        String::from_utf8(to_vec_pretty(&v).unwrap()).unwrap()
    }

    #[test]
    fn lone_surrogates_come_back_as_written() {
        let text = "{\n  \"a\": \"cut \\ud83d\",\n  \"b\": \"\\uDE00 end\",\n  \"c\": \"\\ud83d\\ude00 pair\"\n}";
        let out = round_trip(text);
        assert!(out.contains("\"cut \\ud83d\""), "{out}");
        assert!(out.contains("\"\\uDE00 end\""), "{out}");
        // A pair is a character, written as Node writes it: as is.
        assert!(out.contains("\"😀 pair\""), "{out}");
    }

    #[test]
    fn escaped_backslashes_and_the_marker_itself_are_kept_apart() {
        let text = r#"{"a":"\\ud83d","b":"﷐d83d","c":"\ufdd0"}"#;
        let v: Value = from_slice(text.as_bytes()).unwrap();
        assert_eq!(v["a"], "\\ud83d");
        let out = String::from_utf8(to_vec_pretty(&v).unwrap()).unwrap();
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["a"], "\\ud83d");
        assert_eq!(back["b"], "\u{FDD0}d83d");
        assert_eq!(back["c"], "\u{FDD0}");
    }

    #[test]
    fn a_document_node_wrote_comes_back_byte_for_byte() {
        let text = "{\n  \"numStartups\": 3,\n  \"projects\": {\n    \"/w\": {\n      \"allowedTools\": [],\n      \"lastPrompt\": \"tab\\there \\u0001 caf\u{e9} \\ud83d\"\n    }\n  },\n  \"empty\": {}\n}";
        assert_eq!(round_trip(text), text);
    }
}
