//! Seed 001: WireGuard peer to peer, and peer to the LAN behind another peer. The scenario files
//! hold the expectations; these tests look at what the files cannot say (every byte that crossed
//! the underlay, the implementation used) and prove the expectations fail when the configuration
//! that makes them hold is taken away.

use netpath::Backend;
use netpath::evidence::Frame;
use netpath::evidence::packet::L4;
use netpath::lab::wireguard::Implementation;
use netpath_cases::{load, run};
use rstest::rstest;

/// The link between the two peers, at both ends.
const UNDERLAY: [&str; 2] = ["peer1/eth0", "peer2/wan0"];

fn at<'a>(o: &'a netpath::Outcome, points: &'a [&str]) -> impl Iterator<Item = &'a Frame> + 'a {
    o.frames.iter().filter(move |f| points.contains(&f.point.to_string().as_str()))
}

/// The UDP payload lengths of the IPv4 packets at `points`, all of which must be WireGuard's
/// (UDP from port 51820 to port 51820). The link's own housekeeping is not IPv4 and is skipped:
/// ARP, and IPv6 neighbour discovery (duplicate address detection of the veths' link-local
/// addresses).
fn wireguard_datagrams(o: &netpath::Outcome, points: &[&str]) -> Vec<u16> {
    at(o, points)
        .filter_map(|f| f.info().map(|i| (f, i)))
        .filter(|(_, info)| info.src.is_some_and(|a| a.is_ipv4()))
        .map(|(f, info)| {
            assert!(
                matches!(info.l4, L4::Udp { sport: 51820, dport: 51820 }),
                "only WireGuard's UDP 51820 may cross the underlay; at {} there was {info}",
                f.point
            );
            info.len.expect("an IPv4 length") - 20 - 8
        })
        .collect()
}

fn nonces(o: &netpath::Outcome) -> Vec<Vec<u8>> {
    o.probes.iter().flat_map(|p| p.exchanges.iter().map(|x| x.nonce.clone())).collect()
}

/// peer1 pings peer2 through the tunnel: the probe's nonce, which every echo carries in its
/// payload, is in no byte of any frame on the underlay (in any protocol, not only in frames that
/// parse as the echo), while peer2's wg0 has it in plaintext; the underlay carries WireGuard's
/// UDP 51820 and no other IPv4: a handshake (initiation 148 bytes, response 92) and one
/// transport message per echo, 128 bytes (an 84-byte echo padded to 96, with 16 bytes of header
/// and a 16-byte tag).
#[test]
fn the_underlay_carries_only_wireguard_udp_and_never_the_plaintext() {
    let sc = load("wireguard-peer-to-peer");
    let o = run(&sc, Backend::Legacy);
    assert!(o.passed(), "\n{}", netpath::output::report::outcome(&o, true));

    let imp = o.wireguard.as_ref().expect("the outcome names the WireGuard implementation");
    match netpath::caps::probe(netpath::caps::Feature::WireGuard).available {
        true => assert!(matches!(imp, Implementation::Kernel { .. }), "{imp}"),
        false => assert!(imp.to_string().starts_with("userspace (wireguard-go "), "{imp}"),
    }
    eprintln!("wireguard: {imp}");

    let nonces = nonces(&o);
    assert_eq!(nonces.len(), 3);
    for f in at(&o, &UNDERLAY) {
        for n in &nonces {
            assert!(!f.carries(n), "the nonce {} crossed {} in the clear", String::from_utf8_lossy(n), f.point);
        }
    }
    for n in &nonces {
        // The request and its reply, in plaintext, on each end of the tunnel.
        for point in ["peer1/wg0", "peer2/wg0"] {
            let here = at(&o, &[point]).filter(|f| f.carries(n)).count();
            assert_eq!(here, 2, "{} at {point}", String::from_utf8_lossy(n));
        }
    }

    let sizes = wireguard_datagrams(&o, &["peer1/eth0"]);
    eprintln!("UDP payloads on peer1/eth0: {sizes:?}");
    assert!(sizes.contains(&148), "no handshake initiation: {sizes:?}");
    assert!(sizes.contains(&92), "no handshake response: {sizes:?}");
    assert_eq!(sizes.iter().filter(|s| **s == 128).count(), 6, "one transport message per echo and reply: {sizes:?}");
    // Both ends saw the same datagrams.
    assert_eq!(wireguard_datagrams(&o, &["peer2/wan0"]).len(), sizes.len());
}

/// Without 10.0.0.2/32 in peer1's AllowedIPs for peer2, the route still hands the echo to wg0,
/// but WireGuard has no peer to send it to: nothing enters the tunnel, nothing crosses the
/// underlay, peer2's wg0 sees nothing and no reply comes back.
#[test]
fn without_the_allowed_ip_nothing_enters_the_tunnel() {
    let mut sc = load("wireguard-peer-to-peer");
    let peer = &mut sc.wireguard.iter_mut().find(|w| w.id() == "peer1/wg0").unwrap().peers[0];
    assert_eq!(peer.allowed_ips, vec!["10.0.0.2/32".parse().unwrap()]);
    peer.allowed_ips.clear();
    let o = run(&sc, Backend::Legacy);
    let f = &o.probes[0].failures;
    let whats: Vec<&str> = f.iter().map(|f| f.what.as_str()).collect();
    for want in [
        "packet 1: a reply",
        "addresses of packet 1 request at peer2/wg0",
        "addresses of packet 1 reply at peer2/wg0",
        "addresses of packet 1 reply at peer1/wg0",
    ] {
        assert!(whats.contains(&want), "{want}: {f:#?}");
    }
    let wg = f.iter().find(|f| f.what == "addresses of packet 1 request at peer2/wg0").unwrap();
    assert!(wg.detail.ends_with("observed not seen"), "{}", wg.detail);
    // It did reach peer1's wg0: the route is there, the peer is not.
    assert!(!whats.contains(&"addresses of packet 1 request at peer1/wg0"), "{f:#?}");
    assert_eq!(wireguard_datagrams(&o, &UNDERLAY), Vec::<u16>::new(), "no handshake, no data");
}

/// With forwarding on (and FORWARD accepting by policy), the requests the no-forwarding scenario
/// expects to die in peer2 reach the LAN, still from 10.0.0.1 (no MASQUERADE): the LAN host has
/// no route back, so no reply comes either way, but the expectations that say "never past peer2"
/// must fail.
#[rstest]
fn with_forwarding_the_requests_reach_the_lan(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("wireguard-peer-to-lan-no-forwarding");
    let peer2 = sc.netns_mut("peer2").unwrap();
    peer2.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
    let o = run(&sc, backend);
    let f = &o.probes[0].failures;
    let lan =
        f.iter().find(|f| f.what == "addresses of packet 1 request at lan/eth0").unwrap_or_else(|| panic!("{f:#?}"));
    assert!(lan.detail.contains("10.0.0.1 > 192.168.1.123"), "{}", lan.detail);
    assert!(f.iter().any(|f| f.what == "addresses of packet 1 request at peer2/eth0"), "{f:#?}");
    let path = f
        .iter()
        .find(|f| f.what.starts_with("path of packet 1 request in netns peer2 (never filter)"))
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert!(path.detail.contains("filter:FORWARD:policy:1"), "{}", path.detail);
    assert!(!f.iter().any(|f| f.what.contains("no reply")), "still no reply: {f:#?}");
}

/// Without the MASQUERADE rule the LAN host sees the tunnel address 10.0.0.1, which it has no
/// route back to: neither the ping nor the TCP request is answered.
#[rstest]
fn without_masquerade_the_lan_host_sees_the_tunnel_address(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("wireguard-peer-to-lan");
    let peer2 = sc.netns_mut("peer2").unwrap();
    let rules = peer2.iptables.take().unwrap();
    let without: String = rules.lines().filter(|l| !l.contains("-j MASQUERADE")).map(|l| format!("{l}\n")).collect();
    assert_ne!(rules, without, "the MASQUERADE rule was not found to remove");
    peer2.iptables = Some(without);
    let o = run(&sc, backend);

    let ping = &o.probes[0].failures;
    let lan = ping
        .iter()
        .find(|f| f.what == "addresses of packet 1 request at lan/eth0")
        .unwrap_or_else(|| panic!("{ping:#?}"));
    assert!(
        lan.detail.contains("expected 192.168.1.10 > 192.168.1.123, observed 10.0.0.1 > 192.168.1.123"),
        "{}",
        lan.detail
    );
    assert!(ping.iter().any(|f| f.what == "packet 1: a reply"), "{ping:#?}");
    assert!(ping.iter().any(|f| f.what == "conntrack entry in netns peer2"), "{ping:#?}");
    assert!(
        ping.iter().any(|f| f.what.starts_with("path of packet 1 request in netns peer2")
            && f.detail.contains("nat:POSTROUTING:rule:1")),
        "{ping:#?}"
    );

    let tcp = &o.probes[1].failures;
    let whats: Vec<&str> = tcp.iter().map(|f| f.what.as_str()).collect();
    assert!(whats.contains(&"answers from lan"), "{whats:#?}");
    assert!(whats.contains(&"addresses of packet 1 request at lan/eth0"), "{whats:#?}");
}

/// Without 192.168.1.0/24 in peer1's AllowedIPs for peer2 (the article's first attempt, before
/// it extended them), the route hands the LAN's packets to wg0 but WireGuard sends them to no
/// peer: nothing enters the tunnel, so no datagram at all crosses the underlay.
#[test]
fn without_the_lan_in_allowed_ips_nothing_enters_the_tunnel() {
    let mut sc = load("wireguard-peer-to-lan");
    let peer = &mut sc.wireguard.iter_mut().find(|w| w.id() == "peer1/wg0").unwrap().peers[0];
    let before = peer.allowed_ips.len();
    peer.allowed_ips.retain(|c| c.to_string() != "192.168.1.0/24");
    assert_eq!(peer.allowed_ips.len(), before - 1);
    let o = run(&sc, Backend::Legacy);
    for p in &o.probes {
        let whats: Vec<&str> = p.failures.iter().map(|f| f.what.as_str()).collect();
        assert!(whats.contains(&"addresses of packet 1 request at peer2/wg0"), "{}: {whats:#?}", p.name);
        assert!(whats.contains(&"addresses of packet 1 request at lan/eth0"), "{}: {whats:#?}", p.name);
    }
    assert!(o.probes[1].failures.iter().any(|f| f.what == "answers from lan"));
    assert_eq!(wireguard_datagrams(&o, &UNDERLAY), Vec::<u16>::new(), "no handshake, no data");
    for n in nonces(&o) {
        assert_eq!(at(&o, &["peer2/wg0", "peer2/eth0", "lan/eth0"]).filter(|f| f.carries(&n)).count(), 0);
    }
}
