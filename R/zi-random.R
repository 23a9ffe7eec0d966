# Random effects in glmm()'s zero-inflation model (glmmTMB's `ziformula = ~ x
# + (1 | g)`): the terms are built as the conditional model's are (same bar
# syntax, covariance structures and frame) and enter the engine's second
# linear predictor, the zero-inflation logit; their random effects are
# independent of the conditional model's and join them in one Laplace
# approximation (src/rust/fit/pirls.rs). Their covariance parameters follow
# the conditional model's in the engine's theta.

# The fixed part and the random-effects terms of a one-sided formula: `fixed`
# is the formula without its bars (`~ 1` when only bars were given, as
# glmmTMB reads `~ (1 | g)`), `bars` and `structures` as parse_lmm_formula()
# gives them.
split_part_formula <- function(formula) {
  parts <- read_bar_terms(expand_double_bars(formula[[2L]]), environment(formula))
  if (length(parts$bars) == 0L) {
    return(list(fixed = formula, bars = list(), structures = list()))
  }
  fixed <- formula
  fixed[[2L]] <- parts$fixed
  list(fixed = fixed, bars = parts$bars, structures = parts$structures)
}

# The zero-inflation model's random-effects terms on the model frame (as
# lmm_inputs() builds the conditional model's: ordered as lme4 orders them),
# with their flist; NULL without bars.
zi_random_terms <- function(parts, frame, env, control) {
  if (length(parts$bars) == 0L) return(NULL)
  reterms <- order_reterms(Map(make_reterm, parts$bars, parts$structures,
                               MoreArgs = list(frame = frame, env = env)))
  flist <- make_flist(reterms)
  check_grouping(flist, reterms, nrow(frame), control, allow_n = TRUE)
  list(reterms = reterms, flist = flist)
}

# The engine's terms of both models: the conditional model's, then the
# zero-inflation model's marked `predictor = "zi"`, with grouping-factor ids
# of their own (a factor shared by both models still gives separate blocks).
engine_terms_with_zi <- function(inputs, zi_random) {
  cond <- engine_terms(inputs)
  if (is.null(zi_random)) return(cond)
  first <- max(c(0L, vapply(cond, `[[`, 0L, "factor_id")))
  zi <- engine_terms(list(reterms = zi_random$reterms, flist = zi_random$flist))
  zi <- lapply(zi, function(t) {
    t$factor_id <- t$factor_id + first
    t$predictor <- "zi"
    t
  })
  c(cond, zi)
}

# Splits the engine's result of a model with random effects in the
# zero-inflation model into the conditional model's part (what glmm_object()
# reads: theta, par, u, b) and the zero-inflation model's (`zi_random`: its
# theta, par, b per term and u).
split_zi_random <- function(raw, inputs, zi_random) {
  if (is.null(zi_random)) return(list(raw = raw, zi = NULL))
  n_cond <- length(inputs$reterms)
  n_zi <- length(zi_random$reterms)
  lay_c <- covariance_layout(inputs$reterms)
  n_par <- function(lay) sum(vapply(lay, function(l) as.numeric(l$n_par), 0))
  n_theta <- function(lay) sum(vapply(lay, function(l) as.numeric(l$n_theta), 0))
  npc <- n_par(lay_c)
  ntc <- n_theta(lay_c)
  q_of <- function(rt) ncol(rt$Z) * nlevels(rt$factor)
  qc <- sum(vapply(inputs$reterms, q_of, 0))
  zi <- list(
    reterms = zi_random$reterms, flist = zi_random$flist,
    theta = raw$theta[-seq_len(ntc)], par = raw$par[-seq_len(npc)],
    u = raw$u[-seq_len(qc)], b = raw$b[n_cond + seq_len(n_zi)],
    n_par = as.integer(length(raw$par) - npc))
  raw$theta <- raw$theta[seq_len(ntc)]
  raw$par <- raw$par[seq_len(npc)]
  raw$u <- raw$u[seq_len(qc)]
  raw$b <- raw$b[seq_len(n_cond)]
  list(raw = raw, zi = zi)
}

# TRUE when `object` has random effects in its zero-inflation model.
has_zi_random <- function(object) {
  !is.null(object$extended$zi$random)
}

# The fit seen as a model of its zero-inflation random effects: the terms,
# grouping factors and conditional modes where the prediction helpers of the
# conditional model (R/predict.R) read them.
zi_random_view <- function(object) {
  zr <- object$extended$zi$random
  view <- object
  view$reterms <- zr$reterms
  view$flist <- zr$flist
  view$b <- term_modes(zr$reterms, zr$b)
  view
}

# The random part of the zero-inflation logit, Z_z b_z, for the rows of
# `newdata` (levels unseen in the fit: an error, or 0 with allow.new.levels).
zi_random_part <- function(object, newdata, allow.new.levels) {
  view <- zi_random_view(object)
  bars <- split_part_formula(object$extended$zi$full_formula)$bars
  rfd <- random_data(view, bars, newdata)
  random_part(view, bars, rfd, allow.new.levels)
}

# The fixed part of the zero-inflation logit on the fitted rows, X_z b_z + offset.
zi_fixed_eta <- function(zi) {
  eta <- drop(zi$X %*% as.vector(zi$beta))
  if (!is.null(zi$offset)) eta <- eta + zi$offset
  eta
}

# The engine's fit of a model with random effects in the zero-inflation
# model. Its likelihood can have several optima: ridges on which a
# zero-inflation variance or coefficient runs off (a zero-inflation
# probability near 0 or 1 leaves the rest of that part without effect),
# a local optimum with a zero-inflation variance at 0 (the model without
# those random effects), and separate local optima; which one a search
# reaches depends on where it starts. So it searches from three starts and
# keeps the best optimum: lme4's usual start (the call's `start`, if any),
# glmmTMB's (every coefficient and the family's parameters at 0, the
# covariance parameters at 1), and the estimates of the model without the
# zero-inflation random effects (their covariance parameters at 1). Each is
# the start of the quasi-Newton stage itself: lme4's first stage (theta
# alone, the rest held at the start) led to the zero-variance optimum more
# often. On 210 simulated models that glmmTMB fits with a positive definite
# Hessian (Poisson, nbinom1, nbinom2; 10 to 40 groups; zero-inflation groups
# shared with the conditional model or not) the best of the three is never
# below glmmTMB's optimum by more than 1e-3 in log-likelihood; any two of
# them were 1 to 5 times, lme4's start with its first stage and the nested
# start (the choice before) 6 times, by up to 2.4. On Salamanders nbinom2
# (count ~ spp + mined + (1 | site)) with ziformula = ~ mined + (1 | spp)
# only the nested start reaches glmmTMB's optimum.
# `run_engine(terms, family, theta, fixef, control)` runs the engine (its
# attribute "starts" runs it from several starts at once; see
# extended_engine_runner()); `start` is check_glmm_start()'s for the
# conditional terms.
zi_random_fit_raw <- function(run_engine, inputs, zi_random, engine_family, start,
                              control) {
  terms <- engine_terms_with_zi(inputs, zi_random)
  zi_default <- unlist(lapply(covariance_layout(zi_random$reterms), `[[`, "start"))
  cond_default <- unlist(lapply(covariance_layout(inputs$reterms), `[[`, "start"))
  theta <- c(if (is.null(start$theta)) cond_default else start$theta, zi_default)
  # Each start's quasi-Newton search that does not converge is given up
  # rather than followed by BOBYQA from its start (a ridge took 400 more
  # evaluations that way and ended on the ridge anyway), also after
  # zi_start_max_evaluations(); only when no start converges does lme4's
  # get the full search. The searches compute no derivatives: only the ends
  # that are candidates get them (zi_random_end_derivatives()).
  ctl <- unclass(control)
  ctl$quasi_newton_only <- TRUE
  search_ctl <- ctl
  search_ctl$calc.derivs <- FALSE
  search_ctl$nAGQ0initStep <- FALSE
  search_ctl$quasi_newton_max_evaluations <- zi_start_max_evaluations(
    length(theta) + length(engine_family$start) + ncol(inputs$X))
  attempt <- function(family_list, theta, fixef, ctl) {
    tryCatch(run_engine(terms, family_list, theta, fixef, ctl), error = function(e) e)
  }
  usual_theta <- if (is.null(start$theta)) NULL else theta
  starts <- list(
    usual = list(theta = usual_theta, beta = start$fixef, extra = engine_family$start),
    glmmTMB = list(theta = c(cond_default, zi_default), beta = rep(0, ncol(inputs$X)),
                   extra = rep(0, length(engine_family$start))))
  # The nested start: the estimates of the model with the zero-inflation
  # model's fixed effects alone (from the user's start, if any; no Hessian;
  # to ZI_NESTED_GRADIENT_TOL), the zero-inflation covariance parameters at
  # their defaults. Where that fit fails, the start is dropped.
  starts$nested <- list(theta = start$theta, beta = start$fixef, extra = engine_family$start,
                        nested_zi_theta = zi_default)
  nested_ctl <- unclass(control)
  nested_ctl$calc.derivs <- FALSE
  nested_ctl$quasi_newton_gtol <- ZI_NESTED_GRADIENT_TOL
  # The searches run at once, each on a thread of its own (one after the
  # other with threads = 1 or verbose); each depends only on its start. The
  # same call then takes the derivatives at the ends that are candidates
  # (zi_random_end_derivatives() says which), each on the model its search
  # ran on: the end is converged, so the engine evaluates it and takes its
  # derivatives without calibrating and searching again.
  starts <- lapply(starts, function(s) lapply(s, function(v) if (is.null(v)) NULL else as.double(v)))
  end_ctl <- NULL
  if (!isFALSE(ctl$calc.derivs)) {
    end_ctl <- ctl
    end_ctl$nAGQ0initStep <- FALSE
    end_ctl$start_at_optimum <- TRUE
  }
  fits <- attr(run_engine, "starts")(terms, engine_family, starts, search_ctl, nested_ctl,
                                     end_ctl)
  ends <- attr(fits, "ends")
  ok <- vapply(fits, function(r) !inherits(r, "error") && is.finite(r$deviance), TRUE)
  if (any(ok)) {
    fits <- zi_random_end_derivatives(fits[ok], function(nm) ends[[nm]], ctl)
  } else {
    fits <- list(usual = attempt(engine_family, usual_theta, start$fixef, unclass(control)))
    if (inherits(fits$usual, "error") || !is.finite(fits$usual$deviance)) {
      stop(conditionMessage(fits$usual), call. = FALSE)
    }
  }
  # An end the convergence checks reject is kept only if every end is
  # rejected: with an indefinite observed information in some rows, H = I +
  # A'WA can come near singular, where log|H| (so the deviance) has a narrow
  # spike downwards that a search can stop in (Salamanders nbinom2 with
  # ~ (1 | site), from the nested start with the zero-inflation intercept
  # reset: 4.2 log-likelihood units "above" glmmTMB's optimum, the deviance
  # 1 unit higher within 1e-4 of it, max|grad| 1556).
  # A rejected end that is lower is named in a warning (see glmm_extended()).
  dev <- vapply(fits, `[[`, 0, "deviance")
  checked <- vapply(fits, function(r) length(r$messages) == 0L, TRUE)
  pool <- if (any(checked)) which(checked) else seq_along(fits)
  best <- fits[[pool[which.min(dev[pool])]]]
  lower <- which(!checked & dev < best$deviance - 1e-6)
  if (length(lower)) {
    k <- lower[which.min(dev[lower])]
    best$zi_start_note <- sprintf(paste(
      "with random effects in 'ziformula' the fit searched from three starts; the one",
      "that ended %.4g log-likelihood units higher failed the convergence checks (%s), so",
      "the converged optimum is reported: the likelihood may have a narrow spike there",
      "(the Laplace approximation breaking down) or a ridge; compare with another start"),
      (best$deviance - dev[k]) / 2, paste(fits[[k]]$messages, collapse = "; "))
  }
  best
}

# The ends `fits` of the searches (engine results without derivatives) that
# the choice among them needs with their derivatives and convergence checks:
# `at_end(nm)` is the engine's result at end `nm` with the derivatives
# (stage 2 alone, which starts converged). The lowest end gets them first;
# when it passes the checks it is the answer and the others are dropped,
# else the next gets them, and so on (the choice in zi_random_fit_raw() then
# sees every end up to the first that passes; the engine ran them in this
# order and stopped at the same end). An end whose second run fails is
# dropped; if every one does, the lowest end stands without derivatives, its
# convergence unchecked and named as such (a warning, and NA standard errors
# with that reason). Saves the k + 1 gradients of the Hessian at each end that
# cannot be chosen.
zi_random_end_derivatives <- function(fits, at_end, ctl) {
  if (isFALSE(ctl$calc.derivs)) return(fits)
  fits <- fits[order(vapply(fits, `[[`, 0, "deviance"))]
  done <- list()
  why <- NULL
  for (nm in names(fits)) {
    r <- at_end(nm)
    if (is.null(r)) stop("internal: no derivatives were taken at the end of start '", nm, "'")
    if (inherits(r, "error") || !is.finite(r$deviance)) {
      if (is.null(why)) {
        why <- if (inherits(r, "error")) conditionMessage(r) else "a deviance that is not finite"
      }
      next
    }
    r$stage1 <- fits[[nm]]$stage1
    r$stage2$feval <- r$stage2$feval + fits[[nm]]$stage2$feval
    done[[nm]] <- r
    if (length(r$messages) == 0L) break
  }
  if (length(done)) return(done)
  problem <- paste("the derivatives at the optimum could not be computed (the run from it",
                   "gave:", why, ")")
  fits[[1L]]$hessian_problem <- problem
  fits[[1L]]$messages <- c(fits[[1L]]$messages, paste("convergence could not be checked:",
                                                      problem))
  fits[1L]
}

# The evaluations of a start's quasi-Newton search (stage 2, over `n_par`
# parameters) after which it is given up for the other starts. On 240
# simulated models the searches that converged took at most 91 (with about
# 7 parameters); lme4's start on Salamanders nbinom2 zi ~ mined + (1 | spp)
# took 285 without converging (its deviance depends on which of several
# modes PIRLS lands in, so it creeps on).
zi_start_max_evaluations <- function(n_par) {
  as.integer(ZI_START_EVALUATIONS_BASE + ZI_START_EVALUATIONS_PER_PARAMETER * n_par)
}
ZI_START_EVALUATIONS_BASE <- 60

# The gradient tolerance (deviance units per standard error) of the nested
# start's fit: only a start, whose search moves on from it anyway, so it stops
# well before a fit's 1e-6 (Salamanders zipoisson: 13 evaluations instead of
# 16, the same optimum at the end).
ZI_NESTED_GRADIENT_TOL <- 1e-3
ZI_START_EVALUATIONS_PER_PARAMETER <- 10
