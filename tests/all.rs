//! The engine's integration tests, compiled as one test crate: each file below is a module, so
//! the library and its dependencies are linked into one test binary instead of one per file
//! (a release-mode link of faer's code took minutes per binary).
mod common;

mod condvar;
mod cross_products;
mod engine;
mod fuzz_core;
mod glmm_engine;
mod grouped_sums;
mod lmm_gradient;
mod lmm_information;
mod profile_glmm;
mod resample;
