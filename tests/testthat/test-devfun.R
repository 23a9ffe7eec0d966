# The deviance function (lmm(devFunOnly = TRUE), as.function() of a fit)
# against lme4's lmer(devFunOnly = TRUE) at the same theta.

test_that("the REML and ML deviance functions equal lme4's at several theta", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  f <- Reaction ~ Days + (Days | Subject)
  thetas <- list(c(1, 0, 1), c(0.9, 0.1, 0.2), c(0.5, -0.3, 0.01), c(2, 1, 0))
  for (reml in c(TRUE, FALSE)) {
    ours <- lmm(f, sleepstudy, REML = reml, devFunOnly = TRUE)
    ref <- lme4::lmer(f, sleepstudy, REML = reml, devFunOnly = TRUE)
    for (th in thetas) {
      # the same criterion computed two ways: agreement to rounding error
      expect_equal(ours(th), ref(th), tolerance = 1e-10)
    }
    expect_identical(environment(ours)$lower, environment(ref)$lower)
    # the argument named as lmer names it: devfun(theta = ) works
    expect_identical(names(formals(ours)), names(formals(ref)))
    expect_equal(ours(theta = thetas[[2]]), ref(theta = thetas[[2]]), tolerance = 1e-10)
  }
  # crossed terms, weights and an offset
  d <- sleepstudy
  d$w <- rep(c(1, 2), length.out = nrow(d))
  d$g <- factor(rep(1:6, length.out = nrow(d)))
  f2 <- Reaction ~ Days + (1 | Subject) + (1 | g) + offset(Days / 3)
  ours <- lmm(f2, d, weights = w, devFunOnly = TRUE)
  ref <- lme4::lmer(f2, d, weights = w, devFunOnly = TRUE)
  for (th in list(c(1, 1), c(0.3, 0.05), c(0, 0.5))) {
    expect_equal(ours(th), ref(th), tolerance = 1e-10)
  }
})

test_that("as.function() of a fit is the deviance function at its optimum", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy)
  dd <- as.function(fit)
  expect_true(is.function(dd))
  expect_equal(dd(fit$theta), unname(fit$devcomp$cmp[["REML"]]), tolerance = 1e-10)
  expect_equal(dd(lme4::getME(ref, "theta")), lme4::getME(ref, "devcomp")$cmp[["REML"]],
               tolerance = 1e-10)
  expect_error(dd(c(1, 1)), "takes 3 covariance parameters, not 2")
  expect_error(as.function(fit, 1), "unused argument")
})

test_that("glmm(devFunOnly = TRUE) equals glmer's for nAGQ = 0, 1 and 5", {
  skip_if_not_installed("lme4")
  data("cbpp", package = "lme4")
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  ctl <- lme4::glmerControl(tolPwrss = 1e-12)
  for (q in c(0L, 1L, 5L)) {
    ours <- glmm(f, cbpp, family = binomial, nAGQ = q, devFunOnly = TRUE)
    ref <- lme4::glmer(f, cbpp, family = binomial, nAGQ = q, devFunOnly = TRUE, control = ctl)
    pars <- if (q == 0L) {
      list(0.5, 1, 0.1)
    } else {
      list(c(0.6, -1.4, -1, -1.1, -1.6), c(1, -1, 0, 0, 0), c(0.3, -1.5, -0.8, -1, -1.2))
    }
    for (p in pars) {
      # both at PIRLS convergence (tolPwrss 1e-12 for lme4): the deviances
      # (~100-200) agree to 1e-9 relative
      expect_equal(ours(p), ref(p), tolerance = 1e-9)
    }
    expect_length(environment(ours)$lower, if (q == 0L) 1L else 5L)
    # the argument named as glmer names it
    expect_identical(names(formals(ours)), names(formals(ref)))
  }
  ours <- glmm(f, cbpp, family = binomial, devFunOnly = TRUE)
  expect_error(ours(1), "takes 5 parameters \\(1 covariance parameters and 4 fixed effects\\), not 1")
  # at the fit's optimum the function is its -2 log-likelihood
  g <- glmm(f, cbpp, family = binomial)
  expect_equal(ours(c(g$theta, fixef(g))), -2 * as.numeric(logLik(g)), tolerance = 1e-8)
})
