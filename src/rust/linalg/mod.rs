//! Linear algebra of the mixed-model system: the blocked cross-products ([`blocks`]) and their
//! assembly from the rows of a model ([`assemble`]) or from grouped sums ([`grouped_sums`]), the
//! small `q × q` kernels ([`small`]), the dense inverse ([`spd_inverse`]), sparse Cholesky
//! factors and their selected inverse ([`selected_inverse`]), the blocked Cholesky factor
//! ([`chol`]) with its trailing block ([`trailing`]), and the linear predictor's pieces
//! ([`linpred`]).
pub mod assemble;
pub mod blocks;
pub mod chol;
pub mod grouped_sums;
pub mod linpred;
pub mod selected_inverse;
pub mod small;
pub mod spd_inverse;
pub mod trailing;
