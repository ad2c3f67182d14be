//! Scenario types, validation and file diagnostics.

use std::path::{Path, PathBuf};

use super::*;

#[test]
fn hook_patterns() {
    let p: HookPattern = "nat".parse().unwrap();
    assert!(p.matches(&"nat:POSTROUTING:rule:1".parse().unwrap()));
    assert!(!p.matches(&"eb:nat:POSTROUTING".parse().unwrap()));
    let p: HookPattern = "eb:nat".parse().unwrap();
    assert!(p.matches(&"eb:nat:POSTROUTING".parse().unwrap()));
    let p: HookPattern = "*:POSTROUTING".parse().unwrap();
    assert!(p.matches(&"mangle:POSTROUTING:policy:1".parse().unwrap()));
    assert!(!p.matches(&"mangle:FORWARD:policy:1".parse().unwrap()));
    assert!("nat::x".parse::<HookPattern>().is_err());
}

#[test]
fn capture_points_parse() {
    let p: CapturePoint = "host/eth0".parse().unwrap();
    assert_eq!(p.to_string(), "host/eth0");
    assert!("host".parse::<CapturePoint>().is_err());
    assert!("host/eth0/x".parse::<CapturePoint>().is_err());
}

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/scenarios/docker-masquerade.toml")
}

#[test]
fn bundled_file_loads_and_to_toml_round_trips() {
    let sc = Scenario::load(&bundled()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sc.name, "docker-masquerade");
    assert!(!sc.netns.is_empty() && !sc.veth.is_empty() && !sc.probe.is_empty());
    assert!(!sc.probe[0].path.is_empty() && !sc.probe[0].addr.is_empty());
    assert_eq!(sc.validate(), Vec::<String>::new());
    let text = sc.to_toml();
    let again = Scenario::from_toml(&text, Path::new("to_toml.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, sc);
}

/// host -- veth -- c1, built in Rust.
fn small() -> Scenario {
    let end = |netns: &str, name: &str, addr: &str| VethEndSpec {
        netns: netns.into(),
        name: name.into(),
        mac: None,
        addresses: vec![addr.parse().unwrap()],
        master: None,
        hairpin: false,
        mtu: None,
    };
    let ns = |name: &str| NetnsSpec {
        name: name.into(),
        sysctls: BTreeMap::new(),
        iptables: None,
        ip6tables: None,
        ebtables: None,
        nft: None,
        trace: true,
        traced_backend: None,
    };
    Scenario {
        name: "small".into(),
        description: String::new(),
        seed: None,
        backends: vec![Backend::Legacy],
        netns: vec![ns("host"), ns("c1")],
        bridge: vec![],
        veth: vec![VethSpec { a: end("host", "veth0", "10.0.0.1/24"), b: end("c1", "eth0", "10.0.0.2/24") }],
        wireguard: vec![],
        route: vec![],
        server: vec![],
        step: vec![],
        source: Default::default(),
        probe: vec![ProbeSpec::new("ping", ProbeKind::Icmp, "c1", "10.0.0.1".parse().unwrap())],
    }
}

#[test]
fn validate_names_the_item_for_rust_built_scenarios() {
    let mut sc = small();
    assert_eq!(sc.validate(), Vec::<String>::new());
    sc.veth[0].b.netns = "c9".into();
    sc.probe[0].count = 1001;
    sc.probe[0].timeout_ms = 0;
    sc.route.push(RouteSpec {
        netns: "host".into(),
        to: RouteDst::Default,
        via: Some("10.9.0.1".parse().unwrap()),
        dev: None,
    });
    sc.probe[0].addr.push(AddrExpect {
        dst: Some("10.0.0.1".parse().unwrap()),
        ..AddrExpect::new(Direction::Request, "host/eth9".parse().unwrap())
    });
    let errs = sc.validate();
    // c1 lost its only interface to the undeclared c9: that c1 has no address to send from
    // follows from the first problem and is not reported on top of it.
    let want = [
        "veth[0].b.netns: netns `c9` is not declared (have: c1, host)",
        "route[0].via: gateway 10.9.0.1 is outside every connected prefix of netns host (it has 10.0.0.1/24), so the kernel refuses the route",
        "probe[0].count: count 1001 is outside 1 to 1000",
        "probe[0].timeout_ms: timeout_ms 0 is outside 1 to 60000 (one minute)",
        "probe[0].addr[0].at: capture point host/eth9 does not exist: netns host has no interface `eth9` (its interfaces: veth0)",
    ];
    assert_eq!(errs, want, "{errs:#?}");
}

fn diags(text: &str) -> Vec<String> {
    match Scenario::parse(text, Path::new("t.toml")) {
        Ok(_) => vec![],
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

const SMALL: &str = r#"name = "small"

[[netns]]
name = "host"

[[netns]]
name = "c1"

[[veth]]
a = { netns = "host", name = "veth0", addresses = ["10.0.0.1/24"] }
b = { netns = "c1", name = "eth0", addresses = ["10.0.0.2/24"] }

[[probe]]
name = "ping"
from = "c1"
to = "10.0.0.1"
"#;

/// SMALL with both families on its veth, a default route per family in c1 (IPv6's via a
/// link-local gateway) and one to an IPv6 prefix in host; the probe pings host over IPv6.
fn dual() -> String {
    const ROUTES: &str = r#"[[route]]
netns = "c1"
to = "default"
via = "fe80::1"
dev = "eth0"

[[route]]
netns = "c1"
to = "default"
via = "10.0.0.1"

[[route]]
netns = "host"
to = "fd00:1::/64"
via = "fd00::2"

"#;
    SMALL
        .replace(r#"["10.0.0.1/24"]"#, r#"["fd00::1/64", "10.0.0.1/24"]"#)
        .replace(r#"["10.0.0.2/24"]"#, r#"["fd00::2/64", "10.0.0.2/24"]"#)
        .replace("[[probe]]", &format!("{ROUTES}[[probe]]"))
        .replace(r#"to = "10.0.0.1""#, r#"to = "fd00::1""#)
}

#[test]
fn ipv6_routes_are_checked_like_ipv4_ones_and_located() {
    let dual = dual();
    assert_eq!(diags(&dual), Vec::<String>::new(), "one default per family is no duplicate");
    let sc = Scenario::parse(&dual, Path::new("t.toml")).unwrap();
    assert!(sc.route[0].is_ipv6() && !sc.route[1].is_ipv6());
    assert_eq!(sc.route[0].prefix().to_string(), "::/0");
    assert_eq!(sc.next_hop("c1", "eth0", "fd00:9::9".parse().unwrap()).to_string(), "fe80::1");
    assert_eq!(sc.next_hop("c1", "eth0", "10.9.9.9".parse().unwrap()).to_string(), "10.0.0.1");
    let bad = dual.replace("dev = \"eth0\"\n", "").replace("via = \"fd00::2\"", "via = \"fd00:9::2\"").replace(
        "via = \"10.0.0.1\"",
        "via = \"10.0.0.1\"\n\n[[route]]\nnetns = \"c1\"\nto = \"::/0\"\nvia = \"fd00::1\"",
    );
    assert_eq!(
        diags(&bad),
        [
            "t.toml:16:7: route[0].via: gateway fe80::1 is link-local, the same address on every link: give dev, the interface it is reached on (dev = \"eth0\")",
            "t.toml:25:6: route[2].to: netns c1 already has a route to ::/0 (route[0])",
            "t.toml:31:7: route[3].via: gateway fd00:9::2 is outside every connected prefix of netns host (it has fd00::1/64, 10.0.0.1/24), so the kernel refuses the route",
        ]
    );
    let mixed = dual.replace("to = \"fd00:1::/64\"", "to = \"10.1.0.0/16\"");
    assert_eq!(
        diags(&mixed),
        [
            "t.toml:27:7: route[2].via: gateway fd00::2 is not of the family of the route to 10.1.0.0/16: give an IPv4 gateway"
        ]
    );
    let hop = format!("{dual}addr = [{{ at = \"host/veth0\", hoplimit = 64 }}]\n");
    let sc = Scenario::parse(&hop, Path::new("t.toml")).unwrap();
    assert_eq!(sc.probe[0].addr[0].ttl, Some(64), "hoplimit is ttl's other name");
}

/// The protocols of `[[probe.conntrack]]` are the ones probes produce (`ConntrackProto`), icmpv6
/// among them; an ICMP of the other family than the probe's is refused where it is written.
#[test]
fn conntrack_protocols_are_the_probes_own_and_fit_their_family() {
    let entry = |proto: &str| format!("conntrack = [{{ netns = \"host\", proto = \"{proto}\" }}]\n");
    let v6 = format!("{}{}", dual(), entry("icmpv6"));
    assert_eq!(diags(&v6), Vec::<String>::new());
    let sc = Scenario::parse(&v6, Path::new("t.toml")).unwrap();
    assert_eq!(sc.probe[0].conntrack[0].proto, Some(ConntrackProto::Icmpv6));
    assert_eq!(crate::probe::prober(ProbeKind::Icmp).conntrack_proto(true), ConntrackProto::Icmpv6);
    for p in ConntrackProto::ALL {
        assert_eq!(p.name().parse::<ConntrackProto>(), Ok(p));
    }
    let line = |text: &str| text.lines().count();
    let v4 = format!("{}{}", dual(), entry("icmp"));
    assert_eq!(
        diags(&v4),
        [format!(
            "t.toml:{}:40: probe[0].conntrack[0].proto: `icmp` is carried over IPv4 only and this probe sends to fd00::1: over IPv6 it is `icmpv6`",
            line(&v4)
        )]
    );
    let sctp = format!("{SMALL}{}", entry("sctp"));
    assert_eq!(
        diags(&sctp),
        [format!("t.toml:{}:40: probe[0].conntrack[0].proto: `sctp` is not icmp, icmpv6, tcp or udp", line(&sctp))]
    );
    let tcp_over_v6 = format!("{}{}", dual(), entry("tcp"));
    assert_eq!(diags(&tcp_over_v6), Vec::<String>::new(), "tcp and udp are of both families");
}

#[test]
fn semantic_errors_carry_line_and_column() {
    assert_eq!(diags(SMALL), Vec::<String>::new());
    let text = SMALL
        .replace(r#"netns = "c1", name"#, r#"netns = "c9", name"#)
        .replace("from = \"c1\"\n", "from = \"c1\"\ncount = 0\n");
    assert_eq!(
        diags(&text),
        [
            "t.toml:11:15: veth[0].b.netns: netns `c9` is not declared (have: c1, host)",
            "t.toml:16:9: probe[0].count: count 0 is outside 1 to 1000",
        ]
    );
    // An interface in an undeclared netns was meant for another: that this one then lacks
    // an address follows, and is reported once the first problem is fixed.
    let text =
        SMALL.replace(r#"netns = "c1", name = "eth0", addresses = ["10.0.0.2/24"]"#, r#"netns = "c1", name = "eth0""#);
    assert_eq!(
        diags(&text),
        [
            "t.toml:15:8: probe[0].from: netns c1 has no IPv4 address to send to 10.0.0.1 from: give one of its interfaces (eth0) an address"
        ]
    );
    // A value left to its default is pointed at by its table.
    let text = format!("{SMALL}\n[[probe.addr]]\nat = \"c1/eth0\"\n");
    assert_eq!(
        diags(&text),
        [
            "t.toml:18:1: probe[0].addr[0]: asserts nothing: give src, dst, sport, dport, ttl, mac_src, mac_dst or absent"
        ]
    );
}

#[test]
fn every_type_error_is_reported_at_its_value() {
    let text = SMALL
        .replace(r#""10.0.0.2/24""#, r#""10.0.0.2/33""#)
        .replace(r#"to = "10.0.0.1""#, "to = \"10.0.0.1\"\ncolour = 3\ncount = -1")
        .replace(r#"name = "host""#, "name = \"host\"\ntrace = \"yes\"");
    let d = diags(&text);
    assert_eq!(d.len(), 4, "{d:#?}");
    assert!(d[0].starts_with("t.toml:5:9: netns[0].trace: invalid type: string"), "{d:#?}");
    assert!(d[1].starts_with("t.toml:12:49: veth[0].b.addresses[0]: `33` in `10.0.0.2/33`"), "{d:#?}");
    assert!(d[2].starts_with("t.toml:18:1: probe[0]: unknown field `colour`"), "{d:#?}");
    assert!(d[3].starts_with("t.toml:19:9: probe[0].count: invalid value: integer `-1`"), "{d:#?}");
}

#[test]
fn bad_hooks_and_missing_fields_are_located() {
    let text = format!(
        "{SMALL}\n[[probe.path]]\nnetns = \"host\"\nexact = [\n  \"raw:PREROUTING:policy:2\",\n  \"filter:FORWARD:rle:5\",\n]\n\n[[veth]]\na = {{ netns = \"host\", name = \"x\" }}\n"
    );
    let d = diags(&text);
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d[0].starts_with("t.toml:22:3: probe[0].path[0].exact[1]: `filter:FORWARD:rle:5` is not a hook"), "{d:#?}");
    assert_eq!(d[1], "t.toml:25:1: veth[1]: missing field `b`");
    let d = diags("description = \"no name\"\n");
    assert_eq!(d, ["t.toml:1:1: missing field `name`"]);
    let d = diags("name = 3\nbackends = [\"legacy\", \"nftables\"]\n");
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d[0].starts_with("t.toml:1:8: name: invalid type: integer `3`"), "{d:#?}");
    assert!(d[1].starts_with("t.toml:2:23: backends[1]: unknown variant `nftables`"), "{d:#?}");
}

#[test]
fn kernel_variants_are_chosen_by_range_and_bad_ranges_are_located() {
    // host's raw table holds netpath's TRACE rule: rule 1, and the policy after it.
    let small = SMALL.replacen(
        "name = \"host\"\n",
        "name = \"host\"\niptables = \"*raw\\n:PREROUTING ACCEPT [0:0]\\nCOMMIT\\n\"\n",
        1,
    );
    let text = format!(
        "{small}\n[[probe.path]]\nnetns = \"host\"\nkernel = \"<6.1\"\nexact = [\"raw:PREROUTING:rule:1\"]\n\n\
         [[probe.path]]\nnetns = \"host\"\nkernel = \">=6.1\"\nbackend = \"nft\"\nexact = [\"raw:PREROUTING:policy:2\"]\n\n\
         [[probe.addr]]\nat = \"host/veth0\"\nkernel = \">=5.10,<6.12\"\nsrc = \"10.0.0.2\"\n"
    );
    let sc = Scenario::parse(&text, Path::new("t.toml")).unwrap();
    let p = &sc.probe[0];
    let ex = crate::evidence::Exchange {
        packet: 1,
        nonce: vec![],
        request: Default::default(),
        reply: Default::default(),
        retransmissions: vec![],
        reply_retransmissions: vec![],
        replied: true,
        response: crate::evidence::Response::of_kind(crate::scenario::Answer::Reply),
        answer: None,
    };
    let ctx = |backend, release: Option<&str>| crate::verdict::Context {
        backend,
        kernel: release.map(|r| r.parse().unwrap()),
        exchange: &ex,
        exchanges: std::slice::from_ref(&ex),
    };
    let chosen = |backend, release: &str| -> Vec<usize> {
        let c = ctx(backend, Some(release));
        (0..p.path.len()).filter(|&i| p.path[i].applies(&c)).collect()
    };
    assert_eq!(chosen(Backend::Nft, "5.10.0-46-amd64"), [0]);
    assert_eq!(chosen(Backend::Nft, "6.1.0-57-amd64"), [1]);
    assert_eq!(chosen(Backend::Legacy, "6.12.118+deb13-amd64"), Vec::<usize>::new());
    assert!(p.addr[0].applies(&ctx(Backend::Legacy, Some("6.1.0"))));
    assert!(!p.addr[0].applies(&ctx(Backend::Legacy, Some("6.12.1"))));
    // An unknown kernel takes no ranged variant, never a wrong one.
    assert!(!p.path[0].applies(&ctx(Backend::Legacy, None)));

    let d = diags(&text.replace("kernel = \">=6.1\"", "kernel = \"6.1\""));
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(
        d[0].starts_with("t.toml:26:10: probe[0].path[1].kernel: kernel range `6.1`: `6.1` needs a comparison"),
        "{d:#?}"
    );
}

#[test]
fn unknown_keys_name_the_key_and_the_valid_ones() {
    let d = diags(&SMALL.replace("[[probe]]\nname", "[[probe]]\nnmae"));
    assert_eq!(
        d,
        [
            "t.toml:14:1: probe[0]: unknown field `nmae`, expected one of `name`, `kind`, `from`, `to`, `count`, `timeout_ms`, `replies`, `answer`, `port`, `frame`, `answered_by`, `conntrack`, `path`, `addr`, `drop` (did you mean `name`?)"
        ]
    );
}

#[test]
fn syntax_errors_are_located() {
    let d = diags("name = \"x\"\nname = \"y\"\n");
    assert_eq!(d, ["t.toml:2:1: duplicate key `name`"]);
    let d = diags("name = \"x\"\n[[netns]\n");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(d[0].starts_with("t.toml:2:"), "{d:#?}");
}

#[test]
fn from_toml_error_reads_file_line_col() {
    let text = SMALL.replace(r#"netns = "c1", name"#, r#"netns = "c9", name"#);
    let e = Scenario::from_toml(&text, Path::new("dir/t.toml")).unwrap_err();
    assert!(matches!(e, crate::Error::File { .. }), "{e:?}");
    assert_eq!(e.to_string(), "dir/t.toml:11:15: veth[0].b.netns: netns `c9` is not declared (have: c1, host)");
    let text = text.replace("from = \"c1\"\n", "from = \"c1\"\ntimeout_ms = 60001\n");
    let e = Scenario::from_toml(&text, Path::new("dir/t.toml")).unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 2, "{e}");
    assert!(lines[0].starts_with("dir/t.toml:11:15: veth[0].b.netns: "), "{e}");
    assert!(lines[1].starts_with("dir/t.toml:16:14: probe[0].timeout_ms: "), "{e}");
}

const WG: &str = r#"name = "wg"

[[netns]]
name = "p1"

[[netns]]
name = "p2"

[[veth]]
a = { netns = "p1", name = "eth0", addresses = ["172.21.0.5/24"] }
b = { netns = "p2", name = "eth0", addresses = ["172.21.0.6/24"] }

[[wireguard]]
netns = "p1"
iface = "wg0"
addresses = ["10.0.0.1/32"]
listen_port = 51820

[[wireguard.peers]]
peer = "p2/wg0"
endpoint = "172.21.0.6:51820"
allowed_ips = ["10.0.0.2/32"]

[[wireguard]]
netns = "p2"
iface = "wg0"
addresses = ["10.0.0.2/32"]
listen_port = 51820
peers = [{ peer = "p1/wg0", allowed_ips = ["10.0.0.1/32"], persistent_keepalive = 25 }]

[[route]]
netns = "p1"
to = "10.0.0.2/32"
dev = "wg0"

[[probe]]
name = "ping"
from = "p1"
to = "10.0.0.2"

[[probe.addr]]
at = "p2/wg0"
src = "10.0.0.1"
"#;

#[test]
fn wireguard_entries_parse_and_are_interfaces() {
    let sc = Scenario::from_toml(WG, Path::new("wg.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sc.wireguard.len(), 2);
    assert_eq!(sc.wireguard[0].id(), "p1/wg0");
    assert_eq!(sc.wireguard[0].peers[0].endpoint, Some("172.21.0.6:51820".parse().unwrap()));
    assert_eq!(sc.wireguard[1].peers[0].persistent_keepalive, Some(25));
    // Capture points, addresses and owners know them.
    let points: Vec<String> = sc.capture_points().iter().map(ToString::to_string).collect();
    assert_eq!(points, ["p1/eth0", "p1/wg0", "p2/eth0", "p2/wg0"]);
    assert_eq!(sc.interface_addresses("p2", "wg0"), vec!["10.0.0.2/32".parse().unwrap()]);
    assert_eq!(sc.owner_of("10.0.0.2".parse().unwrap()), Some(("p2".into(), "wg0".into())));
    let again = Scenario::from_toml(&sc.to_toml(), Path::new("again.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, sc);
    // A netns whose only address is on its WireGuard interface can send.
    let text = WG.replace(
        r#"a = { netns = "p1", name = "eth0", addresses = ["172.21.0.5/24"] }"#,
        r#"a = { netns = "p1", name = "eth0" }"#,
    );
    assert_eq!(diags(&text), Vec::<String>::new());
}

#[test]
fn wireguard_problems_name_their_item() {
    let text = WG
        .replace(r#"peer = "p2/wg0""#, r#"peer = "p3/wg0""#)
        .replace(r#"allowed_ips = ["10.0.0.2/32"]"#, r#"allowed_ips = ["10.0.0.2/24", "10.0.0.2/32", "10.0.0.2/32"]"#)
        .replace("listen_port = 51820\npeers", "listen_port = 0\npeers")
        .replace(
            r#"iface = "wg0"
addresses = ["10.0.0.2/32"]"#,
            r#"iface = "wireguard-interface"
addresses = ["10.0.0.2/32"]"#,
        )
        .replace("at = \"p2/wg0\"\nsrc = \"10.0.0.1\"", "at = \"p1/wg0\"\nmac_src = \"02:00:00:00:00:01\"");
    assert_eq!(
        diags(&text),
        [
            "t.toml:20:8: wireguard[0].peers[0].peer: `p3/wg0` is no [[wireguard]] entry (have: p2/wireguard-interface)",
            "t.toml:22:16: wireguard[0].peers[0].allowed_ips[0]: `10.0.0.2/24` has host bits set: WireGuard would silently take it as 10.0.0.0/24; write that",
            "t.toml:22:46: wireguard[0].peers[0].allowed_ips[2]: 10.0.0.2/32 is given twice",
            "t.toml:26:9: wireguard[1].iface: interface name `wireguard-interface` must be 1 to 15 bytes without `/`, `:`, spaces or control characters, and not `.` or `..`",
            "t.toml:28:15: wireguard[1].listen_port: port 0 is not a port to listen on: leave listen_port out and WireGuard picks one",
            "t.toml:43:11: probe[0].addr[0].mac_src: p1/wg0 is a WireGuard interface: it carries raw IP packets, without MAC addresses",
        ]
    );
    // Two peers of one interface may not share a prefix; a peer is named netns/iface.
    let text = WG.replacen(
        "allowed_ips = [\"10.0.0.2/32\"]\n",
        "allowed_ips = [\"10.0.0.2/32\"]\n\n[[wireguard.peers]]\npeer = \"p2\"\nallowed_ips = [\"10.0.0.2/32\"]\n",
        1,
    );
    assert_eq!(
        diags(&text),
        [
            "t.toml:25:8: wireguard[0].peers[1].peer: `p2` is no [[wireguard]] entry (a peer is named netns/iface, e.g. peer2/wg0) (have: p2/wg0)",
            "t.toml:26:16: wireguard[0].peers[1].allowed_ips[0]: 10.0.0.2/32 is also allowed for peers[0] (p2/wg0): WireGuard gives a prefix to one peer only, the last one set",
        ]
    );
    // A route through a WireGuard interface that does not exist is caught like any other.
    let text = WG.replace("dev = \"wg0\"", "dev = \"wg1\"");
    assert_eq!(
        diags(&text),
        ["t.toml:34:7: route[0].dev: netns p1 has no interface `wg1` (its interfaces: eth0, wg0)"]
    );
}

#[test]
fn damaged_files_never_panic() {
    let text = std::fs::read_to_string(bundled()).unwrap();
    let cuts = (0..text.len()).filter(|i| text.is_char_boundary(*i)).step_by(3);
    for cut in cuts {
        let _ = Scenario::parse(&text[..cut], Path::new("cut.toml"));
    }
    for (from, to) in [("\"", ""), ("=", ""), ("[", ""), ("]", ""), ("host", ""), ("1", "x"), ("\n", " ")] {
        let _ = Scenario::parse(&text.replacen(from, to, 3), Path::new("edit.toml"));
    }
    // Random edits with TOML's own characters: every Err carries a located problem.
    let alphabet: Vec<char> = "\"'[]{}=,.:#\n 0123456789abcdefghijklmnopqrstuvwxyz/-é".chars().collect();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n.max(1)
    };
    for _ in 0..400 {
        let mut chars: Vec<char> = text.chars().collect();
        for _ in 0..1 + next(4) {
            let at = next(chars.len());
            match next(3) {
                0 => drop(chars.remove(at)),
                1 => chars.insert(at, alphabet[next(alphabet.len())]),
                _ => chars[at] = alphabet[next(alphabet.len())],
            }
        }
        let edited: String = chars.into_iter().collect();
        if let Err(d) = Scenario::parse(&edited, Path::new("fuzz.toml")) {
            assert!(!d.is_empty() && d.iter().all(|d| d.line >= 1 && d.column >= 1), "{edited}");
        }
    }
    assert_eq!(line_col("aé\nb", 2), (1, 2));
    assert_eq!(line_col("a", 99), (1, 2));
}

/// Each failure is located at the entry that states it: the nth `[[probe.path]]` (or inline
/// `addr` entry) of the right probe, `answer` or `replies`, else the probe's own first line.
#[test]
fn failures_are_located_at_their_entries() {
    use crate::verdict::{Failure, FailureKind};
    let text = r#"name = "t"
[[netns]]
name = "a"
[[netns]]
name = "b"
[[veth]]
a = { netns = "a", name = "eth0", addresses = ["10.0.0.1/24"] }
b = { netns = "b", name = "eth0", addresses = ["10.0.0.2/24"] }
[[probe]]
name = "one"
from = "a"
to = "10.0.0.2"
[[probe]]
name = "two"
from = "a"
to = "10.0.0.2"
replies = false
addr = [{ at = "b/eth0", absent = true }, { at = "a/eth0", src = "10.0.0.1" }]
[[probe.path]]
netns = "b"
last = "filter:INPUT:policy:1"
[[probe.path]]
netns = "b"
last = "filter:INPUT:policy:1"
"#;
    let sc = Scenario::parse(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e:?}"));
    let failure = |key, index| Failure::new(FailureKind::PathLast, String::new(), String::new()).by(key, index);
    let mut f = vec![failure("path", Some(1)), failure("addr", Some(1)), failure("replies", None)];
    sc.source.locate(1, "two", &mut f);
    let at: Vec<&str> = f.iter().map(|f| f.location.as_deref().unwrap()).collect();
    assert_eq!(at, ["t.toml:23", "t.toml:18", "t.toml:17"]);
    let mut f = vec![failure("answer", None), failure("path", Some(0))];
    sc.source.locate(0, "one", &mut f);
    let at: Vec<&str> = f.iter().map(|f| f.location.as_deref().unwrap()).collect();
    assert_eq!(at, ["t.toml:10", "probe one, [[probe.path]] number 1 (a scenario built in Rust: no file)"]);
}
