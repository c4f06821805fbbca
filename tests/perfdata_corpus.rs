//! Conformance on ../shared/perfdata: 39 recordings from real Intel, AMD,
//! Arm, i686, armv7 and POWER machines with stock perf 6.1's outputs beside
//! each. Every file must be read (or refused with a typed error naming why),
//! and msen's numbers must equal perf's: samples per event, lost records,
//! and the report's shares by command and shared object.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::perfout::*;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/perfdata");
    if p.join("MANIFEST.tsv").exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is missing (CI has it beside the checkout)", p.display());
        None
    }
}

/// Every NAME.data and derived copy, with the NAME of the reference outputs.
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut v = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("derived")] {
        for e in std::fs::read_dir(&sub).unwrap().flatten() {
            let p = e.path();
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(stem) = n.strip_suffix(".data") {
                let name = stem.split('.').next().unwrap().to_string();
                v.push((p, name));
            }
        }
    }
    v.sort();
    v
}

#[test]
fn every_corpus_file_is_read_with_perfs_counts() {
    let Some(dir) = corpus() else { return };
    let mut checked = 0;
    let mut refused = Vec::new();
    for (path, name) in files(&dir) {
        let stats = std::fs::read_to_string(dir.join(format!("{name}.stats.txt"))).unwrap_or_default();
        let (total, per_event) = perf_stats(&stats);
        let raw = std::fs::read_to_string(dir.join(format!("{name}.rawheader.txt"))).unwrap_or_default();
        let branch_mode = raw.lines().any(|l| l.starts_with("feature bits set:") && l.split_whitespace().any(|w| w == "BRANCH_STACK"));
        let o = run(&["info", "--format", "json", path.to_str().unwrap()]);
        if !o.status.success() {
            assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
            assert!(stderr(&o).contains("perf.data"), "{name}: the error names the format: {}", stderr(&o));
            // Only a file stock perf cannot read either may be refused.
            assert!(total.is_empty(), "{name}: perf reads it ({total:?}) but msen refused: {}", stderr(&o));
            refused.push(name);
            continue;
        }
        let j = json(&o);
        if total.is_empty() {
            // perf 6.1 cannot read this one (the big-endian POWER pipe file
            // with legacy feature records): nothing to compare, but it must
            // yield its samples.
            assert!(j["samples"].as_u64().unwrap() > 0, "{name}: {j}");
            checked += 1;
            continue;
        }
        let counts = &j["record_counts"];
        for kind in ["SAMPLE", "LOST", "LOST_SAMPLES", "MMAP", "MMAP2", "COMM", "FORK", "EXIT"] {
            let want = total.get(kind).copied().unwrap_or(0);
            let got = counts[kind].as_u64().unwrap_or(0);
            assert_eq!(got, want, "{name} ({}): {kind} records", path.display());
        }
        let events = j["events"].as_array().unwrap();
        for (ev, n) in &per_event {
            // In files with the BRANCH_STACK header feature perf reports in
            // branch mode, where every branch-stack entry counts as a sample.
            let got: u64 = events
                .iter()
                .filter(|e| e["name"] == ev.as_str())
                .map(|e| {
                    if branch_mode && e["attr"]["sample_type"].as_u64().unwrap() & (1 << 11) != 0 {
                        e["branch_entries"].as_u64().unwrap()
                    } else {
                        e["samples"].as_u64().unwrap()
                    }
                })
                .sum();
            assert_eq!(
                got,
                *n,
                "{name} ({}): samples of '{ev}' (msen events: {:?})",
                path.display(),
                events.iter().map(|e| e["name"].clone()).collect::<Vec<_>>()
            );
        }
        checked += 1;
    }
    eprintln!("checked {checked} files; refused {refused:?}");
    assert!(checked >= 47, "{checked} files checked");
    assert!(refused.is_empty(), "{refused:?}");
}

#[test]
fn report_shares_by_comm_and_dso_match_perf() {
    let Some(dir) = corpus() else { return };
    let mut compared = 0;
    for (path, name) in files(&dir) {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.report.txt"))) else { continue };
        let sections = perf_report_sections(&text);
        // Group reports put members side by side, and branch-mode reports
        // (files with the BRANCH_STACK feature) count branches: other views.
        let raw = std::fs::read_to_string(dir.join(format!("{name}.rawheader.txt"))).unwrap_or_default();
        let branch_mode = raw.lines().any(|l| l.starts_with("feature bits set:") && l.split_whitespace().any(|w| w == "BRANCH_STACK"));
        if sections.is_empty() || text.contains("of events 'anon group") || branch_mode {
            continue;
        }
        let o = run(&["report", "--format", "json", "--no-children", "--sort", "comm,dso", path.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let j = json(&o);
        compared += check_sections(&name, &sections, &j);
    }
    eprintln!("compared {compared} report sections");
    assert!(compared >= 30, "{compared}");
}

/// Cut and flipped perf.data: a typed error or an answer, never a panic or a
/// hang. In-process (the library is what must hold), on the smaller files.
#[test]
fn damaged_perf_data_never_panics() {
    let Some(dir) = corpus() else { return };
    let started = std::time::Instant::now();
    let mut tried = 0;
    for (path, name) in files(&dir) {
        let bytes = std::fs::read(&path).unwrap();
        if bytes.len() > 400_000 {
            continue;
        }
        // Both ways into an analysis: a copied trace, and samples read in
        // place (what `msen report -i perf.data` does).
        let analyze = |b: &[u8]| {
            if let Ok(t) = msen::import::perf_data_to_trace_bytes(b, "") {
                let t = msen::trace::Trace::from_bytes("x", t, Default::default()).unwrap();
                if let Ok(l) = msen::analyze::Loaded::from_trace(t, &Default::default()) {
                    let _ = msen::analyze::report::report(&l, &Default::default());
                    let _ = msen::analyze::info::info(&l);
                }
            }
            if let Ok(t) = msen::import::open_perf_data_direct(msen::trace::reader::External(b.to_vec()), "x", Default::default()) {
                if let Ok(l) = msen::analyze::Loaded::from_trace(t, &Default::default()) {
                    let _ = msen::analyze::report::report(&l, &Default::default());
                    let _ = msen::analyze::false_share::false_share(
                        &l,
                        &msen::analyze::false_share::FalseShareConfig {
                            display: msen::analyze::false_share::Display::Tot,
                            show_all: true,
                            line_size: None,
                        },
                    );
                }
            }
        };
        let step = (bytes.len() / 60).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            analyze(&bytes[..cut]);
            tried += 1;
        }
        for (i, pos) in (0..bytes.len()).step_by(step).enumerate() {
            let mut b = bytes.clone();
            b[pos] ^= [0x01, 0x80, 0xff, 0x10][i % 4];
            analyze(&b);
            tried += 1;
        }
        assert!(started.elapsed().as_secs() < 240, "too slow at {name}: a hang?");
    }
    eprintln!("{tried} damaged variants analyzed in {:?}", started.elapsed());
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    let o = run(&["script", "--format", "jsonl", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Multiset of lines.
fn bag(lines: impl Iterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l).or_insert(0) += 1;
    }
    m
}

/// `perf script -F ip,brstack` (first 200 lines) against msen's branch entries.
#[test]
fn branch_stacks_match_perf_script() {
    let Some(dir) = corpus() else { return };
    let mut files_checked = 0;
    for (path, name) in files(&dir) {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.brstack.txt"))) else { continue };
        // The branch entries of each sample (with call chains, perf prints the
        // chain's ips on lines of their own and the entries after them).
        let perf_lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('$'))
            .map(|l| l.split_whitespace().filter(|t| t.contains('/')).collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect();
        let ours: Vec<String> = jsonl(&path)
            .iter()
            .filter(|s| s["type"] == "SAMPLE")
            .map(|s| s["branch_stack"].as_array().into_iter().flatten().map(|b| b["text"].as_str().unwrap()).collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect();
        let (want, have) = (bag(perf_lines.iter().cloned()), bag(ours.iter().cloned()));
        for (line, n) in &want {
            let h = have.get(line).copied().unwrap_or(0);
            assert!(h >= *n, "{name}: perf's branch line appears {n}x, msen's {h}x:\n{line}\nmsen's first: {:?}", ours.first());
        }
        // In LBR call-stack mode perf folds the stack into the call chain
        // and prints entries only for some samples: containment is the check.
        let evlist = std::fs::read_to_string(dir.join(format!("{name}.evlist.txt"))).unwrap_or_default();
        if text.lines().count() < 200 && !evlist.contains("CALL_STACK") {
            assert_eq!(perf_lines.len(), ours.len(), "{name}: sample count");
        }
        files_checked += 1;
    }
    assert!(files_checked >= 6, "{files_checked}");
}

/// `perf script -F ...,addr,data_src,weight[,phys_addr]` (complete) against
/// msen's script on the memory files.
#[test]
fn memory_samples_match_perf_script() {
    let Some(dir) = corpus() else { return };
    let mut files_checked = 0;
    for (path, name) in files(&dir) {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.memscript.txt"))) else { continue };
        let perf_lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains("|OP "))
            .map(|l| {
                let (head, tail) = l.split_once("|OP ").unwrap();
                let h: Vec<&str> = head.split_whitespace().collect();
                let (addr, dsrc) = (h[h.len() - 2], h[h.len() - 1]);
                let time = h
                    .iter()
                    .find(|t| t.ends_with(':') && t.contains('.') && t[..t.len() - 1].parse::<f64>().is_ok())
                    .unwrap()
                    .trim_end_matches(':');
                let (fields, rest) = tail.split_once("|BLK ").unwrap();
                let mut rest_t = rest.split_whitespace().peekable();
                let mut blk = Vec::new();
                while let Some(t) = rest_t.peek() {
                    if ["N/A", "Data", "Addr"].contains(t) {
                        blk.push(rest_t.next().unwrap());
                    } else {
                        break;
                    }
                }
                let weight = rest_t.next().unwrap();
                format!("{time} {addr} {dsrc} |OP {fields}|BLK  {} {weight}", blk.join(" "))
            })
            .collect();
        let ours: Vec<String> = jsonl(&path)
            .iter()
            .filter(|s| s["type"] == "SAMPLE")
            .map(|s| {
                let t = s["time"].as_u64().unwrap();
                let hex =
                    |k: &str| format!("{:x}", u64::from_str_radix(s[k].as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).unwrap());
                let text = s["data_src_fields"]["text"].as_str().unwrap();
                format!(
                    "{}.{:06} {} {} {} {}",
                    t / 1_000_000_000,
                    (t % 1_000_000_000) / 1000,
                    hex("addr"),
                    hex("data_src"),
                    text,
                    s["weight"].as_u64().unwrap()
                )
            })
            .collect();
        assert_eq!(bag(perf_lines.into_iter()), bag(ours.into_iter()), "{name}: memory samples differ");
        files_checked += 1;
    }
    assert_eq!(files_checked, 8);
}

/// `perf report --branch-stack --sort dso_from,dso_to,symbol_from,symbol_to`:
/// branch counts and shares by source and target DSO.
#[test]
fn branch_report_matches_perf() {
    let Some(dir) = corpus() else { return };
    let mut compared = 0;
    for (path, name) in files(&dir) {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.branch-report.txt"))) else { continue };
        let sections = perf_report_sections(&text);
        if sections.is_empty() {
            continue;
        }
        let o = run(&["report", "--branch", "--format", "json", "--sort", "dso_from,dso_to,sym_from,sym_to", path.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        compared += check_sections_by(&name, &sections, &json(&o), ("dso_from", "dso_to"));
    }
    eprintln!("compared {compared} branch report sections");
    assert!(compared >= 6, "{compared}");
}

/// A minimal file-mode perf.data: one cpu-clock attr, `data` as the data
/// section, and the given feature sections.
fn tiny_perf_data(data: &[u8], features: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let attr = msen::perf::attr::EventAttr { type_: 1, size: 128, sample_type: 0x107, ..Default::default() };
    let mut f = Vec::new();
    let attr_off = 104u64;
    let data_off = attr_off + 144;
    f.extend_from_slice(b"PERFILE2");
    for v in [104u64, 144, attr_off, 144, data_off, data.len() as u64, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    let mut bits = [0u64; 4];
    for (bit, _) in features {
        bits[(*bit / 64) as usize] |= 1 << (bit % 64);
    }
    for b in bits {
        f.extend_from_slice(&b.to_le_bytes());
    }
    f.extend(attr.to_bytes(128));
    f.extend_from_slice(&[0u8; 16]);
    f.extend_from_slice(data);
    let mut body_off = f.len() as u64 + 16 * features.len() as u64;
    for (_, body) in features {
        f.extend_from_slice(&body_off.to_le_bytes());
        f.extend_from_slice(&(body.len() as u64).to_le_bytes());
        body_off += body.len() as u64;
    }
    for (_, body) in features {
        f.extend_from_slice(body);
    }
    f
}

/// Found by fuzzing: NRCPUS claiming 4 billion CPUs made the importer build
/// a 3 GB CPU list. Now bounded, and quick.
#[test]
fn regression_huge_nrcpus_feature_is_bounded() {
    let d = tmpdir();
    let p = d.path().join("huge-nrcpus.data");
    let mut nrcpus = Vec::new();
    nrcpus.extend_from_slice(&u32::MAX.to_le_bytes());
    nrcpus.extend_from_slice(&(u32::MAX - 7).to_le_bytes());
    std::fs::write(&p, tiny_perf_data(&[], &[(7, nrcpus)])).unwrap();
    let t = std::time::Instant::now();
    let o = run(&["info", "--format", "json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t.elapsed().as_secs() < 5);
    assert_eq!(json(&o)["nr_cpus"], 1 << 16);
}

/// `perf mem report --sort=mem,snoop,tlb,lock,blocked,local_weight`: overhead
/// by weight, one row per exact weight; msen's `report --weight` agrees.
#[test]
fn mem_report_by_weight_matches_perf() {
    let Some(dir) = corpus() else { return };
    let mut rows = 0;
    for (path, name) in files(&dir) {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.mem-sort.txt"))) else { continue };
        let sections = perf_mem_sections(&text);
        let o = run(&[
            "report",
            "--weight",
            "--no-children",
            "--format",
            "json",
            "--sort",
            "mem,snoop,tlb,lock,blocked,weight",
            path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        rows += check_mem_sections(&name, &sections, &json(&o));
    }
    assert!(rows > 50, "{rows} rows compared");
}

/// `--call-graph lbr` recordings: the user part of each chain is the LBR
/// call stack (perf's resolve_lbr_callchain_sample), so children equal
/// perf's (the report lists rows as perf does, by children).
#[test]
fn lbr_call_stack_children_match_perf() {
    let Some(dir) = corpus() else { return };
    let name = "lbr_callstack_cfl_perfparser";
    let theirs: Vec<f64> = std::fs::read_to_string(dir.join(format!("{name}.report.txt")))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[0].ends_with('%') && f[1].ends_with('%')).then(|| f[0].trim_end_matches('%').parse().unwrap())
        })
        .collect();
    assert!(theirs.len() >= 10);
    let o = run(&["report", "--format", "json", dir.join(format!("{name}.data")).to_str().unwrap()]);
    let mut ours: Vec<f64> =
        json(&o)["rows"].as_array().unwrap().iter().map(|r| (r["children_percent"].as_f64().unwrap() * 100.0).round() / 100.0).collect();
    ours.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(&ours[..theirs.len()], &theirs[..], "children shares, largest first");
}
