# Randomized comparison with lme4 at full precision: the model generators and
# the comparison of one model, shared by test-random-models.R and the larger
# standalone bench/random-models.R.
#
# Every model is drawn from its own seed (set.seed(seed) at the start of the
# generator), so a failure is reproduced by its kind and seed alone.

# --- generators ---------------------------------------------------------------

random_lmm_kinds <- c("intercept", "slopes", "uncorrelated", "crossed", "nested",
                      "small", "small_slopes", "weights")

# A random linear mixed model of `kind`: list(label, formula, data, REML,
# weights (TRUE when the data's column w holds prior weights)).
random_lmm <- function(kind, seed) {
  kind <- match.arg(kind, random_lmm_kinds)
  set.seed(seed)
  if (kind == "small_slopes") {
    # 15 observations of at most 4 groups, a random slope with a correlation
    # of -1 between intercept and slope; REML
    g <- factor(sample(4, 15, TRUE))
    x <- stats::rnorm(15)
    d <- data.frame(g, x, y = x + stats::rnorm(4)[g] * (1 - x) + stats::rnorm(15))
    return(list(label = sprintf("LMM %s seed %d: y ~ x + (x | g), REML = TRUE (n = 15)",
                                kind, seed),
                formula = y ~ x + (x | g), data = d, REML = TRUE, weights = FALSE))
  }
  reml <- stats::runif(1) < 0.5
  sd_u <- stats::runif(1, 0, 1.5)      # may be near 0: singular fits
  sd_s <- stats::runif(1, 0, 1)
  rho <- stats::runif(1, -0.9, 0.9)
  sigma <- stats::runif(1, 0.3, 2)
  ng <- sample(5:25, 1)
  if (kind == "small") {
    n <- 15L
    ng <- 4L
    g <- factor(sample(ng, n, replace = TRUE))
  } else {
    n <- ng * sample(3:12, 1)
    g <- factor(sample(ng, n, replace = TRUE))
  }
  x <- stats::rnorm(n)
  z0 <- stats::rnorm(nlevels(g))
  z1 <- rho * z0 + sqrt(1 - rho^2) * stats::rnorm(nlevels(g))
  eta <- 1 + 0.5 * x + sd_u * z0[g] + sd_s * z1[g] * x
  d <- data.frame(g = g, x = x)
  w <- FALSE
  formula <- switch(kind,
    intercept = y ~ x + (1 | g),
    slopes = y ~ x + (x | g),
    uncorrelated = y ~ x + (x || g),
    small = if (seed %% 2 == 0) y ~ x + (x | g) else y ~ x + (1 | g),
    crossed = {
      nh <- sample(4:15, 1)
      d$h <- factor(sample(nh, n, replace = TRUE))
      eta <- eta + stats::runif(1, 0, 1) * stats::rnorm(nh)[d$h]
      y ~ x + (1 | g) + (1 | h)
    },
    nested = {
      d$s <- factor(sample(3, n, replace = TRUE))
      gs <- interaction(d$g, d$s)
      eta <- eta + stats::runif(1, 0, 1) * stats::rnorm(nlevels(gs))[gs]
      y ~ x + (1 | g / s)
    },
    weights = {
      d$w <- stats::runif(n, 0.3, 3)
      w <- TRUE
      if (seed %% 2 == 0) y ~ x + (x | g) else y ~ x + (1 | g)
    })
  noise <- stats::rnorm(n, sd = sigma)
  d$y <- eta + if (w) noise / sqrt(d$w) else noise
  list(label = sprintf("LMM %s seed %d: %s, REML = %s%s (n = %d)", kind, seed,
                       deparse1(formula), reml, if (w) ", weights = w" else "", n),
       formula = formula, data = d, REML = reml, weights = w)
}

random_glmm_kinds <- c("logit", "logit_slopes", "probit", "cloglog", "poisson",
                       "poisson_offset", "gamma_log")

# A random GLMM of `kind`: list(label, formula, data, family, nAGQ, cbind
# (TRUE when the response is cbind(succ, trials - succ))). nAGQ is drawn from
# what lme4 allows: 0, 1 and (one scalar random-effects term, no dispersion)
# 5 or 9.
random_glmm <- function(kind, seed) {
  kind <- match.arg(kind, random_glmm_kinds)
  set.seed(seed)
  ng <- sample(8:30, 1)
  n <- ng * sample(5:15, 1)
  g <- factor(sample(ng, n, replace = TRUE))
  x <- stats::rnorm(n)
  sd_u <- stats::runif(1, 0.1, 1.2)
  u <- sd_u * stats::rnorm(nlevels(g))
  d <- data.frame(g = g, x = x)
  scalar <- TRUE
  family <- switch(kind,
    logit = , logit_slopes = stats::binomial(),
    probit = stats::binomial(link = "probit"),
    cloglog = stats::binomial(link = "cloglog"),
    poisson = , poisson_offset = stats::poisson(),
    gamma_log = stats::Gamma(link = "log"))
  eta <- -0.3 + 0.6 * x + u[g]
  if (kind == "logit_slopes") {
    scalar <- FALSE
    eta <- eta + stats::runif(1, 0.1, 0.8) * stats::rnorm(nlevels(g))[g] * x
  }
  formula <- if (scalar) y ~ x + (1 | g) else y ~ x + (x | g)
  cb <- FALSE
  if (kind %in% c("logit", "logit_slopes")) {
    d$y <- stats::rbinom(n, 1, stats::plogis(eta))
  } else if (kind %in% c("probit", "cloglog")) {
    d$trials <- sample(1:6, n, replace = TRUE)
    d$y <- stats::rbinom(n, d$trials, family$linkinv(eta * 0.6))
    formula <- cbind(y, trials - y) ~ x + (1 | g)
    cb <- TRUE
  } else if (kind == "poisson") {
    d$y <- stats::rpois(n, exp(0.5 + 0.4 * x + u[g]))
  } else if (kind == "poisson_offset") {
    d$t <- stats::runif(n, 0.5, 4)
    d$y <- stats::rpois(n, d$t * exp(0.2 + 0.4 * x + u[g]))
    formula <- y ~ x + offset(log(t)) + (1 | g)
  } else {
    shape <- stats::runif(1, 2, 10)
    d$y <- stats::rgamma(n, shape = shape, rate = shape / exp(0.5 + 0.3 * x + u[g]))
  }
  nagq_choices <- if (scalar && kind != "gamma_log") c(0L, 1L, 5L, 9L) else c(0L, 1L)
  nagq <- nagq_choices[[sample(length(nagq_choices), 1)]]
  fam_label <- paste0(family$family, "(", family$link, ")")
  list(label = sprintf("GLMM %s seed %d: %s, %s, nAGQ = %d (n = %d)", kind, seed,
                       deparse1(formula), fam_label, nagq, n),
       formula = formula, data = d, family = family, nAGQ = nagq)
}

# --- numerical Hessian --------------------------------------------------------

# Hessian of f at x by central differences with Richardson extrapolation
# (steps h, h/2, h/4, h/8 with h = 1e-2 * max(|x_i|, 0.1) per coordinate;
# error O(h^8)). Used when numDeriv is not installed.
richardson_hessian <- function(f, x, levels = 4L) {
  k <- length(x)
  h0 <- 1e-2 * pmax(abs(x), 0.1)
  f0 <- f(x)
  one_step <- function(h) {
    H <- matrix(0, k, k)
    fp <- fm <- numeric(k)
    for (i in seq_len(k)) {
      e <- replace(numeric(k), i, h[i])
      fp[i] <- f(x + e)
      fm[i] <- f(x - e)
      H[i, i] <- (fp[i] - 2 * f0 + fm[i]) / h[i]^2
    }
    for (i in seq_len(k - 1L)) for (j in (i + 1L):k) {
      ei <- replace(numeric(k), i, h[i])
      ej <- replace(numeric(k), j, h[j])
      H[i, j] <- H[j, i] <- (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) +
                               f(x - ei - ej)) / (4 * h[i] * h[j])
    }
    H
  }
  tab <- lapply(seq_len(levels) - 1L, function(m) one_step(h0 / 2^m))
  for (m in seq_len(levels - 1L)) {
    tab <- lapply(seq_len(length(tab) - 1L), function(i) {
      (4^m * tab[[i + 1L]] - tab[[i]]) / (4^m - 1)
    })
  }
  tab[[1L]]
}

# numDeriv's Richardson Hessian when installed, from a first step of 1% of
# each coordinate: its default 10% is too coarse for the Laplace deviance (GLMM
# probit seed 55: standard errors 7e-3 off lme4's own; from 1%, 2e-6). As in
# richardson_hessian(), a coordinate below 0.1 in size steps by at least 1e-3:
# a step of 1% of a theta near 0 amplifies the criterion's rounding (GLMM
# logit_slopes seed 30 at theta = 3.5e-5: a step of 3.5e-7 put the reference
# standard errors 3% off, where the same fit at theta = 1.8e-4 had them 5e-5 off).
numeric_hessian <- function(f, x) {
  if (requireNamespace("numDeriv", quietly = TRUE)) {
    numDeriv::hessian(f, x, method.args = list(d = 0.01, r = 4, zero.tol = 0.1, eps = 1e-3))
  } else {
    richardson_hessian(f, x)
  }
}

# --- an exact GLMM criterion ---------------------------------------------------

# lme4's stage-2 criterion f(c(theta, beta)) of a GLMM with one grouping
# factor g (a random intercept, or an intercept and a slope on `z` when
# length(theta) == 3), computed here from scratch to full precision: the
# conditional modes u by Fisher scoring to |step| < 1e-13 per group, all
# groups at once; then the family's aic() + |u|^2 + log det(Lambda'Z'WZ Lambda
# + I) (W the working weights at the modes); for nAGQ > 1 (scalar terms) the
# deviance residuals instead of aic(), minus 2 log of the adaptive
# Gauss-Hermite sum per group. lme4's own deviance function (glmer(devFunOnly
# = TRUE)) is not smooth at the 1e-8 relative level: its PIRLS starts where
# the previous evaluation left it and stops early, so its value jumps by ~1e-5
# between nearby points (Poisson seed 1047: second differences from steps of
# 3e-4 off by a factor 2.5) and finite differences of it are no reference.
# compare_random_glmm() checks this function against it at our estimates.
exact_glmm_criterion <- function(pars, y, X, offset, wt, g, family, nagq = 1L, z = NULL) {
  g <- as.integer(g)
  ng <- max(g)
  slopes <- length(pars) - ncol(X) == 3L
  nth <- if (slopes) 3L else 1L
  th <- pars[seq_len(nth)]
  beta <- pars[-seq_len(nth)]
  eta0 <- drop(X %*% beta) + offset
  # Z Lambda per observation: columns a (and b)
  a <- if (slopes) th[1L] + th[2L] * z else rep(th[1L], length(y))
  b <- if (slopes) th[3L] * z else NULL
  gsum <- function(v) {
    out <- numeric(ng)
    r <- rowsum(v, g, reorder = TRUE)
    out[as.integer(rownames(r))] <- r[, 1L]
    out
  }
  state <- function(u1, u2) {
    eta <- eta0 + a * u1[g] + (if (slopes) b * u2[g] else 0)
    mu <- family$linkinv(eta)
    dr <- family$dev.resids(y, mu, wt)
    pdev <- gsum(dr) + u1^2 + (if (slopes) u2^2 else 0)
    list(mu = mu, pdev = pdev, dr = dr)
  }
  info <- function(mu, eta_mu) {
    w <- wt * eta_mu^2 / family$variance(mu)
    list(w = w, haa = gsum(w * a^2) + 1,
         hab = if (slopes) gsum(w * a * b) else 0,
         hbb = if (slopes) gsum(w * b^2) + 1 else 1)
  }
  u1 <- numeric(ng)
  u2 <- numeric(ng)
  st <- state(u1, u2)
  for (it in 1:500) {
    eta <- eta0 + a * u1[g] + (if (slopes) b * u2[g] else 0)
    me <- family$mu.eta(eta)
    r <- wt * (y - st$mu) / family$variance(st$mu) * me
    s1 <- gsum(r * a) - u1
    s2 <- if (slopes) gsum(r * b) - u2 else 0
    h <- info(st$mu, me)
    det <- h$haa * h$hbb - h$hab^2
    d1 <- (h$hbb * s1 - h$hab * s2) / det
    d2 <- if (slopes) (h$haa * s2 - h$hab * s1) / det else 0
    step <- 1
    repeat {
      new <- state(u1 + step * d1, u2 + step * d2)
      worse <- new$pdev > st$pdev * (1 + 1e-15) + 1e-13
      if (!any(worse) || step < 1e-10) break
      # halve the steps of the groups whose penalized deviance grew
      d1[worse] <- d1[worse] / 2
      if (slopes) d2[worse] <- d2[worse] / 2
      if (all(worse)) step <- step / 2
    }
    u1 <- u1 + step * d1
    u2 <- u2 + step * d2
    st <- new
    if (max(abs(step * d1), abs(step * d2)) < 1e-13) break
  }
  eta <- eta0 + a * u1[g] + (if (slopes) b * u2[g] else 0)
  h <- info(st$mu, family$mu.eta(eta))
  ldet <- log(h$haa * h$hbb - h$hab^2)
  n <- if (family$family == "binomial") wt else rep(1, length(y))
  # lme4's Laplace criterion counts the family's aic(), its quadrature the
  # deviance residuals (they differ by a constant)
  fit_term <- if (nagq > 1L) sum(st$dr) else family$aic(y, n, st$mu, wt, sum(st$dr))
  out <- fit_term + sum(u1^2) + sum(u2^2) + sum(ldet)
  if (nagq > 1L) {
    gh <- lme4::GHrule(nagq)
    sd <- 1 / sqrt(h$haa)
    acc <- numeric(ng)
    for (k in seq_len(nrow(gh))) {
      pk <- state(u1 + gh[k, "z"] * sd, u2)$pdev
      acc <- acc + gh[k, "w"] * exp(-(pk - st$pdev) / 2 + gh[k, "z"]^2 / 2)
    }
    out <- out - 2 * sum(log(acc))
  }
  out
}

# --- one model side by side ---------------------------------------------------

# Fits an lmm() model and lme4::lmer() run to full precision and returns the
# numbers the checks read: ll (ours) and ll_ref, dll = ll - ll_ref; where the
# optima agree (|dll| < 1e-6) the largest fixed-effect difference in lme4's
# standard errors (beta_se) and the largest relative difference of the
# standard errors (se_rel) against lme4's vcov(); otherwise the same two
# against lme4's own solution at our theta (its deviance function's beta and
# sigma^2 (R_X'R_X)^-1), so that our estimates are still checked.
compare_random_lmm <- function(spec) {
  d <- spec$data
  # fun(formula, data = d, REML =, weights = w (a column of d), ...)
  fit_call <- function(fun, ...) {
    cl <- as.call(c(list(fun, spec$formula, data = quote(d), REML = spec$REML),
                    if (spec$weights) list(weights = quote(w)), list(...)))
    suppressWarnings(suppressMessages(eval(cl)))
  }
  fit <- fit_call(quote(lmm))
  ref <- fit_call(quote(lme4::lmer), control = lmer_full_control_call)
  ll <- as.numeric(logLik(fit))
  ll_ref <- as.numeric(logLik(ref))
  agree <- abs(ll - ll_ref) < 1e-6
  if (agree) {
    beta_ref <- lme4::fixef(ref)
    se_ref <- sqrt(diag(as.matrix(vcov(ref))))
  } else {
    devfun <- fit_call(quote(lme4::lmer), devFunOnly = TRUE)
    devfun(unname(fit$theta))
    rho <- environment(devfun)
    n <- nrow(rho$pp$X)
    p <- ncol(rho$pp$X)
    sigma2 <- (rho$resp$wrss() + rho$pp$sqrL(1)) / (n - if (spec$REML) p else 0)
    beta_ref <- rho$pp$beta(1)
    se_ref <- sqrt(sigma2 * diag(as.matrix(rho$pp$unsc())))
  }
  se <- sqrt(diag(vcov(fit)))
  list(label = spec$label, ll = ll, ll_ref = ll_ref, dll = ll - ll_ref, agree = agree,
       beta_se = max(abs(unname(fixef(fit)) - unname(beta_ref)) / se_ref),
       se_rel = max(abs(unname(se) / unname(se_ref) - 1)),
       theta = unname(fit$theta), theta_ref = unname(lme4::getME(ref, "theta")))
}

# Fits a glmm() model and lme4::glmer() run to full precision and returns the
# numbers of compare_random_lmm(). The criterion: for nAGQ >= 1 the
# log-likelihood; for nAGQ = 0, -1/2 of the criterion that fit optimizes
# (glmer's stage-1 deviance function of theta, evaluated by lme4 at both
# estimates; the log-likelihood reported at nAGQ = 0 estimates is not
# optimized and moves to first order with them). Standard errors: for
# nAGQ >= 1 against the Hessian H (numeric_hessian()) of lme4's stage-2
# criterion f(c(theta, beta)) at our estimates, SE = sqrt(diag(2 H^-1)) of the
# beta block, with f computed exactly by exact_glmm_criterion() and checked
# against glmer's deviance function there (crit_gap); for nAGQ = 0 against
# lme4's vcov() where the optima agree, else (families without a scale
# parameter) lme4's R_X at our theta, where beta_se then compares with lme4's
# beta at our theta. `warnings`: ours.
compare_random_glmm <- function(spec) {
  d <- spec$data
  warns <- character()
  fit <- withCallingHandlers(
    suppressMessages(glmm(spec$formula, data = d, family = spec$family, nAGQ = spec$nAGQ)),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  ref <- glmer_tight(quote(lme4::glmer(spec$formula, data = d, family = spec$family,
                                       nAGQ = spec$nAGQ)), environment())
  devfun <- function(nagq) {
    suppressWarnings(suppressMessages(
      lme4::glmer(spec$formula, data = d, family = spec$family, nAGQ = nagq,
                  control = glmer_reference_control(), devFunOnly = TRUE)))
  }
  theta <- unname(fit$theta)
  se <- unname(sqrt(diag(vcov(fit))))
  # (lme4 warns where its own finite-difference Hessian is not positive
  # definite and falls back to R_X: that is lme4's business here)
  se_fit_ref <- unname(sqrt(diag(as.matrix(suppressWarnings(vcov(ref))))))
  beta_se <- NA_real_
  se_rel <- NA_real_
  crit_gap <- 0
  if (spec$nAGQ == 0L) {
    dev0 <- devfun(0L)
    crit_ref <- dev0(unname(lme4::getME(ref, "theta")))
    crit <- dev0(theta)  # leaves lme4's solution at our theta in its environment
    ll <- -crit / 2
    ll_ref <- -crit_ref / 2
    agree <- abs(ll - ll_ref) < 1e-6
    if (!agree && !(spec$family$family %in% c("Gamma", "inverse.gaussian", "gaussian"))) {
      rho <- environment(dev0)
      se_ref <- sqrt(diag(as.matrix(rho$pp$unsc())))
      beta_se <- max(abs(unname(fit$beta) - rho$pp$beta(1)) / se_ref)
      se_rel <- max(abs(se / se_ref - 1))
    }
  } else {
    ll <- as.numeric(logLik(fit))
    ll_ref <- as.numeric(logLik(ref))
    agree <- abs(ll - ll_ref) < 1e-6
    # The Hessian of lme4's criterion, computed exactly (exact_glmm_criterion())
    # after checking that it is lme4's: equal to glmer's deviance function at
    # our estimates (to 1e-4, the size of that function's jumps).
    x <- c(theta, unname(fit$beta))
    f_exact <- function(p) {
      exact_glmm_criterion(p, fit$y, fit$X, if (is.null(fit$offset)) 0 else fit$offset,
                           if (is.null(fit$weights)) rep(1, length(fit$y)) else fit$weights,
                           d$g, spec$family, spec$nAGQ, d$x)
    }
    f_lme4 <- devfun(spec$nAGQ)
    f_lme4(x)
    crit_gap <- f_exact(x) - f_lme4(x)
    H <- numeric_hessian(f_exact, x)
    V <- tryCatch(2 * solve(H), error = function(e) NULL)
    se_ref <- if (is.null(V)) NA_real_ else sqrt(diag(V)[-seq_along(theta)])
    se_rel <- max(abs(se / se_ref - 1))
  }
  if (agree) {
    beta_se <- max(abs(unname(fit$beta) - unname(lme4::fixef(ref))) / se_fit_ref)
    if (spec$nAGQ == 0L) se_rel <- max(abs(se / se_fit_ref - 1))
  }
  list(label = spec$label, ll = ll, ll_ref = ll_ref, dll = ll - ll_ref, agree = agree,
       beta_se = beta_se, se_rel = se_rel, crit_gap = crit_gap, warnings = warns,
       theta = theta, theta_ref = unname(lme4::getME(ref, "theta")))
}

# Failure messages of one comparison (character(0) when every check passes):
# logLik no worse than lme4's by more than 1e-3; where the optima agree fixed
# effects within 5e-3 of lme4's standard errors; standard errors within 5e-3
# relative of the reference.
random_model_problems <- function(r) {
  out <- character()
  num <- function(v) paste(formatC(v, digits = 8, format = "g"), collapse = ", ")
  if (!is.finite(r$dll) || r$dll < -1e-3) {
    what <- if (grepl("nAGQ = 0", r$label, fixed = TRUE)) "criterion/-2" else "logLik"
    out <- c(out, sprintf("%s %.8f is worse than lme4's %.8f by %.3g (theta %s; lme4 %s)",
                          what, r$ll, r$ll_ref, -r$dll, num(r$theta), num(r$theta_ref)))
  }
  if (!is.na(r$beta_se) && r$beta_se > 5e-3) {
    out <- c(out, sprintf("fixed effects differ from lme4's by %.3g standard errors%s",
                          r$beta_se, if (isTRUE(r$agree)) "" else " (lme4's at our theta)"))
  }
  if (!is.null(r$crit_gap) && !(abs(r$crit_gap) < 1e-4)) {
    out <- c(out, sprintf(paste("test defect: the exact criterion differs from glmer's deviance",
                                "function by %.3g at our estimates"), r$crit_gap))
  }
  if (is.na(r$se_rel) && (isTRUE(r$agree) || grepl("nAGQ = [1-9]", r$label))) {
    out <- c(out, "no reference standard errors (singular Hessian of lme4's deviance)")
  } else if (!is.na(r$se_rel) && r$se_rel > 5e-3) {
    out <- c(out, sprintf("standard errors differ from the reference by %.3g (relative)",
                          r$se_rel))
  }
  if (length(out)) paste0(r$label, ": ", out) else out
}
