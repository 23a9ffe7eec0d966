# The deviance function of a linear mixed model (lme4's devFunOnly = TRUE and
# as.function() of a fit), and the fits whose optimizer runs on it rather
# than in the engine: Nelder-Mead, a user's optimizer function, no
# optimization. The engine behind the function is built once (cross-products,
# symbolic factorization) and kept in an external pointer.

# The engine's model list from lmm()'s inputs.
lmm_model_list <- function(inputs) {
  if (!is.null(inputs$sums)) return(sums_model_list(inputs))
  X <- inputs$X
  X <- double_storage(X)
  list(y = as.double(inputs$y), X = X, p = ncol(X),
       weights = if (!is.null(inputs$weights)) as.double(inputs$weights),
       offset = if (!is.null(inputs$offset)) as.double(inputs$offset),
       terms = engine_terms(inputs))
}

# The deviance function of θ (the optimizer's parameters `par` for a model
# with structured terms): the REML criterion or the ML deviance, as lme4's
# devfun. Its environment holds the bounds and lme4's start.
make_lmm_devfun <- function(model, reterms, REML, threads) {
  engine <- lmm_devfun_rs(model, REML, as.integer(threads))
  bounds <- devfun_bounds(reterms)
  moment <- lmm_moment_start(model$y, reterms, bounds$lower)
  if (!is.null(moment)) bounds$start[] <- moment
  devfun_closure(engine, lmm_devfun_eval_rs, "theta", bounds,
                 list(REML = REML))
}

# The bounds and lme4's start of the covariance parameters, named.
devfun_bounds <- function(reterms) {
  layout <- covariance_layout(reterms)
  start <- unlist(lapply(layout, `[[`, "start"))
  names(start) <- par_names(reterms, layout)
  list(lower = unlist(lapply(layout, `[[`, "lower")),
       upper = unlist(lapply(layout, `[[`, "upper")), start = start)
}

# lme4's start for a model whose terms are all random intercepts of distinct
# grouping factors (mkLmerDevfun()): theta_k = sqrt(v_k / v_e), with v_k the
# variance of the response's group means over factor k (each row carrying
# its group's mean) and v_e the response's variance less their sum; NULL
# (the start of 1s) for other models, where v_e is not positive or a ratio
# falls below its bound.
lmm_moment_start <- function(y, reterms, lower) {
  if (is.null(y) || length(reterms) != length(lower)) return(NULL)
  scalar <- vapply(reterms, function(rt) {
    is.null(rt$structure) && identical(rt$cnms, "(Intercept)")
  }, logical(1))
  groups <- vapply(reterms, `[[`, "", "group")
  if (!all(scalar) || anyDuplicated(groups)) return(NULL)
  v <- vapply(reterms, function(rt) stats::var(stats::ave(y, rt$factor)), double(1))
  v_e <- stats::var(y) - sum(v)
  if (is.na(v_e) || v_e <= 0 || any(v / v_e < lower^2)) return(NULL)
  sqrt(v / v_e)
}

# A deviance function of one numeric vector (named `arg` in its errors)
# evaluated by `deviance_at(engine, x)`; its environment holds the engine,
# the bounds, lme4's start and `extra` (what lme4's devfun environments hold
# of the same name).
devfun_closure <- function(engine, deviance_at, arg, bounds, extra) {
  env <- list2env(c(list(engine = engine, deviance_at = deviance_at, arg = arg),
                    bounds, extra), parent = baseenv())
  devfun <- function(x) {
    if (!is.numeric(x)) stop("'", arg, "' must be numeric", call. = FALSE)
    deviance_at(engine, as.double(x))
  }
  # the argument named as lme4 names it (devfun(theta = ...) works)
  body(devfun) <- do.call(substitute, list(body(devfun), stats::setNames(list(as.name(arg)), "x")))
  formals(devfun) <- stats::setNames(formals(devfun), arg)
  environment(devfun) <- env
  devfun
}

# A fit whose optimizer is not the engine's BOBYQA: "Nelder_Mead" and "none"
# run in the engine on the deviance function; a function optimizer runs in R
# on it. The fit is then finished at the parameters found, with the same
# checks as the engine's own optimization.
lmm_devfun_fit <- function(inputs, REML, control, start, verbose) {
  devfun <- make_lmm_devfun(lmm_model_list(inputs), inputs$reterms, REML,
                            control$threads)
  env <- environment(devfun)
  par0 <- if (is.null(start)) unname(env$start) else start
  ctl <- unclass(control)
  name <- control$optimizer
  if (!is.null(control$optimizer_fun)) {
    fn <- traced_devfun(devfun, verbose, "theta")
    r <- run_optimizer_fun(control$optimizer_fun, name, fn, par0, env$lower,
                           env$upper, control$optCtrl)
    lmm_devfun_fit_rs(env$engine, "none", r$par, ctl,
                      list(code = r$conv, message = r$message, feval = r$feval), 0L)
  } else if (identical(name, "Nelder_Mead")) {
    lmm_devfun_fit_rs(env$engine, "Nelder_Mead", par0, ctl,
                      list(code = 0L, message = "", feval = 0L), verbose)
  } else {
    # As lme4's optimizer = NULL: no derivatives, so no convergence checks
    # beyond the singular one.
    ctl$calc.derivs <- FALSE
    lmm_devfun_fit_rs(env$engine, "none", par0, ctl,
                      list(code = 1000L, message = "no optimization", feval = 0L), 0L)
  }
}

# `devfun` printing each evaluation as lme4's verbose trace does (verbose > 0);
# `label` names the argument.
traced_devfun <- function(devfun, verbose, label) {
  if (verbose <= 0L) return(devfun)
  count <- 0L
  function(x) {
    value <- devfun(x)
    count <<- count + 1L
    cat(sprintf("iteration: %d\n\tf(x) = %f\n\t%s = %s\n", count, value, label,
                paste(sprintf("%f", x), collapse = " ")))
    value
  }
}

# A GLMM fit with a stage whose optimizer is not one of the engine's: a
# function optimizer runs in R on the stage's deviance function, "none"
# leaves the stage's parameters at its start, and a named optimizer runs in
# the engine on the same function. Stage 1 optimizes theta from lme4's start
# (or `start`), stage 2 c(theta, beta) from stage 1's result; the fit is then
# finished at the end point with the engine's checks.
glmm_devfun_fit <- function(inputs, family, nAGQ, control, start, verbose) {
  engine_control <- glmm_engine_control(control)
  devfun <- make_glmm_devfun(inputs, family, nAGQ, control)
  env <- environment(devfun)
  theta <- if (is.null(start$theta)) unname(env$start) else start$theta
  run_stage <- function(stage, par0) {
    name <- control$optimizer[stage]
    fun <- control$optimizer_fun[[stage]]
    if (!is.null(fun)) {
      k <- seq_along(par0)
      r <- run_optimizer_fun(fun, name, traced_devfun(devfun, verbose, if (stage == 1L) "theta" else "pars"),
                             par0, env$lower[k], env$upper[k], control$optCtrl)
      list(par = r$par, record = list(start = par0, theta = r$par, feval = r$feval,
                                      starts = 1L, code = r$conv, message = r$message))
    } else if (identical(name, "none")) {
      list(par = par0, record = list(start = par0, theta = par0, feval = 0L, starts = 1L,
                                     code = 1000L, message = "no optimization"))
    } else {
      rec <- glmm_devfun_optimize_rs(env$engine, name, par0, engine_control, verbose)
      list(par = rec$theta, record = rec)
    }
  }
  records <- list(NULL, NULL)
  beta <- glmm_devfun_stage_rs(env$engine, 1L, theta)
  if (!isFALSE(control$nAGQ0initStep) || nAGQ == 0L) {
    r <- run_stage(1L, theta)
    theta <- r$par
    records[[1L]] <- r$record
  }
  if (nAGQ == 0L) {
    pars <- theta
  } else {
    beta <- glmm_devfun_stage_rs(env$engine, 2L, theta)
    if (!is.null(start$fixef)) beta <- start$fixef
    r <- run_stage(2L, c(theta, beta))
    pars <- r$par
    records[[2L]] <- r$record
  }
  last <- if (nAGQ == 0L) 1L else 2L
  raw <- glmm_devfun_fit_rs(env$engine, pars, engine_control,
                            !identical(control$optimizer[last], "none"))
  raw$stage1 <- records[[1L]]
  raw$stage2 <- records[[2L]]
  raw
}

#' The deviance function of a fitted mixed model
#'
#' Returns the function that `lmm(..., devFunOnly = TRUE)` returns for the
#' fit's model: the profiled REML criterion (for a REML fit) or the ML
#' deviance of the relative covariance parameters `theta`, the values
#' lme4's deviance function (`lme4::lmer(..., devFunOnly = TRUE)`,
#' `as.function()` of a `merMod`) gives. Each call refactors the engine's
#' blocked Cholesky factor, built once with the function; it is what the
#' optimizer functions of [lmmControl()] minimize.
#'
#' For a `"glmm"` fit it is the function `glmm(..., devFunOnly = TRUE)`
#' returns: the Laplace (or adaptive quadrature) deviance of `c(theta, beta)`,
#' or for an `nAGQ = 0` fit the criterion of `theta` with the fixed effects
#' estimated inside PIRLS, as lme4's `glmer(..., devFunOnly = TRUE)`; each
#' call runs PIRLS from the fit's linear predictor.
#'
#' The function's environment holds `lower` and `upper` (the bounds of
#' `theta`), `start` (lme4's start) and `REML`; nothing else of it is part of
#' the interface. For a model with structured covariance terms the argument
#' is the parameter vector `par` of [lmm()] instead of `theta`.
#'
#' @param x A fit from [lmm()] or [glmm()].
#' @param ... Not used; an error when given.
#' @return A function of one numeric vector returning one number (`Inf`
#'   where the criterion cannot be evaluated).
#' @seealso [lmm()] with `devFunOnly = TRUE`, [lmmControl()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("sleepstudy", package = "lme4")
#' fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
#' dd <- as.function(fit)
#' dd(fit$theta)
#' fit$devcomp$cmp[["REML"]]
#' dd(c(1, 0, 1))
#' environment(dd)$lower
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' gd <- as.function(gfit)
#' gd(c(gfit$theta, fixef(gfit)))   # the Laplace deviance at the estimates
#' @export
as.function.lmm <- function(x, ...) {
  stop_unused(..., caller = "as.function()")
  make_lmm_devfun(fit_engine_inputs(x), x$reterms, isTRUE(x$REML), 0L)
}

#' @rdname as.function.lmm
#' @export
as.function.glmm <- function(x, ...) {
  stop_unused(..., caller = "as.function()")
  require_rows(x, "as.function()")
  require_classic_family(x, "as.function()")
  inputs <- list(y = x$y, X = x$X, weights = x$weights,
                 offset = if (isTRUE(x$has_offset)) x$offset,
                 reterms = x$reterms, flist = x$flist,
                 n_trials = x$n_trials, etastart = x$eta)
  make_glmm_devfun(inputs, x$family, as.integer(x$nAGQ), control_of(x, parent.frame()))
}

# The glmmControl as the engine reads it: a stage optimizer that is not one of
# the engine's (a function, "none") runs in R, so the engine is told BOBYQA
# there, which it never runs.
glmm_engine_control <- function(control) {
  control <- unclass(control)
  builtin <- control$optimizer %in% c("bobyqa", "nloptwrap", "Nelder_Mead")
  control$optimizer <- ifelse(builtin, control$optimizer, "bobyqa")
  control
}

# glmm(devFunOnly = TRUE): the stage-1 criterion of theta (nAGQ = 0) or the
# stage-2 criterion of c(theta, beta), as lme4's glmer returns them; the
# engine is built once and kept.
make_glmm_devfun <- function(inputs, family, nAGQ, control) {
  model <- lmm_model_list(inputs)
  model$weights <- as.double(inputs$weights)
  p <- ncol(inputs$X)
  engine <- glmm_devfun_rs(model, family$family, family$link,
                           as.double(inputs$n_trials), as.double(inputs$etastart),
                           nAGQ, glmm_engine_control(control))
  bounds <- devfun_bounds(inputs$reterms)
  if (nAGQ > 0L) {
    bounds$lower <- c(bounds$lower, rep(-Inf, p))
    bounds$upper <- c(bounds$upper, rep(Inf, p))
  }
  devfun_closure(engine, glmm_devfun_eval_rs, if (nAGQ > 0L) "pars" else "theta", bounds,
                 list(nAGQ = nAGQ))
}
