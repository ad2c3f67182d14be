//! A packet's journey as text ([`crate::output::hops`]): one line per capture point with the
//! addresses it carried and what rewrote them, the hooks it met between them (netns, hook,
//! verdict, the rule's comment or text), and the kernel's drop last; and a probe's summary line.

use std::fmt::Write;

use crate::output::hops::{ExchangeHops, Hop, Journey, Side, Sighting, drop_line};

/// Widths that keep one probe's columns aligned whatever its names' lengths.
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns {
    point: usize,
    addrs: usize,
    netns: usize,
    hook: usize,
    verdict: usize,
}

impl Columns {
    /// The widths that fit every hop of `exchanges`.
    pub fn fit<'a>(exchanges: impl IntoIterator<Item = &'a ExchangeHops>) -> Columns {
        let mut c = Columns::default();
        for x in exchanges {
            for j in [&x.request, &x.reply].into_iter().chain(&x.retransmissions).chain(&x.reply_retransmissions) {
                for h in &j.hops {
                    match h {
                        Hop::Seen(s) => {
                            c.point = c.point.max(width(&s.name()));
                            c.addrs = c.addrs.max(width(&addresses(s)));
                        }
                        Hop::Hook(ev) => {
                            c.netns = c.netns.max(width(&ev.netns));
                            c.hook = c.hook.max(width(&ev.hook.to_string()));
                            c.verdict = c.verdict.max(ev.verdict.as_ref().map_or(0, |v| width(&v.to_string())));
                        }
                        Hop::Dropped(_) => {}
                    }
                }
            }
        }
        c
    }
}

/// Columns on screen: characters, not bytes (`…`, `×`).
fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

fn addresses(s: &Sighting) -> String {
    let (src, dst) = s.packet.endpoints();
    format!("{src} > {dst}")
}

/// The label column: `request `, `reply   `, `resent 1`.
const LABEL: usize = 9;

/// Whether a hook says nothing beyond its name and verdict: no rule, or a rule that only
/// jumps or returns (`-A FORWARD -j DOCKER-USER`); never one that drops or rejects.
fn plain(h: &Hop) -> bool {
    use crate::observe::trace::Verdict;
    let Hop::Hook(ev) = h else { return false };
    let passes = ev.verdict.as_ref().is_none_or(|v| {
        matches!(v, Verdict::Accept | Verdict::Continue | Verdict::Return | Verdict::Jump(_) | Verdict::Goto(_))
    });
    let bare = ev.rule.as_ref().is_none_or(|r| {
        let words: Vec<&str> = r.text.split_whitespace().collect();
        let iptables = matches!(words.as_slice(), ["-A", _, "-j", _]);
        let verdict = ev.verdict.as_ref().is_some_and(|v| v.to_string() == r.text.trim());
        r.comment.is_none() && (iptables || verdict)
    });
    passes && bare
}

/// `raw:PREROUTING:policy:2 accept`.
fn hook_and_verdict(h: &Hop) -> String {
    let Hop::Hook(ev) = h else { return String::new() };
    match &ev.verdict {
        Some(v) => format!("{} {v}", ev.hook),
        None => ev.hook.to_string(),
    }
}

/// The journey's lines, each indented by `indent` spaces: a line per capture point, per hook
/// with a rule that says something, and per run of a netns's plain hooks ([`plain`]); hooks
/// that only feed the trace are left out.
pub fn journey_lines(out: &mut String, j: &Journey, cols: Columns, indent: usize, label: &str) {
    // The first line carries the label (`request`, `reply`) in a column of its own.
    let mut lead = format!("{}{}", " ".repeat(indent), pad(label, LABEL));
    let hops: Vec<&Hop> = j.hops.iter().filter(|h| !h.is_tracing()).collect();
    let mut i = 0;
    while i < hops.len() {
        let h = hops[i];
        let line = match h {
            Hop::Hook(ev)
                if plain(h)
                    && hops
                        .get(i + 1)
                        .is_some_and(|n| plain(n) && matches!(n, Hop::Hook(e) if e.netns == ev.netns)) =>
            {
                let mut run = vec![hook_and_verdict(h)];
                while let Some(next) =
                    hops.get(i + 1).filter(|n| plain(n) && matches!(n, Hop::Hook(e) if e.netns == ev.netns))
                {
                    run.push(hook_and_verdict(next));
                    i += 1;
                }
                format!("  {} {}", pad(&format!("{}:", ev.netns), cols.netns + 1), run.join(", "))
            }
            Hop::Seen(s) => {
                let ttl = s.packet.ttl.map(|t| format!("ttl {t}")).unwrap_or_default();
                let rewrites: Vec<String> = s.rewrites.iter().map(ToString::to_string).collect();
                let tail = if rewrites.is_empty() { String::new() } else { format!("  ({})", rewrites.join(", ")) };
                format!("{} {} {ttl:<7}{tail}", pad(&s.name(), cols.point), pad(&addresses(s), cols.addrs))
            }
            Hop::Hook(ev) => {
                let verdict = ev.verdict.as_ref().map(ToString::to_string).unwrap_or_default();
                // The rule as written; its comment too where the text does not show it.
                let rule = ev
                    .rule
                    .as_ref()
                    .map(|r| match &r.comment {
                        Some(c) if !r.text.contains(c.as_str()) => format!("{}  # {c}", r.text),
                        _ => r.text.clone(),
                    })
                    .unwrap_or_default();
                format!(
                    "  {} {} {} {rule}",
                    pad(&format!("{}:", ev.netns), cols.netns + 1),
                    pad(&ev.hook.to_string(), cols.hook),
                    pad(&verdict, cols.verdict)
                )
            }
            Hop::Dropped(d) => format!("✗ {}", drop_line(d)),
        };
        let _ = writeln!(out, "{lead}{}", line.trim_end());
        lead = " ".repeat(indent + LABEL);
        i += 1;
    }
    if j.is_empty() {
        let _ = writeln!(out, "{lead}(not captured or traced anywhere)");
    }
}

/// A journey already shown in a probe's report: under which label (`path 1`), as which part
/// (`request`), its [`Journey::shape`] (what `without` compares) and its
/// [`Journey::class_key`] (what `as in` compares).
pub type Shown = Vec<(String, String, (Vec<String>, Vec<String>))>;

/// How `now` differs from `before` where it only leaves out hooks or capture points of it (a
/// later packet of a connection skips the nat table; a bridge that has learnt a MAC no longer
/// floods): `host nat:POSTROUTING:rule:1, node/cni0`. `None` where they differ otherwise
/// (other addresses, another hook).
fn left_out(before: &[String], now: &[String]) -> Option<String> {
    let mut missing = vec![];
    let mut it = now.iter().peekable();
    for b in before {
        if it.peek() == Some(&b) {
            it.next();
        } else if let Some(hook) = b.strip_prefix("hook ") {
            missing.push(hook.split_once(" = ").map_or(hook, |(h, _)| h).to_string());
        } else if let Some(seen) = b.strip_prefix("seen ") {
            // A capture point that saw only the first packet: a bridge floods a frame to every
            // port until it has learnt where its destination is.
            missing.push(seen.split(' ').next().unwrap_or(seen).to_string());
        } else {
            return None;
        }
    }
    (it.next().is_none() && !missing.is_empty()).then(|| missing.join(", "))
}

/// One exchange in full: its request, each retransmission (`resent 1`, ...), its reply and each
/// of its retransmissions (`reply resent 1`),
/// each labelled on its first line. A journey the same as one shown before (`shown`, each
/// with the `label` it was shown under: `path 1`) says so in a line, and so does one that only
/// leaves out some of its hooks.
pub fn exchange_lines(
    out: &mut String,
    x: &ExchangeHops,
    cols: Columns,
    replied: bool,
    shown: &mut Shown,
    label: &str,
) {
    let mut part = |out: &mut String, name: &str, j: &Journey| {
        let shape = j.shape();
        let key = j.class_key();
        let same = shown.iter().find(|(_, n, s)| n == name && s.1 == key);
        let fewer =
            shown.iter().find_map(|(l, n, s)| (n == name).then(|| left_out(&s.0, &shape).map(|m| (l, m))).flatten());
        match (same, fewer) {
            (Some((earlier, _, _)), _) if !j.is_empty() => {
                let _ = writeln!(out, "      {}as in {earlier}", pad(name, LABEL));
            }
            (_, Some((earlier, missing))) => {
                let _ = writeln!(out, "      {}as in {earlier} without {missing}", pad(name, LABEL));
            }
            _ => {
                journey_lines(out, j, cols, 6, name);
                shown.push((label.to_string(), name.to_string(), (shape, key)));
            }
        }
    };
    part(out, "request", &x.request);
    for (k, again) in x.retransmissions.iter().enumerate() {
        part(out, &format!("resent {}", k + 1), again);
    }
    if x.reply.is_empty() && !replied {
        let _ = writeln!(out, "      {}none", pad("reply", LABEL));
    } else {
        part(out, "reply", &x.reply);
    }
    for (k, again) in x.reply_retransmissions.iter().enumerate() {
        part(out, &format!("reply resent {}", k + 1), again);
    }
}

/// The longest summary line, in columns.
pub const SUMMARY_WIDTH: usize = 100;

/// What a probe's packets did, in a few words: `masqueraded at host/eth0`, `DNAT at
/// node/eth0`, `dropped in router at ip_error`.
pub fn highlights(exchanges: &[ExchangeHops]) -> Vec<String> {
    // Per capture point and side, in the order first met: whether a traced rule masqueraded.
    // Conntrack's rewrites of later packets repeat their connection's first: said once.
    let mut nat: Vec<(String, Side, bool)> = vec![];
    for x in exchanges {
        for (s, r) in x.request.rewrites() {
            let at = s.points[0].to_string();
            let masq = r.by.as_ref().is_some_and(|(_, t)| t.to_ascii_uppercase().starts_with("MASQUERADE"));
            match nat.iter_mut().find(|(p, side, _)| *p == at && *side == r.side) {
                Some(n) => n.2 |= masq,
                None => nat.push((at, r.side, masq)),
            }
        }
    }
    let mut out: Vec<String> = nat
        .into_iter()
        .map(|(at, side, masq)| match (side, masq) {
            (Side::Source, true) => format!("masqueraded at {at}"),
            (Side::Source, false) => format!("SNAT at {at}"),
            (Side::Destination, _) => format!("DNAT at {at}"),
        })
        .collect();
    for x in exchanges {
        for (dir, j) in [("", &x.request), ("reply ", &x.reply)] {
            for d in j.drops() {
                let s = format!("{dir}dropped in {} at {}", d.netns, d.function());
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// `c1-to-external: 2 packets, 2 paths, masqueraded at host/eth0, ok`, cut with `…` to
/// [`SUMMARY_WIDTH`] columns (the verdict always shown), indented by two spaces.
/// `answers` are the endpoints that answered each packet (a Service's endpoints), counted
/// where more than one did.
pub fn summary_line(
    name: &str,
    exchanges: &[ExchangeHops],
    paths: usize,
    answers: &[Option<&str>],
    verdict: &str,
) -> String {
    let n = exchanges.len();
    let mut parts = vec![
        format!("{n} {}", if n == 1 { "packet" } else { "packets" }),
        format!("{paths} {}", if paths == 1 { "path" } else { "paths" }),
    ];
    let mut by: Vec<(&str, usize)> = vec![];
    for a in answers.iter().flatten() {
        match by.iter_mut().find(|(b, _)| b == a) {
            Some(b) => b.1 += 1,
            None => by.push((a, 1)),
        }
    }
    match by.as_slice() {
        [] => {}
        [(a, _)] => parts.push(format!("answered by {a}")),
        _ => parts.extend(by.iter().map(|(a, k)| format!("{a} ×{k}"))),
    }
    parts.extend(highlights(exchanges));
    let head = format!("  {name}: {}", parts.join(", "));
    let tail = format!(", {verdict}");
    if width(&head) + width(&tail) <= SUMMARY_WIDTH {
        return format!("{head}{tail}");
    }
    let keep = SUMMARY_WIDTH.saturating_sub(width(&tail) + 1);
    let cut: String = head.chars().take(keep).collect();
    format!("{cut}…{tail}")
}
