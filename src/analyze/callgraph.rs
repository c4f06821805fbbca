//! perf report's call graphs: for each row, a tree of the call chains of
//! the samples it stands for, printed as `--stdio` does (graph, fractal,
//! flat, folded), with perf's threshold, print limit and caller/callee order.
//!
//! Which chains a row collects (perf's cumulative entries):
//!
//! ```text
//!  sample chain, caller order:   _start -> main -> top -> leaf (ip)
//!  row leaf (the sample's self row):  the whole chain
//!  row main (a frame, children):      main -> top -> leaf   (from the frame on)
//!  callee order: the same, read from the ip towards the root
//! ```

use rustc_hash::FxHashMap as HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphMode {
    /// Absolute percentages (perf's default).
    Graph,
    /// Percentages relative to the parent.
    Fractal,
    /// One chain per line block.
    Flat,
    /// One chain per line, frames joined by ';'.
    Folded,
    /// No call graph.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphOrder {
    /// Root first (perf's default with children).
    Caller,
    /// The sampled function first (perf's default without children).
    Callee,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallGraphConfig {
    pub mode: GraphMode,
    /// Hide chains below this percentage (0.5 by default).
    pub threshold: f64,
    /// Print at most this many chains per level (0: all).
    pub print_limit: usize,
    /// None: caller with children, callee without (as perf).
    pub order: Option<GraphOrder>,
}

impl Default for CallGraphConfig {
    fn default() -> Self {
        CallGraphConfig { mode: GraphMode::Graph, threshold: 0.5, print_limit: 0, order: None }
    }
}

impl CallGraphConfig {
    /// perf's `-g [mode][,threshold[,print_limit]][,order][,key][,value]`:
    /// `graph,0.5,caller`, `flat`, `callee`, `none`, `fractal,2,10,callee,function,percent`.
    pub fn parse(s: &str) -> Result<CallGraphConfig, String> {
        let mut c = CallGraphConfig::default();
        let mut numbers = 0;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "graph" => c.mode = GraphMode::Graph,
                "fractal" => c.mode = GraphMode::Fractal,
                "flat" => c.mode = GraphMode::Flat,
                "folded" => c.mode = GraphMode::Folded,
                "none" => c.mode = GraphMode::None,
                "caller" => c.order = Some(GraphOrder::Caller),
                "callee" => c.order = Some(GraphOrder::Callee),
                "function" | "percent" => {}
                "address" | "srcline" | "period" | "count" | "branch" => {
                    return Err(format!("-g {s}: '{part}' is not supported; msen groups chains by function and prints percentages"))
                }
                n => {
                    let v: f64 = n.parse().map_err(|_| {
                        format!("-g {s}: '{n}' is not a mode (graph, fractal, flat, folded, none), an order (caller, callee) or a number")
                    })?;
                    match numbers {
                        0 if (0.0..=100.0).contains(&v) => c.threshold = v,
                        1 if v >= 0.0 && v.fract() == 0.0 => c.print_limit = v as usize,
                        _ => return Err(format!("-g {s}: '{n}': give a threshold (0..100) and then a print limit (a count)")),
                    }
                    numbers += 1;
                }
            }
        }
        Ok(c)
    }
}

/// A tree of call chains, one frame per node; node 0 is the root.
#[derive(Debug, Clone, Default)]
pub struct CallTree {
    pub nodes: Vec<CallNode>,
    /// (parent, interned name) -> child, while chains are added.
    index: HashMap<(u32, u32), u32>,
}

#[derive(Debug, Clone, Default)]
pub struct CallNode {
    pub name: String,
    /// The interned name chains were added with (see `add_ids`).
    pub name_id: u32,
    /// Period of chains that end here.
    pub hit: u64,
    /// Period of chains through here (hit included).
    pub cumul: u64,
    pub parent: u32,
    pub children: Vec<u32>,
}

impl CallTree {
    pub fn new() -> CallTree {
        CallTree { nodes: vec![CallNode::default()], index: HashMap::default() }
    }

    /// Add one chain (frames in display order, as interned names) with its
    /// period. Chains are merged by name: perf groups frames by function.
    pub fn add_ids(&mut self, frames: impl Iterator<Item = u32>, period: u64) {
        let mut at = 0u32;
        self.nodes[0].cumul = self.nodes[0].cumul.saturating_add(period);
        for id in frames {
            let next = match self.index.get(&(at, id)) {
                Some(&n) => n,
                None => {
                    let n = self.nodes.len() as u32;
                    self.nodes.push(CallNode { name_id: id, parent: at, ..Default::default() });
                    self.nodes[at as usize].children.push(n);
                    self.index.insert((at, id), n);
                    n
                }
            };
            self.nodes[next as usize].cumul = self.nodes[next as usize].cumul.saturating_add(period);
            at = next;
        }
        self.nodes[at as usize].hit = self.nodes[at as usize].hit.saturating_add(period);
    }

    /// Give every node its name from the intern table, once chains are in.
    pub fn set_names(&mut self, names: &[String]) {
        for n in self.nodes.iter_mut().skip(1) {
            n.name = names.get(n.name_id as usize).cloned().unwrap_or_default();
        }
        self.index = HashMap::default();
    }

    /// Children of a node with at least `min` cumulative period, most first
    /// (ties by name: a total order).
    fn sorted_children(&self, n: u32, min: f64) -> Vec<u32> {
        let mut v: Vec<u32> =
            self.nodes[n as usize].children.iter().copied().filter(|&c| self.nodes[c as usize].cumul as f64 >= min).collect();
        // Ties by name, descending: perf keeps a node's children in a tree
        // ordered that way, and its sort leaves equal values in that order.
        v.sort_by(|&a, &b| {
            let (x, y) = (&self.nodes[a as usize], &self.nodes[b as usize]);
            y.cumul.cmp(&x.cumul).then_with(|| y.name.cmp(&x.name))
        });
        v
    }

    /// Nodes in perf's flat-sort visiting order: depth first, children
    /// (by name, descending) before their parent.
    fn post_order(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<(u32, bool)> = vec![(0, false)];
        while let Some((n, done)) = stack.pop() {
            if done {
                out.push(n);
                continue;
            }
            stack.push((n, true));
            let mut kids = self.nodes[n as usize].children.clone();
            // Pushed ascending, so the greatest name is visited first.
            kids.sort_by(|&a, &b| self.nodes[a as usize].name.cmp(&self.nodes[b as usize].name));
            stack.extend(kids.into_iter().map(|k| (k, false)));
        }
        out
    }

    /// A run: `n` and the nodes below it while there is exactly one child
    /// and no chain ends (perf's radix-tree node).
    fn run(&self, mut n: u32) -> (Vec<u32>, u32) {
        let mut v = vec![n];
        loop {
            let node = &self.nodes[n as usize];
            if node.hit > 0 || node.children.len() != 1 {
                return (v, n);
            }
            n = node.children[0];
            v.push(n);
        }
    }
}

fn margin(out: &mut String, left: usize) {
    out.push_str("            ");
    out.push_str(&" ".repeat(left));
}

/// perf's `callchain__fprintf_graph` for one row: `total` is the event's
/// total period (graph), `parent_total` the row's own (fractal's top level).
/// `skip_first`: the row is keyed by symbol alone, so a chain's first frame
/// is the row itself and is not printed again (perf's rule for `--sort sym`).
pub fn render_graph(t: &CallTree, cfg: &CallGraphConfig, total: u64, parent_total: u64, skip_first: bool, out: &mut String) {
    let start = out.len();
    let mut left = 0;
    let mut root = 0u32;
    let top = kids(t, cfg, 0, total);
    // One chain root holding all of the row: no percentage for it (perf's
    // need_percent_display), and one level of columns less.
    if top.len() == 1 && t.nodes[top[0] as usize].cumul == parent_total {
        let (run, last) = t.run(top[0]);
        let mut printed = false;
        for (i, &n) in run.iter().enumerate() {
            if i == 0 && skip_first {
                continue;
            }
            if !printed {
                margin(out, left);
                out.push_str("|\n");
                margin(out, left);
                out.push_str("---");
                left += 3;
                printed = true;
            } else {
                margin(out, left);
            }
            out.push_str(&t.nodes[n as usize].name);
            out.push('\n');
            if cfg.print_limit > 0 && i + 1 >= cfg.print_limit {
                break;
            }
        }
        root = last;
    }
    let base = if cfg.mode == GraphMode::Graph { total } else { parent_total };
    graph_level(t, cfg, root, base, total, 1, 1, left, out);
    if out.len() > start {
        out.push('\n');
    }
}

/// The children of `n` that pass the threshold, most first: of the event's
/// total in graph mode, of what `n`'s children hold in fractal mode.
fn kids(t: &CallTree, cfg: &CallGraphConfig, n: u32, total: u64) -> Vec<u32> {
    let node = &t.nodes[n as usize];
    let min = match cfg.mode {
        GraphMode::Fractal => ((node.cumul - if n == 0 { 0 } else { node.hit }) as f64 * cfg.threshold / 100.0).ceil(),
        _ => total as f64 * cfg.threshold / 100.0,
    };
    t.sorted_children(n, min)
}

/// perf's `__callchain__fprintf_graph`: `base` is what percentages are of.
#[allow(clippy::too_many_arguments)]
fn graph_level(
    t: &CallTree,
    cfg: &CallGraphConfig,
    parent: u32,
    base: u64,
    total: u64,
    depth: usize,
    mask: u64,
    left: usize,
    out: &mut String,
) {
    let rel = cfg.mode == GraphMode::Fractal;
    let list = kids(t, cfg, parent, total);
    let mut new_mask = mask;
    let mut remaining = base;
    for (k, &c) in list.iter().enumerate() {
        let value = t.nodes[c as usize].cumul;
        remaining = remaining.saturating_sub(value);
        // The last child drops its pipe, unless a "[...]" rest follows it.
        if k + 1 == list.len() && (!rel || remaining == 0) {
            new_mask &= !(1 << (depth - 1));
        }
        // The separator line keeps the parent's pipes.
        margin(out, left);
        for i in 0..depth {
            out.push_str(if mask & (1 << i) != 0 { "|          " } else { "           " });
        }
        out.push('\n');
        let (run, last) = t.run(c);
        for (p, &n) in run.iter().enumerate() {
            pipes(out, left, depth, new_mask, (p == 0).then_some(value as f64 * 100.0 / base.max(1) as f64));
            out.push_str(&t.nodes[n as usize].name);
            out.push('\n');
        }
        let l = &t.nodes[last as usize];
        let next_base = if rel { l.cumul - l.hit } else { total };
        graph_level(t, cfg, last, next_base, total, depth + 1, new_mask | (1 << depth), left, out);
        if cfg.print_limit > 0 && k + 1 >= cfg.print_limit {
            break;
        }
    }
    // Fractal mode shows what the printed children leave out as "[...]".
    if rel && remaining > 0 && remaining != base {
        new_mask &= !(1 << (depth - 1));
        pipes(out, left, depth, new_mask, Some(remaining as f64 * 100.0 / base.max(1) as f64));
        out.push_str("[...]\n");
    }
}

/// The margin and pipes of one line; `value` puts "--X%--" at the last level.
fn pipes(out: &mut String, left: usize, depth: usize, mask: u64, value: Option<f64>) {
    margin(out, left);
    for i in 0..depth {
        out.push(if mask & (1 << i) != 0 { '|' } else { ' ' });
        match value {
            Some(v) if i == depth - 1 => out.push_str(&format!("--{v:.2}%--")),
            _ => out.push_str("          "),
        }
    }
}

/// Chains ending at each node (flat and folded modes): (node, hit), most first.
fn chain_ends(t: &CallTree, min: f64) -> Vec<(u32, u64)> {
    // Equal hits keep perf's visiting order (a stable sort).
    let mut v: Vec<(u32, u64)> = t
        .post_order()
        .into_iter()
        .filter(|&n| n != 0)
        .map(|n| (n, t.nodes[n as usize].hit))
        .filter(|&(_, h)| h > 0 && h as f64 >= min)
        .collect();
    v.sort_by_key(|&(_, hit)| std::cmp::Reverse(hit));
    v
}

fn path(t: &CallTree, mut n: u32) -> Vec<&str> {
    let mut v = Vec::new();
    while n != 0 {
        v.push(t.nodes[n as usize].name.as_str());
        n = t.nodes[n as usize].parent;
    }
    v.reverse();
    v
}

/// perf's `callchain__fprintf_flat`: the chains that end at a node with
/// enough hits, each shown with the node's cumulative share (perf's
/// callchain_node__fprintf_value prints cumulative hits in flat mode).
pub fn render_flat(t: &CallTree, cfg: &CallGraphConfig, total: u64, out: &mut String) {
    for (i, (n, _hit)) in chain_ends(t, total as f64 * cfg.threshold / 100.0).into_iter().enumerate() {
        let cumul = t.nodes[n as usize].cumul;
        out.push_str(&format!("           {:.2}%\n", cumul as f64 * 100.0 / total.max(1) as f64));
        for name in path(t, n) {
            out.push_str("                ");
            out.push_str(name);
            out.push('\n');
        }
        out.push('\n');
        if cfg.print_limit > 0 && i + 1 >= cfg.print_limit {
            break;
        }
    }
}

/// perf's `callchain__fprintf_folded`.
pub fn render_folded(t: &CallTree, cfg: &CallGraphConfig, total: u64, out: &mut String) {
    for (i, (n, hit)) in chain_ends(t, total as f64 * cfg.threshold / 100.0).into_iter().enumerate() {
        out.push_str(&format!("{:.2}% {}\n", hit as f64 * 100.0 / total.max(1) as f64, path(t, n).join(";")));
        if cfg.print_limit > 0 && i + 1 >= cfg.print_limit {
            break;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A tree of named chains, names interned as report interns them.
    pub(super) fn tree_of(chains: &[(&[&str], u64)]) -> CallTree {
        let mut names: Vec<String> = Vec::new();
        let mut t = CallTree::new();
        for (chain, period) in chains {
            let ids: Vec<u32> = chain
                .iter()
                .map(|n| match names.iter().position(|x| x == n) {
                    Some(i) => i as u32,
                    None => {
                        names.push(n.to_string());
                        names.len() as u32 - 1
                    }
                })
                .collect();
            t.add_ids(ids.into_iter(), *period);
        }
        t.set_names(&names);
        t
    }

    fn tree() -> CallTree {
        tree_of(&[(&["main", "top", "mid", "leaf"], 75), (&["main", "side", "leaf"], 25)])
    }

    #[test]
    fn graph_text_is_perfs() {
        let mut out = String::new();
        render_graph(&tree(), &CallGraphConfig::default(), 100, 100, true, &mut out);
        // (the chain root holds all 100 of the row: no percentage for it)
        let want = "            |          \n            |--75.00%--top\n            |          mid\n            |          leaf\n            |          \n             --25.00%--side\n                       leaf\n\n";
        assert_eq!(out, want);
        let mut out = String::new();
        render_graph(&tree(), &CallGraphConfig::default(), 100, 100, false, &mut out);
        assert!(
            out.starts_with("            |\n            ---main\n               |          \n               |--75.00%--top\n"),
            "{out}"
        );
    }

    #[test]
    fn options_parse_as_perfs() {
        let c = CallGraphConfig::parse("fractal,2,10,callee").unwrap();
        assert_eq!((c.mode, c.threshold, c.print_limit, c.order), (GraphMode::Fractal, 2.0, 10, Some(GraphOrder::Callee)));
        assert_eq!(CallGraphConfig::parse("none").unwrap().mode, GraphMode::None);
        assert!(CallGraphConfig::parse("graph,abc").is_err());
        assert!(CallGraphConfig::parse("address").is_err());
        let mut out = String::new();
        render_folded(&tree(), &CallGraphConfig::default(), 100, &mut out);
        assert_eq!(out, "75.00% main;top;mid;leaf\n25.00% main;side;leaf\n");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tie_tests {
    #[test]
    fn equal_siblings_by_name_descending() {
        let t = super::tests::tree_of(&[(&["x", "rcu_core"], 10), (&["x", "run_timer_softirq"], 10), (&["x", "tmigr_handle_remote"], 10)]);
        let kids = t.sorted_children(1, 0.0);
        let names: Vec<&str> = kids.iter().map(|&k| t.nodes[k as usize].name.as_str()).collect();
        assert_eq!(names, ["tmigr_handle_remote", "run_timer_softirq", "rcu_core"]);
    }
}
