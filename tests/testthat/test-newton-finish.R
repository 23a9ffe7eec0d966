# LMMs whose evaluations are dominated by a dense trailing block (order at least 200;
# here 500 items with a random slope, or 1,000 items crossed with subjects who see 25 each)
# are fitted by Newton steps from the start, with the exact gradient of the profiled deviance
# and its average-information Hessian (src/rust/fit/lmm_gradient.rs, lmm_information.rs,
# src/rust/optim/mod.rs); where a step ends near a bound BOBYQA takes over. The optimum must be
# lme4's at full precision, and the convergence check's gradient that of lme4's criterion.

newton_data <- function(seed) {
  set.seed(seed)
  n <- 9000
  n_subj <- 1500
  n_item <- 500
  subj <- c(seq_len(n_subj), sample.int(n_subj, n - n_subj, replace = TRUE))
  item <- c(rep_len(seq_len(n_item), n_subj), sample.int(n_item, n - n_subj, replace = TRUE,
                                                         prob = 1 / seq_len(n_item)^0.5))
  x <- rnorm(n)
  y <- 0.3 * x + rnorm(n_subj, sd = 0.5)[subj] + rnorm(n_item, sd = 0.4)[item] +
    rnorm(n_item, sd = 0.25)[item] * x + rnorm(n)
  data.frame(y = y, x = x, subj = factor(subj), item = factor(item))
}

# 1,200 subjects who each see `per_subject` of 1,000 items; item effects with sd `item_sd` (none
# when 0).
crossed_scalar_data <- function(seed, per_subject, item_sd) {
  set.seed(seed)
  n_subj <- 1200
  n_item <- 1000
  subj <- rep(seq_len(n_subj), each = per_subject)
  item <- as.vector(vapply(seq_len(n_subj), function(i) sample.int(n_item, per_subject),
                           integer(per_subject)))
  x <- rnorm(length(subj))
  subj_effect <- rnorm(n_subj, sd = 0.7)[subj]
  item_effect <- if (item_sd > 0) rnorm(n_item, sd = item_sd)[item] else 0
  data.frame(y = 0.5 * x + subj_effect + item_effect + rnorm(length(subj)),
             x = x, subj = factor(subj), item = factor(item))
}

test_that("Newton steps find lme4's optimum (REML and ML)", {
  d <- newton_data(3)
  for (reml in c(TRUE, FALSE)) {
    ours <- lmm(y ~ x + (1 | subj) + (1 + x | item), d, REML = reml)
    ref <- lmer_full(y ~ x + (1 | subj) + (1 + x | item), data = d, REML = reml)
    expect_match(ours$optinfo$message, "Newton steps with the exact gradient", fixed = TRUE)
    expect_gte(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-7)
    expect_equal(unname(ours$theta), unname(getME(ref, "theta")), tolerance = 1e-5)
    se <- sqrt(diag(as.matrix(vcov(ref))))
    expect_lt(max(abs(fixef(ours) - fixef(ref)) / se), 1e-4)
    expect_equal(sigma(ours), sigma(ref), tolerance = 1e-6)
    # The check's gradient is tiny at the end; no convergence message.
    expect_lt(max(abs(ours$optinfo$derivs$gradient)), 1e-3)
    expect_length(ours$optinfo$conv$lme4$messages, 0L)
  }
})

test_that("the check's gradient after Newton steps is that of lme4's criterion", {
  d <- newton_data(4)
  ours <- lmm(y ~ x + (1 | subj) + (1 + x | item), d)
  expect_match(ours$optinfo$message, "Newton steps", fixed = TRUE)
  devfun <- lme4::lmer(y ~ x + (1 | subj) + (1 + x | item), data = d, devFunOnly = TRUE)
  theta <- unname(ours$theta)
  # Richardson-extrapolated central differences of lme4's own deviance function.
  h <- 1e-3
  central <- function(i, step) {
    up <- theta; down <- theta
    up[i] <- up[i] + step; down[i] <- down[i] - step
    (devfun(up) - devfun(down)) / (2 * step)
  }
  grad_ref <- vapply(seq_along(theta), function(i) (4 * central(i, h / 2) - central(i, h)) / 3,
                     numeric(1))
  expect_lt(max(abs(ours$optinfo$derivs$gradient - grad_ref)), 1e-3)
  # The gradient is within tolerance, so (as after BOBYQA) no Hessian is computed for the check:
  # the average-information matrix of the steps is an approximation and is not reported as one.
  expect_null(ours$optinfo$derivs$Hessian)
})

test_that("BOBYQA takes over where the item variance is zero, at lme4's optimum", {
  # No item effect in the data: its variance is estimated at zero.
  d <- crossed_scalar_data(1, per_subject = 20, item_sd = 0)
  ours <- lmm(y ~ x + (1 | subj) + (1 | item), d)
  ref <- suppressMessages(lmer_full(y ~ x + (1 | subj) + (1 | item), data = d))
  expect_match(ours$optinfo$message, "BOBYQA", fixed = TRUE)
  # lme4 ends on the bound or within its rounding of it: CHOLMOD's factorization of the
  # 1,000 items can round differently from run to run (a fresh-clone run gave 1e-7).
  expect_lt(unname(getME(ref, "theta"))[2], 1e-6)
  expect_equal(unname(ours$theta)[2], 0)
  expect_gte(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-7)
  expect_equal(unname(ours$theta)[1], unname(getME(ref, "theta"))[1], tolerance = 1e-5)
  expect_equal(sigma(ours), sigma(ref), tolerance = 1e-6)
})

test_that("a crossed model with two variance parameters takes Newton steps too", {
  d <- crossed_scalar_data(5, per_subject = 25, item_sd = 0.5)
  ours <- lmm(y ~ x + (1 | subj) + (1 | item), d)
  expect_match(ours$optinfo$message, "Newton steps with the exact gradient", fixed = TRUE)
  ref <- lmer_full(y ~ x + (1 | subj) + (1 | item), data = d)
  expect_gte(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-7)
  expect_equal(unname(ours$theta), unname(getME(ref, "theta")), tolerance = 1e-5)
  expect_lt(max(abs(fixef(ours) - fixef(ref)) / sqrt(diag(as.matrix(vcov(ref))))), 1e-4)
})

test_that("small models take Newton steps too, where they pay, to lme4's optimum", {
  # One grouping factor (no trailing block), a small crossed block, and three
  # covariance parameters with a block of order 60 take the steps; two
  # crossed intercepts with a block of order 50 stay with BOBYQA, which is a
  # little faster there (src/rust/fit/lmm_gradient.rs).
  data(sleepstudy, Penicillin, package = "lme4")
  set.seed(8)
  n <- 6000
  d <- data.frame(s = factor(sample(300, n, TRUE)), i = factor(sample(60, n, TRUE)),
                  x = stats::rnorm(n))
  d$y <- 0.3 * d$x + stats::rnorm(300, sd = 0.6)[d$s] + stats::rnorm(300, sd = 0.3)[d$s] * d$x +
    stats::rnorm(60, sd = 0.4)[d$i] + stats::rnorm(n)
  d50 <- droplevels(d[as.integer(d$i) <= 50, ])
  cases <- list(
    sleepstudy = list(Reaction ~ Days + (Days | Subject), sleepstudy, "Newton"),
    penicillin = list(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin, "Newton"),
    slope_crossed = list(y ~ x + (x | s) + (1 | i), d, "Newton"),
    two_crossed = list(y ~ x + (1 | s) + (1 | i), d50, "BOBYQA"))
  for (nm in names(cases)) {
    m <- cases[[nm]]
    for (reml in c(TRUE, FALSE)) {
      ours <- lmm(m[[1]], m[[2]], REML = reml)
      ref <- lmer_full(m[[1]], data = m[[2]], REML = reml)
      expect_match(ours$optinfo$message, m[[3]], fixed = TRUE, info = nm)
      expect_gte(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-7)
      expect_equal(unname(ours$theta), unname(getME(ref, "theta")), tolerance = 1e-5,
                   info = nm)
      se <- sqrt(diag(as.matrix(vcov(ref))))
      expect_lt(max(abs(fixef(ours) - fixef(ref)) / se), 1e-4, label = nm)
      expect_length(ours$optinfo$conv$lme4$messages, 0L)
    }
  }
})
