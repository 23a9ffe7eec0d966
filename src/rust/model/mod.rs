//! The model's description: the validated inputs ([`spec`]), the grouping-factor blocks and the
//! θ layout ([`terms`]), the covariance parameterisation of each random-effects term
//! ([`covariance`]), the GLM families and links ([`family`]) and the densities with a
//! dispersion of glmmTMB's families ([`density`]).
pub mod covariance;
pub mod density;
pub mod family;
pub mod spec;
pub mod terms;
