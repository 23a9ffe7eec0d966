//! Inference after a fit: likelihood profiles and the intervals read off them
//! ([`profile`]), parametric-bootstrap refits ([`bootstrap`]), and the thread counts they run
//! with ([`parallel`]).
pub mod bootstrap;
pub mod parallel;
pub mod profile;
