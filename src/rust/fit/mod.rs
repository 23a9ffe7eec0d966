//! Fitting generalized linear mixed models: the response seam ([`response`]), PIRLS for the
//! conditional modes ([`pirls`]), the Laplace/AGQ criterion and glmer's two-stage driver
//! ([`glmm`]), stage 2's metric and finite-difference derivatives ([`stage2`]), and the
//! Gauss–Hermite rules of AGQ ([`quadrature`]).
pub mod glmm;
pub mod pirls;
pub mod quadrature;
pub mod response;
mod stage2;
