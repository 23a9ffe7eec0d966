# confint() for lmm() and glmm() fits, side by side with lme4's confint().

lme4_confint <- function(fm, ...) suppressWarnings(suppressMessages(confint(fm, ...)))

test_that("profile intervals match lme4 for sleepstudy (REML and ML)", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  for (reml in c(TRUE, FALSE)) {
    fit <- lmm(Reaction ~ Days + (Days | Subject), ss, REML = reml)
    fm <- lmer_full(Reaction ~ Days + (Days | Subject), ss, REML = reml)
    ours <- confint(fit, quiet = TRUE)
    ref <- lme4_confint(fm, quiet = TRUE)
    expect_identical(dimnames(ours), dimnames(ref))
    expect_equal(ours, ref, tolerance = 1e-4)
  }
})

test_that("profile intervals match lme4 for crossed and boundary models", {
  skip_if_not_installed("lme4")
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
  fm <- lmer_full(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
  expect_equal(confint(fit, quiet = TRUE), lme4_confint(fm, quiet = TRUE), tolerance = 1e-4)

  fit2 <- suppressMessages(lmm(Yield ~ 1 + (1 | Batch), lme4::Dyestuff2))
  fm2 <- suppressMessages(lmer_full(Yield ~ 1 + (1 | Batch), lme4::Dyestuff2))
  ci <- confint(fit2, quiet = TRUE)
  expect_identical(ci[".sig01", "2.5 %"], 0)
  expect_equal(ci, lme4_confint(fm2, quiet = TRUE), tolerance = 1e-4)

  fit3 <- lmm(Reaction ~ Days + (Days || Subject), lme4::sleepstudy)
  fm3 <- lmer_full(Reaction ~ Days + (Days || Subject), lme4::sleepstudy)
  expect_equal(confint(fit3, quiet = TRUE), lme4_confint(fm3, quiet = TRUE), tolerance = 1e-4)
})

test_that("parm, level, zeta and oldNames work as in lme4", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  fm <- lmer_full(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  for (p in list(1:2, c(".sig01", "Days"), "theta_", "beta_", c(5, 2))) {
    expect_equal(confint(fit, parm = p, quiet = TRUE),
                 lme4_confint(fm, parm = p, quiet = TRUE), tolerance = 1e-4)
  }
  expect_equal(confint(fit, level = 0.9, quiet = TRUE),
               lme4_confint(fm, level = 0.9, quiet = TRUE), tolerance = 1e-4)
  named <- confint(fit, oldNames = FALSE, quiet = TRUE)
  expect_identical(rownames(named), rownames(lme4_confint(fm, oldNames = FALSE, quiet = TRUE)))
  expect_identical(rownames(named)[1:4], c("sd_(Intercept)|Subject",
                                           "cor_Days.(Intercept)|Subject",
                                           "sd_Days|Subject", "sigma"))
  z <- confint(fit, parm = "Days", zeta = c(-1, 1), quiet = TRUE)
  expect_null(colnames(z))
  expect_equal(unname(z), unname(lme4_confint(fm, parm = "Days", zeta = c(-1, 1), quiet = TRUE)),
               tolerance = 1e-4)
  expect_message(confint(fit, parm = "Days"), "Computing profile confidence intervals")
  expect_error(confint(fit, parm = 9), "'parm'")
  expect_error(confint(fit, parm = "nope"), "unknown parameters")
  expect_error(confint(fit, level = 2), "'level'")
  expect_error(confint(fit, threads = 0), "'threads'")
})

test_that("profile() returns the profile and confint() reads it", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  pr <- profile(fit)
  expect_s3_class(pr, "lmmprofile")
  expect_identical(levels(pr$.par), c(".sig01", ".sigma", "(Intercept)", "Days"))
  expect_true(all(c(".zeta", ".sig01", ".sigma", "(Intercept)", "Days") %in% names(pr)))
  expect_equal(pr$.zeta[pr$.par == "Days" & pr$Days == attr(pr, "optimum")[["Days"]]], 0)
  expect_equal(confint(pr), confint(fit, quiet = TRUE))
  # one thread and two give the same profile
  expect_identical(profile(fit, threads = 1), profile(fit, threads = 2))
})

test_that("Wald intervals match lme4", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  fm <- lmer_full(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  ours <- confint(fit, method = "Wald")
  ref <- confint(fm, method = "Wald")
  expect_identical(dimnames(ours), dimnames(ref))
  expect_true(all(is.na(ours[1:4, ])))
  expect_equal(ours, ref, tolerance = 1e-6)
  expect_equal(confint(fit, method = "Wald", parm = c(6, 5)),
               confint(fm, method = "Wald", parm = c(6, 5)), tolerance = 1e-6)
})

test_that("glmm: Wald intervals as lme4", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  gf <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
             family = binomial, data = cbpp)
  gm <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                    family = binomial, data = cbpp,
                    control = glmer_reference_control())
  ours <- confint(gf, method = "Wald")
  ref <- confint(gm, method = "Wald")
  expect_identical(dimnames(ours), dimnames(ref))
  # the same formula as lme4's, from our own estimates and standard errors
  se <- sqrt(diag(vcov(gf)))
  expect_equal(ours[-1, 1], fixef(gf) - qnorm(0.975) * se, tolerance = 1e-12)
  # and lme4's, run to full precision (its standard errors from its
  # finite-difference Hessian agree with ours to ~1e-6)
  expect_equal(ours, ref, tolerance = 1e-5)
  # (profile intervals of glmm fits: test-confint-glmm.R)
})

test_that("the profile of a correlation estimated at 1 starts into the parameter space", {
  # Random slopes that the data cannot tell from a shifted intercept: the correlation ends at
  # its bound 1 (a singular fit). lme4's first step of 1% would leave [-1, 1]; it is taken the
  # other way (it used to end in "the deviance could not be evaluated near the profiled
  # value"), and the interval is lme4's.
  set.seed(4)
  ng <- sample(10:25, 1); m <- sample(5:12, 1); n <- ng * m
  d <- data.frame(g = factor(rep(1:ng, each = m)), h = factor(sample(1:6, n, TRUE)), x = rnorm(n))
  b0 <- rnorm(ng, 0, runif(1, 0.3, 1.5)); b1 <- rnorm(ng, 0, runif(1, 0.1, 0.8))
  d$y <- 1 + 0.5 * d$x + b0[d$g] + b1[d$g] * d$x + rnorm(6, 0, 0.5)[d$h] + rnorm(n)
  fit <- suppressMessages(lmm(y ~ x + (x | g), d))
  fm <- suppressMessages(lmer_full(y ~ x + (x | g), d))
  expect_equal(unname(attr(VarCorr(fit)$g, "correlation")[1, 2]), 1)
  # Both warn alike about the correlation's profile (flat at the bound).
  ours <- collect_warnings(confint(fit, quiet = TRUE))
  ref <- collect_warnings(suppressMessages(confint(fm, quiet = TRUE)))
  expect_equal(ours$value[".sig02", ], c(`2.5 %` = -1, `97.5 %` = 1))
  expect_equal(ours$value, ref$value, tolerance = 1e-4)
  expect_setequal(ours$warnings, ref$warnings)
})

test_that("profile() takes lme4's 'quiet' (no progress line) and checks it", {
  fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  expect_identical(profile(fit, which = "theta_", quiet = TRUE),
                   profile(fit, which = "theta_"))
  expect_error(profile(fit, quiet = "yes"), "'quiet' must be TRUE or FALSE")
  # the option is restored
  old <- getOption("mixedrs.progress")
  invisible(profile(fit, which = 1, quiet = TRUE))
  expect_identical(getOption("mixedrs.progress"), old)
})

test_that("profile() and confint() take lme4's settings of the walks", {
  skip_if_not_installed("lme4")
  sleep <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleep)
  for (args in list(list(maxpts = 8), list(alphamax = 0.1), list(delta = 0.5),
                    list(delta.cutoff = 1 / 4, maxmult = 5))) {
    ours <- do.call(profile, c(list(fit, which = "theta_", quiet = TRUE), args))
    theirs <- do.call(profile, c(list(ref, which = "theta_"), args))
    # lme4's stepping rule: as many points, the same intervals to the
    # precision of a coarse walk (the limits are splined through fewer
    # points; at .sig01 = 4.747 of delta = 0.5 lme4's inner fit ends at a
    # deviance 0.4 above ours, and its next step differs)
    expect_identical(as.vector(table(ours$.par)), as.vector(table(theirs$.par)))
    expect_equal(confint(ours), confint(theirs), tolerance = 1e-3)
  }
  # fewer points (maxpts) end the walks short of the cutoff: both stop alike,
  # and both warn that two points give no monotonic spline
  expect_warning(short <- profile(fit, which = ".sig01", maxpts = 2, quiet = TRUE),
                 "non-monotonic profile for .sig01")
  expect_warning(short_ref <- profile(ref, which = ".sig01", maxpts = 2),
                 "non-monotonic profile for .sig01")
  expect_identical(nrow(short), nrow(short_ref))
  # confint() passes them on, as lme4's does
  expect_equal(confint(fit, parm = "theta_", maxpts = 8, quiet = TRUE),
               confint(ref, parm = "theta_", maxpts = 8, quiet = TRUE), tolerance = 1e-6)
  expect_error(profile(fit, optimizer = "Nelder_Mead"), "optimizer = \"Nelder_Mead\" is not available")
  expect_error(profile(fit, prof.scale = "varcov"), "\"varcov\" is not available")
  expect_error(profile(fit, startmethod = "global"), "\"global\" is not available")
  expect_error(profile(fit, maxpts = 0), "'maxpts' must be a positive whole number")
  expect_error(profile(fit, cl = 1), "a cluster 'cl' cannot be used")
  expect_error(confint(fit, foo = 2), "does not use the argument\\(s\\) 'foo'")
  expect_error(confint(fit, method = "Wald", maxpts = 3), "does not use the argument\\(s\\) 'maxpts'")
})
