//! A probe on the page: its verdict, each failed expectation (FILE:LINE, expected against
//! observed, the text netpath prints), and per class of packets that took the same way, each
//! direction's journey: the hops in order (capture points with their addresses, the fields a
//! hop rewrote marked; netfilter hooks coloured by verdict with the rule's text; the kernel's
//! drop), drawn over the topology and over each netns's hook map.

use std::fmt::Write;

use super::escape::esc;
use super::hookmap;
use super::topology::Topology;
use crate::engine::ProbeOutcome;
use crate::evidence::PacketEvidence;
use crate::observe::trace::TraceEvent;
use crate::output::hops::{self, ExchangeHops, Hop, Journey, Side};
use crate::scenario::CapturePoint;
use crate::verdict::Failure;

/// A probe's section of the page (the `index`th of its run); `pcaps` the path prefix of the artifact folder's pcaps, when
/// the run wrote them.
pub(super) fn probe(index: usize, p: &ProbeOutcome, topo: &Topology, pcaps: Option<&str>) -> String {
    let mut s = String::new();
    let ok = p.failures.is_empty();
    let _ = write!(
        s,
        r#"<section class="probe {}" id="probe-{index}" data-probe="{}"><h2><span class="mark">{}</span> probe {} <span class="verdict">{}</span></h2>"#,
        if ok { "pass" } else { "fail" },
        esc(&p.name),
        if ok { "✓" } else { "✗" },
        esc(&p.name),
        if ok { "ok" } else { "FAILED" }
    );
    for f in &p.failures {
        s.push_str(&failure(f));
    }
    let journeys: Vec<ExchangeHops> = p.exchanges.iter().map(ExchangeHops::of).collect();
    let groups = hops::classes(&journeys);
    let _ =
        write!(s, r#"<p class="count">{} packet(s), {} way(s) through the lab</p>"#, p.exchanges.len(), groups.len());
    for (k, class) in groups.iter().enumerate() {
        let packets: Vec<u16> = class.iter().map(|&i| p.exchanges[i].packet).collect();
        let failing = packets.iter().any(|n| p.failures.iter().any(|f| f.packet.is_none_or(|m| m == *n)));
        let list: Vec<String> = packets.iter().map(ToString::to_string).collect();
        let (first, hops) = (&p.exchanges[class[0]], &journeys[class[0]]);
        let answer = first.answer.as_deref().map(|a| format!(", answered by {a}")).unwrap_or_default();
        let _ = write!(
            s,
            r#"<section class="class{}" data-probe="{}" data-packets="{}"><h3>{} {} ×{}{}</h3>"#,
            if failing { " failing" } else { "" },
            esc(&p.name),
            list.join(","),
            if packets.len() == 1 { "packet" } else { "packets" },
            esc(&crate::output::report::ranges(&packets)),
            packets.len(),
            esc(&answer)
        );
        let open = k == 0 || failing;
        let mut sides: Vec<(String, &Journey, &PacketEvidence)> =
            vec![("request".into(), &hops.request, &first.request), ("reply".into(), &hops.reply, &first.reply)];
        for (n, (again, pe)) in hops.retransmissions.iter().zip(&first.retransmissions).enumerate() {
            sides.push((format!("request, retransmission {}", n + 1), again, pe));
        }
        for (dir, journey, pe) in sides {
            if dir == "reply" && journey.is_empty() {
                let _ = write!(s, r#"<div class="dir" data-dir="reply"><h4>reply</h4><p class="none">none</p></div>"#);
                continue;
            }
            s.push_str(&direction(&dir, journey, pe, topo, pcaps, open));
        }
        s.push_str("</section>");
    }
    s.push_str("</section>");
    s
}

/// One failed expectation: where the scenario states it, expected against observed, and the
/// text `netpath run` prints for it.
fn failure(f: &Failure) -> String {
    let mut s = format!(r#"<div class="failure" data-location="{}">"#, esc(f.location.as_deref().unwrap_or("")));
    let _ = write!(s, r#"<div class="what">✗ {}</div>"#, esc(&f.what));
    if let Some(at) = &f.location {
        let _ = write!(s, r#"<div class="at">at <code>{}</code></div>"#, esc(at));
    }
    let text = esc(&crate::output::report::failure(f));
    if f.expected.is_some() || f.observed.is_some() {
        let _ = write!(
            s,
            r#"<table class="diff"><tr class="expected"><th>expected</th><td><pre>{}</pre></td></tr><tr class="observed"><th>observed</th><td><pre>{}</pre></td></tr></table>"#,
            esc(f.expected.as_deref().unwrap_or("—")),
            esc(f.observed.as_deref().unwrap_or("not seen"))
        );
        // The diff says it; the printed text, which says more, one click away.
        let _ = write!(
            s,
            r#"<details><summary>as netpath run prints it</summary><pre class="text">{text}</pre></details></div>"#
        );
    } else {
        let _ = write!(s, r#"<pre class="text">{text}</pre></div>"#);
    }
    s
}

/// One direction of one packet: its hop table, its journey over the topology, its hook maps.
fn direction(
    dir: &str,
    journey: &Journey,
    pe: &PacketEvidence,
    topo: &Topology,
    pcaps: Option<&str>,
    open: bool,
) -> String {
    let mut s = format!(r#"<div class="dir" data-dir="{}"><h4>{}</h4><table class="hops">"#, esc(dir), esc(dir));
    s.push_str("<tr><th>#</th><th>where</th><th>what</th><th>packet</th><th></th></tr>");
    for (k, hop) in journey.hops.iter().enumerate() {
        let n = k + 1;
        match hop {
            Hop::Seen(seen) => {
                let (src, dst) = seen.packet.endpoints();
                let mark = |v: &str, side: Side| {
                    if seen.rewrites.iter().any(|r| r.side == side) {
                        format!("<mark>{}</mark>", esc(v))
                    } else {
                        esc(v)
                    }
                };
                let ttl = seen.packet.ttl.map(|t| format!(" ttl {t}")).unwrap_or_default();
                let how: Vec<String> = seen.rewrites.iter().map(ToString::to_string).collect();
                let note = if how.is_empty() {
                    String::new()
                } else {
                    format!(r#"<br><span class="rewrite">{}</span>"#, esc(&how.join("; ")))
                };
                let links: Vec<String> = pcaps
                    .map(|dir| {
                        seen.points
                            .iter()
                            .map(|point| {
                                let file = crate::output::artifacts::file_name(&format!(
                                    "{}_{}.pcap",
                                    point.netns, point.iface
                                ));
                                format!(
                                    r#"<a class="pcap" href="{}">{}.pcap</a>"#,
                                    esc(&format!("{dir}{file}")),
                                    esc(&point.iface)
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let points: Vec<String> = seen.points.iter().map(ToString::to_string).collect();
                let _ = write!(
                    s,
                    r#"<tr class="hop point" data-point="{}"><td>{n}</td><td>{}</td><td>captured</td><td><code>{} &gt; {}</code>{}{note}</td><td>{}</td></tr>"#,
                    esc(&points.join(" ")),
                    esc(&seen.name()),
                    mark(&src, Side::Source),
                    mark(&dst, Side::Destination),
                    esc(&ttl),
                    links.join(" ")
                );
            }
            Hop::Hook(e) => s.push_str(&hook_row(n, e, hop.is_tracing())),
            Hop::Dropped(d) => {
                let _ = write!(
                    s,
                    r#"<tr class="hop drop v-drop" data-netns="{}"><td>{n}</td><td>{}</td><td colspan="3">{}</td></tr>"#,
                    esc(&d.netns),
                    esc(&d.netns),
                    esc(&hops::drop_line(d))
                );
            }
        }
    }
    if journey.is_empty() {
        s.push_str(r#"<tr><td colspan="5">not captured anywhere, no trace event</td></tr>"#);
    }
    s.push_str("</table>");
    let points: Vec<&CapturePoint> = journey.sightings().flat_map(|seen| &seen.points).collect();
    let open_attr = if open { " open" } else { "" };
    if !points.is_empty() {
        let _ = write!(
            s,
            r#"<details class="over-topology"{open_attr}><summary>journey over the topology</summary>{}</details>"#,
            topo.svg(&points, "journey")
        );
    }
    for (netns, evs) in &pe.path {
        let refs: Vec<&TraceEvent> = evs.iter().collect();
        let _ = write!(
            s,
            r#"<details class="over-hooks"{open_attr}><summary>hook map of netns {}</summary>{}</details>"#,
            esc(netns),
            hookmap::svg(netns, &refs)
        );
    }
    s.push_str("</div>");
    s
}

/// A hook's row: coloured by its verdict, the rule's text shown on a click and in its title;
/// a rule that only feeds netpath's trace (`-j TRACE`) is dimmed.
fn hook_row(n: usize, e: &TraceEvent, tracing: bool) -> String {
    let class = hookmap::event_class(e);
    let verdict = e.verdict.as_ref().map(ToString::to_string).unwrap_or_default();
    let rule = e
        .rule
        .as_ref()
        .map(|r| {
            let comment = r.comment.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
            format!(r#"<br><code class="rule">{}</code>"#, esc(&format!("{}{comment}", r.text)))
        })
        .unwrap_or_default();
    let (src, dst) = e.packet.endpoints();
    let dev = |d: &Option<String>| d.clone().unwrap_or_default();
    let mut ifs = format!("IN={} OUT={}", dev(&e.ifaces.indev), dev(&e.ifaces.outdev));
    if e.ifaces.physindev.is_some() || e.ifaces.physoutdev.is_some() {
        let _ = write!(ifs, " PHYSIN={} PHYSOUT={}", dev(&e.ifaces.physindev), dev(&e.ifaces.physoutdev));
    }
    format!(
        r#"<tr class="hop hook v-{class}{}" data-netns="{}" data-hook="{}" title="{}"><td>{n}</td><td>{}</td><td><span class="hookname">{}</span> <span class="vd">{}</span>{rule}</td><td><code>{} &gt; {}</code> <span class="ifs">{}</span></td><td></td></tr>"#,
        if tracing { " tracing" } else { "" },
        esc(&e.netns),
        esc(&e.hook.to_string()),
        esc(&hookmap::event_line(e)),
        esc(&e.netns),
        esc(&e.hook.to_string()),
        esc(&verdict),
        esc(&src),
        esc(&dst),
        esc(&ifs)
    )
}
