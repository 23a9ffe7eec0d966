//! Likelihood profiles of generalized linear mixed models, as lme4's `profile()` computes them
//! for `glmer` fits.
//!
//! The parameters are the standard deviations and correlations of the random effects (per
//! term the lower triangle, column-major, of its covariance matrix; no residual scale: of
//! lme4's families only those without a dispersion, binomial and Poisson, are profiled, as in
//! lme4), then the family's own parameters when it has them (the coefficients of its
//! dispersion and zero-inflation models, see [`crate::fit::response`]; a Gaussian or Gamma
//! family of that kind carries its dispersion there and is profiled too), then the fixed
//! effects `β`. The deviance is the fit's own criterion, the Laplace approximation
//! (`nAGQ = 1`) or adaptive Gauss–Hermite quadrature (`nAGQ > 1`), as a function of
//! `(sd, cor, extra, β)`: `θ` is the Cholesky factor of the covariance matrix in sd/cor form
//! and the conditional modes of the spherical random effects are found by PIRLS for each
//! evaluation.
//!
//! Every parameter, fixed effects included, is profiled the same way: it is fixed at a value
//! `x` and all the others are re-optimized jointly (BOBYQA within their bounds: sd ≥ 0,
//! correlations in `[−1, 1]`, the family's parameters and `β` free), giving
//!
//! ```text
//!   ζ(x) = sign(x − x̂) √(min_{others} d(x, others) − d̂).
//! ```
//!
//! The walk starts at `1.01 x̂` (`0.001` when `x̂ = 0`) and then follows lme4's stepping rule
//! (shared with the linear mixed model profiles, see [`super`]) in both directions
//! until `|ζ|` exceeds `√χ²_{0.99}(k)` with `k` the number of parameters, or the parameter
//! reaches a bound; each optimization starts from the previous point's optimum. Before
//! profiling, the fit is polished by a tight joint optimization of `(θ, β)` from its estimates
//! (glmer's second stage, BOBYQA to a radius of 1e-9), so that `d̂` is the minimum the
//! profiles are measured from; a standard deviation the polish leaves within 1e-5 of 0 goes
//! back to 0 when the deviance there is no worse (to rounding), so that a singular fit is
//! profiled from its bound, as lme4 profiles it.
//!
//! Parameters are profiled in parallel, each on its own copy of the model (PIRLS keeps state).
use super::{
    bounded_minimize, fill_with, InnerStart, ProfileOptions, ProfileTrace, Profiler, Row,
    VarLayout, Walker,
};
use crate::error::{invalid, MixedError, Result};
use crate::fit::response::ResponseFamily;
use crate::glmm::{GeneralizedLinearMixedModel, GlmmOptions, PirlsOptions, StageOptimizer};
use crate::inference::bootstrap::GlmmSetup;
use crate::model::spec::ModelSpec;
use crate::optim::{OptimOptions, Stop};
use crate::quadrature::GaussHermite;
use faer::Par;

/// A covariance parameter of the polished fit below this is tried on its bound (0).
const BOUNDARY_SNAP: f64 = 1e-5;

/// ... and kept there when the deviance grows by no more than this.
const BOUNDARY_SNAP_DEV: f64 = 1e-10;

/// The family's own parameters at the fit (dispersion then zero-inflation coefficients) and
/// their standard errors (they scale the optimizer; 1 where not finite).
#[derive(Debug, Clone, Copy)]
pub struct ExtraAtFit<'s> {
    pub values: &'s [f64],
    pub stderr: &'s [f64],
}

/// Everything needed to profile a GLMM: its data and family, and the polished optimum.
#[derive(Debug)]
pub struct GlmmProfiler<'s, 'a> {
    spec: &'s ModelSpec<'a>,
    family: ResponseFamily,
    n_trials: &'s [f64],
    /// Linear predictor at the optimum: where PIRLS starts when it has no warm start.
    eta: Vec<f64>,
    pirls: PirlsOptions,
    rule: Option<GaussHermite>,
    layout: VarLayout,
    /// Number of the family's own parameters.
    n_extra: usize,
    p: usize,
    /// θ at the optimum.
    pub theta: Vec<f64>,
    /// The deviance (Laplace or adaptive Gauss–Hermite) at the optimum.
    pub base: f64,
    /// Full parameter vector at the optimum: sd/cor, the family's parameters, then β.
    pub optimum: Vec<f64>,
    /// Standard errors of the family's parameters (as given) and of β from `(R_X'R_X)⁻¹` at
    /// the optimum (they scale the optimizer).
    pub stderr: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    scale: Vec<f64>,
    walker: Walker,
}

impl<'s, 'a> GlmmProfiler<'s, 'a> {
    /// Polishes the fit `(theta, beta)` of the model `setup` (deviance by `n_agq`: 1 for
    /// Laplace, more for adaptive Gauss–Hermite) and prepares the profiles.
    pub fn new(
        setup: GlmmSetup<'s, 'a>,
        n_agq: usize,
        pirls: PirlsOptions,
        theta: &[f64],
        beta: &[f64],
        opts: ProfileOptions,
    ) -> Result<Self> {
        if setup.family.has_scale() {
            return invalid(
                "likelihood profiles of GLMMs with a scale parameter (Gamma, inverse.gaussian \
                 or gaussian families) are not available (lme4 cannot profile them either)",
            );
        }
        let none = ExtraAtFit {
            values: &[],
            stderr: &[],
        };
        Self::with_family(
            (setup.spec, setup.n_trials, setup.eta_start),
            ResponseFamily::Glm(setup.family),
            none,
            n_agq,
            pirls,
            (theta, beta),
            opts,
        )
    }

    /// As [`Self::new`] for any [`ResponseFamily`], with the model's data, R's binomial `n`
    /// and the linear predictor PIRLS starts from in `data`: a family with its own parameters
    /// starts them at `extra.values` and profiles them too.
    #[allow(clippy::type_complexity)]
    pub fn with_family(
        (spec, n_trials, eta_start): (&'s ModelSpec<'a>, &'s [f64], &'s [f64]),
        family: ResponseFamily,
        extra: ExtraAtFit<'_>,
        n_agq: usize,
        pirls: PirlsOptions,
        (theta, beta): (&[f64], &[f64]),
        opts: ProfileOptions,
    ) -> Result<Self> {
        if n_agq == 0 {
            return invalid(
                "likelihood profiles need a fit by the Laplace approximation or adaptive \
                 Gauss-Hermite quadrature (nAGQ >= 1); an nAGQ = 0 fit does not estimate the \
                 fixed effects by maximum likelihood",
            );
        }
        let layout = VarLayout::new(spec);
        let p = spec.p;
        let mut model = GeneralizedLinearMixedModel::with_family(
            spec.clone(),
            family.clone(),
            n_trials.to_vec(),
            eta_start.to_vec(),
            pirls,
            Par::Seq,
        )?;
        let n_extra = model.n_extra();
        if extra.values.len() != n_extra || extra.stderr.len() != n_extra {
            return invalid(format!(
                "the family has {n_extra} parameters of its own; {} values and {} standard \
                 errors were given",
                extra.values.len(),
                extra.stderr.len()
            ));
        }
        if n_extra > 0 {
            model.set_extra_start(extra.values)?;
        }
        // Stage 2 only, from the fit, to the optimum's last digits.
        let polish = GlmmOptions {
            quasi_newton_only: None,
            start_at_optimum: false,
            quasi_newton_gtol: None,
            n_agq,
            init_step: Some(false),
            optim: OptimOptions {
                rhobeg: 0.01,
                rhoend: 1e-9,
                calc_derivs: false,
                ..OptimOptions::default()
            },
            optimizers: [StageOptimizer::Bobyqa, StageOptimizer::Bobyqa],
            pirls,
        };
        let fit = model.fit(&polish, Some(theta), Some(beta), &mut |_, _, _| {
            Stop::Continue
        })?;
        let rule = if n_agq > 1 {
            Some(GaussHermite::new(n_agq)?)
        } else {
            None
        };
        // Covariance parameters that the polish left a hair above their bound (where the
        // deviance is flat to rounding) go back onto it when that is no worse, as the fit's
        // own boundary check does, so that a singular fit is profiled from its bound.
        let mut theta_hat = fit.par.clone();
        let mut base = fit.deviance;
        let bounds = model.re.par_lower();
        let near: Vec<usize> = (0..theta_hat.len())
            .filter(|&k| bounds[k] == 0.0 && theta_hat[k] > 0.0 && theta_hat[k] < BOUNDARY_SNAP)
            .collect();
        if !near.is_empty() {
            let mut pars = theta_hat.clone();
            for &k in &near {
                pars[k] = 0.0;
            }
            pars.extend_from_slice(&fit.extra);
            pars.extend_from_slice(&fit.beta);
            if let Ok(f) = model.objective_theta_beta(&pars, rule.as_ref()) {
                if f <= base + BOUNDARY_SNAP_DEV {
                    theta_hat.truncate(0);
                    theta_hat.extend_from_slice(&pars[..fit.par.len()]);
                    base = base.min(f);
                }
            }
        }
        let mut optimum = layout.sdcor_from_theta(&theta_hat, 1.0);
        let nvp = optimum.len();
        optimum.extend_from_slice(&fit.extra);
        optimum.extend_from_slice(&fit.beta);
        let mut stderr = extra.stderr.to_vec();
        stderr.extend((0..p).map(|k| fit.vcov_unscaled[k * p + k].max(0.0).sqrt()));
        let nfix = n_extra + p;
        let mut lower = Vec::with_capacity(nvp + nfix);
        let mut upper = Vec::with_capacity(nvp + nfix);
        let mut scale = Vec::with_capacity(nvp + nfix);
        let (var_lower, var_upper) = layout.bounds();
        lower.extend(var_lower);
        upper.extend(var_upper);
        for (k, sd) in layout.is_sd().into_iter().enumerate() {
            scale.push(if sd { optimum[k].abs().max(0.05) } else { 0.5 });
        }
        lower.extend(std::iter::repeat_n(f64::NEG_INFINITY, nfix));
        upper.extend(std::iter::repeat_n(f64::INFINITY, nfix));
        scale.extend(
            stderr
                .iter()
                .map(|&s| if s.is_finite() && s > 0.0 { s } else { 1.0 }),
        );
        let walker = Walker::new(opts, nvp + nfix, base)?;
        Ok(Self {
            spec,
            family,
            n_trials,
            eta: fit.eta,
            pirls,
            rule,
            layout,
            n_extra,
            p,
            theta: theta_hat,
            base,
            optimum,
            stderr,
            lower,
            upper,
            scale,
            walker,
        })
    }

    fn new_model(&self) -> Result<GeneralizedLinearMixedModel<'a>> {
        let mut model = GeneralizedLinearMixedModel::with_family(
            self.spec.clone(),
            self.family.clone(),
            self.n_trials.to_vec(),
            self.eta.clone(),
            self.pirls,
            Par::Seq,
        )?;
        if self.n_extra > 0 {
            let nth = self.n_var();
            model.set_extra_start(&self.optimum[nth..nth + self.n_extra])?;
        }
        Ok(model)
    }

    /// The deviance at a full parameter vector (sd/cor, extra, β); `+∞` where a covariance
    /// matrix is not positive semi-definite, a family parameter is out of its range or PIRLS
    /// fails. `work` holds `(θ, extra, β)`.
    fn deviance(
        &self,
        model: &mut GeneralizedLinearMixedModel<'a>,
        full: &[f64],
        work: &mut [f64],
    ) -> f64 {
        let nth = self.n_var();
        let Some(theta) = self.layout.theta_from_sdcor(&full[..nth], 1.0) else {
            return f64::INFINITY;
        };
        work[..nth].copy_from_slice(&theta);
        work[nth..].copy_from_slice(&full[nth..]);
        match model.objective_theta_beta(work, self.rule.as_ref()) {
            Ok(v) if v.is_finite() => v,
            _ => f64::INFINITY,
        }
    }
}

impl Profiler for GlmmProfiler<'_, '_> {
    /// Number of covariance parameters (standard deviations and correlations).
    fn n_var(&self) -> usize {
        self.layout.n_theta()
    }

    /// The family's own parameters and the fixed effects.
    fn n_fixed(&self) -> usize {
        self.n_extra + self.p
    }

    fn theta(&self) -> &[f64] {
        &self.theta
    }

    fn base(&self) -> f64 {
        self.base
    }

    fn optimum(&self) -> &[f64] {
        &self.optimum
    }

    fn stderr(&self) -> &[f64] {
        &self.stderr
    }

    fn lower(&self) -> &[f64] {
        &self.lower
    }

    fn upper(&self) -> &[f64] {
        &self.upper
    }

    fn cutoff(&self) -> f64 {
        self.walker.cutoff
    }

    fn profile(&self, w: usize) -> Result<ProfileTrace> {
        let np = self.n_par();
        if w >= np {
            return invalid(format!(
                "parameter {} does not exist (the model has {np})",
                w + 1
            ));
        }
        let mut model = self.new_model()?;
        let pw = self.optimum[w];
        let others =
            |v: &[f64]| -> Vec<f64> { (0..np).filter(|&k| k != w).map(|k| v[k]).collect() };
        let lo = others(&self.lower);
        let up = others(&self.upper);
        let scale = others(&self.scale);
        let start = others(&self.optimum);
        let mut full = vec![0.0; np];
        let mut work = vec![0.0; np];
        let mut zeta_at = |x: f64, start: &InnerStart, warnings: &mut Vec<String>| -> Result<Row> {
            let (best, fval) = {
                let mut f = |o: &[f64]| {
                    fill_with(&mut full, w, x, o);
                    self.deviance(&mut model, &full, &mut work)
                };
                bounded_minimize(&mut f, start, &lo, &up, &scale, self.walker.opts.rhoend)?
            };
            let zeta = self.walker.zeta_of(x, pw, fval, warnings)?;
            let mut row_full = vec![0.0; np];
            fill_with(&mut row_full, w, x, &best);
            Ok(Row {
                x,
                zeta,
                others: best,
                full: row_full,
            })
        };
        let (lowcut, upcut) = (self.lower[w], self.upper[w]);
        let shift = if pw == 0.0 { 1e-3 } else { pw * 1.01 };
        let shift = shift.max(lowcut).min(upcut);
        let opt_row = Row {
            x: pw,
            zeta: 0.0,
            others: start.clone(),
            full: self.optimum.clone(),
        };
        let mut warnings = Vec::new();
        let first = zeta_at(shift, &InnerStart::at(&start), &mut warnings).map_err(|e| {
            MixedError::Optimizer(format!(
                "profiling parameter {} failed at its first step: {e}",
                w + 1
            ))
        })?;
        Ok(self.walker.run(
            w,
            opt_row,
            first,
            lowcut,
            upcut,
            pw > lowcut,
            &mut zeta_at,
            warnings,
        ))
    }
}
