//! The HTML report opened in a real browser (Debian's `chromium`, headless): the bundled suite's
//! pages and a failing twin's. The DOM after the page's script ran must hold every probe, every
//! hook each probe packet met (counted against the `--json` results), and the failed expectation
//! with its FILE:LINE; a screenshot of each is saved beside the reports. Needs root; a missing
//! chromium fails the tests (install it with `apt-get install chromium`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netpath::Backend;
use netpath::output::results::{Results, RunVerdict};
use netpath::verdict::expect::FailureKind;

/// How long one page may take to load and render.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Where a test keeps what it leaves for people (reports, screenshots): a folder of its own
/// under `$NETPATH_ARTIFACTS` (default `/tmp/netpath-artifacts`).
fn keep_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("NETPATH_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("netpath-artifacts"));
    let when = netpath::output::artifacts::utc_stamp(std::time::SystemTime::now());
    let dir = root.join(format!("html-{name}-{when}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Headless Chromium on `page`, with `args` (`--dump-dom`, `--screenshot=...`), under a deadline,
/// in a PID namespace of its own so none of its processes outlives it; its stdout.
fn chromium(page: &Path, args: &[String]) -> String {
    let profile = tempdir("chromium-profile");
    let mut cmd = Command::new(browser());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    let out = netpath::tool::run_contained(cmd, None, BROWSER_TIMEOUT);
    let _ = std::fs::remove_dir_all(&profile);
    match out {
        Ok(o) if o.status.success() => o.stdout,
        Ok(o) => panic!("chromium on {} failed ({}): {}", page.display(), o.status, o.stderr),
        Err(netpath::tool::Failure::Spawn(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("chromium is not installed: apt-get install chromium (harness/install-deps.sh installs it)")
        }
        Err(e) => panic!("chromium on {}: {e:?}", page.display()),
    }
}

/// Debian's `chromium`, else another name the same browser goes by on PATH (`chromium-browser`,
/// Google's build on CI images); a failure naming the package when there is none.
fn browser() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("no chromium on PATH: apt-get install chromium (harness/install-deps.sh installs it)")
        })
}

fn tempdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netpath-html-{what}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// The DOM of `page` after its scripts ran, as Chromium serializes it.
fn dom(page: &Path) -> Dom {
    let text = chromium(page, &["--dump-dom".into()]);
    assert!(text.contains("</html>"), "chromium gave no DOM for {}:\n{text}", page.display());
    Dom::parse(&text)
}

/// Save a screenshot of `page` as `png`.
fn screenshot(page: &Path, png: &Path) {
    chromium(page, &[format!("--screenshot={}", png.display()), "--window-size=1400,2000".into()]);
    let size = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "the screenshot {} is {size} bytes: nothing drawn?", png.display());
}

/// The start tags of a serialized DOM, in document order: a tag name and its attributes.
struct Dom {
    tags: Vec<(String, BTreeMap<String, String>)>,
    text: String,
}

impl Dom {
    fn parse(text: &str) -> Dom {
        let mut tags = vec![];
        let mut rest = text;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').unwrap_or(rest.len());
            let tag = &rest[..end];
            rest = &rest[end..];
            if tag.starts_with(['/', '!']) {
                continue;
            }
            let name_end = tag.find(|c: char| c.is_whitespace() || c == '/').unwrap_or(tag.len());
            let mut attrs = BTreeMap::new();
            let mut a = &tag[name_end..];
            while let Some(eq) = a.find("=\"") {
                let key = a[..eq].trim().to_string();
                let after = &a[eq + 2..];
                let close = after.find('"').unwrap_or(after.len());
                attrs.insert(key, unescape(&after[..close]));
                a = &after[(close + 1).min(after.len())..];
            }
            tags.push((tag[..name_end].to_ascii_lowercase(), attrs));
        }
        Dom { tags, text: text.to_string() }
    }

    /// The start tags named `tag` whose class list holds every class of `classes`.
    fn all<'a>(
        &'a self,
        tag: &'a str,
        classes: &'a [&'a str],
    ) -> impl Iterator<Item = &'a BTreeMap<String, String>> + 'a {
        self.tags.iter().filter(move |(t, a)| t == tag && has_classes(a, classes)).map(|(_, a)| a)
    }

    /// Each hook row of the page as (probe, packets of its class, direction, netns, hook), in
    /// document order.
    fn hook_rows(&self) -> Vec<(String, Vec<u16>, String, String, String)> {
        let (mut probe, mut packets, mut dir) = (String::new(), vec![], String::new());
        let mut rows = vec![];
        for (tag, a) in &self.tags {
            let get = |k: &str| a.get(k).cloned().unwrap_or_default();
            match tag.as_str() {
                "section" if has_classes(a, &["probe"]) => probe = get("data-probe"),
                "section" if has_classes(a, &["class"]) => {
                    packets = get("data-packets").split(',').filter_map(|p| p.parse().ok()).collect()
                }
                "div" if has_classes(a, &["dir"]) => dir = get("data-dir"),
                "tr" if has_classes(a, &["hop", "hook"]) => {
                    rows.push((probe.clone(), packets.clone(), dir.clone(), get("data-netns"), get("data-hook")))
                }
                _ => {}
            }
        }
        rows
    }
}

fn has_classes(attrs: &BTreeMap<String, String>, classes: &[&str]) -> bool {
    let have: Vec<&str> = attrs.get("class").map(|c| c.split_whitespace().collect()).unwrap_or_default();
    classes.iter().all(|c| have.contains(c))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// `netpath run --html DIR --json FILE` over the bundled scenarios (each under its own
/// backends); every page that ran opens in Chromium with every probe and every hook of every
/// packet the results list, the index lists every run, and screenshots are saved beside them.
#[test]
fn the_bundled_suites_report_opens_in_chromium_with_every_probe_and_hop() {
    netpath_cases::require_root();
    assert!(
        netpath_cases::doc_text("docs/reports.md").contains("netpath run --html report cases/scenarios"),
        "the example of docs/reports.md is this test's command"
    );
    let keep = keep_dir("bundled");
    let html = keep.join("report");
    let json = keep.join("results.json");
    let out = Command::new(netpath_cases::netpath_bin())
        .arg("run")
        .arg(netpath_cases::scenarios_dir())
        .arg("--html")
        .arg(&html)
        .arg("--json")
        .arg(&json)
        .args(["-j", "2"])
        .env("NETPATH_ARTIFACTS", keep.join("artifacts"))
        .output()
        .expect("run netpath");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results = Results::read(&std::fs::read_to_string(&json).expect("the --json results"))
        .unwrap_or_else(|e| panic!("results: {e}\n{stdout}"));

    let index = dom(&html.join("index.html"));
    let listed: Vec<(String, String)> =
        index.all("tr", &["run"]).map(|a| (a["data-scenario"].clone(), a["data-backend"].clone())).collect();
    let ran: Vec<(String, String)> = results.runs.iter().map(|r| (r.scenario.clone(), r.backend.clone())).collect();
    assert_eq!(listed, ran, "the index lists every run, in order");
    screenshot(&html.join("index.html"), &keep.join("index.png"));

    // Two browsers at a time: each page costs a Chromium start (2-3 s on a busy 2-core machine).
    let ran: Vec<&netpath::output::results::RunResult> =
        results.runs.iter().filter(|r| matches!(r.verdict, RunVerdict::Pass | RunVerdict::Fail)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some(run) = ran.get(next.fetch_add(1, std::sync::atomic::Ordering::SeqCst)) {
                    check_page(&html, &keep, run);
                }
            });
        }
    });
    let pages = ran.len();
    assert!(pages >= 10, "only {pages} pages of runs:\n{stdout}");
    eprintln!("HTML report and screenshots of the bundled suite: {}", keep.display());
}

/// The page of `run` in `html`: the script ran, every probe is there with its verdict, and every
/// hook of every packet the results list, in order; docker-masquerade's page is photographed.
fn check_page(html: &Path, keep: &Path, run: &netpath::output::results::RunResult) {
    let page = html.join(netpath::output::html::page_file(&run.scenario, &run.backend));
    let dom = dom(&page);
    let what = format!("{} [{}]", run.scenario, run.backend);
    // The page's script ran: it counted the probes into the summary.
    let summary = dom.all("span", &[]).find(|a| a.get("id").is_some_and(|i| i == "summary")).expect("summary");
    assert_eq!(summary.get("data-probes"), Some(&run.probes.len().to_string()), "{what}: the script did not run");
    let probes: Vec<&String> = dom.all("section", &["probe"]).map(|a| &a["data-probe"]).collect();
    assert_eq!(probes, run.probes.iter().map(|p| &p.name).collect::<Vec<_>>(), "{what}: every probe");
    let rows = dom.hook_rows();
    let mut hooks = 0;
    for p in &run.probes {
        let verdict = if p.passed { "pass" } else { "fail" };
        assert!(
            dom.all("section", &["probe", verdict]).any(|a| a["data-probe"] == p.name),
            "{what}: probe {} is not shown as {verdict}",
            p.name
        );
        for path in &p.paths {
            let dir = if path.direction == netpath::scenario::Direction::Request { "request" } else { "reply" };
            let shown: Vec<&str> = rows
                .iter()
                .filter(|r| r.0 == p.name && r.1.contains(&path.packet) && r.2 == dir && r.3 == path.netns)
                .map(|r| r.4.as_str())
                .collect();
            assert_eq!(
                shown, path.hooks,
                "{what}: probe {} packet {} {dir} in {}: the page's hooks",
                p.name, path.packet, path.netns
            );
            hooks += shown.len();
        }
    }
    assert!(hooks > 0 || run.probes.iter().all(|p| p.paths.is_empty()), "{what}: no hook shown");
    if run.scenario == "docker-masquerade" {
        screenshot(&page, &keep.join(format!("{}-{}.png", run.scenario, run.backend)));
    }
}

/// docker-masquerade without its MASQUERADE rule: the failed run's artifact folder holds
/// report.html; in Chromium it shows the probe failed, each failed expectation with the
/// FILE:LINE netpath names, the uplink's unmasqueraded source, and no NAT hook on the path.
#[test]
fn a_failing_twins_report_shows_the_failed_expectation_with_file_and_line() {
    let mut sc = netpath_cases::load("docker-masquerade");
    netpath_cases::edit_iptables(&mut sc, "host", |r| netpath_cases::without_lines(r, "-j MASQUERADE"));
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    netpath_cases::assert_masquerade_missing(&o);
    let dir = o.artifacts.clone().expect("a failed run writes artifacts");
    let page = dir.join("report.html");
    let dom = dom(&page);
    assert!(dom.all("section", &["probe", "fail"]).any(|a| a["data-probe"] == "c1-to-external"), "the probe failed");
    let shown: Vec<&String> = dom.all("div", &["failure"]).map(|a| &a["data-location"]).collect();
    let failures = &o.probes[0].failures;
    assert_eq!(shown.len(), failures.len(), "every failed expectation is shown");
    let path = netpath_cases::scenario_path("docker-masquerade");
    for f in failures {
        let at = f.location.as_deref().expect("a FILE:LINE");
        assert!(at.starts_with(&format!("{}:", path.display())), "{at}");
        assert!(shown.contains(&&at.to_string()), "{at} not on the page: {shown:?}");
    }
    let uplink = netpath_cases::want(FailureKind::Header).packet(1).request().at("host/eth0").find(failures);
    let location = uplink.location.as_deref().unwrap();
    assert!(dom.text.contains(&format!("at <code>{location}</code>")), "the uplink failure's FILE:LINE is shown");
    assert!(dom.text.contains("192.168.0.2 &gt; 10.171.77.30"), "the observed, unmasqueraded header is shown");
    let rows = dom.hook_rows();
    assert!(rows.iter().any(|r| r.4 == "filter:FORWARD:rule:5"), "the request's hooks are shown");
    assert!(!rows.iter().any(|r| r.4.starts_with("nat:POSTROUTING:rule")), "no MASQUERADE hook is drawn");
    screenshot(&page, &dir.join("report.png"));
}

/// A scenario whose name, description, probe and a rule's comment carry markup runs for real; its
/// page's DOM holds that markup as text, and the script in the name never ran.
#[test]
fn markup_in_a_scenario_stays_text_in_the_browser() {
    let text = r#"
name = "<script>document.title='pwned'</script>"
description = "<img src=x onerror=\"document.title='pwned'\">"
[[netns]]
name = "a"
iptables = """
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p icmp -j TRACE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p icmp -m comment --comment "<script>document.title='pwned'</script>" -j ACCEPT
COMMIT
"""
[[netns]]
name = "b"
[[veth]]
a = { netns = "a", name = "eth0", addresses = ["10.99.0.1/24"] }
b = { netns = "b", name = "eth0", addresses = ["10.99.0.2/24"] }
[[probe]]
name = "<b onclick=x>ping</b>"
from = "a"
to = "10.99.0.2"
"#;
    let scratch = tempdir("hostile");
    let file = scratch.join("hostile.toml");
    std::fs::write(&file, text).unwrap();
    let sc = netpath::Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
    netpath_cases::require_root();
    let opts = netpath::RunOptions { keep: true, artifacts_root: scratch.join("artifacts"), ..Default::default() };
    let o = netpath::run(&sc, Backend::Legacy, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    let dom = dom(&o.artifacts.as_ref().unwrap().join("report.html"));
    assert!(!dom.text.contains("pwned</title>"), "the name's script ran");
    assert!(dom.text.contains("&lt;script&gt;document.title="), "the name is shown as text");
    assert!(dom.all("img", &[]).next().is_none(), "the description made an element");
    assert!(dom.all("b", &[]).next().is_none(), "the probe's name made an element");
    assert_eq!(dom.all("section", &["probe", "pass"]).count(), 1);
    let commented = dom.all("tr", &["hop", "hook"]).filter(|a| a["title"].contains("<script>document.title")).count();
    assert!(commented > 0, "the rule's comment is in its hook's title, as text");
    let _ = std::fs::remove_dir_all(&scratch);
}
