//! From events and `perf record` options to the perf_event_attr msen opens,
//! following perf's evsel__config (checked against `perf record -vv` by the
//! attr differential test), plus what msen always samples (IDENTIFIER, CPU,
//! PERIOD, CLOCK_MONOTONIC) so every trace decodes the same way.

use super::events::EventSpec;
use crate::perf::attr::{flag, sample, EventAttr, ATTR_SIZE_VER7};
use crate::perf::pmu::Pmus;

/// `PERF_SAMPLE_BRANCH_*` bits of branch_sample_type.
pub mod branch {
    pub const USER: u64 = 1 << 0;
    pub const KERNEL: u64 = 1 << 1;
    pub const HV: u64 = 1 << 2;
    pub const ANY: u64 = 1 << 3;
    pub const ANY_CALL: u64 = 1 << 4;
    pub const ANY_RETURN: u64 = 1 << 5;
    pub const IND_CALL: u64 = 1 << 6;
    pub const ABORT_TX: u64 = 1 << 7;
    pub const IN_TX: u64 = 1 << 8;
    pub const NO_TX: u64 = 1 << 9;
    pub const COND: u64 = 1 << 10;
    pub const CALL_STACK: u64 = 1 << 11;
    pub const IND_JUMP: u64 = 1 << 12;
    pub const CALL: u64 = 1 << 13;
    pub const NO_FLAGS: u64 = 1 << 14;
    pub const NO_CYCLES: u64 = 1 << 15;
    pub const TYPE_SAVE: u64 = 1 << 16;
    pub const HW_INDEX: u64 = 1 << 17;
    pub const PRIV_SAVE: u64 = 1 << 18;
    /// The privilege-level bits.
    pub const PLM: u64 = USER | KERNEL | HV;

    /// perf's `-j` names.
    pub const NAMES: &[(&str, u64)] = &[
        ("u", USER),
        ("k", KERNEL),
        ("hv", HV),
        ("any", ANY),
        ("any_call", ANY_CALL),
        ("any_ret", ANY_RETURN),
        ("ind_call", IND_CALL),
        ("abort_tx", ABORT_TX),
        ("in_tx", IN_TX),
        ("no_tx", NO_TX),
        ("cond", COND),
        ("ind_jmp", IND_JUMP),
        ("call", CALL),
        ("save_type", TYPE_SAVE),
        ("stack", CALL_STACK),
        ("priv", PRIV_SAVE),
    ];

    /// Parse `-j any_call,u`; as perf's parse_branch_str, a list of only
    /// privilege levels means ANY (perf drops the levels then).
    pub fn parse(list: &str) -> Result<u64, String> {
        let mut m = 0;
        for w in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let (_, b) = NAMES.iter().find(|(n, _)| *n == w).ok_or_else(|| {
                format!("unknown branch filter '{w}'; use {}", NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))
            })?;
            m |= b;
        }
        if m & !PLM == 0 {
            m = ANY;
        }
        Ok(m)
    }

    /// perf's names for the set bits (`USER|ANY_CALL`).
    pub fn describe(m: u64) -> String {
        const ALL: &[(&str, u64)] = &[
            ("USER", USER),
            ("KERNEL", KERNEL),
            ("HV", HV),
            ("ANY", ANY),
            ("ANY_CALL", ANY_CALL),
            ("ANY_RETURN", ANY_RETURN),
            ("IND_CALL", IND_CALL),
            ("ABORT_TX", ABORT_TX),
            ("IN_TX", IN_TX),
            ("NO_TX", NO_TX),
            ("COND", COND),
            ("CALL_STACK", CALL_STACK),
            ("IND_JUMP", IND_JUMP),
            ("CALL", CALL),
            ("NO_FLAGS", NO_FLAGS),
            ("NO_CYCLES", NO_CYCLES),
            ("TYPE_SAVE", TYPE_SAVE),
            ("HW_INDEX", HW_INDEX),
            ("PRIV_SAVE", PRIV_SAVE),
        ];
        ALL.iter().filter(|(_, b)| m & b != 0).map(|(n, _)| *n).collect::<Vec<_>>().join("|")
    }
}

/// How call chains are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallGraph {
    #[default]
    None,
    /// Frame pointers, walked by the kernel (`-g`, `--call-graph fp`).
    Fp,
    /// A copy of the user stack and registers, unwound at analysis time.
    Dwarf { stack_size: u32 },
    /// The LBR call stack (Intel).
    Lbr,
}

impl CallGraph {
    /// Parse `fp`, `dwarf[,SIZE]`, `lbr` (perf's --call-graph values).
    pub fn parse(s: &str) -> Result<CallGraph, String> {
        let (mode, size) = s.split_once(',').map_or((s, None), |(m, z)| (m, Some(z)));
        match (mode, size) {
            ("fp", None) => Ok(CallGraph::Fp),
            ("lbr", None) => Ok(CallGraph::Lbr),
            ("dwarf", None) => Ok(CallGraph::Dwarf { stack_size: 8192 }),
            ("dwarf", Some(z)) => {
                let n: u32 = z.trim().parse().map_err(|_| format!("--call-graph dwarf,SIZE: '{z}' is not a number of bytes"))?;
                // The kernel takes a multiple of 8 up to 65528 (u16 in the record).
                if n == 0 || n > 65528 {
                    return Err(format!("--call-graph dwarf,{n}: the stack size must be 8..65528 bytes"));
                }
                Ok(CallGraph::Dwarf { stack_size: n.div_ceil(8) * 8 })
            }
            _ => Err(format!("unknown --call-graph mode '{s}'; use fp, dwarf[,SIZE] or lbr")),
        }
    }
}

/// The registers a DWARF unwinder needs, as perf's PERF_REGS_MASK: x86-64
/// AX..R15 without the segment registers; arm64 x0..x30, sp, pc.
pub fn user_regs_mask() -> u64 {
    if cfg!(target_arch = "aarch64") {
        (1 << 33) - 1
    } else {
        0xff0fff
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Samples per second per CPU (`-F`).
    Freq(u64),
    /// One sample every N events (`-c`).
    Period(u64),
}

/// perf record's sample options that shape the attrs.
#[derive(Debug, Clone, Default)]
pub struct SampleOptions {
    pub callgraph: CallGraph,
    /// `-d`: data addresses (ADDR, DATA_SRC, mmap_data).
    pub data: bool,
    /// `-W`: sample weight (WEIGHT_STRUCT on x86, as perf 6.1).
    pub weight: bool,
    pub phys_data: bool,
    pub data_page_size: bool,
    pub code_page_size: bool,
    /// `-b` / `-j`: branch_sample_type.
    pub branch_filter: Option<u64>,
}

/// The weight bit perf uses on this architecture.
fn weight_bit() -> u64 {
    if cfg!(target_arch = "x86_64") {
        sample::WEIGHT_STRUCT
    } else {
        sample::WEIGHT
    }
}

/// What an attr is opened for.
#[derive(Debug, Clone, Copy)]
pub struct AttrContext {
    /// This event carries mmap/comm/task tracking (the first event).
    pub tracking: bool,
    pub system_wide: bool,
    pub started_command: bool,
    /// The process may not sample the kernel (paranoid >= 2, not root).
    pub user_only: bool,
    /// Wake the reader after this many bytes of ring buffer.
    pub wakeup_bytes: u32,
}

/// Build one event's attr.
pub fn build(spec: &EventSpec, sampling: Sampling, opts: &SampleOptions, ctx: AttrContext) -> EventAttr {
    let mut st = sample::IDENTIFIER | sample::IP | sample::TID | sample::TIME | sample::CPU | sample::PERIOD;
    let mut flags = flag::DISABLED | flag::SAMPLE_ID_ALL | flag::USE_CLOCKID | flag::WATERMARK;
    let mut a = EventAttr {
        type_: spec.type_,
        size: ATTR_SIZE_VER7,
        config: spec.config,
        config1: spec.config1,
        config2: spec.config2,
        config3: spec.config3,
        wakeup: ctx.wakeup_bytes,
        clockid: libc::CLOCK_MONOTONIC,
        // Times enabled and running, so the agent can read each event's
        // multiplexing scale (ms_pmu_scale); samples do not carry them
        // (no PERF_SAMPLE_READ), so the sample layout is perf's.
        read_format: crate::perf::attr::read_format::TOTAL_TIME_ENABLED | crate::perf::attr::read_format::TOTAL_TIME_RUNNING,
        ..Default::default()
    };
    // data addresses: -d, page faults (which carry them), and --call-graph
    // dwarf, for which perf 6.1 also sets ADDR and DATA_SRC.
    let dwarf = matches!(opts.callgraph, CallGraph::Dwarf { .. });
    if opts.data || dwarf {
        st |= sample::ADDR | sample::DATA_SRC;
    } else if spec.has_data_addr() {
        st |= sample::ADDR;
    }
    let data_maps = opts.data || dwarf || spec.has_data_addr();
    if opts.weight {
        st |= weight_bit();
    }
    if opts.phys_data {
        st |= sample::PHYS_ADDR;
    }
    if opts.data_page_size {
        st |= sample::DATA_PAGE_SIZE;
    }
    if opts.code_page_size {
        st |= sample::CODE_PAGE_SIZE;
    }
    match opts.callgraph {
        CallGraph::None => {}
        CallGraph::Fp => st |= sample::CALLCHAIN,
        CallGraph::Dwarf { stack_size } => {
            st |= sample::CALLCHAIN | sample::REGS_USER | sample::STACK_USER;
            a.sample_regs_user = user_regs_mask();
            a.sample_stack_user = stack_size;
            // The kernel's user chain would stop at the first frame without
            // a frame pointer; the unwinder works from the stack copy.
            flags |= flag::EXCLUDE_CALLCHAIN_USER;
        }
        CallGraph::Lbr => {
            st |= sample::CALLCHAIN | sample::BRANCH_STACK;
            a.branch_sample_type = branch::USER | branch::CALL_STACK | branch::NO_FLAGS | branch::NO_CYCLES | branch::HW_INDEX;
        }
    }
    if let Some(b) = opts.branch_filter {
        st |= sample::BRANCH_STACK;
        a.branch_sample_type = b;
    }
    if !ctx.system_wide {
        flags |= flag::INHERIT;
    }
    if ctx.started_command {
        flags |= flag::ENABLE_ON_EXEC;
    }
    if spec.exclude_user {
        flags |= flag::EXCLUDE_USER;
    }
    if spec.exclude_kernel || ctx.user_only {
        flags |= flag::EXCLUDE_KERNEL;
    }
    if spec.exclude_hv || ctx.user_only {
        flags |= flag::EXCLUDE_HV;
    }
    if spec.exclude_guest {
        flags |= flag::EXCLUDE_GUEST;
    }
    if spec.exclude_host {
        flags |= flag::EXCLUDE_HOST;
    }
    if spec.exclude_idle {
        flags |= flag::EXCLUDE_IDLE;
    }
    if spec.pinned && spec.group_leader.is_none() {
        flags |= flag::PINNED;
    }
    if ctx.tracking {
        flags |= flag::MMAP | flag::MMAP2 | flag::COMM | flag::COMM_EXEC | flag::TASK;
        if data_maps {
            flags |= flag::MMAP_DATA;
        }
    }
    // Per-event terms win over -F/-c, as in perf.
    let sampling = match (spec.period, spec.freq) {
        (Some(p), _) => Sampling::Period(p),
        (None, Some(f)) => Sampling::Freq(f),
        _ => sampling,
    };
    a.period_or_freq = match sampling {
        Sampling::Freq(f) => {
            flags |= flag::FREQ;
            f
        }
        Sampling::Period(p) => p,
    };
    if spec.is_hardware() {
        flags |= u64::from(spec.precise_ip()) << flag::PRECISE_SHIFT;
    }
    a.sample_type = st;
    a.flags = flags;
    a
}

/// The memory-sampling events of this host, as `perf mem record` picks them
/// (and `perf c2c record`): Intel mem-loads with ldlat (with mem-loads-aux
/// where it exists) and mem-stores on every core PMU, AMD `ibs_op//`, Arm
/// `arm_spe_0/.../`. Chosen from the PMUs sysfs lists.
pub fn memory_events(pmus: &Pmus, ldlat: u32) -> Result<Vec<String>, String> {
    let mut v = Vec::new();
    for p in pmus.core() {
        if p.alias("mem-loads").is_none() {
            continue;
        }
        let n = &p.name;
        if p.alias("mem-loads-aux").is_some() {
            v.push(format!("{{{n}/mem-loads-aux/,{n}/mem-loads,ldlat={ldlat}/}}:P"));
        } else {
            v.push(format!("{n}/mem-loads,ldlat={ldlat}/P"));
        }
        if p.alias("mem-stores").is_some() {
            v.push(format!("{n}/mem-stores/P"));
        }
    }
    if !v.is_empty() {
        return Ok(v);
    }
    if pmus.get("ibs_op").is_some() {
        return Ok(vec!["ibs_op//".into()]);
    }
    if let Some(spe) = pmus.list.iter().find(|p| p.name.starts_with("arm_spe")) {
        return Ok(vec![format!("{}/ts_enable=1,pa_enable=1,load_filter=1,store_filter=1,min_latency={ldlat}/", spe.name)]);
    }
    Err(format!(
        "this host has no memory-sampling PMU (Intel PEBS mem-loads, AMD ibs_op, Arm SPE); PMUs here: {}. \
         Run on bare metal, or pass --fallback to record page-faults with their data addresses instead",
        pmus.names().join(", ")
    ))
}

/// The JSON `--print-attrs` prints for one attr: the kernel's field names,
/// the flag bits one by one, as `perf record -vv` lists them.
pub fn to_json(name: &str, a: &EventAttr) -> serde_json::Value {
    let bit = |b: u64| serde_json::Value::from(u64::from(a.flags & b != 0));
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        m.insert(k.to_string(), v);
    };
    put("name", name.into());
    put("type", a.type_.into());
    put("size", a.size.into());
    put("config", a.config.into());
    put("sample_period", (if a.is_freq() { 0 } else { a.period_or_freq }).into());
    put("sample_freq", (if a.is_freq() { a.period_or_freq } else { 0 }).into());
    put("sample_type", a.sample_type.into());
    put("sample_type_names", crate::perf::attr::sample_type_names(a.sample_type).into());
    put("read_format", a.read_format.into());
    for (k, b) in [
        ("disabled", flag::DISABLED),
        ("inherit", flag::INHERIT),
        ("pinned", flag::PINNED),
        ("exclusive", flag::EXCLUSIVE),
        ("exclude_user", flag::EXCLUDE_USER),
        ("exclude_kernel", flag::EXCLUDE_KERNEL),
        ("exclude_hv", flag::EXCLUDE_HV),
        ("exclude_idle", flag::EXCLUDE_IDLE),
        ("mmap", flag::MMAP),
        ("comm", flag::COMM),
        ("freq", flag::FREQ),
        ("enable_on_exec", flag::ENABLE_ON_EXEC),
        ("task", flag::TASK),
        ("watermark", flag::WATERMARK),
    ] {
        put(k, bit(b));
    }
    put("precise_ip", a.precise_ip().into());
    for (k, b) in [
        ("mmap_data", flag::MMAP_DATA),
        ("sample_id_all", flag::SAMPLE_ID_ALL),
        ("exclude_host", flag::EXCLUDE_HOST),
        ("exclude_guest", flag::EXCLUDE_GUEST),
        ("exclude_callchain_kernel", flag::EXCLUDE_CALLCHAIN_KERNEL),
        ("exclude_callchain_user", flag::EXCLUDE_CALLCHAIN_USER),
        ("mmap2", flag::MMAP2),
        ("comm_exec", flag::COMM_EXEC),
        ("use_clockid", flag::USE_CLOCKID),
    ] {
        put(k, bit(b));
    }
    put("wakeup_watermark", a.wakeup.into());
    put("config1", a.config1.into());
    put("config2", a.config2.into());
    put("config3", a.config3.into());
    put("branch_sample_type", a.branch_sample_type.into());
    put("branch_sample_type_names", branch::describe(a.branch_sample_type).into());
    put("sample_regs_user", a.sample_regs_user.into());
    put("sample_stack_user", a.sample_stack_user.into());
    put("clockid", a.clockid.into());
    serde_json::Value::Object(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn branch_filters_as_perf() {
        assert_eq!(branch::parse("any_call,u").unwrap(), branch::USER | branch::ANY_CALL);
        assert_eq!(branch::parse("u").unwrap(), branch::ANY);
        assert!(branch::parse("bogus").is_err());
        assert_eq!(branch::describe(branch::USER | branch::CALL_STACK), "USER|CALL_STACK");
    }

    #[test]
    fn call_graph_modes() {
        assert_eq!(CallGraph::parse("dwarf").unwrap(), CallGraph::Dwarf { stack_size: 8192 });
        assert_eq!(CallGraph::parse("dwarf,4000").unwrap(), CallGraph::Dwarf { stack_size: 4000 });
        assert_eq!(CallGraph::parse("dwarf,4001").unwrap(), CallGraph::Dwarf { stack_size: 4008 });
        assert!(CallGraph::parse("dwarf,0").is_err());
        assert!(CallGraph::parse("frames").is_err());
    }
}
