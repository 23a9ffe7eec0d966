//! The one error type of the numerical core. Each variant carries the context an R user needs to
//! act on it; the R binding turns it into an ordinary R error.
use thiserror::Error;

/// Everything that can go wrong inside the core.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MixedError {
    /// An input array or argument is malformed (wrong length, non-finite value, bad index).
    #[error("{0}")]
    InvalidInput(String),
    /// A matrix that must be positive definite is not, at the named stage.
    #[error("{stage}: matrix is not positive definite (the model may be overparameterized or the fixed-effects matrix rank deficient)")]
    NotPositiveDefinite {
        /// Which factorization failed.
        stage: &'static str,
    },
    /// The optimizer could not be set up or could not find any finite deviance.
    #[error("optimizer failure: {0}")]
    Optimizer(String),
    /// PIRLS (the conditional modes of a GLMM) failed; the message says how.
    #[error("{0}")]
    Pirls(String),
    /// Memory for the dense trailing block or the sparse factor could not be allocated.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
}

/// Result alias for the core.
pub type Result<T> = std::result::Result<T, MixedError>;

/// Shorthand for an [`MixedError::InvalidInput`].
pub fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(MixedError::InvalidInput(msg.into()))
}

/// At the R boundary a core error becomes an ordinary R error with the same message, so the
/// binding's entry points cross it with `?`.
#[cfg(feature = "r")]
impl From<MixedError> for extendr_api::Error {
    fn from(e: MixedError) -> Self {
        extendr_api::Error::Other(e.to_string())
    }
}
