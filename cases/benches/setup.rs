//! How long a lab takes: the docker topology of seed 000 (4 netns, a bridge, 3 veth pairs,
//! addresses, routes) built over rtnetlink by netpath's Lab, the same built with one `ip` process
//! per step as a shell script would, and whole scenario runs per backend.
//!
//! `cargo bench -p netpath-cases` (as root). Prints min / median / max of each over ROUNDS runs,
//! each netpath figure beside its baseline measured in the same run, and the ratio of medians;
//! then the peak resident memory of one run in a child process. Speed is measured here and never
//! asserted in tests.
//!
//! Baselines: one `ip` process per step for the topology, and `seed000-experiment.sh` (beside
//! this file; needs tcpdump) for a whole run: seed 000's container -> external experiment done
//! by hand in shell as careful selftests do it (topology, rules, a tcpdump per interface and on
//! nflog, two pings, teardown), with no verdicts at all.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use netpath::lab::{Lab, VethEnd};
use netpath::{Backend, RunOptions, Scenario};

const ROUNDS: usize = 15;

fn main() {
    netpath_cases::require_root();
    let opts = RunOptions { artifacts_root: std::env::temp_dir().join("netpath-bench"), ..RunOptions::default() };
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--one-run") {
        // A child of `peak_rss`: one run and nothing else, so its peak is the run's.
        let sc = scenario(&args[i + 1]);
        let o = netpath::run(&sc, Backend::Legacy, &opts).unwrap();
        assert!(o.passed(), "{}", netpath::output::report::outcome(&o, false));
        // The high-water mark of this process's own memory since its exec (the parent's wait4
        // rusage would report the parent's: a spawned child inherits its maxrss).
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/self/status");
        println!("{hwm}");
        return;
    }
    let lab = measure("docker topology build + teardown, rtnetlink (netpath Lab)", || {
        let mut lab = Lab::new().unwrap();
        build_with_lab(&mut lab);
        lab.teardown().unwrap();
    });
    let ip = measure("docker topology build + teardown, one `ip` process per step", || {
        let run = netpath::lab::netns::new_run_id();
        let names = build_with_ip(&run);
        for n in names {
            ip(&["netns", "del", &n]);
        }
    });
    ratio("netpath Lab", lab, "`ip` per step", ip);
    let sc = netpath_cases::load("docker-masquerade");
    let mut runs = vec![];
    for backend in [Backend::Legacy, Backend::Nft] {
        runs.push(measure(&format!("docker-masquerade run, {} backend, all asserted", backend.name()), || {
            let o = netpath::run(&sc, backend, &opts).unwrap();
            assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
        }));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/seed000-experiment.sh");
    let shell = measure("the same experiment by hand in shell, no verdicts", || {
        let out = Command::new("bash").arg(&script).output().unwrap();
        assert!(out.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    });
    ratio("docker-masquerade run (legacy)", runs[0], "shell experiment", shell);
    let sc: Scenario = netpath_cases::load("k8s-service");
    measure("k8s-service run (280 TCP connections), legacy backend", || {
        let o = netpath::run(&sc, Backend::Legacy, &opts).unwrap();
        assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    });
    for backend in [Backend::Legacy, Backend::Nft] {
        let sc = netpath_cases::load_scenario(5, 5, 2);
        // A loss is what this measures, not a reason to stop: count the runs that had one.
        let mut incomplete = vec![];
        let took = measure(&format!("10,000 traced packets (5,000 ICMP + 5,000 UDP), {}", backend.name()), || {
            match netpath::run(&sc, backend, &opts) {
                Ok(o) => assert!(o.passed(), "{}", netpath::output::report::outcome(&o, false)),
                Err(netpath::Error::EvidenceIncomplete { losses, .. }) => incomplete.push(losses.join("; ")),
                Err(e) => panic!("{e}"),
            }
        });
        println!(
            "{:<58} {:>9.0} packets/s; runs with evidence incomplete: {} of {}{}",
            "",
            10_000.0 / took.as_secs_f64(),
            incomplete.len(),
            ROUNDS + 1,
            incomplete.first().map(|l| format!(" (first: {l})")).unwrap_or_default()
        );
    }
    for which in ["docker-masquerade", "20-interfaces"] {
        println!("{:<58} {:>6.1} MiB", format!("peak RSS of one run: {which} (legacy)"), peak_rss(which));
    }
}

/// The scenario a `--one-run` child runs.
fn scenario(which: &str) -> Scenario {
    match which {
        // 9 containers: 9 veth pairs captured at both ends, docker0, the uplink and ext: 21.
        "20-interfaces" => {
            let mut sc = netpath_cases::load_scenario(1, 0, 9);
            sc.probe[0].count = 2;
            sc
        }
        stem => netpath_cases::load(stem),
    }
}

/// The peak resident set of a child process that does one run of `which`, in MiB.
fn peak_rss(which: &str) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe).args(["--one-run", which]).output().unwrap();
    assert!(out.status.success(), "the {which} run failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM line in {text}"));
    kib / 1024.0
}

fn ratio(what: &str, took: Duration, baseline: &str, base: Duration) {
    println!(
        "{:<58} {:>6.1}x faster than {baseline} (medians)",
        format!("  {what}"),
        base.as_secs_f64() / took.as_secs_f64()
    );
}

/// Time `f` over ROUNDS runs after a warm-up; prints and returns the median.
fn measure(what: &str, mut f: impl FnMut()) -> Duration {
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
    took[ROUNDS / 2]
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
    let full = |n: &str| format!("{}{run}-{n}", netpath::lab::netns::PREFIX);
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
