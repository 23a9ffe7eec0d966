//! The R binding: the only module that knows R. It converts R vectors into a `ModelSpec`, runs
//! the engine, and converts the plain result back into a named R list. Every error becomes an
//! ordinary R error (a panic too: extendr catches it, and the quiet hook keeps R's console clean).
use crate::error::MixedError;
use crate::family::Family;
use crate::glmm::{
    GeneralizedLinearMixedModel, GlmmFit, GlmmOptions, PirlsOptions, StageOptimizer,
};
use crate::lmm::{LinearMixedModel, LmmFit};
use crate::model::covariance::{Covariance, ParRole, Structure};
use crate::optim::{OptSummary, OptimOptions, Stop};
use crate::spec::{ModelSpec, RandomTerm};
use crate::{rbind_condvar, rbind_ddf, rbind_resample};
use extendr_api::prelude::*;

pub(crate) type Result<T> = std::result::Result<T, Error>;

pub(crate) fn err(e: MixedError) -> Error {
    Error::Other(e.to_string())
}

pub(crate) fn other(msg: impl Into<String>) -> Error {
    Error::Other(msg.into())
}

pub(crate) fn field(list: &Robj, name: &str) -> Result<Robj> {
    let value = list
        .dollar(name)
        .map_err(|_| other(format!("internal: missing element '{name}'")))?;
    if value.is_null() {
        return Err(other(format!("internal: missing element '{name}'")));
    }
    Ok(value)
}

pub(crate) fn doubles<'a>(x: &'a Robj, what: &str) -> Result<&'a [f64]> {
    x.as_real_slice()
        .ok_or_else(|| other(format!("internal: '{what}' must be a double vector")))
}

pub(crate) fn optional_doubles<'a>(x: &'a Robj, what: &str) -> Result<Option<&'a [f64]>> {
    if x.is_null() {
        Ok(None)
    } else {
        doubles(x, what).map(Some)
    }
}

pub(crate) fn integers<'a>(x: &'a Robj, what: &str) -> Result<&'a [i32]> {
    x.as_integer_slice()
        .ok_or_else(|| other(format!("internal: '{what}' must be an integer vector")))
}

pub(crate) fn count(x: &Robj, what: &str) -> Result<usize> {
    match x.as_integer().or_else(|| x.as_real().map(|v| v as i32)) {
        Some(v) if v >= 0 => Ok(v as usize),
        _ => Err(other(format!(
            "internal: '{what}' must be a non-negative count"
        ))),
    }
}

pub(crate) fn real(x: &Robj, what: &str) -> Result<f64> {
    x.as_real()
        .ok_or_else(|| other(format!("internal: '{what}' must be a number")))
}

pub(crate) fn optim_options(control: &Robj) -> Result<OptimOptions> {
    Ok(OptimOptions {
        rhobeg: real(&field(control, "rhobeg")?, "rhobeg")?,
        rhoend: real(&field(control, "rhoend")?, "rhoend")?,
        maxfun: count(&field(control, "maxfun")?, "maxfun")?,
        calc_derivs: field(control, "calc.derivs")?.as_bool().unwrap_or(true),
        boundary_tol: real(&field(control, "boundary.tol")?, "boundary.tol")?,
        grad_tol: real(&field(control, "grad.tol")?, "grad.tol")?,
        singular_tol: 1e-4,
    })
}

/// The parallelism of one fit from `control$threads`: `0` (or absent, for settings made before
/// the option existed) uses every thread of rayon's pool, `1` runs sequentially and `k` splits
/// the parallel kernels (faer's dense Cholesky, the trailing Schur update) `k` ways. The pool
/// itself is never changed, so nothing leaks from one call to the next.
pub(crate) fn fit_par(control: &Robj) -> Result<faer::Par> {
    let threads = match control.dollar("threads") {
        Ok(v) if !v.is_null() => count(&v, "threads")?,
        _ => 0,
    };
    Ok(match threads {
        1 => faer::Par::Seq,
        k => faer::Par::rayon(k),
    })
}

pub(crate) fn summary_to_list(opt: &OptSummary) -> Robj {
    list!(
        start = opt.start.clone(),
        theta = opt.theta.clone(),
        lower = opt.lower.clone(),
        upper = opt.upper.clone(),
        fmin = opt.fmin,
        feval = opt.feval as i32,
        starts = opt.starts_tried as i32,
        code = opt.code,
        message = opt.message.clone(),
        gradient = opt.gradient.clone(),
        hessian = opt.hessian.clone(),
        singular = opt.singular,
        messages = opt.messages.clone()
    )
    .into()
}

fn fit_to_list(fit: &LmmFit) -> Robj {
    let b = List::from_values(fit.b.iter().map(|v| Robj::from(v.clone())));
    let opt_list = summary_to_list(&fit.opt);
    list!(
        theta = fit.theta.clone(),
        par = fit.par.clone(),
        beta = fit.beta.clone(),
        u = fit.u.clone(),
        b = b,
        sigma = fit.sigma,
        ldL2 = fit.ldl2,
        ldRX2 = fit.ldrx2,
        wrss = fit.wrss,
        ussq = fit.ussq,
        pwrss = fit.pwrss,
        objective = fit.objective,
        deviance_ml = fit.deviance_ml,
        reml_crit = fit.reml_crit,
        vcov_unscaled = fit.vcov_unscaled.clone(),
        fitted = fit.fitted.clone(),
        optinfo = opt_list
    )
    .into()
}

/// The optimizer's progress callback: with `verbose > 0` it prints each evaluation as lme4's
/// `verbose` does (the criterion and the parameters, labelled `label`); after every evaluation it
/// stops the optimizer when the user pressed Ctrl-C.
/// Time between two checks for a user interrupt during a fit.
const INTERRUPT_POLL: std::time::Duration = std::time::Duration::from_millis(20);

pub(crate) fn progress_printer(
    verbose: i32,
    label: &'static str,
) -> impl FnMut(usize, &[f64], f64) -> Stop {
    let mut last_check = std::time::Instant::now();
    move |count: usize, pars: &[f64], value: f64| {
        if verbose > 0 {
            let shown: Vec<String> = pars.iter().map(|v| format!("{v:.6}")).collect();
            rprintln!(
                "iteration: {count}\n\tf(x) = {value:.6}\n\t{label} = {}",
                shown.join(" ")
            );
        }
        // R's check polls the console (a system call): at most every INTERRUPT_POLL, which a
        // fit of a small model, with evaluations of a few microseconds, never reaches.
        if last_check.elapsed() < INTERRUPT_POLL {
            return Stop::Continue;
        }
        last_check = std::time::Instant::now();
        if crate::rinterrupt::interrupt_pending() {
            Stop::Interrupt
        } else {
            Stop::Continue
        }
    }
}

/// Prints one line on R's console (the PIRLS trace of `verbose = 2`).
fn print_line(line: &str) {
    rprintln!("{line}");
}

/// R objects behind a `ModelSpec`, kept alive while the spec borrows their memory.
pub(crate) struct RInputs {
    y: Robj,
    x: Robj,
    p: usize,
    weights: Robj,
    offset: Robj,
    /// `(codes, n_levels, z, q, factor_id)` per term.
    pub(crate) terms: Vec<(Robj, usize, Robj, usize, usize)>,
    /// Each term's covariance parameterisation.
    pub(crate) covariances: Vec<Covariance>,
}

/// A term's covariance parameterisation from its optional elements `cov` (structure code, see
/// [`Structure::from_code`]; absent: unstructured) and `hom` (logical), named by `label`.
fn term_covariance(t: &Robj, q: usize, index: usize) -> Result<Covariance> {
    let code = t.dollar("cov").ok().filter(|v| !v.is_null());
    let Some(code) = code else {
        return Ok(Covariance::unstructured(q));
    };
    let code = code
        .as_integer()
        .ok_or_else(|| other("internal: 'cov' must be an integer code"))?;
    let hom = match t.dollar("hom").ok().filter(|v| !v.is_null()) {
        Some(h) => h
            .as_bool()
            .ok_or_else(|| other("internal: 'hom' must be TRUE or FALSE"))?,
        None => false,
    };
    let label = match t
        .dollar("label")
        .ok()
        .and_then(|l| l.as_str().map(String::from))
    {
        Some(l) => l,
        None => format!("{}", index + 1),
    };
    Covariance::new(Structure::from_code(code).map_err(err)?, hom, q, &label).map_err(err)
}

impl RInputs {
    /// `terms` is a list of lists with elements `codes` (1-based factor codes), `n_levels`,
    /// `z` (double `n × q`), `q` and `factor_id`, and optionally `cov`, `hom` and `label` (the
    /// term's covariance structure, see [`term_covariance`]).
    pub(crate) fn new(
        y: Robj,
        x: Robj,
        p: i32,
        weights: Robj,
        offset: Robj,
        terms: Robj,
    ) -> Result<Self> {
        let list = List::try_from(&terms).map_err(|_| other("internal: 'terms' must be a list"))?;
        let mut parts = Vec::with_capacity(list.len());
        let mut covariances = Vec::with_capacity(list.len());
        for (index, t) in list.values().enumerate() {
            covariances.push(term_covariance(&t, count(&field(&t, "q")?, "q")?, index)?);
            parts.push((
                field(&t, "codes")?,
                count(&field(&t, "n_levels")?, "n_levels")?,
                field(&t, "z")?,
                count(&field(&t, "q")?, "q")?,
                count(&field(&t, "factor_id")?, "factor_id")?,
            ));
        }
        Ok(Self {
            y,
            x,
            p: usize::try_from(p).map_err(|_| other("internal: p must be non-negative"))?,
            weights,
            offset,
            terms: parts,
            covariances,
        })
    }

    pub(crate) fn spec(&self) -> Result<ModelSpec<'_>> {
        let mut re_terms = Vec::with_capacity(self.terms.len());
        for (codes, n_levels, z, q, factor_id) in &self.terms {
            re_terms.push(
                RandomTerm::from_factor_codes(
                    integers(codes, "codes")?,
                    *n_levels,
                    doubles(z, "z")?,
                    *q,
                    *factor_id,
                )
                .map_err(err)?,
            );
        }
        ModelSpec::new(
            doubles(&self.y, "y")?,
            doubles(&self.x, "X")?,
            self.p,
            optional_doubles(&self.weights, "weights")?,
            optional_doubles(&self.offset, "offset")?,
            re_terms,
        )
        .and_then(|spec| spec.with_covariances(self.covariances.clone()))
        .map_err(err)
    }
}

/// Fits a linear mixed model (see `RInputs::new` for `terms`); `control` is an `lmmControl`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn lmm_fit_rs(
    y: Robj,
    x: Robj,
    p: i32,
    weights: Robj,
    offset: Robj,
    terms: Robj,
    reml: bool,
    start: Robj,
    control: Robj,
    verbose: i32,
) -> Result<Robj> {
    let inputs = RInputs::new(y, x, p, weights, offset, terms)?;
    let opts = optim_options(&control)?;
    let start_v = if start.is_null() {
        None
    } else {
        Some(doubles(&start, "start")?.to_vec())
    };
    let mut model = LinearMixedModel::new(inputs.spec()?, reml, fit_par(&control)?).map_err(err)?;
    let mut progress = progress_printer(verbose, "theta");
    let fit = model
        .fit(start_v.as_deref(), &opts, &mut progress)
        .map_err(err)?;
    Ok(fit_to_list(&fit))
}

/// Evaluates the profiled criterion at θ values (`theta` holds one θ after another), for tests
/// and profiling. Other arguments as `lmm_fit_rs`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn lmm_deviance_rs(
    y: Robj,
    x: Robj,
    p: i32,
    weights: Robj,
    offset: Robj,
    terms: Robj,
    reml: bool,
    theta: Robj,
) -> Result<Robj> {
    let inputs = RInputs::new(y, x, p, weights, offset, terms)?;
    let mut model =
        LinearMixedModel::new(inputs.spec()?, reml, faer::Par::rayon(0)).map_err(err)?;
    let th = doubles(&theta, "theta")?;
    let k = model.re.n_par().max(1);
    let values: Vec<f64> = th.chunks(k).map(|t| model.objective_at_par(t)).collect();
    Ok(Robj::from(values))
}

/// The covariance parameterisation of each term, as R needs it to name, check and count the
/// parameters: `terms` is a list of lists with `q` and the optional `cov`, `hom`, `label` (as for
/// the fit). Per term: `n_par`, `lower`, `upper`, `start` (lme4's), and per parameter its `role`
/// (`"factor"`, `"sd"`, `"rho"`, `"pacf"`), `row` and `col` (1-based columns of the term; 0 for a
/// homogeneous sd; the lag in `row` for `"pacf"`).
/// @noRd
#[extendr]
fn covariance_layout_rs(terms: Robj) -> Result<Robj> {
    let list = List::try_from(&terms).map_err(|_| other("internal: 'terms' must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for (index, t) in list.values().enumerate() {
        let c = term_covariance(&t, count(&field(&t, "q")?, "q")?, index)?;
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
        out.push(Robj::from(list!(
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
        )));
    }
    Ok(List::from_values(out).into())
}

/// θ (each term's lower triangle of `T`) for the optimizer's parameters `par` of the terms
/// described as for [`covariance_layout_rs`].
/// @noRd
#[extendr]
fn covariance_theta_rs(terms: Robj, par: Robj) -> Result<Robj> {
    let list = List::try_from(&terms).map_err(|_| other("internal: 'terms' must be a list"))?;
    let par = doubles(&par, "par")?;
    let mut theta = Vec::new();
    let mut offset = 0;
    for (index, t) in list.values().enumerate() {
        let c = term_covariance(&t, count(&field(&t, "q")?, "q")?, index)?;
        let end = offset + c.n_par();
        if end > par.len() {
            return Err(other(format!(
                "'par' has length {}, the terms need more",
                par.len()
            )));
        }
        let mut th = vec![0.0; c.n_theta()];
        c.theta(&par[offset..end], &mut th);
        theta.extend(th);
        offset = end;
    }
    if offset != par.len() {
        return Err(other(format!(
            "'par' has length {}, the terms have {offset} covariance parameters",
            par.len()
        )));
    }
    Ok(Robj::from(theta))
}

/// A GLMM fit as an R list. `with_means`: include the linear predictor and the means (`n`
/// values each; `NULL` for bootstrap replicates, which do not need them).
pub(crate) fn glmm_fit_to_list(fit: &GlmmFit, with_means: bool) -> Robj {
    let b = List::from_values(fit.b.iter().map(|v| Robj::from(v.clone())));
    let stage = |s: &Option<OptSummary>| s.as_ref().map_or_else(|| Robj::from(()), summary_to_list);
    let per_row = |v: &Vec<f64>| {
        if with_means {
            Robj::from(v.clone())
        } else {
            Robj::from(())
        }
    };
    list!(
        theta = fit.theta.clone(),
        par = fit.par.clone(),
        beta = fit.beta.clone(),
        u = fit.u.clone(),
        b = b,
        eta = per_row(&fit.eta),
        mu = per_row(&fit.mu),
        ldL2 = fit.ldl2,
        ldRX2 = fit.ldrx2,
        ussq = fit.ussq,
        wrss = fit.wrss,
        drsum = fit.drsum,
        deviance = fit.deviance,
        vcov_unscaled = fit.vcov_unscaled.clone(),
        gradient = fit.gradient.clone(),
        hessian = fit.hessian.clone(),
        stage1 = stage(&fit.stage1),
        stage2 = stage(&fit.stage2),
        messages = fit.messages.clone(),
        hessian_problem = fit.hessian_problem.clone(),
        pirls_failures = fit.pirls_failures as i32,
        pirls_iterations = fit.pirls_iterations as i32
    )
    .into()
}

fn stage_optimizer(name: &str) -> Result<StageOptimizer> {
    match name {
        "bobyqa" => Ok(StageOptimizer::Bobyqa),
        "Nelder_Mead" => Ok(StageOptimizer::NelderMead),
        name => Err(other(format!("optimizer '{name}' is not supported"))),
    }
}

pub(crate) fn glmm_options(control: &Robj, n_agq: usize) -> Result<GlmmOptions> {
    let optimizers = field(control, "optimizer")?;
    let names: Vec<String> = optimizers
        .as_str_vector()
        .ok_or_else(|| other("internal: 'optimizer' must be character"))?
        .iter()
        .map(|s| s.to_string())
        .collect();
    if names.len() != 2 {
        return Err(other("internal: 'optimizer' must name two stages"));
    }
    Ok(GlmmOptions {
        n_agq,
        init_step: field(control, "nAGQ0initStep")?.as_bool().unwrap_or(true),
        optim: optim_options(control)?,
        optimizers: [stage_optimizer(&names[0])?, stage_optimizer(&names[1])?],
        pirls: PirlsOptions {
            tol: real(&field(control, "tolPwrss")?, "tolPwrss")?,
            max_iter: count(&field(control, "maxit")?, "maxit")?,
            trace: None,
        },
    })
}

/// Fits a generalized linear mixed model. `y` is the response as fitted, `weights` the prior
/// weights, `n_trials` R's binomial `n`, `eta_start` the starting linear predictor; other
/// arguments as `lmm_fit_rs`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn glmm_fit_rs(
    y: Robj,
    x: Robj,
    p: i32,
    weights: Robj,
    offset: Robj,
    terms: Robj,
    family: &str,
    link: &str,
    n_trials: Robj,
    eta_start: Robj,
    n_agq: i32,
    start_theta: Robj,
    start_beta: Robj,
    control: Robj,
    verbose: i32,
) -> Result<Robj> {
    let inputs = RInputs::new(y, x, p, weights, offset, terms)?;
    let fam = Family::new(family, link).map_err(err)?;
    let n_agq = usize::try_from(n_agq).map_err(|_| other("internal: nAGQ must be >= 0"))?;
    let mut opts = glmm_options(&control, n_agq)?;
    if verbose >= 2 {
        opts.pirls.trace = Some(print_line);
    }
    let start_theta = optional_doubles(&start_theta, "start theta")?;
    let start_beta = optional_doubles(&start_beta, "start beta")?;
    let mut model = GeneralizedLinearMixedModel::new(
        inputs.spec()?,
        fam,
        doubles(&n_trials, "n_trials")?.to_vec(),
        doubles(&eta_start, "eta_start")?.to_vec(),
        opts.pirls,
        fit_par(&control)?,
    )
    .map_err(err)?;
    let mut progress = progress_printer(verbose, "pars");
    let fit = model
        .fit(&opts, start_theta, start_beta, &mut progress)
        .map_err(err)?;
    Ok(glmm_fit_to_list(&fit, true))
}

/// Silences Rust's panic message; extendr turns the panic itself into an R error.
#[no_mangle]
pub extern "C" fn mixedrs_quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// Test hook: panics on purpose, so that the tests can check that a Rust panic reaches R as an
/// ordinary error and leaves the session usable.
/// @noRd
#[extendr]
fn panic_probe_rs() {
    panic!("deliberate panic (test of the panic boundary)"); // ok: the test hook itself
}

extendr_module! {
    mod mixedrs;
    use rbind_condvar;
    use rbind_ddf;
    use rbind_resample;
    fn lmm_fit_rs;
    fn lmm_deviance_rs;
    fn covariance_layout_rs;
    fn covariance_theta_rs;
    fn glmm_fit_rs;
    fn panic_probe_rs;
}
