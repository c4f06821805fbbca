//! Rendering: aligned tables, JSON, CSV, and the progress bar (stderr, only
//! on a terminal).

pub mod diff;
pub mod false_share;
pub mod flows;
pub mod host;

pub use host::host_timeline;
pub mod numa;
pub mod report;
pub mod timing;

use std::io::IsTerminal;

/// A progress bar on stderr when `enabled`, stderr is a terminal, and the job
/// is long enough to need one; hidden otherwise.
pub fn progress(enabled: bool, len: u64, what: &str) -> indicatif::ProgressBar {
    if !enabled || len < 16 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} blocks") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// Left-aligned columns separated by two spaces; `right` marks numeric
/// columns aligned right. The last column is not padded.
pub fn table(header: &[String], rows: &[Vec<String>], right: &[bool], prefix: &str) -> String {
    let n = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let fmt_row = |cells: &[String], lead: &str| {
        let mut s = String::from(lead);
        for (i, c) in cells.iter().enumerate().take(n) {
            let pad = w[i] - c.chars().count();
            if i > 0 {
                s.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if i + 1 < n {
                    s.push_str(&" ".repeat(pad));
                }
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = fmt_row(header, prefix);
    let dots: Vec<String> = w.iter().map(|&x| ".".repeat(x)).collect();
    out.push_str(&fmt_row(&dots, prefix));
    out.push_str(prefix.trim_end());
    out.push('\n');
    let body_lead = " ".repeat(prefix.len());
    for r in rows {
        out.push_str(&fmt_row(r, &body_lead));
    }
    out
}

/// CSV field quoting (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The width of the terminal stdout writes to, when it is one.
pub fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        return Some(ws.ws_col as usize);
    }
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())
}

/// Fit a (demangled) name into `width` characters: C++ template arguments
/// become `<…>`, then function arguments `(…)`, then the tail is cut.
pub fn shorten_name(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        return name.to_string();
    }
    fn elide(s: &str, open: char, close: char) -> String {
        let mut out = String::new();
        let mut depth = 0usize;
        for c in s.chars() {
            if c == open {
                if depth == 0 {
                    out.push(open);
                    out.push('…');
                }
                depth += 1;
            } else if c == close && depth > 0 {
                depth -= 1;
                if depth == 0 {
                    out.push(close);
                }
            } else if depth == 0 {
                out.push(c);
            }
        }
        out
    }
    let mut s = elide(name, '<', '>');
    if s.chars().count() > width {
        s = elide(&s, '(', ')');
    }
    if s.chars().count() > width {
        s = s.chars().take(width.saturating_sub(1)).collect::<String>() + "…";
    }
    s
}

#[cfg(test)]
mod name_tests {
    use super::shorten_name;

    #[test]
    fn long_names_fit() {
        let n = "std::vector<std::pair<int, std::string>, std::allocator<std::pair<int, std::string>>>::push_back(std::pair<int, std::string> const&)";
        assert_eq!(shorten_name(n, 200), n);
        assert_eq!(shorten_name(n, 60), "std::vector<…>::push_back(std::pair<…> const&)");
        assert_eq!(shorten_name(n, 30), "std::vector<…>::push_back(…)");
        assert_eq!(shorten_name(n, 10).chars().count(), 10);
    }
}
