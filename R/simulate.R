# Simulation of responses from fitted "lmm" and "glmm" objects with lme4's
# semantics (simulate.merMod) and lme4's order of random number draws, so
# that the same seed gives the same simulated responses: first the spherical
# random effects u ~ N(0, I) of the terms not conditioned on (one block of
# rnorm() per simulation, terms in lme4's order for the data simulated for),
# mapped to b = Lambda(theta) u; then the responses, drawn in one call per
# family for all simulations. The prediction machinery (terms, new data,
# levels) is that of R/predict.R.

#' Simulate responses from a fitted mixed model
#'
#' Draws `nsim` sets of responses from the fitted model, as lme4's
#' `simulate()` does for `lmer()` and `glmer()` fits, with the same random
#' number draws: for the same `seed`, the results equal lme4's up to the
#' differences between the two fits' estimates.
#'
#' With `re.form = NA` (the default, or `~0`) new random effects are drawn
#' for every term from their estimated distribution (`b = Lambda u`,
#' `u ~ N(0, I)`; for linear mixed models scaled by `sigma`). With
#' `re.form = NULL` the simulations are conditional on the estimated
#' conditional modes of all terms; a formula of some of the model's terms
#' conditions on those and draws the others afresh.
#'
#' The responses are then drawn given the linear predictor: for linear mixed
#' models normal errors with standard deviation `sigma / sqrt(w)` for prior
#' weights `w`; for GLMMs from the family: binomial (counts out of the prior
#' weights, returned as proportions, as a two-column matrix of successes and
#' failures per simulation for a `cbind()` response, or as a factor for a
#' factor response), Poisson, Gamma (shape `w / sigma^2`), inverse Gaussian
#' (shape `w / sigma^2`; needs the statmod package) and Gaussian with a
#' non-identity link (standard deviation `sigma / sqrt(w)`).
#'
#' Negative binomial fits of `glmm.nb()` are simulated as lme4 simulates
#' `glmer.nb()` fits (`rnbinom()` with size theta). Fits in glmmTMB's
#' parameterisation (families [nbinom2()], [nbinom1()], [beta_family()],
#' [betabinomial()], or a `ziformula` or `dispformula`) are simulated as
#' glmmTMB's `simulate()` does, with its random number draws: for each
#' simulation the random effects of the terms not conditioned on (terms in
#' formula order), then observation by observation the response given the
#' conditional mean and dispersion (nbinom2 variance `mu (1 + mu / theta)`,
#' nbinom1 `mu (1 + phi)`, beta shapes `mu phi` and `(1 - mu) phi`,
#' betabinomial `rbinom()` of a beta-distributed probability, gaussian
#' variance `phi`, Gamma shape `phi`) and, with zero-inflation, a zero with
#' the zero-inflation probability. So for the same seed and parameters the
#' draws equal glmmTMB's (with `re.form = NA`, its only choice). Binomial and
#' betabinomial responses of such fits come as two-column matrices of
#' successes and failures, as glmmTMB returns them; prior weights play no
#' part (as in glmmTMB), so `weights` is an error for them, and so is
#' `newdata` when the zero-inflation or dispersion formula has variables.
#'
#' With random effects in the zero-inflation model (`ziformula = ~ x + (1 |
#' g)`), `re.form = NA` (the default) draws them as glmmTMB does: in each
#' simulation after those of the conditional model, term by term in the
#' order of `ziformula`, so that the draws equal glmmTMB's for the same seed
#' and parameters; `re.form = NULL` holds both models' random effects at
#' their conditional modes; other `re.form` are an error. `newdata` is then
#' taken also when `ziformula` has variables (its fixed part is evaluated on
#' `newdata`, its grouping factors need levels of the fit unless
#' `allow.new.levels`); a dispersion formula with variables is still an
#' error. `newparams` replaces the conditional model's parameters only.
#'
#' Differences from lme4 1.1-31, on purpose: prior weights of linear mixed
#' models set the residual standard deviation (lme4 ignores them); the Gamma
#' and inverse Gaussian shapes are `w / sigma^2` (lme4 1.1-31 uses
#' `w * sigma` and `w / sigma`, which its maintainers have since recognised
#' as wrong); the random number state is restored after a simulation with a
#' `seed`, and the `"seed"` attribute holds `seed` with its `RNGkind()`, as
#' [stats::simulate()] does (lme4 stores `.Random.seed`).
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param nsim Number of simulations (a positive whole number).
#' @param seed `NULL` or an integer for [set.seed()]; as [stats::simulate()].
#' @param re.form Random effects to condition on: `NA` or `~0` (none: all
#'   are drawn afresh, the default), `NULL` (all), or a formula of some of
#'   the model's terms (see [predict.lmm()]).
#' @param newdata Optional data frame to simulate for (default: the data the
#'   model was fitted to). Rows with missing values in the fixed-effects
#'   variables are left out.
#' @param allow.new.levels Logical: allow levels of grouping factors that
#'   were not in the fitting data (as in lme4, needed even for the terms
#'   whose random effects are drawn afresh)?
#' @param weights Optional prior weights of the simulated observations
#'   (number of trials for binomial models): one number for all of them or
#'   one per observation. Default: the fit's prior
#'   weights; for `newdata` 1, except for a binomial `cbind()` response,
#'   whose number of trials is taken from the response variables in
#'   `newdata`.
#' @param use.u Logical, lme4's older way to say `re.form = NULL` (`TRUE`)
#'   or `re.form = NA` (`FALSE`); give at most one of the two.
#' @param newparams Optional list of parameter values to simulate at instead
#'   of the estimates, as lme4's `newparams`: `beta`, `theta` and, for
#'   models with a scale parameter, `sigma` (see [predict.lmm()] for their
#'   layout; conditional modes used with `re.form` are `Lambda(theta) u`
#'   with the fit's spherical modes `u`). Elements left out are taken from
#'   the fit, with a warning.
#' @param ... Further arguments: lme4's `family`, `na.action`, `formula`,
#'   `offset`, `cond.sim` and the old spellings `ReForm`, `REForm`, `REform`
#'   of `re.form` are errors, and so is any other (lme4 ignores those with a
#'   warning, which hides a misspelled argument).
#' @return A data frame with one column per simulation, named `sim_1`,
#'   `sim_2`, ... (each a two-column matrix for a binomial `cbind()`
#'   response), rows named as the model frame or `newdata`, padded with `NA`
#'   rows when the fit used `na.action = na.exclude`; attribute `"seed"` as
#'   [stats::simulate()].
#' @seealso [predict.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("sleepstudy", package = "lme4")
#' fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
#' sims <- simulate(fit, nsim = 3, seed = 1)
#' head(sims)
#' # conditional on the subjects' estimated random effects
#' head(simulate(fit, seed = 1, re.form = NULL))
#'
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' s <- simulate(gfit, nsim = 2, seed = 1)
#' head(s$sim_1)
#' @importFrom stats simulate
#' @method simulate lmm
#' @export
simulate.lmm <- function(object, nsim = 1, seed = NULL, re.form = NA,
                         newdata = NULL, allow.new.levels = FALSE,
                         weights = NULL, use.u, newparams = NULL, ...) {
  require_rows(object, "simulate()")
  given_re_form <- !missing(re.form) || any(...names() %in% old_re_form_names)
  re.form <- old_re_form(re.form, ...)
  simulate_check_dots(...)
  if (!missing(use.u)) re.form <- use_u_re_form(use.u, given_re_form)
  mer_simulate(object, nsim, seed, re.form, newdata, allow.new.levels, weights,
               newparams)
}

#' @rdname simulate.lmm
#' @method simulate glmm
#' @export
simulate.glmm <- function(object, nsim = 1, seed = NULL, re.form = NA,
                          newdata = NULL, allow.new.levels = FALSE,
                          weights = NULL, use.u, newparams = NULL, ...) {
  require_rows(object, "simulate()")
  given_re_form <- !missing(re.form) || any(...names() %in% old_re_form_names)
  re.form <- old_re_form(re.form, ...)
  simulate_check_dots(...)
  if (!missing(use.u)) re.form <- use_u_re_form(use.u, given_re_form)
  mer_simulate(object, nsim, seed, re.form, newdata, allow.new.levels, weights,
               newparams)
}

# lme4's simulate() arguments that ours does not take, and any other argument
# in `...`, are errors.
simulate_check_dots <- function(...) {
  predict_check_dots(..., caller = "simulate()", unsupported = c(
    family = "(another family than the fit's) is not supported: simulate from a model fitted with that family",
    na.action = "is not supported: rows of 'newdata' with missing fixed-effects variables are always left out",
    formula = "is not supported: simulate() takes a fitted model",
    cond.sim = "is not supported (lme4 ignores it for merMod fits)",
    offset = "is not supported: offsets come from the model's formula and call"))
}

use_u_re_form <- function(use.u, re_form_given) {
  if (re_form_given) {
    stop("you should specify only one of 'use.u' and 're.form' (use.u = TRUE is ",
         "re.form = NULL, use.u = FALSE is re.form = NA)", call. = FALSE)
  }
  check_flag(use.u, "use.u")
  if (use.u) NULL else NA
}

mer_simulate <- function(object, nsim, seed, re.form, newdata,
                         allow.new.levels, weights, newparams = NULL) {
  if (!is.numeric(nsim) || length(nsim) != 1L || is.na(nsim) || nsim < 1 ||
      nsim != round(nsim)) {
    stop("'nsim' must be a positive whole number, not ", deparse1(nsim),
         call. = FALSE)
  }
  nsim <- as.integer(nsim)
  check_flag(allow.new.levels, "allow.new.levels")
  if (has_zi_random(object)) check_zi_random_re_form(object, re.form)
  cond_bars <- prediction_bars(object, re.form)
  if (!is.null(newdata)) newdata <- check_newdata(newdata)
  if (!is.null(object$extended)) check_extended_sim_args(newparams, weights)
  if (!is.null(newparams)) {
    object <- with_newparams(object, newparams, uses_sigma = TRUE)
  }

  # Random number state, as stats::simulate(): a given seed is used and the
  # caller's stream restored afterwards.
  if (!exists(".Random.seed", envir = globalenv(), inherits = FALSE)) stats::runif(1)
  if (is.null(seed)) {
    rng_state <- get(".Random.seed", envir = globalenv())
  } else {
    saved <- get(".Random.seed", envir = globalenv())
    on.exit(assign(".Random.seed", saved, envir = globalenv()), add = TRUE)
    set.seed(seed)
    rng_state <- structure(seed, kind = as.list(RNGkind()))
  }

  core <- predict_core(object, newdata, cond_bars, allow.new.levels,
                       stats::na.omit)
  eta <- core$eta
  n <- length(eta)
  wts <- simulation_weights(object, newdata, core$rows, weights, n)

  # Random effects of the terms not conditioned on (lme4 draws u first).
  cond_terms <- vapply(cond_bars, deparse1, "")
  sim_bars <- Filter(function(b) !deparse1(b) %in% cond_terms, model_bars(object))
  if (is_tmb_style(object)) {
    cols <- simulate_tmb_style(object, eta, sim_bars, newdata, core,
                               allow.new.levels, nsim, zi_conditional = is.null(re.form))
    return(simulation_frame(object, cols, names(eta), is.null(newdata), rng_state))
  }
  re_sim <- simulate_random_effects(object, sim_bars, newdata, core,
                                    allow.new.levels, nsim)

  if (inherits(object, "glmm")) {
    mu <- object$family$linkinv(as.vector(eta + re_sim))
    cols <- simulate_glmm_response(object, mu, wts, n, nsim)
  } else {
    sigma <- object$sigma
    eps <- matrix(stats::rnorm(n * nsim), n, nsim)
    val <- eta + sigma * re_sim + (sigma / sqrt(wts)) * eps
    cols <- lapply(seq_len(nsim), function(j) val[, j])
  }
  simulation_frame(object, cols, names(eta), is.null(newdata), rng_state)
}

# Prior weights of the simulated observations: given (one per observation
# of the data simulated for), the fit's, or for new data 1 (the number of
# trials of a binomial cbind() response taken from newdata).
simulation_weights <- function(object, newdata, rows, weights, n) {
  if (!is.null(weights)) {
    n_all <- if (is.null(newdata)) n else nrow(newdata)
    if (!is.numeric(weights) || !length(weights) %in% c(1L, n_all) ||
        anyNA(weights) || any(weights <= 0)) {
      stop("'weights' must be positive numbers, one for all rows or one per ",
           "row of ", if (is.null(newdata)) "the model frame" else "'newdata'",
           " (", n_all, ")", call. = FALSE)
    }
    # One number is every row's weight (as lme4 recycles it).
    weights <- rep_len(as.double(weights), n_all)
    return(if (is.null(newdata)) weights else weights[rows])
  }
  if (is.null(newdata)) return(as.vector(object$weights))
  y <- stats::model.response(object$frame)
  if (inherits(object, "glmm") && object$family$family == "binomial" &&
      is.matrix(y) && ncol(y) == 2L) {
    resp <- object$formula[[2L]]
    r <- tryCatch(eval(resp, newdata[rows, , drop = FALSE], environment(object$formula)),
                  error = function(e) NULL)
    if (!is.matrix(r) || ncol(r) != 2L || nrow(r) != n) {
      stop("simulating a binomial cbind() response for 'newdata' needs the ",
           "number of trials: give 'weights', or the response's variables (",
           paste(all.vars(resp), collapse = ", "), ") in 'newdata'", call. = FALSE)
    }
    return(as.double(rowSums(r)))
  }
  rep(1, n)
}

# n x nsim matrix of random-effects contributions Z Lambda u of the terms
# `bars`, drawn as lme4 draws them: u = rnorm(q * nsim) with the terms in
# lme4's order (by decreasing number of levels in the data simulated for,
# when formula order is not already so), levels in the order of the
# grouping factor, the q_k effects of one level together. For linear mixed
# models the result is on the relative scale (times sigma later).
simulate_random_effects <- function(object, bars, newdata, core,
                                    allow.new.levels, nsim) {
  n <- length(core$eta)
  if (length(bars) == 0L) return(matrix(0, n, nsim))
  designs <- simulation_designs(object, bars, newdata, core, allow.new.levels)
  designs <- order_reterms(designs)
  q <- sum(design_sizes(designs))
  random_effects_contribution(designs, matrix(stats::rnorm(q * nsim), q, nsim), n)
}

# The random-effects designs of the terms `bars` for the data simulated for
# (each with its grouping factor, model matrix Z and relative covariance
# factor L), in the order of `bars`.
simulation_designs <- function(object, bars, newdata, core, allow.new.levels) {
  own <- is.null(newdata)
  rfd <- if (own) object$frame else
    random_data(object, bars, newdata[core$rows, , drop = FALSE])
  where <- if (own) "the model frame" else "newdata"
  modes <- group_modes(object)
  lapply(bars, function(bar) {
    d <- term_design(object, bar, rfd, own_frame = own)
    check_new_levels(d, rownames(modes[[d$group]]), allow.new.levels, where)
    d$factor <- droplevels(d$factor)
    d$L <- term_lambda(object, d$term)
    d
  })
}

# Number of random effects of each design (levels x effects per level).
design_sizes <- function(designs) {
  vapply(designs, function(d) nlevels(d$factor) * ncol(d$Z), 1)
}

# n x nsim matrix Z Lambda u for spherical random effects u (q x nsim, the
# designs' effects one after the other, levels in the order of the grouping
# factor, the q_k effects of one level together).
random_effects_contribution <- function(designs, u, n) {
  nsim <- ncol(u)
  sizes <- design_sizes(designs)
  ends <- cumsum(sizes)
  out <- matrix(0, n, nsim)
  for (k in seq_along(designs)) {
    d <- designs[[k]]
    qk <- ncol(d$Z)
    block <- u[(ends[k] - sizes[k]) + seq_len(sizes[k]), , drop = FALSE]
    lev <- as.integer(d$factor)
    for (j in seq_len(nsim)) {
      b <- matrix(block[, j], ncol = qk, byrow = TRUE) %*% t(d$L)
      B <- b[lev, , drop = FALSE]
      B[is.na(lev), ] <- 0
      out[, j] <- out[, j] + rowSums(d$Z * B)
    }
  }
  out
}

# Lower-triangular relative covariance factor of the model term `term`
# (q x q, filled column by column from that term's elements of theta).
term_lambda <- function(object, term) {
  terms <- vapply(object$reterms, `[[`, "", "term")
  k <- match(term, terms)
  sizes <- theta_sizes(object$reterms)
  start <- sum(sizes[seq_len(k - 1L)])
  q <- length(object$reterms[[k]]$cnms)
  L <- matrix(0, q, q)
  L[lower.tri(L, diag = TRUE)] <- object$theta[start + seq_len(sizes[k])]
  L
}

# Responses of a GLMM given the conditional means `mu` (n * nsim, one
# simulation after the other) and prior weights `wts`, drawn in one call
# as lme4's family simulators do. A list with one element per simulation.
simulate_glmm_response <- function(object, mu, wts, n, nsim) {
  fam <- object$family$family
  N <- n * nsim
  sigma <- object$sigma
  split_sims <- function(v) lapply(seq_len(nsim), function(j) v[(j - 1L) * n + seq_len(n)])
  if (identical(object$extended$style, "glmer.nb")) {
    # lme4's simulator of glmer.nb() fits: one rnbinom() call with size theta.
    if (any(wts != 1)) warning("ignoring prior weights", call. = FALSE)
    theta <- object$extended$sigma
    return(split_sims(stats::rnbinom(N, size = theta, mu = mu)))
  }
  switch(fam,
    binomial = {
      if (any(wts %% 1 != 0)) {
        stop("cannot simulate binomial responses with non-integer prior ",
             "weights (numbers of trials)", call. = FALSE)
      }
      y <- stats::model.response(object$frame)
      if (is.factor(y)) {
        draws <- stats::rbinom(N, size = 1, prob = mu)
        lapply(split_sims(draws), function(d) {
          factor(levels(y)[1L + d], levels = levels(y))
        })
      } else if (is.matrix(y) && ncol(y) == 2L) {
        draws <- stats::rbinom(N, size = wts, prob = mu)
        lapply(split_sims(draws), function(d) {
          m <- cbind(d, wts - d)
          dimnames(m) <- list(NULL, colnames(y))
          m
        })
      } else {
        split_sims(stats::rbinom(N, size = wts, prob = mu) / wts)
      }
    },
    poisson = {
      if (any(wts != 1)) warning("ignoring prior weights", call. = FALSE)
      split_sims(stats::rpois(N, mu))
    },
    Gamma = {
      shape <- wts / sigma^2
      split_sims(stats::rgamma(N, shape = shape, rate = shape / mu))
    },
    inverse.gaussian = {
      if (!requireNamespace("statmod", quietly = TRUE)) {
        stop("simulating inverse Gaussian responses needs the 'statmod' ",
             "package: install.packages(\"statmod\")", call. = FALSE)
      }
      rinvgauss <- getExportedValue("statmod", "rinvgauss")
      split_sims(rinvgauss(N, mean = mu, shape = wts / sigma^2))
    },
    gaussian = split_sims(stats::rnorm(N, mu, sigma / sqrt(wts))),
    stop("simulation is not implemented for the ", fam, " family", call. = FALSE)
  )
}

# Arguments of simulate() that fits with a dispersion, zero-inflation or
# negative binomial parameter do not take: a new 'sigma' (the dispersion
# comes from the fit) and, for glmmTMB-style fits, 'weights' (as in
# glmmTMB, prior weights scale the log-likelihood and play no part in the
# draws).
check_extended_sim_args <- function(newparams, weights) {
  if (is.list(newparams) && "sigma" %in% names(newparams)) {
    stop("'newparams$sigma' is not supported for this fit: its dispersion ",
         "parameter is not a residual scale; 'newparams' may give 'beta' ",
         "and 'theta'", call. = FALSE)
  }
  if (!is.null(weights)) {
    stop("'weights' is not supported by simulate() for fits in glmmTMB's ",
         "or glmer.nb's parameterisation: prior weights scale the ",
         "log-likelihood and do not enter the simulated responses",
         call. = FALSE)
  }
}

# TRUE for a fit in glmmTMB's parameterisation (glmm() with an extended
# family, a zero-inflation or a dispersion model).
is_tmb_style <- function(object) {
  inherits(object, "glmm") && identical(object$extended$style, "glmmTMB")
}

# Simulations from a glmmTMB-style fit with glmmTMB's order of random number
# draws (its simulate() runs the model's C++ template once per simulation,
# src/glmmTMB.cpp: allterms_nll() of the conditional terms, then of the
# zero-inflation terms, then the observations): for each simulation, first
# the random effects of the conditional terms not conditioned on, term by
# term in formula order (glmmTMB does not reorder the terms), the effects of
# one level together; then, with random effects in the zero-inflation model
# and unless `zi_conditional` (re.form = NULL: its conditional modes are
# used), those of its terms likewise, in the order of 'ziformula'; then
# observation by observation the response and, with zero-inflation, its
# Bernoulli "structural zero" draw. For the same seed, parameters and data
# the draws are glmmTMB's. A list with one element per simulation; for
# binomial and betabinomial a two-column matrix of successes and failures,
# as glmmTMB.
simulate_tmb_style <- function(object, eta, sim_bars, newdata, core,
                               allow.new.levels, nsim, zi_conditional = FALSE) {
  ext <- object$extended
  n <- length(eta)
  phi <- tmb_component(ext$disp, "phi", "dispformula", newdata, n)
  zi <- if (has_zi_random(object)) {
    zi_random_simulation(object, newdata, core, allow.new.levels, zi_conditional)
  } else {
    list(prob = tmb_component(ext$zi, "prob", "ziformula", newdata, n))
  }
  zprob <- zi$prob
  n_trials <- if (ext$family %in% c("binomial", "betabinomial")) {
    if (!is.null(newdata)) {
      stop("simulate() for 'newdata' is not supported for ", ext$family,
           " fits in glmmTMB's parameterisation (the numbers of trials of ",
           "the new rows are unknown)", call. = FALSE)
    }
    ext$n_trials
  }
  designs <- if (length(sim_bars)) {
    simulation_designs(object, sim_bars, newdata, core, allow.new.levels)
  }
  q <- sum(design_sizes(designs))
  qz <- sum(design_sizes(zi$designs))
  lapply(seq_len(nsim), function(j) {
    lp <- eta
    if (q > 0) {
      lp <- lp + random_effects_contribution(designs,
                                             matrix(stats::rnorm(q), q, 1L), n)[, 1L]
    }
    if (qz > 0) {
      zprob <- stats::plogis(zi$eta + random_effects_contribution(
        zi$designs, matrix(stats::rnorm(qz), qz, 1L), n)[, 1L])
    }
    mu <- object$family$linkinv(as.vector(lp))
    y <- simulate_extended_response(ext$family, mu, phi, zprob, n_trials, 1L)[, 1L]
    if (!is.null(n_trials)) cbind(y, n_trials - y, deparse.level = 0) else y
  })
}

# With random effects in 'ziformula', simulate() takes re.form = NULL (every
# random effect at its conditional mode) or NA/~0 (every one drawn afresh),
# as predict() does for these fits.
check_zi_random_re_form <- function(object, re.form) {
  if (is.null(re.form) || (is.logical(re.form) && length(re.form) == 1L && is.na(re.form)) ||
      is_zero_formula(re.form)) {
    return(invisible(NULL))
  }
  stop("with random effects in 'ziformula' (", deparse1(object$extended$zi$full_formula),
       "), simulate() takes re.form = NULL (every random effect at its conditional ",
       "mode) or NA/~0 (all drawn afresh, as glmmTMB), not ", deparse1(re.form),
       call. = FALSE)
}

# The zero-inflation logit of the rows simulated for, for a fit with random
# effects in 'ziformula': `prob` the probabilities with the conditional modes
# (`conditional`, re.form = NULL), otherwise `eta` the fixed part (X_z b_z +
# offset) and `designs` those of the zero-inflation terms for fresh draws, in
# the order of 'ziformula' (as simulation_designs() gives the conditional
# model's, from the fit seen by zi_random_view() with its own theta).
zi_random_simulation <- function(object, newdata, core, allow.new.levels, conditional) {
  ext <- object$extended
  rows_data <- if (!is.null(newdata)) newdata[core$rows, , drop = FALSE]
  fixed <- if (is.null(newdata)) zi_fixed_eta(ext$zi) else
    component_design(ext$zi, rows_data, "zero-inflation")$eta
  if (anyNA(fixed)) {
    stop("simulate(): 'newdata' has missing values in the variables of 'ziformula' (",
         deparse1(ext$zi$full_formula), ") in rows that the conditional model keeps",
         call. = FALSE)
  }
  if (conditional) {
    eta <- if (is.null(newdata)) ext$zi$eta else
      fixed + zi_random_part(object, rows_data, allow.new.levels)
    return(list(prob = stats::plogis(as.vector(eta))))
  }
  view <- zi_random_view(object)
  view$theta <- ext$zi$random$theta
  bars <- split_part_formula(ext$zi$full_formula)$bars
  list(eta = as.vector(fixed),
       designs = simulation_designs(view, bars, newdata, core, allow.new.levels),
       prob = stats::plogis(as.vector(fixed)))
}

# The dispersion (`what` = "phi") or zero-inflation probability ("prob") of
# the rows simulated for: the fit's for its own data, NULL without that
# model part; for new data only when the part's formula has no variables.
tmb_component <- function(part, what, arg, newdata, n) {
  if (is.null(part)) return(NULL)
  if (is.null(newdata)) return(part[[what]])
  constant <- length(all.vars(part$formula)) == 0L && is.null(part$offset)
  if (!constant) {
    stop("simulate() for 'newdata' is not supported when '", arg, "' has ",
         "variables or an offset (", deparse1(part$formula), "); simulate ",
         "for the fitted data instead", call. = FALSE)
  }
  rep(part[[what]][1L], n)
}

#' Draw responses of the families of glmmTMB-style fits
#'
#' Draws as glmmTMB's simulate() does, with the same random number calls in
#' the same order, observation by observation: gaussian `rnorm(mu,
#' sqrt(phi))`; poisson `rpois(mu)`; binomial `rbinom(n_trials, mu)`; Gamma
#' `rgamma(shape = phi, scale = mu / phi)`; nbinom2 and nbinom1 `rnbinom()`
#' with `prob = mu / v` and `size = mu * prob / (1 - prob)` for the variance
#' `v = mu (1 + mu / phi)` or `mu (1 + phi)` (as TMB's rnbinom2(), so that
#' the draws are glmmTMB's bit for bit); beta `rbeta(mu phi, (1 - mu) phi)`;
#' betabinomial `rbinom(n_trials, rbeta(mu phi, (1 - mu) phi))`. With
#' zero-inflation each draw is then multiplied by `rbinom(1, 1, 1 - zprob)`.
#' Draws that glmmTMB makes one observation after another (the two draws of
#' betabinomial, the zero-inflation draw) are made in an R loop so that the
#' random number stream is the same; the others in one vectorised call,
#' which consumes the stream in the same order.
#'
#' @param family_name "gaussian", "poisson", "binomial", "Gamma", "nbinom2",
#'   "nbinom1", "beta" or "betabinomial".
#' @param mu conditional means: a vector of length n (the same in every
#'   simulation) or an n x nsim matrix.
#' @param phi dispersion parameters (length 1 or n); NULL for poisson and
#'   binomial.
#' @param zprob zero-inflation probabilities (length 1 or n) or NULL.
#' @param n_trials numbers of trials (length 1 or n) for binomial and
#'   betabinomial.
#' @param nsim number of simulations.
#' @return An n x nsim matrix, one column per simulation (for binomial and
#'   betabinomial the numbers of successes).
#' @noRd
simulate_extended_response <- function(family_name, mu, phi = NULL, zprob = NULL,
                                       n_trials = NULL, nsim = 1L) {
  n <- if (is.matrix(mu)) nrow(mu) else length(mu)
  if (is.matrix(mu) && ncol(mu) != nsim) {
    stop("internal error: 'mu' has ", ncol(mu), " columns for nsim = ", nsim,
         call. = FALSE)
  }
  N <- n * nsim
  mu <- rep_len(as.double(mu), N)
  per_obs <- function(x, what) {
    if (is.null(x) || !length(x) %in% c(1L, n)) {
      stop("internal error: '", what, "' must have length 1 or ", n,
           " for the ", family_name, " family", call. = FALSE)
    }
    rep_len(as.double(x), N)
  }
  needs_phi <- family_name %in% c("gaussian", "Gamma", "nbinom2", "nbinom1",
                                  "beta", "betabinomial")
  if (needs_phi) phi <- per_obs(phi, "phi")
  if (family_name %in% c("binomial", "betabinomial")) {
    n_trials <- per_obs(n_trials, "n_trials")
  }
  if (!is.null(zprob)) {
    if (!family_name %in% c("poisson", "nbinom1", "nbinom2")) {
      stop("internal error: zero-inflation for the ", family_name, " family",
           call. = FALSE)
    }
    zprob <- per_obs(zprob, "zprob")
  }
  # The arguments of each observation's draw, as TMB computes them.
  args <- switch(family_name,
    gaussian = list(mean = mu, sd = sqrt(phi)),
    poisson = list(lambda = mu),
    binomial = list(size = n_trials, prob = mu),
    Gamma = list(shape = phi, scale = mu / phi),
    nbinom2 = nb_args(mu, mu * (1 + mu / phi)),
    nbinom1 = nb_args(mu, mu * (1 + phi)),
    beta = list(shape1 = mu * phi, shape2 = (1 - mu) * phi),
    betabinomial = list(shape1 = mu * phi, shape2 = (1 - mu) * phi,
                        size = n_trials),
    stop("simulation is not implemented for the ", family_name, " family",
         call. = FALSE))
  rfun <- switch(family_name,
    gaussian = stats::rnorm, poisson = stats::rpois, binomial = stats::rbinom,
    Gamma = stats::rgamma, nbinom2 = , nbinom1 = stats::rnbinom,
    beta = stats::rbeta, betabinomial = NULL)
  if (family_name %in% c("poisson", "nbinom2", "nbinom1") && any(mu < 0)) {
    stop("cannot simulate ", family_name, " counts: ", sum(mu < 0), " of the ",
         "conditional means are negative (the identity link lets the linear ",
         "predictor go below 0)", call. = FALSE)
  }
  # A zero mean of a negative binomial is a zero count (TMB's draw is NaN
  # there and uses no random numbers).
  draw_ok <- if (family_name %in% c("nbinom2", "nbinom1")) mu > 0 else rep(TRUE, N)
  y <- numeric(N)
  if (is.null(zprob) && family_name != "betabinomial") {
    ok <- which(draw_ok)
    y[ok] <- do.call(rfun, c(list(length(ok)), lapply(args, `[`, ok)))
  } else {
    a1 <- args[[1L]]
    a2 <- if (length(args) > 1L) args[[2L]]
    one <- switch(family_name,
      poisson = function(i) stats::rpois(1L, a1[i]),
      nbinom2 = , nbinom1 = function(i) {
        if (draw_ok[i]) stats::rnbinom(1L, a1[i], a2[i]) else 0
      },
      betabinomial = function(i) {
        stats::rbinom(1L, args$size[i], stats::rbeta(1L, a1[i], a2[i]))
      })
    for (i in seq_len(N)) {
      y[i] <- one(i)
      if (!is.null(zprob)) y[i] <- y[i] * stats::rbinom(1L, 1L, 1 - zprob[i])
    }
  }
  matrix(y, n, nsim)
}

# rnbinom() arguments for mean mu and variance v, computed as TMB's
# rnbinom2(mu, v) does.
nb_args <- function(mu, v) {
  prob <- mu / v
  list(size = mu * prob / (1 - prob), prob = prob)
}

# The data frame of simulations: columns sim_1, sim_2, ..., rows named as
# the predictions; for the fitted data padded with NA rows per the fit's
# na.action (na.exclude), which is then attached as attribute "na.action".
simulation_frame <- function(object, cols, row_names, own_data, rng_state) {
  na_act <- if (own_data) mer_na_action(object)
  if (!is.null(na_act) && inherits(na_act, "exclude")) {
    omit <- as.integer(na_act)
    full <- rep(NA_integer_, length(row_names) + length(omit))
    full[-omit] <- seq_along(row_names)
    cols <- lapply(cols, function(x) {
      if (is.matrix(x)) x[full, , drop = FALSE] else x[full]
    })
    row_names <- names(stats::napredict(na_act, stats::setNames(seq_along(row_names), row_names)))
  }
  names(cols) <- paste0("sim_", seq_along(cols))
  val <- structure(cols, row.names = row_names, class = "data.frame")
  if (!is.null(na_act)) attr(val, "na.action") <- na_act
  attr(val, "seed") <- rng_state
  val
}
