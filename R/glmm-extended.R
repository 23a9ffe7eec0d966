# glmmTMB's models in glmm(): families with a dispersion parameter (nbinom2,
# nbinom1, beta, betabinomial; gaussian and Gamma with a dispersion model),
# zero inflation (`ziformula`) and dispersion models (`dispformula`), and
# glmer.nb()'s negative binomial (glmm.nb()). The engine estimates the
# family's extra parameters -- the dispersion coefficients (log phi = X_d b_d)
# and the zero-inflation coefficients (logit pi = X_z b_z) -- jointly with
# (theta, beta) by the Laplace approximation, with PIRLS for the conditional
# modes (src/rust/fit/response.rs). glmmTMB's parameterisation (1.1.5):
# nbinom2 phi = theta (var mu + mu^2/theta), nbinom1 var mu (1 + phi), beta
# shapes mu phi and (1 - mu) phi, betabinomial the same with the trials,
# gaussian phi = sigma^2, Gamma shape phi.

# Families whose dispersion the engine models, by glmmTMB's names.
dispersion_families <- c("nbinom2", "nbinom1", "beta", "betabinomial",
                         "gaussian", "Gamma")

# TRUE when `formula` is the one-sided formula `~ <value>` (e.g. ~0 or ~1).
is_constant_formula <- function(formula, value) {
  inherits(formula, "formula") && length(formula) == 2L &&
    identical(formula[[2L]], value)
}

# A one-sided formula argument (`ziformula`, `dispformula`) checked: no
# response, and random effects only where `bars` allows them (the
# zero-inflation model, as glmmTMB 1.1.5 allows them).
check_part_formula <- function(formula, name, bars = FALSE) {
  if (!inherits(formula, "formula") || length(formula) != 2L) {
    stop("'", name, "' must be a one-sided formula such as ~ 1 or ~ x, not ",
         deparse1(formula), call. = FALSE)
  }
  if (!bars && contains_bar(formula[[2L]])) {
    stop("random effects in '", name, "' (", deparse1(formula), ") are not ",
         "supported by glmm() yet: only fixed effects", call. = FALSE)
  }
  formula
}

# glmmTMB's `ziformula = ~ .`: the `.` is the right-hand side of the
# conditional formula, random-effects terms included and offsets left out,
# and terms can be added or removed (`~ . - (1 | site)`), as stats::update()
# reads it.
expand_zi_dot <- function(zi_formula, mc, env) {
  if (!"." %in% all.names(zi_formula[[2L]])) return(zi_formula)
  f <- tryCatch(eval(mc$formula, env), error = function(e) NULL)
  if (!inherits(f, "formula") || length(f) != 3L) {
    stop("'ziformula' uses '.' (the conditional formula's right-hand side), but the ",
         "conditional formula could not be read", call. = FALSE)
  }
  rhs <- drop_offset_terms(f[[3L]])
  base <- stats::as.formula(call("~", if (is.null(rhs)) 1 else rhs), env = environment(f))
  stats::update(base, zi_formula)
}

# A formula's right-hand side without its offset() terms (NULL when nothing
# else is left).
drop_offset_terms <- function(rhs) {
  if (is.call(rhs) && identical(rhs[[1L]], as.name("+")) && length(rhs) == 3L) {
    left <- drop_offset_terms(rhs[[2L]])
    right <- drop_offset_terms(rhs[[3L]])
    if (is.null(left)) return(right)
    if (is.null(right)) return(left)
    return(call("+", left, right))
  }
  if (is.call(rhs) && identical(rhs[[1L]], as.name("offset"))) return(NULL)
  rhs
}

# Stops when `object` is a fit of a family with extra parameters (glmmTMB's
# families, zero inflation, a dispersion model, glmm.nb()): `what` is not
# built for those yet.
require_classic_family <- function(object, what) {
  if (is.null(object$extended)) return(invisible(NULL))
  name <- if (identical(object$extended$style, "glmer.nb")) {
    object$family$family  # "Negative Binomial(theta)", as glmer.nb names it
  } else {
    object$extended$family
  }
  stop(what, " is not available yet for fits of the ", name,
       " family or with 'ziformula'/'dispformula' (its engine path does not ",
       "carry the family's own parameters)", call. = FALSE)
}

# The glmmTMB-style fit of glmm() (or, with `style = "glmer.nb"`, glmm.nb()'s):
# `family` is the resolved family object (an extended family, or one of
# stats' families with zero inflation or a dispersion model).
glmm_extended <- function(mc, env, family, ziformula, dispformula, nAGQ,
                          control, start, verbose, devFunOnly,
                          style = "glmmTMB", nb_theta_start = NULL,
                          nb_theta_fixed = NULL, data = data_value(mc, env)) {
  name <- family$family
  if (!is.null(nb_theta_fixed)) {
    check_fixed_nb_options(nb_theta_fixed, nAGQ, devFunOnly, control)
  }
  if (devFunOnly) {
    stop("devFunOnly = TRUE is not available for the ", name, " family or ",
         "for models with 'ziformula' or 'dispformula' (the deviance function ",
         "would also take the family's own parameters); fit the model instead",
         call. = FALSE)
  }
  if (!is.null(control$optimizer_fun) || any(control$optimizer == "none")) {
    stop("a user optimizer (or optimizer = \"none\") is not available for the ",
         name, " family or for models with 'ziformula' or 'dispformula': ",
         "use the engine's BOBYQA or Nelder_Mead", call. = FALSE)
  }
  if (nAGQ == 0L && is.null(nb_theta_fixed)) {
    stop("nAGQ = 0 estimates the fixed effects inside PIRLS and has no ",
         "criterion for the ", name, " family's own parameters (dispersion, ",
         "zero inflation); use nAGQ = 1 (Laplace)", call. = FALSE)
  }
  zi_formula <- expand_zi_dot(check_part_formula(ziformula, "ziformula", bars = TRUE), mc, env)
  disp_formula <- check_part_formula(dispformula, "dispformula")
  has_zi <- !is_constant_formula(zi_formula, 0)
  if (has_zi) check_zi_family(name)
  has_disp <- name %in% dispersion_families
  if (!has_disp && !is_constant_formula(disp_formula, 1)) check_disp_family(name)
  if (has_disp && is_constant_formula(disp_formula, 0)) {
    stop("dispformula = ~0 (a dispersion fixed near zero) is not supported by ",
         "glmm(); use ~1 or a model of the dispersion", call. = FALSE)
  }
  if (has_zi && contains_bar(zi_formula[[2L]])) stop_without_conditional_terms(mc, env)
  vars <- unique(c(if (has_zi) all.vars(zi_formula),
                   if (has_disp) all.vars(disp_formula)))
  inputs <- lmm_inputs(mc, env, control, family = family,
                       response = extended_response_fun(family,
                                                        control$check.response.not.const),
                       extra_vars = vars, data = data)
  check_nlev_gtreq_5(inputs$flist, control$check.nlev.gtreq.5)
  mc$formula <- inputs$formula
  check_agq_terms(nAGQ, inputs$reterms)
  zi_parts <- if (has_zi) split_part_formula(zi_formula)
  zi <- if (has_zi) part_design(zi_parts$fixed, inputs$frame, env, "ziformula")
  if (has_zi) zi$full_formula <- zi_formula
  # (a `~ .` is shown as written, as glmmTMB shows it)
  if (has_zi && !identical(zi_formula, ziformula)) zi$formula_as_given <- ziformula
  zi_random <- if (has_zi) zi_random_terms(zi_parts, inputs$frame, env, control)
  disp <- if (!is.null(nb_theta_fixed)) {
    fixed_dispersion_part(nb_theta_fixed, length(inputs$y))
  } else if (has_disp) {
    part_design(disp_formula, inputs$frame, env, "dispformula")
  }
  start <- check_glmm_start(start, inputs, nAGQ)
  extra_start <- c(
    if (has_disp) dispersion_start(name, inputs, disp, nb_theta_start),
    if (has_zi) zero_inflation_start(inputs, zi))
  engine_family <- list(
    family = name, link = family$link,
    laplace = if (style == "glmer.nb") "expected" else "observed",
    disp = if (has_disp) engine_part(disp), zi = if (has_zi) engine_part(zi),
    start = as.double(extra_start))
  run_engine <- extended_engine_runner(inputs, nAGQ, verbose)
  fit_raw <- function(engine_family) {
    if (is.null(zi_random) && needs_poisson_side_start(name, has_zi, nb_theta_fixed)) {
      tryCatch(
        poisson_side_fit_raw(run_engine, engine_terms(inputs), engine_family, start, control,
                             name, colnames(disp$X)),
        error = function(e) stop_sqrt_link_edge(e, family$link))
    } else if (is.null(zi_random)) {
      tryCatch(
        run_engine(engine_terms(inputs), engine_family, start$theta, start$fixef,
                   unclass(control)),
        error = function(e) stop_sqrt_link_edge(e, family$link))
    } else {
      zi_random_fit_raw(run_engine, inputs, zi_random, engine_family, start, control)
    }
  }
  make_fit <- function(raw) {
    parts <- split_zi_random(raw, inputs, zi_random)
    extended_object(mc, inputs, parts$raw, family, nAGQ, control, zi, disp,
                    style, zi_random = parts$zi)
  }
  raw <- with_unit_dispersion_start(fit_raw, engine_family,
                                    if (has_disp && is.null(nb_theta_fixed)) ncol(disp$X) else 0L)
  fit <- make_fit(raw)
  if (has_zi && is.null(zi_random) && zi_coefficients_run_off(fit, control)) {
    fit <- with_zero_start_zi(fit, raw, engine_family, ncol(zi$X), fit_raw, make_fit)
    raw <- attr(fit, "raw")
    attr(fit, "raw") <- NULL
  }
  if (!has_zi && is.null(nb_theta_fixed) && heads_for_poisson_limit(fit, name, control)) {
    side <- engine_family
    side$start[poisson_side_index(colnames(disp$X))] <- log(poisson_side_phi(name))
    fit <- with_other_start(fit, raw, side, fit_raw, make_fit)
    raw <- attr(fit, "raw")
    attr(fit, "raw") <- NULL
  }
  if (!is.null(raw$zi_start_note)) warning(raw$zi_start_note, call. = FALSE)
  report_convergence(fit$optinfo, control)
  # (nAGQ = 0, a fixed-theta negative binomial: no Hessian over all
  # parameters; vcov() is lme4's from R_X)
  if (nAGQ > 0L) report_extended_covariance(fit, control)
  fit
}

# Stops when the conditional formula has no random-effects term while the
# zero-inflation formula has some (glmmTMB fits that model; glmm() needs a
# term in the conditional model), with that reason instead of the generic
# "no random-effects term" error.
stop_without_conditional_terms <- function(mc, env) {
  f <- tryCatch(lmm_formula(eval(mc$formula, env), env), error = function(e) NULL)
  if (is.null(f) || length(f) != 3L || contains_bar(f[[3L]])) return(invisible(NULL))
  stop("the conditional formula ", deparse1(f), " has no random-effects term: glmm() ",
       "does not fit random effects in 'ziformula' alone yet (glmmTMB does); add a term ",
       "such as (1 | group) to the conditional model", call. = FALSE)
}

# The engine's fit of the model `inputs` (glmm_extended_fit_rs()) as a
# function of what varies between the fits of one model: its terms, the
# family list, the starts of theta and the fixed effects, and the control.
extended_engine_runner <- function(inputs, nAGQ, verbose) {
  X <- inputs$X
  X <- double_storage(X)
  offset <- if (is.null(inputs$offset)) NULL else as.double(inputs$offset)
  run <- function(terms, family_list, theta, fixef, ctl) {
    glmm_extended_fit_rs(
      as.double(inputs$y), X, ncol(X), as.double(inputs$weights), offset,
      terms, family_list, as.double(inputs$n_trials),
      as.double(inputs$etastart), nAGQ, theta, fixef, ctl, verbose)
  }
  # The fits from several starts at once (glmm_extended_fit_starts_rs()):
  # `starts` a named list of list(theta, beta, extra, nested_zi_theta), a
  # start with `nested_zi_theta` first fitting the model without the
  # zero-inflation terms under `nested_ctl`; with `end_ctl` (not NULL) the
  # ends then get their derivatives, lowest deviance first, until one passes
  # the checks. The fits, named as `starts`, with attribute "ends" (the
  # results at the ends, NULL where none was run); a failed one is an error
  # condition, as tryCatch() would give it.
  attr(run, "starts") <- function(terms, family_list, starts, ctl, nested_ctl, end_ctl) {
    out <- glmm_extended_fit_starts_rs(
      as.double(inputs$y), X, ncol(X), as.double(inputs$weights), offset,
      terms, family_list, as.double(inputs$n_trials),
      as.double(inputs$etastart), nAGQ, unname(starts), ctl, nested_ctl, end_ctl, verbose)
    as_condition <- function(r) if (is.character(r)) simpleError(r) else r
    fits <- stats::setNames(lapply(out$fits, as_condition), names(starts))
    attr(fits, "ends") <- stats::setNames(lapply(out$ends, as_condition), names(starts))
    fits
  }
  run
}

# An engine error, raised again without the engine's call where it names a
# cause of the square-root link. Its mean is eta^2 for every eta, as in
# glmmTMB; PIRLS keeps each positive count's eta on the side of 0 of its fixed
# part (src/rust/fit/sqrt_basin.rs). What it cannot fit is a mode at eta = 0,
# where the mean is 0: a group whose counts are all 0 and whose fixed part is
# 0 (e.g. a model without an intercept); that error names the observation.
stop_sqrt_link_edge <- function(e, link) {
  msg <- conditionMessage(e)
  if (!identical(link, "sqrt") || !grepl("square-root link", msg, fixed = TRUE)) stop(e)
  stop(msg, call. = FALSE)
}

# The standard errors of every component come from the Hessian over all
# parameters (there is no R_X-based fallback for the zero-inflation and
# dispersion coefficients): when it was not computed or cannot be inverted,
# those left NA are named in a warning.
report_extended_covariance <- function(fit, control) {
  se2 <- diag(as.matrix(fit$extended$vcov_full))
  bad <- names(se2)[is.na(se2)]
  if (!length(bad)) return(invisible(NULL))
  why <- if (isFALSE(control$calc.derivs)) {
    "calc.derivs = FALSE, so the Hessian of the deviance was not computed"
  } else if (!is.null(fit$optinfo$hessian_problem)) {
    fit$optinfo$hessian_problem
  } else {
    paste("the Hessian of the deviance over all parameters cannot be inverted or is not",
          "positive definite along them (a coefficient running off to infinity)")
  }
  warning("standard errors are not available (NA) for ", paste(bad, collapse = ", "),
          ": ", why, call. = FALSE)
  invisible(NULL)
}

# The response function lmm_inputs() calls for an extended family: y, prior
# weights and trials from extended_response() (glmmTMB's families) or
# glmm_response() (stats' families), and the starting means.
extended_response_fun <- function(family, not_const = NULL) {
  force(family)
  if (is.null(not_const)) not_const <- "stop"
  function(frame, weights, user_start) {
    name <- family$family
    if (name %in% c("nbinom2", "nbinom1", "beta", "betabinomial")) {
      what <- paste0("the response '", response_name(frame), "'")
      r <- extended_response(response_values(frame), family, weights, what)
      y <- as.double(r$y)
      n_trials <- as.double(r$n_trials)
      prior <- as.double(r$weights)
    } else if (name == "gaussian") {
      # glmm_response() knows gaussian only with the log or inverse link.
      y <- response_values(frame)
      if (!is.numeric(y) || is.matrix(y)) {
        stop("the response '", response_name(frame), "' of the gaussian family ",
             "must be a numeric vector", call. = FALSE)
      }
      y <- as.double(y)
      stop_if_nonfinite(y, paste0("the response '", response_name(frame), "'"))
      n_trials <- rep(1, length(y))
      prior <- response_weights(weights, length(y))
    } else {
      # (The constant-response check below covers every family once.)
      r <- glmm_response(frame, family, weights, "ignore",
                         mustart = user_start$mustart,
                         etastart = user_start$etastart)
      y <- r$y
      n_trials <- rep(1, length(y))
      prior <- r$weights
    }
    if (not_const != "ignore" && length(unique(y / n_trials)) < 2L) {
      signal_check(not_const, paste0(
        "Response is constant: the response '", response_name(frame), "' is ",
        format(y[1L] / n_trials[1L]), " in all ", length(y), " observations (as fitted by ",
        "the ", name, " family), so there is nothing to model"))
    }
    mustart <- switch(name,
      nbinom2 = , nbinom1 = , poisson = y + 0.1,
      beta = y,
      betabinomial = (y + 0.5) / (n_trials + 1),
      gaussian = , Gamma = y)
    if (!is.null(user_start$mustart)) mustart <- as.double(user_start$mustart)
    etastart <- if (!is.null(user_start$etastart)) {
      as.double(user_start$etastart)
    } else {
      family$linkfun(mustart)
    }
    list(y = y, weights = prior, n = n_trials, mustart = mustart,
         etastart = etastart)
  }
}

# The design of a zero-inflation or dispersion formula on the model frame:
# its terms, model matrix, offset and factor levels (for predict()).
part_design <- function(formula, frame, env, name) {
  environment(formula) <- env
  tt <- stats::terms(formula)
  mf <- tryCatch(
    stats::model.frame(tt, data = as.data.frame(frame), na.action = stats::na.pass),
    error = function(e) {
      stop("could not evaluate '", name, "' (", deparse1(formula), "): ",
           conditionMessage(e), call. = FALSE)
    })
  X <- stats::model.matrix(tt, mf)
  if (ncol(X) == 0L) {
    stop("'", name, "' (", deparse1(formula), ") has no columns", call. = FALSE)
  }
  stop_if_nonfinite(X, paste0("the model matrix of '", name, "'"))
  offset <- stats::model.offset(mf)
  if (!is.null(offset)) stop_if_nonfinite(offset, paste0("the offset of '", name, "'"))
  qr_x <- qr(X)
  if (qr_x$rank < ncol(X)) {
    stop("the model matrix of '", name, "' (", deparse1(formula), ") is rank ",
         "deficient: columns ", paste(colnames(X)[qr_x$pivot[-seq_len(qr_x$rank)]],
                                      collapse = ", "),
         " are linear combinations of the others", call. = FALSE)
  }
  list(formula = formula, terms = tt, X = X,
       offset = if (is.null(offset)) NULL else as.double(offset),
       xlevels = stats::.getXlevels(tt, mf),
       contrasts = attr(X, "contrasts"))
}

# What the engine reads of a part's design.
engine_part <- function(part) {
  list(x = as.double(part$X), k = ncol(part$X), offset = part$offset)
}

# Starting values of the dispersion coefficients: a moment estimate of the
# dispersion of the response about its mean for the intercept (zeros for the
# other columns and without an intercept), over the rows that count (prior
# weight and trials above 0).
dispersion_start <- function(name, inputs, disp, nb_theta_start = NULL) {
  counts <- (is.null(inputs$weights) | inputs$weights > 0) &
    (is.null(inputs$n_trials) | inputs$n_trials > 0)
  y <- inputs$y[counts]
  n <- inputs$n_trials[counts]
  m <- mean(y)
  v <- stats::var(y)
  if (!is.finite(v)) v <- m
  phi <- switch(name,
    nbinom2 = if (!is.null(nb_theta_start)) nb_theta_start else
      if (v > m) m^2 / (v - m) else 10,
    nbinom1 = max(v / max(m, 1e-8) - 1, 0.05),
    beta = max(m * (1 - m) / max(v, 1e-8) - 1, 1),
    betabinomial = {
      p <- y / n
      max(mean(p) * (1 - mean(p)) / max(stats::var(p), 1e-8) - 1, 1)
    },
    gaussian = max(v, 1e-8),
    Gamma = max(m^2 / max(v, 1e-8), 0.1))
  start <- numeric(ncol(disp$X))
  icpt <- match("(Intercept)", colnames(disp$X))
  if (!is.na(icpt)) start[icpt] <- log(min(max(phi, 1e-4), 1e4))
  start
}

# The engine's fit from the dispersion's moment start, or where PIRLS fails
# at that start, from glmmTMB's start (the dispersion model's coefficients
# at 0, phi = 1); the error of the first is raised when both fail. The moment
# estimate reads the marginal variance, which large random effects inflate:
# nbinom1 counts with a random-intercept sd of 5 (glmmTMB's test-families.R
# data) gave phi ~ 1e4 there, where the observed information of the joint
# modes is not positive definite.
with_unit_dispersion_start <- function(fit_raw, engine_family, n_disp) {
  first <- tryCatch(fit_raw(engine_family), error = function(e) e)
  if (!inherits(first, "error")) return(first)
  if (n_disp == 0L || !grepl("at the starting values", conditionMessage(first), fixed = TRUE) ||
      all(engine_family$start[seq_len(n_disp)] == 0)) {
    stop(first)
  }
  unit <- engine_family
  unit$start[seq_len(n_disp)] <- 0
  tryCatch(fit_raw(unit), error = function(e) stop(first))
}

# TRUE when a zero-inflation coefficient of `fit` ran off: the Hessian over
# all parameters is not positive definite along it, so its standard error is
# NA (not when the Hessian was not computed).
zi_coefficients_run_off <- function(fit, control) {
  if (isFALSE(control$calc.derivs)) return(FALSE)
  se2 <- diag(as.matrix(fit$extended$vcov_full))
  any(is.na(se2[startsWith(names(se2), "zi.")]))
}

# A fit whose zero-inflation coefficients ran off (a zero-inflation
# probability heading for 0 or 1 in some cell) searched again with those
# coefficients started at 0 (glmmTMB's start) instead of the share of zeros;
# the better end is kept (the lower deviance, among the ends without
# convergence messages when one has none). In a cell with few zeros, the
# likelihood can rise both towards a zero-inflation probability of 0 and
# to an interior optimum: glmmTMB's ?Salamanders model zipm3 (count ~
# spp * mined, ziformula = ~ spp * mined) ended with zi sppEC-L at -21.5 and
# logLik -860.1008 from the share-of-zeros start, at -4.54 and -860.0441
# (glmmTMB's optimum) from 0. The fit, with attribute "raw" (the engine's
# result kept); `optinfo$starts` counts both searches.
with_zero_start_zi <- function(fit, raw, engine_family, n_zi, fit_raw, make_fit) {
  zero_start <- engine_family
  idx <- length(zero_start$start) - n_zi + seq_len(n_zi)
  zero_start$start[idx] <- 0
  with_other_start(fit, raw, zero_start, fit_raw, make_fit)
}

# The fit `fit` (engine result `raw`) or the fit from the start of
# `other_family` (fit_raw() of it), whichever ends lower (among the ends
# without convergence messages when one has none); with attribute "raw", the
# engine's result kept, whose `starts` count both searches.
with_other_start <- function(fit, raw, other_family, fit_raw, make_fit) {
  other_raw <- tryCatch(fit_raw(other_family), error = function(e) NULL)
  if (is.null(other_raw) || !is.finite(other_raw$deviance)) return(structure(fit, raw = raw))
  clean <- function(r) length(r$messages) == 0L
  better <- other_raw$deviance < raw$deviance - 1e-8 && (clean(other_raw) || !clean(raw))
  better <- better || (clean(other_raw) && !clean(raw))
  best_raw <- if (better) other_raw else raw
  best_raw$stage2$starts <- sum(vapply(list(raw, other_raw), function(r) {
    max(1L, as.integer(r$stage2$starts))
  }, 1L))
  structure(make_fit(best_raw), raw = best_raw)
}

# TRUE when a negative binomial fit (without zero inflation) heads for its
# Poisson limit: its dispersion is beyond poisson_side_phi() somewhere, or
# the search stopped at maxfun. Along that ridge the deviance falls ever more
# slowly (an ar1() nbinom2 model of sleepstudy's rounded reaction times ran
# out of its 10,000 evaluations 2e-3 below the Poisson limit, which glmmTMB
# reaches; from the Poisson side the search ends there in 173).
heads_for_poisson_limit <- function(fit, name, control) {
  if (!name %in% c("nbinom1", "nbinom2")) return(FALSE)
  phi <- fit$extended$disp$phi
  limit <- poisson_side_phi(name)
  beyond <- if (name == "nbinom2") any(phi > limit) else any(phi < limit)
  stopped <- fit$optinfo$conv$opt == 1L &&
    grepl("maximum number of evaluations", fit$optinfo$message, fixed = TRUE)
  isTRUE(beyond) || isTRUE(stopped)
}

# Starting values of the zero-inflation coefficients: for the intercept the
# log odds of half the share of zeros (at most 0.5, at least 0.02).
zero_inflation_start <- function(inputs, zi) {
  start <- numeric(ncol(zi$X))
  icpt <- match("(Intercept)", colnames(zi$X))
  share <- min(max(mean(inputs$y == 0) / 2, 0.02), 0.5)
  if (!is.na(icpt)) start[icpt] <- stats::qlogis(share)
  start
}

# The "glmm" object of an extended fit: glmm_object() on the (theta, beta)
# part (the Hessian's extra parameters eliminated by their Schur complement,
# so the fixed effects' covariance is that of the full Hessian) plus
# `extended` (the zero-inflation and dispersion models, the full covariance).
extended_object <- function(mc, inputs, raw, family, nAGQ, control, zi, disp,
                            style, zi_random = NULL) {
  nth <- length(raw$par)
  # The zero-inflation model's covariance parameters follow the conditional
  # model's in the Hessian; like the family's own parameters they are
  # eliminated from the (theta, beta) part glmm_object() reads.
  nzp <- if (is.null(zi_random)) 0L else zi_random$n_par
  p <- length(raw$beta)
  kd <- if (is.null(disp)) 0L else ncol(disp$X)
  kz <- if (is.null(zi)) 0L else ncol(zi$X)
  ne <- kd + kz
  k <- nth + nzp + ne + p
  H <- if (length(raw$hessian) == k * k) matrix(raw$hessian, k, k) else NULL
  ran_off <- integer(0)
  if (!is.null(H)) {
    finite <- finite_hessian_part(H)
    H <- finite$H
    ran_off <- finite$ran_off
  }
  keep <- c(seq_len(nth), nth + nzp + ne + seq_len(p))
  extra_idx <- nth + seq_len(nzp + ne)
  reduced <- raw
  if (!is.null(H)) {
    Hk <- H[keep, keep, drop = FALSE]
    He <- H[extra_idx, extra_idx, drop = FALSE]
    # (A Poisson fit with neither zero inflation nor a dispersion model has
    # nothing to eliminate.)
    schur <- if (!length(extra_idx)) Hk else tryCatch(
      Hk - H[keep, extra_idx, drop = FALSE] %*% solve(He, H[extra_idx, keep, drop = FALSE]),
      error = function(e) matrix(NA_real_, length(keep), length(keep)))
    reduced$hessian <- as.double(schur)
    reduced$gradient <- raw$gradient[keep]
  }
  fixed_theta <- disp$fixed_theta
  if (style == "glmer.nb") {
    theta_nb <- if (is.null(fixed_theta)) exp(raw$extra[1L]) else fixed_theta
    family <- nb_family(theta_nb, family$link)
  }
  fit <- glmm_object(mc, inputs, reduced, family, nAGQ, control, scale_free = TRUE)
  extra <- raw$extra
  b_disp <- if (kd > 0L) stats::setNames(extra[seq_len(kd)], colnames(disp$X))
  b_zi <- if (kz > 0L) stats::setNames(extra[kd + seq_len(kz)], colnames(zi$X))
  part_eta <- function(part, b) {
    eta <- drop(part$X %*% b)
    if (!is.null(part$offset)) eta <- eta + part$offset
    eta
  }
  obs_names <- rownames(inputs$frame)
  if (kz > 0L) {
    zi$beta <- b_zi
    zi$eta <- stats::setNames(
      if (is.null(zi_random)) part_eta(zi, b_zi) else raw$zi_logit, obs_names)
    zi$prob <- stats::plogis(zi$eta)
    zi$random <- zi_random
  }
  if (kd > 0L) {
    disp$beta <- b_disp
    disp$eta <- stats::setNames(part_eta(disp, b_disp), obs_names)
    disp$phi <- exp(disp$eta)
  } else if (!is.null(fixed_theta)) {
    disp$eta <- stats::setNames(disp$offset, obs_names)
    disp$phi <- exp(disp$eta)
  }
  name <- if (style == "glmer.nb") "nbinom2" else family$family
  sigma <- if (!is.null(fixed_theta)) fixed_theta else if (kd == 0L) 1 else if (kd > 1L) NA_real_ else {
    phi <- exp(b_disp[[1L]])
    switch(name, gaussian = sqrt(phi), Gamma = 1 / sqrt(phi), phi)
  }
  cov_all <- extended_covariance(H, nth + nzp, kd, kz, p, names(fit$beta),
                                 names(b_disp), names(b_zi), ran_off)
  fit$extended <- list(
    style = style, family = name, zi = zi, disp = disp, sigma = sigma,
    extra = extra, n_trials = inputs$n_trials, prior_weights = inputs$weights,
    working_weights = raw$working_weights,
    zi_working_weights = if (!is.null(zi_random)) raw$zi_working_weights,
    vcov = cov_all$blocks, vcov_full = cov_all$full, vcov_all = cov_all$all, hessian = H,
    loglik = -raw$deviance / 2, df = nth + nzp + ne + p + !is.null(fixed_theta))
  fit
}

# The Hessian `H` over all parameters with the parameters that ran off held
# fixed. A coefficient that ran off to infinity (a zero-inflation probability
# underflowing to 0 in some cell) leaves no curvature along it (Salamanders,
# count ~ spp + mined, ziformula = ~ spp + mined, nbinom2: zi sppDF at -62.5,
# curvature 1e-24 against 1e2 for the others, which made every standard
# error NA) or non-finite finite differences in its row and column. Those
# with non-finite entries are taken out one at a time, the one with the most
# first, until the rest is finite; then those whose curvature is below 1e-8
# of the largest. Their rows and columns become those of a parameter held
# fixed (0 off the diagonal, 1 on it), so the covariance of the others is
# that of the model with those parameters at their limit. `ran_off`: their
# indices, whose covariance is NA.
finite_hessian_part <- function(H) {
  ran_off <- integer(0)
  repeat {
    bad <- !is.finite(H)
    bad[ran_off, ] <- FALSE
    bad[, ran_off] <- FALSE
    if (!any(bad)) break
    ran_off <- c(ran_off, which.max(rowSums(bad)))
  }
  curv <- diag(H)
  curv[ran_off] <- NA
  if (any(!is.na(curv))) {
    flat <- which(curv <= 1e-8 * max(abs(curv), na.rm = TRUE))
    ran_off <- c(ran_off, flat)
  }
  if (length(ran_off)) {
    H[ran_off, ] <- 0
    H[, ran_off] <- 0
    H[cbind(ran_off, ran_off)] <- 1
  }
  list(H = H, ran_off = ran_off)
}

# The dispersion "model" of a negative binomial with theta fixed (glmer()'s
# family = MASS::negative.binomial(theta)): no coefficients, log theta as the
# offset of every observation, so the engine holds theta where it is.
fixed_dispersion_part <- function(theta, n) {
  list(X = matrix(0, n, 0L), offset = rep(log(theta), n), formula = ~0,
       fixed_theta = theta)
}

# Is `object` a fit of the negative binomial with theta fixed?
is_fixed_nb <- function(object) !is.null(object$extended$disp$fixed_theta)

# Stops on what a fit of the negative binomial with theta fixed cannot do
# yet, naming that family (glmer() does these through its general family
# code; here the fit runs on the extended engine, as glmm.nb()'s).
check_fixed_nb_options <- function(theta, nAGQ, devFunOnly, control) {
  what <- paste0("the negative binomial family with a fixed theta (",
                 "MASS::negative.binomial(", format(theta), "))")
  if (devFunOnly) {
    stop("devFunOnly = TRUE is not available yet for ", what, "; fit the model ",
         "instead", call. = FALSE)
  }
  if (!is.null(control$optimizer_fun) || any(control$optimizer == "none")) {
    stop("a user optimizer (or optimizer = \"none\") is not available yet for ",
         what, ": use the engine's BOBYQA or Nelder_Mead", call. = FALSE)
  }
  invisible(NULL)
}

# theta of a negative binomial family object with a fixed theta (MASS's
# negative.binomial(), or the family of a glmm.nb() fit), else NULL. Its
# link must be one glmm.nb() fits.
fixed_nb_theta <- function(family) {
  if (!inherits(family, "family")) return(NULL)
  name <- family$family
  if (!is.character(name) || length(name) != 1L ||
      !startsWith(name, "Negative Binomial(")) {
    return(NULL)
  }
  theta <- family$theta
  if (is.null(theta) && is.function(family$aic)) {
    theta <- get0(".Theta", envir = environment(family$aic), inherits = FALSE)
  }
  if (is.null(theta)) {
    stop("'family' (", name, ") is a negative binomial family whose theta ",
         "could not be read: build it with MASS::negative.binomial(theta)",
         call. = FALSE)
  }
  if (!is.numeric(theta) || length(theta) != 1L || !is.finite(theta) || theta <= 0) {
    stop("the negative binomial family's theta must be a single positive ",
         "number, not ", deparse1(c(theta)), call. = FALSE)
  }
  link <- family$link
  if (!is.character(link) || length(link) != 1L ||
      !link %in% c("log", "sqrt", "identity")) {
    stop("the negative binomial family with a fixed theta takes the \"log\", ",
         "\"sqrt\" or \"identity\" link, not ", deparse1(link), call. = FALSE)
  }
  as.double(theta)
}

# The covariance of c(cond, zi, disp) coefficients from the Hessian of the
# deviance over c(theta, disp, zi, beta): twice its inverse, reordered
# (`full`), in blocks per part (`blocks`), and in the Hessian's order with
# the covariance parameters' rows "par.<i>" (`all`).
extended_covariance <- function(H, nth, kd, kz, p, cond_names, disp_names,
                                zi_names, ran_off = integer(0)) {
  k <- nth + kd + kz + p
  idx_d <- nth + seq_len(kd)
  idx_z <- nth + kd + seq_len(kz)
  idx_b <- nth + kd + kz + seq_len(p)
  inv <- if (is.null(H)) NULL else tryCatch(solve(H), error = function(e) NULL)
  V <- if (is.null(inv)) matrix(NA_real_, k, k) else inv + t(inv)
  V[ran_off, ] <- NA_real_
  V[, ran_off] <- NA_real_
  # A negative variance (a Hessian that is not positive definite along a
  # coefficient whose curvature is below its numerical noise) is no variance:
  # its row and column are NA, named by report_extended_covariance().
  neg <- which(diag(V) < 0)
  V[neg, ] <- NA_real_
  V[, neg] <- NA_real_
  order <- c(idx_b, idx_z, idx_d)
  labels <- c(paste0("cond.", cond_names), if (kz) paste0("zi.", zi_names),
              if (kd) paste0("disp.", disp_names))
  full <- V[order, order, drop = FALSE]
  dimnames(full) <- list(labels, labels)
  # every parameter in the Hessian's order, the covariance parameters first
  # (what vcov(full = TRUE) maps to glmmTMB's theta)
  dimnames(V) <- rep(list(c(paste0("par.", seq_len(nth)),
                            labels[match(nth + seq_len(k - nth), order)])), 2L)
  block <- function(idx, nm) {
    if (length(idx) == 0L) return(NULL)
    m <- V[idx, idx, drop = FALSE]
    dimnames(m) <- list(nm, nm)
    m
  }
  list(full = full, all = V,
       blocks = list(cond = block(idx_b, cond_names), zi = block(idx_z, zi_names),
                     disp = block(idx_d, disp_names)))
}

# glmer.nb()'s family object: the negative binomial with theta fixed at its
# estimate, as MASS::negative.binomial() defines it ("Negative
# Binomial(theta)", rounded to 4 decimals as lme4 prints it).
nb_family <- function(theta, link = "log") {
  lk <- stats::make.link(link)
  structure(list(
    family = paste0("Negative Binomial(", format(round(theta, 4)), ")"),
    link = link, linkfun = lk$linkfun, linkinv = lk$linkinv,
    mu.eta = lk$mu.eta, valideta = lk$valideta,
    variance = function(mu) mu + mu^2 / theta,
    validmu = function(mu) all(mu > 0),
    dev.resids = function(y, mu, wt) {
      2 * wt * (y * log(pmax(1, y) / mu) -
                  (y + theta) * log((y + theta) / (mu + theta)))
    },
    aic = function(y, n, mu, wt, dev) {
      term <- (y + theta) * log(mu + theta) - y * log(mu) + lgamma(y + 1) -
        theta * log(theta) + lgamma(theta) - lgamma(theta + y)
      2 * sum(term * wt)
    },
    theta = theta),
    class = "family")
}
