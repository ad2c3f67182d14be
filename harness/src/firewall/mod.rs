//! Firewall rules inside a netns: one trait per concern, a file per backend (as netavark's
//! `firewall/{mod,iptables,nft}.rs`).

pub mod ebtables;
pub mod iptables;
pub mod nft;

use std::io::Write;
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::netns::Netns;

/// Which iptables implementation applies an `iptables-save` ruleset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// x_tables through `iptables-legacy-restore`; TRACE through nf_log.
    #[default]
    Legacy,
    /// nf_tables through `iptables-nft-restore`; TRACE through nf_tables trace events.
    Nft,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        }
    }

    pub fn iptables(self) -> Box<dyn Iptables> {
        match self {
            Backend::Legacy => Box::new(iptables::Legacy),
            Backend::Nft => Box::new(iptables::Nft),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "legacy" => Ok(Backend::Legacy),
            "nft" => Ok(Backend::Nft),
            _ => Err(format!("unknown backend `{s}` (want legacy or nft)")),
        }
    }
}

/// Applies and dumps IPv4 rulesets in `iptables-save` format.
pub trait Iptables {
    fn backend(&self) -> Backend;
    /// Mirrors `ip netns exec NS iptables-restore -w < ruleset`.
    fn restore(&self, ns: &Netns, ruleset: &str) -> Result<()>;
    /// Mirrors `ip netns exec NS iptables-save`.
    fn save(&self, ns: &Netns) -> Result<String>;
}

/// Run a firewall tool inside `ns`, feeding `stdin`, and return its stdout; a failure names the
/// netns, the command line and the tool's stderr.
pub fn run_tool(ns: &Netns, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let command_line = std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let mut cmd = ns.command(program);
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Spawn {
        netns: ns.name().to_string(),
        program: program.to_string(),
        hint: install_hint(program, &e),
        source: e,
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A tool that exits early closes the pipe; its stderr says why, so a write error here is not the story.
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| Error::netns(ns.name(), format!("wait for `{command_line}`"), e))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let hint = if stderr.contains("Permission denied") || stderr.contains("Operation not permitted") {
            " (needs CAP_NET_ADMIN: run as root)".to_string()
        } else {
            String::new()
        };
        return Err(Error::Command {
            netns: ns.name().to_string(),
            command: command_line,
            status: out.status.to_string(),
            stderr,
            hint,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn install_hint(program: &str, e: &std::io::Error) -> String {
    if e.kind() != std::io::ErrorKind::NotFound {
        return String::new();
    }
    let package = match program {
        p if p.starts_with("iptables") || p.starts_with("xtables") => "iptables",
        p if p.starts_with("ebtables") => "ebtables",
        "nft" => "nftables",
        "conntrack" => "conntrack",
        _ => return String::new(),
    };
    format!(" (not installed: apt-get install {package})")
}
