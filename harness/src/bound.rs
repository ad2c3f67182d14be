//! A bound on the whole run, so that a runaway (1,000 packets × 60 s to a silent address is
//! about 17 hours) ends in an error that says where the run was and how to allow more, never in
//! a hang.
//!
//! The bound is `--max-duration` ([`crate::RunOptions::max_duration`], `NETPATH_MAX_DURATION`),
//! or else derived from the scenario: its worst case (every probe packet waiting its whole
//! `timeout_ms`, every step its whole `timeout_ms`, plus [`SETUP_ALLOWANCE`] for building and
//! tearing down the lab), capped at [`DEFAULT_CAP`]. It is enforced where time is spent: each
//! probe packet's wait and each step's deadline are capped by the time left, and the engine
//! checks it between stages (each tool and netlink request there has its own deadline). Once
//! past it the run stops with [`Error::RunBound`]; the teardown (steps included) still runs.
//!
//! Not counted: the wait for the kernel-log lock, which is other runs' time
//! ([`RunBound::excluding`]).

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::lab::step::Phase;
use crate::scenario::Scenario;

/// What building, observing and tearing down a lab may take on top of the probes and steps:
/// generous, as a bound for runaways should be (a QEMU guest under TCG is slow).
pub const SETUP_ALLOWANCE: Duration = Duration::from_secs(120);

/// The most a derived bound allows: a scenario whose worst case is longer needs
/// `--max-duration` to run that long.
pub const DEFAULT_CAP: Duration = Duration::from_secs(600);

/// The environment variable that sets the bound where `--max-duration` is not given.
pub const ENV: &str = "NETPATH_MAX_DURATION";

/// The longest a scenario may take: the sum of its parts, each named for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorstCase {
    /// `probe NAME: 1000 × 60 s`, `step NAME: 30 s`, `setup allowance: 2 min`, longest first.
    pub parts: Vec<(String, Duration)>,
}

impl WorstCase {
    /// The worst case of `sc`: every probe packet and every step (but the teardown's, which
    /// run after the bound) waiting out its timeout.
    pub fn of(sc: &Scenario) -> WorstCase {
        let mut parts: Vec<(String, Duration)> = sc
            .probe
            .iter()
            .map(|p| {
                let each = Duration::from_millis(p.timeout_ms);
                (format!("probe {}: {} × {}", p.name, p.count, Human(each)), each * u32::from(p.count))
            })
            .collect();
        parts.extend(
            sc.step.iter().filter(|s| s.phase != Phase::Teardown).map(|s| (format!("step {}", s.name), s.deadline())),
        );
        parts.push(("setup allowance".into(), SETUP_ALLOWANCE));
        parts.sort_by_key(|p| std::cmp::Reverse(p.1));
        WorstCase { parts }
    }

    /// The whole worst case.
    pub fn total(&self) -> Duration {
        self.parts.iter().map(|(_, d)| *d).sum()
    }
}

impl fmt::Display for WorstCase {
    /// `16 h 42 min (probe silent: 1000 × 1 min, setup allowance: 2 min)`: the three longest parts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .parts
            .iter()
            .take(3)
            .map(|(what, d)| if what.starts_with("probe ") { what.clone() } else { format!("{what}: {}", Human(*d)) })
            .collect();
        let more = if self.parts.len() > 3 { ", ..." } else { "" };
        write!(f, "{} ({}{more})", Human(self.total()), shown.join(", "))
    }
}

/// The bound of one run and where the run is.
#[derive(Debug)]
pub struct RunBound {
    started: Instant,
    limit: Duration,
    /// Given by the user (`--max-duration`), not derived.
    given: bool,
    worst: WorstCase,
    /// Time not counted (waiting for other runs).
    excluded: Mutex<Duration>,
    /// Where the run is: `probe NAME, packet 37 of 1000`, `step NAME`, `building the lab`.
    at: Mutex<String>,
}

impl RunBound {
    /// The bound of a run of `sc` starting now: `max` if given, else the worst case capped at
    /// [`DEFAULT_CAP`].
    pub fn new(sc: &Scenario, max: Option<Duration>) -> RunBound {
        let worst = WorstCase::of(sc);
        let limit = max.unwrap_or_else(|| worst.total().min(DEFAULT_CAP));
        RunBound {
            started: Instant::now(),
            limit,
            given: max.is_some(),
            worst,
            excluded: Mutex::new(Duration::ZERO),
            at: Mutex::new("the start".into()),
        }
    }

    /// The bound itself.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The time left before the bound.
    pub fn remaining(&self) -> Duration {
        let excluded = *self.excluded.lock().unwrap_or_else(|e| e.into_inner());
        (self.limit + excluded).saturating_sub(self.started.elapsed())
    }

    /// `timeout`, or the time left if that is shorter.
    pub fn cap(&self, timeout: Duration) -> Duration {
        timeout.min(self.remaining())
    }

    /// Record that the run is now at `what` (for the error), and fail if the bound is past.
    pub fn at(&self, what: impl Into<String>) -> Result<(), Error> {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = what.into();
        self.check()
    }

    /// Fail if the bound is past.
    pub fn check(&self) -> Result<(), Error> {
        if self.remaining().is_zero() { Err(self.exceeded()) } else { Ok(()) }
    }

    /// Run `f` without counting its time (a wait for other runs).
    pub fn excluding<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        *self.excluded.lock().unwrap_or_else(|e| e.into_inner()) += start.elapsed();
        out
    }

    /// The error of a run past its bound, where it was.
    pub fn exceeded(&self) -> Error {
        let at = self.at.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let worst = &self.worst;
        let why = if self.given {
            format!("its worst case is {worst}")
        } else if worst.total() > self.limit {
            format!("the default bound is the scenario's worst case, {worst}, capped at {}", Human(DEFAULT_CAP))
        } else {
            format!("the default bound is the scenario's worst case, {worst}")
        };
        Error::RunBound { limit: Human(self.limit).to_string(), at, why }
    }
}

/// A duration as a person reads it: `350 ms`, `42 s`, `10 min`, `16 h 40 min`.
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let s = d.as_secs();
        match s {
            0 => write!(f, "{} ms", d.as_millis()),
            1..120 if d.subsec_millis() != 0 => write!(f, "{:.1} s", d.as_secs_f64()),
            1..120 => write!(f, "{s} s"),
            120..7200 if !s.is_multiple_of(60) => write!(f, "{} min {} s", s / 60, s % 60),
            120..7200 => write!(f, "{} min", s / 60),
            _ if !(s / 60).is_multiple_of(60) => write!(f, "{} h {} min", s / 3600, (s / 60) % 60),
            _ => write!(f, "{} h", s / 3600),
        }
    }
}

/// `90s`, `10m`, `10min`, `1h`, `500ms`, or seconds alone (`90`): what `--max-duration` and
/// `NETPATH_MAX_DURATION` take.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || format!("`{text}` is not a duration: write a number and a unit, as 90s, 10m, 1h or 500ms");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(format!("`{text}`: a run needs more than no time"));
    }
    Ok(d)
}

/// The bound `NETPATH_MAX_DURATION` sets, if it is set; `Err` names the variable and what is
/// wrong with its value.
pub fn from_env() -> Result<Option<Duration>, String> {
    match std::env::var(ENV) {
        Ok(v) => parse_duration(&v).map(Some).map_err(|e| format!("{ENV}: {e}")),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(format!("{ENV}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::step::StepSpec;
    use std::path::Path;

    fn scenario(count: u16, timeout_ms: u64) -> Scenario {
        let mut sc = Scenario::from_toml(
            r#"
name = "silent"
[[netns]]
name = "a"
[[netns]]
name = "b"
[[veth]]
a = { netns = "a", name = "eth0", addresses = ["10.9.0.1/24"] }
b = { netns = "b", name = "eth0", addresses = ["10.9.0.2/24"] }
[[probe]]
name = "silent"
from = "a"
to = "10.9.0.9"
"#,
            Path::new("silent.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        sc.probe[0].count = count;
        sc.probe[0].timeout_ms = timeout_ms;
        sc
    }

    #[test]
    fn the_default_is_the_worst_case_capped() {
        let mut sc = scenario(1000, 60_000);
        let mut teardown = StepSpec::new("del", "a", "true", &[]);
        teardown.phase = Phase::Teardown;
        sc.step = vec![StepSpec::new("add", "a", "true", &[]), teardown];
        let worst = WorstCase::of(&sc);
        match crate::lab::step::slowdown().unwrap_or(1) {
            1 => {
                assert_eq!(worst.total(), Duration::from_secs(60_000 + 30 + 120));
                assert_eq!(
                    worst.to_string(),
                    "16 h 42 min (probe silent: 1000 × 60 s, setup allowance: 2 min, step add: 30 s)"
                );
            }
            // NETPATH_SLOWDOWN (10 in a TCG guest) stretches a step's deadline, and the bound with it.
            slow => assert_eq!(worst.total(), Duration::from_secs(60_000 + 30 * u64::from(slow) + 120)),
        }
        assert_eq!(RunBound::new(&sc, None).limit(), DEFAULT_CAP);
        assert_eq!(RunBound::new(&scenario(2, 1000), None).limit(), Duration::from_secs(122));
        assert_eq!(RunBound::new(&sc, Some(Duration::from_secs(3))).limit(), Duration::from_secs(3));
    }

    #[test]
    fn past_the_bound_the_error_says_where_why_and_what_to_do() {
        let sc = scenario(1000, 60_000);
        let b = RunBound::new(&sc, Some(Duration::from_millis(30)));
        assert!(b.at("probe silent, packet 1 of 1000").is_ok());
        assert!(b.cap(Duration::from_secs(60)) <= Duration::from_millis(30));
        assert_eq!(b.cap(Duration::from_micros(1)), Duration::from_micros(1));
        // Time not counted moves the bound.
        b.excluding(|| std::thread::sleep(Duration::from_millis(40)));
        assert!(b.check().is_ok());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.cap(Duration::from_secs(60)), Duration::ZERO);
        let e = b.at("probe silent, packet 2 of 1000").unwrap_err().to_string();
        assert_eq!(
            e,
            "run exceeded its 30 ms bound during probe silent, packet 2 of 1000: its worst case is 16 h 42 min \
             (probe silent: 1000 × 60 s, setup allowance: 2 min); raise --max-duration (or NETPATH_MAX_DURATION) \
             or lower the probes' count or timeout_ms"
        );
        let derived = RunBound::new(&sc, None).exceeded().to_string();
        assert!(derived.contains("its 10 min bound during the start: the default bound is the scenario's worst case, 16 h 42 min (probe silent: 1000 × 60 s, setup allowance: 2 min), capped at 10 min; raise"), "{derived}");
    }

    #[test]
    fn durations_parse_and_print() {
        for (text, secs) in [("90s", 90), ("90", 90), ("10m", 600), ("10min", 600), ("1h", 3600), (" 2s ", 2)] {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "s", "1.5h", "-3s", "10 parsecs", "0"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let h = |s: u64| Human(Duration::from_secs(s)).to_string();
        assert_eq!(
            (h(0), h(42), h(600), h(630), h(60_000), h(7200)),
            ("0 ms".into(), "42 s".into(), "10 min".into(), "10 min 30 s".into(), "16 h 40 min".into(), "2 h".into())
        );
        assert_eq!(Human(Duration::from_millis(1500)).to_string(), "1.5 s");
    }
}
