//! The `netpath` command line, run as a program on real namespaces (needs root): `run` over the
//! bundled scenarios in parallel with a JUnit report, a wrong expectation, a malformed file, a
//! skip for a feature the kernel lacks (and `--strict`), `caps`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use netpath::caps::{self, Feature};
use netpath::output::junit::{self, Element};
use netpath::{Backend, Scenario};

/// A scratch folder for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("netpath-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `netpath ARGS` with artifacts going to `scratch`, strict mode as given.
fn netpath(scratch: &Scratch, args: &[&str], strict: Option<&str>) -> Output {
    let mut cmd = Command::new(netpath_cases::netpath_bin());
    cmd.args(args).env("NETPATH_ARTIFACTS", scratch.0.join("artifacts"));
    match strict {
        Some(v) => cmd.env("NETPATH_STRICT", v),
        None => cmd.env_remove("NETPATH_STRICT"),
    };
    cmd.output().unwrap_or_else(|e| panic!("run netpath {args:?}: {e}"))
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The last line of stdout: the summary.
fn summary(stdout: &str) -> &str {
    stdout.lines().last().unwrap_or_default()
}

fn junit_report(path: &Path) -> Element {
    let xml = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    junit::read(&xml).unwrap_or_else(|e| panic!("{} is not well-formed: {e}\n{xml}", path.display()))
}

/// `(suite name, testcase name, what it holds)` for every testcase: `passed`, or the name of
/// its child element (`failure`, `error`, `skipped`).
fn testcases(root: &Element) -> Vec<(String, String, String)> {
    assert_eq!(root.name, "testsuites");
    root.all("testsuite")
        .flat_map(|s| {
            s.all("testcase").map(move |c| {
                let status = c.children.first().map_or("passed".to_string(), |e| e.name.clone());
                (s.attr("name").unwrap_or_default().to_string(), c.attr("name").unwrap_or_default().to_string(), status)
            })
        })
        .collect()
}

/// Two netns on a veth; the probe's address expectation at b/eth0 is `src`.
fn two_netns(name: &str, src: &str) -> String {
    format!(
        r#"name = "{name}"
backends = ["legacy"]

[[netns]]
name = "a"
trace = false

[[netns]]
name = "b"
trace = false

[[veth]]
a = {{ netns = "a", name = "eth0", addresses = ["10.99.0.1/24"] }}
b = {{ netns = "b", name = "eth0", addresses = ["10.99.0.2/24"] }}

[[probe]]
name = "a-to-b"
from = "a"
to = "10.99.0.2"

[[probe.addr]]
at = "b/eth0"
src = "{src}"
dst = "10.99.0.2"
"#
    )
}

#[test]
fn run_bundled_scenarios_in_parallel_with_a_junit_report() {
    netpath_cases::require_root();
    let scratch = Scratch::new("bundled");
    let report = scratch.0.join("report.xml");
    let out = netpath(&scratch, &["run", "--jobs", "2", "--show-path", "--junit", report.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "exit {}\n{stdout}{stderr}", out.status);
    // One path per class of packets, not one per packet: k8s-service's 200 connections to the
    // ClusterIP are a few classes, counted by the endpoint that answered them (one per packet
    // would be over 20,000 lines; the bundled set, IPv6 scenarios included, prints ~1,940 for
    // 164 probe runs).
    let lines = stdout.lines().count();
    let probes = stdout.lines().filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(", ok")).count();
    assert!(lines <= show_path_budget(probes), "--show-path printed {lines} lines for {probes} probe runs");
    assert!(stdout.contains("\n  cluster-ip: 200 packets, "), "{stdout}");
    assert!(stdout.contains("\n  c1-to-c2: 3 packets, 2 paths, ok\n"), "{stdout}");
    assert!(stdout.contains("\n    path 2 (packets 2-3):\n"), "{stdout}");

    // Every scenario × backend of the bundled files, in file order, each report whole.
    let mut files: Vec<PathBuf> = std::fs::read_dir(netpath_cases::scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let scenarios: Vec<Scenario> = files.iter().map(|f| Scenario::load(f).unwrap_or_else(|e| panic!("{e}"))).collect();
    let runs: Vec<(&Scenario, Backend)> =
        scenarios.iter().flat_map(|sc| sc.backends.iter().map(move |b| (sc, *b))).collect();
    let verdicts: Vec<&str> = stdout.lines().filter(|l| l.starts_with("PASS ") || l.starts_with("SKIP ")).collect();
    let heads: Vec<String> = verdicts.iter().map(|l| l.split(':').next().unwrap()[5..].to_string()).collect();
    let want: Vec<String> = runs.iter().map(|(sc, b)| format!("{} [{}]", sc.name, b.name())).collect();
    assert_eq!(heads, want, "\n{stdout}");
    let skipped = verdicts.iter().filter(|l| l.starts_with("SKIP ")).count();
    assert_eq!(
        summary(&stdout),
        format!("{} passed, 0 failed, {skipped} skipped, 0 not applicable", runs.len() - skipped)
    );
    assert!(!stdout.contains("running "), "progress lines are for terminals only:\n{stdout}");

    let root = junit_report(&report);
    assert_eq!(root.attr("failures"), Some("0"));
    assert_eq!(root.attr("errors"), Some("0"));
    let suites: Vec<&str> = root.all("testsuite").map(|s| s.attr("name").unwrap()).collect();
    assert_eq!(suites, scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>());
    let mut want = vec![];
    for (sc, backend) in &runs {
        let skip = verdicts.iter().any(|l| l.starts_with(&format!("SKIP {} [{}]:", sc.name, backend.name())));
        let status = if skip { "skipped" } else { "passed" };
        let mut probes: Vec<&str> = sc.probe.iter().map(|p| p.name.as_str()).collect();
        if probes.is_empty() {
            probes.push("(no probes)");
        }
        for p in probes {
            want.push((sc.name.clone(), format!("{p} [{}]", backend.name()), status.to_string()));
        }
    }
    assert_eq!(testcases(&root), want);
    for s in root.all("testsuite") {
        assert!(s.attr("file").is_some_and(|f| f.ends_with(".toml")), "{s:?}");
        assert!(s.attr("time").is_some_and(|t| t.parse::<f64>().is_ok()), "{s:?}");
    }
}

#[test]
fn run_with_a_wrong_expectation_fails_and_reports_it() {
    netpath_cases::require_root();
    let scratch = Scratch::new("wrong");
    let file = scratch.file("wrong.toml", &two_netns("wrong-source", "10.99.0.9"));
    let report = scratch.0.join("report.xml");
    let out = netpath(&scratch, &["run", file.to_str().unwrap(), "--junit", report.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "\n{stdout}{stderr}");
    assert!(stdout.starts_with("FAIL wrong-source [legacy]\n"), "{stdout}");
    assert!(stdout.contains("\n  a-to-b: 1 packet, 1 path, FAILED\n"), "{stdout}");
    assert!(stdout.contains("b/eth0"), "the failure names the hop:\n{stdout}");
    assert_eq!(summary(&stdout), "0 passed, 1 failed, 0 skipped, 0 not applicable");

    let root = junit_report(&report);
    assert_eq!(testcases(&root), [("wrong-source".into(), "a-to-b [legacy]".into(), "failure".into())]);
    let failure = &root.all("testsuite").next().unwrap().all("testcase").next().unwrap().children[0];
    assert!(failure.attr("message").is_some_and(|m| m.contains("b/eth0")), "{failure:?}");
    assert!(failure.text.contains("10.99.0.9"), "the failure text holds the expectation:\n{}", failure.text);
    assert_eq!(root.attr("failures"), Some("1"));

    // The same file with the right expectation passes: the failure was the expectation's.
    let right = scratch.file("right.toml", &two_netns("right-source", "10.99.0.1"));
    let out = netpath(&scratch, &["run", right.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "\n{stdout}{stderr}");
    assert!(stdout.starts_with("PASS right-source [legacy]\n  a-to-b: 1 packet, 1 path, ok\n"), "{stdout}");
    assert_eq!(summary(&stdout), "1 passed, 0 failed, 0 skipped, 0 not applicable");
}

#[test]
fn run_with_a_malformed_file_is_a_clear_error() {
    netpath_cases::require_root();
    let scratch = Scratch::new("malformed");
    let bad = scratch.file("bad.toml", "name = \"bad\"\n[[netns]]\nname = \"a\"\nflavour = \"blue\"\n");
    let report = scratch.0.join("report.xml");
    let out = netpath(&scratch, &["run", bad.to_str().unwrap(), "--junit", report.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "\n{stdout}{stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("ERROR {}:4:1: ", bad.display())), "{stdout}");
    assert!(first.contains("flavour"), "{stdout}");
    assert_eq!(summary(&stdout), "0 passed, 1 failed, 0 skipped, 0 not applicable");
    let root = junit_report(&report);
    let suite = root.all("testsuite").next().unwrap();
    assert_eq!(suite.attr("file"), bad.to_str());
    let case = suite.all("testcase").next().unwrap();
    assert_eq!(case.children[0].name, "error");
    assert!(case.children[0].text.contains("flavour"), "{case:?}");

    // A path that is not there: a usage error, nothing runs.
    let out = netpath(&scratch, &["run", "/nonexistent/netpath.toml"], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "\n{stdout}{stderr}");
    assert!(stderr.contains("/nonexistent/netpath.toml: no such file or folder"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

/// A bridge whose netns loads a broute table: skipped where the kernel has no broute table
/// (with the feature and the reason), a failure under strict mode, run where it has one.
#[test]
fn run_skips_for_a_missing_feature_and_strict_makes_it_a_failure() {
    netpath_cases::require_root();
    let scratch = Scratch::new("skip");
    let file = scratch.file(
        "broute.toml",
        r#"name = "broute-bridge"
backends = ["legacy"]

[[netns]]
name = "sw"
trace = false
ebtables = """
*broute
:BROUTING ACCEPT
"""

[[netns]]
name = "a"
trace = false

[[netns]]
name = "b"
trace = false

[[bridge]]
netns = "sw"
name = "br0"

[[veth]]
a = { netns = "sw", name = "pa", master = "br0" }
b = { netns = "a", name = "eth0", addresses = ["10.98.0.1/24"] }

[[veth]]
a = { netns = "sw", name = "pb", master = "br0" }
b = { netns = "b", name = "eth0", addresses = ["10.98.0.2/24"] }

[[probe]]
name = "a-to-b"
from = "a"
to = "10.98.0.2"
"#,
    );
    let path = file.to_str().unwrap();
    let report = scratch.0.join("report.xml");
    let out = netpath(&scratch, &["run", path, "--junit", report.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    let broute = caps::probe(Feature::EbtablesBroute);
    if broute.available {
        eprintln!("this kernel has the broute table: the scenario runs instead of skipping");
        assert!(out.status.success(), "\n{stdout}{stderr}");
        assert_eq!(summary(&stdout), "1 passed, 0 failed, 0 skipped, 0 not applicable");
        return;
    }
    assert!(out.status.success(), "a skip is no failure:\n{stdout}{stderr}");
    let skip_line = format!("SKIP broute-bridge [legacy]: needs ebtables broute table: {}", broute.detail);
    assert_eq!(stdout, format!("{skip_line}\n0 passed, 0 failed, 1 skipped, 0 not applicable\n"));
    let root = junit_report(&report);
    assert_eq!(testcases(&root), [("broute-bridge".into(), "a-to-b [legacy]".into(), "skipped".into())]);
    let skipped = &root.all("testsuite").next().unwrap().all("testcase").next().unwrap().children[0];
    assert!(skipped.attr("message").is_some_and(|m| m.starts_with("needs ebtables broute table: ")), "{skipped:?}");
    assert_eq!(root.attr("skipped"), Some("1"));

    for (args, strict) in [(vec!["run", path, "--strict"], None), (vec!["run", path], Some("1"))] {
        let out = netpath(&scratch, &args, strict);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?} NETPATH_STRICT={strict:?}:\n{stdout}{stderr}");
        assert!(stdout.starts_with("FAIL broute-bridge [legacy]: needs ebtables broute table: "), "{stdout}");
        assert_eq!(summary(&stdout), "0 passed, 1 failed, 0 skipped, 0 not applicable");
    }
}

/// A scenario that cannot run under a backend at all (a native nft ruleset under legacy) is
/// not applicable there: listed and counted apart, never a failure or a skip (so not one under
/// --strict either), and skipped in JUnit with the reason. `--backend all` means every backend
/// it allows.
#[test]
fn a_backend_a_scenario_cannot_run_under_is_not_applicable() {
    netpath_cases::require_root();
    let scratch = Scratch::new("na");
    let file = netpath_cases::scenario_path("docker-masquerade-native-nft");
    let path = file.to_str().unwrap();
    let report = scratch.0.join("report.xml");
    for strict in [None, Some("1")] {
        let out = netpath(&scratch, &["run", path, "--backend", "legacy", "--junit", report.to_str().unwrap()], strict);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "NETPATH_STRICT={strict:?}:\n{stdout}{stderr}");
        assert_eq!(
            stdout,
            "N/A docker-masquerade-native-nft [legacy]: native nft ruleset\n0 passed, 0 failed, 0 skipped, 1 not applicable\n"
        );
    }
    let root = junit_report(&report);
    assert_eq!(
        testcases(&root),
        ["c1-to-external", "external-to-c1", "c1-to-c2"].map(|p| (
            "docker-masquerade-native-nft".to_string(),
            format!("{p} [legacy]"),
            "skipped".to_string()
        ))
    );
    let skipped = &root.all("testsuite").next().unwrap().all("testcase").next().unwrap().children[0];
    assert_eq!(skipped.attr("message"), Some("native nft ruleset"));

    let out = netpath(&scratch, &["run", path, "--backend", "all", "--strict"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "\n{stdout}{stderr}");
    assert!(stdout.starts_with("PASS docker-masquerade-native-nft [nft]\n"), "{stdout}");
    assert_eq!(summary(&stdout), "1 passed, 0 failed, 0 skipped, 0 not applicable");
}

#[test]
fn caps_prints_the_table_and_exits_zero() {
    netpath_cases::require_root();
    let scratch = Scratch::new("caps");
    let out = netpath(&scratch, &["caps"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "\n{stdout}{stderr}");
    assert!(stdout.starts_with("kernel "), "{stdout}");
    assert!(stdout.contains("network namespaces "), "{stdout}");
    let last = summary(&stdout);
    assert!(last.ends_with(&format!(" of {} available", Feature::ALL.len())), "{stdout}");
}

/// The snapshot workflow on a real file: `netpath record` rewrites the expectations in place,
/// keeps every comment and the rulesets as written, the result passes, and recording it again
/// (the datapath unchanged) leaves it byte for byte as it was: an empty diff to review.
#[test]
fn record_in_place_keeps_the_comments_and_rerecording_changes_nothing() {
    netpath_cases::require_root();
    let scratch = Scratch::new("record");
    let original = std::fs::read_to_string(netpath_cases::scenario_path("docker-masquerade")).unwrap();
    let file = scratch.file("docker-masquerade.toml", &original);
    let path = file.to_str().unwrap();
    let record = |what: &str| {
        let out = netpath(&scratch, &["record", path], None);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{what}:\n{stdout}{stderr}");
        assert!(stdout.starts_with("recorded "), "{stdout}");
        std::fs::read_to_string(&file).unwrap()
    };
    let first = record("first recording");
    assert_ne!(first, original, "the hand-written file has `includes`/`never` where a recording writes `exact`");
    for line in original.lines().filter(|l| l.trim_start().starts_with('#')) {
        assert!(first.contains(line), "the recording lost the comment {line:?}:\n{first}");
    }
    let sc = Scenario::from_toml(&first, &file).unwrap_or_else(|e| panic!("{e}"));
    let before = Scenario::from_toml(&original, &file).unwrap();
    assert_eq!(sc.netns, before.netns, "the recording changed the topology or the rules");
    let out = netpath(&scratch, &["run", path], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the recorded file fails:\n{stdout}{stderr}");
    assert_eq!(summary(&stdout), "2 passed, 0 failed, 0 skipped, 0 not applicable");
    assert_eq!(record("second recording"), first, "re-recording an unchanged datapath changed the file");
}

/// The line budget of `--show-path` over the bundled folder: the issue's 1,200 lines held for the
/// folder's 92 probe runs when it was met (1,175 lines, 12.8 a run); the probes `netpath
/// mutate`'s gate and the drop scenarios added since get the same density, not a flat total
/// (164 probe runs where WireGuard runs: 1,950 lines, 11.9 a run, once packets whose captures
/// only came in another order stopped counting as other paths).
fn show_path_budget(probe_runs: usize) -> usize {
    (1200 * probe_runs.max(92)).div_ceil(92)
}

/// `--show-path` over the bundled scenarios (each under the backends it names, as the command
/// runs them by default) stays short enough to read: at most 1,200 lines, every passing probe's
/// summary line within 100 columns; `--verbose` still shows every packet, as many as the
/// results JSON counts.
#[test]
fn show_path_over_the_bundled_scenarios_is_short_and_verbose_shows_every_packet() {
    netpath_cases::require_root();
    let scratch = Scratch::new("show-path");
    let json = scratch.0.join("results.json");
    let out = netpath(&scratch, &["run", "--show-path", "-j", "2", "--json", json.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "\n{stdout}{stderr}");
    let lines = stdout.lines().count();
    let runs = netpath::output::results::Results::read(&std::fs::read_to_string(&json).unwrap()).unwrap().runs.len();
    assert!(stdout.contains("\n    paths as in [legacy] above\n"), "{stdout}");
    // A probe's summary: two spaces, its name, what it did, its verdict.
    let summaries: Vec<&str> =
        stdout.lines().filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(", ok")).collect();
    assert!(summaries.len() > 40, "{summaries:#?}");
    let budget = show_path_budget(summaries.len());
    assert!(
        lines <= budget,
        "{lines} lines for {runs} runs of {} probes (at most {budget}):\n{stdout}",
        summaries.len()
    );
    for s in &summaries {
        assert!(s.chars().count() <= 100, "{} columns: {s}", s.chars().count());
    }
    assert!(stdout.contains("masqueraded at host/eth0"), "{stdout}");

    // docs/command.md shows docker-masquerade's paths as a run prints them.
    let shown = netpath_cases::docs::after("docs/command.md", "cases/scenarios/docker-masquerade.toml` prints:");
    let shown = shown.split("```\n").nth(1).unwrap();
    let file = netpath_cases::scenario_path("docker-masquerade");
    let out = netpath(&scratch, &["run", "--show-path", "--backend", "legacy", file.to_str().unwrap()], None);
    let (one, _) = text(&out);
    assert!(one.contains(shown), "the example of docs/command.md is not what a run prints:\n{shown}\n---\n{one}");

    let out =
        netpath(&scratch, &["run", "--show-path", "--verbose", "-j", "2", "--json", json.to_str().unwrap()], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "\n{stdout}{stderr}");
    let results = netpath::output::results::Results::read(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let sent: usize = results.runs.iter().flat_map(|r| &r.probes).map(|p| p.packets).sum();
    // `    packet 7:` or `    packet 7, answered by ep1:`, one per packet in full.
    let shown = stdout.lines().filter(|l| l.starts_with("    packet ") && l.ends_with(':')).count();
    assert_eq!(shown, sent, "every packet in full");
}
