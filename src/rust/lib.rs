//! mixedrs core: linear mixed models fitted by penalized least squares with a blocked Cholesky
//! factorization, as lme4 and MixedModels.jl formulate them.
//!
//! Flow: [`spec::ModelSpec`] (validated data) → [`terms::ReStructure`] (grouping-factor blocks,
//! θ layout) → [`blocks::CrossProducts`] (formed once from the rows by [`linalg::assemble`], or
//! handed in complete) → [`chol::BlockedCholesky`] (per θ) → [`lmm::LinearMixedModel`]
//! (profiled deviance) → [`optim`] (BOBYQA and convergence checks).
pub mod bootstrap;
pub mod chol;
pub mod condvar;
pub mod ddf;
pub mod error;
pub mod family;
pub mod fit;
pub mod linalg;
pub mod linpred;
pub mod lmm;
pub mod nelder_mead;
pub mod optim;
pub mod profile;
pub mod profile_glmm;
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
