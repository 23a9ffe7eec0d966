//! The model's description: the covariance parameterisation of each random-effects term.
pub mod covariance;
