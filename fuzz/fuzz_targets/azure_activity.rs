//! The `azure_activity` decoder on arbitrary bytes (seeds: `fuzz/seed.py`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhid_decode::Format;

fuzz_target!(|bytes: &[u8]| {
    nhid_fuzz::check_decoder(bytes, Format::AzureActivity);
});
