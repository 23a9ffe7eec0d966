# bootmm() and confint(method = "boot"), side by side with lme4's bootMer().

test_that("bootmm() reproduces lme4's bootMer() replicates for the same seed", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss)
  fm <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  b <- bootmm(fit, fixef, nsim = 20, seed = 1)
  ref <- lme4::bootMer(fm, lme4::fixef, nsim = 20, seed = 1)
  expect_s3_class(b, c("bootmm", "bootMer", "boot"), exact = TRUE)
  expect_identical(b$R, 20L)
  expect_equal(b$t0, ref$t0, tolerance = 1e-6)
  expect_identical(dim(b$t), c(20L, 2L))
  expect_identical(colnames(b$t), names(fixef(fit)))
  expect_equal(unname(b$t), unname(ref$t), tolerance = 1e-5)
  # the replicate table holds the refits' estimates
  expect_equal(b$replicates[["(Intercept)"]], unname(b$t[, 1]))
  expect_identical(nrow(as.data.frame(b)), 20L)
  expect_output(print(b), "PARAMETRIC BOOTSTRAP")
})

test_that("bootmm() is reproducible and independent of the number of threads", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  f <- function(x) c(sigma(x), fixef(x), x$theta)
  b1 <- bootmm(fit, f, nsim = 12, seed = 7, threads = 1)
  b2 <- bootmm(fit, f, nsim = 12, seed = 7, threads = 2)
  expect_identical(b1$t, b2$t)
  set.seed(7)
  b3 <- bootmm(fit, f, nsim = 12)
  expect_identical(b1$t, b3$t)
  # conditional on the estimated random effects
  u1 <- bootmm(fit, f, nsim = 5, seed = 3, use.u = TRUE, threads = 1)
  u2 <- bootmm(fit, f, nsim = 5, seed = 3, re.form = NULL, threads = 2)
  expect_identical(u1$t, u2$t)
  expect_error(bootmm(fit, f, use.u = TRUE, re.form = NA), "only one")
  expect_error(bootmm(fit, f, nsim = 0), "'nsim'")
  expect_error(bootmm(fit, function(x) "a"), "numeric")
  expect_error(bootmm(lm(Reaction ~ Days, lme4::sleepstudy), fixef), "'x'")
})

test_that("refitted objects support the usual methods", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  seen <- NULL
  f <- function(x) {
    seen <<- x
    c(fixef(x), sigma(x), as.numeric(logLik(x)), REMLcrit(x),
      sum(residuals(x)^2), ranef(x)$Subject[1, 1], vcov(x)[2, 2],
      as.data.frame(VarCorr(x))$sdcor)
  }
  b <- bootmm(fit, f, nsim = 2, seed = 11)
  expect_false(anyNA(b$t))
  expect_s3_class(seen, "lmm")
  # the last refit is the fit of its own response
  refit <- lmm(Reaction ~ Days + (Days | Subject), model.frame(seen))
  expect_equal(unname(fixef(seen)), unname(fixef(refit)), tolerance = 1e-5)
  expect_equal(sigma(seen), sigma(refit), tolerance = 1e-5)
  expect_equal(unname(fitted(seen)), unname(fitted(refit)), tolerance = 1e-4)
})

test_that("bootstrap intervals agree with the profile and Wald intervals", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  ci_boot <- suppressMessages(confint(fit, method = "boot", nsim = 200, seed = 3,
                                      quiet = TRUE))
  ci_prof <- confint(fit, quiet = TRUE)
  ci_wald <- confint(fit, method = "Wald")
  expect_identical(dimnames(ci_boot), dimnames(ci_prof))
  width <- ci_prof[, 2] - ci_prof[, 1]
  fe <- c("(Intercept)", "Days")
  # bootstrap noise with 200 replicates: ends within 15% of the interval width;
  # not for the correlation (.sig02), whose bootstrap distribution piles up at
  # +1 from the singular refits (lme4's bootstrap interval ends at 0.999 too)
  keep <- rownames(ci_prof) != ".sig02"
  expect_true(all(abs(ci_boot - ci_prof)[keep, ] <= 0.15 * width[keep]))
  # lme4's bootstrap intervals for the same seed: its replicates are drawn
  # from the same random numbers and its refits run to full precision (the
  # control of the fit's call); fixed effects agree closely, variance
  # parameters up to the differences of lme4's refit() from fresh fits
  fm <- lmer_full(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  ref <- suppressWarnings(suppressMessages(
    confint(fm, method = "boot", nsim = 200, seed = 3, quiet = TRUE)))
  expect_true(all(abs(ci_boot - ref)[fe, ] <= 1e-3))
  expect_true(all(abs(ci_boot - ref) <= 0.02 * width))
  expect_true(all(abs(ci_boot[fe, ] - ci_wald[fe, ]) <= 0.15 * width[fe]))
  # the same with one thread, and the parm selection
  ci1 <- suppressMessages(confint(fit, method = "boot", nsim = 200, seed = 3,
                                  quiet = TRUE, threads = 1))
  expect_identical(ci1, ci_boot)
  ci2 <- suppressMessages(confint(fit, parm = "beta_", method = "boot", nsim = 200,
                                  seed = 3, quiet = TRUE, threads = 2))
  expect_identical(ci2, ci_boot[fe, ])
  # other interval types and a user statistic
  ci3 <- suppressMessages(confint(fit, method = "boot", nsim = 50, seed = 1,
                                  boot.type = "norm", FUN = fixef, quiet = TRUE))
  expect_identical(rownames(ci3), fe)
})

test_that("confint.bootmm computes boot.ci's percentile intervals", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("boot")
  fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  b <- bootmm(fit, fixef, nsim = 40, seed = 2)
  for (type in c("perc", "basic", "norm")) {
    ours <- suppressWarnings(confint(b, type = type))
    bnm <- c(perc = "percent", basic = "basic", norm = "normal")[[type]]
    ref <- t(vapply(1:2, function(i) {
      r <- suppressWarnings(boot::boot.ci(b, index = i, type = type))[[bnm]]
      r[(length(r) - 1):length(r)]
    }, numeric(2)))
    expect_equal(unname(ours), ref, tolerance = 1e-10)
  }
})

test_that("glmm: bootmm() matches bootMer(), boot intervals on cbpp", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  gf <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
             family = binomial, data = cbpp)
  gm <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                    family = binomial, data = cbpp,
                    control = glmer_reference_control())
  b <- bootmm(gf, fixef, nsim = 10, seed = 4)
  ref <- suppressWarnings(lme4::bootMer(gm, lme4::fixef, nsim = 10, seed = 4))
  expect_equal(unname(b$t), unname(ref$t), tolerance = 1e-3)
  ci <- suppressMessages(confint(gf, method = "boot", nsim = 100, seed = 5, quiet = TRUE))
  expect_identical(rownames(ci), c(".sig01", names(fixef(gf))))
  wald <- confint(gf, method = "Wald")
  width <- wald[-1, 2] - wald[-1, 1]
  expect_true(all(abs(ci[-1, ] - wald[-1, ]) <= 0.25 * width))
  expect_true(ci[1, 1] >= 0 && ci[1, 2] > ci[1, 1])
  g1 <- bootmm(gf, function(x) c(fixef(x), x$theta), nsim = 6, seed = 9, threads = 1)
  g2 <- bootmm(gf, function(x) c(fixef(x), x$theta), nsim = 6, seed = 9, threads = 2)
  expect_identical(g1$t, g2$t)
})

test_that("glmm: Poisson refits start from their own response and match bootMer()", {
  # Refits used to start PIRLS from the original fit's linear predictor,
  # whose random effects belong to another response: on grouseticks its
  # first step overshot (penalized deviance 2e22) and 2 of the first 3
  # refits failed, so confint(method = "boot") had no interval.
  skip_if_not_installed("lme4")
  gt <- lme4::grouseticks
  fit <- glmm(TICKS ~ YEAR + (1 | BROOD), gt, family = poisson)
  ref <- lme4::glmer(TICKS ~ YEAR + (1 | BROOD), gt, family = poisson,
                     control = glmer_reference_control())
  stat <- function(f) c(fixef(f), getME(f, "theta"))
  b <- bootmm(fit, stat, nsim = 30, seed = 1)
  b_ref <- suppressWarnings(lme4::bootMer(ref, stat, nsim = 30, seed = 1))
  expect_false(anyNA(b$t))
  expect_lt(max(abs(b$t - b_ref$t)), 1e-5)
  ci <- suppressWarnings(confint(fit, method = "boot", nsim = 30, seed = 1, quiet = TRUE))
  expect_false(anyNA(ci))
})
