# glmm() with family = MASS::negative.binomial(theta): the negative binomial
# with theta held at the given value, side by side with lme4::glmer() on the
# same family object (lme4's model: Laplace approximation with Fisher
# weights, theta not estimated).
#
# glmer is run to its optimum (bobyqa to rhoend 1e-10, PIRLS to 1e-12); its
# default PIRLS tolerance leaves its criterion ~1e-4 above the exact Laplace
# value, which the first test computes independently. Tolerances:
# - logLik: ours at least glmer's - 2e-6 and within 1e-4 of it;
# - fixed effects: within 1e-4 of their standard error; theta (the relative
#   covariance factor) within 5e-5; standard errors within 2e-4 relatively
#   (the largest differences seen: 5e-7 on logLik, 1.5e-5 SE, 9e-6, 4e-5);
# - printouts: labels exactly, numbers within 0.2% or one unit in the last
#   printed digit (helper-print.R).

skip_if_not_installed("lme4")
skip_if_not_installed("MASS")

nb_fixed_data <- function() {
  data("grouseticks", package = "lme4", envir = environment())
  gt <- grouseticks
  gt$h <- as.numeric(scale(gt$HEIGHT))
  gt
}

nb_refit_data <- function() {
  # lme4's tests/testthat/test-nbinom_refit.R
  set.seed(101)
  dd <- expand.grid(f1 = factor(1:3), f2 = LETTERS[1:2], g = 1:9, rep = 1:15,
                    KEEP.OUT.ATTRS = FALSE)
  mu <- 5 * (-4 + with(dd, as.integer(f1) + 4 * as.numeric(f2)))
  dd$y <- stats::rnbinom(nrow(dd), mu = mu, size = 0.5)
  dd
}

# (the control is written into the call, so that lme4's refits in bootMer()
# find it)
glmer_nb_fixed <- function(formula, data, theta) {
  call <- bquote(lme4::glmer(.(formula), data = data, family = MASS::negative.binomial(.(theta)),
                             control = lme4::glmerControl(optimizer = "bobyqa",
                                                          optCtrl = list(rhoend = 1e-10),
                                                          tolPwrss = 1e-12)))
  suppressWarnings(suppressMessages(eval(call)))
}

expect_nb_fixed_parity <- function(fit, ref, what) {
  ll_o <- as.numeric(logLik(fit))
  ll_r <- as.numeric(logLik(ref))
  expect(ll_o >= ll_r - 2e-6 && abs(ll_o - ll_r) < 1e-4,
         sprintf("%s: logLik %.9f, glmer's %.9f", what, ll_o, ll_r))
  expect_equal(attr(logLik(fit), "df"), attr(logLik(ref), "df"), info = what)
  expect_equal(AIC(fit), AIC(ref), tolerance = 1e-8, info = what)
  se_r <- sqrt(diag(as.matrix(stats::vcov(ref))))
  expect_identical(names(fixef(fit)), names(lme4::fixef(ref)), info = what)
  expect_lt(max(abs(fixef(fit) - lme4::fixef(ref)) / se_r), 1e-4)
  expect_lt(max(abs(getME(fit, "theta") - lme4::getME(ref, "theta"))), 5e-5)
  se_o <- sqrt(diag(as.matrix(stats::vcov(fit))))
  expect_lt(max(abs(se_o / se_r - 1)), 2e-4)
  # (lme4 keeps the attributes theta was given with, such as an SE)
  expect_identical(getME(fit, "glmer.nb.theta"), as.numeric(lme4::getME(ref, "glmer.nb.theta")))
  expect_identical(sigma(fit), sigma(ref))
  expect_identical(stats::family(fit)$family, stats::family(ref)$family)
  expect_identical(stats::family(fit)$link, stats::family(ref)$link)
  expect_identical(getME(fit, "devcomp")$dims[["useSc"]], 0L)
  expect_equal(unname(stats::fitted(fit)), unname(stats::fitted(ref)), tolerance = 1e-5,
               info = what)
  expect_identical(stats::nobs(fit), stats::nobs(ref))
  expect_equal(stats::df.residual(fit), stats::df.residual(ref))
}

# The Laplace approximation of a fit with one scalar random-effect term
# (`group`), computed here without lme4: -2 log-likelihood of each group at
# its mode plus the log-determinant from the expected
# (Fisher) information there, prior weights multiplying the log-density as in
# MASS::negative.binomial()$aic.
exact_nb_laplace <- function(fit, y, X, group, theta, link = "log", w = rep(1, length(y))) {
  lk <- stats::make.link(link)
  lam <- unname(getME(fit, "theta"))
  eta0 <- drop(X %*% fixef(fit))
  sum(vapply(split(seq_along(y), group), function(idx) {
    nll <- function(u) {
      mu <- lk$linkinv(eta0[idx] + lam * u)
      -sum(w[idx] * stats::dnbinom(y[idx], size = theta, mu = mu, log = TRUE)) + u^2 / 2
    }
    # the global mode: a grid, then optimize() about its best point (the
    # square-root link's likelihood has a mode on each side of eta = 0)
    grid <- seq(-20, 20, by = 0.05)
    mu_grid <- lk$linkinv(outer(eta0[idx], lam * grid, "+"))
    nll_grid <- -colSums(w[idx] * stats::dnbinom(y[idx], size = theta, mu = mu_grid,
                                                 log = TRUE)) + grid^2 / 2
    best <- grid[which.min(nll_grid)]
    o <- stats::optimize(nll, best + c(-0.05, 0.05), tol = 1e-12)
    eta <- eta0[idx] + lam * o$minimum
    mu <- lk$linkinv(eta)
    fisher <- w[idx] * lk$mu.eta(eta)^2 / (mu + mu^2 / theta)
    2 * o$objective + log(1 + lam^2 * sum(fisher))
  }, numeric(1)))
}

test_that("the criterion is the exact Laplace approximation with Fisher weights", {
  gt <- nb_fixed_data()
  theta <- 2
  fit <- glmm(TICKS ~ YEAR + (1 | BROOD), data = gt, family = MASS::negative.binomial(theta))
  X <- stats::model.matrix(~YEAR, gt)
  lap <- exact_nb_laplace(fit, gt$TICKS, X, gt$BROOD, theta)
  lam <- unname(getME(fit, "theta"))
  expect_equal(-2 * as.numeric(logLik(fit)), lap, tolerance = 1e-9)
  # ... which lme4's deviance function gives when its PIRLS is run to 1e-12.
  devf <- lme4::glmer(TICKS ~ YEAR + (1 | BROOD), data = gt,
                      family = MASS::negative.binomial(theta), devFunOnly = TRUE,
                      control = lme4::glmerControl(tolPwrss = 1e-12))
  expect_equal(devf(c(lam, fixef(fit))), lap, tolerance = 1e-8)
})

test_that("fixed-theta negative binomial fits agree with glmer()", {
  gt <- nb_fixed_data()
  dd <- nb_refit_data()
  cases <- list(
    list("one term", TICKS ~ YEAR + (1 | BROOD), gt, 2),
    list("two terms", TICKS ~ YEAR + h + (1 | BROOD) + (1 | LOCATION), gt, 0.8),
    list("slope", TICKS ~ YEAR + (h | LOCATION), gt, 1.5),
    list("offset", TICKS ~ YEAR + h + (1 | BROOD) + offset(log(HEIGHT / 500)), gt, 1.2),
    list("lme4's refit data", y ~ f1 * f2 + (1 | g), dd, 0.4826813))
  for (cs in cases) {
    # (the last is singular: lme4's and our message are silenced)
    fit <- suppressMessages(glmm(cs[[2]], data = cs[[3]],
                                 family = MASS::negative.binomial(cs[[4]])))
    ref <- glmer_nb_fixed(cs[[2]], cs[[3]], cs[[4]])
    expect_nb_fixed_parity(fit, ref, cs[[1]])
    expect_identical(isSingular(fit), lme4::isSingular(ref))
  }
})

test_that("prior weights and a square-root link: the exact Laplace criterion at its optimum", {
  # glmer is no reference here. With prior weights its criterion is not the
  # weighted log-likelihood of MASS's family$aic: lme4 1.1.31's compiled aic
  # of the negative binomial (glmFamily.cpp) weights only the term
  # (y + theta) log(mu + theta) (-2 logLik 1256.8 where the weighted
  # likelihood gives 1838.9 at its estimates; ours 1828.7). And its PIRLS
  # does not converge on the square-root link for these data.
  gt <- nb_fixed_data()
  set.seed(3)
  gt$w <- stats::runif(nrow(gt)) + 0.5
  X <- stats::model.matrix(~YEAR, gt)
  for (link in c("log", "sqrt")) {
    fam <- MASS::negative.binomial(1.5, link = link)
    w <- if (link == "log") gt$w else rep(1, nrow(gt))
    fit <- if (link == "log") {
      glmm(TICKS ~ YEAR + (1 | BROOD), data = gt, weights = w, family = fam)
    } else {
      glmm(TICKS ~ YEAR + (1 | BROOD), data = gt, family = fam)
    }
    expect_identical(stats::family(fit)$link, link)
    dev <- -2 * as.numeric(logLik(fit))
    expect_equal(dev, exact_nb_laplace(fit, gt$TICKS, X, gt$BROOD, 1.5, link, w),
                 tolerance = 1e-9, info = link)
    # an optimum: moving any parameter raises the exact criterion
    for (k in seq_len(1 + ncol(X))) {
      for (step in c(-1e-3, 1e-3)) {
        moved <- fit
        if (k == 1L) moved$theta[[1L]] <- moved$theta[[1L]] + step else
          moved$beta[[k - 1L]] <- moved$beta[[k - 1L]] + step
        expect_gt(exact_nb_laplace(moved, gt$TICKS, X, gt$BROOD, 1.5, link, w), dev)
      }
    }
  }
})

test_that("print() and summary() read as glmer()'s", {
  gt <- nb_fixed_data()
  fit <- glmm(TICKS ~ YEAR + (1 | BROOD), data = gt, family = MASS::negative.binomial(2))
  ref <- glmer_nb_fixed(TICKS ~ YEAR + (1 | BROOD), gt, 2)
  ref@call$control <- NULL
  ref@call$family <- quote(MASS::negative.binomial(2))
  align <- function(lines) {
    lines <- gsub("[glmm]", "[glmerMod]", lines, fixed = TRUE)
    sub("^ *(Data):.*", "\\1", lines)  # the helper's call names the data `data`
  }
  expect_same_print(printed(fit)$out, printed(ref)$out, align)
  expect_same_print(printed(summary(fit))$out, printed(summary(ref))$out, align)
  expect_match(printed(fit)$out, "^ Family: Negative Binomial\\(2\\)  \\( log \\)$", all = FALSE)
})

test_that("nAGQ = 0 (the fixed effects inside PIRLS) is glmer's", {
  gt <- nb_fixed_data()
  for (cs in list(list(TICKS ~ YEAR + (1 | BROOD), 2),
                  list(TICKS ~ YEAR + h + (1 | BROOD) + (1 | LOCATION), 0.8))) {
    # (no warning: the covariance is lme4's from R_X)
    expect_no_warning(
      fit <- glmm(cs[[1]], data = gt, family = MASS::negative.binomial(cs[[2]]), nAGQ = 0))
    ref <- suppressWarnings(lme4::glmer(
      cs[[1]], data = gt, family = MASS::negative.binomial(cs[[2]]), nAGQ = 0,
      control = lme4::glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10),
                                   tolPwrss = 1e-12)))
    # the criterion nAGQ = 0 optimizes: glmer's deviance function of theta,
    # evaluated by lme4 at both estimates
    dev0 <- lme4::glmer(cs[[1]], data = gt, family = MASS::negative.binomial(cs[[2]]),
                        nAGQ = 0, devFunOnly = TRUE,
                        control = lme4::glmerControl(tolPwrss = 1e-12))
    ours <- dev0(unname(getME(fit, "theta")))
    theirs <- dev0(unname(lme4::getME(ref, "theta")))
    expect_lt(ours, theirs + 1e-8)
    expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-8)
    expect_equal(unname(fixef(fit)), unname(lme4::fixef(ref)), tolerance = 1e-6)
    expect_equal(unname(sqrt(diag(as.matrix(vcov(fit))))),
                 unname(sqrt(diag(as.matrix(vcov(ref))))), tolerance = 1e-5)
    expect_identical(fit$nAGQ, 0L)
  }
})

test_that("adaptive Gauss-Hermite quadrature gives the integrated likelihood", {
  gt <- nb_fixed_data()
  theta <- 2
  fit <- glmm(TICKS ~ YEAR + (1 | BROOD), data = gt, family = MASS::negative.binomial(theta),
              nAGQ = 9L)
  # The likelihood integrated numerically over each brood's random effect
  # (glmer's AGQ criterion leaves out the family's normalizing constants,
  # so it is not a reference here).
  X <- stats::model.matrix(~YEAR, gt)
  lam <- unname(getME(fit, "theta"))
  eta0 <- drop(X %*% fixef(fit))
  ll <- sum(vapply(split(seq_len(nrow(gt)), gt$BROOD), function(idx) {
    log_f <- function(v) {
      sum(stats::dnbinom(gt$TICKS[idx], size = theta, mu = exp(eta0[idx] + lam * v),
                         log = TRUE)) + stats::dnorm(v, log = TRUE)
    }
    # integrated relative to the integrand's peak, so that its scale does not
    # meet integrate()'s absolute tolerance
    mode <- stats::optimize(function(v) -log_f(v), c(-20, 20), tol = 1e-10)$minimum
    peak <- log_f(mode)
    f <- function(u) vapply(u, function(v) exp(log_f(v) - peak), numeric(1))
    peak + log(stats::integrate(f, mode - 15, mode + 15, rel.tol = 1e-12,
                                abs.tol = 0)$value)
  }, numeric(1)))
  expect_equal(as.numeric(logLik(fit)), ll, tolerance = 1e-6)
})

test_that("update() to a fixed theta, refit(), simulate() and profiles as lme4's", {
  dd <- nb_refit_data()
  # lme4's test-nbinom_refit.R: a Poisson fit updated to the negative
  # binomial with theta from a computation (it keeps an SE attribute)
  base <- glmm(y ~ f1 * f2 + (1 | g), data = dd, family = poisson)
  th <- structure(0.482681268108477, SE = 0.0244825021248148)
  fit <- suppressMessages(update(base, family = MASS::negative.binomial(theta = th)))
  expect_identical(getME(fit, "glmer.nb.theta"), 0.482681268108477)
  expect_identical(stats::family(fit)$family, "Negative Binomial(0.4827)")
  expect_equal(fixef(suppressMessages(refit(fit))), fixef(fit), tolerance = 1e-6)
  ref <- glmer_nb_fixed(y ~ f1 * f2 + (1 | g), dd, th)
  expect_nb_fixed_parity(fit, ref, "update()")
  # refit() to a new response is the fit of that response
  y2 <- stats::simulate(fit, seed = 5)[[1]]
  d2 <- dd
  d2$y <- y2
  fresh <- suppressMessages(glmm(y ~ f1 * f2 + (1 | g), data = d2,
                                 family = MASS::negative.binomial(th)))
  re <- suppressMessages(refit(fit, y2))
  expect_equal(fixef(re), fixef(fresh), tolerance = 1e-6)
  expect_equal(as.numeric(logLik(re)), as.numeric(logLik(fresh)), tolerance = 1e-10)
  # simulate(): rnbinom() with size theta, as lme4's; about the fitted means
  # when the random effects are held at their modes
  expect_equal(y2, lme4:::simulate.merMod(ref, seed = 5)[[1]])
  y3 <- stats::simulate(fit, seed = 6, re.form = NULL)[[1]]
  set.seed(6)
  expect_identical(y3, stats::rnbinom(nrow(dd), size = 0.482681268108477,
                                      mu = unname(fitted(fit))))
  # profile intervals against glmer's (theta held, as there)
  gt <- nb_fixed_data()
  fit <- glmm(TICKS ~ YEAR + (1 | BROOD), data = gt, family = MASS::negative.binomial(2))
  ref <- glmer_nb_fixed(TICKS ~ YEAR + (1 | BROOD), gt, 2)
  ci <- suppressMessages(confint(fit, method = "profile"))
  ci_r <- suppressWarnings(suppressMessages(stats::confint(ref, method = "profile")))
  expect_identical(rownames(ci), rownames(ci_r))
  expect_equal(unname(ci), unname(ci_r), tolerance = 1e-3)
})

test_that("bootstrap replicates and intervals are lme4's", {
  gt <- nb_fixed_data()
  fit <- glmm(TICKS ~ YEAR + (1 | BROOD), data = gt, family = MASS::negative.binomial(2))
  ref <- glmer_nb_fixed(TICKS ~ YEAR + (1 | BROOD), gt, 2)
  stat <- function(x) c(fixef(x), getME(x, "theta"))
  # the same simulated responses (rnbinom() with size theta after new random
  # effects), refitted: equal to the precision of the two optima
  b <- bootmm(fit, stat, nsim = 6, seed = 3)
  b_ref <- suppressWarnings(lme4::bootMer(ref, stat, nsim = 6, seed = 3))
  expect_lt(max(abs(b$t - b_ref$t)), 1e-5)
  # confint(method = "boot") refits through the same path (it failed before)
  ci <- suppressWarnings(confint(fit, method = "boot", nsim = 6, seed = 3, quiet = TRUE))
  ci_r <- suppressWarnings(stats::confint(ref, method = "boot", nsim = 6, seed = 3,
                                          quiet = TRUE))
  expect_identical(dimnames(ci), dimnames(ci_r))
  expect_lt(max(abs(ci - ci_r)), 1e-5)
  expect_error(allFit(fit), "not available yet for fits of the Negative Binomial\\(2\\) family")
})

test_that("what a fixed-theta negative binomial cannot take is an error that says so", {
  gt <- nb_fixed_data()
  f <- TICKS ~ YEAR + (1 | BROOD)
  expect_error(glmm(f, data = gt, family = MASS::negative.binomial(1.5), dispformula = ~YEAR),
               "fixed theta \\(theta = 1.5\\) takes no 'ziformula' or 'dispformula'")
  expect_error(glmm(f, data = gt, family = MASS::negative.binomial(1.5, link = "inverse")),
               "takes the \"log\", \"sqrt\" or \"identity\" link, not \"inverse\"")
  expect_error(glmm(f, data = gt, family = MASS::negative.binomial(-1)),
               "theta must be a single positive number, not -1")
  expect_error(glmm(f, data = gt, family = MASS::negative.binomial),
               "needs 'theta': give MASS::negative.binomial\\(theta\\)")
  expect_error(glmm(f, data = gt, family = "negative.binomial"),
               "needs its theta: give MASS::negative.binomial\\(theta\\)")
  expect_error(glmm(f, data = gt, family = MASS::negative.binomial(2), devFunOnly = TRUE),
               "devFunOnly = TRUE is not available yet for the negative binomial family with a fixed theta")
  expect_error(glmm(f, data = gt, family = MASS::negative.binomial(2),
                    control = glmmControl(optimizer = "none")),
               "user optimizer .* is not available yet for the negative binomial family")
})
