//! What a run leaves behind for people and tools: the report (text and HTML), JUnit XML,
//! `--json` results, the artifacts folder, and recorded expectations.

pub mod artifacts;
pub mod hops;
pub mod html;
pub mod junit;
pub mod pcapng;
pub mod record;
pub mod report;
pub mod results;
