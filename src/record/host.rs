//! Host context (MicroSentinel's NodeMonitor): once a second, load, per-CPU
//! utilisation, softirqs, memory, network devices and TCP counters from
//! /proc, as rates over the last interval. Each reading costs a handful of
//! small /proc reads (well under a millisecond); the recorder stores them in
//! HOST blocks at its flush interval.

use crate::trace::meta::{HostNetDev, HostSample, HostTcp};
use std::collections::BTreeMap;

/// The counters a rate is taken from.
#[derive(Debug, Clone, Default)]
struct Counters {
    /// Per CPU: (busy jiffies, total jiffies).
    cpus: Vec<(u64, u64)>,
    softirqs: BTreeMap<String, u64>,
    net: BTreeMap<String, [u64; 4]>,
    retrans_segs: u64,
    out_segs: u64,
}

#[derive(Debug, Default)]
pub struct HostSampler {
    prev: Option<(u64, Counters)>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn cpu_times(stat: &str) -> Vec<(u64, u64)> {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal (guest is in user).
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total.saturating_sub(idle), total)
        })
        .collect()
}

fn softirqs(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            Some((name.trim().to_string(), rest.split_whitespace().filter_map(|x| x.parse::<u64>().ok()).sum()))
        })
        .collect()
}

/// name -> [rx bytes, rx drops, tx bytes, tx drops].
fn net_dev(text: &str) -> BTreeMap<String, [u64; 4]> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (v.len() >= 12).then(|| (name.trim().to_string(), [v[0], v[3], v[8], v[11]]))
        })
        .collect()
}

/// A value of /proc/net/snmp's `Tcp:` table by column name.
fn snmp_tcp(text: &str, col: &str) -> u64 {
    let mut rows = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(head), Some(vals)) = (rows.next(), rows.next()) else { return 0 };
    head.split_whitespace().zip(vals.split_whitespace()).find(|(h, _)| *h == col).and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
}

/// `TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 425` -> the value after `key`.
fn sockstat(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.iter().position(|x| *x == key).and_then(|i| w.get(i + 1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn meminfo(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(|r| r.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0)))
        .unwrap_or(0)
}

impl HostSampler {
    /// A reading at `time` (CLOCK_MONOTONIC ns). The first call only sets
    /// the counters the rates start from and returns None.
    pub fn sample(&mut self, time: u64) -> Option<HostSample> {
        let snmp = read("/proc/net/snmp");
        let now = Counters {
            cpus: cpu_times(&read("/proc/stat")),
            softirqs: softirqs(&read("/proc/softirqs")),
            net: net_dev(&read("/proc/net/dev")),
            retrans_segs: snmp_tcp(&snmp, "RetransSegs"),
            out_segs: snmp_tcp(&snmp, "OutSegs"),
        };
        let prev = self.prev.replace((time, now.clone()));
        let (t0, before) = prev?;
        let secs = (time.saturating_sub(t0) as f64 / 1e9).max(1e-3);
        let rate = |a: u64, b: u64| (b.saturating_sub(a) as f64 / secs).round() as u64;
        let load = read("/proc/loadavg");
        let lv: Vec<&str> = load.split_whitespace().collect();
        let lf = |i: usize| lv.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let sock = read("/proc/net/sockstat");
        let mem = read("/proc/meminfo");
        Some(HostSample {
            time,
            load1: lf(0),
            load5: lf(1),
            load15: lf(2),
            running: lv.get(3).and_then(|v| v.split('/').next()?.parse().ok()).unwrap_or(0),
            cpu_busy_pct: now
                .cpus
                .iter()
                .zip(&before.cpus)
                .map(|(&(b1, t1), &(b0, t0))| {
                    let dt = t1.saturating_sub(t0);
                    if dt == 0 {
                        0.0
                    } else {
                        (1000.0 * b1.saturating_sub(b0) as f64 / dt as f64).round() / 10.0
                    }
                })
                .collect(),
            softirqs_per_sec: now
                .softirqs
                .iter()
                .map(|(k, &v)| (k.clone(), rate(before.softirqs.get(k).copied().unwrap_or(v), v)))
                .collect(),
            mem_total_kb: meminfo(&mem, "MemTotal"),
            mem_available_kb: meminfo(&mem, "MemAvailable"),
            net: now
                .net
                .iter()
                .filter_map(|(name, v)| {
                    let p = before.net.get(name)?;
                    Some(HostNetDev {
                        name: name.clone(),
                        rx_bytes_per_sec: rate(p[0], v[0]),
                        rx_drops: v[1].saturating_sub(p[1]),
                        tx_bytes_per_sec: rate(p[2], v[2]),
                        tx_drops: v[3].saturating_sub(p[3]),
                    })
                })
                .collect(),
            tcp: HostTcp {
                established: snmp_tcp(&snmp, "CurrEstab"),
                inuse: sockstat(&sock, "inuse"),
                orphan: sockstat(&sock, "orphan"),
                time_wait: sockstat(&sock, "tw"),
                retrans_segs_per_sec: rate(before.retrans_segs, now.retrans_segs),
                out_segs_per_sec: rate(before.out_segs, now.out_segs),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_formats_parse() {
        let stat = "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 30 10 0 0 0 0 0\nintr 1\n";
        assert_eq!(cpu_times(stat), vec![(10, 50), (10, 50)]);
        let si = "                    CPU0       CPU1\n          HI:          0          0\n      NET_RX:        100        23\n";
        assert_eq!(softirqs(si).get("NET_RX"), Some(&123));
        let dev = "h1\nh2\n  eth0: 100 2 0 3 0 0 0 0 200 4 0 5 0 0 0 0\n";
        assert_eq!(net_dev(dev).get("eth0"), Some(&[100, 3, 200, 5]));
        let snmp = "Tcp: A CurrEstab RetransSegs\nTcp: 1 7 42\n";
        assert_eq!((snmp_tcp(snmp, "CurrEstab"), snmp_tcp(snmp, "RetransSegs")), (7, 42));
        assert_eq!(sockstat("TCP: inuse 1 orphan 2 tw 3 alloc 1 mem 425\n", "tw"), 3);
        assert_eq!(meminfo("MemTotal:       24576 kB\nMemAvailable:   100 kB\n", "MemAvailable"), 100);
    }

    #[test]
    fn this_hosts_readings_are_plausible() {
        let mut h = HostSampler::default();
        assert!(h.sample(1_000_000_000).is_none(), "the first reading only starts the rates");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let s = h.sample(1_050_000_000).unwrap();
        assert!(s.mem_total_kb > 0 && s.mem_available_kb <= s.mem_total_kb, "{s:?}");
        assert!(!s.cpu_busy_pct.is_empty() && s.cpu_busy_pct.iter().all(|&p| (0.0..=100.0).contains(&p)), "{s:?}");
        assert!(s.net.iter().any(|n| n.name == "lo"), "{s:?}");
    }
}
