//! JUnit XML reports of a run (`netpath run --junit FILE`), for CI systems that show test
//! results: a `<testsuite>` per scenario file, a `<testcase>` per scenario × backend × probe,
//! `<failure>` with the failure text, `<error>` when the scenario did not run, `<skipped>` with
//! the reason. Written by hand with the escaping XML 1.0 needs; [`read`] reads it back.

use std::fmt::Write;
use std::time::Duration;

use crate::engine::Outcome;
use crate::firewall::Backend;
use crate::scenario::Scenario;

/// A whole report: `<testsuites>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// A suite per scenario file.
    pub suites: Vec<Suite>,
}

/// One scenario file: `<testsuite>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// The scenario's name, or the file's when it did not load.
    pub name: String,
    /// The scenario file.
    pub file: String,
    /// A case per probe and backend.
    pub cases: Vec<Case>,
}

/// One probe of a scenario under one backend: `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// `PROBE [BACKEND]`.
    pub name: String,
    /// The scenario's name.
    pub classname: String,
    /// How long the run took.
    pub time: Duration,
    /// Its verdict.
    pub status: Status,
}

/// A JUnit case's verdict, with the text the report shows for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Every expectation held.
    Passed,
    /// An expectation did not hold (or a skip under strict mode).
    Failed {
        /// The one-line summary (JUnit's `message` attribute).
        message: String,
        /// The full text (the element's body).
        text: String,
    },
    /// The scenario did not run (the lab could not be built, the file did not load).
    Error {
        /// The one-line summary (JUnit's `message` attribute).
        message: String,
        /// The full text (the element's body).
        text: String,
    },
    /// The kernel lacks a feature the scenario needs, or the backend does not apply.
    Skipped {
        /// The feature and why, or why not applicable.
        message: String,
    },
}

impl Suite {
    fn count(&self, f: impl Fn(&Status) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.status)).count()
    }

    fn time(&self) -> Duration {
        self.cases.iter().map(|c| c.time).sum()
    }
}

fn failed(s: &Status) -> bool {
    matches!(s, Status::Failed { .. })
}

fn errored(s: &Status) -> bool {
    matches!(s, Status::Error { .. })
}

fn skipped(s: &Status) -> bool {
    matches!(s, Status::Skipped { .. })
}

impl Report {
    /// The XML document.
    pub fn to_xml(&self) -> String {
        let count = |f: fn(&Status) -> bool| self.suites.iter().map(|s| s.count(f)).sum::<usize>();
        let tests: usize = self.suites.iter().map(|s| s.cases.len()).sum();
        let time: Duration = self.suites.iter().map(Suite::time).sum();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"netpath\" tests=\"{tests}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">",
            count(failed),
            count(errored),
            count(skipped),
            seconds(time)
        );
        for s in &self.suites {
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" file=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">",
                escape_attr(&s.name),
                escape_attr(&s.file),
                s.cases.len(),
                s.count(failed),
                s.count(errored),
                s.count(skipped),
                seconds(s.time())
            );
            for c in &s.cases {
                let open = format!(
                    "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
                    escape_attr(&c.name),
                    escape_attr(&c.classname),
                    seconds(c.time)
                );
                match &c.status {
                    Status::Passed => {
                        let _ = writeln!(out, "{open}/>");
                    }
                    Status::Skipped { message } => {
                        let _ = writeln!(out, "{open}>\n      <skipped message=\"{}\"/>", escape_attr(message));
                        out.push_str("    </testcase>\n");
                    }
                    Status::Failed { message, text } | Status::Error { message, text } => {
                        let (tag, kind) = if failed(&c.status) { ("failure", "expectation") } else { ("error", "run") };
                        let _ = writeln!(
                            out,
                            "{open}>\n      <{tag} message=\"{}\" type=\"{kind}\">{}</{tag}>",
                            escape_attr(message),
                            escape_text(text)
                        );
                        out.push_str("    </testcase>\n");
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// Seconds with millisecond precision, as JUnit readers expect (`1.234`).
fn seconds(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// A character XML 1.0 cannot carry at all, not even as a reference (controls other than tab,
/// newline and carriage return; U+FFFE, U+FFFF): written as `\u{1b}` text instead.
fn forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

fn escape(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\'' if attr => out.push_str("&apos;"),
            // An attribute's whitespace is normalized to spaces unless written as references.
            '\n' if attr => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' if attr => out.push_str("&#9;"),
            c if forbidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text content: `&`, `<`, `>` as entities, characters XML cannot carry as `\u{..}`.
pub fn escape_text(s: &str) -> String {
    escape(s, false)
}

/// A double-quoted attribute value: also quotes, and newlines and tabs as character references
/// so they survive attribute normalization.
pub fn escape_attr(s: &str) -> String {
    escape(s, true)
}

// ---- from netpath's outcomes ----

/// A case's name: `PROBE [BACKEND]`.
fn case_name(probe: &str, backend: Backend) -> String {
    format!("{probe} [{}]", backend.name())
}

/// Each probe's share of a run of `total`, in whole milliseconds (what JUnit shows) so that they
/// add up to the run's time as shown: its own time (`own`, its `probe NAME` stage) and an even
/// part of the rest (the lab, observers, verdict and teardown the probes shared), the first ones
/// taking the milliseconds an even split leaves over.
pub fn shares(total: Duration, own: &[Duration]) -> Vec<Duration> {
    if own.is_empty() {
        return vec![];
    }
    let ms = |d: Duration| (d.as_micros() + 500) / 1000;
    let total_ms = ms(total);
    let mut parts: Vec<u128> = own.iter().map(|d| ms(*d)).collect();
    // Stages timed apart from `total` may exceed it by a rounding: then only an even split holds.
    if parts.iter().sum::<u128>() > total_ms {
        parts.iter_mut().for_each(|p| *p = 0);
    }
    let rest = total_ms - parts.iter().sum::<u128>();
    let n = parts.len() as u128;
    for (i, p) in parts.iter_mut().enumerate() {
        *p += rest / n + u128::from((i as u128) < rest % n);
    }
    parts.into_iter().map(|p| Duration::from_millis(p as u64)).collect()
}

/// The cases of a scenario that ran: one per probe. netpath builds the lab once per scenario and
/// backend: each probe's time is its own (sending and awaiting its packets) and an even part of
/// what they shared, so that they add up to the run's `time` ([`shares`]), and a suite's time to
/// its runs.
pub fn outcome_cases(o: &Outcome, time: Duration) -> Vec<Case> {
    if o.probes.is_empty() {
        let status = if o.passed() {
            Status::Passed
        } else {
            Status::Failed { message: "failed".into(), text: crate::output::report::outcome(o, false) }
        };
        return vec![Case { name: case_name("(no probes)", o.backend), classname: o.scenario.clone(), time, status }];
    }
    let own: Vec<Duration> =
        o.probes.iter().map(|p| o.timings.get(&format!("probe {}", p.name)).unwrap_or_default()).collect();
    o.probes
        .iter()
        .zip(shares(time, &own))
        .map(|(p, share)| {
            let status = match p.failures.as_slice() {
                [] => Status::Passed,
                fs => {
                    let message = match fs {
                        [one] => one.what.clone(),
                        [first, rest @ ..] => format!("{} (and {} more)", first.what, rest.len()),
                        [] => unreachable!(),
                    };
                    let mut text = crate::output::report::probe(p, crate::output::report::Detail::of(true, false));
                    if let Some(a) = &o.artifacts {
                        let _ = writeln!(text, "  artifacts: {}", a.display());
                    }
                    Status::Failed { message, text }
                }
            };
            Case { name: case_name(&p.name, o.backend), classname: o.scenario.clone(), time: share, status }
        })
        .collect()
}

/// The cases of a scenario that did not run under `backend` (skipped, or an error): one per
/// probe, each with `status`.
pub fn unrun_cases(sc: &Scenario, backend: Backend, time: Duration, status: Status) -> Vec<Case> {
    let names: Vec<&str> =
        if sc.probe.is_empty() { vec!["(no probes)"] } else { sc.probe.iter().map(|p| p.name.as_str()).collect() };
    let times = shares(time, &vec![Duration::ZERO; names.len()]);
    names
        .into_iter()
        .zip(times)
        .map(|(n, time)| Case { name: case_name(n, backend), classname: sc.name.clone(), time, status: status.clone() })
        .collect()
}

// ---- reading it back ----

/// An element of a parsed document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    /// The element's tag name.
    pub name: String,
    /// Its attributes, in document order.
    pub attrs: Vec<(String, String)>,
    /// Its child elements.
    pub children: Vec<Element>,
    /// The text directly inside, references resolved.
    pub text: String,
}

impl Element {
    /// The value of attribute `name`, if the element has it.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The children named `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Read a document of the subset of XML this module writes (a declaration, elements,
/// attributes, text, the five entities and numeric references; no comments, CDATA or DTD), and
/// check it is well-formed: tags nest, attributes are quoted and unique, no raw `<` or `&` in
/// text. For tests and tools that check a report.
pub fn read(xml: &str) -> Result<Element, String> {
    let mut r = Reader { s: xml, pos: 0 };
    if r.rest().starts_with("<?xml") {
        let end = r.rest().find("?>").ok_or("unterminated XML declaration")?;
        r.pos += end + 2;
    }
    r.skip_ws();
    let root = r.element()?;
    r.skip_ws();
    if r.pos != xml.len() {
        return Err(format!("content after the root element at byte {}", r.pos));
    }
    Ok(root)
}

struct Reader<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r']).len();
    }

    fn expect(&mut self, what: &str) -> Result<(), String> {
        if self.rest().starts_with(what) {
            self.pos += what.len();
            Ok(())
        } else {
            Err(format!("expected `{what}` at byte {}", self.pos))
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let rest = self.rest();
        let len =
            rest.find(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))).unwrap_or(rest.len());
        if len == 0 {
            return Err(format!("expected a name at byte {}", self.pos));
        }
        self.pos += len;
        Ok(rest[..len].to_string())
    }

    fn element(&mut self) -> Result<Element, String> {
        self.expect("<")?;
        let mut el = Element { name: self.name()?, ..Element::default() };
        loop {
            let before = self.pos;
            self.skip_ws();
            if self.rest().starts_with("/>") {
                self.pos += 2;
                return Ok(el);
            }
            if self.rest().starts_with('>') {
                self.pos += 1;
                break;
            }
            if self.pos == before {
                return Err(format!("expected whitespace before an attribute at byte {}", self.pos));
            }
            let key = self.name()?;
            self.expect("=\"")?;
            let end = self.rest().find('"').ok_or_else(|| format!("unterminated value of {key}"))?;
            let raw = &self.rest()[..end];
            if raw.contains('<') {
                return Err(format!("`<` in the value of {key} at byte {}", self.pos));
            }
            let value = unescape(raw).map_err(|e| format!("{e} in the value of {key}"))?;
            self.pos += end + 1;
            if el.attrs.iter().any(|(k, _)| *k == key) {
                return Err(format!("attribute {key} given twice on <{}>", el.name));
            }
            el.attrs.push((key, value));
        }
        loop {
            let end = self.rest().find('<').ok_or_else(|| format!("<{}> is never closed", el.name))?;
            el.text.push_str(&unescape(&self.rest()[..end])?);
            self.pos += end;
            if self.rest().starts_with("</") {
                self.pos += 2;
                let name = self.name()?;
                if name != el.name {
                    return Err(format!("</{name}> closes <{}> at byte {}", el.name, self.pos));
                }
                self.skip_ws();
                self.expect(">")?;
                return Ok(el);
            }
            el.children.push(self.element()?);
        }
    }
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').ok_or_else(|| format!("a bare `&` in `{s}`"))?;
        let entity = &rest[i + 1..i + end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e => {
                let code = if let Some(hex) = e.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = e.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or_else(|| format!("unknown reference `&{e};`"))?
            }
        };
        out.push(c);
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    if let Some(c) = out.chars().find(|&c| forbidden(c)) {
        return Err(format!("character U+{:04X} is not allowed in XML", c as u32));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, status: Status, ms: u64) -> Case {
        Case { name: name.into(), classname: "sc".into(), time: Duration::from_millis(ms), status }
    }

    #[test]
    fn junit_escapes_text() {
        assert_eq!(escape_text("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
        assert_eq!(escape_text("\"quoted\" 'x'\n\tnext"), "\"quoted\" 'x'\n\tnext");
        assert_eq!(escape_text("]]> end"), "]]&gt; end");
        assert_eq!(escape_text("crlf\r\n"), "crlf&#13;\n");
        assert_eq!(escape_text("✗ ü → 🦀"), "✗ ü → 🦀");
    }

    #[test]
    fn junit_escapes_attributes() {
        assert_eq!(escape_attr("say \"hi\" & 'bye' <now>"), "say &quot;hi&quot; &amp; &apos;bye&apos; &lt;now&gt;");
        assert_eq!(escape_attr("two\nlines\tand tab"), "two&#10;lines&#9;and tab");
    }

    #[test]
    fn junit_writes_forbidden_characters_as_text() {
        assert_eq!(escape_text("\u{1b}[31mred\u{1b}[0m\u{0}"), "\\u{1b}[31mred\\u{1b}[0m\\u{0}");
        assert_eq!(escape_attr("bell\u{7}\u{ffff}"), "bell\\u{7}\\u{ffff}");
    }

    #[test]
    fn junit_escaping_round_trips_through_the_reader() {
        let nasty = "a<b>&c \"d\" 'e'\nf\tg\r\n&amp; ]]> <!-- x --> ✗";
        let report = Report {
            suites: vec![Suite {
                name: nasty.into(),
                file: "dir/<f>.toml".into(),
                cases: vec![case(nasty, Status::Failed { message: nasty.into(), text: nasty.into() }, 5)],
            }],
        };
        let root = read(&report.to_xml()).unwrap_or_else(|e| panic!("{e}\n{}", report.to_xml()));
        let suite = root.all("testsuite").next().unwrap();
        assert_eq!(suite.attr("name"), Some(nasty));
        assert_eq!(suite.attr("file"), Some("dir/<f>.toml"));
        let tc = suite.all("testcase").next().unwrap();
        assert_eq!(tc.attr("name"), Some(nasty));
        let failure = tc.all("failure").next().unwrap();
        assert_eq!(failure.attr("message"), Some(nasty));
        assert_eq!(failure.text, nasty);
    }

    #[test]
    fn junit_structure_and_counts() {
        let report = Report {
            suites: vec![
                Suite {
                    name: "docker-masquerade".into(),
                    file: "cases/scenarios/docker-masquerade.toml".into(),
                    cases: vec![
                        case("c1-to-external [legacy]", Status::Passed, 1500),
                        case(
                            "c1-to-external [nft]",
                            Status::Failed { message: "addresses at host/eth0".into(), text: "✗ detail".into() },
                            1250,
                        ),
                        case("c2-to-external [nft]", Status::Skipped { message: "needs conntrack: no".into() }, 0),
                    ],
                },
                Suite {
                    name: "bad.toml".into(),
                    file: "bad.toml".into(),
                    cases: vec![case(
                        "load",
                        Status::Error { message: "cannot load".into(), text: "bad.toml:1:1: x".into() },
                        0,
                    )],
                },
            ],
        };
        let xml = report.to_xml();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"netpath\" tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\" time=\"2.750\">\n"), "{xml}");
        let root = read(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert_eq!(root.name, "testsuites");
        let suites: Vec<&Element> = root.all("testsuite").collect();
        assert_eq!(suites.len(), 2);
        let s = suites[0];
        let attrs: Vec<(&str, &str)> = s.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            attrs,
            [
                ("name", "docker-masquerade"),
                ("file", "cases/scenarios/docker-masquerade.toml"),
                ("tests", "3"),
                ("failures", "1"),
                ("errors", "0"),
                ("skipped", "1"),
                ("time", "2.750")
            ]
        );
        let cases: Vec<&Element> = s.all("testcase").collect();
        assert_eq!(cases.len(), 3);
        assert_eq!(cases[0].attr("time"), Some("1.500"));
        assert_eq!(cases[0].attr("classname"), Some("sc"));
        assert!(cases[0].children.is_empty());
        let failure = &cases[1].children[0];
        assert_eq!((failure.name.as_str(), failure.attr("type")), ("failure", Some("expectation")));
        assert_eq!(failure.text, "✗ detail");
        let skip = &cases[2].children[0];
        assert_eq!((skip.name.as_str(), skip.attr("message")), ("skipped", Some("needs conntrack: no")));
        let error = &suites[1].all("testcase").next().unwrap().children[0];
        assert_eq!(
            (error.name.as_str(), error.attr("type"), error.text.as_str()),
            ("error", Some("run"), "bad.toml:1:1: x")
        );
        assert_eq!(suites[1].attr("errors"), Some("1"));
    }

    #[test]
    fn junit_empty_report_is_a_document() {
        let xml = Report::default().to_xml();
        let root = read(&xml).unwrap();
        assert_eq!(root.attr("tests"), Some("0"));
        assert!(root.children.is_empty());
    }

    #[test]
    fn junit_reader_rejects_what_is_not_well_formed() {
        for bad in [
            "<a><b></a></b>",
            "<a>x & y</a>",
            "<a>x < y</a>",
            "<a b=\"1\" b=\"2\"/>",
            "<a b='1'/>",
            "<a>",
            "<a/><b/>",
            "<a>&bogus;</a>",
            "<a>&#0;</a>",
        ] {
            assert!(read(bad).is_err(), "{bad} was accepted");
        }
        assert!(read("<a x=\"&#10;&#x41;\">t&amp;t</a>").is_ok());
    }

    #[test]
    fn junit_time_is_seconds_with_milliseconds() {
        assert_eq!(seconds(Duration::from_micros(1_234_567)), "1.235");
        assert_eq!(seconds(Duration::ZERO), "0.000");
    }

    #[test]
    fn junit_unrun_scenario_has_a_case_per_probe_sharing_the_time() {
        let sc = Scenario::from_toml(
            "name = \"two\"\n[[netns]]\nname = \"a\"\n[[netns]]\nname = \"b\"\n\
             [[veth]]\na = { netns = \"a\", name = \"eth0\", addresses = [\"10.0.0.1/24\"] }\n\
             b = { netns = \"b\", name = \"eth0\", addresses = [\"10.0.0.2/24\"] }\n\
             [[probe]]\nname = \"p1\"\nfrom = \"a\"\nto = \"10.0.0.2\"\n\
             [[probe]]\nname = \"p2\"\nfrom = \"b\"\nto = \"10.0.0.1\"\n",
            std::path::Path::new("two.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let skip = Status::Skipped { message: "needs x: y".into() };
        let cases = unrun_cases(&sc, Backend::Nft, Duration::from_millis(10), skip.clone());
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["p1 [nft]", "p2 [nft]"]);
        assert!(cases.iter().all(|c| c.classname == "two" && c.status == skip && c.time == Duration::from_millis(5)));
    }

    #[test]
    fn junit_probe_times_are_their_own_and_add_up_to_the_run() {
        let ms = Duration::from_millis;
        // A run of 1000.4 ms: probes of 300, 100 and 0.2 ms, 600.2 ms of lab and teardown shared.
        let got = shares(Duration::from_micros(1_000_400), &[ms(300), ms(100), Duration::from_micros(200)]);
        assert_eq!(got, [ms(300 + 200), ms(100 + 200), ms(200)]);
        assert_eq!(got.iter().sum::<Duration>(), ms(1000));
        // What even splits leave over goes to the first ones: 10 ms over 3 probes.
        assert_eq!(shares(ms(10), &[Duration::ZERO; 3]), [ms(4), ms(3), ms(3)]);
        // Probe stages past the total (timed apart): an even split, still adding up.
        assert_eq!(shares(ms(5), &[ms(4), ms(4)]), [ms(3), ms(2)]);
        assert_eq!(shares(ms(5), &[]), Vec::<Duration>::new());

        let probe = |name: &str| crate::engine::ProbeOutcome { name: name.into(), exchanges: vec![], failures: vec![] };
        let o = Outcome {
            scenario: "sc".into(),
            backend: Backend::Legacy,
            probes: vec![probe("slow"), probe("fast")],
            artifacts: None,
            wireguard: None,
            setup: Default::default(),
            frames: vec![],
            timings: crate::timings::Timings(vec![
                crate::timings::Stage { name: "netns".into(), took: ms(50) },
                crate::timings::Stage { name: "probe slow".into(), took: ms(1000) },
                crate::timings::Stage { name: "probe fast".into(), took: ms(10) },
            ]),
        };
        let cases = outcome_cases(&o, ms(1100));
        let times: Vec<Duration> = cases.iter().map(|c| c.time).collect();
        assert_eq!(times, [ms(1045), ms(55)]);
        let xml = Report { suites: vec![Suite { name: "s".into(), file: "f".into(), cases }] }.to_xml();
        let doc = read(&xml).unwrap();
        let case_secs: f64 = doc
            .all("testsuite")
            .flat_map(|s| s.all("testcase"))
            .map(|c| c.attr("time").unwrap().parse::<f64>().unwrap())
            .sum();
        assert_eq!(doc.attr("time"), Some("1.100"), "{xml}");
        assert!((case_secs - 1.1).abs() < 1e-9, "{xml}");
    }
}
