//! mixedrs core: linear mixed models fitted by penalized least squares with a blocked Cholesky
//! factorization, as lme4 and MixedModels.jl formulate them.
//!
//! Flow: [`spec::ModelSpec`] (validated data) → [`terms::ReStructure`] (grouping-factor blocks,
//! θ layout; each term's covariance parameterisation from [`model::covariance`]) →
//! [`blocks::CrossProducts`] (formed once from the rows by [`linalg::assemble`], or handed in
//! complete) → [`chol::BlockedCholesky`] (per θ) → [`lmm::LinearMixedModel`] (profiled deviance;
//! [`pls`] adds what inference needs to the same model) → [`optim`] (BOBYQA and convergence
//! checks). GLMMs: [`fit`] (response, PIRLS, Laplace/AGQ, stage 2). After the fit: [`inference`]
//! (profiles, bootstrap, thread counts).
pub mod chol;
pub mod condvar;
pub mod ddf;
pub mod error;
pub mod family;
pub mod fit;
pub mod inference;
pub mod linalg;
pub mod linpred;
pub mod lmm;
pub mod model;
pub mod nelder_mead;
pub mod optim;
pub mod pls;
pub mod small;
pub mod spec;
pub mod start;
pub mod terms;
pub mod trailing;
pub mod trailing_dense;
pub mod trailing_sparse;

// Former paths of modules that moved.
pub use fit::{glmm, quadrature};
pub use linalg::blocks;

#[cfg(feature = "r")]
mod rbind;
#[cfg(feature = "r")]
mod rbind_condvar;
#[cfg(feature = "r")]
mod rbind_ddf;
#[cfg(feature = "r")]
mod rbind_resample;
#[cfg(feature = "r")]
mod rinterrupt;
