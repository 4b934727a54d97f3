//! The job graph: cycle detection and ordering ([`dag`]), matrix fan-out into the jobs a run
//! executes ([`plan`]), and drawing it ([`draw`]).

pub mod dag;
pub mod draw;
pub mod plan;
