//! Kernel versions and the ranges expectations are keyed by (`kernel = ">=5.15,<6.12"` on a
//! `[[probe.path]]` or `[[probe.addr]]`): where a kernel really takes another path, the scenario
//! says so with a variant per range instead of a looser expectation.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `major.minor.patch` of a release (`6.1.0-57-amd64` is 6.1.0, `6.18.44` is 6.18.44).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub [u32; 3]);

impl std::str::FromStr for KernelVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<KernelVersion, String> {
        let mut v = [0; 3];
        let numbers = s.split(|c: char| !c.is_ascii_digit() && c != '.').next().unwrap_or("");
        let parts: Vec<&str> = numbers.split('.').filter(|p| !p.is_empty()).collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(format!("`{s}` is not a kernel version: give MAJOR.MINOR or MAJOR.MINOR.PATCH (6.1, 5.15.3)"));
        }
        for (slot, p) in v.iter_mut().zip(&parts) {
            *slot = p.parse().map_err(|_| format!("`{s}`: `{p}` is not a number"))?;
        }
        Ok(KernelVersion(v))
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a}.{b}.{c}")
    }
}

/// `uname -r` of the running system: the guest's own when netpath runs in a VM.
pub fn running_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown (uname: {e})"))
}

/// The running kernel's version, which selects the `kernel` variants of expectations; `None`
/// if its release does not parse (then only expectations without `kernel` apply).
pub fn running() -> Option<KernelVersion> {
    static RUNNING: OnceLock<Option<KernelVersion>> = OnceLock::new();
    *RUNNING.get_or_init(|| running_release().parse().ok())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

/// Comma-separated bounds that all must hold: `>=6.1`, `<6.1`, `>=5.10,<6.12`, `=6.12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRange {
    text: String,
    bounds: Vec<(Op, KernelVersion)>,
}

impl KernelRange {
    /// Whether `v` is inside the range.
    pub fn contains(&self, v: KernelVersion) -> bool {
        self.bounds.iter().all(|(op, b)| match op {
            Op::Ge => v >= *b,
            Op::Gt => v > *b,
            Op::Le => v <= *b,
            Op::Lt => v < *b,
            Op::Eq => v == *b,
        })
    }

    /// Whether an expectation with this range (or none) applies on kernel `v` (or an unknown one).
    pub fn applies(range: Option<&KernelRange>, v: Option<KernelVersion>) -> bool {
        match (range, v) {
            (None, _) => true,
            (Some(r), Some(v)) => r.contains(v),
            (Some(_), None) => false,
        }
    }
}

impl std::str::FromStr for KernelRange {
    type Err = String;
    fn from_str(s: &str) -> Result<KernelRange, String> {
        let mut bounds = vec![];
        for part in s.split(',').map(str::trim) {
            let (op, rest) = [(">=", Op::Ge), ("<=", Op::Le), ("==", Op::Eq), (">", Op::Gt), ("<", Op::Lt), ("=", Op::Eq)]
                .into_iter()
                .find_map(|(p, op)| part.strip_prefix(p).map(|r| (op, r.trim())))
                .ok_or_else(|| {
                    format!("kernel range `{s}`: `{part}` needs a comparison: >=, >, <=, < or = before a version (\">=5.10,<6.12\")")
                })?;
            bounds.push((op, rest.parse::<KernelVersion>().map_err(|e| format!("kernel range `{s}`: {e}"))?));
        }
        Ok(KernelRange { text: s.to_string(), bounds })
    }
}

impl fmt::Display for KernelRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for KernelRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KernelRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KernelRange, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KernelVersion {
        s.parse().unwrap()
    }

    #[test]
    fn releases_parse_to_their_version() {
        assert_eq!(v("6.1.0-57-amd64"), KernelVersion([6, 1, 0]));
        assert_eq!(v("6.12.118+deb13-amd64"), KernelVersion([6, 12, 118]));
        assert_eq!(v("6.18.44"), KernelVersion([6, 18, 44]));
        assert_eq!(v("5.10"), KernelVersion([5, 10, 0]));
        assert!("amd64".parse::<KernelVersion>().is_err());
    }

    #[test]
    fn ranges_hold_by_their_bounds() {
        let r: KernelRange = ">=5.10,<6.12".parse().unwrap();
        assert!(r.contains(v("5.10.0-46-amd64")) && r.contains(v("6.1.0-57-amd64")));
        assert!(!r.contains(v("6.12.118+deb13-amd64")) && !r.contains(v("5.4.0")));
        let below: KernelRange = "<6.1".parse().unwrap();
        assert!(below.contains(v("6.0.19")) && !below.contains(v("6.1.0")));
        assert!("=6.12".parse::<KernelRange>().unwrap().contains(v("6.12.0")));
        assert!(KernelRange::applies(None, None));
        assert!(!KernelRange::applies(Some(&below), None));
    }

    #[test]
    fn bad_ranges_say_what_is_expected() {
        let e = "6.1".parse::<KernelRange>().unwrap_err();
        assert!(e.contains("needs a comparison"), "{e}");
        let e = ">=six".parse::<KernelRange>().unwrap_err();
        assert!(e.contains("not a kernel version"), "{e}");
    }
}
