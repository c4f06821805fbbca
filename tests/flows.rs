//! Flow context, end to end: two network namespaces joined by a veth pair
//! (made and removed here), a server whose CPU work per received byte is
//! known per port (testdata/programs/flowsrv.c), paced clients, and
//! `msen record -a`. Needs root (CI runs as root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Captures compete for the two CPUs: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Two namespaces, `srv` (10.77.N.1, fd77:N::1) and `cli` (10.77.N.2,
/// fd77:N::2), joined by a veth pair; removed on drop.
struct NetPair {
    srv: String,
    cli: String,
    n: u32,
}

static NEXT: AtomicU32 = AtomicU32::new(1);

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("ip (iproute2)");
    assert!(o.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

impl NetPair {
    fn new() -> NetPair {
        let n = (std::process::id() % 200) + NEXT.fetch_add(1, Ordering::SeqCst);
        let n = n % 250 + 1;
        let (srv, cli) = (format!("msen-srv-{n}"), format!("msen-cli-{n}"));
        let (a, b) = (format!("msv{n}a"), format!("msv{n}b"));
        let _ = Command::new("ip").args(["netns", "del", &srv]).output();
        let _ = Command::new("ip").args(["netns", "del", &cli]).output();
        ip(&["netns", "add", &srv]);
        ip(&["netns", "add", &cli]);
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["link", "set", &a, "netns", &srv]);
        ip(&["link", "set", &b, "netns", &cli]);
        for (ns, dev, host) in [(&srv, &a, 1), (&cli, &b, 2)] {
            ip(&["-n", ns, "addr", "add", &format!("10.77.{n}.{host}/24"), "dev", dev]);
            ip(&["-n", ns, "-6", "addr", "add", &format!("fd77:{n}::{host}/64"), "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        NetPair { srv, cli, n }
    }
    fn srv_addr(&self, v6: bool) -> String {
        if v6 {
            format!("fd77:{}::1", self.n)
        } else {
            format!("10.77.{}.1", self.n)
        }
    }
    fn cli_addr(&self, v6: bool) -> String {
        if v6 {
            format!("fd77:{}::2", self.n)
        } else {
            format!("10.77.{}.2", self.n)
        }
    }
    fn spawn(&self, ns: &str, prog: &Path, args: &[&str]) -> Child {
        Command::new("ip").args(["netns", "exec", ns]).arg(prog).args(args).stdout(Stdio::null()).spawn().unwrap()
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.srv]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.cli]).output();
    }
}

fn build_flowsrv(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/programs/flowsrv.c");
    let out = dir.join("flowsrv");
    let st = Command::new("cc").args(["-O2", "-g", "-fno-omit-frame-pointer", "-pthread", "-o"]).arg(&out).arg(&src).status().unwrap();
    assert!(st.success());
    out
}

struct Run {
    trace: PathBuf,
    server_pid: u32,
    _dir: tempfile::TempDir,
    net: NetPair,
}

/// Start the server (ports with their work per byte), the clients (one per
/// port at `kbps`), and record system-wide for `secs`.
fn capture(serve_flags: &[&str], ports: &[(u16, u32)], kbps: u32, v6: bool, record_extra: &[&str], secs: f64) -> Run {
    let dir = tmpdir();
    let prog = build_flowsrv(dir.path());
    let net = NetPair::new();
    let total = format!("{}", secs + 4.0);
    let mut sargs: Vec<String> = vec!["serve".into()];
    sargs.extend(serve_flags.iter().map(|s| s.to_string()));
    if v6 {
        sargs.push("-6".into());
    }
    sargs.push(total.clone());
    sargs.extend(ports.iter().map(|(p, w)| format!("{p}:{w}")));
    let sargs_ref: Vec<&str> = sargs.iter().map(String::as_str).collect();
    let mut server = net.spawn(&net.srv, &prog, &sargs_ref);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let udp = serve_flags.contains(&"-u");
    let mut clients: Vec<Child> = ports
        .iter()
        .map(|(p, _)| {
            let mut a: Vec<String> = vec!["send".into()];
            if udp {
                a.push("-u".into());
            }
            a.extend([net.srv_addr(v6), p.to_string(), format!("{}", secs + 2.0), kbps.to_string()]);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            net.spawn(&net.cli, &prog, &a)
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let trace = dir.path().join("flows.msen");
    let dur = format!("{secs}");
    let mut args = vec!["record", "-q", "-a", "-F", "1000", "--duration", &dur, "-o", trace.to_str().unwrap()];
    args.extend(record_extra);
    let o = run(&args);
    for c in &mut clients {
        let _ = c.wait();
    }
    let server_pid = server.id();
    let _ = server.kill();
    let _ = server.wait();
    assert!(o.status.success(), "record: {}", stderr(&o));
    Run { trace, server_pid, _dir: dir, net }
}

fn rows(trace: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["report", "--format", "json", "--no-children", "-i", trace.to_str().unwrap()];
    a.extend(extra);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    json(&o)["rows"].as_array().unwrap().clone()
}

/// Server samples in handle_bytes by local port, and the share of them with a flow.
fn handler_samples(r: &Run) -> (std::collections::BTreeMap<u64, u64>, u64, u64) {
    let pid = r.server_pid.to_string();
    let mut by_port = std::collections::BTreeMap::new();
    let (mut with, mut all) = (0, 0);
    for row in rows(&r.trace, &["--sort", "flow_port,sym", "--pid", &pid]) {
        if row["sym"] != "handle_bytes" {
            continue;
        }
        let n = row["samples"].as_u64().unwrap();
        let port = row["flow_port"].as_u64().unwrap();
        all += n;
        if port != 0 {
            with += n;
            *by_port.entry(port).or_default() += n;
        }
    }
    (by_port, with, all)
}

fn ready(test: &str) -> bool {
    require_root(test) && Command::new("ip").arg("-V").output().is_ok()
}

#[test]
fn two_tcp_flows_split_by_their_cpu_cost() {
    if !ready("two_tcp_flows_split_by_their_cpu_cost") {
        return;
    }
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = capture(&[], &[(7001, 3), (7002, 1)], 1024, false, &[], 4.0);
    let (by_port, with, all) = handler_samples(&r);
    assert!(all > 300, "the server ran: {all} handler samples");
    assert!(with as f64 >= 0.9 * all as f64, "{with} of {all} handler samples carry a flow");
    let ratio = by_port[&7001] as f64 / by_port[&7002] as f64;
    // 3:1 work per byte; a flow mix-up would pull it toward 1:1 (and a
    // busy machine moves it by a tenth or so).
    assert!((2.5..=3.5).contains(&ratio), "3:1 work per byte, got {by_port:?} ({ratio:.2})");
    // The 5-tuples are exactly the test's, from the server's side.
    let f = json(&run(&["flows", "--format", "json", "-i", r.trace.to_str().unwrap()]));
    let flows: Vec<&serde_json::Value> = f["rows"].as_array().unwrap().iter().filter(|r| !r["flow"].is_null()).collect();
    for port in [7001, 7002] {
        let local = format!("{}:{port}", r.net.srv_addr(false));
        let row = flows.iter().find(|x| x["local"] == local.as_str()).unwrap_or_else(|| panic!("no flow {local}: {f}"));
        assert!(row["remote"].as_str().unwrap().starts_with(&format!("{}:", r.net.cli_addr(false))), "{row}");
        assert_eq!(row["proto"], "tcp");
        assert_eq!(row["direction"], "server");
        assert!(row["rx_bytes"].as_u64().unwrap() > 100_000, "{row}");
        assert!(row["cpu_ns_per_byte"].as_f64().is_some(), "{row}");
        assert_eq!(row["top_functions"][0]["function"], "[.] handle_bytes", "{row}");
    }
    assert_eq!(f["unjoined_samples"], 0, "{f}");
    assert_eq!(f["unjoined_tags"], 0, "{f}");
    // Softirq / packet-path samples are attributed to packet flows.
    let rule_rows = rows(&r.trace, &["--sort", "flow_rule"]);
    let packet: u64 =
        rule_rows.iter().filter(|x| x["flow_rule"].as_str().unwrap().starts_with("packet")).map(|x| x["samples"].as_u64().unwrap()).sum();
    assert!(packet > 0, "some samples were taken while a packet was handled: {rule_rows:?}");
    // script carries each sample's flow.
    let o = run(&["script", "--format", "jsonl", "-i", r.trace.to_str().unwrap()]);
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let pid = r.server_pid as u64;
    let handler: Vec<&serde_json::Value> = lines.iter().filter(|x| x["pid"].as_u64() == Some(pid) && x["sym"] == "handle_bytes").collect();
    assert!(!handler.is_empty());
    assert!(
        handler.iter().all(|x| x["flow"].as_str().is_some_and(|f| f.contains(":700")) && x["flow_rule"] == "socket"),
        "{:?}",
        handler.first()
    );
    // report by flow: the flow text is the stable form.
    let fr = rows(&r.trace, &["--sort", "flow", "--port", "7001"]);
    assert!(fr.iter().all(|x| x["flow"].as_str().unwrap().contains(":7001")), "{fr:?}");
    assert!(fr[0]["flow"].as_str().unwrap().starts_with(&format!("tcp {}:7001 <- {}:", r.net.srv_addr(false), r.net.cli_addr(false))));
}

#[test]
fn ipv6_and_udp_flows() {
    if !ready("ipv6_and_udp_flows") {
        return;
    }
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = capture(&[], &[(7101, 3), (7102, 1)], 1024, true, &[], 3.0);
    let (by_port, with, all) = handler_samples(&r);
    assert!(with as f64 >= 0.9 * all as f64 && all > 200, "IPv6: {with} of {all}");
    let ratio = by_port[&7101] as f64 / by_port[&7102] as f64;
    assert!((2.6..=3.4).contains(&ratio), "IPv6 3:1, got {by_port:?}");
    let fr = rows(&r.trace, &["--sort", "flow", "--flow", &format!("{}/128", r.net.srv_addr(true))]);
    assert!(
        fr.iter().any(|x| x["flow"].as_str().unwrap().starts_with(&format!(
            "tcp [{}]:7101 <- [{}]:",
            r.net.srv_addr(true),
            r.net.cli_addr(true)
        ))),
        "{fr:?}"
    );
    drop(r);
    let r = capture(&["-u"], &[(7201, 3), (7202, 1)], 512, false, &[], 3.0);
    let (by_port, with, all) = handler_samples(&r);
    assert!(with as f64 >= 0.9 * all as f64 && all > 100, "UDP: {with} of {all}");
    let ratio = by_port[&7201] as f64 / by_port[&7202] as f64;
    assert!((2.0..=4.5).contains(&ratio), "UDP 3:1, got {by_port:?}");
    let fr = rows(&r.trace, &["--sort", "flow", "--port", "7201"]);
    assert!(fr[0]["flow"].as_str().unwrap().starts_with("udp "), "{fr:?}");
}

#[test]
fn an_event_loop_thread_is_marked_multiplexed() {
    if !ready("an_event_loop_thread_is_marked_multiplexed") {
        return;
    }
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = capture(&["-e"], &[(7301, 3), (7302, 1), (7303, 1)], 512, false, &[], 3.0);
    let (by_port, with, all) = handler_samples(&r);
    assert!(with as f64 >= 0.9 * all as f64 && all > 100, "{with} of {all}");
    // Attribution by the last socket operation still splits by work.
    let ratio = by_port[&7301] as f64 / by_port[&7302] as f64;
    assert!((2.4..=3.6).contains(&ratio), "{by_port:?}");
    let pid = r.server_pid.to_string();
    let rr = rows(&r.trace, &["--sort", "flow_rule", "--pid", &pid]);
    let mux: u64 =
        rr.iter().filter(|x| x["flow_rule"].as_str().unwrap().contains("multiplexed")).map(|x| x["samples"].as_u64().unwrap()).sum();
    assert!(mux > 0, "one thread serving three flows is multiplexed: {rr:?}");
}

#[test]
fn flow_filter_drops_other_flows_in_the_kernel() {
    if !ready("flow_filter_drops_other_flows_in_the_kernel") {
        return;
    }
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = capture(&[], &[(7401, 2), (7402, 2), (7403, 2)], 512, false, &["--flow-filter", ":7401", "--flow-filter", ":7402"], 3.0);
    let (by_port, _, _) = handler_samples(&r);
    assert!(by_port.get(&7401).copied().unwrap_or(0) > 50 && by_port.get(&7402).copied().unwrap_or(0) > 50, "{by_port:?}");
    assert!(!by_port.contains_key(&7403), "the third flow is filtered out: {by_port:?}");
    let f = json(&run(&["flows", "--format", "json", "-i", r.trace.to_str().unwrap()]));
    assert!(f["counters"]["dropped_by_flow_filter"].as_u64().unwrap() > 50, "drops counted: {f}");
    let info = json(&run(&["info", "--format", "json", r.trace.to_str().unwrap()]));
    assert!(info.to_string().contains("0.0.0.0/0:7401"), "the trace names its filters: {info}");
}

#[test]
fn every_tag_joins_its_sample_at_10khz() {
    if !require_root("every_tag_joins_its_sample_at_10khz") {
        return;
    }
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let t = d.path().join("j.msen");
    let mut busy: Vec<Child> = (0..2).map(|_| Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap()).collect();
    let o = run(&["record", "-q", "-a", "-F", "10000", "--duration", "10", "-o", t.to_str().unwrap()]);
    for b in &mut busy {
        let _ = b.kill();
        let _ = b.wait();
    }
    assert!(o.status.success(), "{}", stderr(&o));
    let f = json(&run(&["flows", "--format", "json", "-i", t.to_str().unwrap()]));
    assert!(f["total_samples"].as_u64().unwrap() > 100_000, "{}", f["total_samples"]);
    assert_eq!(f["unjoined_samples"], 0, "{f}");
    assert_eq!(f["unjoined_tags"], 0, "{f}");
    assert_eq!(f["counters"]["tag_output_errors"], 0, "{f}");
}

#[test]
fn no_flows_and_required_flows() {
    if !require_root("no_flows_and_required_flows") {
        return;
    }
    let d = tmpdir();
    let t = d.path().join("n.msen");
    let o = run(&["record", "-q", "--no-flows", "-o", t.to_str().unwrap(), "--", "true"]);
    assert!(o.status.success());
    let f = json(&run(&["flows", "--format", "json", "-i", t.to_str().unwrap()]));
    assert_eq!(f["flow_context"], false);
    assert!(f["reason"].as_str().unwrap().contains("--no-flows"), "{f}");
    let o = run(&["record", "-q", "--flows", "-o", t.to_str().unwrap(), "--", "true"]);
    assert!(o.status.success(), "flows load here: {}", stderr(&o));
    let f = json(&run(&["flows", "--format", "json", "-i", t.to_str().unwrap()]));
    assert_eq!(f["flow_context"], true);
    let o = run(&["record", "--flow-filter", "not-an-address", "-o", t.to_str().unwrap(), "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("CIDR[:PORT]"), "{}", stderr(&o));
}
