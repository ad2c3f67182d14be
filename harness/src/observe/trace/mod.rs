//! Trace collection: every source turns what the kernel reports into [`event::TraceEvent`]s.

pub mod event;
pub mod kmsg;
pub mod legacy_facts;
pub mod nflog;
pub mod nft_events;
pub mod nftrace;
pub mod source;
pub mod text;
pub mod verdict;

pub use event::{Hook, RuleKind, TraceEvent};
pub use source::{SOURCES, TraceChoice, TraceSource, Traced};
pub use verdict::{ChainFacts, RuleText, Verdict};
