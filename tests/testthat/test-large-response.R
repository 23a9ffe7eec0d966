# A response far from 0 relative to its residuals: a large mean (sleepstudy's
# reaction times plus 1e7), or one growing with a covariate of large values.
# The profiled criterion takes the penalized residual sum of squares as a
# difference of sums of squares, which loses the digits by which y'Wy exceeds
# it; the engine therefore moves the fixed effects' least-squares fit out of
# the response before summing (src/rust/linalg/assemble.rs, fill_shifted()).
# Side by side with lme4 at full precision, whose deviance sums the squared
# residuals row by row and is unaffected, and with the same model on the
# centred response.

test_that("a response shifted by 1e7 has lme4's optimum and the unshifted fit's estimates", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  big <- ss
  big$Reaction <- big$Reaction + 1e7
  # Before the shift, lmm() stopped at theta (0.96698, 0.01706, 0.23032)
  # with a false gradient warning and a criterion 0.005 below the true one.
  expect_no_warning(fit <- lmm(Reaction ~ Days + (Days | Subject), big))
  near <- lmm(Reaction ~ Days + (Days | Subject), ss)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), big)
  devfun <- lme4::lmer(Reaction ~ Days + (Days | Subject), big, devFunOnly = TRUE)
  # The criterion reported is lme4's at the same theta, and not above lme4's optimum.
  crit <- fit$devcomp$cmp[["REML"]]
  expect_equal(crit, devfun(unname(fit$theta)), tolerance = 1e-10)
  expect_lte(devfun(unname(fit$theta)), lme4::REMLcrit(ref) + 1e-8)
  # The same model as on the data less 1e7: same theta, sigma and criterion,
  # the intercept moved by 1e7.
  expect_equal(fit$theta, near$theta, tolerance = 1e-6)
  expect_equal(sigma(fit), sigma(near), tolerance = 1e-8)
  expect_equal(crit, near$devcomp$cmp[["REML"]], tolerance = 1e-10)
  expect_equal(unname(fixef(fit) - c(1e7, 0)), unname(fixef(near)), tolerance = 1e-8)
  expect_equal(as.matrix(vcov(fit)), as.matrix(vcov(near)), tolerance = 1e-6)
  expect_equal(unname(fitted(fit) - 1e7), unname(fitted(near)), tolerance = 1e-8)

  # The profiles (covariance parameters and fixed effects) and the
  # parametric bootstrap run on the same shifted cross-products.
  ci <- confint(fit, method = "profile")
  ci_near <- confint(near, method = "profile")
  expect_equal(unname(ci[1:4, ]), unname(ci_near[1:4, ]), tolerance = 1e-5)
  expect_equal(unname(ci["(Intercept)", ] - 1e7), unname(ci_near["(Intercept)", ]),
               tolerance = 1e-6)
  expect_equal(unname(ci["Days", ]), unname(ci_near["Days", ]), tolerance = 1e-5)
  theta_of <- function(m) getME(m, "theta")
  boot <- bootmm(fit, theta_of, nsim = 8, seed = 11)
  boot_near <- bootmm(near, theta_of, nsim = 8, seed = 11)
  expect_equal(boot$t, boot_near$t, tolerance = 1e-5)
  # Each refit moves its own response's fit out of it: the replicates do not
  # depend on which thread's workspace refits them.
  expect_identical(bootmm(fit, theta_of, nsim = 8, seed = 11, threads = 1)$t,
                   bootmm(fit, theta_of, nsim = 8, seed = 11, threads = 2)$t)
  # Deletion refits (influence()) downdate the same shifted cross-products.
  infl <- influence(fit, groups = "Subject")
  infl_near <- influence(near, groups = "Subject")
  expect_equal(unname(infl[[2]][, 1] - 1e7), unname(infl_near[[2]][, 1]), tolerance = 1e-7)
  expect_equal(infl[[4]], infl_near[[4]], tolerance = 1e-5)
})

test_that("a response growing with a covariate up to 1e4 reaches lme4's optimum", {
  skip_if_not_installed("lme4")
  # lme4's tests/fewlevels.R: four levels, y = 1 + 2x + noise, x = 1..10000.
  set.seed(1)
  n <- 10000
  d <- data.frame(x = 1:n, fac = gl(4, 1, n))
  d$y <- 1 + 2 * d$x + rnorm(4, 0, 4)[d$fac] + rnorm(n)
  # lme4 warns about the scales of x as well; no convergence warning.
  expect_warning(fit <- lmm(y ~ x + (1 | fac), d), "very different scales")
  ref <- suppressWarnings(lmer_full(y ~ x + (1 | fac), d))
  devfun <- suppressWarnings(lme4::lmer(y ~ x + (1 | fac), d, devFunOnly = TRUE))
  crit <- fit$devcomp$cmp[["REML"]]
  expect_equal(crit, devfun(unname(fit$theta)), tolerance = 1e-11)
  expect_lte(devfun(unname(fit$theta)), lme4::REMLcrit(ref) + 1e-7)
  # The standard deviation of the four levels' effects (lme4's test: 19.55 to
  # 1e-3; before the shift lmm() gave 19.592).
  sd_fit <- attr(VarCorr(fit)$fac, "stddev")
  sd_ref <- attr(lme4::VarCorr(ref)$fac, "stddev")
  expect_equal(unname(sd_fit^2), unname(sd_ref^2), tolerance = 1e-4)
  # The fixed effects agree to a small fraction of their standard errors (the
  # intercept's is 10: the likelihood is flat along the four levels' variance).
  se <- sqrt(diag(as.matrix(vcov(ref))))
  expect_lt(max(abs(fixef(fit) - lme4::fixef(ref)) / se), 1e-5)
})
