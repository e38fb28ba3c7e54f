//! What `nhid replay` reads: the files people have, split into messages without holding a
//! file. JSON lines are the fast path, one message per line, and the only layout where a
//! malformed record cannot take the next with it: it ends at its newline. The layouts audit
//! logs are exported in are split by their JSON structure instead ([`Values`]): CloudTrail as
//! delivered to S3 (`{"Records":[...]}`, on one line or pretty-printed, one document after
//! another when files are concatenated), JSON arrays spread over many lines (the form most
//! published attack datasets use), pretty-printed records one after another. Gzip is
//! recognised by its magic bytes. At most `cap` bytes of one message are held, whatever its
//! size: a longer one is counted and hashed as it streams past.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use nhid_engine::Original;
use xxhash_rust::xxh3::Xxh3;

/// A message of input, or what is known of one longer than the reader holds.
#[derive(Clone, Copy, Debug)]
pub enum Line<'a> {
    Whole(&'a [u8]),
    TooLong(Original<'a>),
}

/// A file's messages, by its layout (see the module).
pub enum Input {
    Lines(Lines<BufReader<Box<dyn Read>>>),
    Values(Values<BufReader<Box<dyn Read>>>),
}

impl Input {
    /// `path` (`-`: standard input), decompressed when gzip, read by its layout.
    pub fn open(path: &Path, cap: usize) -> anyhow::Result<Input> {
        let raw: Box<dyn Read> = if path == Path::new("-") {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        };
        let mut buffered = BufReader::with_capacity(BUFFER, raw);
        let gz = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let mut inner = if gz {
            BufReader::with_capacity(BUFFER, Box::new(MultiGzDecoder::new(buffered)) as Box<dyn Read>)
        } else {
            buffered
        };
        Ok(if structured(inner.fill_buf()?) {
            Input::Values(Values::new(inner, cap))
        } else {
            Input::Lines(Lines::new(inner, cap))
        })
    }

    pub fn next(&mut self) -> io::Result<Option<Line<'_>>> {
        match self {
            Input::Lines(lines) => lines.next(),
            Input::Values(values) => values.next(),
        }
    }

    /// Whether input is buffered, so that the next message is read without waiting: when
    /// there is none, the next read may wait as long as whoever writes a pipe takes.
    pub fn buffered(&self) -> bool {
        match self {
            // The line handed out in place is still in the buffer.
            Input::Lines(lines) => lines.inner.buffer().len() > lines.handed,
            Input::Values(values) => !values.inner.buffer().is_empty(),
        }
    }
}

/// Bytes read from a file at once.
const BUFFER: usize = 1 << 18;

/// Whether a file starting with `head` is split by structure: it opens a JSON array, a
/// CloudTrail `Records` document, or an object whose first line holds nothing else (a
/// pretty-printed record). Anything else is JSON lines.
fn structured(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let head = head.trim_ascii_start();
    match head.first() {
        Some(b'[') => true,
        Some(b'{') => {
            let first_line = head[1..].split(|&b| b == b'\n').next().unwrap_or_default();
            first_line.trim_ascii().is_empty() || records_prefix(head) == Some(true)
        }
        _ => false,
    }
}

/// Whether `text` begins a delivery document, CloudTrail's `{"Records":[` or an Azure
/// diagnostic export's `{"records":[`, give or take whitespace: `None` while too short to tell.
fn records_prefix(text: &[u8]) -> Option<bool> {
    let each = [&b"\"Records\""[..], b"\"records\""].map(|key| document_prefix(text, key));
    match each {
        _ if each.contains(&Some(true)) => Some(true),
        _ if each.contains(&None) => None,
        _ => Some(false),
    }
}

fn document_prefix(text: &[u8], key: &[u8]) -> Option<bool> {
    let mut rest = text;
    for token in [&b"{"[..], key, b":", b"["] {
        rest = rest.trim_ascii_start();
        let n = rest.len().min(token.len());
        if rest[..n] != token[..n] {
            return Some(false);
        }
        if n < token.len() {
            return None;
        }
        rest = &rest[n..];
    }
    Some(true)
}

/// The message being read: its first `cap` bytes, its length, and once past `cap`, the
/// hash of all of it.
struct Message {
    cap: usize,
    head: Vec<u8>,
    len: usize,
    hash: Option<Xxh3>,
}

impl Message {
    fn new(cap: usize) -> Self {
        Message { cap, head: Vec::with_capacity(cap.min(4096)), len: 0, hash: None }
    }

    fn clear(&mut self) {
        self.head.clear();
        self.len = 0;
        self.hash = None;
    }

    fn push(&mut self, part: &[u8]) {
        self.len += part.len();
        match &mut self.hash {
            None if self.len <= self.cap => self.head.extend_from_slice(part),
            None => {
                let mut h = Xxh3::new();
                h.update(&self.head);
                h.update(part);
                let room = self.cap - self.head.len();
                self.head.extend_from_slice(&part[..room]);
                self.hash = Some(h);
            }
            Some(h) => h.update(part),
        }
    }

    fn line(&self) -> Line<'_> {
        match &self.hash {
            None => Line::Whole(&self.head),
            Some(h) => Line::TooLong(Original { head: &self.head, len: self.len, xxh3: h.digest128() }),
        }
    }
}

/// Reads lines (without their `\n`) of at most `cap` bytes. A longer line is counted and
/// hashed as it streams past and only its first `cap` bytes are kept, so that one line of
/// 50 MB costs `cap` bytes of memory, not three times its size. A line whole in the reader's
/// buffer is handed out from there, without a copy (consumed at the next call).
pub struct Lines<R> {
    inner: R,
    line: Message,
    /// Bytes of the buffer handed out in place by the last call, consumed by the next.
    handed: usize,
}

impl<R: BufRead> Lines<R> {
    pub fn new(inner: R, cap: usize) -> Self {
        Lines { inner, line: Message::new(cap), handed: 0 }
    }

    pub fn next(&mut self) -> io::Result<Option<Line<'_>>> {
        self.inner.consume(std::mem::take(&mut self.handed));
        self.line.clear();
        let mut read = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            let newline = memchr::memchr(b'\n', chunk);
            if let Some(at) = newline.filter(|&at| !read && at <= self.line.cap) {
                self.handed = at + 1;
                // The same bytes again (the buffer holds them: no read), borrowed for the
                // caller: the borrow checker does not let the first borrow out of the loop.
                return Ok(Some(Line::Whole(&self.inner.fill_buf()?[..at])));
            }
            read = true;
            self.line.push(&chunk[..newline.unwrap_or(chunk.len())]);
            let used = newline.map_or(chunk.len(), |at| at + 1);
            self.inner.consume(used);
            if newline.is_some() {
                break;
            }
        }
        Ok(read.then(|| self.line.line()))
    }
}

/// Where [`Values`] is in the file's structure, between messages.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Frame {
    /// Between top-level values.
    Top,
    /// Inside a top-level array: its elements are the messages.
    Array,
    /// Inside a `Records` document's array: its elements are the messages.
    Records,
    /// In a `Records` document after its array, skipping to the document's end.
    RecordsTail(Nesting),
}

/// Brackets and strings, to find where a value ends.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Nesting {
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl Nesting {
    /// Takes one byte; `true` when it closes the outermost bracket.
    fn step(&mut self, b: u8) -> bool {
        if self.in_string {
            match b {
                _ if self.escaped => self.escaped = false,
                b'\\' => self.escaped = true,
                b'"' => self.in_string = false,
                _ => {}
            }
            return false;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            // Closing what is not open: not this value's (a scalar's end).
            b'}' | b']' if self.depth == 0 => {}
            b'}' | b']' => {
                self.depth -= 1;
                return self.depth == 0;
            }
            _ => {}
        }
        false
    }
}

/// The value being read: its nesting, and for a top-level object still being told apart
/// from a `Records` document, that it is.
#[derive(Clone, Copy, Debug)]
struct Reading {
    nesting: Nesting,
    deciding: bool,
}

/// Splits JSON values (see the module): a top-level array or a `Records` document gives
/// its elements, any other top-level value itself. A value left open at the end of the input
/// is given as it is, for the engine to dead-letter as malformed.
pub struct Values<R> {
    inner: R,
    value: Message,
    frame: Frame,
}

impl<R: BufRead> Values<R> {
    pub fn new(inner: R, cap: usize) -> Self {
        Values { inner, value: Message::new(cap), frame: Frame::Top }
    }

    pub fn next(&mut self) -> io::Result<Option<Line<'_>>> {
        let Values { inner, value, frame } = self;
        value.clear();
        let mut reading: Option<Reading> = None;
        loop {
            let chunk = match inner.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                // The end: a value still open is given as read.
                return Ok(reading.map(|_| value.line()));
            }
            // The value's bytes in this chunk start at `start`; `end` is set once it is whole.
            let (mut start, mut end) = (0, None);
            let mut i = 0;
            while i < chunk.len() {
                let b = chunk[i];
                let Some(r) = &mut reading else {
                    match (*frame, b) {
                        (Frame::RecordsTail(mut n), _) => {
                            // Inside the document: it ends at the bracket closing it.
                            *frame = if n.step(b) && n.depth == 0 { Frame::Top } else { Frame::RecordsTail(n) };
                        }
                        (_, b' ' | b'\t' | b'\r' | b'\n' | 0xEF | 0xBB | 0xBF) => {}
                        (Frame::Top, b'[') => *frame = Frame::Array,
                        (Frame::Array | Frame::Records, b',') => {}
                        (Frame::Array, b']') => *frame = Frame::Top,
                        (Frame::Records, b']') => {
                            *frame = Frame::RecordsTail(Nesting { depth: 1, ..Nesting::default() });
                        }
                        _ => {
                            reading = Some(Reading {
                                nesting: Nesting::default(),
                                deciding: *frame == Frame::Top && b == b'{',
                            });
                            start = i;
                            continue;
                        }
                    }
                    i += 1;
                    continue;
                };
                let nesting = &mut r.nesting;
                let closes = nesting.step(b);
                if !nesting.in_string && nesting.depth == 0 && !closes && (i > start || value.len > 0) {
                    // A scalar (or stray text) ends before a separator or a closing bracket;
                    // a stray separator where a value starts is one of its own.
                    if matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n') {
                        end = Some(i);
                        break;
                    }
                }
                i += 1;
                if closes {
                    end = Some(i);
                    break;
                }
                if r.deciding {
                    value.push(&chunk[start..i]);
                    start = i;
                    match records_prefix(&value.head) {
                        Some(true) => {
                            // A delivery document: its records are the messages.
                            value.clear();
                            reading = None;
                            *frame = Frame::Records;
                        }
                        Some(false) => r.deciding = false,
                        None => {}
                    }
                }
            }
            match (reading.is_some(), end) {
                (true, Some(end)) => {
                    value.push(&chunk[start..end]);
                    inner.consume(end);
                    return Ok(Some(value.line()));
                }
                (true, None) => value.push(&chunk[start..]),
                (false, _) => {}
            }
            let used = chunk.len();
            inner.consume(used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A message as read: whole, or a long one's head, length and hash.
    type Read = Result<Vec<u8>, (Vec<u8>, usize, u128)>;

    fn read(line: Line<'_>) -> Read {
        match line {
            Line::Whole(text) => Ok(text.to_vec()),
            Line::TooLong(o) => Err((o.head.to_vec(), o.len, o.xxh3)),
        }
    }

    /// Every line `Lines` reads from `input` through a buffer of `buffer` bytes.
    fn read_lines(input: &[u8], cap: usize, buffer: usize) -> Vec<Read> {
        let mut lines = Lines::new(BufReader::with_capacity(buffer, input), cap);
        let mut out = Vec::new();
        while let Some(line) = lines.next().unwrap() {
            out.push(read(line));
        }
        out
    }

    /// Every message `Values` reads from `input` through a buffer of `buffer` bytes.
    fn read_values(input: &[u8], cap: usize, buffer: usize) -> Vec<Read> {
        let mut values = Values::new(BufReader::with_capacity(buffer, input), cap);
        let mut out = Vec::new();
        while let Some(line) = values.next().unwrap() {
            out.push(read(line));
        }
        out
    }

    fn whole(values: &[&str]) -> Vec<Read> {
        values.iter().map(|v| Ok(v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn a_long_line_is_counted_and_hashed_in_passing_and_the_next_lines_are_read() {
        let cap = 1000;
        let long = vec![b'x'; 3_000_000];
        let mut input = b"first\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nsecond\r\nlast");
        let mut lines = Lines::new(BufReader::with_capacity(1 << 16, &input[..]), cap);
        assert!(matches!(lines.next().unwrap(), Some(Line::Whole(b"first"))));
        match lines.next().unwrap() {
            Some(Line::TooLong(o)) => {
                assert_eq!((o.head, o.len), (&long[..cap], long.len()));
                assert_eq!(o.xxh3, xxhash_rust::xxh3::xxh3_128(&long));
            }
            other => panic!("{other:?}"),
        }
        // What the line cost: its first `cap` bytes, not its three megabytes.
        assert!(lines.line.head.capacity() <= 2 * cap, "{}", lines.line.head.capacity());
        assert!(matches!(lines.next().unwrap(), Some(Line::Whole(b"second\r"))));
        assert!(matches!(lines.next().unwrap(), Some(Line::Whole(b"last"))));
        assert!(lines.next().unwrap().is_none());
    }

    #[test]
    fn a_line_of_exactly_the_cap_is_whole() {
        let out = read_lines(b"abcd\nabcde\n\n", 4, 2);
        assert_eq!(out[0], Ok(b"abcd".to_vec()));
        assert_eq!(out[1], Err((b"abcd".to_vec(), 5, xxhash_rust::xxh3::xxh3_128(b"abcde"))));
        assert_eq!(out[2], Ok(Vec::new()));
        assert_eq!(out.len(), 3);
    }

    /// A line handed out in place is not input still buffered: after the last line read, the
    /// reader hands its batch over rather than wait on a pipe for more.
    #[test]
    fn a_line_handed_out_in_place_is_not_counted_as_buffered() {
        let reader: Box<dyn std::io::Read> = Box::new(&b"first\nsecond\n"[..]);
        let mut input = Input::Lines(Lines::new(BufReader::with_capacity(64, reader), 16));
        assert!(matches!(input.next().unwrap(), Some(Line::Whole(b"first"))));
        assert!(input.buffered(), "the second line waits in the buffer");
        assert!(matches!(input.next().unwrap(), Some(Line::Whole(b"second"))));
        assert!(!input.buffered(), "nothing but the line handed out");
        assert!(input.next().unwrap().is_none());
    }

    #[test]
    fn the_layout_is_told_from_the_first_bytes() {
        assert!(!structured(br#"{"eventName":"A"}"#));
        assert!(!structured(b"{\"eventName\":\"A\"}\n{\"eventName\":\"B\"}\n"));
        assert!(structured(b"  [\n{\"a\":1}]"));
        assert!(structured(b"\xEF\xBB\xBF[]"));
        assert!(structured(br#"{"Records":[{"a":1}]}"#));
        assert!(structured(b"{\n  \"Records\" : [\n"));
        assert!(structured(b"{\n  \"eventName\": \"A\"\n}\n"));
        assert!(!structured(b""));
        assert!(!structured(b"not json"));
    }

    #[test]
    fn cloudtrail_documents_give_their_records() {
        // As CloudTrail delivers them (one line), pretty-printed, and concatenated.
        let one = r#"{"Records":[{"eventName":"A","n":[1,{"x":"]}"}]},{"eventName":"B"}]}"#;
        let pretty = "{\n  \"Records\": [\n    {\n      \"eventName\": \"C\"\n    },\n    {\"eventName\": \"D\"}\n  ],\n  \"extra\": {\"k\": \"}\"}\n}\n";
        let input = format!("{one}\n{pretty}{one}");
        for buffer in [1, 3, 7, 64, 1 << 16] {
            let out = read_values(input.as_bytes(), 1000, buffer);
            let expected = whole(&[
                r#"{"eventName":"A","n":[1,{"x":"]}"}]}"#,
                r#"{"eventName":"B"}"#,
                "{\n      \"eventName\": \"C\"\n    }",
                r#"{"eventName": "D"}"#,
                r#"{"eventName":"A","n":[1,{"x":"]}"}]}"#,
                r#"{"eventName":"B"}"#,
            ]);
            assert_eq!(out, expected, "buffer {buffer}");
        }
        // Azure's diagnostic export, pretty-printed as a storage blob or a saved Event Hubs message.
        let azure =
            "{\n  \"records\": [\n    {\"category\": \"AuditLogs\"},\n    {\"category\": \"SignInLogs\"}\n  ]\n}\n";
        let out = read_values(azure.as_bytes(), 1000, 7);
        assert_eq!(out, whole(&[r#"{"category": "AuditLogs"}"#, r#"{"category": "SignInLogs"}"#]));
    }

    #[test]
    fn arrays_and_pretty_records_give_their_values_and_an_open_one_is_given_as_read() {
        let input = b"[\n  {\"a\": \"x\\\"y,]\"},\n  {\"b\": [1, 2]},\n  7, \"s\"\n]\n{\n \"c\": 1\n}\n{\"Recordsx\": 1}\n{\"d\": ";
        let out = read_values(input, 1000, 5);
        let expected = whole(&[
            r#"{"a": "x\"y,]"}"#,
            r#"{"b": [1, 2]}"#,
            "7",
            "\"s\"",
            "{\n \"c\": 1\n}",
            "{\"Recordsx\": 1}",
            "{\"d\": ",
        ]);
        assert_eq!(out, expected);
    }

    #[test]
    fn stray_separators_are_messages_of_their_own_and_reading_goes_on() {
        let out = read_values(b"{\n\"a\": 1\n}\n,\n{\"b\": 2}\n]\n", 1000, 4);
        assert_eq!(out, whole(&["{\n\"a\": 1\n}", ",", "{\"b\": 2}", "]"]));
        let out = read_values(b"[1,,2]", 1000, 2);
        assert_eq!(out, whole(&["1", "2"]));
    }

    #[test]
    fn a_value_past_the_cap_is_counted_and_hashed_and_the_next_is_read() {
        let big = format!(r#"{{"eventName":"{}"}}"#, "x".repeat(5000));
        let input = format!("{{\"Records\":[{big},{{\"eventName\":\"B\"}}]}}");
        let out = read_values(input.as_bytes(), 100, 64);
        assert_eq!(
            out[0],
            Err((big.as_bytes()[..100].to_vec(), big.len(), xxhash_rust::xxh3::xxh3_128(big.as_bytes())))
        );
        assert_eq!(out[1], Ok(br#"{"eventName":"B"}"#.to_vec()));
        assert_eq!(out.len(), 2);
    }

    proptest! {
        /// Whatever the buffer size, lines are what splitting on `\n` gives.
        #[test]
        fn lines_are_the_input_split_on_newlines(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), Just(b'\r')], 0..200),
            cap in 1usize..20,
            buffer in 1usize..16,
        ) {
            let mut expected: Vec<_> = input.split(|&b| b == b'\n').map(|line| {
                if line.len() <= cap { Ok(line.to_vec()) } else {
                    Err((line[..cap].to_vec(), line.len(), xxhash_rust::xxh3::xxh3_128(line)))
                }
            }).collect();
            // A final newline ends the last line rather than starting an empty one.
            if input.is_empty() || input.ends_with(b"\n") {
                expected.pop();
            }
            prop_assert_eq!(read_lines(&input, cap, buffer), expected);
        }

        /// Records written as a JSON array or a `Records` document, compact or pretty, in
        /// any buffer size: the same records, each reading back as what was written.
        #[test]
        fn exported_layouts_give_back_their_records(
            records in proptest::collection::vec(
                proptest::collection::btree_map("[a-z\"\\\\\\[\\]{},: ]{0,6}", "[a-z\"\\\\\\[\\]{},: \n]{0,8}", 0..4), 0..6),
            pretty in any::<bool>(),
            document in any::<bool>(),
            buffer in 1usize..32,
        ) {
            let values: Vec<serde_json::Value> = records.iter().map(|r| serde_json::json!(r)).collect();
            let text = match (document, pretty) {
                (true, true) => serde_json::to_string_pretty(&serde_json::json!({ "Records": values })).unwrap(),
                (true, false) => serde_json::to_string(&serde_json::json!({ "Records": values })).unwrap(),
                (false, true) => serde_json::to_string_pretty(&values).unwrap(),
                (false, false) => serde_json::to_string(&values).unwrap(),
            };
            prop_assert!(structured(text.as_bytes()));
            let out = read_values(text.as_bytes(), 1 << 20, buffer);
            let read: Vec<serde_json::Value> =
                out.into_iter().map(|r| serde_json::from_slice(&r.unwrap()).unwrap()).collect();
            prop_assert_eq!(read, values);
        }
    }
}
