//! The anomaly trigger of `--mode auto` (MicroSentinel's): every
//! `--anomaly-interval`, each named interface's traffic since the last look
//! (counted in the kernel by the flow hooks) is judged against its own
//! baseline. A retransmit rate, an RTT rise or a throughput drop is a
//! trigger. Pure logic: the capture loop reads the counters and acts.

use crate::flow::{Iface, IfaceCounters};
use std::time::Duration;

/// Retransmits: at least this many in an interval, and this share of the
/// packets sent.
const MIN_RETRANSMITS: u64 = 3;
const RETRANSMIT_SHARE: f64 = 0.01;
/// RTT: at least twice the baseline and a millisecond above it.
const RTT_FACTOR: f64 = 2.0;
const RTT_MIN_RISE_US: f64 = 1000.0;
/// Throughput: under half the baseline, once the baseline is at least 1 Mbit/s.
const THROUGHPUT_SHARE: f64 = 0.5;
const MIN_BASELINE_BYTES_PER_SEC: f64 = 125_000.0;
/// Intervals of normal traffic before a baseline is trusted, and its weight.
const WARMUP: u32 = 4;
const EWMA: f64 = 0.2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyConfig {
    /// (name as given, the interface in msen's network namespace).
    pub interfaces: Vec<(String, Iface)>,
    pub interval: Duration,
}

/// One interface's traffic over one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interval {
    pub secs: f64,
    pub bytes: u64,
    pub tx_packets: u64,
    pub retransmits: u64,
    pub srtt_sum_us: u64,
    pub srtt_reads: u64,
}

impl Interval {
    pub fn between(a: &IfaceCounters, b: &IfaceCounters, secs: f64) -> Interval {
        Interval {
            secs,
            bytes: (b.rx_bytes + b.tx_bytes).saturating_sub(a.rx_bytes + a.tx_bytes),
            tx_packets: b.tx_packets.saturating_sub(a.tx_packets),
            retransmits: b.retransmits.saturating_sub(a.retransmits),
            srtt_sum_us: b.srtt_sum_us.saturating_sub(a.srtt_sum_us),
            srtt_reads: b.srtt_reads.saturating_sub(a.srtt_reads),
        }
    }
}

/// What an interface's normal traffic looks like.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Baseline {
    intervals: u32,
    bytes_per_sec: f64,
    rtt_us: Option<f64>,
}

impl Baseline {
    /// The anomaly in `iv`, described, or None (and then `iv` joins the baseline).
    pub fn judge(&mut self, name: &str, iv: &Interval) -> Option<String> {
        let ms = (iv.secs * 1000.0).round();
        if iv.retransmits >= MIN_RETRANSMITS && iv.retransmits as f64 >= RETRANSMIT_SHARE * iv.tx_packets.max(1) as f64 {
            return Some(format!(
                "anomaly: {name} retransmits {:.1}% ({} of {} packets in {ms} ms)",
                100.0 * iv.retransmits as f64 / iv.tx_packets.max(1) as f64,
                iv.retransmits,
                iv.tx_packets
            ));
        }
        let rtt = (iv.srtt_reads >= 3).then(|| iv.srtt_sum_us as f64 / iv.srtt_reads as f64);
        let bps = iv.bytes as f64 / iv.secs.max(1e-3);
        if self.intervals >= WARMUP {
            if let (Some(now), Some(base)) = (rtt, self.rtt_us) {
                if now > RTT_FACTOR * base && now - base > RTT_MIN_RISE_US {
                    return Some(format!("anomaly: {name} RTT {now:.0} us, {:.1}x its baseline of {base:.0} us", now / base));
                }
            }
            if self.bytes_per_sec >= MIN_BASELINE_BYTES_PER_SEC && bps < THROUGHPUT_SHARE * self.bytes_per_sec {
                return Some(format!(
                    "anomaly: {name} throughput {:.0}% of its baseline ({:.0} kB/s against {:.0} kB/s)",
                    100.0 * bps / self.bytes_per_sec,
                    bps / 1e3,
                    self.bytes_per_sec / 1e3
                ));
            }
        }
        let w = if self.intervals == 0 { 1.0 } else { EWMA };
        self.bytes_per_sec += w * (bps - self.bytes_per_sec);
        if let Some(r) = rtt {
            self.rtt_us = Some(self.rtt_us.map_or(r, |b| b + EWMA * (r - b)));
        }
        self.intervals += 1;
        None
    }
}

/// `500ms`, `2s`, `1.5` (seconds).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let bad = || format!("--anomaly-interval {s}: give a time such as 500ms, 2s or 1.5");
    let (num, scale) = if let Some(v) = s.strip_suffix("ms") {
        (v, 1e-3)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let secs = v * scale;
    if !(0.05..=3600.0).contains(&secs) {
        return Err(format!("--anomaly-interval {s}: must be 50ms..=3600s"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(bytes: u64, tx: u64, rexmit: u64, rtt: u64) -> Interval {
        Interval { secs: 0.5, bytes, tx_packets: tx, retransmits: rexmit, srtt_sum_us: rtt * 10, srtt_reads: 10 }
    }

    #[test]
    fn retransmits_trigger_at_once_and_a_few_do_not() {
        let mut b = Baseline::default();
        assert_eq!(b.judge("veth0", &iv(1_000_000, 1000, 2, 100)), None, "2 retransmits are noise");
        let why = b.judge("veth0", &iv(1_000_000, 1000, 30, 100)).unwrap();
        assert!(why.starts_with("anomaly: veth0 retransmits 3.0% (30 of 1000 packets in 500 ms)"), "{why}");
    }

    #[test]
    fn rtt_rise_and_throughput_drop_need_a_baseline_first() {
        let mut b = Baseline::default();
        // Before the warm-up, nothing is judged against the baseline.
        assert_eq!(b.judge("e", &iv(1_000_000, 1000, 0, 5000)), None);
        let mut b = Baseline::default();
        for _ in 0..WARMUP {
            assert_eq!(b.judge("e", &iv(1_000_000, 1000, 0, 200)), None);
        }
        let rtt = b.judge("e", &iv(1_000_000, 1000, 0, 5000)).unwrap();
        assert!(rtt.contains("RTT 5000 us, 25.0x its baseline of 200 us"), "{rtt}");
        let drop = b.judge("e", &iv(100_000, 100, 0, 200)).unwrap();
        assert!(drop.contains("throughput 10% of its baseline"), "{drop}");
        // Anomalies do not move the baseline: normal traffic is normal again.
        assert_eq!(b.judge("e", &iv(1_000_000, 1000, 0, 200)), None);
    }

    #[test]
    fn intervals_parse_with_units() {
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_interval("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_interval("fast").is_err());
        assert!(parse_interval("1ms").is_err());
    }
}
