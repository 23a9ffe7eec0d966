//! Inference after a fit: likelihood profiles and the intervals read off them
//! ([`profile`]), parametric-bootstrap refits ([`bootstrap`]), case-deletion refits
//! ([`influence`]), conditional variances of the random effects ([`condvar`]), Satterthwaite and
//! Kenward–Roger degrees of freedom ([`ddf`]), and the thread counts they run with
//! ([`parallel`]).
pub mod block_lambda;
pub mod bootstrap;
pub mod condvar;
pub mod ddf;
pub mod influence;
pub mod parallel;
pub mod profile;
