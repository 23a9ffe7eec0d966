//! Test fixtures of the fit module: 90 rows with a random intercept and slope by one factor (9
//! levels) and a crossed intercept (6 levels), responses for lme4's families, and the model of
//! one family on them with the gradient's sparse system prepared.
use super::glmm::{GeneralizedLinearMixedModel, PirlsOptions};
use super::response::ResponseFamily;
use crate::model::family::Family;
use crate::spec::{ModelSpec, RandomTerm};

/// The data (owned, so that models can borrow them).
pub(super) struct SlopeAndCrossed {
    pub(super) n: usize,
    g: Vec<u32>,
    h: Vec<u32>,
    x: Vec<f64>,
    z_slope: Vec<f64>,
    pub(super) ones: Vec<f64>,
    /// Binomial trials (1 to 4), also the prior weights of the families with a dispersion.
    pub(super) trials: Vec<f64>,
    /// Proportions of successes, counts, and positive values.
    pub(super) prop: Vec<f64>,
    pub(super) counts: Vec<f64>,
    pub(super) positive: Vec<f64>,
}

impl SlopeAndCrossed {
    pub(super) fn new() -> Self {
        let n = 90;
        let xs: Vec<f64> = (0..n).map(|i| ((i * 37 % 17) as f64 - 8.0) / 8.0).collect();
        let trials: Vec<f64> = (0..n).map(|i| 1.0 + (i % 4) as f64).collect();
        let successes: Vec<f64> = (0..n).map(|i| ((i * 5 + i / 7) % 5) as f64).collect();
        let counts: Vec<f64> = (0..n).map(|i| ((i * 3 + i / 4) % 6) as f64).collect();
        Self {
            n,
            g: (0..n).map(|i| (i % 9) as u32).collect(),
            h: (0..n).map(|i| ((i * 7 / 5) % 6) as u32).collect(),
            x: [vec![1.0; n], xs.clone()].concat(),
            z_slope: [vec![1.0; n], xs].concat(),
            ones: vec![1.0; n],
            prop: (0..n)
                .map(|i| successes[i].min(trials[i]) / trials[i])
                .collect(),
            positive: (0..n)
                .map(|i| 0.4 + 0.7 * counts[i] + 0.3 * ((i * 11 % 7) as f64))
                .collect(),
            trials,
            counts,
        }
    }

    /// The model of family `dist` with `link` for response `y` and prior weights `w` (`n` the
    /// binomial trials), PIRLS starting from `eta0`, with the gradient's sparse system built.
    /// θ = (T₁₁, T₂₁, T₂₂ of the slope term; the crossed intercept), then β (2).
    pub(super) fn model<'a>(
        &'a self,
        (dist, link): (&str, &str),
        y: &'a [f64],
        w: &'a [f64],
        eta0: f64,
    ) -> GeneralizedLinearMixedModel<'a> {
        let terms = vec![
            RandomTerm {
                levels: self.g.clone(),
                n_levels: 9,
                z: &self.z_slope,
                q: 2,
                factor_id: 0,
                predictor: Default::default(),
            },
            RandomTerm {
                levels: self.h.clone(),
                n_levels: 6,
                z: &self.ones,
                q: 1,
                factor_id: 1,
                predictor: Default::default(),
            },
        ];
        let spec = ModelSpec::new(y, &self.x, 2, Some(w), None, terms).expect("spec");
        let family = Family::new(dist, link).expect("family");
        let mut glmm = GeneralizedLinearMixedModel::with_family(
            spec,
            ResponseFamily::Glm(family),
            self.trials.clone(),
            vec![eta0; self.n],
            PirlsOptions::default(),
            faer::Par::Seq,
        )
        .expect("model");
        glmm.prepare_glm_gradient().expect("pattern");
        glmm
    }
}
