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
use std::cell::{Cell, RefCell};

struct Problem<'o, O: Objective> {
    obj: RefCell<&'o mut O>,
    count: &'o Cell<usize>,
}

impl<O: Objective> CostFunction for Problem<'_, O> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, x: &Self::Param) -> std::result::Result<f64, ArgminError> {
        let mut obj = self.obj.borrow_mut();
        self.count.set(self.count.get() + 1);
        let v = obj.eval(x);
        if obj.after_eval(self.count.get(), x, v) == Stop::Interrupt {
            return Err(ArgminError::msg("interrupted by the user"));
        }
        Ok(if v.is_nan() { f64::INFINITY } else { v })
    }
}

/// Relative spread of the simplex's values (their standard deviation over `max(1, |f(start)|)`)
/// at which the search stops.
const SD_TOL: f64 = 1e-10;

/// Minimizes `obj` from `start` with an initial simplex of side `opts.rhobeg / 5`, stopping when
/// the simplex's values agree to `SD_TOL` (relative); `lower` only records the bounds in the
/// summary.
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
    let f0 = obj.eval(start);
    let scale = if f0.is_finite() {
        f0.abs().max(1.0)
    } else {
        1.0
    };
    let solver = NelderMead::new(simplex)
        .with_sd_tolerance(SD_TOL * scale)
        .map_err(|e| MixedError::Optimizer(format!("Nelder-Mead could not start: {e}")))?;
    let count = Cell::new(1);
    let problem = Problem {
        obj: RefCell::new(obj),
        count: &count,
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
        // lme4's code and wording for Nelder_Mead's evaluation limit
        Some(TerminationReason::MaxItersReached) => {
            (4, format!("failure to converge in {maxfun} evaluations"))
        }
        Some(other) => (2, format!("Nelder-Mead stopped: {}", other.text())),
        None => (2, "Nelder-Mead stopped".to_string()),
    };
    let feval = count.get();
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Quadratic;
    impl Objective for Quadratic {
        fn eval(&mut self, x: &[f64]) -> f64 {
            (x[0] - 1.0).powi(2) + 10.0 * (x[1] + 0.5).powi(2)
        }
    }

    #[test]
    fn finds_the_minimum_of_a_quadratic() {
        let s = minimize(
            &mut Quadratic,
            &[0.0, 0.0],
            &[f64::NEG_INFINITY; 2],
            &OptimOptions::default(),
        )
        .expect("nm");
        eprintln!("{s:?}");
        assert_eq!(s.code, 0, "{}", s.message);
        assert!((s.theta[0] - 1.0).abs() < 1e-4 && (s.theta[1] + 0.5).abs() < 1e-4);
        assert!(s.feval > 10);
    }
}
