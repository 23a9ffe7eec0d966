# The parts of a fitted-model object that linear and generalized linear mixed
# models share: their class, the call and the data as the model saw them, the
# estimates in lme4's layout, and the optimizer's record.

# Class of a fit: "lmm" or "glmm", then the common parent "mixedrs_fit" that
# carries the methods both kinds share (R/methods.R); class-specific methods
# (R/methods.R for "lmm", R/glmm-methods.R for "glmm") come first in dispatch.
fit_class <- function(kind) {
  c(kind, "mixedrs_fit")
}

# The conditional modes of each term (the engine's level-major vectors `b`)
# as levels x coefficients matrices, named by the grouping factor.
term_modes <- function(reterms, b) {
  out <- lapply(seq_along(reterms), function(i) {
    t <- reterms[[i]]
    matrix(b[[i]], nrow = nlevels(t$factor), byrow = TRUE,
           dimnames = list(levels(t$factor), t$cnms))
  })
  names(out) <- vapply(reterms, `[[`, "", "group")
  out
}

# The optimizer's parameters of a fit, named: lme4 2.x's `par` for a model
# with structured terms, otherwise theta itself.
fit_par <- function(raw, reterms, theta) {
  if (is.null(raw$par) || !has_structured_terms(reterms)) return(theta)
  stats::setNames(raw$par, par_names(reterms))
}

# lme4's devcomp of a linear mixed model (cmp and dims) from the engine's
# result on n observations and p fixed effects.
lmm_devcomp <- function(raw, n, p, REML, n_theta, n_terms) {
  cmp <- c(ldL2 = raw$ldL2, ldRX2 = raw$ldRX2, wrss = raw$wrss,
           ussq = raw$ussq, pwrss = raw$pwrss, drsum = NA,
           REML = if (REML) raw$reml_crit else NA,
           dev = if (REML) NA else raw$deviance_ml,
           sigmaML = sqrt(raw$pwrss / n), sigmaREML = sqrt(raw$pwrss / (n - p)),
           tolPwrss = NA)
  dims <- c(N = n, n = n, p = p, nmp = n - p, nth = n_theta,
            q = length(raw$u), nAGQ = NA, compDev = 1L, useSc = 1L,
            reTrms = n_terms, REML = if (REML) p else 0L,
            GLMM = 0L, NLMM = 0L)
  list(cmp = cmp, dims = dims)
}

# Common elements of "lmm" and "glmm" objects from the model inputs (see
# lmm_inputs()) and the Rust engine's result.
fit_parts <- function(mc, inputs, raw) {
  X <- inputs$X
  n <- nrow(X)
  reterms <- inputs$reterms
  layout <- theta_layout(reterms)
  theta <- stats::setNames(raw$theta, layout$names)
  b <- term_modes(reterms, raw$b)
  parts <- list(
    call = mc,
    formula = inputs$formula,
    frame = inputs$frame,
    X = X,
    y = inputs$y,
    weights = if (is.null(inputs$weights)) rep(1, n) else inputs$weights,
    offset = if (is.null(inputs$offset)) rep(0, n) else inputs$offset,
    has_weights = !is.null(mc$weights),
    has_offset = !is.null(inputs$offset),
    reterms = reterms,
    flist = inputs$flist,
    theta = theta,
    par = fit_par(raw, reterms, theta),
    lower = stats::setNames(layout$lower, layout$names),
    beta = stats::setNames(raw$beta, colnames(X)),
    b = b,
    u = raw$u,
    na.action = inputs$na.action
  )
  # A formula with `.`: the formula the model was built from (see model_formula()).
  if (!is.null(inputs$model_formula) && !identical(inputs$model_formula, inputs$formula)) {
    parts$model_formula <- inputs$model_formula
  }
  parts
}

# The formula a fit's model was built from: its formula, with a `.` written
# out as the data's other columns where it had one (expand_dot()). The
# methods that rebuild the designs (predictions, terms, tests) read this one;
# formula() shows the formula as written, as lme4's does.
model_formula <- function(fit) {
  if (is.null(fit$model_formula)) fit$formula else fit$model_formula
}

# The p x p (R_X'R_X)^-1 from the engine, with X's column names.
unscaled_vcov <- function(values, X) {
  p <- ncol(X)
  matrix(values, p, p, dimnames = list(colnames(X), colnames(X)))
}

# lme4's optinfo from the engine's stage summaries (a list of one or two):
# evaluations summed, the last stage's code and message, the derivatives at
# the optimum and the convergence messages (singular fit first). `starts`: how
# many starting points each stage was run from (an LMM is also run from lme4's
# start when its moment start or optimum is near the boundary, or it is small).
optimizer_record <- function(optimizer, stages, pars, gradient, hessian,
                             grad_messages, singular) {
  stages <- stages[!vapply(stages, is.null, NA)]
  last <- stages[[length(stages)]]
  k <- length(gradient)
  messages <- c(if (isTRUE(singular)) "boundary (singular) fit: see help('isSingular')",
                grad_messages)
  feval <- vapply(stages, function(s) as.integer(s$feval), 1L)
  list(
    optimizer = optimizer,
    feval = sum(feval),
    feval_stages = feval,
    starts = vapply(stages, function(s) max(1L, as.integer(s$starts)), 1L),
    conv = list(opt = last$code, lme4 = list(messages = messages)),
    message = last$message,
    warnings = list(),
    derivs = if (k) {
      list(gradient = gradient,
           Hessian = if (length(hessian)) matrix(hessian, k, k) else NULL)
    },
    val = unname(pars),
    start = stages[[1L]]$start,
    singular = isTRUE(singular),
    residual_limit = isTRUE(last$residual_limit),
    grad_messages = as.character(grad_messages)
  )
}

# The model list the Rust engine takes, list(y, X, p, weights, offset, terms)
# (response, X, p, prior weights, offset, random-effects terms), rebuilt from a fitted "lmm" or "glmm" object so that
# methods can call the engine again (conditional variances, profiles, degrees
# of freedom, bootstrap refits). Weights and offset are NULL when the fit had
# none (lmm) so the engine sees exactly what it saw when fitting.
fit_engine_inputs <- function(fit) {
  if (is_sums_fit(fit)) return(sums_model_list(fit))
  X <- fit$X
  X <- double_storage(X)
  inputs <- list(reterms = fit$reterms, flist = fit$flist)
  glmm_fit <- inherits(fit, "glmm")
  list(
    y = as.double(fit$y),
    X = X,
    p = ncol(X),
    weights = if (glmm_fit || isTRUE(fit$has_weights)) as.double(fit$weights),
    offset = if (isTRUE(fit$has_offset)) as.double(fit$offset),
    terms = engine_terms(inputs)
  )
}
