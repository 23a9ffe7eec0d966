//! Nelder–Mead minimization (argmin's implementation), for users who ask for glmer's default
//! second-stage optimizer.
//!
//! The simplex search is unconstrained. Bounds only matter for the diagonal elements of the
//! relative covariance factors, and a negative diagonal element describes the same covariance
//! as its column negated, so the caller normalizes signs afterwards instead of constraining.
use crate::error::{MixedError, Result};
use crate::optim::{Objective, OptSummary, OptimOptions, Stop};
use argmin::core::{CostFunction, Error as ArgminError, Executor, State, TerminationReason};
use argmin::solver::neldermead::NelderMead;
use std::cell::RefCell;

struct Problem<'o, O: Objective> {
    obj: RefCell<&'o mut O>,
    count: RefCell<usize>,
    interrupted: RefCell<bool>,
}

impl<O: Objective> CostFunction for Problem<'_, O> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, x: &Self::Param) -> std::result::Result<f64, ArgminError> {
        let mut obj = self.obj.borrow_mut();
        let mut count = self.count.borrow_mut();
        *count += 1;
        let v = obj.eval(x);
        if obj.after_eval(*count, x, v) == Stop::Interrupt {
            *self.interrupted.borrow_mut() = true;
            return Err(ArgminError::msg("interrupted by the user"));
        }
        Ok(if v.is_nan() { f64::INFINITY } else { v })
    }
}

/// Minimizes `obj` from `start` with an initial simplex of side `opts.rhobeg / 5`; `lower` only
/// records the bounds in the summary.
pub fn minimize<O: Objective>(
    obj: &mut O,
    start: &[f64],
    lower: &[f64],
    opts: &OptimOptions,
) -> Result<OptSummary> {
    let n = start.len();
    let step = opts.rhobeg / 5.0;
    let mut simplex = vec![start.to_vec()];
    for i in 0..n {
        let mut v = start.to_vec();
        v[i] += step;
        simplex.push(v);
    }
    let solver = NelderMead::new(simplex)
        .with_sd_tolerance(opts.rhoend * opts.rhoend)
        .map_err(|e| MixedError::Optimizer(format!("Nelder-Mead could not start: {e}")))?;
    let problem = Problem {
        obj: RefCell::new(obj),
        count: RefCell::new(0),
        interrupted: RefCell::new(false),
    };
    let maxfun = opts.maxfun as u64;
    let result = Executor::new(problem, solver)
        .configure(|state| state.max_iters(maxfun))
        .run();
    let result = match result {
        Ok(r) => r,
        Err(e) => return Err(MixedError::Optimizer(format!("Nelder-Mead failed: {e}"))),
    };
    let state = result.state();
    let theta = state
        .get_best_param()
        .cloned()
        .ok_or_else(|| MixedError::Optimizer("Nelder-Mead found no point".into()))?;
    let fmin = state.get_best_cost();
    if !fmin.is_finite() {
        return Err(MixedError::Optimizer(
            "the deviance could not be evaluated at any point Nelder-Mead tried".into(),
        ));
    }
    let (code, message) = match state.get_termination_reason() {
        Some(TerminationReason::SolverConverged) => (0, "Nelder-Mead converged".to_string()),
        Some(TerminationReason::MaxItersReached) => (
            1,
            "Nelder-Mead stopped: maximum number of iterations reached".to_string(),
        ),
        Some(other) => (2, format!("Nelder-Mead stopped: {}", other.text())),
        None => (2, "Nelder-Mead stopped".to_string()),
    };
    let feval = result
        .state()
        .get_func_counts()
        .get("cost_count")
        .copied()
        .unwrap_or(0) as usize;
    Ok(OptSummary {
        start: start.to_vec(),
        lower: lower.to_vec(),
        theta,
        fmin,
        feval,
        code,
        message,
        ..Default::default()
    })
}
