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
use crate::optim::projected_bfgs::{self, GradientSearch, KnownStart, ValueAndGradient};
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

/// The gradient over the whitened coordinates `y` of a gradient search at `y` (first argument)
/// from the gradient over the original parameters (second).
pub(super) type ToWhitenedGradient<'a> = dyn Fn(&[f64], &[f64]) -> Vec<f64> + 'a;

impl GeneralizedLinearMixedModel<'_> {
    /// Minimizes the Laplace deviance over `y` within `[lower, upper]` (the whitened
    /// coordinates of stage 2: `x = to_x(y)`, the gradient over `y` at `y` from
    /// `to_y_gradient(y, g)` for the gradient `g` over `x`) by the projected BFGS search
    /// ([`projected_bfgs::minimize`]) with the exact gradient ([`Self::laplace_gradient`]): a
    /// bound variable whose gradient pushes outward stays on its bound (a covariance parameter
    /// at 0). Stops when every free component of the gradient is below `gtol` (deviance units
    /// per standard error) or no step lowers the deviance any more; gives up (not converged)
    /// once it has used `max_evaluations`. `at_start`: the criterion and its gradient over `x`
    /// at `start` where the caller has them (not counted again), with the Hessian over `y` the
    /// calibration's probes measured ([`SearchStart`]). A point where PIRLS fails counts as
    /// one where the deviance is not finite (the failure is recorded).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gradient_search(
        &mut self,
        start: &[f64],
        at_start: Option<SearchStart>,
        bounds: (&[f64], &[f64]),
        to_x: &dyn Fn(&[f64]) -> Vec<f64>,
        to_y_gradient: &ToWhitenedGradient<'_>,
        gtol: f64,
        max_evaluations: usize,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<GradientSearch> {
        let known = at_start.map(|s| KnownStart {
            f: s.f,
            gradient: to_y_gradient(start, &s.gradient),
            hessian: s.hessian,
        });
        let mut evaluations = 0usize;
        let mut eval = |y: &[f64]| -> Result<ValueAndGradient> {
            evaluations += 1;
            let x = to_x(y);
            let out = match self.laplace_gradient(&x) {
                Ok((f, g)) if f.is_finite() && g.iter().all(|v| v.is_finite()) => {
                    Some((f, to_y_gradient(y, &g)))
                }
                Ok(_) => None,
                Err(e) => {
                    self.record_failure(&e);
                    None
                }
            };
            let shown = out.as_ref().map_or(f64::INFINITY, |o| o.0);
            if progress(evaluations, &x, shown) == Stop::Interrupt {
                return Err(MixedError::Optimizer("interrupted by the user".into()));
            }
            Ok(out)
        };
        projected_bfgs::minimize(start, known, bounds, gtol, max_evaluations, &mut eval)
    }
}

#[cfg(test)]
mod tests {
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
}
