//! Linear mixed models: the profiled deviance and the fit.
//!
//! For θ, with `L` the blocked Cholesky factor of the penalized system (see `chol`), `r²` the
//! penalized weighted residual sum of squares, `n` observations and `p` fixed effects, the
//! profiled deviance (β and σ at their conditional optimum) is
//!
//! ```text
//!   ML:   log|L_Z|² − Σ log wᵢ + n      (1 + log(2π r² / n))
//!   REML: log|L_Z|² − Σ log wᵢ + log|R_X|² + (n−p) (1 + log(2π r² / (n−p)))
//! ```
//!
//! The model is the composition `objective(update(set_theta(θ)))`, as in MixedModels.jl: setting
//! θ refactors `L` from the stored cross-products, so one evaluation costs nothing per
//! observation.
use super::laplace_gradient::{gradient_through, par_jacobian};
use super::par_scale::ColumnScales;
use crate::blocks::CrossProducts;
use crate::chol::BlockedCholesky;
use crate::error::{invalid, Result};
use crate::linpred;
use crate::optim::{self, Objective, OptSummary, OptimOptions, QuasiNewtonCoordinates, Stop};
use crate::spec::ModelSpec;
use crate::start;
use crate::terms::ReStructure;
use crate::trailing::TrailingChoice;
use faer::Par;
use std::f64::consts::PI;

/// A linear mixed model ready to be evaluated at any θ.
#[derive(Debug)]
pub struct LinearMixedModel<'a> {
    /// The data.
    pub spec: ModelSpec<'a>,
    /// Grouping-factor blocks and the θ layout.
    pub re: ReStructure,
    /// Cross-products, formed once.
    pub cp: CrossProducts,
    /// The factor at the last θ set.
    pub chol: BlockedCholesky,
    /// REML (true) or ML (false) criterion.
    pub reml: bool,
    /// The relative covariance factors `T_b` at the last θ set.
    pub(crate) lambda: Vec<Vec<f64>>,
    /// `Σ log wᵢ` of the prior weights.
    pub(crate) log_w: f64,
    /// The scale the optimizer searches `par` in (`par = x ⊙ par_scale`; all 1 for columns of
    /// moderate size): see [`super::par_scale`].
    pub(crate) par_scale: Vec<f64>,
}

/// Everything a fitted linear mixed model reports.
#[derive(Debug, Clone)]
pub struct LmmFit {
    /// Covariance parameters (lme4's layout).
    pub theta: Vec<f64>,
    /// The optimizer's parameters (`par`, in each term's covariance structure; `= theta` for
    /// unstructured terms).
    pub par: Vec<f64>,
    /// Fixed effects.
    pub beta: Vec<f64>,
    /// Spherical random effects, terms in input order, each level-major.
    pub u: Vec<f64>,
    /// Conditional modes per term, level-major (`n_levels × q`, level `j` at `j q`).
    pub b: Vec<Vec<f64>>,
    /// Residual standard deviation (REML or ML as fitted).
    pub sigma: f64,
    /// `log|L_Z|²`.
    pub ldl2: f64,
    /// `log|R_X|²`.
    pub ldrx2: f64,
    /// Weighted residual sum of squares.
    pub wrss: f64,
    /// `‖u‖²`.
    pub ussq: f64,
    /// Penalized weighted residual sum of squares `r²`.
    pub pwrss: f64,
    /// The criterion that was minimized (REML criterion or ML deviance).
    pub objective: f64,
    /// The ML deviance at these estimates.
    pub deviance_ml: f64,
    /// The REML criterion at these estimates.
    pub reml_crit: f64,
    /// `(R_X R_X')⁻¹`, `p × p` column-major: `vcov(β) = σ² ×` this.
    pub vcov_unscaled: Vec<f64>,
    /// `Xβ + Zb + offset` (empty for a model fitted from aggregates).
    pub fitted: Vec<f64>,
    /// Optimizer record.
    pub opt: OptSummary,
}

impl<'a> LinearMixedModel<'a> {
    /// Builds the cross-products and the factor storage, choosing the trailing storage
    /// automatically.
    pub fn new(spec: ModelSpec<'a>, reml: bool, par: Par) -> Result<Self> {
        Self::with_storage(spec, reml, par, TrailingChoice::Auto)
    }

    /// As [`LinearMixedModel::new`], with the trailing block's storage chosen by the caller.
    pub fn with_storage(
        spec: ModelSpec<'a>,
        reml: bool,
        par: Par,
        choice: TrailingChoice,
    ) -> Result<Self> {
        if let Some(i) = spec.weights.and_then(|w| w.iter().position(|&v| v <= 0.0)) {
            return invalid(format!(
                "a linear mixed model needs positive 'weights'; observation {} has 0",
                i + 1
            ));
        }
        if reml && spec.n <= spec.p {
            return invalid(format!(
                "REML needs more observations ({}) than fixed effects ({})",
                spec.n, spec.p
            ));
        }
        let re = ReStructure::new(&spec);
        let cp = match &spec.aggregates {
            // A model fitted from grouped sums: its cross-products came validated with it.
            Some(aggregates) => aggregates.cp.clone(),
            None => CrossProducts::new(&spec, &re)?,
        };
        Self::from_cross_products(spec, re, cp, reml, par, choice)
    }

    /// Refactors the penalized system at θ.
    pub fn set_theta(&mut self, theta: &[f64]) -> Result<()> {
        self.re.set_lambda(theta, &mut self.lambda)?;
        self.chol.update(&self.cp, &self.lambda)
    }

    fn criterion(&self, reml: bool) -> f64 {
        let n = self.spec.n as f64;
        let r = self.chol.pwrss_sqrt(&self.cp);
        let pwrss = r * r;
        let ldl2 = self.chol.logdet_l11 + self.chol.logdet_l22;
        if reml {
            let nmp = n - self.cp.p as f64;
            ldl2 - self.log_w
                + self.chol.logdet_rx(&self.cp)
                + nmp * (1.0 + (2.0 * PI * pwrss / nmp).ln())
        } else {
            ldl2 - self.log_w + n * (1.0 + (2.0 * PI * pwrss / n).ln())
        }
    }

    /// The criterion (REML or ML as chosen) at the last θ set.
    pub fn objective(&self) -> f64 {
        self.criterion(self.reml)
    }

    /// The criterion at θ, `+∞` where the factorization fails.
    pub fn objective_at(&mut self, theta: &[f64]) -> f64 {
        match self.set_theta(theta) {
            Ok(()) => self.objective(),
            Err(_) => f64::INFINITY,
        }
    }

    /// The criterion at the optimizer's parameters `par` (see [`ReStructure::theta_from_par`]).
    pub fn objective_at_par(&mut self, par: &[f64]) -> f64 {
        if self.re.all_unstructured() {
            return self.objective_at(par);
        }
        let theta = self.re.theta_of(par);
        self.objective_at(&theta)
    }

    /// Estimates at the optimizer's parameters `par`.
    pub fn estimates_at_par(&mut self, par: &[f64]) -> Result<LmmFit> {
        let theta = self.re.theta_of(par);
        let mut fit = self.estimates(&theta)?;
        fit.par = par.to_vec();
        Ok(fit)
    }

    /// Optimizes the covariance parameters (`par`) from `start` and returns the estimates.
    /// Without a start, see
    /// [`needs_second_start`]: small models start from lme4's start (θ = identity), large ones
    /// from the moment estimate ([`start::moment_start`]), and the other start is tried as well
    /// where the optimum found may not be the best; the better optimum is kept.
    pub fn fit(
        &mut self,
        start: Option<&[f64]>,
        opts: &OptimOptions,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<LmmFit> {
        let lower = self.re.par_lower();
        let upper = self.re.par_upper();
        let bounds = (lower.as_slice(), upper.as_slice());
        let given = |theta: &[f64]| {
            let mut o = opts.clone();
            o.rhobeg = given_start_radius(theta, opts.rhobeg);
            o
        };
        let mut summary = match start {
            Some(s) => {
                self.re.check_par(s, "start")?;
                self.minimize_from(s, bounds, &given(s), progress)?
            }
            None => {
                // (lme4's start, θ = identity, in the scaled coordinates)
                let identity: Vec<f64> = self
                    .re
                    .default_par()
                    .iter()
                    .zip(&self.par_scale)
                    .map(|(p, s)| p * s)
                    .collect();
                let theta_scale =
                    ColumnScales::of_cross_products(&self.re, &self.cp).theta_scale(&self.re);
                let moment = start::moment_start(
                    &self.cp,
                    &self.re,
                    opts.rhobeg,
                    start::START_RADIUS_FACTOR,
                    start::ResidualScale::Estimated,
                    &theta_scale,
                )
                .map(|(theta0, radius)| (self.re.par_from_theta(&theta0), radius));
                let moment_opts = |radius: f64| {
                    let mut o = opts.clone();
                    o.rhobeg = radius;
                    o
                };
                match moment {
                    None => self.minimize_from(&identity, bounds, &given(&identity), progress)?,
                    Some((theta0, radius)) if self.re.n_random() <= SMALL_MODEL_RANDOM_EFFECTS => {
                        let first =
                            self.minimize_from(&identity, bounds, &given(&identity), progress)?;
                        if needs_second_start(&self.re, &first, None, &self.par_scale) {
                            let other = self.minimize_from(
                                &theta0,
                                bounds,
                                &moment_opts(radius),
                                progress,
                            )?;
                            keep_better(first, other)
                        } else {
                            first
                        }
                    }
                    Some((theta0, radius)) => {
                        let first =
                            self.minimize_from(&theta0, bounds, &moment_opts(radius), progress)?;
                        if needs_second_start(
                            &self.re,
                            &first,
                            Some((&theta0, radius)),
                            &self.par_scale,
                        ) {
                            let other =
                                self.minimize_from(&identity, bounds, &given(&identity), progress)?;
                            keep_better(first, other)
                        } else {
                            first
                        }
                    }
                }
            }
        };
        // A singular optimum of a vector-valued term lies on a face of the boundary where the
        // deviance does not depend on all of the term's parameters; another face can hold a
        // lower minimum. Restart once from the same variances with the zero ones raised and the
        // correlations at 0, from where the optimizer can reach either face.
        if let Some(restart) = self.scaled_restart(start::singular_face_restart, &summary.theta) {
            let mut re_opts = opts.clone();
            re_opts.rhobeg = given_start_radius(&restart, opts.rhobeg);
            let other = self.minimize_from(&restart, bounds, &re_opts, progress)?;
            summary = keep_better(summary, other);
        }
        // Still on a face: a small model also restarts from its standard deviations as they
        // are (`singular_kept_sd_restart`, where the first restart raised a non-zero one) and
        // from its covariance lifted off the face (`singular_inflated_restart`), from where a
        // face with another degenerate column is within reach.
        if self.re.n_random() <= SMALL_MODEL_RANDOM_EFFECTS {
            let restarts: [start::Restart; 2] = [
                start::singular_kept_sd_restart,
                start::singular_inflated_restart,
            ];
            for make in restarts {
                if let Some(restart) = self.scaled_restart(make, &summary.theta) {
                    let mut re_opts = opts.clone();
                    re_opts.rhobeg = given_start_radius(&restart, opts.rhobeg);
                    let other = self.minimize_from(&restart, bounds, &re_opts, progress)?;
                    summary = keep_better(summary, other);
                }
            }
        }
        // An optimum far out towards σ → 0: restart nearer in along the same direction, from
        // where the optimizer can still turn it (`residual_limit_restart`); the ray below then
        // follows the better end outwards.
        let largest = self.effect_largest_sd(&summary.theta);
        if let Some(restart) = start::residual_limit_restart(&self.re, &summary.theta, largest) {
            let mut re_opts = opts.clone();
            re_opts.rhobeg = given_start_radius(&restart, opts.rhobeg);
            let other = self.minimize_from(&restart, bounds, &re_opts, progress)?;
            summary = keep_better(summary, other);
        }
        // A residual standard deviation tending to 0: follow the criterion towards that limit.
        self.follow_residual_limit(&mut summary, bounds, opts, progress)?;
        summary.residual_limit = self.effect_largest_sd(&summary.theta) >= RESIDUAL_LIMIT_REPORTED;
        let mut fit = self.estimates_at_par(&summary.theta)?;
        fit.opt = summary;
        Ok(fit)
    }

    /// Where the optimizer stopped towards σ → 0 (see [`Self::residual_limit_ray`]): continue
    /// along the ray it stopped on; then, where the criterion fell along the ray or, for an end
    /// that BOBYQA found (Newton and quasi-Newton steps end where the exact gradient vanishes),
    /// falls a step out along it, polish the parameters' shape there
    /// ([`Self::residual_limit_polish`]) and go on along the ray, up to [`POLISH_ROUNDS`]
    /// times, while that lowers the criterion ([`Self::polish_along_ray`]); a search that
    /// stopped on its way there and ends short of the ray's cap is finished by BOBYQA
    /// ([`Self::finish_by_bobyqa`]). The convergence checks (gradient, Hessian) of an end out
    /// along the ray stay those of the optimizer's point: along the ray the criterion only
    /// falls, and out there its rounding would swamp finite differences (a false "failed to
    /// converge").
    fn follow_residual_limit(
        &mut self,
        summary: &mut OptSummary,
        bounds: (&[f64], &[f64]),
        opts: &OptimOptions,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<()> {
        // BOBYQA stopped where its best point passed the region's threshold is at no optimum,
        // and an interior one can lie just beyond it, in another basin than the limit's that
        // the ray would lead into (a `cs()` fit's optimum at a relative sd of 10.1, 0.006 below
        // the limit): search at its own scale first, with the evaluations of a whole search,
        // which finds that optimum or moves out.
        if summary.ending == optim::Ending::BobyqaTowardsLimit {
            let (polished, evals) = self.residual_limit_polish(
                &summary.theta,
                summary.fmin,
                bounds,
                (opts, opts.maxfun),
                progress,
            )?;
            summary.feval += evals;
            if let Some((par, f)) = polished {
                move_to(summary, (par, f, 0));
            }
        }
        let ray = self.residual_limit_ray(&summary.theta, summary.fmin);
        let ray_fell = ray.is_some();
        if let Some(ray) = ray {
            move_to(summary, ray);
        }
        // (an end where the exact gradient vanished stands, unless the criterion fell along
        // the ray from it: a quasi-Newton search's tolerance can be met out on a flat tail, a
        // fit of two structured terms at a relative sd of 88 that the ray took to 1,000, its
        // shape unpolished, 2.6e-4 short)
        if summary.ending.by_gradient() && !ray_fell {
            return Ok(());
        }
        if ray_fell || self.falls_along_ray(summary) {
            self.polish_along_ray(summary, bounds, opts, progress)?;
        }
        // A search that stopped on its way towards the limit and ends short of it, nearer in
        // than the ray's cap, ends at an optimum out there (or short of one): BOBYQA finishes
        // it, with the convergence checks.
        let short_of_limit = self.effect_largest_sd(&summary.theta) < RESIDUAL_LIMIT_REPORTED;
        if summary.ending.towards_limit() && short_of_limit {
            self.finish_by_bobyqa(summary, bounds, opts, progress)?;
        }
        Ok(())
    }

    /// Up to [`POLISH_ROUNDS`] rounds of [`Self::residual_limit_polish`] and the ray, while the
    /// polishing lowers the criterion.
    fn polish_along_ray(
        &mut self,
        summary: &mut OptSummary,
        bounds: (&[f64], &[f64]),
        opts: &OptimOptions,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<()> {
        for _ in 0..POLISH_ROUNDS {
            let budget =
                POLISH_EVALUATIONS_PER_PARAMETER * summary.theta.len() + POLISH_EXTRA_EVALUATIONS;
            let (polished, evals) = self.residual_limit_polish(
                &summary.theta,
                summary.fmin,
                bounds,
                (opts, budget),
                progress,
            )?;
            summary.feval += evals;
            let Some((par, f)) = polished else {
                break;
            };
            move_to(summary, (par, f, 0));
            if let Some(ray) = self.residual_limit_ray(&summary.theta, summary.fmin) {
                move_to(summary, ray);
            }
            // (the polished shape may put a standard deviation on its bound 0)
            let (lower, upper) = bounds;
            summary.singular = optim::is_singular(&summary.theta, lower, upper, opts.singular_tol);
        }
        Ok(())
    }

    /// A search that stopped on its way towards the limit of the quasi-Newton search's range
    /// ([`optim::Ending::towards_limit`]) and ends short of the ray's cap: its end is no limit to
    /// follow but an optimum out there, or a point short of one. BOBYQA goes on from it, with
    /// `maxfun` evaluations as a restart has them, and the convergence checks.
    fn finish_by_bobyqa(
        &mut self,
        summary: &mut OptSummary,
        bounds: (&[f64], &[f64]),
        opts: &OptimOptions,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<()> {
        let scale = self.par_scale.clone();
        let x0 = to_scaled(&summary.theta, &scale);
        let mut o = opts.clone();
        o.rhobeg = given_start_radius(&x0, opts.rhobeg);
        let mut obj = ModelObjective {
            model: self,
            progress,
            jacobian: Vec::new(),
            scale: scale.clone(),
            bobyqa_only: true,
        };
        let mut finished = optim::minimize_within(
            &mut obj,
            &x0,
            &to_scaled(bounds.0, &scale),
            &to_scaled(bounds.1, &scale),
            &o,
        )?;
        from_scaled_summary(&mut finished, &scale, bounds, opts.singular_tol);
        finished.start = std::mem::take(&mut summary.start);
        finished.feval += summary.feval;
        finished.starts_tried = summary.starts_tried;
        *summary = finished;
        Ok(())
    }

    /// The largest relative standard deviation at `par` where it is at least [`RAY_TRIGGER`]
    /// and the criterion `fmin` there is finite (the fit may be heading for σ → 0); `None`
    /// otherwise.
    fn towards_residual_limit(&self, par: &[f64], fmin: f64) -> Option<f64> {
        let largest = self.effect_largest_sd(par);
        (largest >= RAY_TRIGGER && fmin.is_finite()).then_some(largest)
    }

    /// Whether the criterion is lower a step [`RAY_PROBE`] out along the ray σ → 0 from the
    /// optimizer's end, with a largest relative standard deviation of at least [`RAY_TRIGGER`]
    /// (one evaluation, counted).
    fn falls_along_ray(&mut self, summary: &mut OptSummary) -> bool {
        if self
            .towards_residual_limit(&summary.theta, summary.fmin)
            .is_none()
        {
            return false;
        }
        let out = self.re.scaled_par(&summary.theta, 1.0 + RAY_PROBE);
        let f = self.objective_at_par(&out);
        summary.feval += 1;
        f < summary.fmin - TIE_TOL * summary.fmin.abs().max(1.0)
    }

    /// Where the residual standard deviation is small against some random effect's (a relative
    /// standard deviation of at least [`RAY_TRIGGER`]), the supremum of the likelihood may lie in
    /// the limit σ → 0: a term that can absorb the residual (a structured term with one
    /// observation per level and column) leaves the profiled criterion `d(s θ)` falling like
    /// `c/s²` along the ray, flat enough that the optimizer stops at a relative sd of ~50, a few
    /// 1e-4 above the limit that glmmTMB (which has σ itself as a parameter) reaches. Doubling
    /// `s` while the criterion falls, up to a largest relative sd of [`RAY_CAP`], the last step
    /// to the cap itself (beyond it the criterion's rounding, ~1e-6, is as large as what is
    /// left to gain), gives the point
    /// returned with its criterion and the evaluations made; `None` when the first doubling does
    /// not lower the criterion.
    fn residual_limit_ray(&mut self, par: &[f64], fmin: f64) -> Option<(Vec<f64>, f64, usize)> {
        let largest = self.towards_residual_limit(par, fmin)?;
        let mut best: Option<(Vec<f64>, f64)> = None;
        let mut evals = 0;
        let mut s: f64 = 2.0;
        let mut taken = 1.0;
        // (the last step goes to the cap itself, so that where the ray ends does not depend on
        // where it started: from 88 doubling stopped at 704, from 53 at 848, and the criterion
        // still falls by ~1e-5 between the two)
        while taken * largest < RAY_CAP {
            let step = s.min(RAY_CAP / largest);
            let trial = self.re.scaled_par(par, step);
            let f = self.objective_at_par(&trial);
            evals += 1;
            let to_beat = best.as_ref().map_or(fmin, |b| b.1);
            // (a NaN criterion fails the comparison and ends the search)
            let lower = f < to_beat - TIE_TOL * to_beat.abs().max(1.0);
            if !lower {
                break;
            }
            best = Some((trial, f));
            taken = step;
            s *= 2.0;
        }
        best.map(|(par, f)| (par, f, evals))
    }

    /// Where the fit ends towards σ → 0 (a largest relative standard deviation of at least
    /// [`RAY_TRIGGER`]), the parameters that grow with the ray are of the order of that
    /// relative sd and the others (correlations) of order 1, and BOBYQA's one trust radius
    /// cannot serve both: it stops with the shape (the ratios of the standard deviations, the
    /// correlations) a few 1e-4 short. A BOBYQA search over the parameters divided by that
    /// largest relative sd (the correlations as they are) from the fit's end polishes them,
    /// with at most `maxfun` evaluations. Returns the polished point and its criterion where
    /// it is lower, and the evaluations made.
    fn residual_limit_polish(
        &mut self,
        par: &[f64],
        fmin: f64,
        (lower, upper): (&[f64], &[f64]),
        (opts, maxfun): (&OptimOptions, usize),
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<(Option<ParPoint>, usize)> {
        let Some(largest) = self.towards_residual_limit(par, fmin) else {
            return Ok((None, 0));
        };
        // (the ray scales every parameter but the correlations; `largest` is in the scaled
        // coordinates)
        let scale: Vec<f64> = self
            .re
            .par_is_correlation()
            .iter()
            .zip(&self.par_scale)
            .map(|(&rho, &s)| if rho { 1.0 } else { largest * s })
            .collect();
        let x0: Vec<f64> = to_scaled(par, &scale);
        let xl: Vec<f64> = to_scaled(lower, &scale);
        let xu: Vec<f64> = to_scaled(upper, &scale);
        let mut o = opts.clone();
        o.rhobeg = POLISH_RADIUS;
        o.calc_derivs = false;
        o.maxfun = maxfun;
        let mut obj = ModelObjective {
            model: self,
            progress,
            jacobian: Vec::new(),
            scale,
            bobyqa_only: true,
        };
        let polished = optim::minimize_within(&mut obj, &x0, &xl, &xu, &o)?;
        // (a NaN criterion is no improvement)
        let lower = polished.fmin < fmin - TIE_TOL * fmin.abs().max(1.0);
        if !lower {
            return Ok((None, polished.feval));
        }
        let best = obj.par(&polished.theta);
        Ok((Some((best, polished.fmin)), polished.feval))
    }

    pub(crate) fn minimize_from(
        &mut self,
        start: &[f64],
        (lower, upper): (&[f64], &[f64]),
        opts: &OptimOptions,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<OptSummary> {
        let scale = self.par_scale.clone();
        let neutral = scale.iter().all(|&s| s == 1.0);
        let mut obj = ModelObjective {
            model: self,
            progress,
            jacobian: Vec::new(),
            scale: scale.clone(),
            bobyqa_only: false,
        };
        if neutral {
            return optim::minimize_within(&mut obj, start, lower, upper, opts);
        }
        // The search in the scaled coordinates (see [`super::par_scale`]): the start's radius
        // keeps its size relative to the start's largest element.
        let x0 = to_scaled(start, &scale);
        let mut o = opts.clone();
        let (largest_x, largest_par) = (max_abs(&x0), max_abs(start));
        if largest_x > 0.0 && largest_par > 0.0 && largest_x.is_finite() {
            o.rhobeg = opts.rhobeg * largest_x / largest_par;
        }
        let mut summary = optim::minimize_within(
            &mut obj,
            &x0,
            &to_scaled(lower, &scale),
            &to_scaled(upper, &scale),
            &o,
        )?;
        from_scaled_summary(&mut summary, &scale, (lower, upper), opts.singular_tol);
        summary.start = start.to_vec();
        Ok(summary)
    }

    /// `restart` (a restart off a face of the boundary, [`start::Restart`]) made in the scaled
    /// coordinates, where its thresholds suit every column, and returned as `par`.
    fn scaled_restart(&self, restart: start::Restart, par: &[f64]) -> Option<Vec<f64>> {
        let x = restart(&self.re, &to_scaled(par, &self.par_scale))?;
        Some(x.iter().zip(&self.par_scale).map(|(x, s)| x * s).collect())
    }

    /// The largest relative standard deviation of a random effect at `par`, in the scaled
    /// coordinates: the largest standard deviation of some `z_k b_k` over the rows, relative to
    /// σ, for columns far from unit size (see [`super::par_scale`]); `par`'s own otherwise.
    fn effect_largest_sd(&self, par: &[f64]) -> f64 {
        self.re.largest_sd(&to_scaled(par, &self.par_scale))
    }

    /// Estimates at a given θ: β, random effects, σ, deviance components, fitted values.
    pub fn estimates(&mut self, theta: &[f64]) -> Result<LmmFit> {
        self.set_theta(theta)?;
        let spec = &self.spec;
        let n = spec.n;
        let p = spec.p;
        let (beta, u1, u2) = self.chol.solve(&self.cp);

        // Per-term u and b = T u in lme4's layout, and the fitted values.
        let u_blocks = linpred::split_blocks(&self.re, &self.cp.layout, &u1, &u2);
        let b_blocks = linpred::block_effects(&self.re, &self.lambda, &u_blocks);
        let u_terms = linpred::term_values(spec, &self.re, &u_blocks);
        let b_terms = linpred::term_values(spec, &self.re, &b_blocks);
        let u: Vec<f64> = u_terms.concat();
        let ussq: f64 = u.iter().map(|v| v * v).sum();
        let r = self.chol.pwrss_sqrt(&self.cp);
        let pwrss = r * r;
        // Fitted values are per row; a model from aggregates has none, and its weighted
        // residual sum of squares is the rest of r² = wrss + ‖u‖².
        let (fitted, wrss) = if spec.has_rows() {
            let mut fitted = spec.offset.map_or_else(|| vec![0.0; n], <[f64]>::to_vec);
            linpred::add_xb(spec.x, n, &beta, &mut fitted);
            linpred::add_zb(spec, &self.re, &b_blocks, &mut fitted);
            let wrss: f64 = (0..n)
                .map(|i| {
                    let r = spec.y[i] - fitted[i];
                    spec.weight(i) * r * r
                })
                .sum();
            (fitted, wrss)
        } else {
            (Vec::new(), pwrss - ussq)
        };
        let ldl2 = self.chol.logdet_l11 + self.chol.logdet_l22;
        let ldrx2 = self.chol.logdet_rx(&self.cp);
        let denom = if self.reml { (n - p) as f64 } else { n as f64 };
        let sigma = (pwrss / denom).sqrt();

        let vcov_unscaled = self.chol.vcov_unscaled(&self.cp);

        Ok(LmmFit {
            theta: theta.to_vec(),
            par: self.re.par_from_theta(theta),
            beta,
            u,
            b: b_terms,
            sigma,
            ldl2,
            ldrx2,
            wrss,
            ussq,
            pwrss,
            objective: self.objective(),
            deviance_ml: self.criterion(false),
            reml_crit: self.criterion(true),
            vcov_unscaled,
            fitted,
            opt: OptSummary::default(),
        })
    }
}

/// Random effects up to which a model counts as small: it starts from lme4's start, where an
/// optimization costs a few milliseconds at most.
const SMALL_MODEL_RANDOM_EFFECTS: usize = 2000;

/// Distance of a diagonal θ element (a relative standard deviation) from its bound 0 below which a
/// start or an optimum counts as near the boundary.
const NEAR_BOUNDARY: f64 = 0.05;

/// Whether a fit without a user's start must also be run from its other start, keeping the
/// better optimum. The profiled deviance can have several local minima; they come with the
/// boundary (a variance at 0, a correlation at ±1: each face of the boundary can hold its own
/// minimum) and with designs whose few levels make the likelihood flat. The two starts:
///
/// - *small models* (at most [`SMALL_MODEL_RANDOM_EFFECTS`] random effects, where an evaluation
///   costs microseconds) are first run from lme4's start, θ = identity with minqa's first radius
///   (so the fit is never worse than the one lme4's start gives, by construction), then from the
///   moment estimate as a second opinion;
/// - *large models* are first run from the moment estimate (about half the evaluations of lme4's
///   start), then from lme4's start. Left out are large models whose moment start and optimum are
///   interior and clean: their moments come from many levels and the start is within a few
///   percent of the optimum.
///
/// The second run is made when the first did not converge cleanly (evaluation limit, failed
/// gradient check), when its optimum is near the boundary, or (large models) when the moment
/// start (`moment`: the start and its radius) put a diagonal element near its bound (a variance
/// estimated as 0 or nearly so: the start sits on a face of the boundary, and BOBYQA may stay on
/// it).
pub fn needs_second_start(
    re: &ReStructure,
    first: &OptSummary,
    moment: Option<(&[f64], f64)>,
    par_scale: &[f64],
) -> bool {
    if first.code != 0 || first.grad_check_failed {
        return true;
    }
    // (judged in the scaled coordinates, see `super::par_scale`)
    let near = |par: &[f64], limit: f64| re.par_has_small_sd(&to_scaled(par, par_scale), limit);
    near(&first.theta, NEAR_BOUNDARY)
        || moment.is_some_and(|(start, radius)| near(start, radius.max(NEAR_BOUNDARY)))
}

/// lme4's initial trust-region radius from a given start (minqa's `bobyqa`, which
/// `lmerControl(optimizer = "bobyqa")` uses): `0.2 max|θ₀|`, here at most `rhobeg` and at least
/// [`MIN_GIVEN_RADIUS`].
pub(crate) fn given_start_radius(theta: &[f64], rhobeg: f64) -> f64 {
    let largest = theta.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    (0.2 * largest)
        .min(rhobeg)
        .max(MIN_GIVEN_RADIUS.min(rhobeg))
}

/// Smallest initial radius from a given start (a start of all zeros would give none).
const MIN_GIVEN_RADIUS: f64 = 0.01;

/// Moves a fit's record to `par` with its criterion `f`, counting `evals` more evaluations.
fn move_to(summary: &mut OptSummary, (par, f, evals): (Vec<f64>, f64, usize)) {
    summary.theta = par;
    summary.fmin = f;
    summary.feval += evals;
}

/// The better of two optimizer runs, with the evaluations of both counted and the number of
/// starts added up. The second must be lower by more than rounding ([`TIE_TOL`] relative): the
/// same optimum reached twice keeps the first run's record (its start, its derivatives).
fn keep_better(first: OptSummary, second: OptSummary) -> OptSummary {
    let feval = first.feval + second.feval;
    let starts = first.starts_tried + second.starts_tried;
    let mut best = if second.fmin < first.fmin - TIE_TOL * first.fmin.abs().max(1.0) {
        second
    } else {
        first
    };
    best.feval = feval;
    best.starts_tried = starts;
    best
}

/// Relative difference of two criteria below which they count as the same optimum.
const TIE_TOL: f64 = 1e-11;

/// `v ⊘ scale`: parameters (or bounds) in the scaled coordinates (`±∞` and 0 stay).
fn to_scaled(v: &[f64], scale: &[f64]) -> Vec<f64> {
    v.iter().zip(scale).map(|(v, s)| v / s).collect()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |a, x| a.max(x.abs()))
}

/// A search's record over the scaled coordinates `x` carried back to `par = x ⊙ scale`: the
/// parameters, bounds, the gradient (`∂/∂par = ∂/∂x ⊘ scale`) and Hessian of the convergence
/// checks, and whether the fit is singular, judged on `par` as lme4's `isSingular()` judges θ
/// (the checks themselves ran on `x`, where their step and tolerances suit every column).
fn from_scaled_summary(
    summary: &mut OptSummary,
    scale: &[f64],
    (lower, upper): (&[f64], &[f64]),
    singular_tol: f64,
) {
    let k = scale.len();
    summary.theta = summary
        .theta
        .iter()
        .zip(scale)
        .map(|(x, s)| x * s)
        .collect();
    summary.lower = lower.to_vec();
    summary.upper = upper.to_vec();
    if summary.gradient.len() == k {
        summary
            .gradient
            .iter_mut()
            .zip(scale)
            .for_each(|(g, s)| *g /= s);
    }
    if summary.hessian.len() == k * k {
        for r in 0..k {
            for c in 0..k {
                summary.hessian[r * k + c] /= scale[r] * scale[c];
            }
        }
    }
    summary.singular = optim::is_singular(&summary.theta, lower, upper, singular_tol);
}

/// Largest relative standard deviation from which [`LinearMixedModel::residual_limit_ray`] looks
/// along the ray (a residual sd below a tenth of a random effect's).
const RAY_TRIGGER: f64 = 10.0;

/// Parameters and the criterion there.
type ParPoint = (Vec<f64>, f64);

/// The step out along the ray σ → 0 (a share of the relative standard deviations) at which
/// [`LinearMixedModel::falls_along_ray`] compares the criterion.
const RAY_PROBE: f64 = 0.1;

/// Largest relative standard deviation [`LinearMixedModel::residual_limit_ray`] goes to.
const RAY_CAP: f64 = 1000.0;

/// Largest relative standard deviation from which a fit is reported as ending towards σ → 0
/// ([`OptSummary::residual_limit`]): half the ray's cap, which only a criterion that kept
/// falling along the ray reaches (σ below a five-hundredth of a random effect's).
const RESIDUAL_LIMIT_REPORTED: f64 = 0.5 * RAY_CAP;

/// Initial trust radius of [`LinearMixedModel::residual_limit_polish`] (in units of the largest
/// relative standard deviation).
const POLISH_RADIUS: f64 = 0.05;

/// Evaluations [`LinearMixedModel::residual_limit_polish`] may take, per parameter and besides.
const POLISH_EVALUATIONS_PER_PARAMETER: usize = 100;
const POLISH_EXTRA_EVALUATIONS: usize = 200;

/// Polishing searches [`LinearMixedModel::follow_residual_limit`] makes at most (on 300 random
/// structured LMMs the third still gained 1e-6 on one fit).
const POLISH_ROUNDS: usize = 3;

struct ModelObjective<'m, 'a> {
    model: &'m mut LinearMixedModel<'a>,
    progress: &'m mut dyn FnMut(usize, &[f64], f64) -> Stop,
    /// `dθ/dpar` (columns, [`par_jacobian`]) at the point of the last
    /// [`Objective::value_gradient`] call of a structured model.
    jacobian: Vec<Vec<f64>>,
    /// The search is over `x` with `par = x ⊙ scale` ([`super::par_scale`]; all 1: over `par`;
    /// the largest relative sd times that for [`LinearMixedModel::residual_limit_polish`]).
    scale: Vec<f64>,
    /// BOBYQA alone: no gradient, no quasi-Newton search
    /// ([`LinearMixedModel::residual_limit_polish`], [`LinearMixedModel::finish_by_bobyqa`]).
    bobyqa_only: bool,
}

impl ModelObjective<'_, '_> {
    fn par(&self, x: &[f64]) -> Vec<f64> {
        x.iter().zip(&self.scale).map(|(x, s)| x * s).collect()
    }
}

impl Objective for ModelObjective<'_, '_> {
    fn eval(&mut self, x: &[f64]) -> f64 {
        let par = self.par(x);
        self.model.objective_at_par(&par)
    }

    fn after_eval(&mut self, count: usize, x: &[f64], value: f64) -> Stop {
        let par = self.par(x);
        (self.progress)(count, &par, value)
    }

    fn has_exact_gradient(&self) -> bool {
        !self.bobyqa_only && self.model.exact_gradient_pays()
    }

    /// Structured terms: where the Newton steps stop short (next to a bound, where the map from
    /// `par` to θ and so their gradient are least reliable), BOBYQA searches as it would have
    /// without them (or from where an unfinished quasi-Newton search ended). From the steps'
    /// end it reached the limit σ → 0 of terms that absorb the residual up to 2e-5 less
    /// closely (tests/testthat/test-structured-lmm.R).
    fn bobyqa_from_start(&self) -> bool {
        !self.model.re.all_unstructured()
    }

    /// Structured terms whose Newton steps could not finish (their average-information model
    /// is poor far from the optimum, a step overshoots onto a bound) take the quasi-Newton
    /// search with the same exact gradient before BOBYQA: standard deviations whose sign does
    /// not matter unbounded, correlations over an angle. `cs()` and `toep()` of six columns
    /// on 480 rows with a crossed intercept take 49 to 60 evaluations where BOBYQA took 350
    /// to 470.
    fn quasi_newton_coordinates(&self) -> Option<QuasiNewtonCoordinates> {
        let re = &self.model.re;
        if re.all_unstructured() || !self.has_exact_gradient() {
            return None;
        }
        // Relative standard deviations of 100 and more: the optimum may lie in the limit
        // σ → 0 (see `residual_limit_ray`), where the criterion falls too slowly for the
        // search to converge and, far out, loses its precision (a search went to 4e7 and a
        // criterion of −453 where the optimum's is 3248); BOBYQA searches such fits as before.
        // From relative standard deviations of 10 (where `residual_limit_ray` starts to look)
        // the search may have followed that limit's basin where another is lower: a `cs()`
        // term with one observation per subject and time ended at relative sds of 70 (σ
        // 0.015), 0.18 log-likelihood units below the optimum at a correlation of 1 (σ 0.76)
        // that BOBYQA finds. There BOBYQA searches too, and the better end is kept.
        let mut search_limit = vec![f64::INFINITY; re.n_par()];
        let mut confirm_beyond = vec![f64::INFINITY; re.n_par()];
        for j in re.sd_par_positions() {
            search_limit[j] = start::RESIDUAL_LIMIT_RESTART_SD;
            confirm_beyond[j] = RAY_TRIGGER;
        }
        Some(QuasiNewtonCoordinates {
            search_lower: re.search_lower(),
            correlation: re.par_is_correlation(),
            search_limit,
            confirm_beyond,
        })
    }

    fn normalize_signs(&self, par: &mut [f64]) {
        self.model.re.normalize_par_signs(par);
    }

    /// The criterion and its gradient over `x` (`∂/∂x = scale ⊙ ∂/∂par`).
    fn value_gradient(&mut self, x: &[f64]) -> Option<(f64, Vec<f64>)> {
        if !self.has_exact_gradient() {
            return None;
        }
        let par = self.par(x);
        let f = self.model.objective_at_par(&par);
        if !f.is_finite() {
            return None;
        }
        let g = self.model.criterion_gradient().ok()??;
        let mut g_par = if self.model.re.all_unstructured() {
            g
        } else {
            self.jacobian = par_jacobian(&self.model.re, &par);
            let mut g_par = vec![0.0; par.len()];
            gradient_through(&self.jacobian, &g, &mut g_par);
            g_par
        };
        g_par.iter_mut().zip(&self.scale).for_each(|(g, s)| *g *= s);
        Some((f, g_par))
    }

    /// The average information over θ, carried to a structured model's `par` as `Jᵀ A J`
    /// (`J = dθ/dpar`; the term of the gradient over θ times the map's second derivatives left
    /// out, which the Newton steps' linear convergence absorbs).
    fn approximate_hessian(&mut self) -> Option<Vec<f64>> {
        let mut h = self.par_hessian()?;
        // over x: scale_r scale_c ∂²/∂par_r∂par_c
        let k = self.scale.len();
        for r in 0..k {
            for c in 0..k {
                h[r * k + c] *= self.scale[r] * self.scale[c];
            }
        }
        Some(h)
    }
}

impl ModelObjective<'_, '_> {
    /// The average information over `par` (see [`Objective::approximate_hessian`]).
    fn par_hessian(&mut self) -> Option<Vec<f64>> {
        let a = self.model.average_information().ok()??;
        if self.model.re.all_unstructured() {
            return Some(a);
        }
        let nth = self.model.re.n_theta();
        let jac = &self.jacobian;
        let k = jac.len();
        // A J, column by column, then Jᵀ (A J).
        let aj: Vec<Vec<f64>> = jac
            .iter()
            .map(|col| {
                (0..nth)
                    .map(|i| (0..nth).map(|j| a[i * nth + j] * col[j]).sum())
                    .collect()
            })
            .collect();
        let mut h = vec![0.0; k * k];
        for r in 0..k {
            for c in 0..k {
                h[r * k + c] = jac[r].iter().zip(&aj[c]).map(|(x, y)| x * y).sum();
            }
        }
        Some(h)
    }
}
