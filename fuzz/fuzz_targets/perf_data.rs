//! Any bytes through the perf.data reader, the import and a report: a typed
//! error or an answer, never a panic. Seed with ../shared/perfdata/*.data.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bytes) = msen::import::perf_data_to_trace_bytes(data, "fuzz") else { return };
    let Ok(t) = msen::trace::Trace::from_bytes("fuzz", bytes, Default::default()) else { return };
    if let Ok(l) = msen::analyze::Loaded::from_trace(t, &Default::default()) {
        let _ = msen::analyze::report::report(&l, &Default::default());
        let _ = msen::analyze::info::info(&l);
    }
});
