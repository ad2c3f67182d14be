//! Setup steps: the user's own programs (a CNI plugin, netavark, a VPN gateway's script, `nfacct
//! add`) run inside a lab netns at a given phase of the run, so a scenario tests the tool rather
//! than a pasted copy of what it wrote.
//!
//! A step is a program and its arguments, never a shell unless the user writes `sh -c`; its
//! arguments, environment and stdin may name the lab with placeholders ([`expand`]). Each runs
//! under a deadline as PID 1 of a PID namespace of its own ([`crate::contain`]): everything it
//! starts is killed when it exits, at its deadline and when netpath dies, so a step can neither
//! hang the run nor leave a process behind after its lab is gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bound::RunBound;
use crate::error::{Error, Result};
use crate::lab::Lab;
use crate::scenario::Scenario;
use crate::tool;

/// When a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// After the topology (namespaces, links, addresses, routes), before the sysctls and rules.
    #[default]
    BeforeRules,
    /// After the scenario's rules and netpath's trace rules, before any probe.
    AfterRules,
    /// When the run ends, passed or failed, before the namespaces are removed.
    Teardown,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::BeforeRules => "before-rules",
            Phase::AfterRules => "after-rules",
            Phase::Teardown => "teardown",
        }
    }
}

fn is_default_phase(p: &Phase) -> bool {
    *p == Phase::BeforeRules
}

/// One `[[step]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// How errors and artifacts name it.
    pub name: String,
    /// The lab netns it runs in (never the init netns).
    pub netns: String,
    pub program: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Set on top of netpath's own environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Text written to its stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// A file whose text is written to its stdin; a relative path is relative to the scenario
    /// file's folder (the loader makes it absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_file: Option<PathBuf>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default, skip_serializing_if = "is_default_phase")]
    pub phase: Phase,
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// The longest a step may run: ten minutes.
pub const MAX_TIMEOUT_MS: u64 = 600_000;

/// How many times slower than real hardware the machine runs: `NETPATH_SLOWDOWN` (1 to 50,
/// default 1), which `netpath-vm` sets in a guest emulated by QEMU's TCG. It multiplies each
/// step's deadline, never an expectation: a CNI plugin that takes 3 s on the host takes
/// longer than its 30 s `timeout_ms` in a TCG guest sharing two cores with another.
pub fn slowdown() -> std::result::Result<u32, String> {
    parse_slowdown(std::env::var_os("NETPATH_SLOWDOWN").map(|v| v.to_string_lossy().into_owned()).as_deref())
}

fn parse_slowdown(v: Option<&str>) -> std::result::Result<u32, String> {
    let Some(v) = v else { return Ok(1) };
    match v.trim().parse::<u32>() {
        Ok(n @ 1..=50) => Ok(n),
        _ => Err(format!("NETPATH_SLOWDOWN={v} is not a whole number from 1 to 50 (how many times slower steps run)")),
    }
}

impl StepSpec {
    /// Its deadline: `timeout_ms` times [`slowdown`] (1 where the variable is invalid: the step
    /// itself then fails saying so).
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.timeout_ms) * slowdown().unwrap_or(1)
    }

    /// A step with the file format's defaults.
    pub fn new(name: &str, netns: &str, program: &str, args: &[&str]) -> StepSpec {
        StepSpec {
            name: name.into(),
            netns: netns.into(),
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: BTreeMap::new(),
            stdin: None,
            stdin_file: None,
            timeout_ms: default_timeout_ms(),
            phase: Phase::BeforeRules,
        }
    }
}

/// What a placeholder stands for in one run.
pub struct Context<'a> {
    /// The lab netns's path under /run/netns, by scenario name.
    pub netns_path: &'a dyn Fn(&str) -> Option<PathBuf>,
    pub run_dir: &'a Path,
    pub run_id: &'a str,
}

/// One `{...}` of a text: `{netns:c1}`, `{run_dir}`, `{run_id}`; `{{` is a literal `{`. A `{`
/// that does not start a lowercase word followed by `}` or `:` (JSON's `{"a": 1}`, a shell's
/// `${VAR}` or `{ cmd; }`) is text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'t> {
    Text(&'t str),
    Placeholder { name: &'t str, arg: Option<&'t str>, whole: &'t str },
}

fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = vec![];
    let mut start_text = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'{') {
            out.push(Piece::Text(&text[start_text..=i]));
            i += 2;
            start_text = i;
            continue;
        }
        let after_dollar = i > 0 && bytes[i - 1] == b'$';
        let word_end = text[i + 1..].find(|c: char| !(c.is_ascii_lowercase() || c == '_')).map(|n| i + 1 + n);
        let placeholder = match word_end {
            Some(e) if e > i + 1 && !after_dollar => match bytes[e] {
                b'}' => Some((e + 1, &text[i + 1..e], None)),
                b':' => text[e + 1..].find('}').map(|n| (e + 2 + n, &text[i + 1..e], Some(&text[e + 1..e + 1 + n]))),
                _ => None,
            },
            _ => None,
        };
        match placeholder {
            Some((end, name, arg)) => {
                if start_text < i {
                    out.push(Piece::Text(&text[start_text..i]));
                }
                out.push(Piece::Placeholder { name, arg, whole: &text[i..end] });
                i = end;
                start_text = end;
            }
            None => i += 1,
        }
    }
    if start_text < text.len() {
        out.push(Piece::Text(&text[start_text..]));
    }
    out
}

const KNOWN: &str = "{netns:NAME}, {run_dir}, {run_id}";

/// What is wrong with the placeholders of `text`, given the scenario's netns names.
fn placeholder_problems(text: &str, netns: &[&str]) -> Vec<String> {
    let mut out = vec![];
    for p in pieces(text) {
        let Piece::Placeholder { name, arg, whole } = p else { continue };
        match (name, arg) {
            ("netns", Some(n)) if netns.contains(&n) => {}
            ("netns", Some(n)) => {
                out.push(format!("`{whole}`: netns `{n}` is not declared (have: {})", netns.join(", ")));
            }
            ("run_dir" | "run_id", None) => {}
            _ => out.push(format!("unknown placeholder `{whole}` (known: {KNOWN}; write `{{{{` for a literal `{{`)")),
        }
    }
    out
}

/// `text` with its placeholders replaced; `Err` names an unknown one (the loader reports those
/// first, so only a Rust-built scenario meets this).
pub fn expand(text: &str, cx: &Context<'_>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for p in pieces(text) {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Placeholder { name: "netns", arg: Some(n), whole } => match (cx.netns_path)(n) {
                Some(path) => out.push_str(&path.to_string_lossy()),
                None => return Err(format!("`{whole}`: no netns `{n}` in this lab")),
            },
            Piece::Placeholder { name: "run_dir", arg: None, .. } => out.push_str(&cx.run_dir.to_string_lossy()),
            Piece::Placeholder { name: "run_id", arg: None, .. } => out.push_str(cx.run_id),
            Piece::Placeholder { whole, .. } => return Err(format!("unknown placeholder `{whole}` (known: {KNOWN})")),
        }
    }
    Ok(out)
}

/// The problems of the scenario's steps, as `(item, message)` for [`Scenario::problems`].
pub fn problems(sc: &Scenario) -> Vec<(String, String)> {
    let mut netns: Vec<&str> = sc.netns.iter().map(|n| n.name.as_str()).collect();
    netns.sort_unstable();
    let mut out: Vec<(String, String)> = vec![];
    let mut add = |item: String, message: String| out.push((item, message));
    for (i, s) in sc.step.iter().enumerate() {
        let item = |field: &str| format!("step[{i}].{field}");
        if let Some(why) = crate::scenario::name_problem("step", &s.name) {
            add(item("name"), why);
        } else if let Some(j) = sc.step[..i].iter().position(|o| o.name == s.name) {
            add(item("name"), format!("step `{}` is declared twice (first as step[{j}])", s.name));
        }
        if !netns.contains(&s.netns.as_str()) {
            let have = if netns.is_empty() { "no [[netns]] is declared".into() } else { netns.join(", ") };
            add(
                item("netns"),
                format!("netns `{}` is not declared (have: {have}); a step never runs in the init netns", s.netns),
            );
        }
        if s.program.trim().is_empty() {
            add(
                item("program"),
                "the program is empty: name an executable (`sh` with args [\"-c\", ...] for a script)".into(),
            );
        }
        let mut texts: Vec<(String, &str)> = vec![(item("program"), &s.program)];
        texts.extend(s.args.iter().enumerate().map(|(k, a)| (item(&format!("args[{k}]")), a.as_str())));
        texts.extend(s.env.iter().map(|(k, v)| (item(&format!("env.{k}")), v.as_str())));
        if let Some(t) = &s.stdin {
            texts.push((item("stdin"), t));
        }
        for (it, text) in texts {
            for m in placeholder_problems(text, &netns) {
                add(it.clone(), m);
            }
        }
        for k in s.env.keys() {
            if k.is_empty() || k.contains('=') || k.chars().any(char::is_control) {
                let k = crate::scenario::printable(k);
                add(item(&format!("env.{k}")), format!("`{k}` is not an environment variable name"));
            }
        }
        if s.stdin.is_some() && s.stdin_file.is_some() {
            add(item("stdin_file"), "give stdin or stdin_file, not both".into());
        }
        if let Some(f) = &s.stdin_file
            && let Some(why) = crate::scenario::input::file_problem(f)
        {
            add(item("stdin_file"), format!("{}: {why}", f.display()));
        }
        if s.timeout_ms == 0 || s.timeout_ms > MAX_TIMEOUT_MS {
            add(
                item("timeout_ms"),
                format!("timeout_ms {} is outside 1 to {MAX_TIMEOUT_MS} (ten minutes)", s.timeout_ms),
            );
        }
    }
    out
}

/// Make relative `stdin_file` paths relative to the folder of the scenario file `origin`.
pub fn resolve_files(sc: &mut Scenario, origin: &Path) {
    let dir = origin.parent().unwrap_or(Path::new(""));
    for s in &mut sc.step {
        if let Some(f) = &s.stdin_file
            && f.is_relative()
        {
            s.stdin_file = Some(dir.join(f));
        }
    }
}

/// What one step did, for the artifacts and for tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    pub name: String,
    pub netns: String,
    pub phase: Phase,
    /// The command line after expansion, as a user would type it.
    pub command: String,
    /// The exit code; `None` when it was killed (at the deadline, or by a signal).
    pub exit: Option<i32>,
    /// `exit status: 1`, `killed after 2s without finishing`.
    pub status: String,
    pub millis: u128,
    pub stdout: String,
    pub stderr: String,
    /// Why `stdout`/`stderr` may lack an end: a pipe something outside the step still held after
    /// it exited, output past [`tool::MAX_OUTPUT`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
}

/// The steps of one run and the private folder `{run_dir}` stands for; the folder is removed
/// when this is dropped (after the teardown steps, also after a failure or a panic).
pub struct Steps {
    run_dir: PathBuf,
    pub records: Vec<StepRecord>,
}

/// How many bytes of each of a failed step's stdout and stderr its error shows.
const STDERR_TAIL: usize = 1500;

impl Steps {
    /// Make the run's private folder (`$TMPDIR/netpath-run-<run id>`, mode 0700).
    pub fn new(lab: &Lab) -> Result<Steps> {
        use std::os::unix::fs::DirBuilderExt;
        let run_dir = crate::lab::sweep::RunFolder::Steps.path(lab.run_id());
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&run_dir)
            .map_err(|e| Error::io(format!("create the run folder {}", run_dir.display()), e))?;
        Ok(Steps { run_dir, records: vec![] })
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Run the steps of `phase` in order, none past the run's `bound`; the first that fails
    /// stops the phase with its error.
    pub fn run_phase(&mut self, lab: &Lab, sc: &Scenario, phase: Phase, bound: &RunBound) -> Result<()> {
        for s in sc.step.iter().filter(|s| s.phase == phase) {
            self.run_one(lab, s, Some(bound))?;
        }
        Ok(())
    }

    /// Run every teardown step, also after one failed (each undoes its own part), and report
    /// all that failed.
    pub fn teardown(&mut self, lab: &Lab, sc: &Scenario) -> Result<()> {
        // Not bounded by the run's bound: each undoes what the run made, past its bound or not.
        let teardown = sc.step.iter().filter(|s| s.phase == Phase::Teardown);
        let errors: Vec<Error> = teardown.filter_map(|s| self.run_one(lab, s, None).err()).collect();
        match <[Error; 1]>::try_from(errors) {
            Ok([e]) => Err(e),
            Err(errors) if errors.is_empty() => Ok(()),
            Err(errors) => Err(Error::Many(errors)),
        }
    }

    fn run_one(&mut self, lab: &Lab, s: &StepSpec, bound: Option<&RunBound>) -> Result<()> {
        let fail = |status: String, command: &str, stdout: &str, stderr: &str| Error::Step {
            step: s.name.clone(),
            netns: s.netns.clone(),
            command: command.to_string(),
            outcome: outcome(status, stdout, stderr),
        };
        let netns_path = |n: &str| lab.netns(n).ok().map(|ns| ns.path().to_path_buf());
        let cx = Context { netns_path: &netns_path, run_dir: &self.run_dir, run_id: lab.run_id() };
        let ex = |t: &str| expand(t, &cx).map_err(|m| fail(m, &s.program, "", ""));
        let program = ex(&s.program)?;
        let args = s.args.iter().map(|a| ex(a)).collect::<Result<Vec<_>>>()?;
        let command = command_line(&program, &args);
        let stdin = match (&s.stdin, &s.stdin_file) {
            (Some(t), _) => Some(ex(t)?),
            (None, Some(f)) => {
                let text = crate::scenario::input::read_text(f, false)
                    .map_err(|e| fail(format!("cannot read stdin_file {}: {e}", f.display()), &command, "", ""))?;
                Some(ex(&text)?)
            }
            (None, None) => None,
        };
        let ns = lab.netns(&s.netns).map_err(|_| {
            fail(
                format!("netns `{}` is not in this lab (a step never runs in the init netns)", s.netns),
                &command,
                "",
                "",
            )
        })?;
        let mut cmd = ns.command(&program);
        cmd.args(&args);
        for (k, v) in &s.env {
            cmd.env(k, ex(v)?);
        }
        let slow = slowdown().map_err(|e| fail(e, &command, "", ""))?;
        let own = s.deadline();
        let timeout = match bound {
            Some(b) => {
                b.at(format!("step {}", s.name))?;
                b.cap(own)
            }
            None => own,
        };
        let started = Instant::now();
        let ran = tool::run_contained(cmd, stdin.as_deref(), timeout);
        let mut record = StepRecord {
            name: s.name.clone(),
            netns: s.netns.clone(),
            phase: s.phase,
            command: command.clone(),
            exit: None,
            status: String::new(),
            millis: started.elapsed().as_millis(),
            stdout: String::new(),
            stderr: String::new(),
            incomplete: vec![],
        };
        let result = match ran {
            Ok(out) => {
                record.exit = out.status.code();
                record.status = out.status.to_string();
                record.stdout = out.stdout;
                record.stderr = out.stderr;
                record.incomplete = out.incomplete;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(fail(record.status.clone(), &command, &record.stdout, &record.stderr))
                }
            }
            Err(tool::Failure::TimedOut { after, stdout, stderr }) => {
                record.stdout = stdout;
                record.stderr = stderr;
                match bound {
                    Some(b) if timeout < own => {
                        record.status = format!("killed after {after:?} without finishing: the run reached its bound");
                        Err(b.exceeded())
                    }
                    _ => {
                        let scaled = if slow > 1 { format!(", ×{slow} by NETPATH_SLOWDOWN") } else { String::new() };
                        record.status =
                            format!("killed after {after:?} without finishing (timeout_ms = {}{scaled})", s.timeout_ms);
                        Err(fail(record.status.clone(), &command, &record.stdout, &record.stderr))
                    }
                }
            }
            Err(tool::Failure::Spawn(e)) => {
                record.status = format!("could not start: {e}");
                Err(fail(record.status.clone(), &command, "", ""))
            }
            Err(tool::Failure::Wait(e)) => {
                record.status = format!("could not be waited for: {e}");
                Err(fail(record.status.clone(), &command, "", ""))
            }
        };
        self.records.push(record);
        result
    }

    /// Write each step's output into the artifact folder `dir`: `steps.json`, and per step
    /// `step-N-NAME.stdout` / `.stderr`.
    pub fn write_artifacts(&self, dir: &Path) -> Result<()> {
        let put = |name: String, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| Error::io(format!("write {}", p.display()), e))
        };
        put("steps.json".into(), &serde_json::to_string_pretty(&self.records).unwrap_or_default())?;
        for (i, r) in self.records.iter().enumerate() {
            let stem: String =
                r.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
            put(format!("step-{i}-{stem}.stdout"), &r.stdout)?;
            put(format!("step-{i}-{stem}.stderr"), &r.stderr)?;
        }
        Ok(())
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// `PROGRAM ARG...`, with the arguments a shell would split quoted.
fn command_line(program: &str, args: &[String]) -> String {
    let quote = |a: &str| {
        if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
            a.to_string()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    std::iter::once(quote(program)).chain(args.iter().map(|a| quote(a))).collect::<Vec<_>>().join(" ")
}

/// A failed step's outcome: its `status`, then the tails of its stdout and its stderr, each that
/// is not empty (netavark and CNI plugins write their errors on stdout, as JSON).
fn outcome(status: String, stdout: &str, stderr: &str) -> String {
    let mut out = status;
    for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
        let t = tail(text);
        if !t.is_empty() {
            out.push_str(&format!("\nits {name} ends:\n{t}"));
        }
    }
    out
}

/// The last [`STDERR_TAIL`] bytes of a stderr, cut at a line start where one is near.
fn tail(stderr: &str) -> String {
    let s = stderr.trim_end();
    if s.len() <= STDERR_TAIL {
        return s.to_string();
    }
    let mut start = s.len() - STDERR_TAIL;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    let cut = s[start..].find('\n').map_or(start, |n| start + n + 1);
    format!("...{}", &s[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowdown_is_a_bounded_whole_number() {
        assert_eq!(parse_slowdown(None), Ok(1));
        assert_eq!(parse_slowdown(Some("10")), Ok(10));
        for bad in ["0", "51", "2.5", "fast", ""] {
            let e = parse_slowdown(Some(bad)).unwrap_err();
            assert!(e.starts_with(&format!("NETPATH_SLOWDOWN={bad} is not a whole number from 1 to 50")), "{e}");
        }
    }

    fn cx_expand(text: &str) -> std::result::Result<String, String> {
        let paths = |n: &str| (n == "c1").then(|| PathBuf::from("/run/netns/netpath-1x2-c1"));
        let cx = Context { netns_path: &paths, run_dir: Path::new("/tmp/netpath-run-1x2"), run_id: "1x2" };
        expand(text, &cx)
    }

    #[test]
    fn placeholders_expand_and_json_and_shell_braces_stay() {
        assert_eq!(cx_expand("CNI_NETNS={netns:c1}").unwrap(), "CNI_NETNS=/run/netns/netpath-1x2-c1");
        assert_eq!(cx_expand("{run_dir}/ipam-{run_id}").unwrap(), "/tmp/netpath-run-1x2/ipam-1x2");
        let json = r#"{"cniVersion":"1.0.0","ipam":{"dataDir":"{run_dir}"}, "x": {}}"#;
        assert_eq!(
            cx_expand(json).unwrap(),
            r#"{"cniVersion":"1.0.0","ipam":{"dataDir":"/tmp/netpath-run-1x2"}, "x": {}}"#
        );
        assert_eq!(cx_expand("echo ${res} { true; }").unwrap(), "echo ${res} { true; }");
        assert_eq!(cx_expand("awk '{{print}'").unwrap(), "awk '{print}'");
        assert!(cx_expand("{netns:c9}").unwrap_err().contains("no netns `c9`"));
        assert!(cx_expand("{rundir}").unwrap_err().contains("unknown placeholder `{rundir}`"));
    }

    #[test]
    fn placeholder_problems_name_the_placeholder() {
        assert_eq!(placeholder_problems("{netns:c1} {run_id}", &["c1"]), Vec::<String>::new());
        assert_eq!(
            placeholder_problems("{netns:c2}", &["c1"]),
            ["`{netns:c2}`: netns `c2` is not declared (have: c1)"]
        );
        assert!(placeholder_problems("{run_dir:x}", &["c1"])[0].starts_with("unknown placeholder `{run_dir:x}`"));
    }

    #[test]
    fn steps_load_resolve_their_stdin_file_and_round_trip() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/scenarios/cni-bridge-portmap.toml");
        let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let add = &sc.step[0];
        assert_eq!((add.name.as_str(), add.netns.as_str(), add.phase), ("cni-add", "host", Phase::BeforeRules));
        assert_eq!(add.env["CNI_NETNS"], "{netns:c1}");
        let file = add.stdin_file.as_ref().unwrap();
        assert!(file.is_absolute() && file.is_file(), "{}", file.display());
        assert_eq!(sc.step[1].phase, Phase::Teardown);
        // Written out, its stdin_file is absolute: still in the folder of the file it is read as.
        let again = Scenario::from_toml(&sc.to_toml(), &path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, sc);
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let args = ["-c".to_string(), "echo 'hi' there".to_string()];
        assert_eq!(command_line("sh", &args), r"sh -c 'echo '\''hi'\'' there'");
        assert_eq!(command_line("/usr/lib/cni/bridge", &[]), "/usr/lib/cni/bridge");
    }

    #[test]
    fn stderr_tails_keep_the_end() {
        let long = (0..1000).map(|i| format!("line {i}\n")).collect::<String>();
        let t = tail(&long);
        assert!(t.starts_with("...line ") && t.ends_with("line 999"), "{t}");
        assert!(t.len() <= STDERR_TAIL + 3);
        assert_eq!(tail("short\n"), "short");
    }

    #[test]
    fn a_failed_steps_outcome_shows_both_tails() {
        let netavark = r#"{"error":"IO error: aardvark-dns failed to start"}"#;
        assert_eq!(
            outcome("exit status: 1".into(), netavark, "warning: x\n"),
            format!("exit status: 1\nits stdout ends:\n{netavark}\nits stderr ends:\nwarning: x")
        );
        assert_eq!(outcome("exit status: 1".into(), "", "oops"), "exit status: 1\nits stderr ends:\noops");
        assert_eq!(outcome("exit status: 2".into(), "", ""), "exit status: 2");
    }
}
