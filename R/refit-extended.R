# refit() and bootmm() of fits with glmmTMB's families, zero inflation or a
# dispersion model: the engine refits the stored design (X, Z, the
# zero-inflation and dispersion matrices, offsets, weights, trials) to a new
# response, starting from the fit's estimates, and the result is assembled as
# the original fit was (R/glmm-extended.R). A fit with random effects in the
# zero-inflation model is refitted from glmm()'s own starts instead, through
# its search from several starts (refit_zi_random()).

# The model inputs of `fit` with the response `y` (as the engine fits it: the
# counts, proportions or successes), in the layout glmm_extended() builds.
extended_inputs <- function(fit, y) {
  list(formula = fit$formula, frame = fit$frame, y = as.double(y), X = fit$X,
       weights = fit$extended$prior_weights,
       offset = if (isTRUE(fit$has_offset)) fit$offset,
       reterms = fit$reterms, flist = fit$flist, na.action = fit$na.action,
       n_trials = fit$extended$n_trials)
}

# `fit` refitted to the response `y`; `extra_start` etc. from the fit.
refit_extended <- function(fit, y, control = NULL, verbose = 0L) {
  ext <- fit$extended
  if (is.null(control)) control <- control_of(fit, parent.frame())
  control <- as_fit_control(control, "glmm")
  y <- as.double(y)
  if (length(y) != length(fit$y) || anyNA(y)) {
    stop("the new response must have one non-missing value per observation of the fit (",
         length(fit$y), ")", call. = FALSE)
  }
  check_refit_response(y, ext)
  inputs <- extended_inputs(fit, y)
  style <- ext$style
  family <- if (style == "glmer.nb") nb_engine_family(fit$family$link) else fit$family
  if (has_zi_random(fit)) {
    return(refit_zi_random(fit, inputs, family, control, verbose, parent.frame()))
  }
  engine_family <- extended_engine_family(fit)
  X <- fit$X
  X <- double_storage(X)
  nAGQ <- fit$nAGQ
  # PIRLS starts from the new response's own starting means, as a fresh fit of
  # it would (the fit's predictor holds random effects of another response;
  # from there a Poisson refit's first step can overflow); the covariance
  # parameters and fixed effects start from the fit's estimates.
  eta_start <- response_eta_start(fit, family, y)
  if (length(eta_start) != length(fit$eta)) eta_start <- fit$eta
  eta_start <- ifelse(is.finite(eta_start), eta_start, fit$eta)
  raw <- glmm_extended_fit_rs(
    y, X, ncol(X), as.double(inputs$weights),
    if (is.null(inputs$offset)) NULL else as.double(inputs$offset),
    engine_terms(inputs), engine_family, as.double(inputs$n_trials),
    as.double(eta_start), nAGQ, as.double(cov_par(fit)), as.double(fit$beta),
    unclass(control), verbose)
  strip <- function(p) {
    if (!is.null(p)) p[intersect(c("formula", "terms", "X", "offset", "xlevels", "contrasts",
                                   "fixed_theta"), names(p))]
  }
  out <- extended_object(fit$call, inputs, raw, family, nAGQ, control,
                         strip(ext$zi), strip(ext$disp), style)
  out$y <- y
  out
}

# refit() of a fit with random effects in the zero-inflation model: the fit
# glmm_extended() makes of the same model and data with the response
# `inputs$y`, from the same starts -- PIRLS from the new response's starting
# means, the family's parameters from their moment starts, the covariance
# parameters and fixed effects from the call's `start` (else lme4's) -- and
# through the same search from several starts (zi_random_fit_raw(); a refit that
# started from the fit's estimates could stop on another of the optima that
# function is there to choose between). `env`: where the call's `start` is
# evaluated first.
refit_zi_random <- function(fit, inputs, family, control, verbose, env) {
  ext <- fit$extended
  name <- ext$family
  inputs$etastart <- response_eta_start(fit, family, inputs$y)
  nAGQ <- fit$nAGQ
  start <- check_glmm_start(start_of(fit, env), inputs, nAGQ)
  strip <- function(p) {
    if (!is.null(p)) p[intersect(c("formula", "full_formula", "terms", "X", "offset",
                                   "xlevels", "contrasts"), names(p))]
  }
  zi <- strip(ext$zi)
  disp <- strip(ext$disp)
  zr <- ext$zi$random
  zi_random <- list(reterms = zr$reterms, flist = zr$flist)
  engine_family <- extended_engine_family(fit)
  engine_family$start <- as.double(c(
    if (!is.null(disp)) dispersion_start(name, inputs, disp),
    zero_inflation_start(inputs, zi)))
  run_engine <- extended_engine_runner(inputs, nAGQ, verbose)
  raw <- zi_random_fit_raw(run_engine, inputs, zi_random, engine_family, start, control)
  parts <- split_zi_random(raw, inputs, zi_random)
  out <- extended_object(fit$call, inputs, parts$raw, family, nAGQ, control, zi, disp,
                         ext$style, zi_random = parts$zi)
  if (!is.null(raw$zi_start_note)) warning(raw$zi_start_note, call. = FALSE)
  out$y <- inputs$y
  out
}

# The starting linear predictor of a fit of `fit`'s model to the response `y`,
# as lmm_inputs() takes it from extended_response_fun() (a 'mustart' or
# 'etastart' of the call is not carried by the fit: refits start from the
# response's own).
response_eta_start <- function(fit, family, y) {
  # the engine's response in the frame's form: cbind(successes, failures),
  # or proportions of the trials given as weights (betabinomial)
  written <- response_values(fit$frame)
  n_trials <- fit$extended$n_trials
  if (is.matrix(written) && ncol(written) == 2L) {
    y <- cbind(y, n_trials - y)
  } else if (identical(fit$extended$family, "betabinomial")) {
    y <- y / n_trials
  }
  frame <- refit_frame(fit, y)
  resp <- extended_response_fun(family, "ignore")(frame, frame_weights(frame, zero_ok = TRUE),
                                                  list())
  resp$etastart
}

# The `start` argument of the fit's call, evaluated again (as control_of()
# evaluates its control), or NULL when the call has none.
start_of <- function(fit, env) {
  expr <- fit$call$start
  if (is.null(expr)) return(NULL)
  for (e in list(env, environment(fit$formula), globalenv())) {
    if (!is.environment(e)) next
    val <- tryCatch(list(eval(expr, e)), error = function(err) NULL)
    if (!is.null(val)) return(val[[1L]])
  }
  stop("refit(): could not evaluate the fit's 'start' argument (", deparse1(expr),
       "), which a refit of a model with random effects in 'ziformula' starts from",
       call. = FALSE)
}

# The new response checked as extended_response() checks the data's.
check_refit_response <- function(y, ext) {
  if (ext$family %in% c("nbinom1", "nbinom2", "poisson", "betabinomial") &&
      (any(y < 0) || any(abs(y - round(y)) > 1e-8))) {
    stop("the new response of a ", ext$family, " fit must be non-negative whole numbers",
         call. = FALSE)
  }
  if (ext$family == "betabinomial" && any(y > ext$n_trials)) {
    stop("the new response has more successes than trials", call. = FALSE)
  }
  if (ext$family == "beta" && any(y <= 0 | y >= 1)) {
    stop("the new response of a beta fit must lie strictly between 0 and 1", call. = FALSE)
  }
  if (ext$family == "Gamma" && any(y <= 0)) {
    stop("the new response of a Gamma fit must be positive", call. = FALSE)
  }
  invisible(NULL)
}

# The parametric bootstrap of an extended fit: `nsim` responses drawn by
# simulate() (new random effects, as glmmTMB's simulate), each refitted; the
# statistic `stat` of each refit. Returns what boot_object() reads.
boot_run_extended <- function(x, nsim, stat, k, report) {
  sims <- stats::simulate(x, nsim = nsim)
  t <- matrix(NA_real_, nsim, k)
  errors <- character(0)
  reps <- vector("list", nsim)
  for (i in seq_len(nsim)) {
    y <- sims[[i]]
    if (is.matrix(y)) y <- y[, 1L]
    fit_i <- tryCatch(suppressWarnings(refit_extended(x, y)), error = function(e) e)
    if (inherits(fit_i, "error")) {
      errors <- c(errors, conditionMessage(fit_i))
      reps[[i]] <- list(error = conditionMessage(fit_i))
    } else {
      t[i, ] <- stat(fit_i)
      reps[[i]] <- list(theta = fit_i$theta, beta = fit_i$beta, sigma = NA_real_,
                        objective = unname(fit_i$devcomp$cmp[["dev"]]))
    }
    report(i, t[i, ])
  }
  list(t = t, msgs = list(error = errors),
       replicates = reps)
}
