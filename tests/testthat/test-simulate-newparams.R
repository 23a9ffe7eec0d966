# simulate(newparams = ) side by side with lme4's simulate(newparams = ).
#
# Simulations without conditioning on random effects depend only on the
# parameters and the random numbers, so at the same newparams and seed ours
# and lme4's agree to rounding (1e-8). Conditional simulations also use the
# fit's spherical modes u, which differ between the two fits by ~1e-7
# relative; 1e-5 relative covers that. lme4's fits are run to full
# precision.

skip_if_not_installed("lme4")

test_that("lmm simulations at newparams match lme4's", {
  ss <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  np <- list(beta = c(200, 5), theta = c(2, 0.1, 0.5), sigma = 10)
  np_ref <- list(beta = c("(Intercept)" = 200, Days = 5),
                 theta = setNames(np$theta, names(lme4::getME(ref, "theta"))), sigma = 10)
  ours <- simulate(fit, nsim = 3, seed = 5, newparams = np)
  theirs <- simulate(ref, nsim = 3, seed = 5, newparams = np_ref)
  expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = 1e-8, ignore_attr = TRUE)
  # the parameters matter: not the simulation at the estimates
  expect_gt(max(abs(as.matrix(ours) - as.matrix(simulate(fit, nsim = 3, seed = 5)))), 1)
  # conditional on the (rescaled) modes
  ours <- simulate(fit, nsim = 2, seed = 5, newparams = np, re.form = NULL)
  theirs <- simulate(ref, nsim = 2, seed = 5, newparams = np_ref, re.form = NULL)
  expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = 1e-5, ignore_attr = TRUE)
  # new data
  nd <- data.frame(Days = c(1, 4, 8), Subject = c("308", "330", "372"))
  ours <- simulate(fit, nsim = 2, seed = 3, newparams = np, newdata = nd)
  theirs <- simulate(ref, nsim = 2, seed = 3, newparams = np_ref, newdata = nd)
  expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = 1e-8, ignore_attr = TRUE)
  # at the fit's own parameters: the same draws as without newparams
  own <- list(beta = fixef(fit), theta = fit$theta, sigma = sigma(fit))
  expect_equal(simulate(fit, nsim = 2, seed = 9, newparams = own),
               simulate(fit, nsim = 2, seed = 9), tolerance = 1e-10)
})

test_that("glmm simulations at newparams match lme4's", {
  cbpp <- lme4::cbpp
  g <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
            family = binomial, data = cbpp)
  gr <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                    family = binomial, data = cbpp,
                    control = glmer_reference_control())
  np <- list(beta = c(-1, -0.5, -1, -1.2), theta = 0.3)
  np_ref <- list(beta = setNames(np$beta, names(lme4::fixef(gr))),
                 theta = setNames(0.3, names(lme4::getME(gr, "theta"))))
  ours <- simulate(g, nsim = 3, seed = 5, newparams = np)
  theirs <- simulate(gr, nsim = 3, seed = 5, newparams = np_ref)
  for (j in 1:3) {
    expect_equal(unname(ours[[j]]), unname(theirs[[j]]), tolerance = 1e-8)
  }
  # the binomial family has no scale parameter
  expect_error(simulate(g, newparams = c(np, sigma = 2)),
               "'newparams' has element 'sigma'.*no scale parameter")
})

test_that("newparams left out or malformed, and lme4's unsupported arguments", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_warning(simulate(fit, seed = 1, newparams = list(beta = fixef(fit), theta = fit$theta)),
                 "'newparams' has no 'sigma': the fit's estimates are used for it")
  expect_warning(simulate(fit, seed = 1, newparams = list(sigma = 3)),
                 "'newparams' has no 'beta' or 'theta'")
  expect_error(simulate(fit, newparams = list(beta = 1, theta = fit$theta, sigma = 1)),
               "'newparams\\$beta' must be 2 finite")
  expect_error(simulate(fit, newparams = list(beta = fixef(fit), theta = c(1, 2, -1), sigma = 1)),
               "below its lower bound")
  expect_error(simulate(fit, family = poisson), "'family' .* is not supported")
  expect_error(simulate(fit, na.action = na.exclude), "'na.action' is not supported")
  # lme4's old name of re.form: taken with lme4's deprecation warning
  expect_warning(simulate(fit, REform = NA, seed = 1), "'REform' is deprecated")
})
