//! `msen info --host`: the host context timeline, one line a second.

use crate::trace::meta::HostSample;

/// Seconds from the capture's start, load, CPU (average and busiest),
/// memory, the busiest network device, TCP.
pub fn host_timeline(h: &[HostSample], start_clock_ns: u64) -> String {
    let header: Vec<String> =
        ["time", "load1", "run", "cpu avg", "cpu max", "mem avail", "NET_RX/s", "net dev", "rx/s", "tx/s", "drops", "estab", "retrans/s"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let mib = |kb: u64| format!("{} MiB", kb / 1024);
    let rate = |b: u64| if b >= 1 << 20 { format!("{:.1} MB", b as f64 / 1e6) } else { format!("{:.1} kB", b as f64 / 1e3) };
    let rows: Vec<Vec<String>> = h
        .iter()
        .map(|s| {
            let avg = if s.cpu_busy_pct.is_empty() { 0.0 } else { s.cpu_busy_pct.iter().sum::<f64>() / s.cpu_busy_pct.len() as f64 };
            let max = s.cpu_busy_pct.iter().copied().fold(0.0, f64::max);
            // The busiest device; ties by name, so the line is the same every time.
            let dev = s.net.iter().max_by(|a, b| {
                (a.rx_bytes_per_sec + a.tx_bytes_per_sec).cmp(&(b.rx_bytes_per_sec + b.tx_bytes_per_sec)).then(b.name.cmp(&a.name))
            });
            vec![
                format!("{:.1}", s.time.saturating_sub(start_clock_ns) as f64 / 1e9),
                format!("{:.2}", s.load1),
                s.running.to_string(),
                format!("{avg:.0}%"),
                format!("{max:.0}%"),
                mib(s.mem_available_kb),
                s.softirqs_per_sec.get("NET_RX").copied().unwrap_or(0).to_string(),
                dev.map_or("-".into(), |d| d.name.clone()),
                dev.map_or("-".into(), |d| rate(d.rx_bytes_per_sec)),
                dev.map_or("-".into(), |d| rate(d.tx_bytes_per_sec)),
                s.net.iter().map(|d| d.rx_drops + d.tx_drops).sum::<u64>().to_string(),
                s.tcp.established.to_string(),
                s.tcp.retrans_segs_per_sec.to_string(),
            ]
        })
        .collect();
    let right = vec![true; header.len()];
    let mut out = String::from("# host context, one reading a second (time: seconds since the capture started)\n");
    out.push_str(&super::table(&header, &rows, &right, ""));
    out
}
