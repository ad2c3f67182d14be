//! The hop model on evidence transcribed from real runs (`netpath run --show-path` of the
//! bundled docker-masquerade and handmade-docker-no-forward on kernel 6.18, both backends):
//! the hooks with their interfaces, verdicts and rules, the captures with their addresses and
//! MACs, in the order the capture clock put them.

use super::*;
use crate::observe::trace::event::Ifaces;
use crate::observe::trace::{RuleText, Verdict};

fn info(src: &str, dst: &str, ttl: u8) -> PacketInfo {
    PacketInfo {
        src: Some(src.parse().unwrap()),
        dst: Some(dst.parse().unwrap()),
        ttl: Some(ttl),
        proto: Some(1),
        l4: crate::evidence::packet::L4::Icmp { kind: 8, code: 0, id: Some(7), seq: Some(1) },
        ..Default::default()
    }
}

/// A trace event: `ifs` as `IN OUT PHYSIN` (`-` for none), `addrs` as `src>dst`.
fn ev(netns: &str, hook: &str, verdict: Option<&str>, ifs: &str, addrs: &str, rule: Option<&str>) -> TraceEvent {
    let dev = |s: &str| (s != "-").then(|| s.to_string());
    let ifs: Vec<&str> = ifs.split(' ').collect();
    let (src, dst) = addrs.split_once('>').unwrap();
    TraceEvent {
        netns: netns.into(),
        hook: hook.parse().unwrap(),
        ifaces: Ifaces {
            indev: dev(ifs[0]),
            outdev: dev(ifs[1]),
            physindev: ifs.get(2).and_then(|s| dev(s)),
            physoutdev: None,
        },
        packet: info(src, dst, 64),
        payload: None,
        nonce: None,
        source: None,
        verdict: verdict.map(|v| v.parse::<Verdict>().unwrap()),
        rule: rule.map(|t| RuleText { text: t.into(), comment: None, comment_unique: false }),
        chain: None,
    }
}

fn seen(pe: &mut PacketEvidence, point: &str, us: u64, src: &str, dst: &str, ttl: u8) {
    let point: CapturePoint = point.parse().unwrap();
    pe.seen.insert(point.clone(), info(src, dst, ttl));
    pe.first_seen.insert(point, Duration::from_micros(us));
}

/// Packet 1 of docker-masquerade's c1-to-external under legacy iptables.
fn masquerade_request() -> PacketEvidence {
    let mut pe = PacketEvidence::default();
    let (c1, ext, masq) = ("192.168.0.2", "10.171.77.30", "10.171.77.2");
    seen(&mut pe, "c1/eth0", 10, c1, ext, 64);
    seen(&mut pe, "host/veth0594f4b", 12, c1, ext, 64);
    seen(&mut pe, "host/docker0", 13, c1, ext, 64);
    seen(&mut pe, "host/eth0", 40, masq, ext, 63);
    seen(&mut pe, "ext/eth0", 41, masq, ext, 63);
    let a = &format!("{c1}>{ext}");
    pe.path.insert(
        "host".into(),
        vec![
            ev("host", "eb:nat:PREROUTING", None, "veth0594f4b -", a, None),
            ev("host", "raw:PREROUTING:policy:2", Some("accept"), "docker0 - veth0594f4b", a, None),
            ev("host", "nat:PREROUTING:policy:2", Some("accept"), "docker0 - veth0594f4b", a, None),
            ev("host", "eb:filter:INPUT", None, "veth0594f4b -", a, None),
            ev(
                "host",
                "filter:FORWARD:rule:1",
                Some("jump DOCKER-USER"),
                "docker0 eth0 veth0594f4b",
                a,
                Some("-A FORWARD -j DOCKER-USER"),
            ),
            ev(
                "host",
                "filter:DOCKER-USER:return:1",
                Some("return"),
                "docker0 eth0 veth0594f4b",
                a,
                Some("-A DOCKER-USER -j RETURN"),
            ),
            ev(
                "host",
                "filter:FORWARD:rule:5",
                Some("accept"),
                "docker0 eth0 veth0594f4b",
                a,
                Some("-A FORWARD -i docker0 ! -o docker0 -j ACCEPT"),
            ),
            ev(
                "host",
                "nat:POSTROUTING:rule:1",
                Some("accept"),
                "docker0 eth0 veth0594f4b",
                a,
                Some("-A POSTROUTING -s 192.168.0.0/20 ! -o docker0 -j MASQUERADE"),
            ),
        ],
    );
    pe
}

fn names(j: &Journey) -> Vec<String> {
    j.hops
        .iter()
        .map(|h| match h {
            Hop::Seen(s) => {
                let rw: Vec<String> = s.rewrites.iter().map(ToString::to_string).collect();
                format!(
                    "{} {}{}",
                    s.name(),
                    s.packet,
                    if rw.is_empty() { String::new() } else { format!(" ({})", rw.join(", ")) }
                )
            }
            Hop::Hook(e) => format!("  {}", e.hook),
            Hop::Dropped(d) => drop_line(d),
        })
        .collect()
}

#[test]
fn hooks_take_their_place_between_the_captures_and_the_masquerade_names_its_rule() {
    // br_netfilter runs raw and nat PREROUTING inside the bridge, before docker0 gets the
    // frame; nothing between c1/eth0 and docker0 changed it, so one row holds all three.
    let j = Journey::of(&masquerade_request());
    assert_eq!(
        names(&j),
        [
            "c1/eth0+host/veth0594f4b+docker0 192.168.0.2 > 10.171.77.30 icmp type 8 code 0 id 7 seq 1",
            "  eb:nat:PREROUTING",
            "  raw:PREROUTING:policy:2",
            "  nat:PREROUTING:policy:2",
            "  eb:filter:INPUT",
            "  filter:FORWARD:rule:1",
            "  filter:DOCKER-USER:return:1",
            "  filter:FORWARD:rule:5",
            "  nat:POSTROUTING:rule:1",
            "host/eth0+ext/eth0 10.171.77.2 > 10.171.77.30 icmp type 8 code 0 id 7 seq 1 (SNAT by nat:POSTROUTING:rule:1 MASQUERADE)",
        ]
    );
    let rewrites: Vec<(String, String)> = j.rewrites().map(|(s, r)| (s.name(), r.to_string())).collect();
    assert_eq!(rewrites, [("host/eth0+ext/eth0".to_string(), "SNAT by nat:POSTROUTING:rule:1 MASQUERADE".to_string())]);
}

#[test]
fn a_reply_sent_from_a_netns_starts_with_its_output_hooks_and_bridge_rows_merge() {
    // handmade-docker-no-forward's ns1-to-mydocker reply under nft: node answers the echo.
    let mut pe = PacketEvidence::default();
    let (node, ns1) = ("10.10.14.1", "10.10.14.2");
    seen(&mut pe, "node/mydocker", 100, node, ns1, 64);
    seen(&mut pe, "node/machine1", 101, node, ns1, 64);
    seen(&mut pe, "ns1/eth0", 102, node, ns1, 64);
    let a = &format!("{node}>{ns1}");
    let watcher = Some("ether type ip xt watcher \"nflog\" counter");
    pe.path.insert(
        "node".into(),
        vec![
            ev("node", "raw:OUTPUT:rule:1", Some("continue"), "- mydocker", a, Some("-A OUTPUT -j TRACE")),
            ev("node", "raw:OUTPUT:policy:2", Some("accept"), "- mydocker", a, None),
            ev("node", "eb:filter:OUTPUT", Some("continue"), "- machine1", a, watcher),
            ev("node", "eb:nat:OUTPUT", Some("continue"), "- machine1", a, watcher),
            ev("node", "eb:nat:POSTROUTING", Some("continue"), "- machine1", a, watcher),
        ],
    );
    let j = Journey::of(&pe);
    let echo = "10.10.14.1 > 10.10.14.2 icmp type 8 code 0 id 7 seq 1";
    assert_eq!(
        names(&j),
        [
            "  raw:OUTPUT:rule:1".to_string(),
            "  raw:OUTPUT:policy:2".into(),
            "  eb:filter:OUTPUT".into(),
            "  eb:nat:OUTPUT".into(),
            "  eb:nat:POSTROUTING".into(),
            format!("node/mydocker+machine1+ns1/eth0 {echo}"),
        ]
    );
    let tracing: Vec<bool> = j.hops.iter().map(Hop::is_tracing).collect();
    assert_eq!(tracing, [true, false, true, true, true, false], "TRACE and the nflog watcher decide nothing");
    assert_eq!(j.rewrites().count(), 0);
}

#[test]
fn later_packets_of_a_connection_are_rewritten_by_conntrack_and_form_their_own_class() {
    let first = masquerade_request();
    let mut second = first.clone();
    // Packet 2: the nat table is not consulted again; conntrack masquerades it.
    second.path.get_mut("host").unwrap().retain(|e| e.hook.table() != "nat");
    let j = Journey::of(&second);
    let rw: Vec<String> = j.rewrites().map(|(_, r)| r.to_string()).collect();
    assert_eq!(rw, ["SNAT by conntrack"]);

    let x =
        |packet, request: &PacketEvidence| ExchangeHops { packet, request: Journey::of(request), ..Default::default() };
    let mut third = first.clone();
    // Another connection of the first packet's class: another port, MAC and time.
    for p in third.seen.values_mut() {
        p.l4 = crate::evidence::packet::L4::Icmp { kind: 8, code: 0, id: Some(9), seq: Some(2) };
        p.mac_src = None;
    }
    assert_eq!(classes(&[x(1, &first), x(2, &second), x(3, &third)]), [vec![0, 2], vec![1]]);
}

#[test]
fn the_order_two_readers_stamped_one_packet_in_does_not_make_another_class() {
    // k8s-service's replies: the two ends of a veth, captured by two readers, came either way
    // round from one packet to the next, and printed four paths that were one.
    let first = masquerade_request();
    let mut swapped = first.clone();
    swapped.first_seen.insert("host/eth0".parse().unwrap(), Duration::from_micros(42));
    assert_ne!(Journey::of(&first).shape(), Journey::of(&swapped).shape(), "the fixture swaps no sightings");
    // Another address at one point, or a hook the other did not meet, is another class.
    let mut other = first.clone();
    other.seen.insert("ext/eth0".parse().unwrap(), info("10.171.77.3", "10.171.77.30", 63));
    let mut fewer = first.clone();
    fewer.path.get_mut("host").unwrap().retain(|e| e.hook.to_string() != "filter:FORWARD:rule:5");
    let x =
        |packet, request: &PacketEvidence| ExchangeHops { packet, request: Journey::of(request), ..Default::default() };
    let all = [x(1, &first), x(2, &swapped), x(3, &other), x(4, &fewer)];
    assert_eq!(classes(&all), [vec![0, 1], vec![2], vec![3]]);
}

#[test]
fn of_two_ends_stamped_in_the_same_microsecond_the_sending_end_comes_first() {
    // The README's router: a/eth0, router/to-a, then router/to-b and b/eth0 stamped alike.
    let mut pe = PacketEvidence::default();
    seen(&mut pe, "a/eth0", 10, "10.0.1.2", "10.0.2.2", 64);
    seen(&mut pe, "router/to-a", 11, "10.0.1.2", "10.0.2.2", 64);
    seen(&mut pe, "router/to-b", 30, "10.0.1.2", "10.0.2.2", 63);
    seen(&mut pe, "b/eth0", 30, "10.0.1.2", "10.0.2.2", 63);
    let j = Journey::of(&pe);
    let names: Vec<String> = j.sightings().map(Sighting::name).collect();
    assert_eq!(names, ["a/eth0+router/to-a", "router/to-b+b/eth0"]);
    // Stamped apart, the clock decides, whatever the names.
    seen(&mut pe, "b/eth0", 29, "10.0.1.2", "10.0.2.2", 63);
    let names: Vec<String> = Journey::of(&pe).sightings().map(Sighting::name).collect();
    assert_eq!(names, ["a/eth0+router/to-a", "b/eth0+router/to-b"]);
}

#[test]
fn the_kernel_drop_comes_last_and_says_why_in_words() {
    // handmade-docker-no-forward's ns1-to-gateway under legacy: forwarding is off on node.
    let mut pe = PacketEvidence::default();
    let (ns1, gw) = ("10.10.14.2", "192.168.122.1");
    seen(&mut pe, "ns1/eth0", 10, ns1, gw, 64);
    seen(&mut pe, "node/machine1", 11, ns1, gw, 64);
    seen(&mut pe, "node/mydocker", 12, ns1, gw, 64);
    let a = &format!("{ns1}>{gw}");
    pe.path.insert(
        "node".into(),
        vec![
            ev("node", "eb:nat:PREROUTING", None, "machine1 -", a, None),
            ev("node", "raw:PREROUTING:policy:2", Some("accept"), "mydocker - machine1", a, None),
            ev("node", "nat:PREROUTING:policy:1", Some("accept"), "mydocker - machine1", a, None),
            ev("node", "eb:filter:INPUT", None, "machine1 -", a, None),
        ],
    );
    pe.drops.push(KernelDrop {
        netns: "node".into(),
        reason: Some("IP_INADDRERRORS".into()),
        location: "ip_error+0x5a".into(),
        device: Some("mydocker".into()),
        by: None,
        ktime: Duration::ZERO,
        packet: None,
        bytes: vec![],
    });
    let j = Journey::of(&pe);
    let lines = names(&j);
    assert_eq!(lines.last().unwrap(), "dropped in node at ip_error (IP_INADDRERRORS: forwarding is off on mydocker)");
    assert_eq!(lines[0], "ns1/eth0+node/machine1+mydocker 10.10.14.2 > 192.168.122.1 icmp type 8 code 0 id 7 seq 1");
    assert_eq!(
        lines[1..5],
        ["  eb:nat:PREROUTING", "  raw:PREROUTING:policy:2", "  nat:PREROUTING:policy:1", "  eb:filter:INPUT"]
    );
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(j.drops().count(), 1);

    // A drop by a rule names it; other reasons keep the table's words and the device.
    let mut by_rule = pe.drops[0].clone();
    by_rule.reason = Some("NETFILTER_DROP".into());
    by_rule.location = "nf_hook_slow+0x9c".into();
    by_rule.by = Some("filter:FORWARD:policy:3".parse().unwrap());
    assert_eq!(
        drop_line(&by_rule),
        "dropped in node on mydocker at nf_hook_slow by filter:FORWARD:policy:3 (NETFILTER_DROP: a netfilter rule or chain policy dropped it)"
    );
}

#[test]
fn nat_targets_are_read_from_iptables_and_nft_rules() {
    assert_eq!(
        nat_target("-A POSTROUTING -s 192.168.0.0/20 ! -o docker0 -j MASQUERADE").as_deref(),
        Some("MASQUERADE")
    );
    assert_eq!(
        nat_target("-A KUBE-SEP-X -p tcp -m tcp -j DNAT --to-destination 10.0.2.7:8080").as_deref(),
        Some("DNAT --to-destination 10.0.2.7:8080")
    );
    assert_eq!(nat_target("-A FORWARD -j ACCEPT"), None);
    assert_eq!(nat_target("oifname \"eth0\" masquerade comment \"out\"").as_deref(), Some("masquerade"));
    assert_eq!(nat_target("tcp dport 80 dnat ip to 10.0.2.7:8080").as_deref(), Some("dnat ip to 10.0.2.7:8080"));
    assert_eq!(nat_target("ct state established accept"), None);
}
