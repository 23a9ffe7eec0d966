//! Conversions from R. The model of a fit arrives as one list, `list(y, X, p, weights, offset,
//! terms)`, and becomes a [`ModelInputs`] once, at the boundary (`TryFrom<&Robj>`, so it can be an
//! entry point's argument type); the control lists become [`LmmControl`] and [`GlmmControl`]; the
//! remaining small arguments go through the helpers here. Malformed input is an R error that
//! names the element; messages starting with `internal:` report input that R's own code never
//! sends.
use crate::fit::glmm::{GlmmOptions, StageOptimizer};
use crate::fit::pirls::PirlsOptions;
use crate::inference::parallel;
use crate::linalg::grouped_sums::{model_from_sums, FactorSums, GroupedSums, PairSums, TermShape};
use crate::model::covariance::{Covariance, Structure};
use crate::model::spec::{ModelSpec, RandomTerm};
use crate::optim::OptimOptions;
use extendr_api::prelude::*;

/// The binding's result: errors are extendr's, which R receives as ordinary errors.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// An error of the binding itself (the core's errors convert with `?`).
pub(crate) fn other(msg: impl Into<String>) -> Error {
    Error::Other(msg.into())
}

/// The element `name` of the list `list`, which must be present and not `NULL`.
fn field(list: &Robj, name: &str) -> Result<Robj> {
    optional_field(list, name)?.ok_or_else(|| other(format!("internal: missing element '{name}'")))
}

/// The element `name` of `list` (R's `list$name`), `None` when it is `NULL` or absent.
pub(crate) fn optional_field(list: &Robj, name: &str) -> Result<Option<Robj>> {
    let value = element(list, name)?;
    Ok(if value.is_null() { None } else { Some(value) })
}

/// R's `x$name`: for a list read from its names, as `$` reads them (the element named exactly
/// `name`, else the only one whose name starts with `name`, else `NULL`); any other object goes
/// through R's `$`. Hand-rolled because extendr's `dollar` parses and evaluates a call for every
/// lookup (about 60 µs of cbpp's 360 µs engine fit went to reading the control list so).
pub(crate) fn element(x: &Robj, name: &str) -> Result<Robj> {
    let Some(list) = x.as_list() else {
        return x
            .dollar(name)
            .map_err(|_| other(format!("internal: missing element '{name}'")));
    };
    let Some(names) = list.names() else {
        return Ok(Robj::from(()));
    };
    let mut partial = None;
    let mut partial_count = 0;
    for (i, n) in names.enumerate() {
        if n == name {
            return list.elt(i);
        }
        if n.starts_with(name) {
            partial = Some(i);
            partial_count += 1;
        }
    }
    match partial {
        Some(i) if partial_count == 1 => list.elt(i),
        _ => Ok(Robj::from(())),
    }
}

/// The values of a double vector (`what` names it in the error).
pub(crate) fn doubles<'a>(x: &'a Robj, what: &str) -> Result<&'a [f64]> {
    x.as_real_slice()
        .ok_or_else(|| other(format!("internal: '{what}' must be a double vector")))
}

/// As [`doubles`], with `NULL` for "not given".
pub(crate) fn optional_doubles<'a>(x: &'a Robj, what: &str) -> Result<Option<&'a [f64]>> {
    if x.is_null() {
        Ok(None)
    } else {
        doubles(x, what).map(Some)
    }
}

/// A non-negative count, given as an integer or a double.
pub(crate) fn count(x: &Robj, what: &str) -> Result<usize> {
    match x.as_integer().or_else(|| x.as_real().map(|v| v as i32)) {
        Some(v) if v >= 0 => Ok(v as usize),
        _ => Err(other(format!(
            "internal: '{what}' must be a non-negative count"
        ))),
    }
}

/// A single number.
pub(crate) fn real(x: &Robj, what: &str) -> Result<f64> {
    x.as_real()
        .ok_or_else(|| other(format!("internal: '{what}' must be a number")))
}

/// A double vector of R, its type checked once; the values stay in R's memory and are borrowed
/// from it (the `Robj` keeps them alive).
struct RealVector(Robj);

impl RealVector {
    fn new(x: Robj, what: &str) -> Result<Self> {
        doubles(&x, what)?;
        Ok(Self(x))
    }

    fn values(&self) -> &[f64] {
        // The type was checked in `new`, so the fallback is never taken.
        self.0.as_real_slice().unwrap_or_default()
    }
}

/// An integer vector of R, as [`RealVector`].
struct IntegerVector(Robj);

impl IntegerVector {
    fn new(x: Robj, what: &str) -> Result<Self> {
        x.as_integer_slice()
            .ok_or_else(|| other(format!("internal: '{what}' must be an integer vector")))?;
        Ok(Self(x))
    }

    fn values(&self) -> &[i32] {
        // The type was checked in `new`, so the fallback is never taken.
        self.0.as_integer_slice().unwrap_or_default()
    }
}

/// A term's covariance parameterisation from its optional elements `cov` (structure code, see
/// [`Structure::from_code`]; absent: unstructured) and `hom` (logical), named by `label` (by its
/// 1-based position `index + 1` without one), for a term of `q` columns.
fn term_covariance(t: &Robj, q: usize, index: usize) -> Result<Covariance> {
    let Some(code) = optional_field(t, "cov")? else {
        return Ok(Covariance::unstructured(q));
    };
    let code = code
        .as_integer()
        .ok_or_else(|| other("internal: 'cov' must be an integer code"))?;
    let hom = match optional_field(t, "hom")? {
        Some(h) => h
            .as_bool()
            .ok_or_else(|| other("internal: 'hom' must be TRUE or FALSE"))?,
        None => false,
    };
    let label = match optional_field(t, "label")?.and_then(|l| l.as_str().map(String::from)) {
        Some(l) => l,
        None => format!("{}", index + 1),
    };
    Ok(Covariance::new(
        Structure::from_code(code)?,
        hom,
        q,
        &label,
    )?)
}

/// The elements of R's list of terms.
fn term_list(terms: &Robj) -> Result<Vec<Robj>> {
    let list = List::try_from(terms).map_err(|_| other("internal: 'terms' must be a list"))?;
    Ok(list.values().collect())
}

/// Each term's covariance parameterisation, from a list of terms that carry `q` and the optional
/// `cov`, `hom` and `label` (see [`term_covariance`]).
pub(crate) struct TermCovariances(pub(crate) Vec<Covariance>);

impl TryFrom<&Robj> for TermCovariances {
    type Error = Error;

    fn try_from(terms: &Robj) -> Result<Self> {
        let list = term_list(terms)?;
        let mut out = Vec::with_capacity(list.len());
        for (index, t) in list.iter().enumerate() {
            out.push(term_covariance(t, count(&field(t, "q")?, "q")?, index)?);
        }
        Ok(Self(out))
    }
}

/// One random-effects term as R hands it over.
struct TermInputs {
    /// 1-based codes of the grouping factor, one per observation (`None` for a model from sums).
    codes: Option<IntegerVector>,
    /// Number of levels of the grouping factor.
    n_levels: usize,
    /// The term's model matrix, `n × q` column-major (`None` for a model from sums).
    z: Option<RealVector>,
    /// Number of columns of the term.
    q: usize,
    /// 1-based index of the grouping factor among the model's factors.
    factor_id: usize,
    /// The term's covariance parameterisation.
    covariance: Covariance,
    /// Whether the term enters the zero-inflation predictor (`predictor = "zi"`).
    zero_inflation: bool,
}

impl TermInputs {
    /// `t` is a list with `codes`, `n_levels`, `z` (double), `q` and `factor_id`, and optionally
    /// `cov`, `hom` and `label` (see [`term_covariance`]) and `predictor` (`"zi"` for a term of
    /// the zero-inflation model; absent or `"cond"`: the mean's); `index` is its 0-based
    /// position. With `rows = false` (a model from sums) `codes` and `z` are not read.
    fn new(t: &Robj, index: usize, rows: bool) -> Result<Self> {
        let q = count(&field(t, "q")?, "q")?;
        let covariance = term_covariance(t, q, index)?;
        let zero_inflation = match optional_field(t, "predictor")? {
            None => false,
            Some(v) => match v.as_str() {
                Some("cond") => false,
                Some("zi") => true,
                _ => {
                    return Err(other(
                        "internal: a term's 'predictor' is \"cond\" or \"zi\"",
                    ))
                }
            },
        };
        if zero_inflation && !rows {
            return Err(other(
                "random effects in the zero-inflation model need the model's rows",
            ));
        }
        Ok(Self {
            zero_inflation,
            codes: if rows {
                Some(IntegerVector::new(field(t, "codes")?, "codes")?)
            } else {
                None
            },
            n_levels: count(&field(t, "n_levels")?, "n_levels")?,
            z: if rows {
                Some(RealVector::new(field(t, "z")?, "z")?)
            } else {
                None
            },
            q,
            factor_id: count(&field(t, "factor_id")?, "factor_id")?,
            covariance,
        })
    }

    /// The term's size for a model from sums.
    fn shape(&self) -> Result<TermShape> {
        Ok(TermShape {
            n_levels: self.n_levels,
            q: self.q,
            factor: self
                .factor_id
                .checked_sub(1)
                .ok_or_else(|| other("internal: 'factor_id' is 1-based"))?,
        })
    }
}

/// The rows of a model: response, fixed-effects matrix, optional prior weights and offset.
struct RowInputs {
    y: RealVector,
    x: RealVector,
    weights: Option<RealVector>,
    offset: Option<RealVector>,
}

/// One grouping factor's sums as R hands them over (see [`FactorSums`]).
struct FactorSumInputs {
    n_levels: usize,
    q: usize,
    zz: RealVector,
    fz: RealVector,
}

/// One pair of grouping factors' sums as R hands them over (see [`PairSums`]; `i`, `j` 1-based).
struct PairSumInputs {
    i: usize,
    j: usize,
    li: IntegerVector,
    lj: IntegerVector,
    zz: RealVector,
}

/// The grouped sums of a model (R's `sums` list, see [`GroupedSums`]).
struct SumInputs {
    n: f64,
    sum_log_w: f64,
    p: usize,
    ff: RealVector,
    factors: Vec<FactorSumInputs>,
    pairs: Vec<PairSumInputs>,
}

impl TryFrom<&Robj> for SumInputs {
    type Error = Error;

    fn try_from(sums: &Robj) -> Result<Self> {
        let list_of = |name: &str| -> Result<Vec<Robj>> {
            let v = element(sums, name)
                .map_err(|_| other(format!("internal: missing element '{name}' of the sums")))?;
            if v.is_null() {
                return Ok(Vec::new());
            }
            List::try_from(&v)
                .map(|l| l.values().collect())
                .map_err(|_| other(format!("internal: the sums' '{name}' must be a list")))
        };
        let factors = list_of("factors")?
            .iter()
            .map(|f| {
                Ok(FactorSumInputs {
                    n_levels: count(&field(f, "n_levels")?, "n_levels")?,
                    q: count(&field(f, "q")?, "q")?,
                    zz: RealVector::new(field(f, "zz")?, "zz")?,
                    fz: RealVector::new(field(f, "fz")?, "fz")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pairs = list_of("pairs")?
            .iter()
            .map(|pr| {
                Ok(PairSumInputs {
                    i: count(&field(pr, "i")?, "i")?,
                    j: count(&field(pr, "j")?, "j")?,
                    li: IntegerVector::new(field(pr, "li")?, "li")?,
                    lj: IntegerVector::new(field(pr, "lj")?, "lj")?,
                    zz: RealVector::new(field(pr, "zz")?, "zz")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            n: real(&field(sums, "n")?, "n")?,
            sum_log_w: real(&field(sums, "sum_log_w")?, "sum_log_w")?,
            p: count(&field(sums, "p")?, "p")?,
            ff: RealVector::new(field(sums, "ff")?, "ff")?,
            factors,
            pairs,
        })
    }
}

impl SumInputs {
    /// The sums, borrowing R's memory.
    fn sums(&self) -> Result<GroupedSums<'_>> {
        let pairs = self
            .pairs
            .iter()
            .map(|pr| {
                if pr.i == 0 || pr.j == 0 {
                    return Err(other("the sums' pair factor indices 'i', 'j' are 1-based"));
                }
                Ok(PairSums {
                    i: pr.i - 1,
                    j: pr.j - 1,
                    li: pr.li.values(),
                    lj: pr.lj.values(),
                    zz: pr.zz.values(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GroupedSums {
            n: self.n,
            sum_log_w: self.sum_log_w,
            p: self.p,
            ff: self.ff.values(),
            factors: self
                .factors
                .iter()
                .map(|f| FactorSums {
                    n_levels: f.n_levels,
                    q: f.q,
                    zz: f.zz.values(),
                    fz: f.fz.values(),
                })
                .collect(),
            pairs,
        })
    }
}

/// Where a model's data are: its rows, or the grouped sums they determine.
enum ModelData {
    Rows(RowInputs),
    Sums(SumInputs),
}

/// The model of a fit, from R's `list(y, X, p, weights, offset, terms)` (as `fit_engine_inputs()`
/// builds it): the response `y`, the fixed-effects matrix `X` (double, `n × p` column-major), the
/// optional prior `weights` and `offset` (`NULL`: none), and the random-effects `terms` (a list
/// of [`TermInputs`] lists). A model fitted from aggregates comes as `list(p, terms, sums)`
/// instead: no rows, the terms without `codes` and `z`, and `sums` its grouped sums (see
/// [`GroupedSums`]). Holding the R objects keeps the memory a [`ModelSpec`] borrows alive.
pub(crate) struct ModelInputs {
    data: ModelData,
    p: usize,
    terms: Vec<TermInputs>,
}

impl TryFrom<&Robj> for ModelInputs {
    type Error = Error;

    fn try_from(model: &Robj) -> Result<Self> {
        let sums = optional_field(model, "sums")?;
        let rows = sums.is_none();
        let terms = term_list(&field(model, "terms")?)?
            .iter()
            .enumerate()
            .map(|(index, t)| TermInputs::new(t, index, rows))
            .collect::<Result<Vec<_>>>()?;
        let optional = |name: &str| -> Result<Option<RealVector>> {
            optional_field(model, name)?
                .map(|v| RealVector::new(v, name))
                .transpose()
        };
        let data = match sums {
            Some(s) => ModelData::Sums(SumInputs::try_from(&s)?),
            None => ModelData::Rows(RowInputs {
                y: RealVector::new(field(model, "y")?, "y")?,
                x: RealVector::new(field(model, "X")?, "X")?,
                weights: optional("weights")?,
                offset: optional("offset")?,
            }),
        };
        Ok(Self {
            data,
            p: count(&field(model, "p")?, "p")?,
            terms,
        })
    }
}

impl ModelInputs {
    /// The validated model the engine works on, borrowing R's memory (for a model from sums:
    /// the cross-products they determine, validated).
    pub(crate) fn spec(&self) -> Result<ModelSpec<'_>> {
        let terms = &self.terms;
        let covariances = terms.iter().map(|t| t.covariance.clone()).collect();
        let rows = match &self.data {
            ModelData::Rows(rows) => rows,
            ModelData::Sums(s) => {
                let sums = s.sums()?;
                if sums.p != self.p {
                    return Err(other(format!(
                        "the sums have p = {} fixed-effect columns, the model {}",
                        sums.p, self.p
                    )));
                }
                let shapes = terms
                    .iter()
                    .map(|t| t.shape())
                    .collect::<Result<Vec<TermShape>>>()?;
                return Ok(model_from_sums(&sums, &shapes, covariances)?);
            }
        };
        let mut re_terms = Vec::with_capacity(terms.len());
        for t in terms {
            let (Some(codes), Some(z)) = (&t.codes, &t.z) else {
                return Err(other("internal: a term without its rows"));
            };
            let term = RandomTerm::from_factor_codes(
                codes.values(),
                t.n_levels,
                z.values(),
                t.q,
                t.factor_id,
            )?;
            re_terms.push(if t.zero_inflation {
                term.in_zero_inflation()
            } else {
                term
            });
        }
        let spec = ModelSpec::new(
            rows.y.values(),
            rows.x.values(),
            self.p,
            rows.weights.as_ref().map(RealVector::values),
            rows.offset.as_ref().map(RealVector::values),
            re_terms,
        )?;
        Ok(spec.with_covariances(covariances)?)
    }

    /// `(q, n_levels)` of each term, in input order.
    pub(crate) fn term_sizes(&self) -> Vec<(usize, usize)> {
        self.terms.iter().map(|t| (t.q, t.n_levels)).collect()
    }
}

/// The parallelism of one fit from `control$threads`: `0` (or absent, for settings made before
/// the option existed) uses every thread of rayon's pool, `1` runs sequentially and `k` splits
/// the parallel kernels (faer's dense Cholesky, the trailing Schur update) `k` ways. The pool
/// itself is never changed, so nothing leaks from one call to the next.
fn fit_par(control: &Robj) -> Result<faer::Par> {
    let threads = match optional_field(control, "threads")? {
        Some(v) => count(&v, "threads")?,
        None => 0,
    };
    Ok(parallel::par(threads))
}

/// The number `control$name`, `None` when it is absent or `NULL`.
pub(crate) fn optional_real(control: &Robj, name: &str) -> Result<Option<f64>> {
    optional_field(control, name)?
        .map(|v| real(&v, name))
        .transpose()
}

/// A family with extra parameters, from R's
/// `list(family, link, laplace = "observed" | "expected", disp = NULL | list(x, k, offset),
/// zi = NULL | list(x, k, offset), start = <extra parameters' start>)`.
pub(crate) struct ExtendedFamilyInput {
    pub(crate) family: crate::fit::response::ExtendedFamily,
    pub(crate) start: Vec<f64>,
}

impl TryFrom<&Robj> for ExtendedFamilyInput {
    type Error = Error;

    fn try_from(x: &Robj) -> Result<Self> {
        use crate::fit::response::{ExtendedFamily, LaplaceWeights, ParameterModel};
        let text = |name: &str| -> Result<String> {
            field(x, name)?
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| other(format!("internal: '{name}' must be a string")))
        };
        let density = crate::model::density::Density::from_name(&text("family")?)
            .map_err(|e| other(e.to_string()))?;
        let link = crate::model::family::Link::from_name(&text("link")?)
            .map_err(|e| other(e.to_string()))?;
        let laplace = match text("laplace")?.as_str() {
            "observed" => LaplaceWeights::Observed,
            "expected" => LaplaceWeights::Expected,
            other_name => return Err(other(format!("internal: laplace '{other_name}'"))),
        };
        let part = |name: &str| -> Result<Option<ParameterModel>> {
            let Some(m) = optional_field(x, name)? else {
                return Ok(None);
            };
            let offset = match optional_field(&m, "offset")? {
                Some(o) => Some(doubles(&o, "offset")?.to_vec()),
                None => None,
            };
            Ok(Some(ParameterModel {
                x: doubles(&field(&m, "x")?, "x")?.to_vec(),
                k: count(&field(&m, "k")?, "k")?,
                offset,
            }))
        };
        let start = match optional_field(x, "start")? {
            Some(v) => doubles(&v, "start")?.to_vec(),
            None => Vec::new(),
        };
        Ok(Self {
            family: ExtendedFamily {
                density,
                link,
                disp: part("disp")?,
                zi: part("zi")?,
                laplace,
            },
            start,
        })
    }
}

/// The optimizer settings of an `lmmControl` or a `glmmControl`.
/// [`GlmmOptions::quasi_newton_only`] from `control$quasi_newton_only` (`TRUE`: only the
/// quasi-Newton search) and `control$quasi_newton_max_evaluations` (its budget; absent: none).
fn quasi_newton_only(control: &Robj) -> Result<Option<usize>> {
    let only = optional_field(control, "quasi_newton_only")?
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if !only {
        return Ok(None);
    }
    match optional_field(control, "quasi_newton_max_evaluations")? {
        Some(m) => Ok(Some(count(&m, "quasi_newton_max_evaluations")?)),
        None => Ok(Some(usize::MAX)),
    }
}

fn optim_options(control: &Robj) -> Result<OptimOptions> {
    Ok(OptimOptions {
        rhobeg: real(&field(control, "rhobeg")?, "rhobeg")?,
        rhoend: real(&field(control, "rhoend")?, "rhoend")?,
        maxfun: count(&field(control, "maxfun")?, "maxfun")?,
        calc_derivs: field(control, "calc.derivs")?.as_bool().unwrap_or(true),
        boundary_tol: real(&field(control, "boundary.tol")?, "boundary.tol")?,
        grad_tol: real(&field(control, "grad.tol")?, "grad.tol")?,
        singular_tol: optional_real(control, "singular.tol")?.unwrap_or(1e-4),
        ftol_rel: optional_real(control, "ftol_rel")?,
        ftol_abs: optional_real(control, "ftol_abs")?,
    })
}

/// The settings of an LMM fit, from an `lmmControl` (unclassed).
pub(crate) struct LmmControl {
    /// The optimizer and its checks.
    pub(crate) optim: OptimOptions,
    /// The parallelism of the fit's linear algebra (`control$threads`).
    pub(crate) par: faer::Par,
}

impl TryFrom<&Robj> for LmmControl {
    type Error = Error;

    fn try_from(control: &Robj) -> Result<Self> {
        Ok(Self {
            optim: optim_options(control)?,
            par: fit_par(control)?,
        })
    }
}

/// The optimizer of a stage, by R's name.
pub(crate) fn stage_optimizer(name: &str) -> Result<StageOptimizer> {
    match name {
        "bobyqa" => Ok(StageOptimizer::Bobyqa),
        "Nelder_Mead" => Ok(StageOptimizer::NelderMead),
        // lme4's default: NLopt's BOBYQA, here the engine's, with nloptwrap's tolerances
        // (R's glmmControl() sets them).
        "nloptwrap" => Ok(StageOptimizer::Bobyqa),
        name => Err(other(format!("optimizer '{name}' is not supported"))),
    }
}

/// The settings of a GLMM fit, from a `glmmControl` (unclassed); with the number of quadrature
/// points, an argument of its own, they make the engine's [`GlmmOptions`].
pub(crate) struct GlmmControl {
    /// `control$nAGQ0initStep`: `None` (`NULL`) lets the engine choose.
    init_step: Option<bool>,
    /// `control$quasi_newton_only` and `control$quasi_newton_max_evaluations` (set
    /// internally, absent from users' controls): see [`GlmmOptions::quasi_newton_only`].
    quasi_newton_only: Option<usize>,
    /// `control$start_at_optimum` (set internally): see [`GlmmOptions::start_at_optimum`].
    start_at_optimum: bool,
    /// `control$quasi_newton_gtol` (set internally): see [`GlmmOptions::quasi_newton_gtol`].
    quasi_newton_gtol: Option<f64>,
    optim: OptimOptions,
    optimizers: [StageOptimizer; 2],
    pirls: PirlsOptions,
    /// The parallelism of the fit's linear algebra (`control$threads`).
    pub(crate) par: faer::Par,
}

impl TryFrom<&Robj> for GlmmControl {
    type Error = Error;

    fn try_from(control: &Robj) -> Result<Self> {
        let names: Vec<String> = field(control, "optimizer")?
            .as_str_vector()
            .ok_or_else(|| other("internal: 'optimizer' must be character"))?
            .iter()
            .map(|s| s.to_string())
            .collect();
        if names.len() != 2 {
            return Err(other("internal: 'optimizer' must name two stages"));
        }
        Ok(Self {
            init_step: match optional_field(control, "nAGQ0initStep")? {
                None => None,
                Some(v) => Some(
                    v.as_bool()
                        .ok_or_else(|| other("internal: 'nAGQ0initStep' must be TRUE or FALSE"))?,
                ),
            },
            quasi_newton_only: quasi_newton_only(control)?,
            start_at_optimum: optional_field(control, "start_at_optimum")?
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            quasi_newton_gtol: optional_real(control, "quasi_newton_gtol")?,
            optim: optim_options(control)?,
            optimizers: [stage_optimizer(&names[0])?, stage_optimizer(&names[1])?],
            pirls: PirlsOptions {
                tol: real(&field(control, "tolPwrss")?, "tolPwrss")?,
                max_iter: count(&field(control, "maxit")?, "maxit")?,
                trace: None,
            },
            par: fit_par(control)?,
        })
    }
}

impl GlmmControl {
    /// The engine's options for a fit with `n_agq` quadrature points (see [`agq_points`]).
    pub(crate) fn options(&self, n_agq: usize) -> GlmmOptions {
        GlmmOptions {
            n_agq,
            init_step: self.init_step,
            quasi_newton_only: self.quasi_newton_only,
            start_at_optimum: self.start_at_optimum,
            quasi_newton_gtol: self.quasi_newton_gtol,
            optim: self.optim.clone(),
            optimizers: self.optimizers,
            pirls: self.pirls,
        }
    }
}

/// The number of quadrature points (R's `nAGQ`; 0 fits β in the PIRLS only).
pub(crate) fn agq_points(n_agq: i32) -> Result<usize> {
    usize::try_from(n_agq).map_err(|_| other("internal: nAGQ must be >= 0"))
}

/// A thread count from R (0: all cores); the engine turns it into parallelism
/// ([`parallel::par`]) or splits work over that many threads.
pub(crate) struct Threads(pub(crate) usize);

impl TryFrom<&Robj> for Threads {
    type Error = Error;

    fn try_from(threads: &Robj) -> Result<Self> {
        let threads: i32 = threads.try_into()?;
        usize::try_from(threads)
            .map(Self)
            .map_err(|_| other("'threads' must be a non-negative whole number"))
    }
}

impl Threads {
    /// The parallelism of the linear algebra on these threads.
    pub(crate) fn par(&self) -> faer::Par {
        parallel::par(self.0)
    }
}

/// 0-based parameter indices from R's 1-based `which`, each within `1..=npar`.
pub(crate) fn parameter_indices(which: &Robj, npar: usize) -> Result<Vec<usize>> {
    doubles(which, "which")?
        .iter()
        .map(|&w| {
            if w >= 1.0 && w <= npar as f64 && w == w.trunc() {
                Ok(w as usize - 1)
            } else {
                Err(other(format!("parameter index {w} is outside 1..{npar}")))
            }
        })
        .collect()
}
