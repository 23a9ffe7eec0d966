//! The model's description: the validated inputs ([`spec`]), the grouping-factor blocks and the
//! θ layout ([`terms`]), the covariance parameterisation of each random-effects term
//! ([`covariance`]), the GLM families and links ([`family`]) and the densities with a
//! dispersion of glmmTMB's families ([`density`]), the grouping of rows whose data agree
//! ([`identical_rows`]), and lme4's scale check of the fixed-effects columns
//! ([`column_scales`]).
pub mod column_scales;
pub mod covariance;
pub mod density;
pub mod family;
pub mod identical_rows;
pub mod spec;
pub mod terms;
