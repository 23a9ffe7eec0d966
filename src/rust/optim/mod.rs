//! Minimizing the profiled deviance over θ, and checking that the minimum is one.
//!
//! BOBYQA (Powell's bound-constrained quadratic-model method, through the `bobyqa` crate) within
//! the bounds of the covariance parameters (lower bounds 0 on standard deviations and on the
//! diagonal elements of unstructured factors, as lme4 has them; correlation parameters of
//! structured terms in an interval), or, where the objective offers its exact gradient and a
//! cheap approximate Hessian, Newton steps from the start with BOBYQA taking over where they
//! cannot finish (for objectives that offer one, a quasi-Newton search with the same gradient,
//! [`projected_bfgs`], comes between the two; where it runs out of evaluations below the start,
//! BOBYQA goes on from its end). After it stops, three checks that lme4 also
//! makes, done so that they do not cry wolf:
//!
//! 1. *boundary*: an estimate within `boundary_tol` of its bound is tried on the bound and kept
//!    there when the deviance is no worse;
//! 2. *edge restart*: for estimates on the bound, a one-sided difference tells whether moving off
//!    the bound lowers the deviance; if so the optimizer restarts from there;
//! 3. *gradient*: a central-difference gradient (and, only when it is not already small, the
//!    Hessian, for lme4's scaled gradient `min(|H⁻¹ᐟ²g|, |g|)`) at the optimum. When it fails the
//!    optimizer is restarted once with a small trust region before anything is reported.
pub mod angle_coordinate;
pub mod nelder_mead;
pub mod projected_bfgs;

use crate::error::{MixedError, Result};
use angle_coordinate::AngleCoordinate;
use bobyqa::{Bobyqa, Config, Status};
use projected_bfgs::KnownStart;

/// Settings of the optimizer and its checks.
#[derive(Debug, Clone)]
pub struct OptimOptions {
    /// Initial trust-region radius.
    pub rhobeg: f64,
    /// Final trust-region radius (accuracy of θ).
    pub rhoend: f64,
    /// Largest number of objective evaluations.
    pub maxfun: usize,
    /// Whether to run the derivative checks.
    pub calc_derivs: bool,
    /// Distance to a bound within which an estimate is tried on the bound (0: never).
    pub boundary_tol: f64,
    /// Tolerance of the gradient check (lme4: 0.002).
    pub grad_tol: f64,
    /// Tolerance below which a bounded θ counts as singular (lme4's `isSingular` default 1e-4).
    pub singular_tol: f64,
    /// Stop BOBYQA when a reduction of its trust region improved the objective by less than
    /// this, relative to its value (NLopt's `ftol_rel`, as lme4's `nloptwrap` sets it; `None`:
    /// only the radius `rhoend` stops it).
    pub ftol_rel: Option<f64>,
    /// As `ftol_rel`, absolute (NLopt's `ftol_abs`).
    pub ftol_abs: Option<f64>,
}

impl Default for OptimOptions {
    fn default() -> Self {
        Self {
            rhobeg: 0.5,
            rhoend: 1e-7,
            maxfun: 10_000,
            calc_derivs: true,
            boundary_tol: 1e-5,
            grad_tol: 2e-3,
            singular_tol: 1e-4,
            ftol_rel: None,
            ftol_abs: None,
        }
    }
}

/// What the optimizer did and where it ended.
#[derive(Debug, Clone, Default)]
pub struct OptSummary {
    /// Starting θ.
    pub start: Vec<f64>,
    /// Lower bounds of θ.
    pub lower: Vec<f64>,
    /// Upper bounds of θ (`+∞` where there is none).
    pub upper: Vec<f64>,
    /// Final θ.
    pub theta: Vec<f64>,
    /// Objective at the final θ.
    pub fmin: f64,
    /// Objective evaluations, checks included.
    pub feval: usize,
    /// Return code: 0 converged, 1 evaluation limit reached, 2 interpolation model degenerate.
    pub code: i32,
    /// The optimizer's own description of why it stopped.
    pub message: String,
    /// How the search ended, for the callers that act on it ([`Ending`]; `message` says it to
    /// the user).
    pub ending: Ending,
    /// Finite-difference gradient at the optimum (empty when not computed).
    pub gradient: Vec<f64>,
    /// Finite-difference Hessian, column-major (empty when not computed).
    pub hessian: Vec<f64>,
    /// Whether some bounded θ is below `singular_tol`.
    pub singular: bool,
    /// Convergence problems found by the checks (empty when all is well).
    pub messages: Vec<String>,
    /// Whether the gradient check failed after the polishing restart.
    pub grad_check_failed: bool,
    /// Number of starting points the optimizer was run from (the LMM fit may also run from
    /// lme4's start and keep the better optimum: `lmm::needs_identity_start`).
    pub starts_tried: usize,
    /// Whether the fit ended where the criterion still falls as the residual standard
    /// deviation goes to 0 (a linear mixed model whose random effects absorb the residual):
    /// its supremum lies at σ → 0, and the σ reported is where the search stopped on the way.
    pub residual_limit: bool,
}

/// How [`minimize_within`] ended, where its callers act on it: set with the message that
/// says it ([`OptSummary::end`]), so that no caller compares messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ending {
    /// Any other end: BOBYQA's or Nelder-Mead's own, an evaluation limit, a caller's stage.
    #[default]
    Other,
    /// Newton steps with the exact gradient converged ([`NEWTON_CONVERGED`]).
    Newton,
    /// Quasi-Newton steps with the exact gradient converged ([`QUASI_NEWTON_CONVERGED`]).
    QuasiNewton,
    /// Quasi-Newton steps stopped towards the limit of their range
    /// ([`QUASI_NEWTON_TOWARDS_LIMIT`]).
    QuasiNewtonTowardsLimit,
    /// BOBYQA stopped on its way towards that limit ([`BOBYQA_TOWARDS_LIMIT`]).
    BobyqaTowardsLimit,
}

impl Ending {
    /// Whether the exact gradient vanished there (Newton or quasi-Newton convergence).
    pub fn by_gradient(self) -> bool {
        matches!(self, Ending::Newton | Ending::QuasiNewton)
    }

    /// Whether the search ended on its way towards the limit of the quasi-Newton search's range.
    pub fn towards_limit(self) -> bool {
        matches!(
            self,
            Ending::QuasiNewtonTowardsLimit | Ending::BobyqaTowardsLimit
        )
    }
}

impl OptSummary {
    /// Records a converged end (`code` 0) of one of the kinds with a fixed message
    /// ([`Ending::Other`] leaves the record as it is: its message is the optimizer's own).
    fn end(&mut self, ending: Ending) {
        let message = match ending {
            Ending::Newton => NEWTON_CONVERGED,
            Ending::QuasiNewton => QUASI_NEWTON_CONVERGED,
            Ending::QuasiNewtonTowardsLimit => QUASI_NEWTON_TOWARDS_LIMIT,
            Ending::BobyqaTowardsLimit => BOBYQA_TOWARDS_LIMIT,
            Ending::Other => return,
        };
        self.code = 0;
        self.ending = ending;
        self.message = message.into();
    }

    /// Records an end with the optimizer's own code and message ([`Ending::Other`]).
    fn end_other(&mut self, (code, message): (i32, String)) {
        self.code = code;
        self.ending = Ending::Other;
        self.message = message;
    }
}

/// Why the optimization was stopped early by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep going.
    Continue,
    /// The user asked to stop (an interrupt).
    Interrupt,
}

/// The objective as the optimizer sees it: `f(θ)`, `+∞` where it cannot be evaluated.
pub trait Objective {
    /// Evaluates the objective.
    fn eval(&mut self, theta: &[f64]) -> f64;
    /// Called after each evaluation during the main search (for progress output and interrupts).
    fn after_eval(&mut self, _count: usize, _theta: &[f64], _value: f64) -> Stop {
        Stop::Continue
    }
    /// The objective and its exact gradient, where the objective offers one that costs less
    /// than the finite differences of the convergence check (see [`minimize_within`]); `None`
    /// otherwise (the default).
    fn value_gradient(&mut self, _theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        None
    }
    /// Whether BOBYQA, where the Newton steps of [`minimize_within`] could not finish, starts
    /// from the start rather than from the best point they reached (the default).
    fn bobyqa_from_start(&self) -> bool {
        false
    }
    /// Whether [`Objective::value_gradient`] is offered: then the search takes Newton steps from
    /// the start (see [`minimize_within`]).
    fn has_exact_gradient(&self) -> bool {
        false
    }
    /// A positive semi-definite approximation of the Hessian at the point of the last
    /// [`Objective::value_gradient`] call that costs little beside the gradient, for the Newton
    /// steps of [`minimize_within`] (never reported as the Hessian); `None` (the default) makes
    /// them take the Hessian from forward differences of the gradient.
    fn approximate_hessian(&mut self) -> Option<Vec<f64>> {
        None
    }
    /// Where the Newton steps of [`minimize_within`] could not finish, the coordinates of a
    /// quasi-Newton search with the exact gradient ([`projected_bfgs`]) to try before BOBYQA;
    /// `None` (the default): BOBYQA.
    fn quasi_newton_coordinates(&self) -> Option<QuasiNewtonCoordinates> {
        None
    }
    /// The parameters as reported after a quasi-Newton search whose coordinates let sign-free
    /// ones go below their bound (see [`QuasiNewtonCoordinates::search_lower`]).
    fn normalize_signs(&self, _theta: &mut [f64]) {}
}

/// How a quasi-Newton search of [`minimize_within`] moves over the parameters (see
/// [`Objective::quasi_newton_coordinates`]).
#[derive(Debug, Clone)]
pub struct QuasiNewtonCoordinates {
    /// The lower bound the search keeps for each parameter: `−∞` for one whose sign the
    /// criterion does not depend on (its bound 0 only picks one of two equivalent points, and
    /// the gradient vanishes there by that symmetry, so a step clipped onto it would look
    /// stationary). Ignored for correlations.
    pub search_lower: Vec<f64>,
    /// Which parameters are correlations, searched over an angle ([`AngleCoordinate`]) that
    /// reaches their bounds without keeping them.
    pub correlation: Vec<bool>,
    /// The largest absolute value the search lets each parameter reach (`+∞`: none). A search
    /// that ends with some parameter at it counts as not converged: BOBYQA then searches from
    /// the start, and where it finds nothing better the end stands, with the message
    /// [`QUASI_NEWTON_TOWARDS_LIMIT`], for the objective's own handling of an optimum out there.
    pub search_limit: Vec<f64>,
    /// The absolute value of each parameter beyond which the search's end is compared with
    /// BOBYQA's from the start, the better kept (`+∞`: none): out there the criterion can have
    /// a second basin that the search, started where it is, may end in.
    pub confirm_beyond: Vec<f64>,
}

/// Where [`quasi_newton_search`] ended: the parameters (signs normalized), the criterion
/// there, and what follows. `Converged`: the end stands, unless BOBYQA is to confirm it
/// ([`QuasiNewtonCoordinates::confirm_beyond`]). `Unfinished`: the search used its evaluations
/// before its gradient was small, below the start and within the search's limits; BOBYQA goes
/// on from there. `TowardsLimit`: see [`QuasiNewtonOutcome::TowardsLimit`].
struct QuasiNewtonEnd {
    theta: Vec<f64>,
    f: f64,
    outcome: QuasiNewtonOutcome,
}

#[derive(Clone, Copy, PartialEq)]
enum QuasiNewtonOutcome {
    Converged {
        confirm: bool,
    },
    Unfinished,
    /// The search ended below the start at its limit (some parameter at
    /// [`QuasiNewtonCoordinates::search_limit`]), or used its evaluations on the way there
    /// (beyond [`QuasiNewtonCoordinates::confirm_beyond`]), the criterion still falling: the
    /// end stands where BOBYQA from the start finds nothing better, and BOBYQA's search stops
    /// once it follows the same way ([`TailWatch`]).
    TowardsLimit,
}

/// Watches BOBYQA's search for an objective that offers a quasi-Newton search (whatever that
/// search's outcome): once [`TAIL_STREAK`] new best points in a row lie beyond
/// [`QuasiNewtonCoordinates::confirm_beyond`], the search is moving through the region where
/// the criterion may fall on towards the limit of the range, which BOBYQA's one trust radius
/// crawls along (sleepstudy's `toep()` of ten columns: 10,000 evaluations from a relative sd
/// of 1 to 21, where the quasi-Newton search reached 100 in 120). The search stops there and
/// that point is kept (`reached`), with the message [`BOBYQA_TOWARDS_LIMIT`], for the
/// objective's own handling of the limit (or of an optimum out there).
struct TailWatch {
    beyond: Vec<f64>,
    best: f64,
    /// New best points in a row that lie beyond.
    streak: usize,
    reached: Option<(Vec<f64>, f64)>,
}

/// New best points in a row beyond [`QuasiNewtonCoordinates::confirm_beyond`] after which
/// [`TailWatch`] stops BOBYQA: one alone can be a point of its first, exploratory steps (on a
/// 44-row model with two `ar1()` terms a restart's search passed a relative sd of 12.8 before
/// it found a better optimum at 6.4), a run of them is a search moving out there.
const TAIL_STREAK: usize = 10;

impl TailWatch {
    fn new(beyond: Vec<f64>) -> Self {
        Self {
            beyond,
            best: f64::INFINITY,
            streak: 0,
            reached: None,
        }
    }

    /// Records an evaluation; whether the search is to stop.
    fn passes(&mut self, theta: &[f64], value: f64) -> bool {
        if value >= self.best {
            return false;
        }
        self.best = value;
        let beyond = theta.iter().zip(&self.beyond).any(|(t, b)| t.abs() > *b);
        self.streak = if beyond { self.streak + 1 } else { 0 };
        if self.streak >= TAIL_STREAK {
            self.reached = Some((theta.to_vec(), value));
            return true;
        }
        false
    }
}

struct Counted<'o, O: Objective> {
    obj: &'o mut O,
    count: usize,
    interrupted: bool,
    /// Set while BOBYQA checks a quasi-Newton end at the search's limit.
    tail: Option<TailWatch>,
}

impl<O: Objective> Counted<'_, O> {
    fn new(obj: &mut O) -> Counted<'_, O> {
        Counted {
            obj,
            count: 0,
            interrupted: false,
            tail: None,
        }
    }

    fn eval(&mut self, theta: &[f64]) -> f64 {
        let tail_reached = self.tail.as_ref().is_some_and(|t| t.reached.is_some());
        if self.interrupted || tail_reached {
            return f64::NEG_INFINITY;
        }
        self.count += 1;
        let v = self.obj.eval(theta);
        if self.obj.after_eval(self.count, theta, v) == Stop::Interrupt {
            self.interrupted = true;
            return f64::NEG_INFINITY;
        }
        let v = if v.is_nan() { f64::INFINITY } else { v };
        // (−∞ ends BOBYQA's search: its target is reached)
        if self.tail.as_mut().is_some_and(|t| t.passes(theta, v)) {
            return f64::NEG_INFINITY;
        }
        v
    }

    /// The objective with its exact gradient (counted as one evaluation), `None` where the
    /// objective offers none or it is not finite.
    fn value_gradient(&mut self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        if self.interrupted {
            return None;
        }
        let out = self.obj.value_gradient(theta)?;
        self.count += 1;
        if self.obj.after_eval(self.count, theta, out.0) == Stop::Interrupt {
            self.interrupted = true;
            return None;
        }
        (out.0.is_finite() && out.1.iter().all(|v| v.is_finite())).then_some(out)
    }
}

fn run_bobyqa<O: Objective>(
    f: &mut Counted<'_, O>,
    x: &mut [f64],
    (lower, upper): (&[f64], &[f64]),
    (rhobeg, rhoend): (f64, f64),
    opts: &OptimOptions,
    budget: usize,
) -> Result<(f64, Status)> {
    let n = x.len();
    // BOBYQA needs every interval at least 2 rhobeg wide (a correlation's is about 2).
    let narrowest = lower
        .iter()
        .zip(upper)
        .map(|(l, u)| u - l)
        .fold(f64::INFINITY, f64::min);
    let rhobeg = rhobeg.min(0.5 * narrowest);
    let mut config = Config::new(n);
    config.rho_begin = rhobeg;
    config.rho_end = rhoend.min(rhobeg);
    config.max_fun = budget.max(config.npt + 2);
    config.ftol_rel = opts.ftol_rel;
    config.ftol_abs = opts.ftol_abs;
    let mut solver = Bobyqa::new(n, config)
        .map_err(|s| MixedError::Optimizer(format!("BOBYQA could not start: {s}")))?;
    let outcome = solver.minimize(|t| f.eval(t), x, lower, upper);
    if f.interrupted {
        return Err(MixedError::Optimizer("interrupted by the user".into()));
    }
    if let Some((reached, value)) = f.tail.as_ref().and_then(|t| t.reached.clone()) {
        x.copy_from_slice(&reached);
        return Ok((value, Status::TargetReached));
    }
    if !outcome.found_finite() {
        return Err(MixedError::Optimizer(
            "the deviance could not be evaluated at any value of the covariance parameters".into(),
        ));
    }
    Ok((outcome.f, outcome.status))
}

fn status_code(status: Status) -> (i32, String) {
    match status {
        Status::Converged | Status::FtolReached | Status::TargetReached => (
            0,
            "BOBYQA converged: the trust-region radius reached rhoend".into(),
        ),
        Status::MaxFunReached => (
            1,
            "BOBYQA stopped: maximum number of evaluations reached".into(),
        ),
        other => (2, format!("BOBYQA stopped: {other}")),
    }
}

/// Minimizes `obj` over θ ≥ `lower` from `start` and checks the result.
pub fn minimize<O: Objective>(
    obj: &mut O,
    start: &[f64],
    lower: &[f64],
    opts: &OptimOptions,
) -> Result<OptSummary> {
    let upper = vec![f64::INFINITY; start.len()];
    minimize_within(obj, start, lower, &upper, opts)
}

/// Minimizes `obj` over `lower ≤ θ ≤ upper` from `start` and checks the result.
pub fn minimize_within<O: Objective>(
    obj: &mut O,
    start: &[f64],
    lower: &[f64],
    upper: &[f64],
    opts: &OptimOptions,
) -> Result<OptSummary> {
    let n = start.len();
    let mut theta: Vec<f64> = start
        .iter()
        .zip(lower.iter().zip(upper))
        .map(|(&s, (&l, &u))| s.max(l).min(u))
        .collect();
    let clamped_start = theta.clone();
    let bounds = (lower, upper);
    let mut f = Counted::new(obj);
    let mut summary = OptSummary {
        start: start.to_vec(),
        lower: lower.to_vec(),
        upper: upper.to_vec(),
        starts_tried: 1,
        ..Default::default()
    };
    // Where the objective offers its exact gradient and a cheap approximate Hessian, Newton
    // steps from the start; BOBYQA where they cannot finish, or are not offered.
    let mut newton = None;
    let mut fmin = f64::INFINITY;
    if f.obj.has_exact_gradient() {
        newton = newton_search(&mut f, &mut theta, &mut fmin, bounds, opts);
        if f.interrupted {
            return Err(MixedError::Optimizer("interrupted by the user".into()));
        }
    }
    let quasi_newton = if newton.is_none() && f.count < opts.maxfun {
        quasi_newton_search(&mut f, &clamped_start, bounds, opts)
    } else {
        None
    };
    if f.interrupted {
        return Err(MixedError::Optimizer("interrupted by the user".into()));
    }
    if newton.is_some() {
        summary.end(Ending::Newton);
    } else if f.count >= opts.maxfun {
        summary.end_other((1, NEWTON_MAXFUN.into()));
    } else if let Some(end) = quasi_newton
        .as_ref()
        .filter(|e| e.outcome == QuasiNewtonOutcome::Converged { confirm: false })
    {
        theta = end.theta.clone();
        fmin = end.f;
        summary.end(Ending::QuasiNewton);
    } else {
        // From where an unfinished quasi-Newton search ended (below the start, within its
        // limits), else from the best point Newton reached, if any (BOBYQA keeps θ where it is
        // no better), unless the objective asks for its start.
        let budget = opts.maxfun - f.count;
        let unfinished = quasi_newton
            .as_ref()
            .filter(|e| e.outcome == QuasiNewtonOutcome::Unfinished);
        let mut t = if let Some(end) = unfinished {
            end.theta
                .iter()
                .zip(lower.iter().zip(upper))
                .map(|(&s, (&l, &u))| s.max(l).min(u))
                .collect()
        } else if f.obj.bobyqa_from_start() {
            clamped_start
        } else {
            theta.clone()
        };
        f.tail = f
            .obj
            .quasi_newton_coordinates()
            .map(|c| TailWatch::new(c.confirm_beyond));
        let (fr, status) = run_bobyqa(
            &mut f,
            &mut t,
            bounds,
            (opts.rhobeg, opts.rhoend),
            opts,
            budget,
        )?;
        let followed = f.tail.take().is_some_and(|w| w.reached.is_some());
        if fr <= fmin || !fmin.is_finite() {
            theta = t;
            fmin = fr;
        }
        summary.end_other(status_code(status));
        if followed {
            summary.end(Ending::BobyqaTowardsLimit);
        }
        // A quasi-Newton end that asked for confirmation, or that reached the search's limit,
        // stands where it is the better.
        if let Some(end) = quasi_newton.filter(|e| {
            e.f < fmin
                && matches!(
                    e.outcome,
                    QuasiNewtonOutcome::Converged { confirm: true }
                        | QuasiNewtonOutcome::TowardsLimit
                )
        }) {
            theta = end.theta;
            fmin = end.f;
            summary.end(if end.outcome == QuasiNewtonOutcome::TowardsLimit {
                Ending::QuasiNewtonTowardsLimit
            } else {
                Ending::QuasiNewton
            });
        }
    }

    // 1. Estimates just off their bound: keep them on it when that is no worse.
    if let Some(trial) = onto_nearby_bounds(&theta, lower, upper, opts.boundary_tol) {
        let ft = f.eval(&trial);
        if no_worse_on_bound(ft, fmin) {
            theta = trial;
            fmin = fmin.min(ft);
        }
    }

    // 2. Estimates on their bound: restart if moving off the bound helps (not at an end
    // towards the limit of the quasi-Newton search's range, left to the objective's own
    // handling of the limit, where a restart with a small radius would crawl along it).
    let towards_limit = summary.ending.towards_limit();
    let step = 1e-4;
    let on_bound: Vec<usize> = (0..n)
        .filter(|&i| {
            (lower[i].is_finite() && theta[i] == lower[i])
                || (upper[i].is_finite() && theta[i] == upper[i])
        })
        .collect();
    if !on_bound.is_empty() && summary.code == 0 && !towards_limit {
        let mut improves = false;
        for &i in &on_bound {
            let mut t = theta.clone();
            if theta[i] == lower[i] {
                t[i] += step;
            } else {
                t[i] -= step;
            }
            if f.eval(&t) < fmin {
                improves = true;
            }
        }
        if improves {
            let mut t = theta.clone();
            let budget = opts.maxfun.saturating_sub(f.count).max(4 * n + 10);
            let (fr, st) = run_bobyqa(&mut f, &mut t, bounds, (1e-3, opts.rhoend), opts, budget)?;
            if fr < fmin {
                theta = t;
                fmin = fr;
                summary.end_other(status_code(st));
            }
        }
    }

    summary.singular = is_singular(&theta, lower, upper, opts.singular_tol);

    // 3. Gradient check at an interior optimum: with the exact gradient where Newton steps
    // found the optimum, else by finite differences. Not at an end towards the limit of the
    // quasi-Newton search's range, where the criterion still falls: that end is left to the
    // objective's own handling of the limit (see [`QuasiNewtonCoordinates::search_limit`]).
    if opts.calc_derivs && !summary.singular && summary.code == 0 && !towards_limit {
        let mut check = match newton {
            Some(gradient) => exact_gradient_check(&mut f, &theta, fmin, gradient, opts),
            None => gradient_check(&mut f, &theta, fmin, opts),
        };
        if check.failed {
            let mut t = theta.clone();
            let budget = opts.maxfun.saturating_sub(f.count).max(4 * n + 10);
            let (fr, _) = run_bobyqa(&mut f, &mut t, bounds, (1e-3, opts.rhoend), opts, budget)?;
            if fr < fmin {
                theta = t;
                fmin = fr;
            }
            check = gradient_check(&mut f, &theta, fmin, opts);
        }
        // A Hessian that is not positive definite at an optimum the optimizer accepted is most
        // often rounding noise of the criterion amplified by the small step (an ill-conditioned
        // factor, e.g. an AR(1) correlation near 1, makes the criterion noisy at ~1e-12
        // relative): the check is repeated with a larger step before it is believed.
        if check.failed && !check.hessian.is_empty() && !positive_definite(&check.hessian, n) {
            let refined = refined_gradient_check(&mut f, &theta, fmin, opts);
            if !refined.failed {
                check = refined;
            }
        }
        check.record(&mut summary, opts.grad_tol);
    }
    summary.theta = theta;
    summary.fmin = fmin;
    summary.feval = f.count;
    Ok(summary)
}

/// The checks of [`minimize_within`] at a point another optimizer found (the user's, lme4's
/// `Nelder_Mead`) or that was given (no optimization): the objective there, whether some
/// parameter is within `opts.singular_tol` of its bound, and, with `opts.calc_derivs`, the
/// gradient check at an interior point. Nothing is polished: the point is the caller's, and a
/// failed check is reported in `messages`. `summary` carries the caller's record (start, code,
/// message, evaluations so far), which is completed and returned.
pub fn assess_at<O: Objective>(
    obj: &mut O,
    theta: &[f64],
    (lower, upper): (&[f64], &[f64]),
    opts: &OptimOptions,
    mut summary: OptSummary,
) -> OptSummary {
    let mut f = Counted::new(obj);
    let fmin = f.eval(theta);
    summary.lower = lower.to_vec();
    summary.upper = upper.to_vec();
    summary.singular = is_singular(theta, lower, upper, opts.singular_tol);
    if opts.calc_derivs && !summary.singular && fmin.is_finite() {
        let check = gradient_check(&mut f, theta, fmin, opts);
        check.record(&mut summary, opts.grad_tol);
    }
    summary.theta = theta.to_vec();
    summary.fmin = fmin;
    summary.feval += f.count;
    summary.starts_tried = summary.starts_tried.max(1);
    summary
}

struct GradCheck {
    gradient: Vec<f64>,
    hessian: Vec<f64>,
    failed: bool,
    max_stat: f64,
    component: usize,
}

impl GradCheck {
    /// Stores the check's gradient and Hessian in `summary` and, when it failed, lme4's
    /// convergence message.
    fn record(self, summary: &mut OptSummary, grad_tol: f64) {
        summary.gradient = self.gradient;
        summary.hessian = self.hessian;
        if self.failed {
            summary.grad_check_failed = true;
            summary.messages.push(format!(
                "Model failed to converge with max|grad| = {:.6} (tol = {}, component {})",
                self.max_stat,
                grad_tol,
                self.component + 1
            ));
        }
    }

    /// The passed check, without a Hessian, where every component of `gradient` is within
    /// `opts.grad_tol` (lme4's first test); the gradient back otherwise.
    fn within_tolerance(
        gradient: Vec<f64>,
        opts: &OptimOptions,
    ) -> std::result::Result<Self, Vec<f64>> {
        let (max_abs, component) = max_abs_index(&gradient);
        if max_abs.is_finite() && max_abs < opts.grad_tol {
            Ok(Self {
                gradient,
                hessian: Vec::new(),
                failed: false,
                max_stat: max_abs,
                component,
            })
        } else {
            Err(gradient)
        }
    }

    /// The check's verdict from a gradient and Hessian: lme4's scaled gradient against
    /// `grad_tol`.
    fn judged(gradient: Vec<f64>, hessian: Vec<f64>, opts: &OptimOptions) -> Self {
        let (max_stat, component) = gradient_statistic(&gradient, &hessian);
        Self {
            gradient,
            hessian,
            failed: max_stat.is_nan() || max_stat >= opts.grad_tol,
            max_stat,
            component,
        }
    }
}

/// Relative rise of the criterion that moving an estimate onto its nearby bound may show from
/// rounding alone (a few units in the last place of a deviance).
const BOUNDARY_ROUNDING: f64 = 1e-14;

/// `theta` with every element within `tol` of a finite bound (and not on it) moved onto that
/// bound; `None` when none is that close (or `tol` is 0). The optimizers' boundary step tries
/// this point and keeps it where [`no_worse_on_bound`].
pub(crate) fn onto_nearby_bounds(
    theta: &[f64],
    lower: &[f64],
    upper: &[f64],
    tol: f64,
) -> Option<Vec<f64>> {
    if tol <= 0.0 {
        return None;
    }
    let mut trial = theta.to_vec();
    let mut moved = false;
    for i in 0..trial.len() {
        let gap = trial[i] - lower[i];
        let gap_up = upper[i] - trial[i];
        if lower[i].is_finite() && gap > 0.0 && gap < tol {
            trial[i] = lower[i];
            moved = true;
        } else if upper[i].is_finite() && gap_up > 0.0 && gap_up < tol {
            trial[i] = upper[i];
            moved = true;
        }
    }
    moved.then_some(trial)
}

/// Whether `on_bound`, the criterion at [`onto_nearby_bounds`]'s point, is no worse than
/// `fmin` beyond the criterion's rounding: within `boundary_tol` of a bound the criterion is
/// flat to the last digits (a variance at 2e-8 instead of 0), and lme4 reports such a fit on
/// its boundary.
pub(crate) fn no_worse_on_bound(on_bound: f64, fmin: f64) -> bool {
    on_bound <= fmin + BOUNDARY_ROUNDING * fmin.abs()
}

/// A parameter closer than this to a finite bound, at the start or after a Newton step, leaves
/// the search to BOBYQA: the optimum may lie on the bound, where Newton steps do not apply.
const NEWTON_BOUND_MARGIN: f64 = 1e-2;

/// The optimizer's message when [`newton_search`] found the optimum.
pub const NEWTON_CONVERGED: &str =
    "Newton steps with the exact gradient and the average-information Hessian converged to within rhoend";

/// The optimizer's message when Newton steps used up `maxfun` evaluations.
pub const NEWTON_MAXFUN: &str = "Newton steps stopped: maximum number of evaluations reached";

/// The message of a search that the quasi-Newton search of [`quasi_newton_search`] finished.
pub const QUASI_NEWTON_CONVERGED: &str =
    "quasi-Newton (BFGS) steps with the exact gradient converged, where Newton steps could not";

/// The message of a search whose quasi-Newton steps ended at the limit of their range, or on
/// their way there, with the criterion still falling, where BOBYQA from the start found
/// nothing better ([`QuasiNewtonOutcome::TowardsLimit`]).
pub const QUASI_NEWTON_TOWARDS_LIMIT: &str =
    "quasi-Newton (BFGS) steps stopped towards the limit of their range, the criterion still falling";

/// The message of a search whose BOBYQA stage entered the region beyond
/// [`QuasiNewtonCoordinates::confirm_beyond`] and stopped there ([`TailWatch`]).
pub const BOBYQA_TOWARDS_LIMIT: &str =
    "BOBYQA stopped on its way towards the limit of the quasi-Newton steps' range";

/// Gradient tolerance of [`quasi_newton_search`]: deviance units per unit of its coordinates
/// (about one standard error each), as the GLMM's stage 2 has it.
const QUASI_NEWTON_GTOL: f64 = 1e-6;

/// Evaluations (each with its gradient) that [`quasi_newton_search`] may take per parameter,
/// and besides: where it does not converge within them, BOBYQA goes on from its end with the
/// rest of `maxfun`. On 300 random structured LMMs the searches that converged took a median
/// of 16 evaluations; those that did not (a third) had used up 50 + 10 per parameter, each a
/// gradient that costs several deviance evaluations, before BOBYQA started again from the start.
const QUASI_NEWTON_EVALUATIONS_PER_PARAMETER: usize = 5;
const QUASI_NEWTON_EXTRA_EVALUATIONS: usize = 25;

/// The share of its [`QuasiNewtonCoordinates::search_limit`] from which a parameter counts as
/// having reached it (its coordinate, scaled and shifted, comes back within rounding).
const LIMIT_REACHED: f64 = 1.0 - 1e-9;

/// Where the Newton steps could not finish: the objective's quasi-Newton search
/// ([`projected_bfgs::minimize`], with [`Objective::quasi_newton_coordinates`]) from `start`.
/// Each coordinate moves by about one standard error per unit (from the objective's
/// approximate Hessian at the start, `√(2 / H_jj)`, at most 1), correlations over an angle
/// ([`AngleCoordinate`]); the approximate Hessian starts the BFGS model. Where it ends
/// ([`QuasiNewtonEnd`]), or `None` where the objective offers no such search, or it ended no
/// lower than the start, or it did not converge and ended beyond
/// [`QuasiNewtonCoordinates::confirm_beyond`] short of the search's limit.
fn quasi_newton_search<O: Objective>(
    f: &mut Counted<'_, O>,
    start: &[f64],
    (lower, upper): (&[f64], &[f64]),
    opts: &OptimOptions,
) -> Option<QuasiNewtonEnd> {
    let coords = f.obj.quasi_newton_coordinates()?;
    let k = start.len();
    let (f0, g0) = f.value_gradient(start)?;
    let hessian = f.obj.approximate_hessian()?;
    let unit: Vec<f64> = (0..k)
        .map(|j| {
            let u = (2.0 / hessian[j * k + j]).sqrt();
            if u.is_finite() && u > 0.0 {
                u.clamp(1e-3, 1.0)
            } else {
                1.0
            }
        })
        .collect();
    let angles: Vec<AngleCoordinate> = (0..k)
        .filter(|&j| coords.correlation[j])
        .map(|j| AngleCoordinate::new(j, (lower[j], upper[j]), start[j], unit[j]))
        .collect();
    let mut y_lower = vec![f64::NEG_INFINITY; k];
    let mut y_upper = vec![f64::INFINITY; k];
    let limit = &coords.search_limit;
    for j in (0..k).filter(|&j| !coords.correlation[j]) {
        y_lower[j] = (coords.search_lower[j].max(-limit[j]) - start[j]) / unit[j];
        y_upper[j] = (upper[j].min(limit[j]) - start[j]) / unit[j];
    }
    let to_x = |y: &[f64]| -> Vec<f64> {
        let mut x: Vec<f64> = (0..k).map(|j| start[j] + unit[j] * y[j]).collect();
        for a in &angles {
            x[a.j] = a.value(y[a.j]);
        }
        x
    };
    let slopes = |y: &[f64]| -> Vec<f64> {
        let mut s = unit.clone();
        for a in &angles {
            s[a.j] = a.slope(y[a.j]);
        }
        s
    };
    let origin = vec![0.0; k];
    // A correlation's start next to its bound moves to the angle's margin: evaluate there.
    let known = if angles.iter().any(|a| a.moved) {
        None
    } else {
        let s = slopes(&origin);
        Some(KnownStart {
            f: f0,
            gradient: (0..k).map(|j| s[j] * g0[j]).collect(),
            hessian: (0..k * k)
                .map(|i| s[i / k] * s[i % k] * hessian[i])
                .collect(),
        })
    };
    let budget = (opts.maxfun - f.count)
        .min(QUASI_NEWTON_EXTRA_EVALUATIONS + QUASI_NEWTON_EVALUATIONS_PER_PARAMETER * k);
    let mut eval = |y: &[f64]| -> Result<projected_bfgs::ValueAndGradient> {
        let x = to_x(y);
        let out = f.value_gradient(&x);
        if f.interrupted {
            return Err(MixedError::Optimizer("interrupted by the user".into()));
        }
        Ok(out.map(|(v, g)| {
            let s = slopes(y);
            (v, (0..k).map(|j| s[j] * g[j]).collect())
        }))
    };
    let search = projected_bfgs::minimize(
        &origin,
        known,
        (&y_lower, &y_upper),
        QUASI_NEWTON_GTOL,
        budget,
        &mut eval,
    )
    .ok()?;
    let mut x = to_x(&search.y);
    // (a parameter on a bound of its own, a standard deviation at 0, is not at the limit)
    let at_limit = (0..k).any(|j| !coords.correlation[j] && x[j].abs() >= LIMIT_REACHED * limit[j]);
    let below_start = search.f.partial_cmp(&f0) == Some(std::cmp::Ordering::Less);
    f.obj.normalize_signs(&mut x);
    let beyond = (0..k).any(|j| x[j].abs() > coords.confirm_beyond[j]);
    let outcome = if search.converged && !at_limit {
        QuasiNewtonOutcome::Converged { confirm: beyond }
    } else if !below_start {
        // (no better than the start: BOBYQA searches from the start)
        return None;
    } else if at_limit || beyond {
        QuasiNewtonOutcome::TowardsLimit
    } else {
        QuasiNewtonOutcome::Unfinished
    };
    Some(QuasiNewtonEnd {
        theta: x,
        f: search.f,
        outcome,
    })
}

/// Whether some parameter lies within `tol` of a finite bound (a singular fit, as lme4's
/// `isSingular()` has it).
pub fn is_singular(theta: &[f64], lower: &[f64], upper: &[f64], tol: f64) -> bool {
    (0..theta.len()).any(|i| {
        (lower[i].is_finite() && theta[i] - lower[i] < tol)
            || (upper[i].is_finite() && upper[i] - theta[i] < tol)
    })
}

/// Newton steps tried before BOBYQA takes over (they converge linearly, typically in 3 to 5).
const NEWTON_MAX_STEPS: usize = 12;

/// Halvings of a Newton step that raised the criterion before BOBYQA takes over.
const NEWTON_HALVINGS: usize = 3;

/// Gradients (each about three evaluations on the models that offer them) the Newton steps may
/// take in all, halvings included, before BOBYQA takes over.
const NEWTON_MAX_GRADIENTS: usize = 16;

/// Searches from the start by Newton steps `θ ← θ − H⁻¹g`, with the exact gradient `g` and the
/// objective's approximate Hessian `H` at each point ([`Objective::approximate_hessian`]; for a
/// linear mixed model the average-information matrix, with which steps converge linearly but
/// fast: about three orders of magnitude per step on large crossed designs). A step that raises
/// the criterion beyond its rounding, or leaves the bounds, is halved. Done when the next step
/// `H⁻¹g` is within `opts.rhoend` in every coordinate (θ is then known at least as well as
/// BOBYQA's radius would give it); returns the exact gradient there. `None` (θ and `fmin` at the
/// best point seen) when the objective offers no gradient or no approximate Hessian, the start
/// or a step's end is within [`NEWTON_BOUND_MARGIN`] of a bound, `H` is not positive definite,
/// halving does not help, the steps or [`NEWTON_MAX_GRADIENTS`] run out, or `opts.maxfun`
/// evaluations are used up.
fn newton_search<O: Objective>(
    f: &mut Counted<'_, O>,
    theta: &mut Vec<f64>,
    fmin: &mut f64,
    (lower, upper): (&[f64], &[f64]),
    opts: &OptimOptions,
) -> Option<Vec<f64>> {
    let n = theta.len();
    let near_bound = |t: &[f64]| {
        (0..n)
            .any(|i| t[i] - lower[i] < NEWTON_BOUND_MARGIN || upper[i] - t[i] < NEWTON_BOUND_MARGIN)
    };
    if near_bound(theta) {
        return None;
    }
    let (f0, g0) = f.value_gradient(theta)?;
    let mut gradients = 1;
    *fmin = f0;
    let mut hessian = f.obj.approximate_hessian()?;
    let (mut current, mut fc, mut g) = (theta.clone(), f0, g0);
    for _ in 0..NEWTON_MAX_STEPS {
        crate::small::chol_lower(&mut hessian, n)?;
        let mut step = g.clone();
        crate::small::solve_lower(&hessian, n, &mut step);
        crate::small::solve_lower_t(&hessian, n, &mut step);
        if step.iter().all(|s| s.abs() <= opts.rhoend) {
            return Some(g);
        }
        let mut accepted = None;
        for _ in 0..=NEWTON_HALVINGS {
            let trial: Vec<f64> = current.iter().zip(&step).map(|(t, s)| t - s).collect();
            if (0..n).any(|i| trial[i] < lower[i] || trial[i] > upper[i]) {
                step.iter_mut().for_each(|s| *s *= 0.5);
                continue;
            }
            if f.count >= opts.maxfun || gradients >= NEWTON_MAX_GRADIENTS {
                return None;
            }
            gradients += 1;
            let (ft, gt) = f.value_gradient(&trial)?;
            if step_lowers(fc, ft, &g, &gt, &step) {
                accepted = Some((trial, ft, gt));
                break;
            }
            step.iter_mut().for_each(|s| *s *= 0.5);
        }
        (current, fc, g) = accepted?;
        if fc <= *fmin {
            *theta = current.clone();
            *fmin = fc;
        }
        if near_bound(&current) {
            return None;
        }
        hessian = f.obj.approximate_hessian()?;
    }
    None
}

/// The Hessian (`k × k`, column-major, symmetrized) from forward differences of the exact
/// gradient `g` at `theta` (`k` gradients); `None` when a gradient is not offered.
fn gradient_differences<O: Objective>(
    f: &mut Counted<'_, O>,
    theta: &[f64],
    g: &[f64],
) -> Option<Vec<f64>> {
    let n = theta.len();
    let mut hessian = vec![0.0; n * n];
    for i in 0..n {
        let mut t = theta.to_vec();
        t[i] += FD_STEP;
        let (_, gi) = f.value_gradient(&t)?;
        for j in 0..n {
            hessian[i * n + j] = (gi[j] - g[j]) / FD_STEP;
        }
    }
    for i in 0..n {
        for j in 0..i {
            let v = 0.5 * (hessian[i * n + j] + hessian[j * n + i]);
            hessian[i * n + j] = v;
            hessian[j * n + i] = v;
        }
    }
    Some(hessian)
}

/// Relative rise of the criterion that a Newton step may show from rounding alone.
const NEWTON_ROUNDING: f64 = 1e-12;

/// Whether the step `θ → θ − step` (criterion `fc → ft`, gradients `g → gt`) lowered the
/// criterion. A fall beyond rounding counts. Within rounding (near the optimum, where a step
/// changes the criterion by less than its last digits) the change is read from the exact
/// gradients instead: along the step the criterion changes by the trapezoid
/// `−(g + gt)·step / 2`, exact for a quadratic, so an overshooting step (twice too long or more)
/// is caught even where the values cannot tell.
fn step_lowers(fc: f64, ft: f64, g: &[f64], gt: &[f64], step: &[f64]) -> bool {
    let noise = NEWTON_ROUNDING * fc.abs().max(1.0);
    if ft < fc - noise {
        return true;
    }
    let trapezoid: f64 = -0.5
        * g.iter()
            .zip(gt)
            .zip(step)
            .map(|((a, b), s)| (a + b) * s)
            .sum::<f64>();
    ft <= fc + noise && trapezoid <= 0.0
}

/// Step of the repeated check's Hessian (see [`refined_gradient_check`]).
const COARSE_FD_STEP: f64 = 1e-3;

/// The gradient check repeated where the first one met a Hessian that is not positive definite:
/// the Hessian with a step ten times larger (rounding noise of the criterion, divided by `h²`,
/// no longer swamps small curvatures), the gradient Richardson-extrapolated from steps `h` and
/// `h/2` (a correlation near ±1 curves the criterion so sharply that the `h²` term of a plain
/// central difference dominates the gradient).
fn refined_gradient_check<O: Objective>(
    f: &mut Counted<'_, O>,
    theta: &[f64],
    f0: f64,
    opts: &OptimOptions,
) -> GradCheck {
    let mut eval = |t: &[f64]| f.eval(t);
    let coarse = fd_gradient(&mut eval, theta, COARSE_FD_STEP);
    let hessian = fd_hessian_from(&mut eval, theta, f0, COARSE_FD_STEP, &coarse);
    let whole = fd_gradient(&mut eval, theta, FD_STEP).gradient;
    let half = fd_gradient(&mut eval, theta, 0.5 * FD_STEP).gradient;
    let gradient: Vec<f64> = whole
        .iter()
        .zip(&half)
        .map(|(g1, g2)| (4.0 * g2 - g1) / 3.0)
        .collect();
    GradCheck::judged(gradient, hessian, opts)
}

/// Whether a symmetric `n × n` matrix (column-major) has a Cholesky factor.
fn positive_definite(m: &[f64], n: usize) -> bool {
    let mut a = m.to_vec();
    crate::small::chol_lower(&mut a, n).is_some()
}

/// The convergence check with the exact gradient where Newton steps finished the search: as
/// [`gradient_check`], the Hessian (here from differences of the gradient) only when the
/// gradient itself is not within `opts.grad_tol`.
fn exact_gradient_check<O: Objective>(
    f: &mut Counted<'_, O>,
    theta: &[f64],
    f0: f64,
    gradient: Vec<f64>,
    opts: &OptimOptions,
) -> GradCheck {
    let gradient = match GradCheck::within_tolerance(gradient, opts) {
        Ok(check) => return check,
        Err(gradient) => gradient,
    };
    match gradient_differences(f, theta, &gradient) {
        Some(hessian) => GradCheck::judged(gradient, hessian, opts),
        None => gradient_check(f, theta, f0, opts),
    }
}

fn gradient_check<O: Objective>(
    f: &mut Counted<'_, O>,
    theta: &[f64],
    f0: f64,
    opts: &OptimOptions,
) -> GradCheck {
    let step = FD_STEP;
    let mut eval = |t: &[f64]| f.eval(t);
    let steps = fd_gradient(&mut eval, theta, step);
    let gradient = match GradCheck::within_tolerance(steps.gradient.clone(), opts) {
        Ok(check) => return check,
        Err(gradient) => gradient,
    };
    // The profiled deviance of an LMM is a deterministic function of θ, so the gradient's
    // evaluations are reused for the Hessian's diagonal (the GLMM derivatives use the same
    // points, listed up front so that they can be shared out over threads: `fd_points`).
    let hessian = fd_hessian_from(&mut eval, theta, f0, step, &steps);
    GradCheck::judged(gradient, hessian, opts)
}

/// A central-difference gradient with the evaluations it used.
struct FdSteps {
    gradient: Vec<f64>,
    /// `f(x + h eᵢ)`.
    fplus: Vec<f64>,
    /// `f(x − h eᵢ)`.
    fminus: Vec<f64>,
}

/// Central-difference gradient of `f` at `x` (`2k` evaluations, `k = x.len()`).
fn fd_gradient(f: &mut dyn FnMut(&[f64]) -> f64, x: &[f64], h: f64) -> FdSteps {
    let n = x.len();
    let mut out = FdSteps {
        gradient: vec![0.0; n],
        fplus: vec![0.0; n],
        fminus: vec![0.0; n],
    };
    let mut t = x.to_vec();
    for i in 0..n {
        t[i] = x[i] + h;
        out.fplus[i] = f(&t);
        t[i] = x[i] - h;
        out.fminus[i] = f(&t);
        t[i] = x[i];
        out.gradient[i] = (out.fplus[i] - out.fminus[i]) / (2.0 * h);
    }
    out
}

/// Finite-difference Hessian (column-major) of a deterministic `f` from the evaluations of
/// [`fd_gradient`] plus two per pair `i > j`: with `s = h(eᵢ + eⱼ)`,
/// `f(x+s) + f(x−s) = 2f₀ + h²(Hᵢᵢ + Hⱼⱼ + 2Hᵢⱼ) + O(h⁴)` and
/// `f(x+heᵢ) + f(x−heᵢ) = 2f₀ + h²Hᵢᵢ + O(h⁴)`, so `k(k−1)` evaluations in all.
fn fd_hessian_from(
    f: &mut dyn FnMut(&[f64]) -> f64,
    x: &[f64],
    f0: f64,
    h: f64,
    steps: &FdSteps,
) -> Vec<f64> {
    let n = x.len();
    let mut hess = vec![0.0; n * n];
    let mut t = x.to_vec();
    for i in 0..n {
        let sum_i = steps.fplus[i] + steps.fminus[i];
        hess[i * n + i] = (sum_i - 2.0 * f0) / (h * h);
        for j in 0..i {
            let sum_j = steps.fplus[j] + steps.fminus[j];
            t[i] = x[i] + h;
            t[j] = x[j] + h;
            let fpp = f(&t);
            t[i] = x[i] - h;
            t[j] = x[j] - h;
            let fmm = f(&t);
            t[i] = x[i];
            t[j] = x[j];
            let hij = pair_entry(fpp, fmm, sum_i, sum_j, f0, h);
            hess[j * n + i] = hij;
            hess[i * n + j] = hij;
        }
    }
    hess
}

/// Step of the finite differences (lme4's `deriv12` uses 1e-4).
pub const FD_STEP: f64 = 1e-4;

/// The points at which [`fd_derivatives_from`] needs the objective, in a fixed order: for each
/// `i`, `x ± h eᵢ`; then for each pair `j < i`, `x + h(eᵢ + eⱼ)` and `x − h(eᵢ + eⱼ)`
/// (`2k + k(k−1)` points, as `fd_hessian_from` uses).
pub fn fd_points(x: &[f64], h: f64) -> Vec<Vec<f64>> {
    let n = x.len();
    let mut points = Vec::with_capacity(n * (n + 1));
    for i in 0..n {
        for s in [1.0, -1.0] {
            let mut t = x.to_vec();
            t[i] = x[i] + s * h;
            points.push(t);
        }
    }
    for i in 0..n {
        for j in 0..i {
            for s in [1.0, -1.0] {
                let mut t = x.to_vec();
                t[i] = x[i] + s * h;
                t[j] = x[j] + s * h;
                points.push(t);
            }
        }
    }
    points
}

/// Central finite differences at `x` with step `h` from the objective's values at
/// [`fd_points`] (`values`, same order) and `f0 = f(x)`: the gradient and the Hessian
/// (column-major). Valid when each value depends only on its point (the GLMM evaluations start
/// PIRLS from the same modes and iterate to a tight tolerance for this).
pub fn fd_derivatives_from(values: &[f64], n: usize, f0: f64, h: f64) -> (Vec<f64>, Vec<f64>) {
    let mut grad = vec![0.0; n];
    let mut hess = vec![0.0; n * n];
    for i in 0..n {
        let (fplus, fminus) = (values[2 * i], values[2 * i + 1]);
        grad[i] = (fplus - fminus) / (2.0 * h);
        hess[i * n + i] = (fplus - 2.0 * f0 + fminus) / (h * h);
    }
    let mut k = 2 * n;
    for i in 0..n {
        let sum_i = values[2 * i] + values[2 * i + 1];
        for j in 0..i {
            let sum_j = values[2 * j] + values[2 * j + 1];
            let hij = pair_entry(values[k], values[k + 1], sum_i, sum_j, f0, h);
            k += 2;
            hess[j * n + i] = hij;
            hess[i * n + j] = hij;
        }
    }
    (grad, hess)
}

/// `Hᵢⱼ` from `f(x ± h(eᵢ+eⱼ))` and the sums `f(x+heᵢ) + f(x−heᵢ)`, `f(x+heⱼ) + f(x−heⱼ)`.
fn pair_entry(fpp: f64, fmm: f64, sum_i: f64, sum_j: f64, f0: f64, h: f64) -> f64 {
    (fpp + fmm - sum_i - sum_j + 2.0 * f0) / (2.0 * h * h)
}

/// lme4's convergence statistic at a candidate optimum: `maxᵢ min(|(R⁻¹g)ᵢ|, |gᵢ|)` with
/// `H = R'R` (the gradient scaled by the curvature), or `max|g|` when `H` is not positive
/// definite. Returns the statistic and the component where it is attained.
pub fn gradient_statistic(grad: &[f64], hess: &[f64]) -> (f64, usize) {
    let n = grad.len();
    let mut l = hess.to_vec();
    if crate::small::chol_lower(&mut l, n).is_none() {
        return max_abs_index(grad);
    }
    let mut scaled = grad.to_vec();
    crate::small::solve_lower_t(&l, n, &mut scaled);
    let stat: Vec<f64> = scaled
        .iter()
        .zip(grad)
        .map(|(a, b)| a.abs().min(b.abs()))
        .collect();
    max_abs_index(&stat)
}

fn max_abs_index(v: &[f64]) -> (f64, usize) {
    let mut best = (0.0f64, 0usize);
    for (i, x) in v.iter().enumerate() {
        let a = if x.is_nan() { f64::INFINITY } else { x.abs() };
        if a > best.0 {
            best = (a, i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth convex function of 5 variables with correlated curvature, its minimum at
    /// `CENTER` (inside the bounds `x ≥ 0`): `Σᵢ wᵢ(xᵢ − cᵢ)² + (Σᵢ (xᵢ − cᵢ))² + Σᵢ (xᵢ − cᵢ)⁴`.
    const CENTER: [f64; 5] = [0.7, 0.2, 1.3, 0.05, 2.0];

    struct Smooth {
        /// Whether the exact gradient is offered; `broken`: offered but never delivered.
        gradient: bool,
        broken: bool,
        evaluations: usize,
        /// Factor on the approximate Hessian: below 1 its Newton steps overshoot.
        hessian_scale: f64,
    }

    impl Smooth {
        fn value_and_gradient(x: &[f64]) -> (f64, Vec<f64>) {
            let d: Vec<f64> = x.iter().zip(CENTER).map(|(a, c)| a - c).collect();
            let total: f64 = d.iter().sum();
            let w = |i: usize| 1.0 + i as f64;
            let f = d
                .iter()
                .enumerate()
                .map(|(i, v)| w(i) * v * v + v.powi(4))
                .sum::<f64>()
                + total * total;
            let g = d
                .iter()
                .enumerate()
                .map(|(i, v)| 2.0 * w(i) * v + 4.0 * v.powi(3) + 2.0 * total)
                .collect();
            (f, g)
        }
    }

    impl Objective for Smooth {
        fn eval(&mut self, theta: &[f64]) -> f64 {
            self.evaluations += 1;
            Self::value_and_gradient(theta).0
        }
        fn has_exact_gradient(&self) -> bool {
            self.gradient
        }
        fn value_gradient(&mut self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
            if !self.gradient || self.broken {
                return None;
            }
            self.evaluations += 1;
            Some(Self::value_and_gradient(theta))
        }
        /// The Hessian of the quadratic part: the quartic terms' curvature left out, as the
        /// average information leaves out terms of an LMM's Hessian (so steps converge linearly).
        fn approximate_hessian(&mut self) -> Option<Vec<f64>> {
            let n = CENTER.len();
            let mut h = vec![2.0 * self.hessian_scale; n * n];
            for i in 0..n {
                h[i * n + i] += 2.0 * (1.0 + i as f64) * self.hessian_scale;
            }
            Some(h)
        }
    }

    /// `max |θᵢ − cᵢ|`.
    fn distance_to_center(theta: &[f64]) -> f64 {
        theta
            .iter()
            .zip(CENTER)
            .map(|(a, c)| (a - c).abs())
            .fold(0.0, f64::max)
    }

    fn run(gradient: bool, broken: bool) -> (OptSummary, usize) {
        run_scaled(gradient, broken, 1.0, [1.0; 5])
    }

    fn run_scaled(
        gradient: bool,
        broken: bool,
        hessian_scale: f64,
        start: [f64; 5],
    ) -> (OptSummary, usize) {
        let mut obj = Smooth {
            gradient,
            broken,
            evaluations: 0,
            hessian_scale,
        };
        let lower = [0.0; 5];
        let upper = [f64::INFINITY; 5];
        let summary =
            minimize_within(&mut obj, &start, &lower, &upper, &OptimOptions::default()).unwrap();
        (summary, obj.evaluations)
    }

    #[test]
    fn newton_steps_find_the_optimum_with_fewer_evaluations() {
        let (plain, plain_evals) = run(false, false);
        let (newton, newton_evals) = run(true, false);
        assert_eq!(newton.ending, Ending::Newton);
        for (summary, name) in [(&plain, "BOBYQA"), (&newton, "Newton")] {
            let err = distance_to_center(&summary.theta);
            assert!(err < 1e-6, "{name}: max |θ − θ*| = {err}");
            assert_eq!(summary.code, 0, "{name}: {}", summary.message);
        }
        // Newton steps land within rhoend (1e-7), with fewer evaluations.
        let newton_err = distance_to_center(&newton.theta);
        assert!(newton_err < 1e-7, "Newton: max |θ − θ*| = {newton_err}");
        assert!(newton.fmin <= plain.fmin + 1e-15);
        assert!(
            newton_evals < plain_evals,
            "{newton_evals} against {plain_evals}"
        );
        assert!(newton.gradient.iter().all(|g| g.abs() < 1e-8));
    }

    #[test]
    fn bobyqa_takes_over_when_the_gradient_is_not_delivered() {
        let (summary, _) = run(true, true);
        assert_ne!(summary.ending, Ending::Newton);
        let err = distance_to_center(&summary.theta);
        assert!(err < 1e-6, "max |θ − θ*| = {err}");
        assert_eq!(summary.code, 0, "{}", summary.message);
    }

    #[test]
    fn overshooting_newton_steps_are_halved_and_still_reach_the_optimum() {
        // Near the optimum, with a Hessian at 0.45 of the quadratic part's, full steps rise
        // (2.2 times too long) and halved ones are taken.
        let (plain, _) = run(false, false);
        let start = CENTER.map(|c| c + 0.05);
        let (summary, _) = run_scaled(true, false, 0.45, start);
        assert_eq!(summary.ending, Ending::Newton);
        let err = distance_to_center(&summary.theta);
        assert!(err < 1e-6, "max |θ − θ*| = {err} ({})", summary.message);
        assert_eq!(summary.code, 0, "{}", summary.message);
        assert!(summary.fmin <= plain.fmin + 1e-12);
    }

    /// A criterion whose infimum lies at the limit `a → ∞` of its first parameter (as an LMM's
    /// does at σ → 0): `1/a² + (r − 0.3)²`, `r` a correlation in [−1, 1].
    struct FallingTail {
        evaluations: usize,
    }

    impl Objective for FallingTail {
        fn eval(&mut self, x: &[f64]) -> f64 {
            self.evaluations += 1;
            1.0 / (x[0] * x[0]) + (x[1] - 0.3).powi(2)
        }
        fn has_exact_gradient(&self) -> bool {
            true
        }
        fn value_gradient(&mut self, x: &[f64]) -> Option<(f64, Vec<f64>)> {
            let f = self.eval(x);
            Some((f, vec![-2.0 / x[0].powi(3), 2.0 * (x[1] - 0.3)]))
        }
        fn approximate_hessian(&mut self) -> Option<Vec<f64>> {
            Some(vec![6.0, 0.0, 0.0, 2.0])
        }
        fn bobyqa_from_start(&self) -> bool {
            true
        }
        fn quasi_newton_coordinates(&self) -> Option<QuasiNewtonCoordinates> {
            Some(QuasiNewtonCoordinates {
                search_lower: vec![0.0, -1.0],
                correlation: vec![false, true],
                search_limit: vec![100.0, f64::INFINITY],
                confirm_beyond: vec![10.0, f64::INFINITY],
            })
        }
    }

    #[test]
    fn a_search_towards_the_limit_keeps_its_end_and_bobyqa_stops_following_it() {
        let mut obj = FallingTail { evaluations: 0 };
        let summary = minimize_within(
            &mut obj,
            &[1.0, 0.0],
            &[0.0, -1.0],
            &[f64::INFINITY, 1.0],
            &OptimOptions::default(),
        )
        .unwrap();
        assert_eq!(summary.message, QUASI_NEWTON_TOWARDS_LIMIT);
        assert_eq!(summary.ending, Ending::QuasiNewtonTowardsLimit);
        assert_eq!(summary.code, 0);
        assert!(summary.theta[0] >= 99.0, "{:?}", summary.theta);
        assert!((summary.theta[1] - 0.3).abs() < 1e-3, "{:?}", summary.theta);
        // (BOBYQA from the start stops once its best point passes 10; no gradient check out
        // there)
        assert!(summary.gradient.is_empty());
        assert!(obj.evaluations < 500, "{} evaluations", obj.evaluations);
    }

    #[test]
    fn the_tail_watch_stops_only_after_a_run_of_best_points_out_there() {
        let mut w = TailWatch::new(vec![10.0, f64::INFINITY]);
        // One exploratory best point out there, then better ones nearer in: no stop.
        assert!(!w.passes(&[12.0, 0.0], 5.0));
        assert!(!w.passes(&[6.0, 0.0], 4.0));
        assert!(!w.passes(&[20.0, 0.0], 4.5)); // (no better: not counted)
                                               // A run of TAIL_STREAK best points out there stops the search at the last.
        for i in 0..TAIL_STREAK {
            let stop = w.passes(&[11.0 + i as f64, 0.0], 3.0 - i as f64 * 0.1);
            assert_eq!(stop, i + 1 == TAIL_STREAK, "{i}");
        }
        let (point, value) = w.reached.clone().unwrap();
        assert_eq!(point[0], 11.0 + (TAIL_STREAK - 1) as f64);
        assert!((value - (3.0 - (TAIL_STREAK - 1) as f64 * 0.1)).abs() < 1e-15);
    }
}
