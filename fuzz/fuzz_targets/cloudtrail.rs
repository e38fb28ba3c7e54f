//! The `cloudtrail` decoder on arbitrary bytes (seeds: `fuzz/seed.py`), and its one-pass
//! reader against serde's: what the one-pass reader accepts, serde reads to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhid_decode::{DecodeContext, Format, cloudtrail};

fuzz_target!(|bytes: &[u8]| {
    nhid_fuzz::check_decoder(bytes, Format::Cloudtrail);
    if let Ok(text) = std::str::from_utf8(bytes)
        && let (Some(fast), serde) = cloudtrail::both_readers(text, &DecodeContext::default())
    {
        assert_eq!(fast.map_err(|e| e.detail), serde.map_err(|e| e.detail), "the one-pass reader and serde differ");
    }
});
