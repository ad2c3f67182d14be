//! The kernel's refusal of a scenario item explains itself (issue 25), as a sysctl's does: the
//! error names the FILE:LINE:COL of the item (a veth end, a route), the netns as the scenario
//! names it (not netpath's `netpath-PIDxHEX-a`), what was asked and why the kernel said no.
//! Load-time checks already catch what the file shows (a misspelt netns or interface, a gateway
//! off every connected prefix); these are what only the kernel knows: a link whose MTU is
//! below IPv6's minimum has IPv6 turned off, so an IPv6 address or route on it is refused.

use std::path::PathBuf;

use netpath::{Backend, RunOptions, Scenario};
use netpath_cases::require_root;

/// a -- b on one veth; `MTU` is a's end's mtu, `EXTRA` more of a's end, `ROUTES` more tables.
const SCENARIO: &str = r#"name = "lab-items"

[[netns]]
name = "a"

[[netns]]
name = "b"

[[veth]]
a = { netns = "a", name = "eth0", mtu = MTU, addresses = ["10.0.1.1/24"EXTRA] }
b = { netns = "b", name = "eth0", addresses = ["10.0.1.2/24"] }
ROUTES
[[probe]]
name = "ping-b"
from = "a"
to = "10.0.1.2"
"#;

fn text(mtu: u32, extra: &str, routes: &str) -> String {
    SCENARIO.replace("MTU", &mtu.to_string()).replace("EXTRA", extra).replace("ROUTES", routes)
}

fn scenario_file(test: &str, text: &str) -> (PathBuf, Scenario) {
    let dir = std::env::temp_dir().join(format!("netpath-lab-items-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{test}.toml"));
    std::fs::write(&path, text).unwrap();
    let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    (path, sc)
}

/// The 1-based line of `text` that starts with `start`.
fn line_starting(text: &str, start: &str) -> usize {
    text.lines().position(|l| l.starts_with(start)).map(|i| i + 1).expect(start)
}

fn run_err(sc: &Scenario) -> String {
    netpath::run(sc, Backend::Legacy, &RunOptions::default()).expect_err("the kernel refuses it").to_string()
}

const V6_ADDRESS: &str = r#", "fd00:1::1/64""#;

/// An IPv6 address on a link of mtu 1000: refused at the veth end's line, in netns a, saying
/// the MTU is why. Twin: at mtu 1280 the same address is taken and the run goes on.
#[test]
fn an_ipv6_address_below_the_ipv6_mtu_names_its_line_and_why() {
    require_root();
    let bad = text(1000, V6_ADDRESS, "");
    let (path, sc) = scenario_file("v6-address-mtu", &bad);
    let e = run_err(&sc);
    eprintln!("{e}");
    let line = line_starting(&bad, "a = { netns = \"a\"");
    assert!(e.starts_with(&format!("{}:{line}:", path.display())), "{e}");
    assert!(e.contains(": netns a: add address fd00:1::1/64 to eth0: "), "{e}");
    assert!(
        e.ends_with("IPv6 needs an MTU of at least 1280 and eth0 has mtu = 1000, so the kernel turned IPv6 off on it: raise its mtu to 1280 or more"),
        "{e}"
    );
    assert!(!e.contains(&format!("netpath-{}x", std::process::id())), "{e}");

    let (_, good) = scenario_file("v6-address-mtu-ok", &text(1280, V6_ADDRESS, ""));
    let o = netpath::run(&good, Backend::Legacy, &RunOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
}

const V6_ROUTE: &str = r#"
[[route]]
netns = "a"
to = "fd00:9::/64"
dev = "eth0"
"#;

/// An IPv6 route through a link of mtu 1000: refused at the route's line, in netns a, with the
/// MTU as the reason. Twin: at mtu 1500 the route is taken.
#[test]
fn an_ipv6_route_through_a_link_below_the_ipv6_mtu_names_its_line_and_why() {
    require_root();
    let bad = text(1000, "", V6_ROUTE);
    let (path, sc) = scenario_file("v6-route-mtu", &bad);
    let e = run_err(&sc);
    eprintln!("{e}");
    let line = line_starting(&bad, "[[route]]");
    assert!(e.starts_with(&format!("{}:{line}:", path.display())), "{e}");
    assert!(e.contains(": netns a: add route fd00:9::/64 dev eth0: "), "{e}");
    assert!(e.contains("eth0 has mtu = 1000, so the kernel turned IPv6 off on it"), "{e}");

    let (_, good) = scenario_file("v6-route-mtu-ok", &text(1500, "", V6_ROUTE));
    let o = netpath::run(&good, Backend::Legacy, &RunOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
}

/// What needs no kernel: a misspelt peer netns, a misspelt route device and a gateway off every
/// prefix are refused when the file loads, at their line, before any lab is built.
#[test]
fn what_the_file_shows_is_caught_at_load() {
    let load = |t: &str| Scenario::from_toml(t, std::path::Path::new("items.toml")).unwrap_err().to_string();
    let peer = text(1500, "", "").replace(r#"b = { netns = "b""#, r#"b = { netns = "bb""#);
    assert!(load(&peer).contains("items.toml:11:"), "{}", load(&peer));
    let dev = text(1500, "", &V6_ROUTE.replace("\"eth0\"", "\"eht0\""));
    assert!(load(&dev).contains("eht0"), "{}", load(&dev));
    let gw = text(1500, "", "\n[[route]]\nnetns = \"a\"\nto = \"default\"\nvia = \"10.9.9.9\"\n");
    assert!(load(&gw).contains("gateway 10.9.9.9 is outside every connected prefix"), "{}", load(&gw));
}
