//! A GLMM held on its distinct rows.
//!
//! The criterion is `Σᵢ aᵢ ℓᵢ` plus the Laplace (or quadrature) terms, and every row enters
//! PIRLS, the determinant and the exact gradient only through its data and the factor `aᵢ` on
//! its log-likelihood and its derivatives. So rows whose data agree ([`RowGroups`]: response,
//! fixed-effects row, offset, trials, starting predictor, every term's level and row, the
//! zero-inflation and dispersion designs and offsets) are fitted as one row of weight `Σ aᵢ`:
//! the same optimum, reached with every pass over the rows doing the distinct rows' work
//! alone. The fit's per-row values are spread back to the rows; the working weights, which
//! carry `aᵢ`, are shared out in proportion to it.
//!
//! For lme4's families the prior weights are that factor for the Poisson, and for the binomial
//! where R's `n` gives the trials (`aic` then weighs `log p(y | n, μ)` by `aᵢ / nᵢ`) or every
//! response is 0 or 1 with whole weights (`log p` of `aᵢ` successes of `aᵢ` trials is
//! `aᵢ log μ`); a proportion whose weights are its trials is not merged, as `log choose(m, my)`
//! does not add up over merged rows. Families with a dispersion estimated from the deviance
//! (Gamma, inverse Gaussian, Gaussian) keep their rows: their moment start and `aic` count the
//! rows.
use super::glmm::GlmmFit;
use super::response::{ExtendedFamily, ParameterModel, ResponseFamily};
use crate::error::Result;
use crate::model::family::{Distribution, Link};
use crate::model::identical_rows::{RowColumn, RowGroups};
use crate::spec::{ModelSpec, RandomTerm};

/// The largest share of distinct rows for which merging is done: above it the fit would save
/// under 10% of its row work, too little to matter.
const MERGE_AT_MOST: f64 = 0.9;

/// A model's distinct rows, owned, with what spreads a fit on them back to every row.
pub struct MergedRows {
    groups: RowGroups,
    y: Vec<f64>,
    x: Vec<f64>,
    weights: Vec<f64>,
    offset: Option<Vec<f64>>,
    levels: Vec<Vec<u32>>,
    z: Vec<Vec<f64>>,
    n_trials: Vec<f64>,
    eta_start: Vec<f64>,
    family: ResponseFamily,
    /// The rows' own prior weights (`None`: all 1).
    row_weights: Option<Vec<f64>>,
}

impl MergedRows {
    /// The distinct rows of `spec` with `family`'s designs, `n_trials` and `eta_start`, or
    /// `None` where more than [`MERGE_AT_MOST`] of the rows are distinct, the family's
    /// criterion does not add up over merged rows (see the module doc) or the model holds no
    /// rows.
    pub fn new(
        spec: &ModelSpec<'_>,
        family: &ResponseFamily,
        n_trials: &[f64],
        eta_start: &[f64],
    ) -> Option<Self> {
        let n = spec.n;
        if !spec.has_rows() || n_trials.len() != n || eta_start.len() != n {
            return None;
        }
        // With the square-root link PIRLS may creep towards a mode at η = 0 and then names the
        // row it found there (sqrt_basin.rs); where it ends on that creep depends on rounding,
        // which merging changes, so those fits keep their rows.
        if family.link() == Link::Sqrt {
            return None;
        }
        let extended = match family {
            ResponseFamily::Extended(f) => Some(f),
            ResponseFamily::Glm(f) => {
                // 0/1 responses with whole weights: `log p` of `aᵢ` successes (or failures)
                // of `aᵢ` trials is `aᵢ log μ` (or `aᵢ log(1 − μ)`); R's `aic` rounds a
                // fractional weight of a 0 to its trials, which would not add up.
                let whole = |w: &[f64]| w.iter().all(|v| v.fract() == 0.0);
                let binary = || {
                    spec.y.iter().all(|&y| y == 0.0 || y == 1.0) && spec.weights.is_none_or(whole)
                };
                let adds_up = match f.dist {
                    Distribution::Poisson => true,
                    Distribution::Binomial => n_trials.iter().any(|&m| m > 1.0) || binary(),
                    _ => false,
                };
                if !adds_up {
                    return None;
                }
                None
            }
        };
        let reals = |values: &[f64], k: usize| (values.len() == n * k).then_some(());
        let mut columns = vec![
            RowColumn::Reals {
                values: spec.y,
                k: 1,
            },
            RowColumn::Reals {
                values: spec.x,
                k: spec.p,
            },
            RowColumn::Reals {
                values: n_trials,
                k: 1,
            },
            RowColumn::Reals {
                values: eta_start,
                k: 1,
            },
        ];
        if let Some(o) = spec.offset {
            columns.push(RowColumn::Reals { values: o, k: 1 });
        }
        for t in &spec.terms {
            columns.push(RowColumn::Levels(&t.levels));
            columns.push(RowColumn::Reals {
                values: t.z,
                k: t.q,
            });
        }
        let parts = extended.map_or([&None, &None], |f| [&f.zi, &f.disp]);
        for m in parts.into_iter().flatten() {
            reals(&m.x, m.k)?;
            columns.push(RowColumn::Reals {
                values: &m.x,
                k: m.k,
            });
            if let Some(o) = &m.offset {
                reals(o, 1)?;
                columns.push(RowColumn::Reals { values: o, k: 1 });
            }
        }
        let groups = RowGroups::of_columns(n, &columns);
        if groups.n_groups() as f64 > MERGE_AT_MOST * n as f64 {
            return None;
        }
        let part = |m: &Option<ParameterModel>| {
            m.as_ref().map(|m| ParameterModel {
                x: groups.take(&m.x, m.k),
                k: m.k,
                offset: m.offset.as_ref().map(|o| groups.take(o, 1)),
            })
        };
        let family = match extended {
            Some(f) => ResponseFamily::Extended(ExtendedFamily {
                zi: part(&f.zi),
                disp: part(&f.disp),
                ..f.clone()
            }),
            None => family.clone(),
        };
        Some(Self {
            y: groups.take(spec.y, 1),
            x: groups.take(spec.x, spec.p),
            weights: groups.weight_sums(spec.weights),
            offset: spec.offset.map(|o| groups.take(o, 1)),
            levels: spec
                .terms
                .iter()
                .map(|t| groups.take_levels(&t.levels))
                .collect(),
            z: spec.terms.iter().map(|t| groups.take(t.z, t.q)).collect(),
            n_trials: groups.take(n_trials, 1),
            eta_start: groups.take(eta_start, 1),
            family,
            row_weights: spec.weights.map(<[f64]>::to_vec),
            groups,
        })
    }

    /// The model on the distinct rows: `spec`'s (the one the rows were merged from) terms,
    /// grouping factors and covariance structures on the merged rows, each of weight the sum
    /// of its rows' prior weights.
    pub fn spec(&self, spec: &ModelSpec<'_>) -> Result<ModelSpec<'_>> {
        let terms = spec
            .terms
            .iter()
            .zip(self.levels.iter().zip(&self.z))
            .map(|(t, (levels, z))| RandomTerm {
                levels: levels.clone(),
                n_levels: t.n_levels,
                z,
                q: t.q,
                factor_id: t.factor_id,
                predictor: t.predictor,
            })
            .collect();
        let mut merged = ModelSpec::new(
            &self.y,
            &self.x,
            spec.p,
            Some(&self.weights),
            self.offset.as_deref(),
            terms,
        )?
        .with_covariances(spec.covariances.clone())?;
        merged.row_numbers = Some(self.groups.first_rows());
        Ok(merged)
    }

    /// The model a fit or profile runs on: `spec` (the caller's rows) with `family`, `n_trials`
    /// and `eta_start`, on the distinct rows where `merged` holds them ([`Self::new`]), else
    /// as given.
    pub fn model_to_fit<'s>(
        merged: Option<&'s MergedRows>,
        spec: &ModelSpec<'s>,
        family: &ResponseFamily,
        n_trials: &'s [f64],
        eta_start: &'s [f64],
    ) -> Result<(ModelSpec<'s>, ResponseFamily, &'s [f64], &'s [f64])> {
        Ok(match merged {
            Some(m) => (m.spec(spec)?, m.family.clone(), &m.n_trials, &m.eta_start),
            None => (spec.clone(), family.clone(), n_trials, eta_start),
        })
    }

    /// A fit on the merged rows as the fit on every row reads: its per-row values spread back,
    /// the working weights shared out in proportion to the rows' prior weights.
    pub fn expand(&self, fit: &mut GlmmFit) {
        let g = &self.groups;
        let (rows_w, sums) = (self.row_weights.as_deref(), &self.weights);
        fit.eta = g.spread(&fit.eta);
        fit.mu = g.spread(&fit.mu);
        fit.zi_logit = g.spread(&fit.zi_logit);
        fit.working_weights = g.share(&fit.working_weights, rows_w, sums);
        for w in &mut fit.zi_working_weights {
            *w = g.share(w, rows_w, sums);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::glmm::{GeneralizedLinearMixedModel, PirlsOptions};
    use crate::fit::response::{LaplaceWeights, ResponseFamily};
    use crate::model::density::Density;

    /// A zero-inflated Poisson on 60 rows that repeat (5 groups × 2 levels of x, counts 0–2),
    /// with weights 1 and 2 within a group of equal rows and random effects in both predictors.
    struct Rows {
        y: Vec<f64>,
        x: Vec<f64>,
        w: Vec<f64>,
        levels: Vec<u32>,
        ones: Vec<f64>,
    }

    fn rows() -> Rows {
        let n = 60;
        let levels: Vec<u32> = (0..n).map(|i| (i % 5) as u32).collect();
        let dose: Vec<f64> = (0..n).map(|i| ((i / 5) % 2) as f64).collect();
        let y = (0..n).map(|i| ((i * 7 + i / 11) % 3) as f64).collect();
        let x = [vec![1.0; n], dose].concat();
        let w = (0..n).map(|i| if i % 4 == 0 { 2.0 } else { 1.0 }).collect();
        let ones = vec![1.0; n];
        Rows {
            y,
            x,
            w,
            levels,
            ones,
        }
    }

    fn spec(r: &Rows) -> ModelSpec<'_> {
        let term = |factor_id| RandomTerm {
            levels: r.levels.clone(),
            n_levels: 5,
            z: &r.ones,
            q: 1,
            factor_id,
            predictor: Default::default(),
        };
        let terms = vec![term(0), term(1).in_zero_inflation()];
        ModelSpec::new(&r.y, &r.x, 2, Some(&r.w), None, terms).expect("spec")
    }

    fn family(n: usize) -> ExtendedFamily {
        ExtendedFamily {
            density: Density::Poisson,
            link: Link::Log,
            disp: None,
            zi: Some(ParameterModel {
                x: vec![1.0; n],
                k: 1,
                offset: None,
            }),
            laplace: LaplaceWeights::Observed,
        }
    }

    /// The Laplace deviance and its gradient at `pars` of `spec` with `family`.
    fn criterion(spec: ModelSpec<'_>, family: ResponseFamily, pars: &[f64]) -> (f64, Vec<f64>) {
        let n = spec.n;
        let mut glmm = GeneralizedLinearMixedModel::with_family(
            spec,
            family,
            vec![1.0; n],
            vec![0.1; n],
            PirlsOptions::default(),
            faer::Par::Seq,
        )
        .expect("model");
        glmm.laplace_gradient(pars).expect("criterion")
    }

    #[test]
    fn merged_rows_give_the_criterion_of_every_row() {
        let r = rows();
        let full = spec(&r);
        let fam = ResponseFamily::Extended(family(full.n));
        let (ones, start) = (vec![1.0; full.n], vec![0.1; full.n]);
        let merged = MergedRows::new(&full, &fam, &ones, &start).expect("rows repeat");
        let (n, groups) = (merged.groups.n_rows(), merged.groups.n_groups());
        assert_eq!(n, 60);
        // 5 groups × 2 doses × 3 counts.
        assert_eq!(groups, 30);
        // Each merged row stands for the first of its rows; the weights add up.
        let m = merged.spec(&full).expect("merged spec");
        for g in 0..m.n {
            let first = m.observation(g) - 1;
            assert_eq!(m.y[g], r.y[first]);
            assert_eq!(merged.groups.group()[first] as usize, g);
        }
        let total: f64 = m.weights.expect("weights").iter().sum();
        assert_eq!(total, r.w.iter().sum::<f64>());
        // (θ, θ_zi, zi intercept, β) away from the optimum: the same criterion and gradient.
        for pars in [[0.7, 0.4, -0.8, 0.2, 0.3], [1.3, 0.9, 0.5, -0.4, 0.8]] {
            let (f_full, g_full) = criterion(spec(&r), fam.clone(), &pars);
            let (f_merged, g_merged) = criterion(m.clone(), merged.family.clone(), &pars);
            assert!(
                (f_full - f_merged).abs() < 1e-10 * f_full.abs(),
                "{f_full} {f_merged}"
            );
            for (a, b) in g_full.iter().zip(&g_merged) {
                assert!(
                    (a - b).abs() < 1e-8 * (1.0 + a.abs()),
                    "{g_full:?} {g_merged:?}"
                );
            }
        }
    }

    #[test]
    fn binomial_rows_merge_only_where_the_logs_add_up() {
        let r = rows();
        let mut full = spec(&r);
        let ones = vec![1.0; 60];
        let binomial =
            ResponseFamily::Glm(crate::family::Family::new("binomial", "logit").unwrap());
        // Counts 0-2 as proportions of one trial are not 0/1: not merged.
        assert!(MergedRows::new(&full, &binomial, &ones, &ones).is_none());
        let y01: Vec<f64> = r.y.iter().map(|&y| f64::from(y > 0.0)).collect();
        full.y = &y01;
        // 0/1 with whole weights: merged.
        assert!(MergedRows::new(&full, &binomial, &ones, &ones).is_some());
        // A fractional weight: R's aic rounds it to trials, which do not add up.
        let half: Vec<f64> = r.w.iter().map(|w| w * 0.5).collect();
        full.weights = Some(&half);
        assert!(MergedRows::new(&full, &binomial, &ones, &ones).is_none());
        // With R's n > 1 (the trials in the key), proportions merge.
        let trials = vec![2.0; 60];
        let share: Vec<f64> = r.y.iter().map(|y| y / 2.0).collect();
        full.y = &share;
        assert!(MergedRows::new(&full, &binomial, &trials, &ones).is_some());
    }

    #[test]
    fn rows_that_all_differ_are_not_merged() {
        let mut r = rows();
        r.y = (0..60).map(f64::from).collect();
        let full = spec(&r);
        let (ones, start) = (vec![1.0; 60], vec![0.1; 60]);
        let fam = ResponseFamily::Extended(family(60));
        assert!(MergedRows::new(&full, &fam, &ones, &start).is_none());
    }
}
