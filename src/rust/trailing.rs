//! Storage choice for the trailing Schur complement `S = Λ₂'A22Λ₂ + I − L21 L21'`.
//!
//! `S` is empty when the model has one grouping factor, and otherwise held dense (crossed
//! factors make it fill in). Every variant offers the same operations: assemble, factor,
//! `G'S⁻¹G` and `S⁻¹v`.
use crate::blocks::CrossProducts;
use crate::error::Result;
use crate::trailing_dense::DenseTrailing;
use faer::Par;

/// The trailing block in the storage chosen for it.
#[derive(Debug)]
pub enum Trailing {
    /// One grouping factor only: no trailing block.
    Empty,
    /// Dense lower-triangular storage with faer's blocked Cholesky.
    Dense(DenseTrailing),
}

impl Trailing {
    /// Picks the storage for the model's trailing block.
    pub fn choose(cp: &CrossProducts, par: Par) -> Result<Self> {
        let m = cp.layout.m;
        if m == 0 {
            return Ok(Trailing::Empty);
        }
        let par = if m >= 256 { par } else { Par::Seq };
        Ok(Trailing::Dense(DenseTrailing::new(m, cp.pf(), par)?))
    }

    /// `S ← I`.
    pub fn set_identity(&mut self) {
        match self {
            Trailing::Empty => {}
            Trailing::Dense(d) => d.set_identity(),
        }
    }

    /// `S[r0.., c0..] += B` (lower triangle only on the diagonal).
    pub fn add_block(&mut self, r0: usize, c0: usize, qr: usize, qc: usize, b: &[f64]) {
        match self {
            Trailing::Empty => {}
            Trailing::Dense(d) => d.add_block(r0, c0, qr, qc, b),
        }
    }

    /// `S −= L21 L21'`.
    pub fn schur_update(&mut self, cp: &CrossProducts, l21: &[f64]) {
        match self {
            Trailing::Empty => {}
            Trailing::Dense(d) => d.schur_update(cp, l21),
        }
    }

    /// Factors `S`; returns `log|L22|²`.
    pub fn factor(&mut self) -> Result<f64> {
        match self {
            Trailing::Empty => Ok(0.0),
            Trailing::Dense(d) => d.factor(),
        }
    }

    /// `out −= G'S⁻¹G` for `G'` stored `m × pf`.
    pub fn sub_quadratic(&mut self, g: &[f64], pf: usize, out: &mut [f64]) {
        match self {
            Trailing::Empty => {}
            Trailing::Dense(d) => d.sub_quadratic(g, pf, out),
        }
    }

    /// `v ← S⁻¹v`.
    pub fn solve_in_place(&mut self, v: &mut [f64]) {
        match self {
            Trailing::Empty => {}
            Trailing::Dense(d) => d.solve_in_place(v),
        }
    }
}
