//! Where one run spent its time, stage by stage: what `netpath run --timings` prints and the
//! artifacts' `outcome.json` holds, so a user sees whether a slow scenario waits on probes,
//! rules or the kernel's teardown of its namespaces.

use std::fmt;
use std::time::{Duration, Instant};

/// One stage of a run and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stage {
    /// `netns`, `links`, `rules`, `observers`, `probe NAME`, `drain`, `verdict`, `teardown`, ...
    pub name: String,
    /// How long it took.
    #[serde(rename = "ms", serialize_with = "millis")]
    pub took: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// The stages of a run in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Timings(pub Vec<Stage>);

impl Timings {
    /// The whole run: the sum of its stages.
    pub fn total(&self) -> Duration {
        self.0.iter().map(|s| s.took).sum()
    }

    /// How long the stage called `name` took, if it ran.
    pub fn get(&self, name: &str) -> Option<Duration> {
        self.0.iter().find(|s| s.name == name).map(|s| s.took)
    }
}

impl fmt::Display for Timings {
    /// `    timings: netns 2.1 ms, links 3.0 ms, ..., total 310.2 ms`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "    timings:")?;
        for s in &self.0 {
            write!(f, " {} {},", s.name, Ms(s.took))?;
        }
        write!(f, " total {}", Ms(self.total()))
    }
}

struct Ms(Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} ms", self.0.as_secs_f64() * 1e3)
    }
}

/// Times consecutive stages: each `lap` ends the stage under way and names it.
#[derive(Debug)]
pub struct Stopwatch {
    since: Instant,
    timings: Timings,
}

impl Default for Stopwatch {
    fn default() -> Self {
        Stopwatch { since: Instant::now(), timings: Timings::default() }
    }
}

impl Stopwatch {
    /// End the stage that began at the previous lap (or at the start) and call it `name`.
    pub fn lap(&mut self, name: impl Into<String>) {
        let now = Instant::now();
        self.timings.0.push(Stage { name: name.into(), took: now - self.since });
        self.since = now;
    }

    /// The stages so far.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// The stages timed so far.
    pub fn finish(self) -> Timings {
        self.timings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_sum_to_total_and_print_in_order() {
        let t = Timings(vec![
            Stage { name: "netns".into(), took: Duration::from_micros(2100) },
            Stage { name: "probe c1-to-ext".into(), took: Duration::from_micros(12_345) },
        ]);
        assert_eq!(t.total(), Duration::from_micros(14_445));
        assert_eq!(t.to_string(), "    timings: netns 2.1 ms, probe c1-to-ext 12.3 ms, total 14.4 ms");
        assert_eq!(t.get("netns"), Some(Duration::from_micros(2100)));
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"[{"name":"netns","ms":2.1},{"name":"probe c1-to-ext","ms":12.345}]"#
        );
    }

    #[test]
    fn laps_name_the_stage_that_ended() {
        let mut w = Stopwatch::default();
        w.lap("a");
        w.lap("b");
        let names: Vec<&str> = w.timings().0.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
