//! Storage choice for the trailing Schur complement `S = Λ₂'A22Λ₂ + I − L21 L21'`.
//!
//! `S` is empty when the model has one grouping factor. Otherwise it is held dense when it is
//! small or its Cholesky factor fills in (crossed factors), and sparse with a fixed symbolic
//! analysis when the factor stays sparse (nested factors, sparse crossings). Every variant
//! offers the same operations: assemble, factor, `G'S⁻¹G` and `S⁻¹v`.
pub mod dense;
pub mod sparse;

use crate::blocks::CrossProducts;
use crate::error::Result;
use dense::DenseTrailing;
use faer::Par;
use sparse::{pattern_work, SparseTrailing};

/// How to store the trailing block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrailingChoice {
    /// Decide from the size and the fill of the factor (see [`Trailing::choose`]).
    #[default]
    Auto,
    /// Always dense.
    Dense,
    /// Always sparse.
    Sparse,
}

/// Up to this dimension a dense factor costs less than sparse bookkeeping. Above it the fill
/// decides: nested factors and observation-level effects leave a trailing block that is
/// nearly diagonal (grouseticks' 181 brood and location levels: the sparse factor made the
/// whole Poisson fit 2.2 times faster than a dense one).
const DENSE_ALWAYS: usize = 64;
/// Beyond this dimension a dense `S` takes too much memory and time; stay sparse.
const DENSE_NEVER: usize = 20_000;
/// Pattern entries (with duplicates) beyond which the pattern is not worth building for a block
/// that could be dense.
const PATTERN_LIMIT: usize = 20_000_000;
/// Fraction of the lower triangle filled in `L22` above which dense is used.
const DENSE_FILL: f64 = 0.25;

/// The trailing block in the storage chosen for it.
#[derive(Debug)]
pub enum Trailing {
    /// One grouping factor only: no trailing block.
    Empty,
    /// Dense lower-triangular storage with faer's blocked Cholesky.
    Dense(Box<DenseTrailing>),
    /// Sparse storage with a fixed pattern and faer's sparse Cholesky.
    Sparse(Box<SparseTrailing>),
}

/// Smallest dense trailing block whose factor and update are split over threads.
const DENSE_PAR_MIN: usize = 768;
/// Smallest sparse trailing block whose factor is split over threads.
const SPARSE_PAR_MIN: usize = 4096;

impl Trailing {
    /// Picks the storage for the model's trailing block: dense when `m` is small or the factor
    /// fills more than a quarter of the lower triangle, sparse otherwise (measured from the
    /// symbolic analysis, which the sparse variant keeps).
    pub fn choose(cp: &CrossProducts, par: Par, choice: TrailingChoice) -> Result<Self> {
        let m = cp.layout.m;
        if m == 0 {
            return Ok(Trailing::Empty);
        }
        // faer's parallel dense Cholesky overtakes the sequential one near m = 700 (measured on
        // 2 cores: 0.25 against 0.45 ms at m = 300, 7.5 against 4.8 ms at m = 1000); below,
        // waking the threads costs more than it saves, on every PIRLS iteration of a GLMM.
        let dense_par = if m >= DENSE_PAR_MIN { par } else { Par::Seq };
        // A sparse factor does far less work than a dense one of the same order.
        let sparse_par = if m >= SPARSE_PAR_MIN { par } else { Par::Seq };
        let dense = || -> Result<Self> {
            Ok(Trailing::Dense(Box::new(DenseTrailing::new(
                cp,
                cp.pf(),
                dense_par,
            )?)))
        };
        let sparse = || -> Result<Self> {
            Ok(Trailing::Sparse(Box::new(SparseTrailing::new(
                cp,
                cp.pf(),
                sparse_par,
            )?)))
        };
        match choice {
            TrailingChoice::Dense => return dense(),
            TrailingChoice::Sparse => return sparse(),
            TrailingChoice::Auto => {}
        }
        if m <= DENSE_ALWAYS {
            return dense();
        }
        if m <= DENSE_NEVER && pattern_work(cp) > PATTERN_LIMIT {
            return dense();
        }
        let candidate = SparseTrailing::new(cp, cp.pf(), sparse_par)?;
        let lower_triangle = (m as f64) * (m as f64 + 1.0) / 2.0;
        if m <= DENSE_NEVER && candidate.factor_len() as f64 > DENSE_FILL * lower_triangle {
            return dense();
        }
        Ok(Trailing::Sparse(Box::new(candidate)))
    }

    /// Whether the trailing block is stored sparse.
    pub fn is_sparse(&self) -> bool {
        matches!(self, Trailing::Sparse(_))
    }

    /// `S ← I`.
    pub fn set_identity(&mut self) {
        match self {
            Trailing::Empty => {}
            Trailing::Dense(d) => d.set_identity(),
            Trailing::Sparse(s) => s.set_identity(),
        }
    }

    /// `S[r0.., c0..] += B` (lower triangle only on the diagonal).
    pub fn add_block(&mut self, r0: usize, c0: usize, qr: usize, qc: usize, b: &[f64]) {
        match self {
            Trailing::Empty => {}
            Trailing::Dense(d) => d.add_block(r0, c0, qr, qc, b),
            Trailing::Sparse(s) => s.add_block(r0, c0, qr, qc, b),
        }
    }

    /// `S −= L21 L21'`.
    pub fn schur_update(&mut self, cp: &CrossProducts, l21: &[f64]) {
        match self {
            Trailing::Empty => {}
            Trailing::Dense(d) => d.schur_update(cp, l21),
            Trailing::Sparse(s) => s.schur_update(cp, l21),
        }
    }

    /// Factors `S`; returns `log|L22|²`.
    pub fn factor(&mut self) -> Result<f64> {
        match self {
            Trailing::Empty => Ok(0.0),
            Trailing::Dense(d) => d.factor(),
            Trailing::Sparse(s) => s.factor(),
        }
    }

    /// `out −= G'S⁻¹G` for `G'` stored `m × pf`.
    pub fn sub_quadratic(&mut self, g: &[f64], pf: usize, out: &mut [f64]) {
        match self {
            Trailing::Empty => {}
            Trailing::Dense(d) => d.sub_quadratic(g, pf, out),
            Trailing::Sparse(s) => s.sub_quadratic(g, pf, out),
        }
    }

    /// `v ← S⁻¹v`.
    pub fn solve_in_place(&mut self, v: &mut [f64]) {
        match self {
            Trailing::Empty => {}
            Trailing::Dense(d) => d.solve_in_place(v),
            Trailing::Sparse(s) => s.solve_in_place(v),
        }
    }
}
