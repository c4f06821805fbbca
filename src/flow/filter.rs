//! `CIDR[:PORT]` flow filters, as `--flow-filter` (in the kernel) and
//! `report --flow` (at analysis) take them: `10.0.0.0/8`, `10.0.0.2:7001`,
//! `[fd00::]/64:443`, `::1`, `:7001` (any address, that port).

use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowFilter {
    /// 2 (AF_INET) or 10 (AF_INET6), as the kernel's flow keys.
    pub family: u8,
    pub addr: [u8; 16],
    pub prefix_len: u32,
    /// 0: any port.
    pub port: u16,
}

impl fmt::Display for FlowFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip: IpAddr = if self.family == 10 {
            IpAddr::from(self.addr)
        } else {
            IpAddr::from([self.addr[0], self.addr[1], self.addr[2], self.addr[3]])
        };
        match (ip, self.port) {
            (IpAddr::V6(a), 0) => write!(f, "{a}/{}", self.prefix_len),
            (IpAddr::V6(a), p) => write!(f, "[{a}]/{}:{p}", self.prefix_len),
            (IpAddr::V4(a), 0) => write!(f, "{a}/{}", self.prefix_len),
            (IpAddr::V4(a), p) => write!(f, "{a}/{}:{p}", self.prefix_len),
        }
    }
}

fn bad(s: &str, why: &str) -> String {
    format!("flow filter '{s}': {why}; write CIDR[:PORT], e.g. 10.0.0.0/8, 10.0.0.2:7001, [fd00::]/64:443 or :7001")
}

impl FlowFilter {
    /// Parse one filter; `:PORT` alone gives one filter per address family.
    pub fn parse(s: &str) -> Result<Vec<FlowFilter>, String> {
        let t = s.trim();
        if let Some(p) = t.strip_prefix(':').filter(|p| !p.contains(':')) {
            let port: u16 = p.parse().map_err(|_| bad(s, "the port is not a number"))?;
            return Ok(vec![
                FlowFilter { family: 2, addr: [0; 16], prefix_len: 0, port },
                FlowFilter { family: 10, addr: [0; 16], prefix_len: 0, port },
            ]);
        }
        // [v6]/len:port, [v6]:port, v6, v6/len, v4[/len][:port]
        let (addr_part, port) = if let Some(rest) = t.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| bad(s, "no closing ]"))?;
            let (len, port) = match after.split_once(':') {
                Some((l, p)) => (l, Some(p)),
                None => (after, None),
            };
            (format!("{inside}{len}"), port)
        } else if t.matches(':').count() > 1 {
            (t.to_string(), None)
        } else {
            match t.split_once(':') {
                Some((a, p)) => (a.to_string(), Some(p)),
                None => (t.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad(s, "the port is not a number"))?,
            None => 0,
        };
        let (ip, len) = match addr_part.split_once('/') {
            Some((a, l)) => (a.to_string(), Some(l.parse::<u32>().map_err(|_| bad(s, "the prefix length is not a number"))?)),
            None => (addr_part.clone(), None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad(s, "not an IPv4 or IPv6 address"))?;
        let (family, addr, max) = match ip {
            IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (2, b, 32)
            }
            IpAddr::V6(a) => (10, a.octets(), 128),
        };
        let prefix_len = len.unwrap_or(max);
        if prefix_len > max {
            return Err(bad(s, "the prefix is longer than the address"));
        }
        Ok(vec![FlowFilter { family, addr, prefix_len, port }])
    }

    fn prefix_match(&self, a: &[u8; 16]) -> bool {
        let mut bits = self.prefix_len;
        for (x, y) in a.iter().zip(&self.addr) {
            if bits == 0 {
                return true;
            }
            let m: u8 = if bits >= 8 { 0xff } else { 0xffu8 << (8 - bits) };
            if (x ^ y) & m != 0 {
                return false;
            }
            bits = bits.saturating_sub(8);
        }
        true
    }

    /// The same rule as the kernel's: the local or the remote address in
    /// the prefix, and the port (when given) one of the two ports.
    pub fn matches(&self, f: &crate::trace::meta::FlowInfo) -> bool {
        let fam = if f.family == 6 { 10 } else { 2 };
        if fam != self.family {
            return false;
        }
        if self.port != 0 && self.port != f.local_port && self.port != f.remote_port {
            return false;
        }
        let bytes = |s: &str| -> Option<[u8; 16]> {
            match s.parse::<IpAddr>().ok()? {
                IpAddr::V4(a) => {
                    let mut b = [0u8; 16];
                    b[..4].copy_from_slice(&a.octets());
                    Some(b)
                }
                IpAddr::V6(a) => Some(a.octets()),
            }
        };
        bytes(&f.local).is_some_and(|b| self.prefix_match(&b)) || bytes(&f.remote).is_some_and(|b| self.prefix_match(&b))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::trace::meta::FlowInfo;

    #[test]
    fn forms_parse_and_match() {
        let f = &FlowFilter::parse("10.0.0.0/8:7001").unwrap()[0];
        assert_eq!((f.family, f.prefix_len, f.port), (2, 8, 7001));
        let flow = FlowInfo {
            family: 4,
            local: "10.1.2.3".into(),
            local_port: 7001,
            remote: "192.168.1.1".into(),
            remote_port: 40000,
            ..Default::default()
        };
        assert!(f.matches(&flow));
        assert!(!FlowFilter::parse("10.0.0.0/8:7002").unwrap()[0].matches(&flow));
        assert!(FlowFilter::parse("192.168.1.1").unwrap()[0].matches(&flow));
        let v6 = &FlowFilter::parse("[fd00::]/64:443").unwrap()[0];
        assert_eq!((v6.family, v6.prefix_len, v6.port), (10, 64, 443));
        assert_eq!(FlowFilter::parse("::1").unwrap()[0].prefix_len, 128);
        assert_eq!(FlowFilter::parse(":7001").unwrap().len(), 2);
        assert!(FlowFilter::parse("10.0.0.0/33").is_err());
        assert!(FlowFilter::parse("nonsense").is_err());
        assert_eq!(FlowFilter::parse("10.0.0.0/8:80").unwrap()[0].to_string(), "10.0.0.0/8:80");
    }
}
