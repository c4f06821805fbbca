//! Any bytes through the path every analysis takes for a perf.data: opened
//! in place (open_perf_data_direct: sample blocks pointing into the input),
//! loaded, reported with call graphs and children, branch view, script,
//! false-share, numa and flows: a typed error or an answer, never a panic.
//! Seed with ../shared/perfdata/*.data.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ext = msen::trace::reader::External(data.to_vec());
    let Ok(t) = msen::import::open_perf_data_direct(ext, "fuzz", Default::default()) else { return };
    let Ok(l) = msen::analyze::Loaded::from_trace(t, &Default::default()) else { return };
    let _ = msen::analyze::report::report(&l, &Default::default());
    let cfg = msen::analyze::report::ReportConfig { branch: true, ..Default::default() };
    let _ = msen::analyze::report::report(&l, &cfg);
    let _ = msen::analyze::info::info(&l);
    let mut sink = std::io::sink();
    let sc = msen::analyze::script::ScriptConfig { format: msen::analyze::script::ScriptFormat::Jsonl, all_records: true, srcline: false };
    let _ = msen::analyze::script::script(&l, &sc, &mut sink);
    let _ = msen::analyze::numa::numa(&l, 5);
    let _ = msen::analyze::flows::flows(&l, 3);
    let fs = msen::analyze::false_share::FalseShareConfig { display: msen::analyze::false_share::Display::Tot, show_all: true, line_size: None };
    let _ = msen::analyze::false_share::false_share(&l, &fs);
});
