//! The verdict: what each probe had to show (path, addresses, ports, conntrack, answers)
//! against what its evidence shows.

pub mod expect;
