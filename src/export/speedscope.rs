//! speedscope's file format (https://www.speedscope.app/file-format-schema.json):
//! one "sampled" profile per event and thread, samples in time order with
//! their periods as weights, frames shared across profiles.

use crate::analyze::stacks::Stacks;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// A profile's identity: event, pid, tid.
type Thread = (u16, u32, u32);

/// The speedscope document for `st` (samples in time order; without sample
/// times, one sample per distinct stack).
pub fn document(st: &Stacks, name: &str) -> Value {
    // Frames: one per function (name and file), inline functions as frames
    // of their own; speedscope keys frames by all their fields, so a line
    // would make each call site a function of its own.
    let mut frames: Vec<Value> = Vec::new();
    let mut frame_ids: HashMap<(String, Option<String>), usize> = HashMap::new();
    let mut intern = |name: &str, file: Option<&str>, frames: &mut Vec<Value>| -> usize {
        let k = (name.to_string(), file.map(str::to_string));
        if let Some(&i) = frame_ids.get(&k) {
            return i;
        }
        let mut f = json!({ "name": name });
        if let Some(file) = file {
            f["file"] = json!(file);
        }
        frames.push(f);
        frame_ids.insert(k, frames.len() - 1);
        frames.len() - 1
    };
    // Each stack's frame list, root first.
    let stacks: Vec<Vec<usize>> = st
        .stacks
        .iter()
        .map(|s| {
            let mut v = Vec::new();
            for &fi in s.frames.iter().rev() {
                let f = &st.frames[fi as usize];
                let n = f.lines.len();
                if n == 0 {
                    v.push(intern(&f.function, None, &mut frames));
                } else {
                    // lines are innermost first: walk them outermost first.
                    for (i, l) in f.lines.iter().enumerate().rev() {
                        let name = if i + 1 == n { f.function.as_str() } else { l.function.as_str() };
                        v.push(intern(name, l.file.as_deref(), &mut frames));
                    }
                }
            }
            v
        })
        .collect();
    // Profiles by (event, pid, tid), in that order, named by the command
    // that holds most of the thread's samples (not the shell that exec'd it).
    let mut groups: BTreeMap<Thread, Vec<(u64, usize, u64)>> = BTreeMap::new();
    let mut comms: BTreeMap<Thread, BTreeMap<&str, u64>> = BTreeMap::new();
    for (i, s) in st.stacks.iter().enumerate() {
        *comms.entry((s.event, s.pid, s.tid)).or_default().entry(s.comm.as_str()).or_default() += s.samples;
        if st.samples.is_empty() {
            groups.entry((s.event, s.pid, s.tid)).or_default().push((st.first_time, i, s.period));
        }
    }
    for t in &st.samples {
        let s = &st.stacks[t.stack as usize];
        groups.entry((s.event, s.pid, s.tid)).or_default().push((t.time, t.stack as usize, t.period));
    }
    let profiles: Vec<Value> = groups
        .into_iter()
        .map(|(k, samples)| {
            let (ev, pid, tid) = k;
            let comm = comms.get(&k).and_then(|m| m.iter().max_by_key(|(c, n)| (**n, std::cmp::Reverse(*c)))).map_or("?", |(c, _)| c);
            let event = st.events.get(ev as usize).map_or("?", String::as_str);
            let unit = if st.unit(ev as usize) == "nanoseconds" { "nanoseconds" } else { "none" };
            let total: u64 = samples.iter().map(|s| s.2).sum();
            json!({
                "type": "sampled",
                "name": format!("{comm} (pid {pid}, tid {tid}) {event}"),
                "unit": unit,
                "startValue": 0,
                "endValue": total,
                "samples": samples.iter().map(|s| &stacks[s.1]).collect::<Vec<_>>(),
                "weights": samples.iter().map(|s| s.2).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "name": name,
        "exporter": format!("msen {}", env!("CARGO_PKG_VERSION")),
        "activeProfileIndex": 0,
        "shared": { "frames": frames },
        "profiles": profiles,
    })
}
