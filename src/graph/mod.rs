//! The job graph of a run: matrix fan-out into the jobs a run executes ([`plan`]), and
//! drawing it ([`draw`]). Cycle finding and ordering, which validation needs, are
//! [`crate::spec::dag`].

pub mod draw;
pub mod plan;
