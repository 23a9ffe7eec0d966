# refit() and bootmm() of fits with glmmTMB's families, zero inflation or a
# dispersion model: the engine refits the stored design (X, Z, the
# zero-inflation and dispersion matrices, offsets, weights, trials) to a new
# response, starting from the fit's estimates, and the result is assembled as
# the original fit was (R/glmm-extended.R).

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
  require_no_zi_random(fit, "refit()")
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
  family <- if (style == "glmer.nb") extended_family("nbinom2") else fit$family
  if (style == "glmer.nb" && fit$family$link != "log") {
    lk <- stats::make.link(fit$family$link)
    family[c("link", "linkfun", "linkinv", "mu.eta", "valideta")] <-
      list(fit$family$link, lk$linkfun, lk$linkinv, lk$mu.eta, lk$valideta)
  }
  engine_family <- extended_engine_family(fit)
  X <- fit$X
  storage.mode(X) <- "double"
  nAGQ <- fit$nAGQ
  # The linear predictor of the fit starts PIRLS (valid for any response).
  raw <- glmm_extended_fit_rs(
    y, X, ncol(X), as.double(inputs$weights),
    if (is.null(inputs$offset)) NULL else as.double(inputs$offset),
    engine_terms(inputs), engine_family, as.double(inputs$n_trials),
    as.double(fit$eta), nAGQ, as.double(cov_par(fit)), as.double(fit$beta),
    unclass(control), verbose)
  strip <- function(p) if (!is.null(p)) p[c("formula", "terms", "X", "offset", "xlevels", "contrasts")]
  out <- extended_object(fit$call, inputs, raw, family, nAGQ, control,
                         strip(ext$zi), strip(ext$disp), style)
  out$y <- y
  out
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
  require_no_zi_random(x, "bootmm()")
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
