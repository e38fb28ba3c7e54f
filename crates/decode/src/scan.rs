//! A reader of JSON text in one pass, for the hot path's readers of known shapes (the
//! canonical event, the CloudTrail record): it reads values where they are, borrowing their
//! strings, and returns `None` wherever the text leaves the shapes it reads (an escape in a
//! string it returns, a number it cannot hold, anything that is not JSON). The caller then
//! leaves the text to the serde reader, which reads it or says why not, so this never
//! refuses anything and needs no error messages.

use std::borrow::Cow;

use nhid_model::time::{Millis, parse_rfc3339};
use wide::u8x16;

/// A position in the text. Every method returns `None` where the text leaves this reader's
/// shapes, and then the position no longer matters.
pub(crate) struct Reader<'a> {
    pub(crate) text: &'a str,
    pub(crate) at: usize,
}

/// The fields of one object seen so far: the serde reader refuses a field named twice.
#[derive(Default)]
pub(crate) struct Seen(u32);

impl Seen {
    pub(crate) fn first(&mut self, field: u32) -> Option<()> {
        let bit = 1 << field;
        (self.0 & bit == 0).then(|| self.0 |= bit)
    }
}

impl<'a> Reader<'a> {
    /// The next byte that is not JSON whitespace, not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            // Nothing above a space is whitespace: one comparison for nearly every byte.
            if b > b' ' || !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    pub(crate) fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Nothing but whitespace left.
    pub(crate) fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    pub(crate) fn literal(&mut self, word: &str) -> Option<()> {
        self.peek()?;
        self.text[self.at..].starts_with(word).then(|| self.at += word.len())
    }

    /// A string without escapes or control characters, borrowed.
    pub(crate) fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let len = plain_len(&self.text.as_bytes()[start..])?;
        // Quotes are ASCII, so both ends are character boundaries of the (valid) text.
        let s = self.text.get(start..start + len)?;
        self.at = start + len + 1;
        Some(s)
    }

    pub(crate) fn text_field(&mut self) -> Option<Cow<'a, str>> {
        self.string().map(Cow::Borrowed)
    }

    /// `null`, or what `read` reads.
    pub(crate) fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(None);
        }
        read(self).map(Some)
    }

    pub(crate) fn optional_text(&mut self) -> Option<Option<Cow<'a, str>>> {
        self.nullable(Self::text_field)
    }

    pub(crate) fn time(&mut self) -> Option<Millis> {
        parse_rfc3339(self.string()?)
    }

    pub(crate) fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal("true").map(|()| true),
            _ => self.literal("false").map(|()| false),
        }
    }

    /// A non-negative integer as JSON writes one (no leading zero, no fraction or
    /// exponent) that fits in a `u64`.
    pub(crate) fn integer(&mut self) -> Option<u64> {
        self.peek()?;
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(&b @ b'0'..=b'9') = bytes.get(self.at) {
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        let leading_zero = digits > 1 && bytes[start] == b'0';
        let fraction = matches!(bytes.get(self.at), Some(b'.' | b'e' | b'E'));
        (digits > 0 && !leading_zero && !fraction).then_some(n)
    }

    /// An object, each field handed to `field` with its name.
    pub(crate) fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let name = self.string()?;
            self.eat(b':')?;
            field(self, name)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array, each element handed to `element`.
    pub(crate) fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Any value, checked as JSON and read no further: the fields a reader does not use
    /// (CloudTrail's `requestParameters` hold whatever the call was given). Declined where
    /// the serde reader might see it otherwise: nested deeper than [`SKIP_DEPTH`], a `\u`
    /// escape of a surrogate, a number with an exponent or past 19 digits (which it may
    /// refuse as out of range).
    pub(crate) fn skip(&mut self) -> Option<()> {
        self.skip_within(SKIP_DEPTH)
    }

    fn skip_within(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.escaped_string(),
            b'{' if depth > 0 => self.object(|r, _| r.skip_within(depth - 1)),
            b'[' if depth > 0 => self.array(|r| r.skip_within(depth - 1)),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A string, escapes allowed, not returned.
    fn escaped_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        loop {
            self.at += special(&bytes[self.at..])?.0;
            match bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => match *bytes.get(self.at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                    b'u' => {
                        let hex = self.text.get(self.at + 2..self.at + 6)?;
                        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return None;
                        }
                        let unit = u16::from_str_radix(hex, 16).ok()?;
                        if (0xd800..0xe000).contains(&unit) {
                            return None;
                        }
                        self.at += 6;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// A number as JSON writes one, without an exponent, of 19 digits at most on either side.
    fn number(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let digits = |r: &mut Self| {
            let start = r.at;
            while bytes.get(r.at).is_some_and(u8::is_ascii_digit) {
                r.at += 1;
            }
            r.at - start
        };
        let start = self.at;
        let whole = digits(self);
        if whole == 0 || whole > 19 || (whole > 1 && bytes[start] == b'0') {
            return None;
        }
        if bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            let fraction = digits(self);
            if fraction == 0 || fraction > 19 {
                return None;
            }
        }
        (!matches!(bytes.get(self.at), Some(b'e' | b'E'))).then_some(())
    }
}

/// How deep [`Reader::skip`] reads into a value before it declines: deeper than any audit
/// record's fields, and within the serde reader's own limit.
const SKIP_DEPTH: usize = 16;

/// How many bytes precede the first `"` of `bytes`; `None` when an escape or a control
/// character comes first, or no quote.
pub(crate) fn plain_len(bytes: &[u8]) -> Option<usize> {
    special(bytes).and_then(|(at, quote)| quote.then_some(at))
}

/// Where the first `"`, `\` or control character of `bytes` is, if anywhere, and whether
/// it is the quote. Sixteen bytes at a time (SSE2, part of every x86-64): strings are most
/// of an audit record. The quote is told from the masks, not by reading the byte again: that
/// read waited on the whole search before it, on every string.
fn special(bytes: &[u8]) -> Option<(usize, bool)> {
    // The masks of the chunk's special bytes and of its quotes.
    let found = |chunk: [u8; 16]| {
        let v = u8x16::new(chunk);
        let quotes = v.simd_eq(u8x16::splat(b'"'));
        // A byte is a control character exactly when it is its own minimum with 0x1f.
        let others = v.simd_eq(u8x16::splat(b'\\')) | v.min(u8x16::splat(0x1f)).simd_eq(v);
        ((quotes | others).to_bitmask(), quotes.to_bitmask())
    };
    let first = |(mask, quotes): (u32, u32)| (mask.trailing_zeros() as usize, quotes & mask & mask.wrapping_neg() != 0);
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 16) {
        let masks = found(chunk.try_into().ok()?);
        if masks.0 != 0 {
            let (i, quote) = first(masks);
            return Some((at + i, quote));
        }
        at += 16;
    }
    // The last bytes, padded with quotes: the first found past them is none.
    let rest = &bytes[at..];
    let mut last = [b'"'; 16];
    last[..rest.len()].copy_from_slice(rest);
    let (i, quote) = first(found(last));
    (i < rest.len()).then_some((at + i, quote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_string_end_past_every_chunk_boundary() {
        for len in 0..40 {
            for special in ["\"", "\\", "\u{1f}", "\n"] {
                let s = "x".repeat(len);
                assert_eq!(plain_len(format!("{s}\"tail").as_bytes()), Some(len));
                let expect = (special == "\"").then_some(len);
                assert_eq!(plain_len(format!("{s}{special}y\"").as_bytes()), expect, "{len} {special:?}");
            }
            assert_eq!(plain_len(format!("{}é\"", "€".repeat(len)).as_bytes()), Some(len * 3 + 2));
            assert_eq!(plain_len("x".repeat(len).as_bytes()), None, "no closing quote");
        }
    }

    /// What `skip` passes is JSON, and the serde reader reads it; what it declines includes
    /// everything that is not.
    #[test]
    fn skips_json_values_and_declines_the_rest() {
        let skipped = |value: &str| {
            let mut r = Reader { text: value, at: 0 };
            r.skip().and_then(|()| r.end()).is_some()
        };
        for value in [
            r#""plain""#,
            r#""escapes \" \\ \/ \b \f \n \r \t \u00e9 end""#,
            r#"{"a":[1,-2,3.25,0,0.5,true,false,null,{"b":{}},[]],"c":"d"}"#,
            " [ 1 , { \"k\" : \"v\" } ] ",
            "-0",
            "1234567890123456789",
        ] {
            assert!(skipped(value), "{value}");
            assert!(serde_json::from_str::<serde_json::Value>(value).is_ok(), "{value}");
        }
        for value in [
            r#""unterminated"#,
            r#""\x""#,
            r#""\ud83d\ude00""#,
            r#""\u12""#,
            "\"raw \u{1} control\"",
            "01",
            "1.",
            ".5",
            "1e3",
            "12345678901234567890",
            "-",
            "+1",
            "tru",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "[1 2]",
            "'single'",
        ] {
            assert!(!skipped(value), "{value}");
        }
        let deep = format!("{}{}", "[".repeat(SKIP_DEPTH + 1), "]".repeat(SKIP_DEPTH + 1));
        assert!(!skipped(&deep), "deeper than SKIP_DEPTH");
        let deepest = format!("{}{}", "[".repeat(SKIP_DEPTH), "]".repeat(SKIP_DEPTH));
        assert!(skipped(&deepest));
    }
}
