//! The `native` decoder on arbitrary bytes (seeds: `fuzz/seed.py`), and its one-pass reader
//! against serde's: what the one-pass reader accepts, serde reads to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhid_decode::Format;
use nhid_decode::native::{by_serde, one_pass};

fuzz_target!(|bytes: &[u8]| {
    nhid_fuzz::check_decoder(bytes, Format::Native);
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Some(event) = one_pass::read(text)
    {
        assert_eq!(by_serde(text).map_err(|e| e.detail), Ok(event), "the one-pass reader and serde differ");
    }
});
