//! The kernel's drops (`[[probe.drop]]`, the eBPF drop source on skb:kfree_skb): the docs'
//! example passes and names each drop; its twins (forwarding on, a port that listens) fail
//! naming what the kernel did instead; a misspelt reason is a load error; two runs at once each
//! see only their own drops.

use std::path::Path;

use netpath::verdict::expect::FailureKind::*;
use netpath::{Backend, Outcome, Scenario};
use netpath_cases::want;

fn report(o: &Outcome) -> String {
    netpath::output::report::outcome(o, true)
}

/// The chapter that documents kernel drops.
const CHAPTER: &str = "docs/expectations.md";

/// The text of the docs' example named `kernel drops`.
fn example_text() -> String {
    netpath_cases::docs::example(CHAPTER, "# example: kernel drops\n").text
}

/// The docs' example named `kernel drops`, loaded.
fn example() -> Scenario {
    Scenario::from_toml(&example_text(), Path::new(CHAPTER)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_doc_example_of_kernel_drops_passes_and_names_each_drop() {
    let sc = example();
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(o.passed(), "{}", report(&o));
    let d = &o.probes[0].exchanges[0].request.drops[0];
    assert_eq!((d.netns.as_str(), d.reason.as_deref(), d.function()), ("router", Some("IP_INADDRERRORS"), "ip_error"));
    assert_eq!(d.device.as_deref(), Some("to-a"));
    let d = &o.probes[1].exchanges[0].request.drops[0];
    assert_eq!((d.netns.as_str(), d.reason.as_deref()), ("router", Some("NO_SOCKET")));
}

/// Twin: forwarding on, the echo goes through (and comes back): the kernel dropped nothing.
/// Twin: a server on the port, the datagram is answered: no NO_SOCKET drop.
#[test]
fn the_kernel_drops_twins_say_nothing_was_dropped() {
    let mut sc = example();
    sc.netns_mut("router").unwrap().sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
    sc.server.push(netpath::scenario::ServerSpec {
        netns: "router".into(),
        kind: netpath::scenario::ProbeKind::Udp,
        port: 9,
    });
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    want(NotDropped)
        .packet(1)
        .request()
        .netns("router")
        .expected("IP_INADDRERRORS in router at ip_error")
        .find(&o.probes[0].failures);
    want(NotDropped).packet(1).request().netns("router").expected("NO_SOCKET in router").find(&o.probes[1].failures);
}

#[test]
fn a_misspelt_drop_reason_is_a_load_error_at_its_line() {
    let load_error = |sc: &str| Scenario::from_toml(sc, Path::new("t.toml")).map(|_| ()).unwrap_err().to_string();
    let text = example_text();
    let e = load_error(&text.replace("\"IP_INADDRERRORS\"", "\"IP_INADDRERROR\""));
    assert!(e.contains("t.toml:"), "{e}");
    assert!(e.contains("`IP_INADDRERROR` is not a kernel drop reason: did you mean IP_INADDRERRORS"), "{e}");
}

/// Two runs of the same scenario at once: each sees exactly its own drops (one per probe
/// packet), none of the other's, though both drop the same kind of packet at the same function.
#[test]
fn two_runs_at_once_each_see_only_their_own_drops() {
    let sc = example();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| netpath::testing::run_or_skip(&sc, Backend::Legacy));
        let b = s.spawn(|| netpath::testing::run_or_skip(&sc, Backend::Nft));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (Some(a), Some(b)) = (a, b) else { return };
    for o in [&a, &b] {
        assert!(o.passed(), "{}", report(o));
        for p in &o.probes {
            let n: usize = p.exchanges.iter().map(|x| x.request.drops.len() + x.reply.drops.len()).sum();
            assert_eq!(n, p.exchanges.len(), "probe {}: one drop per packet, its own: {:#?}", p.name, p.exchanges);
        }
    }
}
