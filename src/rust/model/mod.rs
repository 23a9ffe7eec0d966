//! The model's description: the validated inputs ([`spec`]), the grouping-factor blocks and the
//! θ layout ([`terms`]), the covariance parameterisation of each random-effects term
//! ([`covariance`]) and the GLM families and links ([`family`]).
pub mod covariance;
pub mod family;
pub mod spec;
pub mod terms;
