//! Linear algebra of the mixed-model system: the blocked cross-products ([`blocks`]) and their
//! assembly from the rows of a model ([`assemble`]).
pub mod assemble;
pub mod blocks;
