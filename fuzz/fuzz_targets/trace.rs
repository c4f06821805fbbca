//! Any bytes through the .msen reader (header, index, recovery scan, block
//! decoding, record-columns inverse) and a report.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = msen::trace::OpenOptions { skip_corrupt: true };
    let Ok(t) = msen::trace::Trace::from_bytes("fuzz", data.to_vec(), opts) else { return };
    if let Ok(l) = msen::analyze::Loaded::from_trace(t, &Default::default()) {
        let _ = msen::analyze::report::report(&l, &Default::default());
    }
    let _ = msen::trace::delta::decode(data);
});
