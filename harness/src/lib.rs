//! netpath: integration tests for Linux packet datapaths. Build a topology of network
//! namespaces, send real packets, capture them on every interface, collect the netfilter trace
//! of each, and assert the hooks it met and the addresses it carried.
//!
//! One run is a pipeline, one folder per stage, driven in order by [`engine`]:
//! [`scenario`] → [`lab`] (with [`firewall`]) → [`observe`] → [`probe`] → [`evidence`] →
//! [`verdict`] → [`output`]. [`caps`] says what the kernel offers the stages. [`testing`] is
//! for `cargo test`: run or skip with the missing feature, and find failures by [`FailureKind`].
//!
//! ```
//! use std::path::Path;
//!
//! use netpath::{Backend, RunOptions, Scenario};
//!
//! // Two namespaces joined by a veth; a ping that must pass c1's OUTPUT hook's policy.
//! let sc = Scenario::from_toml(
//!     r#"
//! name = "ping"
//! [[netns]]
//! name = "c1"
//! iptables = """
//! *raw
//! :OUTPUT ACCEPT [0:0]
//! -A OUTPUT -p icmp -j TRACE
//! COMMIT
//! """
//! [[netns]]
//! name = "c2"
//! [[veth]]
//! a = { netns = "c1", name = "eth0", addresses = ["10.0.0.1/24"] }
//! b = { netns = "c2", name = "eth0", addresses = ["10.0.0.2/24"] }
//! [[probe]]
//! name = "c1-to-c2"
//! from = "c1"
//! to = "10.0.0.2"
//! [[probe.path]]
//! netns = "c1"
//! includes = ["raw:OUTPUT:policy:2"]
//! "#,
//!     Path::new("ping.toml"),
//! )?;
//! // Building namespaces needs root; elsewhere the example stops at the parsed scenario.
//! if netpath::caps::missing_capabilities().is_empty() {
//!     let outcome = netpath::run(&sc, Backend::Legacy, &RunOptions::default())?;
//!     assert!(outcome.passed(), "{}", netpath::output::report::outcome(&outcome, false));
//! }
//! # Ok::<(), netpath::Error>(())
//! ```

#![warn(missing_docs)]

// The API: what a scenario is, running it, judging and reporting it.
pub mod bound;
pub mod caps;
pub mod cidr;
pub mod engine;
pub mod error;
pub mod kernel;
pub mod mutate;
pub mod output;
pub mod scenario;
pub mod suite;
pub mod testing;
pub mod timings;
pub mod verdict;

// The inner stages. Public for netpath's own cases (cases/, vm/), which drive them one by one
// on the real kernel from outside the crate; not an API: their types change with the stages.
#[doc(hidden)]
pub mod contain;
#[doc(hidden)]
pub mod evidence;
#[doc(hidden)]
pub mod firewall;
#[doc(hidden)]
pub mod lab;
#[doc(hidden)]
pub mod observe;
#[doc(hidden)]
pub mod probe;
mod random;
#[doc(hidden)]
pub mod ruleset;
#[doc(hidden)]
pub mod tool;

pub use engine::{Outcome, RunOptions, run};
pub use error::{Error, Result};
pub use firewall::Backend;
pub use observe::TraceChoice;
pub use scenario::Scenario;
pub use verdict::{Failure, FailureKind};

/// The Rust examples of docs/library.md, compiled by `cargo test --doc` so the page cannot show
/// code that does not build (its examples need root and a kernel, so they are `no_run`).
#[cfg(doctest)]
#[doc = include_str!("../../docs/library.md")]
pub struct LibraryDocs;
