# Confidence intervals for the parameters of "lmm" and "glmm" fits (lme4's
# confint.merMod): likelihood profiles (computed by the Rust engine,
# src/rust/inference/profile/), Wald intervals and parametric-bootstrap
# percentiles; and profile() returning the profile itself.

#' Confidence intervals for the parameters of a mixed model
#'
#' Confidence intervals for the standard deviations and correlations of the
#' random effects, the residual standard deviation and the fixed effects,
#' as lme4's `confint()` computes them for `lmer()` and `glmer()` fits.
#'
#' * `"profile"`: likelihood-profile intervals. Every parameter is moved
#'   away from its estimate in both directions while all the others are
#'   re-optimized, tracing the signed square root `zeta` of the increase of
#'   the deviance, and the interval's ends are read off where `zeta` crosses
#'   the normal quantiles, by inverting the interpolating spline of the
#'   profile, as lme4 does. For linear mixed models the profile is that of
#'   the maximum-likelihood deviance, so a REML fit is first refitted by ML
#'   (the intervals of the variance parameters are then around the ML
#'   estimates). For GLMMs (binomial and Poisson families, as in lme4) it is
#'   the fit's own criterion, the Laplace approximation or, for `nAGQ > 1`,
#'   adaptive Gauss-Hermite quadrature, with the fixed effects profiled like
#'   the variance parameters (each fixed in turn, all others re-optimized);
#'   the fit is first polished to its optimum. GLMMs with a scale parameter
#'   (Gamma, inverse Gaussian, Gaussian) and `nAGQ = 0` fits cannot be
#'   profiled (nor can they in lme4). A profile that reaches a parameter's
#'   bound before the quantile (e.g. a standard deviation of 0) gives the
#'   bound. A profile that is not monotonic (e.g. a correlation whose
#'   standard deviation reaches 0) is read by linear interpolation, with
#'   lme4's warnings. The profiles of different parameters are computed in
#'   parallel.
#' * `"Wald"`: estimate plus or minus normal quantiles times the standard
#'   error, for the fixed effects; `NA` for the variance parameters.
#' * `"boot"`: parametric bootstrap ([bootmm()]) of the variance parameters
#'   (standard deviations and correlations, and `sigma`) and the fixed
#'   effects (or of `FUN`), with intervals of type `boot.type`.
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param parm Parameters to give intervals for: indices, names, `"theta_"`
#'   (all variance parameters) or `"beta_"` (all fixed effects). Default:
#'   all.
#' @param level Confidence level.
#' @param method `"profile"`, `"Wald"` or `"boot"`.
#' @param zeta For `"profile"`: the `zeta` values at which to read the ends
#'   (instead of the normal quantiles of `level`); the columns are then
#'   unnamed.
#' @param nsim Number of bootstrap replicates.
#' @param boot.type Type of bootstrap interval: `"perc"`, `"basic"` or
#'   `"norm"` (see [confint.bootmm()]).
#' @param FUN For `"boot"`: a statistic of a fitted model (default: the
#'   variance parameters and fixed effects).
#' @param quiet Logical: suppress the message announcing profile and
#'   bootstrap computations?
#' @param oldNames Logical: name the variance parameters `.sig01`, `.sig02`,
#'   ..., `.sigma` (lme4's default) rather than `sd_(Intercept)|Subject`,
#'   `cor_Days.(Intercept)|Subject`, ..., `sigma`. Either way the order is
#'   that of lme4: per random-effects term the lower triangle of its
#'   covariance matrix, column by column (standard deviations on the
#'   diagonal, correlations below), then the residual standard deviation.
#' @param threads Number of threads for the profiles and the bootstrap
#'   refits (default `NULL`: the fit's own `threads` setting of
#'   [lmmControl()] or [glmmControl()], all cores unless set there).
#' @param seed For `"boot"`: `NULL` or a seed for [set.seed()].
#' @param ... For `"boot"`: passed to [bootmm()] (`use.u`, `re.form`,
#'   `.progress`, `PBargs`);
#'   not allowed for the other methods. For glmmTMB-style `"glmm"` fits
#'   (negative binomial, beta, zero-inflation and dispersion models), whose
#'   default method is `"Wald"`: `component`, `estimate` and `full`, see
#'   [glmm_extended_methods].
#' @return A matrix with one row per parameter and two columns named by the
#'   percentages (e.g. `"2.5 %"` and `"97.5 %"`).
#' @seealso [profile.lmm()], [bootmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' confint(fit)
#' confint(fit, method = "Wald")
#' confint(fit, parm = "beta_", quiet = TRUE)
#' confint(fit, method = "boot", nsim = 50, seed = 1)
#' @importFrom stats confint
#' @method confint lmm
#' @export
confint.lmm <- function(object, parm, level = 0.95,
                        method = c("profile", "Wald", "boot"), zeta,
                        nsim = 500, boot.type = c("perc", "basic", "norm"),
                        FUN = NULL, quiet = FALSE, oldNames = TRUE,
                        threads = NULL, seed = NULL, ...) {
  method <- match_choice(method)
  boot.type <- match_choice(boot.type)
  # lme4's confint() passes profile()'s settings on in `...`
  walk <- list(settings = list(), threads = NULL, verbose = FALSE)
  if (method == "profile" && ...length()) {
    walk_args <- list(...)
    allowed <- names(formals(profile_settings))
    given <- names(walk_args)
    if (is.null(given)) given <- rep("", length(walk_args))
    if (!all(given %in% allowed)) {
      bad <- ifelse(nzchar(given), given, "<unnamed>")[!given %in% allowed]
      stop("confint(method = \"profile\") does not use the argument(s) ",
           paste(sQuote(bad, FALSE), collapse = ", "), "; it passes on those of profile(): ",
           paste(allowed, collapse = ", "), call. = FALSE)
    }
    walk <- do.call(profile_settings, walk_args)
  } else if (method != "boot") {
    check_no_dots(..., caller = paste0("confint(method = \"", method, "\")"))
  }
  if (walk$verbose) {
    old <- options(mixedrs.progress = TRUE)
    on.exit(options(old), add = TRUE)
  }
  if (is.null(threads)) threads <- walk$threads
  check_level(level)
  n_threads <- check_threads(threads)
  if (method == "boot" && !is.null(FUN)) {
    bb <- bootmm(object, FUN = FUN, nsim = nsim, seed = seed, threads = threads, ...)
    return(boot_confint(bb, if (!missing(parm)) parm, level, boot.type, quiet))
  }
  vn <- mer_var_par_names(object, oldNames)
  an <- c(vn, colnames(object$X))
  which <- if (missing(parm)) seq_along(an) else select_parms(parm, length(vn), an)

  if (!quiet && method %in% c("profile", "boot")) {
    message("Computing ", if (method == "profile") "profile" else "bootstrap",
            " confidence intervals ...")
  }
  switch(method,
         profile = {
           # A glmm.nb() fit's theta is profiled too (re-optimized at every
           # point) but has no row of lme4's table.
           nx <- length(extended_par_names(object))
           at <- ifelse(which > length(vn), which + nx, which)
           prof <- profile_lmm(object, at, oldNames, n_threads, "confint", walk$settings)
           confint.lmmprofile(prof, level = level, zeta = zeta)
         },
         Wald = wald_confint(object, vn, which, level),
         boot = {
           bb <- boot_default(object, vn, nsim, seed, n_threads, ...)
           ci <- boot_confint(bb, NULL, level, boot.type, quiet)
           ci[which, , drop = FALSE]
         })
}

#' @rdname confint.lmm
#' @method confint glmm
#' @export
confint.glmm <- function(object, parm, level = 0.95,
                         method = c("profile", "Wald", "boot"), ...) {
  # glmmTMB-style fits: Wald by default, glmmTMB's rows (R/methods-extended.R)
  if (is_extended_fit(object)) {
    return(confint_extended(object, parm, level, if (missing(method)) "Wald" else method, ...))
  }
  confint.lmm(object, parm, level, method, ...)
}

# Arguments in `...` that a method would otherwise ignore.
check_no_dots <- function(..., caller) {
  if (...length()) {
    nms <- names(list(...))
    nms <- if (is.null(nms)) rep("", ...length()) else nms
    shown <- ifelse(nzchar(nms), nms, "<unnamed>")
    stop(caller, " does not use the argument(s) ", paste(sQuote(shown, FALSE), collapse = ", "),
         call. = FALSE)
  }
}

# A confidence level: one number strictly between 0 and 1 (`caller`, when
# given, names the function in the message).
check_level <- function(level, caller = NULL) {
  if (!is.numeric(level) || length(level) != 1L || is.na(level) || level <= 0 ||
      level >= 1) {
    stop(if (!is.null(caller)) paste0(caller, ": "),
         "'level' must be a number between 0 and 1, not ", deparse1(level), call. = FALSE)
  }
}

# lme4's column names "2.5 %", "97.5 %".
format_perc <- function(a) {
  paste(format(100 * a, trim = TRUE, scientific = FALSE, digits = 3), "%")
}

# Names of the variance parameters: .sig01, ... (.sigma) or sd_/cor_ names
# (sigma), in lme4's order.
mer_var_par_names <- function(object, oldNames = TRUE) {
  use_sc <- mer_use_sc(object)
  nth <- length(cov_par(object))
  if (oldNames) {
    return(c(sprintf(".sig%02d", seq_len(nth)), if (use_sc) ".sigma"))
  }
  structured <- has_structured_terms(object$reterms)
  layout <- if (structured) covariance_layout(object$reterms)
  nms <- unlist(lapply(seq_along(object$reterms), function(i) {
    t <- object$reterms[[i]]
    e <- t$cnms
    if (structured && layout[[i]]$structure != "us") {
      # lme4 2.x's names of a structured term's parameters: sd_<name>|g
      # (sd_*|g when homogeneous), cor_rho|g, and cor_pacf<lag>|g for toep().
      lay <- layout[[i]]
      return(vapply(seq_along(lay$role), function(k) {
        switch(lay$role[k],
               sd = paste0("sd_", if (lay$row[k] == 0L) "*" else e[lay$row[k]], "|", t$group),
               rho = paste0("cor_rho|", t$group),
               paste0("cor_pacf", lay$row[k], "|", t$group))
      }, ""))
    }
    mm <- outer(e, e, paste, sep = ".")
    mm[] <- paste0("cor_", mm, "|", t$group)
    diag(mm) <- paste0("sd_", e, "|", t$group)
    mm[lower.tri(mm, diag = TRUE)]
  }))
  c(nms, if (use_sc) "sigma")
}

# lme4's get.which(): indices from numbers, names, "theta_" and "beta_";
# errors name the argument `arg` ("parm" for confint(), "which" for profile()).
select_parms <- function(parm, nvp, names, arg = "parm") {
  nptot <- length(names)
  if (is.numeric(parm)) {
    if (anyNA(parm) || any(parm < 1 | parm > nptot | parm != round(parm))) {
      stop("'", arg, "' must hold indices between 1 and ", nptot, call. = FALSE)
    }
    return(as.integer(parm))
  }
  if (!is.character(parm)) {
    stop("'", arg, "' must be a numeric or character vector", call. = FALSE)
  }
  wi <- integer()
  if ("theta_" %in% parm) wi <- seq_len(nvp)
  if ("beta_" %in% parm && nptot > nvp) wi <- c(wi, seq.int(nvp + 1L, nptot))
  rest <- setdiff(parm, c("theta_", "beta_"))
  unknown <- setdiff(rest, names)
  if (length(unknown)) {
    stop("'", arg, "' names unknown parameters: ",
         paste(sQuote(unknown, FALSE), collapse = ", "),
         "; the parameters are ", paste(names, collapse = ", "), call. = FALSE)
  }
  wi <- sort(unique(c(wi, which(names %in% rest))))
  if (!length(wi)) warning("nothing selected by '", arg, "'", call. = FALSE)
  wi
}

wald_confint <- function(object, vn, which, level) {
  a <- (1 - level) / 2
  a <- c(a, 1 - a)
  cn <- format_perc(a)
  ci_vc <- matrix(NA_real_, length(vn), 2L, dimnames = list(vn, cn))
  cf <- mer_fixef(object)
  ses <- sqrt(diag(as.matrix(stats::vcov(object))))
  ci_fixed <- matrix(cf + ses %o% stats::qnorm(a), length(cf), 2L,
                     dimnames = list(names(cf), cn))
  rbind(ci_vc, ci_fixed)[which, , drop = FALSE]
}

# Standard deviations and correlations (lower triangles, column-major) from
# theta and sigma; NaN correlations where a standard deviation is 0, as lme4.
theta_to_sdcor <- function(theta, reterms, sigma, par = NULL) {
  q <- vapply(reterms, function(t) length(t$cnms), 1L)
  thetas <- split_theta(theta, reterms)
  layout <- NULL
  if (has_structured_terms(reterms)) {
    # Structured terms: their own parameters, standard deviations made
    # absolute, as the profiles walk on them.
    layout <- covariance_layout(reterms)
    sizes <- vapply(layout, `[[`, 1L, "n_par")
    pars <- split(par, rep(seq_along(sizes), sizes))
  }
  unlist(lapply(seq_along(q), function(i) {
    if (!is.null(layout) && layout[[i]]$structure != "us") {
      v <- pars[[as.character(i)]]
      return(ifelse(layout[[i]]$role == "sd", sigma * v, v))
    }
    tm <- matrix(0, q[i], q[i])
    tm[lower.tri(tm, diag = TRUE)] <- thetas[[i]]
    v <- sigma^2 * tcrossprod(tm)
    sd <- sqrt(diag(v))
    r <- v / outer(sd, sd)
    diag(r) <- sd
    r[lower.tri(r, diag = TRUE)]
  }))
}

# The default bootstrap statistic: variance parameters then fixed effects.
boot_default <- function(object, vn, nsim, seed, threads, ...) {
  glmm_fit <- inherits(object, "glmm")
  use_sc <- mer_use_sc(object)
  stat <- function(theta, sigma, beta, par = theta) {
    ss <- if (!glmm_fit) {
      c(theta_to_sdcor(theta, object$reterms, sigma, par), sigma)
    } else if (use_sc) {
      c(theta_to_sdcor(theta, object$reterms, 1, par), sigma)
    } else {
      theta_to_sdcor(theta, object$reterms, 1, par)
    }
    c(stats::setNames(ss, vn), stats::setNames(beta, colnames(object$X)))
  }
  FUN <- function(x) stat(x$theta, x$sigma, x$beta, cov_par(x))
  if (!is.null(object$extended)) {
    # glmm.nb() fits and the negative binomial with a fixed theta: each
    # response refitted by the extended engine (bootmm()'s path for them)
    # (`threads` as check_threads() gave it: 0 is all cores, NULL to bootmm())
    return(bootmm(object, FUN = FUN, nsim = nsim, seed = seed,
                  threads = if (threads == 0L) NULL else threads, ...))
  }
  fast <- function(x, raw) {
    sigma <- if (glmm_fit) boot_glmm_sigma(x, raw) else raw$sigma
    stat(raw$theta, sigma, raw$beta, if (is.null(raw$par)) raw$theta else raw$par)
  }
  boot_with(object, FUN, fast, nsim, seed, threads, match.call(), ...)
}

# bootmm() with a fast path for a statistic of the estimates alone.
boot_with <- function(x, FUN, fast, nsim, seed, threads, mc, use.u = FALSE,
                      re.form = NA, .progress = "none", PBargs = list()) {
  nsim <- check_nsim(nsim)
  progress <- boot_progress(.progress, PBargs, nsim)
  report <- if (!is.null(progress)) {
    on.exit(close(progress$bar), add = TRUE)
    function(i, value) progress$set(progress$bar, i / nsim)
  }
  conditional <- if (missing(re.form)) {
    boot_conditional(x, use.u, NA, missing(use.u), TRUE)
  } else {
    boot_conditional(x, use.u, re.form, missing(use.u), FALSE)
  }
  if (!is.null(seed)) {
    set.seed(seed)
  } else if (!exists(".Random.seed", envir = .GlobalEnv)) {
    stats::runif(1)
  }
  t0 <- FUN(x)
  run <- boot_run(x, nsim, conditional, threads, control_of(x, parent.frame(2L)),
                  NULL, length(t0), fast = fast, report = report)
  t <- run$t
  colnames(t) <- names(t0)
  boot_object(x, t0, t, nsim, FUN, mc, run)
}

boot_confint <- function(bb, parm, level, type, quiet) {
  if (all(is.na(bb$t))) stop("*all* bootstrap runs failed!", call. = FALSE)
  report_boot_messages(bb)
  ci <- confint.bootmm(bb, level = level, type = type)
  if (!is.null(parm)) ci <- ci[parm, , drop = FALSE]
  ci
}

# A summary of the refits' messages, warnings and errors, as lme4 gives it.
report_boot_messages <- function(bb) {
  msgs <- attr(bb, "boot.all.msgs")
  if (is.null(msgs) || all(lengths(msgs) == 0L)) return(invisible(NULL))
  out <- "\n"
  for (i in c("message", "warning", "error")) {
    m <- sort(msgs[[paste0("factory-", i)]])
    if (length(m)) {
      out <- c(out, paste0(sum(m), " ", i, "(s): ", names(m)[1L]),
               if (length(m) > 1L) " (and others)", "\n")
    }
  }
  message(out)
  invisible(NULL)
}

#' Likelihood profile of a mixed model
#'
#' Profiles the deviance of a linear or generalized linear mixed model over
#' its parameters, as lme4's `profile()` does (see [confint.lmm()] for the
#' method): for each selected parameter, the points visited, with the signed
#' square root `.zeta` of the deviance increase and the values of every
#' parameter where the others are re-optimized. For `lmm()` fits the
#' deviance is the maximum-likelihood one (a REML fit is refitted by ML
#' first); for `glmm()` fits (binomial and Poisson families, `nAGQ >= 1`) it
#' is the fit's Laplace or adaptive Gauss-Hermite deviance, and there is no
#' `.sigma`. Fits with glmmTMB's families, zero inflation or a dispersion
#' model (any family there, gaussian and Gamma included) add the family's own
#' parameters after the variance parameters: `disp.<coefficient>` (log
#' dispersion) and `zi.<coefficient>` (logit zero-inflation probability); a
#' [glmm.nb()] fit adds `theta`, re-optimized along every profile (lme4's
#' `glmer.nb` fits hold it at its estimate) and itself profiled on request.
#' With random effects in the zero-inflation model (`ziformula = ~ x + (1 |
#' g)`) their standard deviations and correlations follow the conditional
#' model's variance parameters: `.sigNN` numbered on from those, or with
#' `signames = FALSE` `zi.sd_<name>|<group>` and `zi.cor_<a>.<b>|<group>`
#' (`"theta_"` selects them too).
#'
#' A long profile can be stopped with Ctrl-C (an error, at the next point of
#' the walks); after two seconds a line on stderr counts the points done,
#' where `getOption("mixedrs.progress", interactive())` is `TRUE`.
#'
#' @param fitted A fitted model of class `"lmm"` or `"glmm"`.
#' @param which Parameters to profile (indices, names, `"theta_"`,
#'   `"beta_"`; default all).
#' @param alphamax,maxpts,delta,delta.cutoff,devtol,maxmult lme4's settings
#'   of the walks: each profile extends to `|zeta| = sqrt(qchisq(1 -
#'   alphamax, k))` (`k` the number of parameters), in steps of `delta` in
#'   zeta (default `delta.cutoff` times that limit), each at most `maxmult`
#'   times the previous one, with at most `maxpts` points each way; a
#'   deviance more than `devtol` below the optimum is an error (a better
#'   optimum exists).
#' @param verbose A number or logical: more than 0 shows the progress line
#'   of a long profile whatever `getOption("mixedrs.progress")` says (lme4
#'   prints its steps instead).
#' @param startmethod lme4's start of each point's inner optimization:
#'   only `"prev"` (the previous point's estimates) is available.
#' @param optimizer,control lme4's optimizer of the inner fits: the engine
#'   optimizes them with its BOBYQA, so `optimizer` may only be `NULL` or
#'   `"bobyqa"` and `control` only `NULL`.
#' @param signames Logical: name the variance parameters `.sig01`, ...,
#'   `.sigma` (default) rather than `sd_...`, `cor_...`, `sigma`.
#' @param parallel,ncpus lme4's parallel profiles: with `parallel` other
#'   than `"no"`, `ncpus` threads (unless `threads` is given).
#' @param cl Not available (an error if given): the parameters are profiled
#'   on threads, not on a cluster.
#' @param prof.scale Only `"sdcor"` (standard deviations and correlations)
#'   is available.
#' @param threads Number of threads (default `NULL`: the fit's own
#'   `threads` setting of [lmmControl()] or [glmmControl()], all cores unless
#'   set there); parameters are profiled in parallel.
#' @param quiet Logical: `TRUE` suppresses the progress line of a long
#'   profile (lme4's `profile()` accepts `quiet` and ignores it).
#' @param ... Not used (an error if given).
#' @return An object of class `c("lmmprofile", "data.frame")`: columns
#'   `.zeta`, one per parameter, and `.par` (the profiled parameter, a
#'   factor), rows grouped by `.par` and sorted by its value; attributes
#'   `lower`, `upper` (the bounds of the profiled parameters; for fixed
#'   effects `NA` for `lmm()` fits and `-Inf`/`Inf` for `glmm()` fits, as in
#'   lme4) and `optimum` (the estimates the profiles start from). `confint()`
#'   reads intervals off it.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
#' pr <- profile(fit)
#' head(pr)
#' confint(pr)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' confint(profile(gfit, which = "theta_"))
#' nb <- glmm.nb(TICKS ~ YEAR + (1 | BROOD), data = lme4::grouseticks)
#' confint(profile(nb, which = c("theta", ".sig01")))
#' @importFrom stats profile
#' @method profile lmm
#' @export
profile.lmm <- function(fitted, which = NULL, alphamax = 0.01, maxpts = 100, delta = NULL,
                        delta.cutoff = 1 / 8, verbose = 0, devtol = 1e-09, maxmult = 10,
                        startmethod = "prev", optimizer = NULL, control = NULL,
                        signames = TRUE, parallel = c("no", "multicore", "snow"),
                        ncpus = getOption("profile.ncpus", 1L), cl = NULL,
                        prof.scale = c("sdcor", "varcov"), threads = NULL, quiet = FALSE, ...) {
  check_no_dots(..., caller = "profile()")
  check_flag(quiet, "quiet", "profile()")
  walk <- profile_settings(alphamax = alphamax, maxpts = maxpts, delta = delta,
                           delta.cutoff = delta.cutoff, verbose = verbose, devtol = devtol,
                           maxmult = maxmult, startmethod = startmethod, optimizer = optimizer,
                           control = control, parallel = parallel, ncpus = ncpus, cl = cl,
                           prof.scale = prof.scale)
  if (quiet || walk$verbose) {
    old <- options(mixedrs.progress = !quiet)
    on.exit(options(old), add = TRUE)
  }
  if (is.null(threads)) threads <- walk$threads
  vn <- profile_var_names(fitted, signames)
  an <- c(vn, extended_par_names(fitted), colnames(fitted$X))
  idx <- if (is.null(which)) seq_along(an) else select_parms(which, length(vn), an, "which")
  profile_lmm(fitted, idx, signames, check_threads(threads), "profile", walk$settings)
}

# lme4's profile() settings, checked: the engine's walk settings (a list for
# the profile wrappers), the threads that `parallel`/`ncpus` ask for (or
# NULL) and whether `verbose` asks for progress.
profile_settings <- function(alphamax = 0.01, maxpts = 100, delta = NULL, delta.cutoff = 1 / 8,
                             verbose = 0, devtol = 1e-09, maxmult = 10, startmethod = "prev",
                             optimizer = NULL, control = NULL,
                             parallel = c("no", "multicore", "snow"),
                             ncpus = getOption("profile.ncpus", 1L), cl = NULL,
                             prof.scale = c("sdcor", "varcov")) {
  number <- function(x, name, ok, what) {
    if (!is.numeric(x) || length(x) != 1L || is.na(x) || !ok(x)) {
      stop("profile(): '", name, "' must be ", what, ", not ", deparse1(x), call. = FALSE)
    }
    as.double(x)
  }
  number(alphamax, "alphamax", function(x) x > 0 && x < 1, "a number between 0 and 1")
  number(maxpts, "maxpts", function(x) x >= 1 && x == round(x), "a positive whole number")
  if (!is.null(delta)) number(delta, "delta", function(x) x > 0, "NULL or a positive number")
  number(delta.cutoff, "delta.cutoff", function(x) x > 0, "a positive number")
  number(devtol, "devtol", function(x) x >= 0, "a number >= 0")
  number(maxmult, "maxmult", function(x) x > 1, "a number > 1")
  if ((!is.numeric(verbose) && !is.logical(verbose)) || length(verbose) != 1L || is.na(verbose)) {
    stop("profile(): 'verbose' must be a number or TRUE/FALSE", call. = FALSE)
  }
  if (!identical(startmethod, "prev")) {
    stop("profile(): startmethod = ", deparse1(startmethod), " is not available: each point ",
         "starts from the previous one's estimates (\"prev\")", call. = FALSE)
  }
  if (!is.null(optimizer) && !identical(optimizer, "bobyqa")) {
    stop("profile(): optimizer = ", deparse1(optimizer), " is not available: the engine ",
         "optimizes the inner fits with its BOBYQA (optimizer = NULL or \"bobyqa\")",
         call. = FALSE)
  }
  if (!is.null(control)) {
    stop("profile(): 'control' is not used: the engine optimizes the inner fits with its ",
         "BOBYQA's own settings", call. = FALSE)
  }
  parallel <- match.arg(parallel)
  if (!is.null(cl)) {
    stop("profile(): a cluster 'cl' cannot be used: the parameters are profiled on threads ",
         "(parallel = \"multicore\" with ncpus, or 'threads')", call. = FALSE)
  }
  if (match.arg(prof.scale) != "sdcor") {
    stop("profile(): prof.scale = \"varcov\" is not available; the profiles are of the ",
         "standard deviations and correlations (\"sdcor\")", call. = FALSE)
  }
  threads <- if (parallel != "no") {
    number(ncpus, "ncpus", function(x) x >= 1 && x == round(x), "a positive whole number")
  }
  list(settings = list(alphamax = as.double(alphamax), maxpts = as.double(maxpts),
                       delta = if (!is.null(delta)) as.double(delta),
                       delta_cutoff = as.double(delta.cutoff), maxmult = as.double(maxmult),
                       devtol = as.double(devtol)),
       threads = threads, verbose = isTRUE(verbose > 0))
}

#' @rdname profile.lmm
#' @method profile glmm
#' @export
profile.glmm <- profile.lmm

# Runs the engine's profiles of parameters `which` and assembles the
# "lmmprofile" data frame.
profile_lmm <- function(object, which, signames, threads, caller, settings = list()) {
  glmm_fit <- inherits(object, "glmm")
  extended <- !is.null(object$extended)
  if (glmm_fit && !extended) check_glmm_profile(object, caller)
  which <- sort(unique(as.integer(which)))
  if (!length(which)) {
    stop("nothing to profile: '", if (caller == "confint") "parm" else "which",
         "' selects no parameters", call. = FALSE)
  }
  vn <- profile_var_names(object, signames)
  an <- c(vn, extended_par_names(object), colnames(object$X))
  inp <- fit_engine_inputs(object)
  # A fit from shifted sums is profiled with its fixed-effect columns
  # unshifted, where beta is the fit's but for the intercept, less y_shift.
  y_shift <- if (is_sums_fit(object)) object$y_shift else 0
  if (is_sums_fit(object)) inp$sums <- unshift_x_sums(inp$sums, unname(object$x_shift))
  res <- if (extended) {
    extended_profile_rs(object, which, settings, threads, parent.frame(2L))
  } else if (glmm_fit) {
    glmm_profile_rs(inp, object$family$family, object$family$link,
                    as.double(object$n_trials), as.double(object$eta),
                    as.integer(object$nAGQ), as.double(cov_par(object)),
                    as.double(object$beta),
                    replicate_control(control_of(object, parent.frame(2L)), "profile()"),
                    as.double(which), settings,
                    engine_threads(threads, control_of(object, parent.frame(2L))))
  } else {
    lmm_profile_rs(inp, as.double(cov_par(object)), as.double(which), settings,
                   engine_threads(threads, control_of(object, parent.frame(2L))))
  }
  npar <- length(an)
  if (y_shift != 0) res$optimum[length(vn) + 1L] <- res$optimum[length(vn) + 1L] + y_shift
  pieces <- lapply(res$traces, function(tr) {
    m <- matrix(tr$pars, ncol = npar, byrow = TRUE, dimnames = list(NULL, an))
    if (y_shift != 0) m[, length(vn) + 1L] <- m[, length(vn) + 1L] + y_shift
    for (w in unique(tr$warnings)) {
      if (startsWith(w, "the profile levels off")) w <- paste0(an[tr$index], ": ", w)
      warning(w, call. = FALSE)
    }
    d <- data.frame(.zeta = tr$zeta, m, check.names = FALSE)
    d$.par <- an[tr$index]
    d
  })
  # As lme4's profile(): a profile whose interpolating spline cannot be
  # inverted is reported when it is computed.
  for (d in pieces) {
    nm <- d$.par[1L]
    r <- profile_interval_rs(as.double(d[[nm]]), as.double(d$.zeta), 0)
    if (r$method != "spline") warning("non-monotonic profile for ", nm, call. = FALSE)
  }
  out <- do.call(rbind, pieces)
  rownames(out) <- NULL
  out$.par <- factor(out$.par, levels = an[which])
  nvp <- length(vn)
  # The bounds where a profile stops short of a quantile: those of the
  # variance parameters; for fixed effects none (lme4: NA for LMMs, whose
  # fixed-effect profiles are computed apart, +-Inf for GLMMs).
  lower <- ifelse(which <= nvp | glmm_fit, res$lower[which], NA_real_)
  upper <- ifelse(which <= nvp | glmm_fit, res$upper[which], NA_real_)
  out <- structure(out, lower = stats::setNames(lower, an[which]),
                   upper = stats::setNames(upper, an[which]),
                   optimum = stats::setNames(res$optimum, an),
                   class = c("lmmprofile", "data.frame"))
  if (extended) extended_profile_theta(out) else out
}

# Linear reading of a profile with flat stretches: neighbouring points (in
# the order of the parameter) whose zeta differ by less than 1e-9 (the
# engine's tie threshold, ZETA_TIE in src/rust/inference/profile/spline.rs)
# form a stretch, of which only the point nearest the estimate `opt` is kept;
# then zeta is interpolated linearly (NA outside the points, as approxfun()).
# Exact ties left between points of different stretches are averaged by
# approx(), which warns about them.
read_flat_profile <- function(par, z, targets, opt) {
  ok <- is.finite(par) & is.finite(z)
  par <- par[ok]
  z <- z[ok]
  o <- order(par)
  par <- par[o]
  z <- z[o]
  run <- cumsum(c(TRUE, abs(diff(z)) >= 1e-9))
  keep <- vapply(split(seq_along(par), run),
                 function(idx) idx[which.min(abs(par[idx] - opt))], 0L)
  if (length(keep) == 1L) return(ifelse(targets == z[keep], par[keep], NA_real_))
  stats::approx(z[keep], par[keep], xout = targets)$y
}

# lme4 profiles glmer fits whose family has no scale parameter, by their
# Laplace or adaptive Gauss-Hermite deviance.
check_glmm_profile <- function(object, caller) {
  what <- if (caller == "confint") "profile confidence intervals" else "likelihood profiles"
  alt <- if (caller == "confint") {
    "; use method = \"Wald\" or method = \"boot\""
  } else {
    "; use confint(fit, method = \"Wald\") or confint(fit, method = \"boot\")"
  }
  if (mer_use_sc(object)) {
    stop(what, " are not available for glmm() fits of family ", object$family$family,
         " (a family with a scale parameter; lme4 cannot profile such fits either)", alt,
         call. = FALSE)
  }
  if (identical(as.integer(object$nAGQ), 0L)) {
    stop(what, " need a glmm() fit with nAGQ >= 1: with nAGQ = 0 the fixed effects are ",
         "not maximum-likelihood estimates; refit with nAGQ = 1", alt, call. = FALSE)
  }
  invisible(NULL)
}

#' @rdname profile.lmm
#' @param object An `"lmmprofile"` object.
#' @param parm Parameters (names or indices among the profiled ones; default
#'   all).
#' @param level Confidence level.
#' @param zeta Optional `zeta` values to read off instead of the normal
#'   quantiles of `level` (the columns are then unnamed).
#' @method confint lmmprofile
#' @export
confint.lmmprofile <- function(object, parm, level = 0.95, zeta, ...) {
  check_no_dots(..., caller = "confint() of a profile")
  pars <- levels(object$.par)
  if (missing(parm)) {
    parm <- pars
  } else if (is.numeric(parm)) {
    if (anyNA(parm) || any(parm < 1 | parm > length(pars) | parm != round(parm))) {
      stop("'parm' must hold indices between 1 and ", length(pars),
           " (the profiled parameters)", call. = FALSE)
    }
    parm <- pars[parm]
  } else if (is.character(parm)) {
    unknown <- setdiff(parm, pars)
    if (length(unknown)) {
      stop("'parm' names parameters that were not profiled: ",
           paste(sQuote(unknown, FALSE), collapse = ", "), "; the profile has ",
           paste(pars, collapse = ", "), call. = FALSE)
    }
    parm <- intersect(pars, parm)
  } else {
    stop("'parm' must be a numeric or character vector", call. = FALSE)
  }
  if (missing(zeta) || is.null(zeta)) {
    check_level(level)
    a <- (1 - level) / 2
    a <- c(a, 1 - a)
    zeta <- stats::qnorm(a)
    cn <- format_perc(a)
  } else {
    if (!is.numeric(zeta) || anyNA(zeta)) {
      stop("'zeta' must be a numeric vector without NAs", call. = FALSE)
    }
    cn <- NULL
  }
  lower <- attr(object, "lower")
  upper <- attr(object, "upper")
  ci <- matrix(NA_real_, length(parm), length(zeta), dimnames = list(parm, cn))
  for (i in seq_along(parm)) {
    rows <- object[object$.par == parm[i], , drop = FALSE]
    r <- profile_interval_rs(as.double(rows[[parm[i]]]), as.double(rows$.zeta),
                             as.double(zeta))
    vals <- vapply(r$values, function(v) if (is.null(v)) NA_real_ else v, numeric(1))
    if (r$method == "failed") {
      # lme4's confint.thpr: no usable point, or zeta falling all the way.
      if (all(!is.finite(rows$.zeta))) {
        warning("bad profile for ", parm[i], call. = FALSE)
      } else {
        warning("non-monotonic profile for ", parm[i], call. = FALSE)
      }
    } else {
      if (r$method == "linear") {
        warning("bad spline fit for ", parm[i],
                ": falling back to linear interpolation", call. = FALSE)
        # Points with equal zeta lie on a flat stretch of the profile (e.g. a
        # correlation whose standard deviation is 0 there): read the stretch
        # by its end nearest the estimate, where the profile leaves it,
        # rather than averaging the parameter over the stretch as approxfun()
        # does with ties.
        if (isTRUE(r$ties)) {
          vals <- read_flat_profile(rows[[parm[i]]], rows$.zeta, zeta,
                                    attr(object, "optimum")[[parm[i]]])
        }
      }
      miss <- is.na(vals)
      vals[miss & zeta < 0] <- lower[[parm[i]]]
      vals[miss & zeta >= 0] <- upper[[parm[i]]]
    }
    ci[i, ] <- vals
  }
  ci
}
