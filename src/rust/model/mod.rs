//! The model's description: the validated inputs ([`spec`]), the grouping-factor blocks and the
//! θ layout ([`terms`]), the covariance parameterisation of each random-effects term
//! ([`covariance`]), the GLM families and links ([`family`]) and the densities with a
//! dispersion of glmmTMB's families ([`density`]), the grouping of rows whose data agree
//! ([`identical_rows`]), the fixed-effects matrix of main effects ([`treatment_matrix`]) and
//! lme4's checks of the fixed-effects columns ([`fixed_matrix_checks`]).
pub mod covariance;
pub mod density;
pub mod family;
pub mod fixed_matrix_checks;
pub mod identical_rows;
pub mod spec;
pub mod terms;
pub mod treatment_matrix;
