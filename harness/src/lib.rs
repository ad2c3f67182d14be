//! netpath: integration tests for Linux packet datapaths. Build a topology of network
//! namespaces, send real packets, capture them on every interface, collect the netfilter trace
//! of each, and assert the hooks it met and the addresses it carried.
//!
//! One run is a pipeline, one folder per stage, driven in order by [`engine`]:
//! [`scenario`] → [`lab`] (with [`firewall`]) → [`observe`] → [`probe`] → [`evidence`] →
//! [`verdict`] → [`output`]. [`caps`] says what the kernel offers the stages.

pub mod caps;
pub mod cidr;
pub mod engine;
pub mod error;
pub mod evidence;
pub mod firewall;
pub mod kernel;
pub mod lab;
pub mod observe;
pub mod output;
pub mod probe;
mod random;
pub mod scenario;
pub mod timings;
pub mod tool;
pub mod verdict;

pub use engine::{Outcome, RunOptions, run};
pub use error::{Error, Result};
pub use firewall::Backend;
pub use scenario::Scenario;
