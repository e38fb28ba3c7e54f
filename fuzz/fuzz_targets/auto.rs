//! Format detection (`format = "auto"`) on arbitrary bytes: a message detected as a format
//! decodes exactly as that format's decoder would decode it, and is accounted for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhid_decode::Format;

fuzz_target!(|bytes: &[u8]| {
    let auto = nhid_fuzz::check_decoder(bytes, Format::Auto);
    if let Some(format) = nhid_decode::detect(bytes) {
        assert_eq!(auto, nhid_fuzz::decode(bytes, format), "auto decodes unlike {format:?}");
    }
});
