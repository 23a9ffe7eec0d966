//! mixedrs core: linear mixed models fitted by penalized least squares with a blocked Cholesky
//! factorization, as lme4 and MixedModels.jl formulate them.
//!
//! Flow: [`spec::ModelSpec`] (validated data) → [`terms::ReStructure`] (grouping-factor blocks,
//! θ layout; each term's covariance parameterisation from [`model::covariance`]) →
//! [`blocks::CrossProducts`] (formed once from the rows by [`linalg::assemble`], or handed in
//! complete) → [`chol::BlockedCholesky`] (per θ) → [`lmm::LinearMixedModel`] (profiled deviance;
//! [`pls`] adds what inference needs to the same model) → [`optim`] (BOBYQA and convergence
//! checks). GLMMs: [`fit`] (response, PIRLS, Laplace/AGQ, stage 2). After the fit: [`inference`]
//! (profiles, bootstrap, thread counts). The R binding (feature "r", `rbind`) converts R's
//! inputs into a `ModelSpec` and the results back into R lists at the boundary.
pub mod error;
pub mod fit;
pub mod inference;
pub mod linalg;
pub mod model;
pub mod optim;

// The modules' former paths (flat), kept for the tests and benchmarks that use them.
pub use fit::{glmm, lmm, pls, quadrature, start};
pub use inference::{condvar, ddf};
pub use linalg::trailing::{dense as trailing_dense, sparse as trailing_sparse};
pub use linalg::{blocks, chol, linpred, small, trailing};
pub use model::{family, spec, terms};
pub use optim::nelder_mead;

#[cfg(feature = "r")]
mod rbind;
