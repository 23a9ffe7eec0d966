# Rows whose data agree are fitted once, with their prior weights summed
# (src/rust/fit/merged_rows.rs, for glmmTMB's families). What the fit
# reports per row must read as a fit on every row: compared side by side
# with glmmTMB 1.1.5 on data whose rows repeat and whose weights differ
# within a group of equal rows (so that sharing the working weights out by
# weight, not equally, is what the conditional variances check).
#
# glmmTMB runs with tight nlminb tolerances (rel.tol = 1e-12, DESIGN.md
# section 6). Tolerances: our logLik at least glmmTMB's - 1e-8 and within
# 1e-6 of it (observed: 4e-10 to 4e-9 above), estimates and modes within 1e-4
# relatively (+ 1e-5), conditional standard deviations within 5e-4, fitted
# values and Pearson residuals within 1e-4.

skip_if_not_installed("glmmTMB")

repeated_rows <- function(seed) {
  set.seed(seed)
  d <- expand.grid(x = factor(c("a", "b", "c")), g = factor(1:15), rep = 1:6)
  eta <- 0.2 + c(a = 0, b = 0.6, c = -0.5)[d$x] + rnorm(15, sd = 0.7)[d$g]
  zero <- runif(nrow(d)) < 0.25
  d$y <- ifelse(zero, 0, rpois(nrow(d), exp(eta)))
  d$w <- c(1, 2, 0.5)[(seq_len(nrow(d)) %% 3) + 1]
  d
}

expect_within <- function(ours, ref, rel, abs = 0, info = NULL) {
  ours <- as.numeric(ours)
  ref <- as.numeric(ref)
  expect_identical(length(ours), length(ref), info = info)
  worst <- max(c(0, abs(ours - ref) - (rel * abs(ref) + abs)))
  expect(worst <= 0, sprintf("%s: differs by up to %.3g beyond the tolerance", info, worst))
}

compare_with_glmmTMB <- function(d, formula, family, ziformula, info) {
  # the data must repeat rows, or this test would not see the merge
  distinct <- nrow(unique(d[c("x", "g", "y")]))
  expect_lt(distinct, 0.6 * nrow(d))
  ours_family <- switch(family, poisson = quote(poisson), nbinom2 = "nbinom2")
  fam <- switch(family, poisson = quote(poisson), nbinom2 = quote(glmmTMB::nbinom2))
  ours <- suppressMessages(eval(bquote(glmm(.(formula), data = d, weights = w,
                                             family = .(ours_family), ziformula = .(ziformula)))))
  tight <- glmmTMB::glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-12))
  ref <- suppressWarnings(eval(bquote(glmmTMB::glmmTMB(.(formula), data = d, weights = w,
                                                       family = .(fam), ziformula = .(ziformula),
                                                       control = tight))))
  # nlminb cannot reach rel.tol = 1e-12 and says "singular convergence (7)" there, at its
  # optimum (as in test-zi-random-results.R); its Hessian must be positive definite.
  expect_true(ref$fit$convergence == 0L || ref$fit$message == "singular convergence (7)")
  expect_true(isTRUE(ref$sdr$pdHess))
  gain <- as.numeric(logLik(ours)) - as.numeric(logLik(ref))
  expect_gt(gain, -1e-8, label = paste(info, "logLik gain"))
  expect_within(logLik(ours), logLik(ref), rel = 0, abs = 1e-6, info = paste(info, "logLik"))
  for (cc in c("cond", "zi")) {
    expect_within(fixef(ours)[[cc]], fixef(ref)[[cc]], rel = 1e-4, abs = 1e-5,
                  info = paste(info, "fixef", cc))
  }
  expect_within(fitted(ours), fitted(ref), rel = 1e-4, info = paste(info, "fitted"))
  expect_within(predict(ours, type = "zprob"), predict(ref, type = "zprob"), rel = 1e-4,
                abs = 1e-6, info = paste(info, "zprob"))
  expect_within(residuals(ours, type = "pearson"), residuals(ref, type = "pearson"),
                rel = 1e-4, abs = 1e-5, info = paste(info, "pearson"))
  expect_identical(unname(weights(ours)), d$w)
  re_o <- ranef(ours)
  re_r <- ranef(ref)
  for (cc in names(re_r)) {
    for (g in names(re_r[[cc]])) {
      o <- re_o[[cc]][[g]]
      r <- re_r[[cc]][[g]]
      expect_within(as.matrix(o), as.matrix(r), rel = 1e-4, abs = 1e-5,
                    info = paste(info, cc, g, "modes"))
      cv_r <- attr(r, "condVar")
      expect_within(sqrt(attr(o, "condVar")[!is.na(cv_r)]), sqrt(cv_r[!is.na(cv_r)]),
                    rel = 5e-4, info = paste(info, cc, g, "condVar"))
    }
  }
}

test_that("a zero-inflated Poisson on repeated weighted rows is glmmTMB's fit", {
  compare_with_glmmTMB(repeated_rows(3), y ~ x + (1 | g), "poisson", ~1, "zip")
})

test_that("random effects in both predictors on repeated weighted rows", {
  # the 2 x 2 working weights of each row are shared out as well
  compare_with_glmmTMB(repeated_rows(5), y ~ x + (1 | g), "poisson", ~ (1 | g), "zip zi (1|g)")
})

test_that("a negative binomial on repeated weighted rows is glmmTMB's fit", {
  compare_with_glmmTMB(repeated_rows(7), y ~ x + (1 | g), "nbinom2", ~0, "nbinom2")
})

# lme4's families: the Poisson, and the binomial with 0/1 responses or with
# cbind(successes, failures) (trials in R's n) are merged; proportions whose
# weights are their trials are not (log choose(m, m y) does not add up).
# Side by side with glmer at full precision (helper-glmm.R), which still
# stops up to ~5e-6 below the optimum on these models: logLik at least
# glmer's - 1e-7 and within 1e-4 of it (a wrongly merged binomial would move
# its constant by whole units), estimates and fitted values within 1e-4
# relatively, standard errors within 5e-3 (glmer's finite-difference Hessian
# is that noisy: test-glmm-se.R).
compare_with_glmer <- function(call, d, info) {
  pair <- fit_glmm_pair(call)
  ours <- pair$fit
  ref <- pair$ref
  gain <- as.numeric(logLik(ours)) - as.numeric(logLik(ref))
  expect_gt(gain, -1e-7, label = paste(info, "logLik gain"))
  expect_lt(gain, 1e-4, label = paste(info, "logLik gain"))
  expect_within(fixef(ours), fixef(ref), rel = 1e-4, abs = 1e-5, info = paste(info, "fixef"))
  expect_within(sqrt(diag(vcov(ours))), sqrt(diag(as.matrix(vcov(ref)))), rel = 5e-3,
                info = paste(info, "SE"))
  expect_within(getME(ours, "theta"), getME(ref, "theta"), rel = 1e-4, abs = 1e-5,
                info = paste(info, "theta"))
  expect_within(fitted(ours), fitted(ref), rel = 1e-4, info = paste(info, "fitted"))
  expect_within(residuals(ours, type = "pearson"), residuals(ref, type = "pearson"),
                rel = 1e-4, abs = 1e-5, info = paste(info, "pearson"))
  expect_identical(unname(weights(ours)), unname(weights(ref)))
}

test_that("binary responses on repeated rows: glmer's fit", {
  skip_if_no_glmm()
  set.seed(21)
  d <- expand.grid(cond = factor(c("a", "b")), subj = factor(1:25), trial = 1:8)
  eta <- -0.3 + 0.8 * (d$cond == "b") + rnorm(25, sd = 0.9)[d$subj]
  d$y <- rbinom(nrow(d), 1, plogis(eta))
  expect_lt(nrow(unique(d[c("cond", "subj", "y")])), 0.3 * nrow(d))
  compare_with_glmer(quote(glmm(y ~ cond + (1 | subj), d, family = binomial)), d, "bernoulli")
})

test_that("Poisson and cbind() binomial on repeated rows: glmer's fit", {
  skip_if_no_glmm()
  set.seed(22)
  d <- expand.grid(cond = factor(c("a", "b", "c")), subj = factor(1:15), trial = 1:6)
  eta <- 0.2 + c(0, 0.5, -0.4)[d$cond] + rnorm(15, sd = 0.6)[d$subj]
  d$count <- rpois(nrow(d), exp(eta))
  d$succ <- rbinom(nrow(d), 3, plogis(eta))
  d$w <- c(1, 2)[(seq_len(nrow(d)) %% 2) + 1]
  expect_lt(nrow(unique(d[c("cond", "subj", "count")])), 0.6 * nrow(d))
  compare_with_glmer(quote(glmm(count ~ cond + (1 | subj), d, family = poisson, weights = w)),
                     d, "poisson")
  compare_with_glmer(quote(glmm(cbind(succ, 3 - succ) ~ cond + (1 | subj), d,
                                family = binomial)), d, "cbind")
})

test_that("proportions weighted by their trials keep their rows: glmer's logLik", {
  skip_if_no_glmm()
  set.seed(23)
  d <- expand.grid(cond = factor(c("a", "b")), subj = factor(1:20), trial = 1:6)
  d$m <- 4
  d$p <- rbinom(nrow(d), 4, plogis(0.3 * (d$cond == "b") + rnorm(20)[d$subj])) / 4
  # merging these rows would change the constant log choose(m, m p) of the logLik
  compare_with_glmer(quote(glmm(p ~ cond + (1 | subj), d, family = binomial, weights = m)),
                     d, "proportions")
})

test_that("profile intervals on repeated rows: lme4's (Laplace, and AGQ where both are exact)", {
  # Every point of the profile refits the merged rows. With nAGQ = 5 lme4's
  # deviance is exact and the two agree to ~1e-8 (test-confint-glmm.R); with
  # the Laplace approximation lme4's PIRLS stops short of the modes away from
  # the optimum, which moves its intervals by up to ~1.5e-4.
  skip_if_no_glmm()
  set.seed(24)
  d <- expand.grid(cond = factor(c("a", "b")), subj = factor(1:30), trial = 1:8)
  d$y <- rbinom(nrow(d), 1, plogis(-0.2 + 0.7 * (d$cond == "b") + rnorm(30)[d$subj]))
  expect_lt(nrow(unique(d[c("cond", "subj", "y")])), 0.3 * nrow(d))
  lme4_ci <- function(fm) suppressWarnings(suppressMessages(confint(fm, quiet = TRUE)))
  pair5 <- fit_glmm_pair(quote(glmm(y ~ cond + (1 | subj), d, family = binomial, nAGQ = 5)))
  expect_equal(confint(pair5$fit, quiet = TRUE), lme4_ci(pair5$ref), tolerance = 1e-6)
  pair <- fit_glmm_pair(quote(glmm(y ~ cond + (1 | subj), d, family = binomial)))
  expect_equal(confint(pair$fit, quiet = TRUE), lme4_ci(pair$ref), tolerance = 2e-4)
})
