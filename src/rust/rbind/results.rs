//! Conversions to R: one function per result type of the engine, each giving the named list (or
//! array) the R code reads. Nothing else in the binding builds R results.
use crate::error::MixedError;
use crate::fit::glmm::GlmmFit;
use crate::fit::lmm::LmmFit;
use crate::inference::condvar::TermCondVar;
use crate::inference::ddf::{KenwardRoger, Satterthwaite};
use crate::inference::profile::{IntervalMethod, ProfileTrace, Profiler};
use crate::model::covariance::{Covariance, ParRole};
use crate::optim::OptSummary;
use extendr_api::prelude::*;

use super::convert::{other, Result};
use super::rlist::{named_list, Value};

/// Whether a fit's result carries its per-observation values (fitted values, linear predictor,
/// means). Bootstrap replicates do not: R rebuilds them when it needs them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rows {
    /// A fit: with the per-observation values.
    Fit,
    /// A bootstrap replicate: without them.
    Replicate,
}

/// A list of numeric vectors.
fn vectors(vs: &[Vec<f64>]) -> List {
    List::from_values(vs.iter().map(|v| Robj::from(v.clone())))
}

/// The optimizer's record: start, estimates, bounds, evaluations, return code and the checks.
pub(crate) fn opt_summary(opt: &OptSummary) -> Robj {
    named_list(opt_summary_items(opt))
}

/// The elements of [`opt_summary`].
fn opt_summary_items(opt: &OptSummary) -> Vec<(&'static str, Value<'_>)> {
    vec![
        ("start", Value::Doubles(&opt.start)),
        ("theta", Value::Doubles(&opt.theta)),
        ("lower", Value::Doubles(&opt.lower)),
        ("upper", Value::Doubles(&opt.upper)),
        ("fmin", Value::Double(opt.fmin)),
        ("feval", Value::Int(opt.feval as i32)),
        ("starts", Value::Int(opt.starts_tried as i32)),
        ("code", Value::Int(opt.code)),
        ("message", Value::Str(&opt.message)),
        ("gradient", Value::Doubles(&opt.gradient)),
        ("hessian", Value::Doubles(&opt.hessian)),
        ("singular", Value::Logical(opt.singular)),
        ("residual_limit", Value::Logical(opt.residual_limit)),
        ("messages", Value::Strs(&opt.messages)),
    ]
}

/// An LMM fit. A [`Rows::Replicate`] leaves out the fitted values.
pub(crate) fn lmm_fit(fit: &LmmFit, rows: Rows) -> Robj {
    let mut out = vec![
        ("theta", Value::Doubles(&fit.theta)),
        ("par", Value::Doubles(&fit.par)),
        ("beta", Value::Doubles(&fit.beta)),
        ("u", Value::Doubles(&fit.u)),
        ("b", Value::DoubleVectors(&fit.b)),
        ("sigma", Value::Double(fit.sigma)),
        ("ldL2", Value::Double(fit.ldl2)),
        ("ldRX2", Value::Double(fit.ldrx2)),
        ("wrss", Value::Double(fit.wrss)),
        ("ussq", Value::Double(fit.ussq)),
        ("pwrss", Value::Double(fit.pwrss)),
        ("objective", Value::Double(fit.objective)),
        ("deviance_ml", Value::Double(fit.deviance_ml)),
        ("reml_crit", Value::Double(fit.reml_crit)),
        ("vcov_unscaled", Value::Doubles(&fit.vcov_unscaled)),
    ];
    if rows == Rows::Fit {
        out.push(("fitted", Value::Doubles(&fit.fitted)));
    }
    out.push(("optinfo", Value::List(opt_summary_items(&fit.opt))));
    named_list(out)
}

/// A GLMM fit. A [`Rows::Replicate`] has `NULL` for the linear predictor `eta` and the means `mu`.
pub(crate) fn glmm_fit(fit: &GlmmFit, rows: Rows) -> Robj {
    fn stage(s: &Option<OptSummary>) -> Value<'_> {
        s.as_ref()
            .map_or(Value::Null, |s| Value::List(opt_summary_items(s)))
    }
    let per_row = |v| match rows {
        Rows::Fit => Value::Doubles(v),
        Rows::Replicate => Value::Null,
    };
    named_list(vec![
        ("theta", Value::Doubles(&fit.theta)),
        ("par", Value::Doubles(&fit.par)),
        ("beta", Value::Doubles(&fit.beta)),
        ("extra", Value::Doubles(&fit.extra)),
        ("u", Value::Doubles(&fit.u)),
        ("b", Value::DoubleVectors(&fit.b)),
        ("eta", per_row(&fit.eta)),
        ("mu", per_row(&fit.mu)),
        ("ldL2", Value::Double(fit.ldl2)),
        ("ldRX2", Value::Double(fit.ldrx2)),
        ("ussq", Value::Double(fit.ussq)),
        ("wrss", Value::Double(fit.wrss)),
        ("drsum", Value::Double(fit.drsum)),
        ("deviance", Value::Double(fit.deviance)),
        ("vcov_unscaled", Value::Doubles(&fit.vcov_unscaled)),
        ("working_weights", per_row(&fit.working_weights)),
        ("zi_logit", per_row(&fit.zi_logit)),
        (
            "zi_working_weights",
            Value::List(vec![
                ("cross", per_row(&fit.zi_working_weights[0])),
                ("zi", per_row(&fit.zi_working_weights[1])),
            ]),
        ),
        ("gradient", Value::Doubles(&fit.gradient)),
        ("hessian", Value::Doubles(&fit.hessian)),
        ("stage1", stage(&fit.stage1)),
        ("stage2", stage(&fit.stage2)),
        ("messages", Value::Strs(&fit.messages)),
        (
            "hessian_problem",
            Value::OptStr(fit.hessian_problem.as_deref()),
        ),
        ("pirls_failures", Value::Int(fit.pirls_failures as i32)),
        ("pirls_iterations", Value::Int(fit.pirls_iterations as i32)),
    ])
}

/// Bootstrap replicates: one list per replicate as `replicate` converts it, or
/// `list(error = message)` for a replicate that failed.
pub(crate) fn replicates<T>(
    reps: &[std::result::Result<T, MixedError>],
    replicate: impl Fn(&T) -> Robj,
) -> Robj {
    List::from_values(reps.iter().map(|r| match r {
        Ok(rep) => replicate(rep),
        Err(e) => list!(error = e.to_string()).into(),
    }))
    .into()
}

/// The covariance parameterisation of each term: `structure`, `hom`, `n_par`, `n_theta`,
/// `lower`, `upper`, `start` (lme4's), and per parameter its `role` (`"factor"`, `"sd"`, `"rho"`, `"pacf"`), `row`
/// and `col` (1-based columns of the term; 0 for a homogeneous sd; the lag in `row` for
/// `"pacf"`).
pub(crate) fn covariance_layout(covariances: &[Covariance]) -> Robj {
    List::from_values(covariances.iter().map(|c| {
        let roles = c.roles();
        let (mut role, mut row, mut col) = (Vec::new(), Vec::new(), Vec::new());
        for r in &roles {
            let (name, i, j) = match *r {
                ParRole::Factor { row, col } => ("factor", row + 1, col + 1),
                ParRole::Sd(Some(k)) => ("sd", k + 1, k + 1),
                ParRole::Sd(None) => ("sd", 0, 0),
                ParRole::Rho => ("rho", 0, 0),
                ParRole::Pacf(lag) => ("pacf", lag, 0),
            };
            role.push(name.to_string());
            row.push(i as i32);
            col.push(j as i32);
        }
        Robj::from(list!(
            structure = c.structure.tag(),
            hom = c.hom,
            n_par = c.n_par() as i32,
            n_theta = c.n_theta() as i32,
            lower = c.lower(),
            upper = c.upper(),
            start = c.start(),
            role = role,
            row = row,
            col = col
        ))
    }))
    .into()
}

/// Conditional variances: per term, lme4's `postVar` array (`q × q × n_levels`, with its `dim`).
pub(crate) fn condvar(blocks: Vec<TermCondVar>) -> Result<Robj> {
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        let dim = [b.q, b.q, b.n_levels]
            .iter()
            .map(|&d| i32::try_from(d).map_err(|_| other("internal: dimension too large")))
            .collect::<Result<Vec<i32>>>()?;
        let mut a = Robj::from(b.values);
        a.set_attrib("dim", dim)?;
        out.push(a);
    }
    Ok(List::from_values(out).into())
}

/// Satterthwaite's ingredients (matrices flattened column-major).
pub(crate) fn satterthwaite(s: Satterthwaite) -> Robj {
    list!(
        k = s.k as i32,
        vcov_beta = s.vcov_beta,
        jacobian = vectors(&s.jacobian),
        vcov_varpar = s.vcov_varpar,
        hessian_eigenvalues = s.hessian_eigenvalues
    )
    .into()
}

/// Kenward–Roger's ingredients (matrices flattened column-major).
pub(crate) fn kenward_roger(kr: KenwardRoger) -> Robj {
    list!(
        k = kr.k as i32,
        phi = kr.phi,
        P = vectors(&kr.p),
        Q = vectors(&kr.q),
        R = vectors(&kr.r),
        ktrace = kr.ktrace
    )
    .into()
}

/// A profiler's optimum and its traces: per profile the 1-based parameter `index`, `zeta`, the
/// points by row (`npts × npar`, row-major flattened, in `pars`) and the `warnings` met.
pub(crate) fn profile(profiler: &impl Profiler, traces: &[ProfileTrace]) -> Robj {
    let traces = List::from_values(traces.iter().map(|t| {
        let zeta: Vec<f64> = t.points.iter().map(|pt| pt.zeta).collect();
        let pars: Vec<f64> = t
            .points
            .iter()
            .flat_map(|pt| pt.pars.iter().copied())
            .collect();
        Robj::from(list!(
            index = (t.index + 1) as i32,
            zeta = zeta,
            pars = pars,
            warnings = t.warnings.clone()
        ))
    }));
    list!(
        optimum = profiler.optimum().to_vec(),
        theta = profiler.theta().to_vec(),
        base = profiler.base(),
        cutoff = profiler.cutoff(),
        lower = profiler.lower().to_vec(),
        upper = profiler.upper().to_vec(),
        stderr = profiler.stderr().to_vec(),
        traces = traces
    )
    .into()
}

/// Where a profile crosses its targets (`NA` where it does not reach one), how that was read
/// (`"spline"`, `"linear"`, `"failed"`) and whether tied points were averaged (`ties`).
pub(crate) fn profile_interval(values: Vec<f64>, how: IntervalMethod) -> Robj {
    let values: Vec<Option<f64>> = values
        .into_iter()
        .map(|v| if v.is_nan() { None } else { Some(v) })
        .collect();
    let (method, ties) = match how {
        IntervalMethod::Spline => ("spline", false),
        IntervalMethod::Linear { ties } => ("linear", ties),
        IntervalMethod::Failed => ("failed", false),
    };
    list!(values = values, method = method, ties = ties).into()
}
