//! The Firefox Profiler's processed format, through the crate samply uses
//! (fxprof-processed-profile): a process track per pid and a thread track
//! per tid, every sample on the timeline with its stack (frames named by
//! msen, so the profile needs no symbol server), Kernel and User categories,
//! and markers for what the recording itself lost (LOST records) and for
//! samples whose flow tag is missing. (Mode switches arrive with the agent.)

use crate::analyze::stacks::Stacks;
use fxprof_processed_profile::{
    CategoryColor, CategoryPairHandle, CpuDelta, Frame, FrameFlags, FrameInfo, MarkerFieldFlags, MarkerFieldFormat, MarkerTiming, Profile,
    ReferenceTimestamp, SamplingInterval, StaticSchemaMarker, StaticSchemaMarkerField, StringHandle, ThreadHandle, Timestamp,
};
use std::collections::BTreeMap;

/// LOST records: the kernel dropped this many records (its ring was full).
#[derive(Debug, Clone)]
struct LostMarker {
    name: StringHandle,
    count: u64,
}

impl StaticSchemaMarker for LostMarker {
    const UNIQUE_MARKER_TYPE_NAME: &'static str = "MsenLost";
    const DESCRIPTION: Option<&'static str> = Some("Records the kernel dropped while msen recorded (ring buffer full)");
    const CHART_LABEL: Option<&'static str> = Some("{marker.data.count} lost");
    const TABLE_LABEL: Option<&'static str> = Some("{marker.name}: {marker.data.count} records");
    const FIELDS: &'static [StaticSchemaMarkerField] = &[StaticSchemaMarkerField {
        key: "count",
        label: "Records lost",
        format: MarkerFieldFormat::Integer,
        flags: MarkerFieldFlags::SEARCHABLE,
    }];

    fn name(&self, _p: &mut Profile) -> StringHandle {
        self.name
    }
    fn category(&self, _p: &mut Profile) -> fxprof_processed_profile::CategoryHandle {
        fxprof_processed_profile::CategoryHandle::OTHER
    }
    fn string_field_value(&self, _i: u32) -> StringHandle {
        self.name
    }
    fn number_field_value(&self, _i: u32) -> f64 {
        self.count as f64
    }
}

/// Samples without their flow tag in a capture that tagged samples: an
/// interval over a thread's consecutive untagged samples.
#[derive(Debug, Clone)]
struct TagGapMarker {
    name: StringHandle,
    samples: u64,
}

impl StaticSchemaMarker for TagGapMarker {
    const UNIQUE_MARKER_TYPE_NAME: &'static str = "MsenFlowTagGap";
    const DESCRIPTION: Option<&'static str> = Some("Samples whose flow tag is missing (not joined to a flow)");
    const CHART_LABEL: Option<&'static str> = Some("{marker.data.samples} untagged");
    const TABLE_LABEL: Option<&'static str> = Some("{marker.name}: {marker.data.samples} samples");
    const FIELDS: &'static [StaticSchemaMarkerField] = &[StaticSchemaMarkerField {
        key: "samples",
        label: "Samples",
        format: MarkerFieldFormat::Integer,
        flags: MarkerFieldFlags::SEARCHABLE,
    }];

    fn name(&self, _p: &mut Profile) -> StringHandle {
        self.name
    }
    fn category(&self, _p: &mut Profile) -> fxprof_processed_profile::CategoryHandle {
        fxprof_processed_profile::CategoryHandle::OTHER
    }
    fn string_field_value(&self, _i: u32) -> StringHandle {
        self.name
    }
    fn number_field_value(&self, _i: u32) -> f64 {
        self.samples as f64
    }
}

/// The profile of `st`; `lost` are the trace's LOST records (time, count).
pub fn profile(st: &Stacks, name: &str, lost: &[(u64, u64)], interval_ns: u64) -> Profile {
    let reference = ReferenceTimestamp::from_millis_since_unix_epoch(st.unix_ns(st.first_time) as f64 / 1e6);
    let mut p = Profile::new(name, reference, SamplingInterval::from_nanos(interval_ns.max(1)));
    p.set_os_name("Linux");
    let user: CategoryPairHandle = p.add_category("User", CategoryColor::Yellow).into();
    let kernel: CategoryPairHandle = p.add_category("Kernel", CategoryColor::Orange).into();
    let at = |t: u64| Timestamp::from_nanos_since_reference(t.saturating_sub(st.first_time));
    // Processes and threads in (pid, tid) order, named by their last command.
    let mut threads: BTreeMap<(u32, u32), (String, u64)> = BTreeMap::new();
    let mut comms: BTreeMap<(u32, u32), BTreeMap<&str, u64>> = BTreeMap::new();
    for t in &st.samples {
        let s = &st.stacks[t.stack as usize];
        threads.entry((s.pid, s.tid)).or_insert((String::new(), t.time));
        *comms.entry((s.pid, s.tid)).or_default().entry(s.comm.as_str()).or_default() += 1;
    }
    // Named by the command that holds most of the thread's samples.
    for (k, v) in threads.iter_mut() {
        if let Some((c, _)) = comms.get(k).and_then(|m| m.iter().max_by_key(|(c, n)| (**n, std::cmp::Reverse(*c)))) {
            v.0 = c.to_string();
        }
    }
    let mut handles: BTreeMap<(u32, u32), ThreadHandle> = BTreeMap::new();
    let mut processes = BTreeMap::new();
    for (&(pid, tid), (comm, start)) in &threads {
        let proc = *processes.entry(pid).or_insert_with(|| {
            let name = threads.get(&(pid, pid)).map_or(comm.as_str(), |t| t.0.as_str());
            p.add_process(name, pid, at(*start))
        });
        let th = p.add_thread(proc, tid, at(*start), pid == tid);
        p.set_thread_name(th, comm);
        handles.insert((pid, tid), th);
    }
    // Each stack once per thread (root first), then the samples in time order.
    let mut stack_handles: Vec<Option<fxprof_processed_profile::StackHandle>> = vec![None; st.stacks.len()];
    let mut interned = vec![false; st.stacks.len()];
    let mut names: BTreeMap<String, StringHandle> = BTreeMap::new();
    for t in &st.samples {
        let si = t.stack as usize;
        let s = &st.stacks[si];
        let th = handles[&(s.pid, s.tid)];
        if !interned[si] {
            let mut frames = Vec::new();
            for &fi in s.frames.iter().rev() {
                let f = &st.frames[fi as usize];
                let cat = if f.kernel { kernel } else { user };
                let n = f.lines.len();
                let labels: Vec<String> = if n == 0 {
                    vec![f.function.clone()]
                } else {
                    f.lines
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(i, l)| if i + 1 == n { f.function.clone() } else { l.function.clone() })
                        .collect()
                };
                for label in labels {
                    let h = *names.entry(label).or_insert_with_key(|k| p.intern_string(k));
                    frames.push(FrameInfo { frame: Frame::Label(h), category_pair: cat, flags: FrameFlags::empty() });
                }
            }
            stack_handles[si] = p.intern_stack_frames(th, frames.into_iter());
            interned[si] = true;
        }
        // One sample each, as the profiler counts them (the period is the
        // kernel's sampling interval, not work done).
        p.add_sample(th, at(t.time), stack_handles[si], CpuDelta::from_nanos(0), 1);
    }
    // Runs of a thread's samples that lost their flow tag.
    let gap_name = p.intern_string("Flow tag missing");
    let mut runs: BTreeMap<(u32, u32), (u64, u64, u64)> = BTreeMap::new();
    let mut gaps: Vec<((u32, u32), u64, u64, u64)> = Vec::new();
    for t in &st.samples {
        let s = &st.stacks[t.stack as usize];
        let k = (s.pid, s.tid);
        if s.tag_missing {
            let r = runs.entry(k).or_insert((t.time, t.time, 0));
            r.1 = t.time;
            r.2 += 1;
        } else if let Some((a, b, n)) = runs.remove(&k) {
            gaps.push((k, a, b, n));
        }
    }
    gaps.extend(runs.into_iter().map(|(k, (a, b, n))| (k, a, b, n)));
    gaps.sort_unstable();
    for (k, a, b, n) in gaps {
        p.add_marker(handles[&k], MarkerTiming::Interval(at(a), at(b)), TagGapMarker { name: gap_name, samples: n });
    }
    // What the recording lost, on a track of its own.
    if lost.iter().any(|&(_, n)| n > 0) {
        let proc = p.add_process("msen (recording)", 0, at(st.first_time));
        let th = p.add_thread(proc, 0, at(st.first_time), true);
        p.set_thread_name(th, "msen");
        let name = p.intern_string("Lost records");
        let mut sorted = lost.to_vec();
        sorted.sort_unstable();
        for (t, count) in sorted {
            let t = if t == 0 { st.first_time } else { t };
            p.add_marker(th, MarkerTiming::Instant(at(t)), LostMarker { name, count });
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::stacks::{Frame, Stack, TimedSample};

    #[test]
    fn lost_records_and_untagged_runs_are_markers() {
        let frame = Frame {
            kernel: false,
            address: 0x1000,
            function: "work".into(),
            resolved: true,
            dso: "app".into(),
            path: "/app".into(),
            build_id: None,
            mapping: None,
            lines: vec![],
        };
        let stack = |tag_missing| Stack {
            event: 0,
            pid: 7,
            tid: 7,
            comm: "app".into(),
            cpu: 0,
            flow: None,
            mem: None,
            tag_missing,
            frames: vec![0],
            samples: 1,
            period: 1,
        };
        // Tagged, two untagged, tagged, one untagged at the end: two gaps.
        let times = [(10, 0), (20, 1), (30, 1), (40, 0), (50, 1)];
        let st = Stacks {
            events: vec!["cpu-clock".into()],
            frames: vec![frame],
            stacks: vec![stack(false), stack(true)],
            samples: times.iter().map(|&(t, s)| TimedSample { time: t, stack: s, period: 1 }).collect(),
            total_samples: 5,
            first_time: 10,
            last_time: 50,
            ..Default::default()
        };
        let p = serde_json::to_value(profile(&st, "t", &[(35, 4)], 1000)).unwrap();
        let threads = p["threads"].as_array().unwrap();
        assert_eq!(threads.len(), 2, "the app and msen's own track");
        let app = threads.iter().find(|t| t["name"] == "app").unwrap();
        assert_eq!(app["samples"]["length"], 5);
        assert_eq!(app["markers"]["length"], 2, "{}", app["markers"]);
        let msen = threads.iter().find(|t| t["name"] == "msen (recording)").unwrap();
        assert_eq!(msen["markers"]["length"], 1);
    }
}
