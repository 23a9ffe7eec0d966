//! The exact gradient of the Laplace deviance of a GLMM whose family has its own parameters
//! (glmmTMB's families, zero inflation, dispersion models; `glmm.nb()`), or of one of lme4's
//! fits (binomial, Poisson; Gamma, inverse Gaussian and Gaussian with the dispersion estimated
//! from the deviance, see the end of [`GeneralizedLinearMixedModel::laplace_gradient`]), with
//! respect to every parameter `ψ = (par, extra, β)`.
//!
//! With `A = ZΛ` (rows `Aᵢ`), the spherical modes `û` of the random effects, the per-row
//! log-likelihood `aᵢℓᵢ(ηᵢ, ρᵢ)` (`ρᵢ` the row's log dispersion and zero-inflation logit), its
//! η-derivative `sᵢ`, observed information `wᵢ = −∂sᵢ/∂ηᵢ`, and the row's weight `vᵢ` in the
//! Laplace determinant (`wᵢ` itself as TMB has it, or the expected information as lme4's
//! glmer.nb has it) with `v′ᵢ = ∂vᵢ/∂ηᵢ`,
//!
//! ```text
//!   D(ψ) = −2 Σ aᵢℓᵢ + ‖û‖² + log|H|,   H = I + Aᵀ V A,   û = Aᵀ s (the mode).
//! ```
//!
//! The first two terms are stationary in `u` at `û`, so only their explicit dependence counts;
//! `log|H|` moves with `ψ` directly and through `û`, which moves with the observed information
//! `H_O = I + Aᵀ W A`: `dû = H_O⁻¹ [Aᵀ(−W dη₀ + ∂s/∂ρ dρ) + dΛᵀZᵀs]` (`dη₀` the change of η
//! at fixed `u`). With the leverages `cᵢ = Aᵢ H⁻¹ Aᵢᵀ`, `r = H_O⁻¹ Aᵀ(c ⊙ v′)` (one solve
//! carries every parameter's path through `û`) and `t = A r`:
//!
//! ```text
//!   ∂D/∂β_j  = Σᵢ X_ij (−2sᵢ + cᵢv′ᵢ − wᵢtᵢ)
//!   ∂D/∂b_e  = Σᵢ D_ie (−2 ∂(aℓ)ᵢ/∂ρᵢ + cᵢ ∂vᵢ/∂ρᵢ + tᵢ ∂sᵢ/∂ρᵢ)      (D the part's design)
//!   ∂D/∂θ_k  = Σᵢ [(−2sᵢ + cᵢv′ᵢ − wᵢtᵢ) z̃ᵢ,ᵣ ûᵢ,꜀ + sᵢ z̃ᵢ,ᵣ rᵢ,꜀ + 2 vᵢ z̃ᵢ,ᵣ (H⁻¹Aᵢᵀ)ᵢ,꜀]
//! ```
//!
//! where `θ_k` sits at row `r`, column `c` of its block's `T` and `z̃ᵢ,ᵣ`, `ûᵢ,꜀`, `rᵢ,꜀`,
//! `(H⁻¹Aᵢᵀ)ᵢ,꜀` are read at observation `i`'s level of that block; the covariance parameters
//! `par` of structured terms follow by the chain rule through `θ(par)`. The row derivatives
//! in `η` and in the zero-inflation logit (third derivatives of `ℓ` included) are in closed
//! form ([`Response::row_jet`]); those in the log dispersion are central differences of
//! [`Response::row_terms`] (about 1e-9 relative, see [`ROW_STEP`]): exact enough for a
//! gradient, and valid for every density without the derivatives of its gamma functions in φ
//! written out for each.
//!
//! `H` is sparse ([`RandomEffectsSystem`]): the leverages `cᵢ` and the entries `(H⁻¹Aᵢᵀ)ᵢ,꜀`
//! read `H⁻¹` only at pairs of random effects that share a row, which its selected inverse
//! holds; `r` is one solve with the sparse factor (of `H_O` where it differs from `H`). The
//! gradient is offered up to [`MAX_DENSE_RANDOM`] random effects, as the paired gradient
//! (zero-inflation random effects) still inverts its `H` densely.
use super::glmm::{GeneralizedLinearMixedModel, SearchStart};
use super::mode_prediction::ModeLinearization;
use super::random_effects_system::RandomEffectsSystem;
use super::response::{LaplaceWeights, Response, ResponseFamily};
use crate::error::{invalid, MixedError, Result};
use crate::linpred;
use crate::optim::Stop;
use crate::spec::ModelSpec;
use crate::terms::ReStructure;
use std::sync::Arc;

/// Largest number of random effects for which the gradient is formed (dense `q × q` algebra).
pub const MAX_DENSE_RANDOM: usize = 1500;

/// Step of the row differences in log φ (relative to the value, at least 1): the
/// truncation error `h² f‴/6` (about 2e-9 relative) is a smooth function of the parameters, so
/// it also cancels from the differences of the gradient that give the Hessian; rounding
/// (about `1e-16/h`) stays far below it.
const ROW_STEP: f64 = 1e-4;

/// The derivatives of one row's likelihood needed by the gradient.
#[derive(Debug, Clone, Copy, Default)]
struct RowDerivatives {
    /// `∂(aℓ)/∂η`.
    s: f64,
    /// `−∂²(aℓ)/∂η²` (how the mode moves).
    w: f64,
    /// The row's weight in the Laplace determinant (`w` itself, or the expected information).
    wl: f64,
    /// `∂wl/∂η`.
    wl_eta: f64,
    /// For the dispersion (0) and zero-inflation (1) predictors: `∂(aℓ)/∂ρ`, `∂s/∂ρ`, `∂wl/∂ρ`.
    l_rho: [f64; 2],
    s_rho: [f64; 2],
    wl_rho: [f64; 2],
}

/// Central difference of `f` at 0 with step `h`: `f′(0) + O(h²)`.
fn derivative(f: &mut dyn FnMut(f64) -> Option<[f64; 3]>, h: f64) -> Option<[f64; 3]> {
    let (p, m) = (f(h)?, f(-h)?);
    Some([0, 1, 2].map(|k| (p[k] - m[k]) / (2.0 * h)))
}

/// Row `i`'s derivatives at its current predictors (`eta`, whose mean and its slope are `mean`,
/// and the response's φᵢ, πᵢ): those in η and in the zero-inflation logit in closed form
/// ([`Response::row_jet`]), those in log φ (`with_dispersion`) too where the density has them
/// written out, otherwise by central differences of [`Response::row_terms`].
fn row_derivatives(
    response: &Response<'_>,
    i: usize,
    eta: f64,
    mean: (f64, f64),
    with_dispersion: bool,
) -> Option<RowDerivatives> {
    let jet = response.row_jet(i, eta, mean)?;
    let mut out = RowDerivatives {
        s: jet.s,
        w: jet.w,
        wl: jet.wl,
        wl_eta: jet.wl_eta,
        l_rho: [0.0, jet.l_zi],
        s_rho: [0.0, jet.s_zi],
        wl_rho: [0.0, jet.wl_zi],
    };
    if let (true, Some(d)) = (with_dispersion, jet.dispersion) {
        (out.l_rho[0], out.s_rho[0], out.wl_rho[0]) = (d[0], d[1], d[2]);
    } else if with_dispersion {
        let (log_phi, zi_logit) = response.row_parts(i);
        let mean = response.row_mean(eta)?;
        let zi = Response::zero_inflation_logs(zi_logit);
        let h = ROW_STEP * log_phi.abs().max(1.0);
        let d = derivative(
            &mut |d| {
                let disp = response.row_dispersion(i, log_phi + d);
                response
                    .row_terms(i, mean, disp, zi, true)
                    .map(|(v, s, _, wl)| [v, s, wl])
            },
            h,
        )?;
        out.l_rho[0] = d[0];
        out.s_rho[0] = d[1];
        out.wl_rho[0] = d[2];
    }
    Some(out)
}

/// The random effects as one dense vector: block `b`, level `l`, column `c` at
/// `offset[b] + l q_b + c` (each block level-major, as [`linpred::split_blocks`] lays them out).
pub(super) struct DenseLayout {
    pub(super) offset: Vec<usize>,
    pub(super) q: usize,
    /// Entries per row of `A` (every row has one level of every block: `Σ_b q_b`).
    pub(super) per_row: usize,
}

impl DenseLayout {
    pub(super) fn new(re: &ReStructure) -> Self {
        let mut offset = Vec::with_capacity(re.blocks.len());
        let mut q = 0;
        let mut per_row = 0;
        for b in &re.blocks {
            offset.push(q);
            q += b.n_levels * b.q;
            per_row += b.q;
        }
        Self { offset, q, per_row }
    }
}

/// Rows of `A = ZΛ` and of `Z` in the dense layout: for row `i`, `per_row` indices (shared by
/// both) and values.
#[derive(Clone)]
pub(super) struct DesignRows {
    pub(super) index: Vec<usize>,
    pub(super) a: Vec<f64>,
    pub(super) z: Vec<f64>,
}

impl DesignRows {
    /// `A = ZΛ` again for new relative covariance factors `lambda` (the indices and `Z` do
    /// not depend on θ): what [`design_rows`] computes last, without rebuilding the rest.
    fn refresh(&mut self, re: &ReStructure, lambda: &[Vec<f64>], per_row: usize) {
        let mut start = 0;
        for (block, t) in re.blocks.iter().zip(lambda) {
            let q = block.q;
            for (a, z) in self
                .a
                .chunks_exact_mut(per_row)
                .zip(self.z.chunks_exact(per_row))
            {
                for c in 0..q {
                    a[start + c] = (c..q).map(|r| z[start + r] * t[c * q + r]).sum();
                }
            }
            start += q;
        }
    }
}

pub(super) fn design_rows(
    spec: &ModelSpec<'_>,
    re: &ReStructure,
    lambda: &[Vec<f64>],
    layout: &DenseLayout,
) -> DesignRows {
    let n = spec.n;
    let m = layout.per_row;
    let mut index = vec![0usize; n * m];
    let mut a = vec![0.0; n * m];
    let mut z = vec![0.0; n * m];
    let mut start = 0;
    for (b, block) in re.blocks.iter().enumerate() {
        let q = block.q;
        let levels = &spec.terms[block.terms[0]].levels;
        let t = &lambda[b];
        for (i, &level) in levels.iter().enumerate() {
            let row = i * m + start;
            let base = layout.offset[b] + level as usize * q;
            for c in 0..q {
                index[row + c] = base + c;
            }
            for (&term, &off) in block.terms.iter().zip(&block.term_col_offset) {
                let spec_term = &spec.terms[term];
                for k in 0..spec_term.q {
                    z[row + off + k] = spec_term.z[k * n + i];
                }
            }
            // (Z Λ)ᵢ at column c: Σ_{r ≥ c} z̃ᵢ,ᵣ T[r, c].
            for c in 0..q {
                let mut v = 0.0;
                for r in c..q {
                    v += z[row + r] * t[c * q + r];
                }
                a[row + c] = v;
            }
        }
        start += q;
    }
    DesignRows { index, a, z }
}

impl GeneralizedLinearMixedModel<'_> {
    /// Whether [`Self::laplace_gradient`] is available: at most [`MAX_DENSE_RANDOM`] random
    /// effects, and a family with its own parameters, or one of lme4's once
    /// [`Self::prepare_glm_gradient`] found the gradient cheap.
    pub fn has_laplace_gradient(&self) -> bool {
        let family = match self.response.family() {
            ResponseFamily::Extended(_) => true,
            ResponseFamily::Glm(_) => self
                .laplace_system
                .as_ref()
                .is_some_and(|s| s.cheap_inverse()),
        };
        family && DenseLayout::new(&self.re).q <= MAX_DENSE_RANDOM
    }

    /// For lme4's families, builds the sparse pattern of the random effects' system, which
    /// decides whether the exact gradient is cheap enough to replace the BOBYQA stage 2 and
    /// the Hessian's differences of the criterion ([`RandomEffectsSystem::cheap_inverse`]).
    /// Nothing for glmmTMB's families, which always have the gradient.
    pub(super) fn prepare_glm_gradient(&mut self) -> Result<()> {
        let ResponseFamily::Glm(_) = self.response.family() else {
            return Ok(());
        };
        let layout = DenseLayout::new(&self.re);
        if layout.q > MAX_DENSE_RANDOM || self.laplace_system.is_some() {
            return Ok(());
        }
        let rows = design_rows(&self.spec, &self.re, &self.pirls.lambda, &layout);
        cached_system(&mut self.laplace_system, layout.q, layout.per_row, &rows)?;
        Ok(())
    }

    /// The Laplace deviance at `pars = (par, extra, β)` and its gradient (see the module docs;
    /// with random effects in the zero-inflation logit, [`Self::paired_laplace_gradient`]).
    /// The model is left at the modes of `pars`.
    pub fn laplace_gradient(&mut self, pars: &[f64]) -> Result<(f64, Vec<f64>)> {
        if !self.has_laplace_gradient() {
            return invalid(
                "the exact gradient of the Laplace deviance is available only for families \
                 with their own parameters and at most 1500 random effects",
            );
        }
        if self.re.has_zero_inflation_terms() {
            // Rows with two linear predictors (laplace_gradient_paired.rs).
            return self.paired_laplace_gradient(pars);
        }
        // lme4's families: PIRLS's factor at the modes' weights (for log|L|²) is the sparse
        // factor of H below, so it is made once, there (a third of a warm PIRLS run).
        let glm = matches!(self.response.family(), ResponseFamily::Glm(_));
        // The criterion now for the other families; for lme4's once log|L|² is known.
        let criterion = if glm {
            // From the modes the last gradient predicts for `pars`, where it left them.
            self.predict_modes(pars);
            self.modes_theta_beta(pars)?;
            None
        } else {
            Some(self.objective_theta_beta(pars, None)?)
        };
        let spec = &self.spec;
        let re = &self.re;
        let n = spec.n;
        let p = spec.p;
        let nth_par = re.n_par();
        let ne = self.n_extra();
        let layout = DenseLayout::new(re);
        let (q, m) = (layout.q, layout.per_row);
        // Kept between calls: only A depends on θ.
        let rows = match self.design_rows.take() {
            Some(mut rows) => {
                rows.refresh(re, &self.pirls.lambda, m);
                rows
            }
            None => design_rows(spec, re, &self.pirls.lambda, &layout),
        };
        let par = self.pirls.par;
        let u: Vec<f64> = linpred::split_blocks(
            re,
            &self.pirls.joint_cp.layout,
            &self.pirls.u1,
            &self.pirls.u2,
        )
        .concat();
        // lme4's families weigh the Laplace determinant by the expected information.
        let (extended, laplace) = match self.response.family() {
            ResponseFamily::Extended(fam) => (Some(fam), fam.laplace),
            ResponseFamily::Glm(f) if f.is_canonical() => (None, LaplaceWeights::Observed),
            ResponseFamily::Glm(_) => (None, LaplaceWeights::Expected),
        };
        let with_dispersion = extended.is_some_and(|fam| fam.disp.is_some());
        let mut rd = Vec::with_capacity(n);
        // PIRLS left μ and dμ/dη at the modes' η.
        let (eta, mu, mu_eta) = (&self.pirls.eta, &self.pirls.mu, self.pirls.mu_eta());
        for i in 0..n {
            match row_derivatives(
                &self.response,
                i,
                eta[i],
                (mu[i], mu_eta[i]),
                with_dispersion,
            ) {
                Some(d) => rd.push(d),
                None => return invalid("the gradient's row derivatives are not finite"),
            }
        }
        // H = I + Aᵀ V A (sparse), with the Laplace weights (the determinant) and, when they
        // differ, with the observed information (how the mode moves).
        let system = cached_system(&mut self.laplace_system, q, m, &rows)?;
        let wl: Vec<f64> = rd.iter().map(|d| d.wl).collect();
        let factor = system.factor(&rows, &wl, par)?;
        let hinv = factor.selected_inverse()?;
        let mode_factor = match laplace {
            LaplaceWeights::Observed => None,
            LaplaceWeights::Expected => {
                let w: Vec<f64> = rd.iter().map(|d| d.w).collect();
                Some(system.factor(&rows, &w, par)?)
            }
        };
        // Each row's `(H⁻¹Aᵢᵀ)` at its own random effects (`ha`, n × m: the θ terms read it
        // again), from the row's m(m + 1)/2 entries of the selected inverse read once; the
        // leverages; and the one solve for the paths through û.
        let mut ha = vec![0.0; n * m];
        let mut c = vec![0.0; n];
        let mut r = vec![0.0; q];
        let mut hi = vec![0.0; m * m];
        for i in 0..n {
            let (idx, a) = (&rows.index[i * m..(i + 1) * m], &rows.a[i * m..(i + 1) * m]);
            for x in 0..m {
                for y in 0..=x {
                    let v = hinv.at(system.inverse_position(i, x, y));
                    hi[x * m + y] = v;
                    hi[y * m + x] = v;
                }
            }
            let hai = &mut ha[i * m..(i + 1) * m];
            let mut ci = 0.0;
            for x in 0..m {
                let row: f64 = hi[x * m..(x + 1) * m]
                    .iter()
                    .zip(a)
                    .map(|(h, ay)| h * ay)
                    .sum();
                hai[x] = row;
                ci += a[x] * row;
            }
            c[i] = ci;
            let v = ci * rd[i].wl_eta;
            for x in 0..m {
                r[idx[x]] += a[x] * v;
            }
        }
        mode_factor
            .as_ref()
            .unwrap_or(&factor)
            .solve_in_place(&mut r)?;
        let t: Vec<f64> = (0..n)
            .map(|i| {
                let (idx, a) = (&rows.index[i * m..(i + 1) * m], &rows.a[i * m..(i + 1) * m]);
                (0..m).map(|x| a[x] * r[idx[x]]).sum()
            })
            .collect();
        // η-weights shared by β and θ: −2sᵢ + cᵢw′ᵢ − wᵢtᵢ.
        let mut e: Vec<f64> = (0..n)
            .map(|i| -2.0 * rd[i].s + c[i] * rd[i].wl_eta - rd[i].w * t[i])
            .collect();
        // lme4's families with a dispersion: their aic is G(dev) (`aic_deviance_slope`), and
        // the mode minimizes dev + ‖u‖², so the above is the gradient of dev + ‖û‖² + log|H|;
        // add (G′ − 1) times the deviance's total derivative. Its path through the mode is
        // (−2û)ᵀ dû: with r₂ = H_O⁻¹(−2û) and t₂ = A r₂ it has the form of the leverages'
        // path, η-weights −2sᵢ − wᵢt₂ᵢ and θ's term sᵢ z̃ᵢ,ᵣ r₂ᵢ,꜀, so it joins `e` and `r`.
        let slope = match self.response.family() {
            ResponseFamily::Glm(family) => {
                let sw: f64 = self.response.prior_weights().iter().sum();
                family.aic_deviance_slope(self.pirls.drsum, n, sw)
            }
            ResponseFamily::Extended(_) => None,
        };
        if let Some(slope) = slope {
            let scale = slope - 1.0;
            let mut r2: Vec<f64> = u.iter().map(|v| -2.0 * v).collect();
            mode_factor
                .as_ref()
                .unwrap_or(&factor)
                .solve_in_place(&mut r2)?;
            for (i, ei) in e.iter_mut().enumerate() {
                let (idx, a) = (&rows.index[i * m..(i + 1) * m], &rows.a[i * m..(i + 1) * m]);
                let t2: f64 = (0..m).map(|x| a[x] * r2[idx[x]]).sum();
                *ei += scale * (-2.0 * rd[i].s - rd[i].w * t2);
            }
            for (rj, r2j) in r.iter_mut().zip(&r2) {
                *rj += scale * r2j;
            }
        }
        let mut grad = vec![0.0; nth_par + ne + p];
        for j in 0..p {
            let col = &spec.x[j * n..(j + 1) * n];
            grad[nth_par + ne + j] = col.iter().zip(&e).map(|(x, e)| x * e).sum();
        }
        let mut k0 = nth_par;
        let parts = extended.map_or([&None, &None], |fam| [&fam.disp, &fam.zi]);
        for (part, model) in parts.into_iter().enumerate() {
            let Some(model) = model else { continue };
            for col in 0..model.k {
                let d = &model.x[col * n..(col + 1) * n];
                grad[k0 + col] = (0..n)
                    .map(|i| {
                        let g = &rd[i];
                        d[i] * (-2.0 * g.l_rho[part] + c[i] * g.wl_rho[part] + t[i] * g.s_rho[part])
                    })
                    .sum();
            }
            k0 += model.k;
        }
        // θ: every element of every block's T.
        let nth = re.theta_pos.len();
        let mut gtheta = vec![0.0; nth];
        let mut block_start = Vec::with_capacity(re.blocks.len());
        let mut acc = 0;
        for b in &re.blocks {
            block_start.push(acc);
            acc += b.q;
        }
        for (k, pos) in re.theta_pos.iter().enumerate() {
            let (col_r, col_c) = (
                block_start[pos.block] + pos.row,
                block_start[pos.block] + pos.col,
            );
            let mut g = 0.0;
            for i in 0..n {
                let zr = rows.z[i * m + col_r];
                if zr == 0.0 {
                    continue;
                }
                let ic = rows.index[i * m + col_c];
                let hai = ha[i * m + col_c];
                g += zr * (e[i] * u[ic] + rd[i].s * r[ic] + 2.0 * rd[i].wl * hai);
            }
            gtheta[k] = g;
        }
        par_gradient(re, &pars[..nth_par], &gtheta, &mut grad[..nth_par]);
        self.design_rows = Some(rows);
        let f = match criterion {
            Some(f) => f,
            None => self.laplace_with_logdet(factor.logdet()),
        };
        // lme4's families, with a dispersion too: their modes minimize the deviance plus |u|²,
        // whose scores and information are those of the rows' derivatives here. (Before their
        // moment start took lme4's θ, the prediction had cost a Gamma fit PIRLS iterations,
        // 69 → 81; now it saves them: 36 random Gamma, inverse Gaussian and Gaussian-log fits
        // 2,246 → 1,965.)
        if glm {
            self.mode_linearization = Some(ModeLinearization {
                pars: pars.to_vec(),
                modes: u,
                lambda: self.pirls.lambda.clone(),
                factor: mode_factor.unwrap_or(factor),
                score: rd.iter().map(|d| d.s).collect(),
                information: rd.iter().map(|d| d.w).collect(),
            });
        }
        Ok((f, grad))
    }
}

/// The sparse pattern of `H` ([`RandomEffectsSystem`]) kept in `cache`, built the first time
/// it is needed (it depends only on the rows' levels).
pub(super) fn cached_system(
    cache: &mut Option<Arc<RandomEffectsSystem>>,
    q: usize,
    per_row: usize,
    rows: &DesignRows,
) -> Result<Arc<RandomEffectsSystem>> {
    if let Some(system) = cache {
        return Ok(Arc::clone(system));
    }
    let system = Arc::new(RandomEffectsSystem::new(q, per_row, rows)?);
    *cache = Some(Arc::clone(&system));
    Ok(system)
}

/// The gradient over the covariance parameters `par` from the one over θ, `gtheta`, into
/// `out`: the same for unstructured terms (`θ = par`), by the chain rule through `θ(par)`
/// otherwise, its derivatives by differences of that map.
///
/// At a structured term's optimum `gtheta` is not 0 (only its projection on the structure
/// is), so the derivatives' error is multiplied by it, and the Hessian, formed from
/// differences of this gradient a few millionths apart, divides it by that step: plain central
/// differences of step `1e-6` (rounding error ~2e-10 relative) put an error of ~1% on the
/// curvature of a `toep()` model's correlation parameters (against TMB's exact Hessian). Hence
/// five-point differences of step `1e-3` (rounding ~3e-13, truncation `h⁴/30` of the fifth
/// derivative; the map is polynomial in the standard deviations), and the plain central ones
/// only where those would reach beyond a correlation parameter's bound, where the map is
/// reflected.
pub(super) fn par_gradient(re: &ReStructure, par: &[f64], gtheta: &[f64], out: &mut [f64]) {
    if re.all_unstructured() {
        out.copy_from_slice(gtheta);
        return;
    }
    gradient_through(&par_jacobian(re, par), gtheta, out);
}

/// `out_k = gθ · dθ/dpar_k` for the columns `jacobian` of [`par_jacobian`].
pub(super) fn gradient_through(jacobian: &[Vec<f64>], gtheta: &[f64], out: &mut [f64]) {
    for (o, column) in out.iter_mut().zip(jacobian) {
        *o = gtheta.iter().zip(column).map(|(g, d)| g * d).sum();
    }
}

/// The columns `dθ/dpar_k` of the map from the covariance parameters to θ at `par`, by the
/// differences [`par_gradient`] describes.
pub(super) fn par_jacobian(re: &ReStructure, par: &[f64]) -> Vec<Vec<f64>> {
    let bounded = re.par_is_correlation();
    let (lower, upper) = (re.par_lower(), re.par_upper());
    let theta_at = |k: usize, d: f64| {
        let mut p = par.to_vec();
        p[k] += d;
        re.theta_of(&p)
    };
    (0..par.len())
        .map(|k| {
            let h = PAR_MAP_STEP * par[k].abs().max(0.1);
            let room = if bounded[k] {
                (par[k] - lower[k]).min(upper[k] - par[k])
            } else {
                f64::INFINITY
            };
            if 2.0 * h < room {
                let (m2, m1, p1, p2) = (
                    theta_at(k, -2.0 * h),
                    theta_at(k, -h),
                    theta_at(k, h),
                    theta_at(k, 2.0 * h),
                );
                (0..m1.len())
                    .map(|j| (m2[j] - 8.0 * m1[j] + 8.0 * p1[j] - p2[j]) / (12.0 * h))
                    .collect()
            } else {
                let step = 1e-6 * par[k].abs().max(1e-3);
                let (up, dn) = (theta_at(k, step), theta_at(k, -step));
                (0..up.len())
                    .map(|j| (up[j] - dn[j]) / (2.0 * step))
                    .collect()
            }
        })
        .collect()
}

/// Step (relative to the parameter, at least 0.1 of it) of the five-point differences of
/// `θ(par)` in [`par_gradient`].
const PAR_MAP_STEP: f64 = 1e-3;

/// Step of the second differences of [`GeneralizedLinearMixedModel::extra_information`]
/// (relative to the value, at least 1): truncation about 1e-7 relative, rounding about 1e-10.
const INFORMATION_STEP: f64 = 1e-3;

impl GeneralizedLinearMixedModel<'_> {
    /// The information of the family's own parameters (dispersion, then zero-inflation
    /// coefficients) given the random effects at their current modes:
    /// `I_k = Σᵢ D_ik² (−∂²(aᵢℓᵢ)/∂ρᵢ²)`, `D` the part's design and `ρᵢ` the row's log
    /// dispersion or zero-inflation logit, the second derivative a central second difference
    /// of [`Response::row_terms`] (valid for every density). `1/√I_k` is the standard error
    /// the coefficient would have with the random effects known: a scale for the quasi-Newton
    /// search that costs no evaluation of the criterion. `None` for a family without own
    /// parameters or where some row is invalid.
    pub(super) fn extra_information(&self) -> Option<Vec<f64>> {
        let ResponseFamily::Extended(fam) = self.response.family() else {
            return None;
        };
        let n = self.spec.n;
        let response = &self.response;
        let mut out = Vec::with_capacity(self.n_extra());
        for (part, model) in [&fam.disp, &fam.zi].into_iter().enumerate() {
            let Some(model) = model else { continue };
            let mut curvature = vec![0.0; n];
            for (i, c) in curvature.iter_mut().enumerate() {
                let (log_phi, zi_logit) = response.row_parts(i);
                let mean = response.row_mean(self.pirls.eta[i])?;
                let base = if part == 0 { log_phi } else { zi_logit };
                let h = INFORMATION_STEP * base.abs().max(1.0);
                let value = |d: f64| -> Option<f64> {
                    let (disp, zi) = if part == 0 {
                        (response.row_dispersion(i, log_phi + d), zi_logit)
                    } else {
                        (response.row_dispersion(i, log_phi), zi_logit + d)
                    };
                    let zi = Response::zero_inflation_logs(zi);
                    response.row_terms(i, mean, disp, zi, true).map(|t| t.0)
                };
                *c = -(value(h)? - 2.0 * value(0.0)? + value(-h)?) / (h * h);
            }
            for col in 0..model.k {
                let d = &model.x[col * n..(col + 1) * n];
                out.push(d.iter().zip(&curvature).map(|(x, c)| x * x * c).sum());
            }
        }
        Some(out)
    }
}

/// Largest number of quasi-Newton iterations of [`GeneralizedLinearMixedModel::gradient_search`].
const QN_MAX_ITER: usize = 500;
/// Largest step reductions of one line search.
const QN_MAX_BACKTRACKS: usize = 40;
/// Bounds of the factor by which a rejected step shrinks ([`backtrack_factor`]).
const QN_SHRINK_MIN: f64 = 0.1;
const QN_SHRINK_MAX: f64 = 0.5;
/// Relative size of a predicted decrease of the deviance below which a line search stops (the
/// deviance itself is accurate to about 1e-13 relative).
const QN_ROUNDING: f64 = 1e-13;
/// Largest step (whitened units, about one standard error each; a θ's unit is at most 1) of
/// a search direction that is the plain gradient step of a reset model (`2 I`: no positive
/// definite curvature measured yet): that step's length is the gradient's, which far from the
/// optimum means nothing. An inverse Gaussian fit whose moment start put θ at 1.24 (the
/// criterion concave there, the probed curvature negative, the gradient 1,277) stepped to
/// θ = −637 and backtracked through six evaluations to 0.70 (optimum 0.68): 17 evaluations
/// (bench/links.R), 13 with the cap; three crossed inverse Gaussian fits 40, 27 and 22, with
/// it 17, 23 and 19.
const QN_RESET_MAX_STEP: f64 = 1.0;
/// The factor by which the quasi-Newton model's steps grow after a full step along which the
/// criterion showed no positive curvature ([`GeneralizedLinearMixedModel::gradient_search`]).
const QN_CONCAVE_GROWTH: f64 = 4.0;
/// The gradient over the whitened coordinates `y` of a gradient search at `y` (first argument)
/// from the gradient over the original parameters (second).
type ToWhitenedGradient<'a> = dyn Fn(&[f64], &[f64]) -> Vec<f64> + 'a;
/// The criterion and its gradient at a point of the quasi-Newton search (`None` where they are
/// not finite).
type ValueAndGradient = Option<(f64, Vec<f64>)>;

/// Step (whitened units) of the forward differences of the gradient that measure the Hessian
/// where no step lowers the deviance ([`GeneralizedLinearMixedModel::gradient_search`]).
const QN_MEASURE_STEP: f64 = 1e-4;

/// Inverse curvature (whitened units, where a well-determined coordinate has about 1/2) from
/// which a coordinate counts as flat: its standard error is at least 14 times the one its
/// calibration found.
const QN_FLAT_INVERSE: f64 = 100.0;
/// Largest decrease of the deviance the flat coordinates together may still offer (by their
/// Newton steps) for the search to leave them where they are.
const QN_FLAT_DECREASE: f64 = 1e-9;

/// Marks as `held` (besides the coordinates on a bound) the flat coordinates when all of them
/// together promise less than [`QN_FLAT_DECREASE`]: `Σ g_j² H⁻¹_jj` over those whose inverse
/// curvature `H⁻¹_jj` (the BFGS approximation) is at least [`QN_FLAT_INVERSE`].
///
/// A coefficient on its way to ±∞ (a zero-inflation logit for a level without zeros to
/// explain) has a deviance like `c + a e^{β}`: gradient and curvature shrink together, every
/// Newton step is about one unit long, and what is left to gain, `a e^{β}`, is its Newton
/// decrement `g²/H`. Following it until its gradient is below `gtol` takes many more steps,
/// each of which disturbs the other coordinates' gradients through the BFGS update. Holding
/// such a coordinate once it cannot lower the deviance by more than 1e-9 lets the others
/// converge; it is released as soon as its promise grows again.
fn hold_flat(held: &mut [bool], g: &[f64], hinv: &[f64]) {
    let k = g.len();
    let flat: Vec<usize> = (0..k)
        .filter(|&j| !held[j] && hinv[j * k + j] >= QN_FLAT_INVERSE)
        .collect();
    let promise: f64 = flat.iter().map(|&j| g[j] * g[j] * hinv[j * k + j]).sum();
    if !flat.is_empty() && promise < QN_FLAT_DECREASE {
        for j in flat {
            held[j] = true;
        }
    }
}

/// The quasi-Newton model's inverse Hessian over the free coordinates when those marked `held`
/// stay where they are: with `H⁻¹` the model's inverse over all (`hinv`, `k × k`) and `A` the
/// held set, `(H_FF)⁻¹ = (H⁻¹)_FF − (H⁻¹)_FA ((H⁻¹)_AA)⁻¹ (H⁻¹)_AF` (the Schur complement), in
/// the free rows and columns of a `k × k` matrix. The free block of `H⁻¹` alone is the step of a
/// model in which the held coordinates move too: where they are coupled to the free ones (a
/// standard deviation held at its bound 0 against the others of its term) every such step
/// overshot and was cut back, and the search converged linearly. `None` when nothing is held
/// or `(H⁻¹)_AA` is not positive definite.
fn free_inverse(hinv: &[f64], held: &[bool]) -> Option<Vec<f64>> {
    let k = held.len();
    let a: Vec<usize> = (0..k).filter(|&j| held[j]).collect();
    let m = a.len();
    if m == 0 {
        return None;
    }
    let mut l: Vec<f64> = (0..m * m).map(|i| hinv[a[i % m] * k + a[i / m]]).collect();
    crate::small::chol_lower(&mut l, m)?;
    let mut out = hinv.to_vec();
    // With (H⁻¹)_AA = L Lᵀ the correction is (L⁻¹ (H⁻¹)_Ar)ᵀ (L⁻¹ (H⁻¹)_Ac).
    let rows: Vec<Vec<f64>> = (0..k)
        .map(|r| {
            let mut v: Vec<f64> = a.iter().map(|&c| hinv[r * k + c]).collect();
            crate::small::solve_lower(&l, m, &mut v);
            v
        })
        .collect();
    for r in (0..k).filter(|&r| !held[r]) {
        for c in (0..k).filter(|&c| !held[c]) {
            let correction: f64 = rows[r].iter().zip(&rows[c]).map(|(x, y)| x * y).sum();
            out[r * k + c] -= correction;
        }
    }
    Some(out)
}

/// The factor by which a line search shrinks a rejected step: the minimizer over `t ∈ [0, 1]`
/// of the cubic that matches the deviance along the step, `φ(t)`, in value and slope at both
/// ends (`φ(0) = f0`, `φ′(0) = s0 < 0` from the point, `φ(1) = f1`, `φ′(1) = s1` from the trial
/// and its exact gradient), or of the quadratic through `f0`, `s0`, `f1` where the cubic has no
/// minimum inside; clamped to [[`QN_SHRINK_MIN`], [`QN_SHRINK_MAX`]] (halving where neither
/// is usable). A step that overshot far lands near the minimum along its line in one
/// evaluation instead of after several halvings (Nocedal and Wright, *Numerical Optimization*,
/// eq. 3.59).
fn backtrack_factor(f0: f64, s0: f64, f1: f64, s1: f64) -> f64 {
    let d1 = s0 + s1 - 3.0 * (f1 - f0);
    let disc = d1 * d1 - s0 * s1;
    let cubic = if disc >= 0.0 {
        let d2 = disc.sqrt();
        let t = 1.0 - (s1 + d2 - d1) / (s1 - s0 + 2.0 * d2);
        t.is_finite().then_some(t)
    } else {
        None
    };
    let t = cubic.unwrap_or_else(|| {
        let curvature = f1 - f0 - s0;
        if curvature > 0.0 {
            -s0 / (2.0 * curvature)
        } else {
            QN_SHRINK_MAX
        }
    });
    if t.is_finite() {
        t.clamp(QN_SHRINK_MIN, QN_SHRINK_MAX)
    } else {
        QN_SHRINK_MAX
    }
}

/// Where the quasi-Newton search ended.
pub(super) struct GradientSearch {
    /// The point (whitened coordinates) and the criterion there.
    pub(super) y: Vec<f64>,
    pub(super) f: f64,
    /// Criterion evaluations (each with its gradient).
    pub(super) evaluations: usize,
    /// Whether the projected gradient fell below the tolerance.
    pub(super) converged: bool,
}

impl GeneralizedLinearMixedModel<'_> {
    /// Minimizes the Laplace deviance over `y` within `[lower, upper]` (the whitened
    /// coordinates of stage 2: `x = to_x(y)`, the gradient over `y` at `y` from
    /// `to_y_gradient(y, g)` for the gradient `g` over `x`) by a projected BFGS with the exact gradient ([`Self::laplace_gradient`]): a bound variable
    /// whose gradient pushes outward stays on its bound (a covariance parameter at 0); the
    /// others take the quasi-Newton direction, with a backtracking (Armijo) line search along
    /// the projected path. Stops when every free component of the gradient is below `gtol`
    /// (deviance units per standard error; flat coordinates with nothing left to offer are
    /// held, see [`hold_flat`]) or no step lowers the deviance any more; gives up (not
    /// converged) once it has used `max_evaluations`. `at_start`: the criterion and its
    /// gradient over `x` at `start` where the caller has them (not counted again), with the
    /// Hessian over `y` the calibration's probes measured ([`SearchStart`]), which starts the
    /// BFGS model where it is positive definite (else `2 I`, as after a reset).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gradient_search(
        &mut self,
        start: &[f64],
        at_start: Option<SearchStart>,
        (lower, upper): (&[f64], &[f64]),
        to_x: &dyn Fn(&[f64]) -> Vec<f64>,
        to_y_gradient: &ToWhitenedGradient<'_>,
        gtol: f64,
        max_evaluations: usize,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<GradientSearch> {
        let k = start.len();
        let clip = |y: &mut [f64]| {
            for j in 0..k {
                y[j] = y[j].max(lower[j]).min(upper[j]);
            }
        };
        let evaluations = std::cell::Cell::new(0usize);
        let mut eval = |model: &mut Self, y: &[f64]| -> Result<Option<(f64, Vec<f64>)>> {
            evaluations.set(evaluations.get() + 1);
            let x = to_x(y);
            let out = match model.laplace_gradient(&x) {
                Ok((f, g)) if f.is_finite() && g.iter().all(|v| v.is_finite()) => {
                    Some((f, to_y_gradient(y, &g)))
                }
                Ok(_) => None,
                Err(e) => {
                    model.record_failure(&e);
                    None
                }
            };
            let shown = out.as_ref().map_or(f64::INFINITY, |o| o.0);
            if progress(evaluations.get(), &x, shown) == Stop::Interrupt {
                return Err(MixedError::Optimizer("interrupted by the user".into()));
            }
            Ok(out)
        };
        let mut y = start.to_vec();
        clip(&mut y);
        let mut initial_hessian = None;
        let first = match at_start {
            Some(s) if y.as_slice() == start => {
                initial_hessian = Some(s.hessian);
                Some((s.f, to_y_gradient(&y, &s.gradient)))
            }
            _ => eval(self, &y)?,
        };
        let Some((mut f, mut g)) = first else {
            return invalid("the Laplace deviance or its gradient is not finite at the start");
        };
        // Inverse Hessian approximation, row-major k × k: the deviance's curvature is about 2
        // per standard error² in these coordinates.
        let mut hinv = vec![0.0; k * k];
        let reset = |h: &mut Vec<f64>| {
            h.iter_mut().for_each(|v| *v = 0.0);
            for j in 0..k {
                h[j * k + j] = 0.5;
            }
        };
        reset(&mut hinv);
        // Whether `hinv` is still the reset model (see [`QN_RESET_MAX_STEP`]).
        let mut plain = true;
        if let Some(inverse) = initial_hessian.filter(|h| h.len() == k * k).and_then(|h| {
            crate::linalg::spd_inverse::spd_inverse(
                faer::Mat::from_fn(k, k, |r, c| h[r * k + c]),
                faer::Par::Seq,
            )
        }) {
            for r in 0..k {
                for c in 0..k {
                    hinv[r * k + c] = inverse[(r, c)];
                }
            }
            plain = false;
        }
        // Whether the model has been measured once where no step lowered the deviance.
        let mut remeasured = false;
        let mut converged = false;
        for _ in 0..QN_MAX_ITER {
            if evaluations.get() >= max_evaluations {
                break;
            }
            let on_bound: Vec<bool> = (0..k)
                .map(|j| (y[j] <= lower[j] && g[j] > 0.0) || (y[j] >= upper[j] && g[j] < 0.0))
                .collect();
            let mut active = on_bound.clone();
            hold_flat(&mut active, &g, &hinv);
            let pg: Vec<f64> = (0..k).map(|j| if active[j] { 0.0 } else { g[j] }).collect();
            if pg.iter().all(|v| v.abs() < gtol) {
                converged = true;
                break;
            }
            // The model's inverse with the coordinates on a bound held (flat ones are left
            // out of the step but not out of the model: their curvature is not known well).
            let free = free_inverse(&hinv, &on_bound);
            let free = free.as_deref().unwrap_or(&hinv);
            let mut d: Vec<f64> = (0..k)
                .map(|r| {
                    if active[r] {
                        0.0
                    } else {
                        -(0..k)
                            .filter(|&c| !active[c])
                            .map(|c| free[r * k + c] * pg[c])
                            .sum::<f64>()
                    }
                })
                .collect();
            let slope: f64 = d.iter().zip(&pg).map(|(a, b)| a * b).sum();
            if slope >= 0.0 || !slope.is_finite() {
                reset(&mut hinv);
                plain = true;
                d = pg.iter().map(|v| -0.5 * v).collect();
            }
            // −gᵀH⁻¹g of the model the step comes from (before any cap).
            let model_slope: f64 = d.iter().zip(&pg).map(|(a, b)| a * b).sum();
            let longest = d.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
            if plain && longest > QN_RESET_MAX_STEP {
                d.iter_mut().for_each(|v| *v *= QN_RESET_MAX_STEP / longest);
            }
            let mut step = 1.0;
            let mut accepted = None;
            for _ in 0..QN_MAX_BACKTRACKS {
                let mut trial: Vec<f64> = (0..k).map(|j| y[j] + step * d[j]).collect();
                clip(&mut trial);
                let decrease: f64 = (0..k).map(|j| g[j] * (trial[j] - y[j])).sum();
                // A predicted decrease below the deviance's rounding cannot be verified: the
                // search is as far as the gradient's accuracy allows.
                if decrease >= -QN_ROUNDING * f.abs().max(1.0) {
                    break;
                }
                let mut shrink = QN_SHRINK_MAX;
                if let Some((ft, gt)) = eval(self, &trial)? {
                    if ft <= f + 1e-4 * decrease {
                        accepted = Some((trial, ft, gt));
                        break;
                    }
                    let slope_end: f64 = (0..k).map(|j| gt[j] * (trial[j] - y[j])).sum();
                    shrink = backtrack_factor(f, decrease, ft, slope_end);
                }
                step *= shrink;
            }
            let Some((trial, ft, gt)) = accepted else {
                // No step lowers the deviance. Where the whitened units are poor (a θ whose
                // probed curvature at the start was negative keeps the unit 1 however small its
                // standard error), the BFGS model can be too far off to find the last bit of
                // descent: the model is measured here once, by forward differences of the
                // gradient, and the search goes on (an inverse Gaussian fit stopped 1.3e-7
                // above the optimum with a gradient of 6.6e-3 along such a θ).
                let small = |v: &f64| v.abs() < 1e3 * gtol;
                if !remeasured && !pg.iter().all(small) {
                    remeasured = true;
                    if let Some(inverse) = self.measured_inverse_hessian(&y, &g, &mut eval)? {
                        hinv = inverse;
                        plain = false;
                        continue;
                    }
                }
                // As far as rounding allows, if the gradient is small per standard error: in
                // the whitened units or, after that measurement, by the model's own curvature
                // (`√(gᵀH⁻¹g)`, the gradient's length per standard error).
                let per_se = (-model_slope).max(0.0).sqrt();
                converged = pg.iter().all(small) || (remeasured && per_se < 1e3 * gtol);
                break;
            };
            let s: Vec<f64> = (0..k).map(|j| trial[j] - y[j]).collect();
            let yk: Vec<f64> = (0..k).map(|j| gt[j] - g[j]).collect();
            let sy: f64 = s.iter().zip(&yk).map(|(a, b)| a * b).sum();
            let small_change = (f - ft).abs() <= 1e-14 * f.abs().max(1.0);
            // A full step that lowered the criterion at least as much as its slope predicts:
            // no sign of positive curvature along it.
            let concave =
                step == 1.0 && f - ft >= -s.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>();
            (y, f, g) = (trial, ft, gt);
            if sy > 1e-12 * s.iter().map(|v| v * v).sum::<f64>().sqrt() {
                plain = false;
                // BFGS update of the inverse: H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ.
                let rho = 1.0 / sy;
                let hy: Vec<f64> = (0..k)
                    .map(|r| (0..k).map(|c| hinv[r * k + c] * yk[c]).sum())
                    .collect();
                let yhy: f64 = yk.iter().zip(&hy).map(|(a, b)| a * b).sum();
                for r in 0..k {
                    for c in 0..k {
                        hinv[r * k + c] += -rho * (hy[r] * s[c] + s[r] * hy[c])
                            + (rho * rho * yhy + rho) * s[r] * s[c];
                    }
                }
            } else if concave {
                // No positive curvature along a full step that lowered the criterion at least
                // as its slope predicts (the criterion is concave there): BFGS has nothing to
                // learn, and its steps would stay as short as this one. They grow instead, the
                // line search cutting any that overshoots (a structured fit's correlation
                // drifting towards its bound crept along in steps of 2e-4 units for 460
                // evaluations). Near an optimum, where rounding can make `sᵀy` negative, the
                // decrease falls short of the slope's prediction and nothing grows.
                hinv.iter_mut().for_each(|v| *v *= QN_CONCAVE_GROWTH);
            }
            if small_change && step < 1e-6 {
                converged = (0..k).all(|j| {
                    let on_bound =
                        (y[j] <= lower[j] && g[j] > 0.0) || (y[j] >= upper[j] && g[j] < 0.0);
                    on_bound || g[j].abs() < 1e3 * gtol
                });
                break;
            }
        }
        Ok(GradientSearch {
            y,
            f,
            evaluations: evaluations.get(),
            converged,
        })
    }

    /// The inverse of the Hessian at `y` (gradient `g`) from forward differences of the
    /// gradient, a step of [`QN_MEASURE_STEP`] along each coordinate (`k` evaluations by
    /// `eval`), symmetrized; `None` where a difference point fails or the result is not
    /// positive definite.
    fn measured_inverse_hessian(
        &mut self,
        y: &[f64],
        g: &[f64],
        eval: &mut dyn FnMut(&mut Self, &[f64]) -> Result<ValueAndGradient>,
    ) -> Result<Option<Vec<f64>>> {
        let k = y.len();
        let mut h = vec![0.0; k * k];
        for c in 0..k {
            let mut point = y.to_vec();
            point[c] += QN_MEASURE_STEP;
            let Some((_, gc)) = eval(self, &point)? else {
                return Ok(None);
            };
            for r in 0..k {
                h[r * k + c] = (gc[r] - g[r]) / QN_MEASURE_STEP;
            }
        }
        let inverse = crate::linalg::spd_inverse::spd_inverse(
            faer::Mat::from_fn(k, k, |r, c| 0.5 * (h[r * k + c] + h[c * k + r])),
            faer::Par::Seq,
        );
        Ok(inverse.map(|m| (0..k * k).map(|i| m[(i / k, i % k)]).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::test_models::SlopeAndCrossed;

    /// lme4's families (binomial and Poisson with canonical and other links; Gamma, inverse
    /// Gaussian and Gaussian, whose criterion estimates a dispersion, with prior weights) on
    /// 90 rows with a random intercept and slope by one factor and a crossed intercept: the
    /// exact gradient of the Laplace deviance (sparse random-effects system) against
    /// Richardson-extrapolated central differences of the deviance, away from the optimum.
    #[test]
    fn lme4_families_gradient_matches_differences_of_the_deviance() {
        let data = SlopeAndCrossed::new();
        let cases = [
            ("binomial", "logit", &data.prop, &data.trials),
            ("binomial", "probit", &data.prop, &data.trials),
            ("binomial", "cloglog", &data.prop, &data.trials),
            ("poisson", "log", &data.counts, &data.ones),
            ("poisson", "sqrt", &data.counts, &data.ones),
            ("Gamma", "log", &data.positive, &data.trials),
            ("inverse.gaussian", "log", &data.positive, &data.trials),
            ("gaussian", "log", &data.positive, &data.ones),
        ];
        for (dist, link, y, w) in cases {
            let eta0 = if dist == "poisson" && link == "sqrt" {
                1.5
            } else {
                0.1
            };
            let mut glmm = data.model((dist, link), y, w, eta0);
            assert!(glmm.has_laplace_gradient(), "{dist} {link}");
            // θ = (T₁₁, T₂₁, T₂₂ of the slope term; the crossed intercept), then β.
            let beta0 = match dist {
                "binomial" => -0.2,
                _ => 0.8,
            };
            let pars = [0.8, 0.3, 0.5, 0.6, beta0, 0.25];
            // A first gradient elsewhere, so that the one checked reads the kept rows of A
            // refreshed for its θ.
            glmm.laplace_gradient(&[0.5, -0.2, 0.9, 1.1, beta0, 0.25])
                .expect("gradient");
            let (f, grad) = glmm.laplace_gradient(&pars).expect("gradient");
            let mut dev = |p: &[f64]| glmm.objective_theta_beta(p, None).expect("deviance");
            assert!((dev(&pars) - f).abs() < 1e-9 * f.abs(), "{dist} {link}");
            for k in 0..pars.len() {
                let mut d = |step: f64| {
                    let (mut up, mut dn) = (pars, pars);
                    up[k] += step;
                    dn[k] -= step;
                    (dev(&up) - dev(&dn)) / (2.0 * step)
                };
                let numeric = (4.0 * d(5e-4) - d(1e-3)) / 3.0;
                assert!(
                    (grad[k] - numeric).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "{dist} {link}, parameter {k}: exact {} vs differences {numeric}",
                    grad[k]
                );
            }
        }
    }

    #[test]
    fn backtracking_lands_near_the_minimum_along_the_line() {
        // φ(t) = (t − 0.2)² on [0, 1]: slopes −0.4 and 1.6, the cubic fit is exact.
        let t = backtrack_factor(0.04, -0.4, 0.64, 1.6);
        assert!((t - 0.2).abs() < 1e-12, "{t}");
        // A minimum beyond the safeguards is clamped.
        assert_eq!(backtrack_factor(0.0, -1.0, 100.0, 300.0), QN_SHRINK_MIN);
        let t = backtrack_factor(0.0, -1.0, -0.5, 0.9);
        assert!((QN_SHRINK_MIN..=QN_SHRINK_MAX).contains(&t));
        // Still falling at the trial's end: the cubic's minimum comes before its maximum.
        let t = backtrack_factor(0.0, -1.0, 0.5, -2.0);
        assert!((t - 0.10233317727843616).abs() < 1e-12, "{t}");
        // Values that are not numbers: halving.
        assert_eq!(backtrack_factor(0.0, -1.0, f64::NAN, 1.0), QN_SHRINK_MAX);
    }

    #[test]
    fn only_flat_coordinates_with_nothing_left_to_offer_are_held() {
        // Coordinate 0 well determined, 1 and 2 flat (inverse curvature 1e4), 3 on a bound.
        let k = 4;
        let mut hinv = vec![0.0; k * k];
        for (j, v) in [0.5, 1e4, 1e4, 0.5].into_iter().enumerate() {
            hinv[j * k + j] = v;
        }
        let bound = [false, false, false, true];
        // Flat gradients promising 2e-10 together: both held, the tiny well-determined
        // gradient is not.
        let mut held = bound;
        hold_flat(&mut held, &[1e-9, 1e-7, -1e-7, 5.0], &hinv);
        assert_eq!(held, [false, true, true, true]);
        // Together they promise 2e-9: neither is held.
        let mut held = bound;
        hold_flat(&mut held, &[1e-9, 3e-7, -3e-7, 5.0], &hinv);
        assert_eq!(held, bound);
    }

    /// The inverse Hessian over the free coordinates with some held is the inverse of the free
    /// block of the Hessian, not the free block of its inverse.
    #[test]
    fn free_inverse_is_the_inverse_of_the_free_block() {
        let k = 4;
        // A positive definite H, row-major, with coupling between every pair.
        let h: Vec<f64> = (0..k * k)
            .map(|i| {
                let (r, c) = (i / k, i % k);
                if r == c {
                    3.0 + r as f64
                } else {
                    0.5 + 0.1 * (r + c) as f64
                }
            })
            .collect();
        let inverse = |m: &[f64], idx: &[usize]| {
            let n = idx.len();
            let sub = faer::Mat::from_fn(n, n, |r, c| m[idx[r] * k + idx[c]]);
            crate::linalg::spd_inverse::spd_inverse(sub, faer::Par::Seq).expect("positive definite")
        };
        let all: Vec<usize> = (0..k).collect();
        let hinv_mat = inverse(&h, &all);
        let hinv: Vec<f64> = (0..k * k).map(|i| hinv_mat[(i / k, i % k)]).collect();
        assert!(free_inverse(&hinv, &[false; 4]).is_none());
        for held in [[false, true, false, false], [true, false, false, true]] {
            let free: Vec<usize> = (0..k).filter(|&j| !held[j]).collect();
            let want = inverse(&h, &free);
            let got = free_inverse(&hinv, &held).expect("held coordinates");
            for (a, &r) in free.iter().enumerate() {
                for (b, &c) in free.iter().enumerate() {
                    assert!(
                        (got[r * k + c] - want[(a, b)]).abs() < 1e-12,
                        "{held:?} ({r}, {c})"
                    );
                }
            }
        }
    }
}
