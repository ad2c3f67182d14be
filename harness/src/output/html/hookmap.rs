//! The netfilter hook map of one netns, as the seed articles draw the packet flow: the bridge
//! hooks (ebtables) above, the IP hooks below (PREROUTING, routing, INPUT or FORWARD, OUTPUT,
//! POSTROUTING), each hook a column of its tables. The cells a packet met are numbered in the
//! order it met them and coloured by what was decided there (drop, reject, nat, accept, jump,
//! return); each cell's title lists its events with the rules' text.

use std::fmt::Write;

use super::escape::esc;
use crate::observe::trace::{Hook, TraceEvent, Verdict};

const COL_W: f64 = 175.0;
const BOX_W: f64 = 148.0;
const CELL_H: f64 = 20.0;
const HEAD_H: f64 = 22.0;
const ROWS: [f64; 4] = [28.0, 118.0, 222.0, 372.0];

/// A hook of the picture: bridge or IP, its name, its tables in the kernel's order, where.
struct Group {
    bridge: bool,
    hook: &'static str,
    tables: &'static [&'static str],
    col: u8,
    row: usize,
}

const GROUPS: [Group; 11] = [
    Group { bridge: true, hook: "BROUTING", tables: &["broute"], col: 0, row: 0 },
    Group { bridge: true, hook: "PREROUTING", tables: &["nat"], col: 1, row: 0 },
    Group { bridge: true, hook: "FORWARD", tables: &["filter"], col: 2, row: 0 },
    Group { bridge: true, hook: "POSTROUTING", tables: &["nat"], col: 4, row: 0 },
    Group { bridge: true, hook: "INPUT", tables: &["filter"], col: 1, row: 1 },
    Group { bridge: true, hook: "OUTPUT", tables: &["filter", "nat"], col: 3, row: 1 },
    Group { bridge: false, hook: "PREROUTING", tables: &["raw", "mangle", "nat"], col: 0, row: 2 },
    Group { bridge: false, hook: "FORWARD", tables: &["mangle", "filter", "security"], col: 2, row: 2 },
    Group { bridge: false, hook: "POSTROUTING", tables: &["mangle", "nat"], col: 4, row: 2 },
    Group { bridge: false, hook: "INPUT", tables: &["mangle", "filter", "security", "nat"], col: 1, row: 3 },
    Group { bridge: false, hook: "OUTPUT", tables: &["raw", "mangle", "nat", "filter", "security"], col: 3, row: 3 },
];

/// The packet flow's arrows between groups (indices into [`GROUPS`]), with a label.
const ARROWS: [(usize, usize, &str); 12] = [
    (0, 1, ""),
    (1, 2, "bridging"),
    (2, 3, ""),
    (1, 4, ""),
    (4, 6, "to IP"),
    (6, 7, "routing"),
    (6, 9, ""),
    (9, 10, "local process"),
    (7, 8, ""),
    (10, 8, "routing"),
    (8, 5, "out a bridge"),
    (5, 3, ""),
];

/// The cell an event is drawn in: group index and table.
type Cell = (usize, String);

/// Where `ev` belongs: its chain's hook (a base chain), or for a user chain the base chain it
/// was reached from (`current`, the last base chain of the path so far).
fn cell_of(ev: &TraceEvent, current: &Option<Cell>) -> Option<Cell> {
    let (bridge, table, chain) = match &ev.hook {
        Hook::Eb { table, chain } => (true, table.clone(), chain.clone()),
        Hook::Xt { table, chain, .. } => {
            let facts = ev.chain.as_ref();
            let hook = facts.and_then(|c| c.hook.clone()).unwrap_or_else(|| chain.clone());
            let bridge = facts.is_some_and(|c| c.family == "bridge");
            const XT: [&str; 5] = ["raw", "mangle", "nat", "filter", "security"];
            // A native nft table has any name: its chain's type says which column it is.
            let table = match facts.and_then(|c| c.kind.as_deref()) {
                _ if XT.contains(&table.as_str()) => table.clone(),
                Some("route") => "mangle".into(),
                Some(kind) => kind.to_string(),
                None => table.clone(),
            };
            (bridge, table, hook)
        }
    };
    let upper = chain.to_ascii_uppercase();
    match GROUPS.iter().position(|g| g.bridge == bridge && g.hook == upper) {
        Some(g) => Some((g, table)),
        None => current.clone(),
    }
}

/// `drop`, `reject`, `nat`, `accept`, `jump`, `return`, `continue`, `seen`: the colour of a cell
/// whose events are `evs` (what ended the packet's stay wins; a translation is told apart from
/// a plain accept).
pub(super) fn verdict_class(evs: &[&TraceEvent]) -> &'static str {
    if evs.iter().any(|e| e.verdict == Some(Verdict::Drop)) {
        return "drop";
    }
    if evs.iter().any(|e| e.verdict == Some(Verdict::Reject)) {
        return "reject";
    }
    if evs.iter().any(|e| is_nat(e)) {
        return "nat";
    }
    evs.last().map_or("seen", |e| event_class(e))
}

/// The colour of one event.
pub(super) fn event_class(e: &TraceEvent) -> &'static str {
    if is_nat(e) {
        return "nat";
    }
    match &e.verdict {
        Some(Verdict::Accept) => "accept",
        Some(Verdict::Drop) => "drop",
        Some(Verdict::Reject) => "reject",
        Some(Verdict::Jump(_) | Verdict::Goto(_)) => "jump",
        Some(Verdict::Return) => "return",
        Some(Verdict::Continue) => "continue",
        Some(_) => "other",
        None => "seen",
    }
}

/// Whether the rule that decided rewrote addresses (MASQUERADE, SNAT, DNAT, REDIRECT, NETMAP).
pub(super) fn is_nat(e: &TraceEvent) -> bool {
    let Some(rule) = &e.rule else { return false };
    if matches!(e.verdict, Some(Verdict::Drop | Verdict::Reject | Verdict::Jump(_) | Verdict::Goto(_))) {
        return false;
    }
    let text = rule.text.to_ascii_lowercase();
    ["masquerade", "snat", "dnat", "redirect", "netmap"]
        .iter()
        .any(|t| text.split(|c: char| !c.is_ascii_alphanumeric() && c != '-').any(|w| w == *t || w == format!("-j{t}")))
}

/// One event as a cell's title and a hop's tooltip say it: `filter:FORWARD:rule:1 jump
/// DOCKER-USER: -A FORWARD -j DOCKER-USER (comment)`.
pub(super) fn event_line(e: &TraceEvent) -> String {
    let mut line = e.hook.to_string();
    if let Some(v) = &e.verdict {
        let _ = write!(line, " {v}");
    }
    if let Some(r) = &e.rule {
        let _ = write!(line, ": {}", r.text);
        if let Some(c) = &r.comment {
            let _ = write!(line, " ({c})");
        }
    }
    line
}

/// The hook map of netns `netns` with the events `evs` of one packet there, in order.
pub(super) fn svg(netns: &str, evs: &[&TraceEvent]) -> String {
    // Which cell each event is in, and the cells in the order first met.
    let mut current: Option<Cell> = None;
    let mut cells: Vec<(Cell, Vec<&TraceEvent>)> = vec![];
    let mut unplaced: Vec<&TraceEvent> = vec![];
    for e in evs {
        match cell_of(e, &current) {
            Some(c) => {
                current = Some(c.clone());
                match cells.iter_mut().find(|(k, _)| *k == c) {
                    Some((_, v)) => v.push(e),
                    None => cells.push((c, vec![e])),
                }
            }
            None => unplaced.push(e),
        }
    }
    let tables = |g: usize| -> Vec<String> {
        let mut t: Vec<String> = GROUPS[g].tables.iter().map(|s| s.to_string()).collect();
        for ((cg, table), _) in &cells {
            if *cg == g && !t.contains(table) {
                t.push(table.clone());
            }
        }
        t
    };
    let boxes: Vec<(f64, f64, f64)> = (0..GROUPS.len())
        .map(|g| {
            let x = 14.0 + f64::from(GROUPS[g].col) * COL_W;
            (x, ROWS[GROUPS[g].row], HEAD_H + CELL_H * tables(g).len() as f64 + 4.0)
        })
        .collect();
    let height = boxes.iter().map(|b| b.1 + b.2).fold(0.0, f64::max) + 14.0;
    let width = 14.0 + 5.0 * COL_W;
    let mut s = format!(
        r#"<svg class="hookmap" data-netns="{}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#,
        esc(netns)
    );
    let _ = write!(s, r#"<text class="layer" x="14" y="16">bridge (ebtables)</text>"#);
    let _ = write!(s, r#"<text class="layer" x="14" y="{}">IP (iptables, nft)</text>"#, ROWS[2] - 10.0);
    for (from, to, label) in ARROWS {
        let (a, b) = (boxes[from], boxes[to]);
        let (x1, y1, x2, y2) = if GROUPS[from].row == GROUPS[to].row {
            let (ax, bx) = if a.0 < b.0 { (a.0 + BOX_W, b.0) } else { (a.0, b.0 + BOX_W) };
            (ax, a.1 + 12.0, bx, b.1 + 12.0)
        } else if a.1 < b.1 {
            (a.0 + BOX_W / 2.0, a.1 + a.2, b.0 + BOX_W / 2.0, b.1)
        } else {
            (a.0 + BOX_W / 2.0, a.1, b.0 + BOX_W / 2.0, b.1 + b.2)
        };
        let _ = write!(
            s,
            r#"<line class="flow" x1="{x1:.0}" y1="{y1:.0}" x2="{x2:.0}" y2="{y2:.0}" marker-end="url(#flow)"/>"#
        );
        if !label.is_empty() {
            let _ = write!(
                s,
                r#"<text class="flow-label" x="{:.0}" y="{:.0}">{label}</text>"#,
                (x1 + x2) / 2.0 + 4.0,
                (y1 + y2) / 2.0 - 4.0
            );
        }
    }
    for (g, group) in GROUPS.iter().enumerate() {
        let (x, y, h) = boxes[g];
        let _ = write!(
            s,
            r#"<g class="hook"><rect class="hook-box" x="{x}" y="{y}" width="{BOX_W}" height="{h}" rx="4"/><text class="hook-name" x="{:.0}" y="{:.0}">{}{}</text>"#,
            x + 6.0,
            y + 15.0,
            if group.bridge { "eb " } else { "" },
            group.hook
        );
        for (k, table) in tables(g).iter().enumerate() {
            let cy = y + HEAD_H + CELL_H * k as f64;
            let met = cells.iter().position(|((cg, t), _)| *cg == g && t == table);
            let (class, title, order) = match met {
                Some(i) => {
                    let evs = &cells[i].1;
                    let lines: Vec<String> = evs.iter().map(|e| event_line(e)).collect();
                    (verdict_class(evs), lines.join("\n"), Some(i + 1))
                }
                None => ("unmet", String::new(), None),
            };
            let name = format!("{}{table}:{}", if group.bridge { "eb:" } else { "" }, group.hook);
            let _ = write!(
                s,
                r#"<g class="cell v-{class}" data-cell="{}"><rect x="{:.0}" y="{cy:.0}" width="{:.0}" height="{:.0}" rx="3"/><text x="{:.0}" y="{:.0}">{}</text>"#,
                esc(&name),
                x + 4.0,
                BOX_W - 8.0,
                CELL_H - 2.0,
                x + 10.0,
                cy + 13.0,
                esc(table)
            );
            if let Some(n) = order {
                let _ = write!(
                    s,
                    r#"<text class="order" x="{:.0}" y="{:.0}">{n}</text><title>{}</title>"#,
                    x + BOX_W - 14.0,
                    cy + 13.0,
                    esc(&title)
                );
            }
            s.push_str("</g>");
        }
        s.push_str("</g>");
    }
    if !unplaced.is_empty() {
        let lines: Vec<String> = unplaced.iter().map(|e| event_line(e)).collect();
        let _ = write!(
            s,
            r#"<text class="unplaced" x="14" y="{:.0}">{} event(s) in chains no hook reaches: {}</text>"#,
            height - 4.0,
            unplaced.len(),
            esc(&lines.join("; "))
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::trace::RuleText;

    fn ev(hook: &str, verdict: Option<Verdict>, rule: Option<&str>) -> TraceEvent {
        TraceEvent {
            netns: "host".into(),
            hook: hook.parse().unwrap(),
            ifaces: Default::default(),
            packet: Default::default(),
            payload: None,
            nonce: None,
            source: None,
            verdict,
            rule: rule.map(|r| RuleText::new(r.into(), None, [])),
            chain: None,
        }
    }

    #[test]
    fn user_chains_are_drawn_in_the_hook_that_reached_them_and_nat_is_told_apart() {
        let evs = [
            ev("filter:FORWARD:rule:1", Some(Verdict::Jump("DOCKER-USER".into())), Some("-A FORWARD -j DOCKER-USER")),
            ev("filter:DOCKER-USER:return:1", Some(Verdict::Return), None),
            ev("filter:FORWARD:rule:5", Some(Verdict::Accept), Some("-A FORWARD -i docker0 ! -o docker0 -j ACCEPT")),
            ev(
                "nat:POSTROUTING:rule:1",
                Some(Verdict::Accept),
                Some("-A POSTROUTING -s 192.168.0.0/20 ! -o docker0 -j MASQUERADE"),
            ),
            ev("eb:nat:PREROUTING", None, None),
        ];
        let refs: Vec<&TraceEvent> = evs.iter().collect();
        let svg = svg("host", &refs);
        assert!(svg.contains(r#"<g class="cell v-accept" data-cell="filter:FORWARD">"#), "{svg}");
        assert!(svg.contains(r#"<g class="cell v-nat" data-cell="nat:POSTROUTING">"#), "{svg}");
        assert!(svg.contains(r#"<g class="cell v-seen" data-cell="eb:nat:PREROUTING">"#), "{svg}");
        assert!(svg.contains("filter:DOCKER-USER:return:1 return"), "the user chain is in FORWARD's title: {svg}");
        assert!(!svg.contains("unplaced"), "{svg}");
        let dropped = [ev("filter:INPUT:policy:1", Some(Verdict::Drop), None)];
        assert_eq!(verdict_class(&dropped.iter().collect::<Vec<_>>()), "drop");
        assert!(!is_nat(&ev("filter:FORWARD:rule:1", Some(Verdict::Accept), Some("-A FORWARD -j ACCEPT"))));
    }
}
