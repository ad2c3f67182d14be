//! How long a lab takes: the docker topology of seed 000 (4 netns, a bridge, 3 veth pairs,
//! addresses, routes) built over rtnetlink by netpath's Lab, the same built with one `ip` process
//! per step as a shell script would, and whole scenario runs per backend.
//!
//! `cargo bench -p netpath-cases` (as root). Prints min / median / max of each over ROUNDS runs.
//! Speed is measured here and never asserted in tests.

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use netpath::lab::{Lab, VethEnd};
use netpath::{Backend, RunOptions, Scenario};

const ROUNDS: usize = 15;

fn main() {
    netpath_cases::require_root();
    measure("docker topology, rtnetlink (netpath Lab)", || {
        let mut lab = Lab::new().unwrap();
        build_with_lab(&mut lab);
        lab.teardown().unwrap();
    });
    measure("docker topology, one `ip` process per step", || {
        let run = netpath::netns::new_run_id();
        let names = build_with_ip(&run);
        for n in names {
            ip(&["netns", "del", &n]);
        }
    });
    let sc = netpath_cases::load("docker-masquerade");
    let opts = RunOptions { artifacts_root: std::env::temp_dir().join("netpath-bench"), ..RunOptions::default() };
    for backend in [Backend::Legacy, Backend::Nft] {
        measure(&format!("docker-masquerade run, {} backend", backend.name()), || {
            let o = netpath::run(&sc, backend, &opts).unwrap();
            assert!(o.passed(), "{}", netpath::report::outcome(&o, true));
        });
    }
    let sc: Scenario = netpath_cases::load("k8s-service");
    measure("k8s-service run (280 TCP connections), legacy backend", || {
        let o = netpath::run(&sc, Backend::Legacy, &opts).unwrap();
        assert!(o.passed(), "{}", netpath::report::outcome(&o, true));
    });
}

fn measure(what: &str, mut f: impl FnMut()) {
    f(); // warm-up: modules, page cache, the nft ruleset cache
    let mut took: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    took.sort();
    println!(
        "{what:<58} min {:>9.2?}  median {:>9.2?}  max {:>9.2?}  ({ROUNDS} rounds)",
        took[0],
        took[ROUNDS / 2],
        took[ROUNDS - 1]
    );
}

const NETNS: [&str; 4] = ["host", "c1", "c2", "ext"];
/// A veth pair: end a in the host (maybe a bridge port, maybe addressed), end b addressed.
struct Pair {
    na: &'static str,
    a: &'static str,
    nb: &'static str,
    b: &'static str,
    master: Option<&'static str>,
    addr_b: &'static str,
    addr_a: Option<&'static str>,
}

#[rustfmt::skip]
const VETHS: [Pair; 3] = [
    Pair { na: "host", a: "veth0594f4b", nb: "c1", b: "eth0", master: Some("docker0"), addr_b: "192.168.0.2/20", addr_a: None },
    Pair { na: "host", a: "veth57a3dec", nb: "c2", b: "eth0", master: Some("docker0"), addr_b: "192.168.0.3/20", addr_a: None },
    Pair { na: "host", a: "eth0", nb: "ext", b: "eth0", master: None, addr_b: "10.171.77.30/21", addr_a: Some("10.171.77.2/21") },
];

fn build_with_lab(lab: &mut Lab) {
    for n in NETNS {
        lab.add_netns(n).unwrap();
    }
    lab.add_bridge("host", "docker0", None).unwrap();
    lab.add_address("host", "docker0", "192.168.0.1/20".parse().unwrap()).unwrap();
    for Pair { na, a, nb, b, master, addr_b, addr_a } in VETHS {
        let end = |netns: &str, name: &str| VethEnd { netns: netns.into(), name: name.into(), mac: None };
        lab.add_veth(&end(na, a), &end(nb, b)).unwrap();
        if let Some(m) = master {
            lab.set_master(na, a, m).unwrap();
        }
        if let Some(addr) = addr_a {
            lab.add_address(na, a, addr.parse().unwrap()).unwrap();
        }
        lab.add_address(nb, b, addr_b.parse().unwrap()).unwrap();
        lab.set_up(na, a).unwrap();
        lab.set_up(nb, b).unwrap();
    }
    let gw: IpAddr = "192.168.0.1".parse().unwrap();
    for c in ["c1", "c2"] {
        lab.add_route(c, None, Some(gw), None).unwrap();
    }
}

fn build_with_ip(run: &str) -> Vec<String> {
    let full = |n: &str| format!("{}{run}-{n}", netpath::netns::PREFIX);
    for n in NETNS {
        ip(&["netns", "add", &full(n)]);
        ip(&["-n", &full(n), "link", "set", "lo", "up"]);
    }
    let host = full("host");
    ip(&["-n", &host, "link", "add", "docker0", "type", "bridge"]);
    ip(&["-n", &host, "addr", "add", "192.168.0.1/20", "dev", "docker0"]);
    ip(&["-n", &host, "link", "set", "docker0", "up"]);
    for Pair { na, a, nb, b, master, addr_b, addr_a } in VETHS {
        let (na, nb) = (full(na), full(nb));
        ip(&["-n", &na, "link", "add", a, "type", "veth", "peer", "name", b, "netns", &nb]);
        if let Some(m) = master {
            ip(&["-n", &na, "link", "set", a, "master", m]);
        }
        if let Some(addr) = addr_a {
            ip(&["-n", &na, "addr", "add", addr, "dev", a]);
        }
        ip(&["-n", &nb, "addr", "add", addr_b, "dev", b]);
        ip(&["-n", &na, "link", "set", a, "up"]);
        ip(&["-n", &nb, "link", "set", b, "up"]);
    }
    for c in ["c1", "c2"] {
        ip(&["-n", &full(c), "route", "add", "default", "via", "192.168.0.1"]);
    }
    NETNS.iter().map(|n| full(n)).collect()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}
