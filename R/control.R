#' Control settings for `lmm()`
#'
#' Builds and validates the settings that steer the model checks and the
#' optimizer of [lmm()]. The arguments take the names, values and meanings of
#' `lme4::lmerControl()`, so that an lme4 user's control settings carry over;
#' `lmm()` also accepts the object `lme4::lmerControl()` returns and
#' translates it. Each lme4 setting is either implemented, accepted because
#' it changes nothing here (said below), or an error that says why it has no
#' meaning in mixedrs.
#'
#' As `lme4::lmerControl()`, the data checks of
#' `options(lmerControl = list(...))` (its `check.*` settings other than
#' `check.conv.*`, `check.rankX` and `check.scaleX`) are the defaults of the
#' arguments not given (and of `lmm()` without `control`); other names in
#' that option are ignored with a warning.
#'
#' @param optimizer Optimizer for the covariance parameters:
#'   * `"bobyqa"` (default): Powell's bound-constrained quadratic-model
#'     method, run by the engine, with the start and restart strategy
#'     described in [lmm()];
#'   * `"nloptwrap"` (lme4's default): the same BOBYQA with the stopping
#'     rules of lme4's `nloptwrap()` (`xtol_abs = 1e-8` as the final
#'     trust-region radius, `ftol_abs = 1e-8`, `maxeval = 1e5`);
#'   * `"Nelder_Mead"`: the engine's Nelder-Mead simplex search from lme4's
#'     start;
#'   * `"none"` or `NULL`: no optimization; the fit is made at `start` (lme4's
#'     `optimizer = NULL`);
#'   * a function, or the name of one, with lme4's calling convention
#'     `optimizer(par, fn, lower, upper, control)`, returning a list with
#'     `par`, the value `fval` (or `value`), the code `conv` (or
#'     `convergence`, `ierr`) and optionally `message` (or `msg`) and `feval`,
#'     as `lme4::nloptwrap()`, `lme4::nlminbwrap()` or a wrapper of
#'     `stats::optim()` return. It minimizes the deviance function of
#'     `lmm(devFunOnly = TRUE)`, and the fit is then finished at its `par`;
#'   * `"optimx"`: as lme4 runs it, `optimx::optimx()` with the method named
#'     by `optCtrl$method` (required) and the rest of `optCtrl` as its
#'     control.
#'
#'   Without `start`, all but `"bobyqa"` and `"nloptwrap"` start where lme4
#'   does: at 1 for each relative standard deviation and 0 for each
#'   correlation, except in a model whose terms are all random intercepts
#'   of distinct factors, where each starts at the square root of the
#'   variance of the response's group means over the variance left (lme4's
#'   moment start).
#' @param rhobeg,rhoend Initial and final trust-region radius of BOBYQA on
#'   the covariance parameters. `rhoend` sets the accuracy of `theta`. Where
#'   each evaluation factors a dense block of order 200 or more (crossed
#'   grouping factors; unstructured terms), Newton steps from the start
#'   replace BOBYQA: the exact gradient of the deviance with its
#'   average-information Hessian (the matrix of AI-REML, one solve per
#'   parameter), until a step is within `rhoend`. The convergence check then
#'   uses that exact gradient, and `optinfo$message` says so. Where a step
#'   would end within `0.01` of a bound (a variance heading for zero) or does
#'   not lower the deviance, BOBYQA takes over from the best point and goes
#'   on to `rhoend`. The Nelder-Mead simplex starts with sides
#'   `rhobeg / 5`. Without a `start` in
#'   [lmm()], the initial radius is
#'   `min(rhobeg, max(0.02, 0.05 * max(theta0)))` for the moment-based start
#'   `theta0`; from a given start, or lme4's, it is
#'   `min(rhobeg, max(0.01, 0.2 * max(abs(start))))` (minqa's `bobyqa` rule).
#' @param maxfun Largest number of deviance evaluations the optimizer may use.
#' @param optCtrl A list of the optimizer's own settings, named as lme4's
#'   optimizers name them: for `"bobyqa"` `rhobeg`, `rhoend`, `maxfun`,
#'   `iprint`; for `"nloptwrap"` `maxeval` (or `maxfun`, the name lme4's
#'   other optimizers use, which lme4's `nloptwrap` ignores and mixedrs takes
#'   as `maxeval`), `xtol_abs`, `ftol_abs`, `ftol_rel`, `print_level`,
#'   `algorithm` (only `"NLOPT_LN_BOBYQA"`); for
#'   `"Nelder_Mead"` `maxfun`, `verbose`; for a function optimizer anything
#'   (handed to it as its `control`). `iprint`, `print_level` and `verbose`
#'   print the evaluations as `lmm(verbose = )`. A name not listed is an
#'   error naming it.
#' @param calc.derivs Logical: check convergence with finite-difference
#'   gradient and Hessian at the optimum (and polish the optimum when the check
#'   fails, for the engine's BOBYQA) as lme4 does? The derivatives
#'   (`optinfo$derivs`) are taken where the optimizer stopped: when a
#'   residual standard deviation tending to 0 is then followed along its ray
#'   (see `start` in [lmm()]), the estimates are the ray's end and the
#'   derivatives stay those of the optimizer's point, since finite
#'   differences at the ray's end read the criterion's rounding.
#' @param restart_edge Logical, accepted for lme4's sake: the engine always
#'   tries the bound for estimates near it and restarts off the boundary
#'   where that lowers the criterion (`boundary.tol = 0` switches the
#'   boundary try off), so `FALSE` changes nothing and warns that it does not.
#' @param boundary.tol Estimates of `theta` closer than this to their lower
#'   bound are tried on the bound and kept there when that is no worse
#'   (lme4's `restart_edge`/`boundary.tol`). Use `0` to switch off.
#' @param use.last.params Only `FALSE` (lme4's default): the fit is always
#'   finished at the optimum.
#' @param sparseX,standardize.X Only `FALSE`: mixedrs holds `X` dense and
#'   does not rescale it.
#' @param check.nlev.gtr.1 What to do when a grouping factor has only one
#'   level: `"stop"`, `"warning"`, `"message"` or `"ignore"`.
#' @param check.nlev.gtreq.5 What to do when a grouping factor has fewer than
#'   5 levels: `"ignore"` (default), `"warning"`, `"message"` or `"stop"`.
#' @param check.nobs.vs.nlev What to do when a grouping factor has as many
#'   levels as there are observations.
#' @param check.nobs.vs.nRE What to do when a random-effects term has at
#'   least as many random effects as there are observations.
#' @param check.nobs.vs.rankZ Only `"ignore"` (lme4's default): the rank of
#'   `Z` is not computed.
#' @param check.rankX How to treat a rank-deficient fixed-effects matrix:
#'   `"message+drop.cols"` (default), `"silent.drop.cols"`,
#'   `"warn+drop.cols"`, `"stop.deficient"` or `"ignore"` (no check; a
#'   rank-deficient matrix is then an error, as it makes lme4's fit fail).
#' @param check.scaleX What to do when predictors are on very different
#'   scales: `"warning"` (default), `"message"`, `"stop"` or `"ignore"`.
#'   lme4's rescaling levels are an error: mixedrs does not rescale `X`.
#' @param check.formula.LHS Only `"stop"`: a model needs a response.
#' @param check.conv.singular How to report a singular fit: `"message"`
#'   (default), `"warning"`, `"stop"` or `"ignore"`, or lme4's
#'   `list(action = , tol = )` (`tol`: a bounded parameter below it makes the
#'   fit singular, default `1e-4`).
#' @param check.conv.grad How to report a failed gradient check at the
#'   optimum: `"warning"` (default), `"message"`, `"stop"` or `"ignore"`, or
#'   lme4's `list(action = , tol = , relTol = )`.
#' @param check.conv.hess How to report a Hessian at the optimum with
#'   negative eigenvalues (below `-tol`; lme4's "degenerate Hessian"), when
#'   the gradient check computed one: an action as above or
#'   `list(action = , tol = )` (default tolerance `1e-6`). lme4's advice on
#'   very large eigenvalues (rescaling) is not given. The same action reports
#'   a flat direction of the REML criterion that mixedrs finds by the
#'   model's structure: a random-effects term whose columns repeat fixed
#'   effects (`y ~ site + (1 | site)`), whose variance REML cannot estimate.
#' @param grad.tol Tolerance of the gradient check (lme4's default 0.002);
#'   a `tol` in `check.conv.grad` takes precedence.
#' @param threads Number of threads for the linear algebra of the fit
#'   (the dense Cholesky factorization of the crossed random-effects block
#'   and the products that form it): `NULL` (default) uses all cores, or a
#'   positive whole number. Estimates agree for any number of threads up to
#'   rounding error. The count bounds the fit's parallel work; it does not
#'   change any global setting.
#' @return An object of class `"lmmControl"`: a list of the validated
#'   settings (`threads` is stored as an integer, `0` meaning all cores).
#' @seealso [as.function.lmm()] for the deviance function the function
#'   optimizers minimize; [allFit()].
#' @examples
#' lmmControl()
#' ctrl <- lmmControl(check.conv.singular = "ignore", maxfun = 5000)
#' ctrl
#' lmmControl(optimizer = "nloptwrap", optCtrl = list(xtol_abs = 1e-10))
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' # a singular fit, without the "boundary (singular) fit" message
#' fit <- lmm(Yield ~ 1 + (1 | Batch), lme4::Dyestuff2, control = ctrl)
#' isSingular(fit)
#' fit$optinfo$feval   # evaluations used (at most maxfun)
#' # an optimizer function with lme4's calling convention
#' lbfgsb <- function(par, fn, lower, upper, control) {
#'   r <- optim(par, fn, method = "L-BFGS-B", lower = lower, upper = upper)
#'   list(par = r$par, fval = r$value, conv = r$convergence, message = r$message)
#' }
#' fixef(lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy,
#'           control = lmmControl(optimizer = lbfgsb)))
#' # lme4's own control object is translated
#' lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy,
#'     control = lme4::lmerControl(optimizer = "bobyqa"))$optinfo$optimizer
#' @export
lmmControl <- function(optimizer = "bobyqa", rhobeg = 0.5, rhoend = 1e-7,
                       maxfun = 10000L, calc.derivs = TRUE,
                       boundary.tol = 1e-5,
                       check.nlev.gtr.1 = "stop",
                       check.nobs.vs.nlev = "stop",
                       check.nobs.vs.nRE = "stop",
                       check.rankX = c("message+drop.cols", "silent.drop.cols",
                                       "warn+drop.cols", "stop.deficient",
                                       "ignore"),
                       check.scaleX = c("warning", "message", "stop", "ignore"),
                       check.conv.singular = c("message", "warning", "stop",
                                               "ignore"),
                       check.conv.grad = c("warning", "message", "stop", "ignore"),
                       grad.tol = 0.002, threads = NULL, optCtrl = list(),
                       restart_edge = TRUE, use.last.params = FALSE,
                       sparseX = FALSE, standardize.X = FALSE,
                       check.nobs.vs.rankZ = "ignore",
                       check.nlev.gtreq.5 = "ignore",
                       check.formula.LHS = "stop",
                       check.conv.hess = c("warning", "message", "stop", "ignore")) {
  caller <- "lmmControl()"
  list2env(control_options("lmerControl", lmmControl, names(match.call())[-1L]),
           environment())
  opt <- check_optimizer(optimizer, substitute(optimizer), caller)
  common <- lme4_common_settings(
    caller, opt, optCtrl, rhobeg = rhobeg, rhoend = rhoend, maxfun = maxfun,
    calc.derivs = calc.derivs, boundary.tol = boundary.tol,
    restart_edge = restart_edge, use.last.params = use.last.params,
    sparseX = sparseX, standardize.X = standardize.X,
    check.nobs.vs.rankZ = check.nobs.vs.rankZ,
    check.formula.LHS = check.formula.LHS,
    check.conv.singular = check.conv.singular,
    check.conv.grad = check.conv.grad, check.conv.hess = check.conv.hess,
    grad.tol = grad.tol,
    choices = function(arg) eval(formals(lmmControl)[[arg]]))
  levels4 <- c("stop", "warning", "message", "ignore")
  choices <- function(arg) eval(formals(lmmControl)[[arg]])
  structure(
    c(list(optimizer = opt$name),
      common,
      list(
        check.nlev.gtr.1 = match_level(check.nlev.gtr.1, levels4, "check.nlev.gtr.1", caller),
        check.nlev.gtreq.5 = match_level(check.nlev.gtreq.5, levels4,
                                         "check.nlev.gtreq.5", caller),
        check.nobs.vs.nlev = match_level(check.nobs.vs.nlev, levels4, "check.nobs.vs.nlev", caller),
        check.nobs.vs.nRE = match_level(check.nobs.vs.nRE, levels4, "check.nobs.vs.nRE", caller),
        check.rankX = match_level(check.rankX, choices("check.rankX"), "check.rankX", caller),
        check.scaleX = check_scale_level(check.scaleX, choices("check.scaleX"), caller),
        threads = check_threads(threads),
        optimizer_fun = opt$fun
      )),
    class = "lmmControl"
  )
}

#' @method print lmmControl
#' @export
print.lmmControl <- function(x, ...) {
  cat("lmm control settings:\n")
  utils::str(unclass(x), give.head = FALSE, no.list = TRUE)
  invisible(x)
}

#' Control settings for `glmm()`
#'
#' Builds and validates the settings that steer the model checks, the
#' penalized iteratively reweighted least squares (PIRLS) iterations and the
#' optimizers of `glmm()`. The arguments follow the names, meanings and
#' defaults of `lme4::glmerControl()`; the `check.*` and lme4 arguments are
#' those of [lmmControl()], plus `check.response.not.const`, `tolPwrss`,
#' `compDev` and `nAGQ0initStep`. `glmm()` also accepts the object
#' `lme4::glmerControl()` returns and translates it. The data checks of
#' `options(glmerControl = list(...))` are the defaults of the arguments not
#' given, as in `lme4::glmerControl()` (see [lmmControl()]).
#'
#' As `lme4::glmer()`, a GLMM fit has two stages: the first optimizes the
#' covariance parameters `theta` with the fixed effects found inside PIRLS
#' (the `nAGQ = 0` fit), and the second optimizes `theta` and the fixed
#' effects jointly from there (unless `nAGQ = 0`). Where the second stage is
#' the quasi-Newton search with the exact gradient (the default optimizer,
#' `nAGQ = 1`, unstructured terms with at most 1,500 random effects, and a
#' family of [extended_families] or a binomial or Poisson fit whose
#' random-effects system is cheap to invert), it moves `theta` itself from a
#' moment estimate, and by default (`nAGQ0initStep = NULL`) the first stage
#' is left out: the same optimum in fewer evaluations. Unlike for linear mixed models, a grouping factor may have as
#' many levels as there are observations (observation-level random effects),
#' so `check.nobs.vs.nlev` and `check.nobs.vs.nRE` only act when there are
#' more levels, or more random effects, than observations.
#'
#' @param optimizer Optimizers of the two stages: one (used for both) or
#'   two, as a character vector or a list. Each is `"bobyqa"` (Powell's
#'   bound-constrained quadratic-model method), `"nloptwrap"` (the same, with
#'   the stopping rules of lme4's `nloptwrap()`: `ftol_abs = 1e-8`,
#'   `maxeval = 1e5`), `"Nelder_Mead"` (Nelder-Mead simplex), a function
#'   with lme4's calling convention (see [lmmControl()]; given by name, e.g.
#'   lme4's `"nlminbwrap"`, it is looked up as lme4 does), or `"none"`/`NULL`
#'   (no optimization: the stage ends at its start; lme4's `glmer()` has no
#'   such option). Stage 1 optimizes `theta` from lme4's start (or `start`);
#'   stage 2 `c(theta, beta)` from stage 1's result and the fixed effects
#'   PIRLS estimates there (or `start$fixef`). Stages run by a function or
#'   not at all are checked at their end point as the engine's own are
#'   (derivatives for the standard errors, the gradient check after an
#'   optimizer). Note that `lme4::glmerControl()` uses
#'   `c("bobyqa", "Nelder_Mead")` by default.
#' @param rhobeg,rhoend Initial and final trust-region radius of BOBYQA. The
#'   second stage searches every parameter in units of about one standard
#'   error (the fixed effects decorrelated by their first-stage covariance,
#'   each `theta` scaled by the curvature of the deviance along it), so both
#'   radii apply in those units there. A GLMM deviance comes from the
#'   iterative PIRLS solution, accurate to about 1e-8, so radii below the
#'   default `1e-5` would only chase that noise (the deviance changes by
#'   ~1e-10 over such a step).
#' @param maxfun Largest number of deviance evaluations each optimizer stage
#'   may use.
#' @param optCtrl As in [lmmControl()], for the optimizers named.
#' @param calc.derivs Logical: check convergence with a finite-difference
#'   gradient and Hessian at the optimum, as lme4 does?
#' @param boundary.tol Estimates of `theta` closer than this to their lower
#'   bound are tried on the bound and kept there when that is no worse. Use
#'   `0` to switch off.
#' @param tolPwrss Convergence tolerance of PIRLS: the iterations stop when
#'   the relative change of the penalized deviance is below it.
#' @param maxit Largest number of PIRLS iterations per deviance evaluation.
#' @param nAGQ0initStep Logical: run the first (`nAGQ = 0`) optimization
#'   stage to find starting values? The default `NULL` runs it except before
#'   the quasi-Newton second stage (see above); `TRUE` runs it always, as
#'   lme4's default does (and a translated `lme4::glmerControl()` object
#'   asks), `FALSE` never.
#' @param compDev Logical, accepted for lme4's sake (where it chooses between
#'   its compiled and its R deviance code): mixedrs has one, compiled, so the
#'   value changes nothing.
#' @param table.budget.mb For [glmm()] on a database table: the largest size,
#'   in megabytes, of the table's rows grouped by covariate pattern that may
#'   be brought into R (about 8 bytes per column per pattern; the fit needs a
#'   few times that). A table with more patterns is an error saying how many
#'   it has. Default 1024 (1 GiB).
#' @param check.nlev.gtr.1,check.nlev.gtreq.5,check.nobs.vs.nlev,check.nobs.vs.nRE,check.nobs.vs.rankZ,check.rankX,check.scaleX,check.formula.LHS,check.conv.singular,check.conv.grad,check.conv.hess,restart_edge,use.last.params,sparseX,standardize.X
#'   As in [lmmControl()].
#' @param check.response.not.const What to do when the response (as fitted,
#'   e.g. proportions for `cbind()` responses) is constant: `"stop"`
#'   (default), `"warning"`, `"message"` or `"ignore"`.
#' @param grad.tol Tolerance of the gradient check (lme4's default 0.002).
#' @param threads As in [lmmControl()]: `NULL` (all cores) or a positive
#'   whole number of threads for the fit's linear algebra. With random
#'   effects in `ziformula`, [glmm()] searches from three starts, at once on
#'   threads of their own unless `threads = 1` (the estimates are the same
#'   either way). A small model (rows times columns, plus its levels' blocks,
#'   below 3,000) evaluates its points on one thread whatever `threads` says:
#'   there a second thread costs more than it saves.
#' @return An object of class `"glmmControl"`: a list of the validated
#'   settings, with `optimizer` always of length two.
#' @seealso [lmmControl()]
#' @examples
#' glmmControl()
#' glmmControl(optimizer = "Nelder_Mead", maxit = 50)
#' glmmControl(optimizer = c("bobyqa", "Nelder_Mead"), nAGQ0initStep = FALSE)
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' # glmer's default pairing: BOBYQA in the first stage, Nelder-Mead in the second
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp,
#'              control = glmmControl(optimizer = c("bobyqa", "Nelder_Mead")))
#' gfit
#' gfit$optinfo$feval_stages   # evaluations in each stage
#' @export
glmmControl <- function(optimizer = c("bobyqa", "bobyqa"), rhobeg = 0.5,
                        rhoend = 1e-5, maxfun = 10000L, calc.derivs = TRUE,
                        boundary.tol = 1e-5, tolPwrss = 1e-7, maxit = 100L,
                        nAGQ0initStep = NULL,
                        check.nlev.gtr.1 = "stop",
                        check.nobs.vs.nlev = "stop",
                        check.nobs.vs.nRE = "stop",
                        check.rankX = c("message+drop.cols", "silent.drop.cols",
                                        "warn+drop.cols", "stop.deficient",
                                        "ignore"),
                        check.scaleX = c("warning", "message", "stop", "ignore"),
                        check.conv.singular = c("message", "warning", "stop",
                                                "ignore"),
                        check.conv.grad = c("warning", "message", "stop", "ignore"),
                        check.response.not.const = "stop",
                        grad.tol = 0.002, threads = NULL, optCtrl = list(),
                        restart_edge = FALSE, use.last.params = FALSE,
                        sparseX = FALSE, standardize.X = FALSE,
                        check.nobs.vs.rankZ = "ignore",
                        check.nlev.gtreq.5 = "ignore",
                        check.formula.LHS = "stop",
                        check.conv.hess = c("warning", "message", "stop", "ignore"),
                        compDev = TRUE, table.budget.mb = 1024) {
  caller <- "glmmControl()"
  list2env(control_options("glmerControl", glmmControl, names(match.call())[-1L]),
           environment())
  stages <- check_stage_optimizers(optimizer, substitute(optimizer), caller,
                                   parent.frame())
  # The optCtrl names are checked against the stages' optimizers; the
  # settings of the last one named win, as lme4 hands the same optCtrl to
  # both stages.
  common <- NULL
  for (o in stages[!duplicated(vapply(stages, `[[`, "", "name"))]) {
    common <- lme4_common_settings(
      caller, o, optCtrl, rhobeg = rhobeg,
      rhoend = rhoend, maxfun = maxfun, calc.derivs = calc.derivs,
      boundary.tol = boundary.tol, restart_edge = restart_edge,
      use.last.params = use.last.params, sparseX = sparseX,
      standardize.X = standardize.X, check.nobs.vs.rankZ = check.nobs.vs.rankZ,
      check.formula.LHS = check.formula.LHS,
      check.conv.singular = check.conv.singular,
      check.conv.grad = check.conv.grad, check.conv.hess = check.conv.hess,
      grad.tol = grad.tol,
      choices = function(arg) eval(formals(glmmControl)[[arg]]))
  }
  optimizer <- vapply(stages, `[[`, "", "name")
  # NULL when both stages are the engine's own optimizers, else one entry
  # per stage (NULL for a named optimizer).
  optimizer_fun <- if (!all(vapply(stages, function(o) is.null(o$fun), TRUE))) {
    lapply(stages, `[[`, "fun")
  }
  check_positive_number(tolPwrss, "tolPwrss", caller)
  check_count(maxit, "maxit", caller)
  if (!is.null(nAGQ0initStep)) check_flag(nAGQ0initStep, "nAGQ0initStep", caller)
  check_flag(compDev, "compDev", caller)
  check_positive_number(table.budget.mb, "table.budget.mb", caller)
  levels4 <- c("stop", "warning", "message", "ignore")
  choices <- function(arg) eval(formals(glmmControl)[[arg]])
  structure(
    c(list(optimizer = optimizer),
      common,
      list(
        tolPwrss = as.numeric(tolPwrss),
        maxit = as.integer(maxit),
        nAGQ0initStep = nAGQ0initStep,
        compDev = compDev,
        table.budget.mb = as.numeric(table.budget.mb),
        check.nlev.gtr.1 = match_level(check.nlev.gtr.1, levels4,
                                       "check.nlev.gtr.1", caller),
        check.nlev.gtreq.5 = match_level(check.nlev.gtreq.5, levels4,
                                         "check.nlev.gtreq.5", caller),
        check.nobs.vs.nlev = match_level(check.nobs.vs.nlev, levels4,
                                         "check.nobs.vs.nlev", caller),
        check.nobs.vs.nRE = match_level(check.nobs.vs.nRE, levels4,
                                        "check.nobs.vs.nRE", caller),
        check.rankX = match_level(check.rankX, choices("check.rankX"),
                                  "check.rankX", caller),
        check.scaleX = check_scale_level(check.scaleX, choices("check.scaleX"), caller),
        check.response.not.const = match_level(check.response.not.const, levels4,
                                               "check.response.not.const", caller),
        threads = check_threads(threads),
        optimizer_fun = optimizer_fun
      )),
    class = "glmmControl"
  )
}

#' @method print glmmControl
#' @export
print.glmmControl <- function(x, ...) {
  cat("glmm control settings:\n")
  utils::str(unclass(x), give.head = FALSE, no.list = TRUE)
  invisible(x)
}

# Validation helpers shared by lmmControl() and glmmControl(); `caller`
# names the function in the messages.

# The first element of `value` when it is one of `choices`.
match_level <- function(value, choices, name, caller = "lmmControl()") {
  if (!is.character(value) || length(value) < 1L) {
    stop(caller, ": '", name, "' should be one of ",
         paste0("\"", choices, "\"", collapse = ", "), call. = FALSE)
  }
  value <- value[1L]
  if (!value %in% choices) {
    stop(caller, ": '", name, "' should be one of ",
         paste0("\"", choices, "\"", collapse = ", "), ", not \"", value, "\"",
         call. = FALSE)
  }
  value
}

check_positive_number <- function(value, name, caller = "lmmControl()") {
  if (!is.numeric(value) || length(value) != 1L || !is.finite(value) || value <= 0) {
    stop(caller, ": '", name, "' must be a single positive number",
         call. = FALSE)
  }
}

# match.arg() for a character option whose choices are the default of the
# calling function's formal argument, with an error that names the argument
# and the value given (match.arg()'s names neither).
match_choice <- function(arg) {
  name <- deparse(substitute(arg))
  fun <- sys.function(sys.parent())
  choices <- eval(formals(fun)[[name]], envir = parent.frame())
  if (identical(arg, choices)) return(choices[1L])
  i <- if (is.character(arg) && length(arg) == 1L && !is.na(arg)) {
    pmatch(arg, choices)
  } else {
    NA_integer_
  }
  if (is.na(i)) {
    stop("'", name, "' should be one of ", paste(dQuote(choices, FALSE), collapse = ", "),
         "; not ", deparse1(arg), call. = FALSE)
  }
  choices[i]
}

# An error naming the arguments in `...` (as they were written in the call)
# that a method does not use: lme4 warns that they are ignored and goes on,
# which hides a misspelled argument behind a result that was not asked for.
stop_unused <- function(..., caller) {
  if (...length() == 0L) return(invisible(NULL))
  exprs <- as.list(substitute(list(...)))[-1L]
  nms <- names(exprs)
  if (is.null(nms)) nms <- character(length(exprs))
  shown <- vapply(seq_along(exprs), function(i) {
    value <- paste(deparse(exprs[[i]], width.cutoff = 60L, nlines = 1L), collapse = "")
    if (nzchar(nms[i])) paste(nms[i], "=", value) else value
  }, "")
  stop(caller, ": unused argument", if (length(shown) > 1L) "s", " ",
       paste(shown, collapse = ", "), call. = FALSE)
}

check_flag <- function(value, name, caller = NULL) {
  if (!is.logical(value) || length(value) != 1L || is.na(value)) {
    stop(if (!is.null(caller)) paste0(caller, ": "), "'", name,
         "' must be TRUE or FALSE", call. = FALSE)
  }
}

# A single whole number >= 1 (iteration and evaluation limits).
check_count <- function(value, name, caller) {
  if (!is.numeric(value) || length(value) != 1L || !is.finite(value) ||
      value < 1 || value != round(value) || value > .Machine$integer.max) {
    stop(caller, ": '", name, "' must be a single whole number >= 1, not ",
         deparse1(value), call. = FALSE)
  }
}

check_nonnegative_number <- function(value, name, caller) {
  if (!is.numeric(value) || length(value) != 1L || !is.finite(value) ||
      value < 0) {
    stop(caller, ": '", name, "' must be a single non-negative number",
         call. = FALSE)
  }
}

# Acts on a check level from lmmControl(): "stop", "warning", "message" or
# "ignore".
signal_check <- function(level, msg) {
  switch(level,
         stop = stop(msg, call. = FALSE),
         warning = warning(msg, call. = FALSE),
         message = message(msg),
         ignore = invisible(NULL))
}

# The default settings, validated once per session: lmm() and glmm() called
# without `control` take them from here instead of building them again on
# every call (lmmControl() costs about as much as a tenth of a small fit).
default_controls <- new.env(parent = emptyenv())

default_control <- function(kind) {
  # lme4's global defaults (options(lmerControl =), options(glmerControl =))
  # are read by the builders, and not cached.
  option <- switch(kind, lmm = "lmerControl", glmm = "glmerControl")
  if (!is.null(getOption(option))) return(switch(kind, lmm = lmmControl(), glmm = glmmControl()))
  ctl <- default_controls[[kind]]
  if (is.null(ctl)) {
    ctl <- switch(kind, lmm = lmmControl(), glmm = glmmControl())
    assign(kind, ctl, envir = default_controls)
  }
  ctl
}

# lme4's global control defaults: lmerControl() and glmerControl() take the
# data checks (check.* other than check.conv.*, check.rankX, check.scaleX)
# of options("lmerControl") / options("glmerControl") for
# the arguments not given in the call (`given`), and warn about any other
# name there. Returns the settings to use, named as arguments of `builder`.
control_options <- function(option, builder, given) {
  opts <- getOption(option)
  if (is.null(opts)) return(list())
  if (!is.list(opts) || length(opts) == 0L || is.null(names(opts)) ||
      any(!nzchar(names(opts)))) {
    stop("getOption(\"", option, "\") must be a named list of check.* ",
         "settings, as lme4 reads it", call. = FALSE)
  }
  # lme4's checking options: check.* except check.conv.*, check.rankX and
  # check.scaleX.
  usable <- grepl("^check\\.(?!conv|rankX|scaleX)", names(opts), perl = TRUE) &
    names(opts) %in% names(formals(builder))
  if (any(!usable)) {
    warning("some options in getOption(\"", option, "\") are ignored: ",
            paste(names(opts)[!usable], collapse = ", "), " (as lme4, only the ",
            "check.* settings of ", deparse(substitute(builder)), "() other than ",
            "check.conv.*, check.rankX and check.scaleX are used)", call. = FALSE)
  }
  opts[usable & !names(opts) %in% given]
}
