#' Fit a generalized linear mixed model
#'
#' Fits a generalized linear mixed model with the formula syntax and the
#' estimation method of `lme4::glmer()`: the conditional modes of the random
#' effects are found by penalized iteratively reweighted least squares (with
#' step halving) on the Rust core's blocked Cholesky factor, the likelihood is
#' approximated by the Laplace method or, for one scalar random-effects term,
#' by adaptive Gauss-Hermite quadrature, and the parameters are optimized in
#' glmer's two stages (first the covariance parameters with the fixed effects
#' inside PIRLS, then all parameters jointly).
#'
#' For binomial and Poisson models with the Laplace approximation, the default
#' optimizer and unstructured terms, the joint stage is a quasi-Newton (BFGS)
#' search with the exact gradient of the Laplace deviance, and the standard
#' errors come from differences of that gradient (`optinfo$optimizer` then
#' says `"BFGS"`), wherever the random effects' sparse system is cheap to
#' invert (nested designs, or crossed ones whose factor stays sparse, such as
#' `lme4::VerbAgg`'s; up to 1500 random effects). Elsewhere (and for the
#' families with a scale) the joint stage is glmer's BOBYQA search and the
#' Hessian the criterion's second differences. Both reach the same optimum.
#'
#' @inheritParams lmm
#' @param data A data frame containing the variables of the model (or `NULL`
#'   to take them from the formula's environment), or a table in a database:
#'   a dbplyr lazy table or an [sql_source()] (binomial and Poisson models;
#'   see "Database tables").
#' @param family A family object, family function or family name:
#'   `binomial` (links logit, probit, cloglog, cauchit, log), `poisson` (log,
#'   sqrt, identity), `Gamma` (inverse, log, identity), `inverse.gaussian`
#'   (1/mu^2, log, inverse) or `gaussian` with a log, inverse, logit, probit, cloglog or cauchit link. A
#'   binomial response may be 0/1, logical, a two-level factor,
#'   `cbind(successes, failures)`, or proportions with the number of trials as
#'   `weights`. The default, `gaussian` with the identity link, is glmer's:
#'   the model is then fitted by [lmm()], with lme4's deprecation warning.
#' @param nAGQ Integer: `1` for the Laplace approximation (default), `0` to
#'   optimize the covariance parameters only, with the fixed effects estimated
#'   inside PIRLS (faster, less exact), or `2` to `100` quadrature points of
#'   adaptive Gauss-Hermite quadrature (only for a model with a single scalar
#'   random-effects term).
#' @param weights Optional prior weights (non-negative), evaluated in
#'   `data`: for the binomial family with proportions as the response, the
#'   numbers of trials. A row of weight 0 (or a `cbind()` row of zero
#'   trials) adds nothing to the likelihood, as in `glm()` and `glmer()`; it
#'   keeps its fitted value and counts in `nobs()`.
#' @param control Settings from [glmmControl()].
#' @param mustart,etastart Optional starting values of the mean (`mustart`)
#'   or of the linear predictor (`etastart`) for the first PIRLS iterations,
#'   one per observation, evaluated in `data` like `weights` (glmer's
#'   arguments, used as [stats::glm()] uses them). They let a family whose
#'   initialization cannot use the response start anyway, such as
#'   `gaussian(link = "log")` with zeros in the response.
#' @param start Optional starting values: a numeric vector of covariance
#'   parameters `theta`, or `list(theta = , fixef = )`. Without `theta`, the
#'   fit starts from a method-of-moments estimate of the variance components
#'   on the working response of a first PIRLS run at lme4's start (`theta` =
#'   identity), refined for binomial, Poisson and [extended_families] by the
#'   maximum-likelihood fit of the linear mixed model of that working response
#'   with its residual variance known to be 1 (one step of penalized
#'   quasi-likelihood, from the same cross-products) and
#'   for the families with a dispersion mapped to where lme4's Laplace
#'   deviance has its minimum; or from lme4's start when that estimate is not
#'   available. A
#'   coarse first stage from lme4's start runs as well, and wins when it ends
#'   lower, so that a fit never ends worse than one from lme4's start would.
#'   A second stage that ends with a vector-valued term singular is run again
#'   off that face of the boundary (from the term's standard deviations with
#'   the zero ones raised, or from lme4's start when all are zero), and the
#'   better optimum kept; a fit that went without the first stage and still
#'   ends with a convergence warning is run again on lme4's default path (the
#'   first stage, then Nelder-Mead), the better optimum kept; `optinfo$starts`
#'   counts the runs of each stage.
#'   Standard errors of the fixed effects come from the finite-difference
#'   Hessian of the deviance over `c(theta, beta)` (as lme4's), taken in
#'   coordinates scaled to about one standard error each; when that Hessian
#'   gives no positive definite covariance a warning says why and the
#'   standard errors come from `R_X`.
#' @param verbose `TRUE` or `1`: print the criterion and the parameters at
#'   each optimizer evaluation (as glmer's `verbose`); `2`: also the penalized
#'   deviance and the largest relative step of every PIRLS iteration. A fit can
#'   be interrupted with Ctrl-C (an error; the session stays usable).
#' @return An object of class `"glmm"`: as an `"lmm"` object, with the family,
#'   `nAGQ`, the linear predictor `eta` and fitted means `mu`. Use the methods
#'   (`summary()`, [fixef()], [ranef()], [VarCorr()], `predict()`,
#'   `residuals()`, ...) to read it.
#' @param ziformula A one-sided formula for the probability of an extra zero
#'   (zero inflation, glmmTMB's `ziformula`), on the logit scale: `~0`
#'   (default) for none, `~1` for a constant probability, `~ x` for a model,
#'   `~ x + (1 | g)` with random effects (when the conditional model has
#'   random effects too). As in glmmTMB, `~ .` is the conditional formula's
#'   right-hand side, random-effects terms included and offsets left out,
#'   and terms can be added or removed (`~ . - (1 | g)`). Available for the
#'   `poisson`, `nbinom1` and `nbinom2` families.
#' @param dispformula A one-sided formula of fixed effects for the
#'   dispersion parameter on the log scale (glmmTMB's `dispformula`; see
#'   "Families with a dispersion"): `~1` (default) for a constant dispersion.
#'   Available for `nbinom1`, `nbinom2`, `beta`, `betabinomial`, `gaussian`
#'   and `Gamma`.
#' @section Families with a dispersion:
#'   `family = nbinom2`, `nbinom1`, `beta_family` or `betabinomial` (objects,
#'   functions or names, ours or glmmTMB's), or any model with `ziformula` or
#'   `dispformula`, is fitted as glmmTMB fits it: the dispersion coefficients
#'   (`log(phi)`) and zero-inflation coefficients are estimated jointly with
#'   the covariance parameters and the fixed effects by the Laplace
#'   approximation with the observed information (TMB's), so `logLik()` is
#'   comparable with glmmTMB's. glmmTMB's parameterisation: `nbinom2`
#'   variance `mu + mu^2/phi` (`phi` is glmer.nb's theta), `nbinom1`
#'   variance `mu (1 + phi)`, `beta` shapes `mu phi` and `(1 - mu) phi`,
#'   `betabinomial` the same for the success probability of
#'   `cbind(successes, failures)`, `gaussian` variance `phi`, `Gamma` shape
#'   `phi`. Results follow glmmTMB: `fixef()` has components `cond`, `zi`
#'   and `disp`. With the default optimizer (`"bobyqa"`) and unstructured
#'   random-effects terms (up to 1500 random effects), the joint stage is a
#'   quasi-Newton (BFGS) search with the exact gradient of the Laplace
#'   criterion, as glmmTMB's `nlminb` with TMB's gradient, and the standard
#'   errors come from differences of that gradient (`optinfo$optimizer`
#'   then says `"BFGS"`); otherwise BOBYQA (or Nelder-Mead) and the
#'   criterion's own second differences. A zero-inflated `nbinom2` or
#'   `nbinom1` model is searched from two starts, the dispersion at a moment
#'   estimate and on the side of the Poisson limit (`phi` 1e4 for `nbinom2`,
#'   1e-4 for `nbinom1`), and the better optimum kept (`optinfo$starts`
#'   counts both): excess zeros can be explained by overdispersion or by the
#'   zero inflation, and the likelihood can have an optimum for each.
#' @section Negative binomial with a fixed theta:
#'   `family = MASS::negative.binomial(theta)` fits the negative binomial
#'   with `theta` held at that value, as `lme4::glmer()` does: lme4's Laplace
#'   approximation (Fisher weights), printed as glmer prints it ("Negative
#'   Binomial(theta)"), `sigma()` 1, `getME(fit, "glmer.nb.theta")` the
#'   value given, and `logLik()`'s `df` counting theta as lme4 1.1 does;
#'   `nAGQ = 0` and `nAGQ > 1` as glmer's. The fit runs on [glmm.nb()]'s
#'   engine (which estimates theta), so `devFunOnly` and user optimizers are
#'   not available for it yet (errors that say so), nor
#'   `ziformula`/`dispformula` (use `nbinom2`).
#'   Prior weights multiply each observation's log-density, as in
#'   `MASS::negative.binomial()$aic`; lme4 1.1.31's compiled version of
#'   that aic weights only its first term, so its criterion with prior
#'   weights differs.
#' @param REML glmmTMB's argument. Missing (the default): a Gaussian model
#'   with the identity link is the linear mixed model fitted by [lmm()] with
#'   its default REML criterion (glmer's shortcut, with its deprecation
#'   warning), every other model by maximum likelihood. `TRUE`: the REML
#'   criterion, for the Gaussian family with the identity link (without
#'   `ziformula` or `dispformula`), fitted by `lmm(REML = TRUE)` (glmmTMB's
#'   REML fit of that model). For other families glmmTMB's REML (the fixed
#'   effects integrated out by the Laplace approximation) is not available,
#'   an error says so. `FALSE`: maximum likelihood, `lmm(REML = FALSE)` for
#'   the Gaussian identity model.
#' @param devFunOnly Logical: return the deviance function instead of
#'   fitting, as `lme4::glmer(devFunOnly = TRUE)`: for `nAGQ = 0` a function
#'   of the covariance parameters `theta` (the fixed effects found inside
#'   PIRLS), otherwise a function of `c(theta, beta)` (the Laplace or, for
#'   `nAGQ > 1`, adaptive Gauss-Hermite deviance, the conditional modes
#'   found by PIRLS). Its environment holds `lower` and `upper`, the bounds
#'   of its argument.
#' @section Database tables:
#'   A binomial or Poisson model's likelihood depends on its rows only
#'   through sums over the rows that share every value the right-hand side
#'   uses (covariates, offsets, grouping columns): the numbers of successes
#'   and trials, or the counts and the exposure. So `glmm(data = tbl)` groups
#'   the table by those columns in SQL (one `GROUP BY`; nothing is written to
#'   the database), brings only the patterns into R and fits them there: the
#'   same estimates, variance components and standard errors as the fit of
#'   the rows, and the rows' own log-likelihood, deviance, `AIC`/`BIC` and
#'   `nobs` (a constant, computed from the distribution of the response
#'   values by a second small query, makes the patterns' likelihood the
#'   rows'), so likelihood-ratio tests between table fits are those of the
#'   rows. The response: a 0/1 numeric, logical or two-valued text column
#'   (or `factor(column)`; the first level is failure), proportions with the
#'   trials as `weights`, or `cbind(successes, failures)` of columns and
#'   their sums and differences (`cbind(s, n - s)`); Poisson counts, with an
#'   offset `log(exposure)` (or a column of log exposures) summed as an
#'   exposure, any other offset kept in the pattern. Counts and trials must
#'   be whole numbers. The right-hand side may use any R function (it is
#'   evaluated on the patterns in R). Rows with a NULL in a used column are
#'   dropped and counted (`na.omit`; `na.fail` an error), `subset` is
#'   translated to SQL, and `verbose` also times each query. A table with
#'   more patterns than `glmmControl(table.budget.mb = )` allows is an error
#'   saying how many it has: continuous covariates leave little to compress,
#'   round or bin them with `dplyr::mutate()`. What needs the rows
#'   (`fitted()`, `residuals()`, `simulate()`, [bootmm()], influence
#'   measures, plots, `as.function()`) is an error saying so; `predict()` with
#'   `newdata` works.
#' @seealso [glmmControl()], [lmm()].
#' @importFrom stats binomial gaussian
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("cbpp", package = "lme4")
#' fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'             family = binomial, data = cbpp)
#' summary(fit)
#' # adaptive Gauss-Hermite quadrature with 5 points
#' fit5 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = cbpp, nAGQ = 5)
#' fit5
#' cbind(Laplace = fixef(fit), AGQ5 = fixef(fit5))
#' # a Poisson model with an observation-level random effect
#' data("grouseticks", package = "lme4")
#' pfit <- glmm(TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX),
#'              family = poisson, data = grouseticks)
#' pfit
#' @examplesIf requireNamespace("lme4", quietly = TRUE) && requireNamespace("RSQLite", quietly = TRUE) && requireNamespace("dbplyr", quietly = TRUE)
#' # a table in a database: the rows grouped by covariate pattern in SQL
#' con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
#' data("cbpp", package = "lme4")
#' herds <- transform(cbpp, herd = as.character(herd), period = as.character(period))
#' DBI::dbWriteTable(con, "herds", herds)
#' tfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = dplyr::tbl(con, "herds"))
#' tfit
#' all.equal(logLik(tfit), logLik(glmm(cbind(incidence, size - incidence) ~
#'   period + (1 | herd), family = binomial, data = herds)), tolerance = 1e-6)
#' DBI::dbDisconnect(con)
#' @export
glmm <- function(formula, data = NULL, family = gaussian, nAGQ = 1L, weights,
                 offset, subset, na.action, control = glmmControl(),
                 start = NULL, verbose = FALSE, devFunOnly = FALSE,
                 contrasts = NULL, mustart, etastart, ziformula = ~0,
                 dispformula = ~1, REML) {
  mc <- match.call()
  mc$ziformula <- NULL
  mc$dispformula <- NULL
  reml_given <- !missing(REML)
  if (reml_given) check_flag(REML, "REML")
  if (missing(control)) control <- default_control("glmm")
  env <- parent.frame()
  # A negative binomial with theta fixed (MASS::negative.binomial(theta)) is
  # fitted as glmm.nb() fits it, with theta held.
  nb_theta <- fixed_nb_theta(family)
  ext_family <- if (is.null(nb_theta)) {
    extended_family(family, env)
  } else {
    nb_engine_family(family$link)
  }
  parts_given <- !missing(ziformula) || !missing(dispformula)
  # A family function (such as binomial) is called once, here: the checks
  # below take the object it returns.
  if (is.null(ext_family) && is.function(family)) family <- family_from_function(family)
  if (parts_given && is.null(ext_family)) {
    parts_given <- !binomial_default_parts(family, env, ziformula, dispformula,
                                           missing(ziformula), missing(dispformula))
  }
  if (is.null(ext_family) && !parts_given && is_gaussian_identity(family, env)) {
    # (with `REML` given, glmmTMB's call of that model: no deprecation warning)
    return(gaussian_shortcut(mc, env, deprecated = !reml_given))
  }
  family <- if (!is.null(ext_family)) {
    ext_family
  } else if (parts_given && is_gaussian_identity(family, env)) {
    # With a dispersion model the gaussian family is glmmTMB's, not lmm()'s.
    stats::gaussian()
  } else {
    resolve_family(family, env)
  }
  if (reml_given && REML) stop_glmm_reml(family)
  # (maximum likelihood is what glmm() fits: the call keeps lme4's arguments only)
  mc$REML <- NULL
  nAGQ <- check_nagq(nAGQ)
  check_flag(devFunOnly, "devFunOnly")
  control <- as_fit_control(control, "glmm")
  verbose <- max(check_verbose(verbose), control$opt_verbose)
  # (evaluated once, here: `data = read.csv(...)` reads the file once)
  data <- data_value(mc, env)
  if (!is.null(ext_family) || parts_given) {
    if (is_sql_data(data)) {
      stop("glmm() on a database table supports the binomial and Poisson ",
           "families without 'ziformula' or 'dispformula'", call. = FALSE)
    }
    if (!is.null(nb_theta) && parts_given) {
      stop("a negative binomial family with a fixed theta (theta = ", format(nb_theta),
           ") takes no 'ziformula' or 'dispformula': use family = nbinom2, which ",
           "estimates theta, with them", call. = FALSE)
    }
    mc$ziformula <- if (!missing(ziformula)) ziformula
    mc$dispformula <- if (!missing(dispformula)) dispformula
    fit <- glmm_extended(mc, env, family, ziformula, dispformula, nAGQ,
                         control, start, verbose, devFunOnly,
                         style = if (is.null(nb_theta)) "glmmTMB" else "glmer.nb",
                         nb_theta_fixed = nb_theta, data = data)
    return(fit)
  }
  if (is_sql_data(data)) {
    return(glmm_sql_fit(mc, data, parent.frame(), family, control, verbose, devFunOnly))
  }
  inputs <- lmm_inputs(mc, parent.frame(), control, family = family, data = data)
  check_nlev_gtreq_5(inputs$flist, control$check.nlev.gtreq.5)
  # As glmer (unlike lmer): the call carries the formula itself, `||` kept.
  mc$formula <- inputs$formula
  check_agq_terms(nAGQ, inputs$reterms, " or nAGQ = 0")
  if (devFunOnly) return(make_glmm_devfun(inputs, family, nAGQ, control))
  start <- check_glmm_start(start, inputs, nAGQ)
  raw <- glmm_fit_raw(inputs, family, nAGQ, control, start, verbose)
  fit <- glmm_object(mc, inputs, raw, family, nAGQ, control)
  fit <- with_first_stage_if_unconverged(fit, mc, inputs, family, nAGQ, control, start, verbose)
  report_convergence(fit$optinfo, control)
  report_hessian(fit)
  fit
}

# A fit that went without the first (nAGQ = 0) stage (by default for
# non-canonical links and families with a dispersion, whose second stage
# starts from the moment estimate) and ended with a convergence warning is
# fitted again on lme4's default path (that stage, then Nelder-Mead), and
# the better optimum kept. For such links the conditional modes need not be
# unique: from the moment start the joint modes can belong to another
# solution (gaussian(link = "inverse") on a simulated model ended at logLik
# 117.8 with a gradient warning; glmer, and this path, at 8233.8).
with_first_stage_if_unconverged <- function(fit, mc, inputs, family, nAGQ, control, start,
                                            verbose) {
  if (nAGQ == 0L || !is.null(control$nAGQ0initStep) || !is.null(control$optimizer_fun) ||
      any(control$optimizer == "none") || length(fit$optinfo$feval_stages) > 1L ||
      !any(grepl("failed to converge", fit$optinfo$conv$lme4$messages, fixed = TRUE))) {
    return(fit)
  }
  control$nAGQ0initStep <- TRUE
  # with lme4's Nelder-Mead second stage where the default BOBYQA was used
  # (from the first stage's end, BOBYQA stopped at logLik -168.6 there)
  if (identical(control$optimizer, c("bobyqa", "bobyqa"))) {
    control$optimizer <- c("bobyqa", "Nelder_Mead")
  }
  raw <- tryCatch(glmm_fit_raw(inputs, family, nAGQ, control, start, verbose),
                  error = function(e) NULL)
  if (is.null(raw)) return(fit)
  other <- glmm_object(mc, inputs, raw, family, nAGQ, control)
  other_better <- as.numeric(stats::logLik(other)) > as.numeric(stats::logLik(fit))
  better <- if (other_better) other else fit
  # (the runs of the other fit counted in the last stage's)
  k <- length(better$optinfo$starts)
  better$optinfo$starts[k] <- better$optinfo$starts[k] +
    sum((if (other_better) fit else other)$optinfo$starts)
  better
}

# The engine's result for `inputs` (`start`: list(theta, fixef), either
# NULL): its own two-stage fit, or, when a stage's optimizer is a function
# or "none", the fit stage by stage on the deviance function. A PIRLS
# failure is explained by a separation check.
glmm_fit_raw <- function(inputs, family, nAGQ, control, start, verbose) {
  with_separation_check(function() {
    if (!is.null(control$optimizer_fun) || any(control$optimizer == "none")) {
      return(glmm_devfun_fit(inputs, family, nAGQ, control, start, verbose))
    }
    X <- inputs$X
    X <- double_storage(X)
    glmm_fit_rs(as.double(inputs$y), X, ncol(X), as.double(inputs$weights),
                if (is.null(inputs$offset)) NULL else as.double(inputs$offset),
                engine_terms(inputs), family$family, family$link,
                as.double(inputs$n_trials), as.double(inputs$etastart),
                nAGQ, start$theta, start$fixef, unclass(control), verbose)
  }, inputs, family)
}

# TRUE when a binomial glmm() is given glmmTMB's defaults written out
# (ziformula = ~0, dispformula = ~1), as glmmTMB code often has them: with the
# logit link glmmTMB's model is glmer's (the canonical link's observed and
# expected information are one), so the arguments change nothing. With
# another link glmmTMB's Laplace likelihood (observed information) differs
# from glmer's, and glmm() has no glmmTMB-style binomial: an error says so.
binomial_default_parts <- function(family, env, ziformula, dispformula, zi_missing,
                                   disp_missing) {
  defaults <- (zi_missing || is_constant_formula(ziformula, 0)) &&
    (disp_missing || is_constant_formula(dispformula, 1))
  if (!defaults) return(FALSE)
  fam <- tryCatch(resolve_family(family, env), error = function(e) NULL)
  if (is.null(fam) || !identical(fam$family, "binomial")) return(FALSE)
  if (!identical(fam$link, "logit")) {
    stop("glmm() fits the binomial family as glmer() does; with the ", fam$link, " link ",
         "glmmTMB's likelihood (ziformula/dispformula given) differs from glmer's and is not ",
         "available: leave out 'ziformula' and 'dispformula' to fit glmer's model",
         call. = FALSE)
  }
  TRUE
}

# The error for glmm(REML = TRUE) on a model other than the Gaussian identity
# model without zero-inflation or dispersion formulas.
stop_glmm_reml <- function(family) {
  what <- if (identical(family$family, "gaussian") && identical(family$link, "identity")) {
    "the Gaussian family with 'ziformula' or 'dispformula'"
  } else {
    paste0("the ", family$family, " family (", family$link, " link)")
  }
  stop("glmm() fits REML = TRUE only for the Gaussian family with the identity link ",
       "without 'ziformula' or 'dispformula' (as lmm() does); glmmTMB's REML for ", what,
       ", which integrates the fixed effects out by the Laplace approximation, is not ",
       "available: use REML = FALSE (maximum likelihood)", call. = FALSE)
}

# TRUE when `family` (an object, function or name) is gaussian with the
# identity link.
is_gaussian_identity <- function(family, env) {
  if (is.character(family) && length(family) == 1L) {
    family <- get0(family, envir = env, mode = "function")
  }
  if (is.function(family)) family <- tryCatch(family(), error = function(e) NULL)
  inherits(family, "family") && identical(family$family, "gaussian") &&
    identical(family$link, "identity")
}

# glmm(family = gaussian) with the identity link, as glmer(): the linear
# mixed model, fitted by lmm() (with the call's `REML`, if any), with lme4's
# deprecation warning where `deprecated`.
gaussian_shortcut <- function(mc, env, deprecated = TRUE) {
  if (deprecated) {
    warning("calling glmm() with family=gaussian (identity link) as a shortcut ",
            "to lmm() is deprecated; please call lmm() directly", call. = FALSE)
  }
  if (!is.null(mc$nAGQ)) {
    stop("'nAGQ' has no meaning for a linear mixed model (family = gaussian ",
         "with the identity link)", call. = FALSE)
  }
  mc[[1L]] <- quote(mixedrs::lmm)
  mc$family <- NULL
  eval(mc, env)
}

# Says so when the standard errors of the fixed effects could not come from
# the finite-difference Hessian of the deviance (lme4's default) and fell back
# to R_X, naming the reason.
report_hessian <- function(fit) {
  problem <- fit$optinfo$hessian_problem
  if (is.null(problem)) return(invisible(NULL))
  warning("the standard errors of the fixed effects come from R_X at the ",
          "modes (as with vcov(use.hessian = FALSE)), not from the ",
          "finite-difference Hessian of the deviance: ", problem, call. = FALSE)
  invisible(NULL)
}

# Why the Hessian over c(theta, beta) gives no covariance of the fixed
# effects, or NULL when it does (or when there is none, e.g. nAGQ = 0).
hessian_problem <- function(raw, hess) {
  if (is.character(raw$hessian_problem) && !is.na(raw$hessian_problem)) {
    return(raw$hessian_problem)
  }
  if (!hess$available || !hess$bad) return(NULL)
  H <- hess$H
  if (anyNA(H) || any(!is.finite(H))) {
    return("the Hessian has non-finite entries")
  }
  ev <- eigen((H + t(H)) / 2, symmetric = TRUE, only.values = TRUE)$values
  sprintf(paste0("the Hessian is not positive definite (eigenvalues from %.3g ",
                 "to %.3g): the deviance is flat or curved downwards in some ",
                 "direction at the estimates, e.g. with near-collinear ",
                 "fixed-effect columns or a parameter on its boundary"),
          min(ev), max(ev))
}

check_nagq <- function(nAGQ) {
  if (!is.numeric(nAGQ) || length(nAGQ) != 1L || is.na(nAGQ) ||
      nAGQ != round(nAGQ) || nAGQ < 0 || nAGQ > 100) {
    stop("'nAGQ' must be a whole number from 0 to 100 (0 <= nAGQ <= 100; 0: fast approximation, ",
         "1: Laplace, > 1: adaptive Gauss-Hermite quadrature), not ",
         deparse1(nAGQ), call. = FALSE)
  }
  as.integer(nAGQ)
}

# nAGQ > 1 needs a single scalar random-effects term; `alternatives` ends the
# error's advice.
check_agq_terms <- function(nAGQ, reterms, alternatives = "") {
  if (nAGQ > 1L && (length(reterms) != 1L || ncol(reterms[[1L]]$Z) != 1L)) {
    stop("nAGQ = ", nAGQ, " (adaptive Gauss-Hermite quadrature) needs a model ",
         "with a single scalar random-effects term such as (1 | group); this ",
         "model has ", describe_terms(reterms), ". Use nAGQ = 1 (Laplace)",
         alternatives, call. = FALSE)
  }
  invisible(NULL)
}

describe_terms <- function(reterms) {
  paste0(length(reterms), " term", if (length(reterms) != 1L) "s",
         " (", paste0("(", vapply(reterms, `[[`, "", "term"), ")", collapse = ", "),
         ")")
}

# start = theta vector, or list(theta =, fixef =) as glmer takes it.
check_glmm_start <- function(start, inputs, nAGQ) {
  if (is.null(start)) return(list(theta = NULL, fixef = NULL))
  if (!is.list(start)) start <- list(theta = start)
  extra <- setdiff(names(start), c("theta", "par", "fixef"))
  if (length(extra) > 0L || is.null(names(start))) {
    stop("bad name(s) in 'start': ",
         if (is.null(names(start))) "its elements have no names" else paste(extra, collapse = ", "),
         "; it must be a theta vector or a list with elements 'theta' ",
         "(or 'par' for structured terms) and/or 'fixef'", call. = FALSE)
  }
  cov_start <- start[intersect(names(start), c("theta", "par"))]
  theta <- if (length(cov_start) == 0L) NULL else check_start(cov_start, inputs$reterms)
  fixef <- start$fixef
  if (!is.null(fixef)) {
    if (nAGQ == 0L) {
      stop("'start' cannot give 'fixef' with nAGQ = 0 (the fixed effects ",
           "are estimated inside PIRLS there)", call. = FALSE)
    }
    p <- ncol(inputs$X)
    if (!is.numeric(fixef) || length(fixef) != p || any(!is.finite(fixef))) {
      stop(if (length(fixef) != p) paste0("incorrect number of fixef components (",
                                           length(fixef), " != ", p, "): "),
           "'start$fixef' must be a finite numeric vector of length ", p,
           " (one value per column of the fixed-effects matrix: ",
           paste(colnames(inputs$X), collapse = ", "), ")", call. = FALSE)
    }
    fixef <- as.double(fixef)
  }
  list(theta = theta, fixef = fixef)
}

# Assembles the "glmm" object from the model inputs and the engine's result.
glmm_object <- function(mc, inputs, raw, family, nAGQ, control,
                        scale_free = FALSE) {
  parts <- fit_parts(mc, inputs, raw)
  X <- inputs$X
  n <- nrow(X)
  p <- ncol(X)
  nth <- length(parts$theta)
  obs_names <- rownames(inputs$frame)
  # An extended family's weights carry its dispersion (R/glmm-extended.R).
  use_sc <- !scale_free && !family$family %in% c("binomial", "poisson")
  pwrss <- raw$wrss + raw$ussq
  sigma <- if (use_sc) sqrt(pwrss / n) else 1
  vcov_rx <- sigma^2 * unscaled_vcov(raw$vcov_unscaled, X)
  cmp <- c(ldL2 = raw$ldL2, ldRX2 = raw$ldRX2, wrss = raw$wrss,
           ussq = raw$ussq, pwrss = pwrss, drsum = raw$drsum, REML = NA,
           dev = raw$deviance, sigmaML = if (use_sc) sigma else NA,
           sigmaREML = NA, tolPwrss = control$tolPwrss)
  dims <- c(N = n, n = n, p = p, nmp = n - p, q = length(raw$u), nth = nth,
            nAGQ = nAGQ, compDev = 1L, useSc = as.integer(use_sc),
            reTrms = length(inputs$reterms), spFe = 0L, REML = 0L, GLMM = 1L,
            NLMM = 0L)
  singular <- any(raw$theta[theta_lower(inputs$reterms) == 0] < 1e-4)
  specific <- list(
    family = family,
    nAGQ = nAGQ,
    n_trials = inputs$n_trials,
    eta = stats::setNames(raw$eta, obs_names),
    mu = stats::setNames(raw$mu, obs_names),
    sigma = sigma,
    vcov_rx = vcov_rx,
    devcomp = list(cmp = cmp, dims = dims),
    optinfo = c(optimizer_record(control$optimizer[seq_len(1L + (nAGQ > 0L))],
                                 list(raw$stage1, raw$stage2),
                                 c(if (is.null(raw$par)) raw$theta else raw$par, raw$beta),
                                 raw$gradient,
                                 raw$hessian, raw$messages, singular),
                list(pirls_failures = raw$pirls_failures,
                     pirls_iterations = raw$pirls_iterations))
  )
  fit <- structure(c(parts, specific), class = fit_class("glmm"))
  # Stage 2 ran the engine's quasi-Newton search with the exact gradient
  # (src/rust/fit/laplace_gradient.rs), not the control's BOBYQA.
  if (startsWith(as.character(fit$optinfo$message), "quasi-Newton")) {
    fit$optinfo$optimizer[length(fit$optinfo$optimizer)] <- "BFGS"
  }
  # lme4's default: from the finite-difference Hessian when it is usable.
  hess <- glmm_hessian_info(fit)
  fit$optinfo$hessian_problem <- hessian_problem(raw, hess)
  fit$vcov <- if (hess$available && !hess$bad) {
    structure(hess$V, dimnames = dimnames(vcov_rx))
  } else {
    vcov_rx
  }
  fit
}
