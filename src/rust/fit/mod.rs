//! Fitting: the linear mixed model's profiled criterion and fit ([`lmm`], with what inference
//! adds to the same model in [`pls`]) and its starting values ([`start`]); for generalized
//! linear mixed models the response seam ([`response`]), PIRLS for the conditional modes
//! ([`pirls`]), the Laplace/AGQ criterion and glmer's two-stage driver ([`glmm`]), stage 2's
//! metric and finite-difference derivatives ([`stage2`]), the exact gradient of the Laplace
//! deviance for families with their own parameters (`laplace_gradient`, `laplace_gradient_paired`), the Gauss–Hermite rules of AGQ
//! ([`quadrature`]), and such a family's model held on its distinct rows ([`merged_rows`]); the
//! natural scale of an LMM's covariance parameters, which its optimizer searches in (`par_scale`).
pub mod glmm;
mod laplace_gradient;
mod laplace_gradient_paired;
pub mod lmm;
pub mod lmm_gradient;
pub mod lmm_information;
pub mod merged_rows;
mod mode_prediction;
pub(crate) mod par_scale;
pub mod pirls;
pub mod pls;
pub mod quadrature;
pub(crate) mod random_effects_system;
pub mod response;
mod sqrt_basin;
mod stage2;
pub mod start;
#[cfg(test)]
mod test_models;
