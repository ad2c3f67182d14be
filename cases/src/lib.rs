//! Helpers for the bundled scenarios' tests: loading them, editing them into negative twins,
//! and the checks several of their tests share. Running, skipping and finding failures by kind
//! are netpath's own ([`netpath::testing`], re-exported here), as any downstream crate uses them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use netpath::verdict::expect::{Failure, FailureKind};
use netpath::{Outcome, Scenario};

pub mod docs;
pub mod processes;

pub use docs::doc_text;

pub use netpath::run_or_return;
pub use netpath::testing::{
    assert_passes, check, hook, require_root, run, run_or_skip, strict, want, want_any, without_lines,
};

/// The folder of the bundled scenario files.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// Load a bundled scenario by file stem, failing the test with the loader's message.
pub fn load(stem: &str) -> Scenario {
    Scenario::load(&scenario_path(stem)).unwrap_or_else(|e| panic!("{e}"))
}

/// The bundled scenario file `cases/scenarios/STEM.toml`.
pub fn scenario_path(stem: &str) -> PathBuf {
    scenarios_dir().join(format!("{stem}.toml"))
}

/// The `netpath` command as built from this workspace, for tests of the command line. It is
/// built once per test process with `cargo build -p netpath --bin netpath` into the target
/// folder this test runs from, so it is never stale.
pub fn netpath_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BIN.get_or_init(|| build_bin("netpath")).clone().unwrap_or_else(|e| panic!("{e}"))
}

/// The binary of the workspace package `name` (its one binary has the package's name), built as
/// [`netpath_bin`] builds netpath: `netpath-vm` for the tests of what the docs say of it.
pub fn workspace_bin(name: &str) -> PathBuf {
    build_bin(name).unwrap_or_else(|e| panic!("{e}"))
}

fn build_bin(name: &str) -> Result<PathBuf, String> {
    // This test runs as TARGET/PROFILE/deps/NAME-HASH.
    let exe = std::env::current_exe().map_err(|e| format!("where is this test: {e}"))?;
    let profile_dir = exe.parent().and_then(Path::parent).ok_or("the test is not in a target folder")?;
    let target_dir = profile_dir.parent().ok_or("the test is not in a target folder")?;
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", name, "--bin", name, "--target-dir"])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd.output().map_err(|e| format!("run cargo to build {name}: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build -p {name} failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let bin = profile_dir.join(name);
    if bin.exists() { Ok(bin) } else { Err(format!("cargo built {name}, but {} is not there", bin.display())) }
}

/// Replace the iptables ruleset of `netns`, checking the edit changed something (a twin whose
/// edit missed would pass for the wrong reason).
pub fn edit_iptables(sc: &mut Scenario, netns: &str, edit: impl Fn(&str) -> String) {
    let ns = sc.netns_mut(netns).unwrap_or_else(|| panic!("no netns {netns}"));
    let rules = ns.iptables.take().unwrap_or_else(|| panic!("netns {netns} has no iptables ruleset"));
    let edited = edit(&rules);
    assert_ne!(rules, edited, "the edit changed nothing");
    ns.iptables = Some(edited);
}

/// What docker-masquerade without its MASQUERADE rule must report, whichever trace source saw
/// it: the uplink address names the hop, and the exact path misses the rule.
pub fn assert_masquerade_missing(o: &Outcome) {
    assert!(!o.passed(), "expected a failure without MASQUERADE");
    let failures = &o.probes[0].failures;
    let uplink = want(FailureKind::Header).packet(1).request().at("host/eth0").find(failures);
    assert_eq!(uplink.expected.as_deref(), Some("10.171.77.2 > 10.171.77.30"), "{uplink:#?}");
    assert_eq!(uplink.observed.as_deref(), Some("192.168.0.2 > 10.171.77.30"), "{uplink:#?}");
    let path = want(FailureKind::PathExact).packet(1).request().netns("host").find(failures);
    assert!(path.missing.contains(&hook("nat:POSTROUTING:rule:1")), "{path:#?}");
}

/// What the step `name` wrote to stdout in run `o` (teardown steps included).
pub fn step_stdout<'a>(o: &'a Outcome, name: &str) -> &'a str {
    let steps = &o.setup.steps;
    steps.iter().find(|r| r.name == name).map(|r| r.stdout.as_str()).unwrap_or_else(|| {
        panic!("no step `{name}` ran (ran: {:?})", steps.iter().map(|r| &r.name).collect::<Vec<_>>())
    })
}

/// The step `name` of `sc`, to edit for a twin.
pub fn step_mut<'a>(sc: &'a mut Scenario, name: &str) -> &'a mut netpath::lab::step::StepSpec {
    sc.step.iter_mut().find(|s| s.name == name).unwrap_or_else(|| panic!("no step `{name}`"))
}

/// Drop the step `name` of `sc`, checking it was there.
pub fn without_step(sc: &mut Scenario, name: &str) {
    let before = sc.step.len();
    sc.step.retain(|s| s.name != name);
    assert_eq!(sc.step.len() + 1, before, "no step `{name}` to drop");
}

/// Give the step `name` its stdin file's text, edited, inline (checking the edit changed it).
pub fn edit_step_stdin(sc: &mut Scenario, name: &str, edit: impl Fn(&str) -> String) {
    let step = step_mut(sc, name);
    let text = match (step.stdin.take(), step.stdin_file.take()) {
        (Some(t), _) => t,
        (None, Some(f)) => std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())),
        (None, None) => panic!("step `{name}` has no stdin"),
    };
    let edited = edit(&text);
    assert_ne!(text, edited, "the edit changed nothing");
    step.stdin = Some(edited);
}

/// The 1-based line of the file `path` that is exactly `line` (trimmed), for checks that an
/// error points at it.
pub fn line_of(path: &Path, line: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let found: Vec<usize> = text.lines().enumerate().filter(|(_, l)| l.trim() == line).map(|(i, _)| i + 1).collect();
    assert_eq!(found.len(), 1, "`{line}` is on lines {found:?} of {}", path.display());
    found[0]
}

/// The entries of folder `dir` whose names start with `prefix`.
pub fn entries_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The namespaces of the runs of process `pid` that are still there.
pub fn namespaces_of(pid: u32) -> Vec<String> {
    entries_starting(Path::new("/run/netns"), &format!("netpath-{pid}x"))
}

/// The `{run_dir}` folders of the runs of process `pid` that are still there.
pub fn run_dirs_of(pid: u32) -> Vec<String> {
    entries_starting(&std::env::temp_dir(), &format!("netpath-run-{pid}x"))
}

/// The output of the teardown step `step` has none of `gone` (`true`) or all of them (`false`):
/// what a DEL or teardown step must remove, checked both ways by a test and its twin.
pub fn assert_step_output(o: &Outcome, step: &str, needles: &[&str], absent: bool) {
    let out = step_stdout(o, step);
    for n in needles {
        assert_eq!(
            out.contains(n),
            !absent,
            "`{n}` {} the output of {step}:\n{out}",
            if absent { "is in" } else { "is not in" }
        );
    }
}

/// The probe was not answered by `server`, and its request's path in `netns` misses `hook`.
pub fn assert_unanswered_without(failures: &[Failure], server: &str, netns: &str, hook_text: &str) {
    let answers = want(FailureKind::Answers).answered_by(server).find(failures);
    assert_eq!(answers.observed.as_deref(), Some("0"), "{answers:#?}");
    let path = want(FailureKind::PathIncludes).packet(1).request().netns(netns).find(failures);
    assert_eq!(path.missing, [hook(hook_text)], "{path:#?}");
}

/// Traffic for measuring netpath itself: docker-masquerade's topology and rules with its
/// probes replaced by `icmp` + `udp` probes of 1,000 packets each from c1 to the external host
/// (a UDP server answers on port 9000) and, with `containers` above 2, that many containers on
/// docker0 (each adds a netns and two captured veth ends). Every packet is traced and captured.
pub fn load_scenario(icmp: usize, udp: usize, containers: usize) -> Scenario {
    use netpath::scenario::{NetnsSpec, ProbeKind, ProbeSpec, RouteDst, RouteSpec, ServerSpec, VethEndSpec, VethSpec};
    let mut sc = load("docker-masquerade");
    sc.name = format!("load-{icmp}icmp-{udp}udp-{containers}c");
    sc.probe.clear();
    let ext = "10.171.77.30".parse().expect("an address");
    for i in 0..icmp + udp {
        let kind = if i < icmp { ProbeKind::Icmp } else { ProbeKind::Udp };
        let mut p = ProbeSpec::new(&format!("load-{i}"), kind, "c1", ext);
        p.count = 1000;
        if kind == ProbeKind::Udp {
            p.port = Some(9000);
        }
        sc.probe.push(p);
    }
    if udp > 0 {
        sc.server.push(ServerSpec { netns: "ext".into(), kind: ProbeKind::Udp, port: 9000 });
    }
    for c in 3..=containers {
        let name = format!("c{c}");
        let like_c2 = sc.netns_mut("c2").expect("c2").clone();
        sc.netns.push(NetnsSpec { name: name.clone(), ..like_c2 });
        let end =
            |netns: &str, iface: &str| VethEndSpec { netns: netns.into(), name: iface.into(), ..sc.veth[1].a.clone() };
        let mut b = end(&name, "eth0");
        b.master = None;
        b.mac = None;
        b.addresses = vec![format!("192.168.0.{}/20", c + 1).parse().expect("a prefix")];
        sc.veth.push(VethSpec { a: end("host", &format!("veth{c}")), b });
        sc.route.push(RouteSpec {
            netns: name,
            to: RouteDst::Default,
            via: Some("192.168.0.1".parse().expect("an address")),
            dev: None,
        });
    }
    sc
}

/// IPv4 ids that collide: [`load_scenario`]'s topology with 10 UDP probes of 1,000 datagrams
/// each and no ICMP, every packet traced in the host (its TRACE rules without `-p icmp`). Linux
/// numbers a connected socket's datagrams from a random id and the server's answers from another,
/// so with 20,000 packets some request most likely shares its id (and with it its
/// [`netpath::evidence::key::Key`]) with an answer or with another probe's request
/// ([`key_collisions`] counts them). Every packet's hooks in the host are asserted both ways, so
/// an event given to the wrong packet fails the run: a request meets the bridge's PREROUTING and
/// the FORWARD rule of traffic leaving docker0 (rule 5), never the reply's ctstate rule (rule 3) or
/// the bridge's OUTPUT; a reply the other way round.
pub fn udp_collision_scenario() -> Scenario {
    use netpath::scenario::{Direction, PathExpect};
    let mut sc = load_scenario(0, 10, 2);
    sc.name = "udp-ip-id-collisions".into();
    edit_iptables(&mut sc, "host", |rules| rules.replace(" -p icmp -j TRACE", " -j TRACE"));
    let pattern = |text: &str| text.parse().unwrap_or_else(|e| panic!("{e}"));
    let side = |direction, includes: [&str; 2], never: [&str; 2]| {
        let mut e = PathExpect::new(direction, "host");
        e.includes = Some(includes.iter().map(|h| hook(h).into()).collect());
        e.never = never.iter().map(|h| pattern(h)).collect();
        e
    };
    for p in &mut sc.probe {
        p.path = vec![
            side(
                Direction::Request,
                ["eb:nat:PREROUTING", "filter:FORWARD:rule:5"],
                ["filter:FORWARD:rule:3", "eb:filter:OUTPUT"],
            ),
            side(
                Direction::Reply,
                ["filter:FORWARD:rule:3", "eb:filter:OUTPUT"],
                ["filter:FORWARD:rule:5", "eb:nat:PREROUTING"],
            ),
        ];
    }
    sc
}

/// How many correlation keys ([`netpath::evidence::key::Key`]) of the captured frames name two
/// different probe packets (two nonces, or a request and its reply): the collisions the
/// correlation of header-only trace events must resolve.
pub fn key_collisions(o: &Outcome) -> usize {
    let mut packets: BTreeMap<netpath::evidence::key::Key, BTreeSet<(Vec<u8>, bool)>> = BTreeMap::new();
    for f in &o.frames {
        let (Some(info), Some(nonce)) = (f.info(), netpath::probe::find_nonce(&f.data)) else { continue };
        let Some(key) = netpath::evidence::key::Key::of(&info) else { continue };
        let reply = netpath::probe::answer_from(&f.data, &nonce).is_some();
        packets.entry(key).or_default().insert((nonce, reply));
    }
    packets.values().filter(|p| p.len() > 1).count()
}

/// `sc` with every expectation removed (paths, addresses, conntrack entries, answered_by
/// floors; replies back to the default): what a user writes before `netpath record`.
pub fn without_expectations(sc: &Scenario) -> Scenario {
    let mut bare = sc.clone();
    for p in &mut bare.probe {
        p.path.clear();
        p.addr.clear();
        p.conntrack.clear();
        p.drop.clear();
        p.answered_by.clear();
        p.replies = None;
        p.answer = None;
    }
    bare
}

/// Record `sc` under its backends as `netpath record` does, read back through the file
/// format; with the recorder's warnings.
pub fn record(sc: &Scenario) -> (Scenario, Vec<String>) {
    let outcomes: Vec<Outcome> = sc.backends.iter().map(|b| run(sc, *b)).collect();
    let rec = netpath::output::record::expectations(sc, &outcomes);
    let text = rec.scenario.to_toml();
    let read = Scenario::from_toml(&text, Path::new("recorded.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (read, rec.warnings)
}

/// What a step killed at its deadline says, `timeout_ms` stretched by `NETPATH_SLOWDOWN` where
/// it is set (10 in a TCG guest).
pub fn killed_after(timeout_ms: u64) -> String {
    let slow = netpath::lab::step::slowdown().unwrap_or_else(|e| panic!("{e}"));
    let after = std::time::Duration::from_millis(timeout_ms * u64::from(slow));
    let scaled = if slow > 1 { format!(", ×{slow} by NETPATH_SLOWDOWN") } else { String::new() };
    format!("killed after {after:?} without finishing (timeout_ms = {timeout_ms}{scaled})")
}
