//! Random-effects structure: grouping-factor blocks and the map from θ to Λ.
//!
//! Terms that share a grouping factor are amalgamated into one *block* whose columns are the
//! concatenation of the terms' columns, so `(1 | g) + (0 + x | g)` becomes a single block with a
//! diagonal relative covariance factor. For block `b` with `q_b` columns the relative covariance
//! factor `T_b` is lower triangular, and `Λ = ⊕_b (I_{ℓ_b} ⊗ T_b)`; the random effects are
//! `b = Λ u` with `u ~ N(0, σ² I)`.
//!
//! `θ` is laid out as lme4 lays it out: terms in the caller's order, each term's lower triangle of
//! its own `q_t × q_t` factor in column-major order. Diagonal elements have lower bound 0, the
//! others are unbounded.
//!
//! The optimizer does not see θ but `par`, each term's parameters in its covariance structure
//! ([`crate::model::covariance`], the owner of that map); for unstructured terms `par = θ`.
//!
//! Blocks are ordered by number of levels, largest first: the first ("leading") block's
//! cross-product is block diagonal, which the blocked Cholesky exploits.
//!
//! A term of the zero-inflation predictor (glmmTMB's `ziformula`) forms blocks of its own even
//! where it shares a grouping factor with terms of the mean: the two are independent (glmmTMB's
//! model), so `Λ` has no element between them; the cross-products between their columns are
//! those of the pair of predictors ([`crate::linalg::assemble::PairedWorkingValues`]).
use crate::error::{invalid, Result};
use crate::model::covariance::{Covariance, ParRole, Structure};
use crate::spec::{ModelSpec, Predictor};

/// One grouping factor with all its columns (of one linear predictor).
#[derive(Debug, Clone)]
pub struct ReBlock {
    /// Number of levels of the grouping factor.
    pub n_levels: usize,
    /// Number of columns (sum over the amalgamated terms).
    pub q: usize,
    /// Input indices of the amalgamated terms, in input order.
    pub terms: Vec<usize>,
    /// Offset of each amalgamated term's columns within the block.
    pub term_col_offset: Vec<usize>,
    /// The linear predictor the block's terms enter.
    pub predictor: Predictor,
}

/// Where one element of θ lives: block, row and column of that block's `T_b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThetaPos {
    /// Block index (in the sorted block order).
    pub block: usize,
    /// Row within `T_b`.
    pub row: usize,
    /// Column within `T_b`.
    pub col: usize,
}

/// The random-effects structure of a model.
#[derive(Debug, Clone)]
pub struct ReStructure {
    /// Blocks, largest number of levels first.
    pub blocks: Vec<ReBlock>,
    /// For each input term: its block and its column offset there.
    pub term_block: Vec<(usize, usize)>,
    /// For each element of θ, its position in a `T_b`.
    pub theta_pos: Vec<ThetaPos>,
    /// Offset of each input term's first θ element.
    pub term_theta_offset: Vec<usize>,
    /// Each input term's covariance parameterisation.
    pub covariances: Vec<Covariance>,
    /// Offset of each input term's first `par` element.
    pub term_par_offset: Vec<usize>,
}

impl ReStructure {
    /// Groups the terms of `spec` by grouping factor and orders the blocks.
    pub fn new(spec: &ModelSpec<'_>) -> Self {
        let mut groups: Vec<ReBlock> = Vec::new();
        let mut group_factor: Vec<(usize, Predictor)> = Vec::new();
        for (t, term) in spec.terms.iter().enumerate() {
            let key = (term.factor_id, term.predictor);
            match group_factor.iter().position(|&f| f == key) {
                Some(g) => {
                    let block = &mut groups[g];
                    block.terms.push(t);
                    block.term_col_offset.push(block.q);
                    block.q += term.q;
                }
                None => {
                    group_factor.push(key);
                    groups.push(ReBlock {
                        n_levels: term.n_levels,
                        q: term.q,
                        terms: vec![t],
                        term_col_offset: vec![0],
                        predictor: term.predictor,
                    });
                }
            }
        }
        // Stable sort: most levels first.
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by(|&a, &b| groups[b].n_levels.cmp(&groups[a].n_levels));
        let blocks: Vec<ReBlock> = order.iter().map(|&g| groups[g].clone()).collect();

        let mut term_block = vec![(0, 0); spec.terms.len()];
        for (b, block) in blocks.iter().enumerate() {
            for (k, &t) in block.terms.iter().enumerate() {
                term_block[t] = (b, block.term_col_offset[k]);
            }
        }
        let mut theta_pos = Vec::new();
        let mut term_theta_offset = Vec::with_capacity(spec.terms.len());
        for (t, term) in spec.terms.iter().enumerate() {
            term_theta_offset.push(theta_pos.len());
            let (block, off) = term_block[t];
            for col in 0..term.q {
                for row in col..term.q {
                    theta_pos.push(ThetaPos {
                        block,
                        row: off + row,
                        col: off + col,
                    });
                }
            }
        }
        let covariances = spec.covariances.clone();
        let mut term_par_offset = Vec::with_capacity(covariances.len());
        let mut n_par = 0;
        for c in &covariances {
            term_par_offset.push(n_par);
            n_par += c.n_par();
        }
        Self {
            blocks,
            term_block,
            theta_pos,
            term_theta_offset,
            covariances,
            term_par_offset,
        }
    }

    /// Whether some block enters the zero-inflation predictor.
    pub fn has_zero_inflation_terms(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| b.predictor == Predictor::ZeroInflation)
    }

    /// Number of optimizer parameters (`par`).
    pub fn n_par(&self) -> usize {
        self.covariances.iter().map(Covariance::n_par).sum()
    }

    /// Whether every term is unstructured (then `par = θ`).
    pub fn all_unstructured(&self) -> bool {
        self.covariances
            .iter()
            .all(|c| c.structure == Structure::Unstructured)
    }

    /// Each term's slice of a `par` vector.
    pub fn term_pars<'p>(&self, par: &'p [f64]) -> impl Iterator<Item = (&Covariance, &'p [f64])> {
        self.covariances
            .iter()
            .zip(&self.term_par_offset)
            .map(move |(c, &o)| (c, &par[o..o + c.n_par()]))
    }

    /// Lower bounds of `par`.
    pub fn par_lower(&self) -> Vec<f64> {
        self.covariances
            .iter()
            .flat_map(Covariance::lower)
            .collect()
    }

    /// Upper bounds of `par`.
    pub fn par_upper(&self) -> Vec<f64> {
        self.covariances
            .iter()
            .flat_map(Covariance::upper)
            .collect()
    }

    /// Lower bounds a search over `par` has to keep (see [`Covariance::search_lower`]); its upper
    /// bounds are [`Self::par_upper`].
    pub fn search_lower(&self) -> Vec<f64> {
        self.covariances
            .iter()
            .flat_map(Covariance::search_lower)
            .collect()
    }

    /// Whether each element of `par` is a correlation parameter (`cs`'s and `ar1`'s `ρ`, `toep`'s
    /// partial autocorrelations), bounded on both sides.
    pub fn par_is_correlation(&self) -> Vec<bool> {
        self.covariances
            .iter()
            .flat_map(|c| c.roles())
            .map(|r| matches!(r, ParRole::Rho | ParRole::Pacf(_)))
            .collect()
    }

    /// Positions in `par` of the terms' standard deviations (for `us`, the diagonals of the
    /// `T`'s).
    pub fn sd_par_positions(&self) -> Vec<usize> {
        self.covariances
            .iter()
            .zip(&self.term_par_offset)
            .flat_map(|(c, &o)| c.sd_positions().into_iter().map(move |k| o + k))
            .collect()
    }

    /// lme4's start in `par` (every `T` the identity).
    pub fn default_par(&self) -> Vec<f64> {
        self.covariances
            .iter()
            .flat_map(Covariance::start)
            .collect()
    }

    /// Writes θ for `par` (`NaN` for a term whose `par` is outside its bounds).
    pub fn theta_from_par(&self, par: &[f64], theta: &mut Vec<f64>) {
        theta.resize(self.n_theta(), 0.0);
        for (t, (c, p)) in self.term_pars(par).enumerate() {
            let o = self.term_theta_offset[t];
            c.theta(p, &mut theta[o..o + c.n_theta()]);
        }
    }

    /// θ for `par`, allocated.
    pub fn theta_of(&self, par: &[f64]) -> Vec<f64> {
        let mut theta = Vec::new();
        self.theta_from_par(par, &mut theta);
        theta
    }

    /// The `par` of θ, term by term (see [`Covariance::par_from_theta`]).
    pub fn par_from_theta(&self, theta: &[f64]) -> Vec<f64> {
        self.covariances
            .iter()
            .zip(&self.term_theta_offset)
            .flat_map(|(c, &o)| c.par_from_theta(&theta[o..o + c.n_theta()]))
            .collect()
    }

    /// Checks the length of a `par` vector.
    pub fn check_par(&self, par: &[f64], what: &str) -> Result<()> {
        if par.len() != self.n_par() {
            return invalid(format!(
                "'{what}' has length {}, the model has {} covariance parameters",
                par.len(),
                self.n_par()
            ));
        }
        Ok(())
    }

    /// Whether some term's `par` is on the boundary (see [`Covariance::is_singular`]).
    pub fn par_singular(&self, par: &[f64], tol: f64) -> bool {
        self.term_pars(par).any(|(c, p)| c.is_singular(p, tol))
    }

    /// Whether some term has a standard deviation (a diagonal element of `T`) at most `limit`.
    pub fn par_has_small_sd(&self, par: &[f64], limit: f64) -> bool {
        self.term_pars(par).any(|(c, p)| c.has_small_sd(p, limit))
    }

    /// `par` with every term's `T` multiplied by `s` (see [`Covariance::scaled`]).
    pub fn scaled_par(&self, par: &[f64], s: f64) -> Vec<f64> {
        self.term_pars(par)
            .flat_map(|(c, p)| c.scaled(p, s))
            .collect()
    }

    /// The largest relative standard deviation of any term's column (see
    /// [`Covariance::largest_sd`]).
    pub fn largest_sd(&self, par: &[f64]) -> f64 {
        self.term_pars(par)
            .map(|(c, p)| c.largest_sd(p))
            .fold(0.0, f64::max)
    }

    /// Makes each unstructured term's `T` have a non-negative diagonal (negating columns).
    pub fn normalize_par_signs(&self, par: &mut [f64]) {
        for (c, &o) in self.covariances.iter().zip(&self.term_par_offset) {
            c.normalize_signs(&mut par[o..o + c.n_par()]);
        }
    }

    /// Number of covariance parameters.
    pub fn n_theta(&self) -> usize {
        self.theta_pos.len()
    }

    /// Total number of random effects `q = Σ_b ℓ_b q_b`.
    pub fn n_random(&self) -> usize {
        self.blocks.iter().map(|b| b.n_levels * b.q).sum()
    }

    /// Lower bounds of θ: 0 for diagonal elements of `T_b`, −∞ otherwise.
    pub fn lower_bounds(&self) -> Vec<f64> {
        self.theta_pos
            .iter()
            .map(|p| {
                if p.row == p.col {
                    0.0
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect()
    }

    /// lme4's default start: 1 on diagonal elements, 0 elsewhere.
    pub fn default_theta(&self) -> Vec<f64> {
        self.theta_pos
            .iter()
            .map(|p| if p.row == p.col { 1.0 } else { 0.0 })
            .collect()
    }

    /// Checks θ (length and finiteness) and writes each block's `T_b` from it (see
    /// [`ReStructure::fill_lambda`]).
    pub fn set_lambda(&self, theta: &[f64], lambda: &mut [Vec<f64>]) -> Result<()> {
        if theta.len() != self.n_theta() {
            return invalid(format!(
                "theta has length {}, the model has {} covariance parameters",
                theta.len(),
                self.n_theta()
            ));
        }
        if let Some(i) = theta.iter().position(|v| !v.is_finite()) {
            return invalid(format!("theta[{}] is not finite", i + 1));
        }
        self.fill_lambda(theta, lambda);
        Ok(())
    }

    /// Writes each block's `T_b` (column-major `q_b × q_b`, zero above the diagonal and outside
    /// the terms' own blocks) for the given θ.
    pub fn fill_lambda(&self, theta: &[f64], lambda: &mut [Vec<f64>]) {
        for (b, block) in self.blocks.iter().enumerate() {
            lambda[b].clear();
            lambda[b].resize(block.q * block.q, 0.0);
        }
        for (pos, &value) in self.theta_pos.iter().zip(theta) {
            let q = self.blocks[pos.block].q;
            lambda[pos.block][pos.col * q + pos.row] = value;
        }
    }

    /// Zeroed `T_b` buffers of the right sizes.
    pub fn lambda_buffers(&self) -> Vec<Vec<f64>> {
        self.blocks.iter().map(|b| vec![0.0; b.q * b.q]).collect()
    }

    /// Whether every block's `T_b` is diagonal for any θ (all terms scalar).
    pub fn all_diagonal(&self) -> bool {
        self.theta_pos.iter().all(|p| p.row == p.col)
    }
}
