//! The HTML report: one self-contained page per run (scenario × backend) and an index per suite.
//! A page draws the lab's topology, and per probe its verdict, each failed expectation with its
//! FILE:LINE, and each class of packets' journey: the hops in order, over the topology and over
//! the netfilter hook map, hooks coloured by verdict, rewritten addresses marked, links to the
//! pcaps. No network access: style, pictures and script are inline.
//!
//! `netpath run --html DIR` writes `DIR/index.html` and a page per run ([`write_suite`]); every
//! artifact folder holds its run's page as `report.html` ([`page`]).

mod assets;
mod escape;
mod hookmap;
mod journey;
mod topology;

pub use escape::esc;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::engine::Outcome;
use crate::output::results::{RunResult, RunVerdict};
use crate::scenario::Scenario;

/// The page of one run of `sc`. `artifacts`: how the page reaches the run's artifact folder
/// (`""` for a page inside it, `../x/` from elsewhere), for its links to the pcaps; `None`
/// when the run wrote none.
pub fn page(sc: &Scenario, o: &Outcome, artifacts: Option<&str>) -> String {
    let topo = topology::Topology::new(sc, &o.setup);
    let verdict = if o.passed() { "pass" } else { "fail" };
    let title = format!("{} {} [{}]", verdict.to_uppercase(), o.scenario, o.backend.name());
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head>{}<title>netpath: {}</title></head><body>",
        assets::HEAD,
        esc(&title)
    );
    s.push_str(assets::DEFS);
    let _ = write!(
        s,
        r#"<header><h1><span class="{verdict}">{}</span> {} <span class="backend">[{}]</span></h1>"#,
        verdict.to_uppercase(),
        esc(&o.scenario),
        esc(o.backend.name())
    );
    if !sc.description.is_empty() {
        let _ = write!(s, r#"<p class="desc">{}</p>"#, esc(sc.description.trim()));
    }
    let mut facts = vec![format!("kernel {}", crate::kernel::running_release())];
    if let Some(seed) = &sc.seed {
        facts.push(format!("seed {seed}"));
    }
    if let Some(wg) = &o.wireguard {
        facts.push(format!("wireguard: {wg}"));
    }
    let _ = write!(s, r#"<p class="facts">{} · <span id="summary"></span>"#, esc(&facts.join(" · ")));
    if let Some(dir) = artifacts {
        let _ = write!(
            s,
            r#" · artifacts: <a href="{0}all.pcapng">all.pcapng</a> <a href="{0}trace.txt">trace.txt</a> <a href="{0}report.txt">report.txt</a>"#,
            esc(dir)
        );
    }
    s.push_str("</p></header><nav>");
    for (k, p) in o.probes.iter().enumerate() {
        let mark = if p.failures.is_empty() { "✓" } else { "✗" };
        let _ = write!(s, "<a href=\"#probe-{k}\">{mark} {}</a>", esc(&p.name));
    }
    s.push_str("</nav>");
    let _ = write!(s, r#"<section class="topology"><h2>Topology</h2>{}</section>"#, topo.svg(&[], "topology"));
    s.push_str(
        r#"<p class="legend">hooks: <span class="lg-accept">accept</span><span class="lg-drop">drop / reject</span><span class="lg-nat">nat</span><span class="lg-jump">jump / goto</span><span class="lg-return">return, continue, seen</span> <mark>rewritten</mark> field · click a hook for its rule</p>"#,
    );
    for (k, p) in o.probes.iter().enumerate() {
        s.push_str(&journey::probe(k, p, &topo, artifacts));
    }
    s.push_str(assets::SCRIPT);
    s.push_str("</body></html>\n");
    s
}

/// The file name of a run's page in a suite's folder: `docker-masquerade-nft.html`.
pub fn page_file(scenario: &str, backend: &str) -> String {
    crate::output::artifacts::file_name(&format!("{scenario}-{backend}.html"))
}

/// One run of a suite as its index lists it: the result, and the file of its page if it has one.
pub struct Entry<'a> {
    /// The run's result (verdict, probes, why it was skipped or did not run).
    pub result: &'a RunResult,
    /// Its page's file in the suite's folder.
    pub page: Option<String>,
}

/// A suite's `index.html`: a row per run with its verdict, probes and page.
pub fn index(entries: &[Entry<'_>]) -> String {
    let count = |v: RunVerdict| entries.iter().filter(|e| e.result.verdict == v).count();
    let mut s =
        format!("<!DOCTYPE html>\n<html lang=\"en\"><head>{}<title>netpath: suite</title></head><body>", assets::HEAD);
    let _ = write!(
        s,
        r#"<header><h1>netpath suite</h1><p class="facts">kernel {} · {} passed, {} failed, {} skipped, {} not applicable, {} did not run</p></header>"#,
        esc(&crate::kernel::running_release()),
        count(RunVerdict::Pass),
        count(RunVerdict::Fail),
        count(RunVerdict::Skip),
        count(RunVerdict::NotApplicable),
        count(RunVerdict::Error)
    );
    s.push_str(
        r#"<table class="runs"><tr><th>scenario</th><th>backend</th><th>verdict</th><th>probes</th><th>file</th></tr>"#,
    );
    for e in entries {
        let r = e.result;
        let verdict = match r.verdict {
            RunVerdict::Pass => "pass",
            RunVerdict::Fail => "fail",
            RunVerdict::Skip => "skip",
            RunVerdict::Error => "error",
            RunVerdict::NotApplicable => "not-applicable",
        };
        let name = match &e.page {
            Some(p) => format!(r#"<a href="{}">{}</a>"#, esc(p), esc(&r.scenario)),
            None => esc(&r.scenario),
        };
        let probes: Vec<String> =
            r.probes.iter().map(|p| format!("{} {}", if p.passed { "✓" } else { "✗" }, esc(&p.name))).collect();
        let reason = r.reason.as_deref().map(|x| format!("<br><small>{}</small>", esc(x))).unwrap_or_default();
        let _ = write!(
            s,
            r#"<tr class="run" data-scenario="{}" data-backend="{}"><td>{name}</td><td>{}</td><td class="{verdict}">{verdict}{reason}</td><td>{}</td><td><code>{}</code></td></tr>"#,
            esc(&r.scenario),
            esc(&r.backend),
            esc(&r.backend),
            probes.join("<br>"),
            esc(&r.file)
        );
    }
    s.push_str("</table></body></html>\n");
    s
}

/// Write a suite's report into `dir`: each page of `pages` (file name, text) and `index.html`
/// listing `entries`. Returns the index's path.
pub fn write_suite(dir: &Path, pages: &[(String, String)], entries: &[Entry<'_>]) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create the HTML report folder {}: {e}", dir.display()))?;
    for (file, text) in pages {
        let p = dir.join(file);
        std::fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
    }
    let p = dir.join("index.html");
    std::fs::write(&p, index(entries)).map_err(|e| format!("write {}: {e}", p.display()))?;
    Ok(p)
}

/// How a page in folder `from` reaches folder `to` (`../netpath-artifacts/x/`), ending in `/`;
/// both absolute or both relative to the same folder.
pub fn relative(from: &Path, to: &Path) -> String {
    let (from, to): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = String::new();
    for _ in common..from.len() {
        out.push_str("../");
    }
    for c in &to[common..] {
        out.push_str(&c.as_os_str().to_string_lossy());
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests;
