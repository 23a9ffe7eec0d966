//! A first-order prediction of the conditional modes at a new point of stage 2, to start PIRLS
//! from (lme4's families).
//!
//! The modes `û` solve `u = Aᵀ s(η)` with `A = ZΛ`, `η = offset + Xβ + A u` and `s` the rows'
//! scores. Differentiating at `û` (`W` the rows' observed information, `H_O = I + AᵀWA`):
//!
//! ```text
//!   H_O dû = dAᵀ s − Aᵀ W dη₀,   dη₀ = X dβ + Z dΛ û   (the change of η at fixed u),
//! ```
//!
//! with `dAᵀ s` at level `l`, column `c` of a block: `Σ_{i ∈ l} Σ_r z̃ᵢ,ᵣ dT[r, c] sᵢ`. The
//! Laplace gradient has every ingredient at its point (the factor of `H_O`, `s`, `W`, the rows
//! of `A` and `Z`), so it keeps them ([`ModeLinearization`]); the next evaluation, when it
//! starts from exactly those modes (a quasi-Newton step or a backtrack), starts PIRLS from
//! `û + dû` instead of `û`: its first Newton step is then of the size of the prediction's
//! `O(|dx|²)` error rather than of `dû`, which saves about one PIRLS iteration (a pass over
//! the rows with an exponential and a logarithm each, a factorization and a solve) for one
//! pass and one sparse solve. PIRLS converges to the same modes from either start.
use super::glmm::GeneralizedLinearMixedModel;
use super::laplace_gradient::DenseLayout;
use crate::linalg::selected_inverse::SparseCholesky;
use crate::linpred;

/// What [`GeneralizedLinearMixedModel::laplace_gradient`] leaves for the next prediction: its
/// point, its modes (dense layout) and Λ, the factor of `H_O` there and the rows' `s` and `W`.
#[derive(Clone)]
pub(super) struct ModeLinearization {
    pub(super) pars: Vec<f64>,
    pub(super) modes: Vec<f64>,
    pub(super) lambda: Vec<Vec<f64>>,
    pub(super) factor: SparseCholesky,
    pub(super) score: Vec<f64>,
    pub(super) information: Vec<f64>,
}

impl GeneralizedLinearMixedModel<'_> {
    /// Moves the modes to `û + dû` for `pars = (par, β)`, when the model is at the modes the
    /// last gradient left (with its linearization); otherwise leaves them as they are. The
    /// linearization is used once.
    pub(super) fn predict_modes(&mut self, pars: &[f64]) {
        let Some(lin) = self.mode_linearization.take() else {
            return;
        };
        let nth = self.re.n_par();
        let p = self.spec.p;
        if pars.len() != nth + p || lin.pars.len() != pars.len() {
            return;
        }
        let layout = &self.pirls.joint_cp.layout;
        let modes =
            linpred::split_blocks(&self.re, layout, &self.pirls.u1, &self.pirls.u2).concat();
        if modes != lin.modes {
            return;
        }
        let Some(rows) = self.design_rows.as_ref() else {
            return;
        };
        let theta = if self.re.all_unstructured() {
            pars[..nth].to_vec()
        } else {
            self.re.theta_of(&pars[..nth])
        };
        let mut lambda = lin.lambda.clone();
        if self.re.set_lambda(&theta, &mut lambda).is_err() {
            return;
        }
        let dense = DenseLayout::new(&self.re);
        let (n, m) = (self.spec.n, dense.per_row);
        // dη₀ = X dβ + Z dΛ û, and dAᵀ s into the right-hand side.
        let mut d_eta = vec![0.0; n];
        for j in 0..p {
            let d_beta = pars[nth + j] - lin.pars[nth + j];
            if d_beta != 0.0 {
                let col = &self.spec.x[j * n..(j + 1) * n];
                for (e, x) in d_eta.iter_mut().zip(col) {
                    *e += x * d_beta;
                }
            }
        }
        let mut rhs = vec![0.0; dense.q];
        let mut start = 0;
        for (b, block) in self.re.blocks.iter().enumerate() {
            let q = block.q;
            let d_t: Vec<f64> = lambda[b]
                .iter()
                .zip(&lin.lambda[b])
                .map(|(new, old)| new - old)
                .collect();
            if d_t.iter().any(|&v| v != 0.0) {
                for (i, de) in d_eta.iter_mut().enumerate() {
                    let z = &rows.z[i * m + start..i * m + start + q];
                    let idx = &rows.index[i * m + start..i * m + start + q];
                    let s = lin.score[i];
                    for c in 0..q {
                        // Σ_r z̃ᵢ,ᵣ dT[r, c] (T lower triangular: r ≥ c).
                        let zt: f64 = (c..q).map(|r| z[r] * d_t[c * q + r]).sum();
                        *de += zt * lin.modes[idx[c]];
                        rhs[idx[c]] += zt * s;
                    }
                }
            }
            start += q;
        }
        for i in 0..n {
            let v = lin.information[i] * d_eta[i];
            if v != 0.0 {
                for x in 0..m {
                    rhs[rows.index[i * m + x]] -= rows.a[i * m + x] * v;
                }
            }
        }
        if lin.factor.solve_in_place(&mut rhs).is_err() || !rhs.iter().all(|v| v.is_finite()) {
            return;
        }
        let predicted: Vec<f64> = lin.modes.iter().zip(&rhs).map(|(u, d)| u + d).collect();
        linpred::join_blocks(
            &self.re,
            &self.pirls.joint_cp.layout,
            &predicted,
            &mut self.pirls.u1,
            &mut self.pirls.u2,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::fit::glmm::{GeneralizedLinearMixedModel, PirlsOptions};
    use crate::fit::response::ResponseFamily;
    use crate::fit::test_models::SlopeAndCrossed;
    use crate::linpred;
    use crate::model::family::Family;
    use crate::spec::{ModelSpec, RandomTerm};

    fn modes(glmm: &GeneralizedLinearMixedModel<'_>) -> Vec<f64> {
        let layout = &glmm.pirls.joint_cp.layout;
        linpred::split_blocks(&glmm.re, layout, &glmm.pirls.u1, &glmm.pirls.u2).concat()
    }

    fn largest_difference(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    /// Binomial (logit, probit: the latter moves the modes by the observed information, not
    /// the Laplace weights), Poisson, Gamma and inverse Gaussian (whose modes minimize the
    /// deviance plus |u|², as the others') on 90 rows with a random intercept and slope by one
    /// factor and a crossed intercept: from a gradient's point x₀ the predicted modes at
    /// x₀ + δd are within O(δ²) of PIRLS's modes there (halving δ quarters the error), far
    /// closer than the modes at x₀, and the criterion at x₀ + δd is the same from either start.
    #[test]
    fn predicted_modes_are_second_order_accurate() {
        let data = SlopeAndCrossed::new();
        let cases = [
            ("binomial", "logit", &data.prop, &data.trials),
            ("binomial", "probit", &data.prop, &data.trials),
            ("poisson", "log", &data.counts, &data.ones),
            ("Gamma", "log", &data.positive, &data.trials),
            ("inverse.gaussian", "log", &data.positive, &data.ones),
        ];
        let x0 = [0.8, 0.3, 0.5, 0.6, 0.2, 0.25];
        let direction = [0.5, -0.3, 0.4, 0.8, -1.0, 0.7];
        for (dist, link, y, w) in cases {
            let mut glmm = data.model((dist, link), y, w, 0.1);
            glmm.pirls.step_tol = 1e-13;
            let mut errors = Vec::new();
            for delta in [2e-2, 1e-2] {
                glmm.laplace_gradient(&x0).expect("gradient");
                let at_x0 = modes(&glmm);
                let x1: Vec<f64> = x0
                    .iter()
                    .zip(direction)
                    .map(|(a, d)| a + delta * d)
                    .collect();
                glmm.predict_modes(&x1);
                let predicted = modes(&glmm);
                assert!(glmm.mode_linearization.is_none(), "used once");
                let f_predicted = glmm.objective_theta_beta(&x1, None).expect("deviance");
                let exact = modes(&glmm);
                let moved = largest_difference(&exact, &at_x0);
                let error = largest_difference(&exact, &predicted);
                assert!(
                    error < 0.05 * moved,
                    "{dist} {link} δ {delta}: {error} vs {moved}"
                );
                // From the old modes PIRLS finds the same criterion.
                glmm.laplace_gradient(&x0).expect("gradient");
                glmm.mode_linearization = None;
                let f_old = glmm.objective_theta_beta(&x1, None).expect("deviance");
                assert!(
                    (f_predicted - f_old).abs() < 1e-9 * f_old.abs(),
                    "{dist} {link}"
                );
                errors.push(error);
            }
            let ratio = errors[0] / errors[1];
            assert!(
                (3.0..5.5).contains(&ratio),
                "{dist} {link}: error ratio {ratio}"
            );
        }
    }

    /// Modes other than those of the gradient's point (a restored warm start) are left alone.
    #[test]
    fn no_prediction_from_other_modes() {
        let n = 40;
        let g: Vec<u32> = (0..n).map(|i| (i % 8) as u32).collect();
        let x = [vec![1.0; n], (0..n).map(|i| (i % 5) as f64 / 4.0).collect()].concat();
        let ones = vec![1.0; n];
        let y: Vec<f64> = (0..n).map(|i| ((i * 7 + i / 3) % 2) as f64).collect();
        let terms = vec![RandomTerm {
            levels: g,
            n_levels: 8,
            z: &ones,
            q: 1,
            factor_id: 0,
            predictor: Default::default(),
        }];
        let spec = ModelSpec::new(&y, &x, 2, None, None, terms).expect("spec");
        let mut glmm = GeneralizedLinearMixedModel::with_family(
            spec,
            ResponseFamily::Glm(Family::new("binomial", "logit").expect("family")),
            ones.clone(),
            vec![0.0; n],
            PirlsOptions::default(),
            faer::Par::Seq,
        )
        .expect("model");
        glmm.prepare_glm_gradient().expect("pattern");
        let start = glmm.pirls.warm_start();
        glmm.laplace_gradient(&[0.9, 0.1, 0.3]).expect("gradient");
        glmm.pirls.restore(&start);
        let before = modes(&glmm);
        glmm.predict_modes(&[1.0, 0.2, 0.2]);
        assert_eq!(modes(&glmm), before);
    }
}
