//! The validated input of a linear mixed model
//!
//! `y = X β + Σ_t Z_t b_t + offset + ε`, with prior weights `w` (`Var(ε_i) = σ² / w_i`).
//! Each random-effects term `t` has a grouping factor (one level per observation) and `q_t`
//! columns; its random effects are `b_t[level] ∈ ℝ^{q_t}`, the row of `Z_t` for observation `i`
//! multiplies `b_t[level_i]`. Terms that share a grouping factor carry the same `factor_id`.
//!
//! Large arrays are borrowed (the R binding hands over R's own memory); every check is done once
//! here so the engine can trust its input.
//!
//! A model may also come without its rows: fitted from aggregates (an engine's GROUP BY sums, see
//! [`crate::linalg::grouped_sums`]), it carries the cross-products those determine in
//! [`ModelSpec::aggregates`]; its response, fixed-effects matrix, weights, offset and term rows are
//! empty, and everything that needs them is an error that says so ([`ModelSpec::require_rows`]).
use crate::error::{invalid, Result};
use crate::linalg::grouped_sums::Aggregates;
use crate::model::covariance::Covariance;
use std::sync::Arc;

/// The linear predictor a random-effects term enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Predictor {
    /// The mean's (`η`; every lme4 term).
    #[default]
    Mean,
    /// The zero-inflation logit (`ρ`; a term of glmmTMB's `ziformula`).
    ZeroInflation,
}

/// One random-effects term `(expr | g)`.
#[derive(Debug, Clone)]
pub struct RandomTerm<'a> {
    /// Level of the grouping factor for each observation, 0-based.
    pub levels: Vec<u32>,
    /// Number of levels of the grouping factor.
    pub n_levels: usize,
    /// The term's model matrix, `n × q`, column-major.
    pub z: &'a [f64],
    /// Number of columns of `z`.
    pub q: usize,
    /// Terms with equal `factor_id` share one grouping factor.
    pub factor_id: usize,
    /// The linear predictor the term enters.
    pub predictor: Predictor,
}

impl<'a> RandomTerm<'a> {
    /// Builds a term from R's 1-based factor codes, checking every code.
    pub fn from_factor_codes(
        codes: &[i32],
        n_levels: usize,
        z: &'a [f64],
        q: usize,
        factor_id: usize,
    ) -> Result<Self> {
        let mut levels = Vec::with_capacity(codes.len());
        for (i, &c) in codes.iter().enumerate() {
            if c < 1 || c as usize > n_levels {
                return invalid(format!(
                    "grouping factor code {c} at observation {} is outside 1..{n_levels}",
                    i + 1
                ));
            }
            levels.push((c - 1) as u32);
        }
        Ok(Self {
            levels,
            n_levels,
            z,
            q,
            factor_id,
            predictor: Predictor::Mean,
        })
    }

    /// The term, entering the zero-inflation predictor instead of the mean's.
    pub fn in_zero_inflation(mut self) -> Self {
        self.predictor = Predictor::ZeroInflation;
        self
    }
}

/// A linear mixed model's data: response, fixed-effects matrix, weights, offset and terms.
#[derive(Debug, Clone)]
pub struct ModelSpec<'a> {
    /// Number of observations.
    pub n: usize,
    /// Number of fixed-effects columns.
    pub p: usize,
    /// Response, length `n`.
    pub y: &'a [f64],
    /// Fixed-effects model matrix, `n × p`, column-major, full column rank.
    pub x: &'a [f64],
    /// Prior weights (positive), or `None` for unit weights.
    pub weights: Option<&'a [f64]>,
    /// Offset added to the linear predictor, or `None`.
    pub offset: Option<&'a [f64]>,
    /// Random-effects terms, in the order the caller wants results reported.
    pub terms: Vec<RandomTerm<'a>>,
    /// The covariance parameterisation of each term (unstructured unless the caller says
    /// otherwise: [`ModelSpec::with_covariances`]).
    pub covariances: Vec<Covariance>,
    /// For a model built from aggregates rather than rows: its cross-products and `Σ log wᵢ`
    /// (then `y`, `x`, `weights`, `offset` and the terms' rows are empty); `None` when the rows
    /// are held.
    pub aggregates: Option<Arc<Aggregates>>,
    /// For a model held on merged rows ([`crate::fit::merged_rows`]): the caller's 0-based row
    /// that each row stands for (the first of those it merges), so that messages name the
    /// caller's rows; `None` when the rows are the caller's.
    pub row_numbers: Option<&'a [usize]>,
}

impl<'a> ModelSpec<'a> {
    /// Validates lengths, finiteness, weights and the consistency of shared grouping factors.
    pub fn new(
        y: &'a [f64],
        x: &'a [f64],
        p: usize,
        weights: Option<&'a [f64]>,
        offset: Option<&'a [f64]>,
        terms: Vec<RandomTerm<'a>>,
    ) -> Result<Self> {
        let n = y.len();
        if n == 0 {
            return invalid("the model has no observations");
        }
        if x.len() != n * p {
            return invalid(format!(
                "fixed-effects matrix has {} values, expected n * p = {n} * {p}",
                x.len()
            ));
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return invalid(format!("response value {} is not finite", i + 1));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return invalid(format!(
                "fixed-effects matrix has a non-finite value in column {}",
                i / n + 1
            ));
        }
        if let Some(w) = weights {
            if w.len() != n {
                return invalid(format!("'weights' has length {}, expected {n}", w.len()));
            }
            // (0 is a GLMM row that adds nothing, as in glm(); a linear mixed model, whose
            // criterion has Σ log wᵢ, asks for positive weights: LinearMixedModel::new)
            if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                return invalid(format!(
                    "'weights' must be non-negative and finite; observation {} has {}",
                    i + 1,
                    w[i]
                ));
            }
        }
        if let Some(o) = offset {
            if o.len() != n {
                return invalid(format!("'offset' has length {}, expected {n}", o.len()));
            }
            if let Some(i) = o.iter().position(|v| !v.is_finite()) {
                return invalid(format!("'offset' value {} is not finite", i + 1));
            }
        }
        if terms.is_empty() {
            return invalid("the model has no random-effects terms");
        }
        for (t, term) in terms.iter().enumerate() {
            if term.q == 0 {
                return invalid(format!("random-effects term {} has no columns", t + 1));
            }
            if term.levels.len() != n {
                return invalid(format!(
                    "grouping factor of random-effects term {} has length {}, expected {n}",
                    t + 1,
                    term.levels.len()
                ));
            }
            if term.z.len() != n * term.q {
                return invalid(format!(
                    "model matrix of random-effects term {} has {} values, expected {n} * {}",
                    t + 1,
                    term.z.len(),
                    term.q
                ));
            }
            if let Some(i) = term.z.iter().position(|v| !v.is_finite()) {
                return invalid(format!(
                    "model matrix of random-effects term {} has a non-finite value at observation {}",
                    t + 1,
                    i % n + 1
                ));
            }
            if let Some(&l) = term.levels.iter().find(|&&l| l as usize >= term.n_levels) {
                return invalid(format!(
                    "random-effects term {} has level index {l} but only {} levels",
                    t + 1,
                    term.n_levels
                ));
            }
            for other in &terms[..t] {
                if other.factor_id == term.factor_id
                    && (other.n_levels != term.n_levels || other.levels != term.levels)
                {
                    return invalid(format!(
                        "random-effects term {} claims to share a grouping factor with an earlier term but its levels differ",
                        t + 1
                    ));
                }
            }
        }
        let covariances = terms
            .iter()
            .map(|t| Covariance::unstructured(t.q))
            .collect();
        Ok(Self {
            n,
            p,
            y,
            x,
            weights,
            offset,
            terms,
            covariances,
            aggregates: None,
            row_numbers: None,
        })
    }

    /// Whether the model holds its rows (`false`: built from aggregates).
    pub fn has_rows(&self) -> bool {
        self.aggregates.is_none()
    }

    /// An error naming `what` for a model built from aggregates: `what` needs the rows.
    pub fn require_rows(&self, what: &str) -> Result<()> {
        if self.has_rows() {
            Ok(())
        } else {
            invalid(format!(
                "{what} needs the rows of the data, and this model was fitted from aggregates \
                 (grouped sums) without them"
            ))
        }
    }

    /// The same model with the given covariance parameterisation of each term (one per term, with
    /// the term's number of columns).
    pub fn with_covariances(mut self, covariances: Vec<Covariance>) -> Result<Self> {
        if covariances.len() != self.terms.len() {
            return invalid(format!(
                "{} covariance structures given for {} random-effects terms",
                covariances.len(),
                self.terms.len()
            ));
        }
        for (t, (c, term)) in covariances.iter().zip(&self.terms).enumerate() {
            if c.q != term.q {
                return invalid(format!(
                    "the covariance structure of random-effects term {} has {} columns, the term has {}",
                    t + 1,
                    c.q,
                    term.q
                ));
            }
        }
        self.covariances = covariances;
        Ok(self)
    }

    /// The same model without the terms of the zero-inflation predictor: the model whose
    /// estimates start the search with them (R/zi-random.R). Needs the rows.
    pub fn without_zero_inflation_terms(&self) -> Result<Self> {
        self.require_rows("a model without its zero-inflation terms")?;
        let kept = |t: &RandomTerm<'_>| t.predictor != Predictor::ZeroInflation;
        let mut out = self.clone();
        out.terms = self.terms.iter().filter(|t| kept(t)).cloned().collect();
        out.covariances = (self.terms.iter().zip(&self.covariances))
            .filter(|(t, _)| kept(t))
            .map(|(_, c)| c.clone())
            .collect();
        if out.terms.is_empty() {
            return invalid(
                "the model has no random-effects terms outside its zero-inflation model",
            );
        }
        Ok(out)
    }

    /// The caller's 1-based number of row `i`, as messages name it (see [`Self::row_numbers`]).
    pub fn observation(&self, i: usize) -> usize {
        self.row_numbers.map_or(i, |r| r[i]) + 1
    }

    /// Weight of observation `i` (1 without prior weights).
    #[inline]
    pub fn weight(&self, i: usize) -> f64 {
        self.weights.map_or(1.0, |w| w[i])
    }

    /// Response minus offset for observation `i`.
    #[inline]
    pub fn y_adjusted(&self, i: usize) -> f64 {
        self.y[i] - self.offset.map_or(0.0, |o| o[i])
    }

    /// `Σ log w_i`: the Jacobian term prior weights add to the deviance.
    pub fn log_weight_sum(&self) -> f64 {
        if let Some(a) = &self.aggregates {
            return a.sum_log_w;
        }
        self.weights
            .map_or(0.0, |w| w.iter().map(|v| v.ln()).sum::<f64>())
    }
}
