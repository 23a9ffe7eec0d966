# Large LMMs whose evaluations are dominated by a dense trailing block (order at least 1,000:
# here 500 items with a random slope, or 1,000 items crossed with subjects who see 25 each)
# stop BOBYQA at a radius of 1e-3 and finish with Newton steps on the exact gradient of the profiled deviance
# (src/rust/fit/lmm_gradient.rs, src/rust/optim/mod.rs). The optimum must be lme4's at full
# precision, and the convergence check's gradient and Hessian must be those of lme4's
# criterion.

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

test_that("Newton steps finish the search at lme4's optimum (REML and ML)", {
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

test_that("the Newton finish's derivatives are those of lme4's criterion", {
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
  # The Hessian (forward differences of the exact gradient) against second differences of
  # lme4's deviance.
  hess <- ours$optinfo$derivs$Hessian
  expect_false(is.null(hess))
  f0 <- devfun(theta)
  for (i in seq_along(theta)) {
    up <- theta; down <- theta
    up[i] <- up[i] + h; down[i] <- down[i] - h
    expect_equal(hess[i, i], (devfun(up) - 2 * f0 + devfun(down)) / h^2, tolerance = 1e-3)
  }
})

test_that("a crossed model with two variance parameters takes the Newton finish too", {
  set.seed(5)
  n_subj <- 1200
  n_item <- 1000
  subj <- rep(seq_len(n_subj), each = 25)
  item <- as.vector(vapply(seq_len(n_subj), function(i) sample.int(n_item, 25), integer(25)))
  x <- rnorm(length(subj))
  d <- data.frame(y = 0.5 * x + rnorm(n_subj, sd = 0.7)[subj] + rnorm(n_item, sd = 0.5)[item] +
                    rnorm(length(subj)), x = x, subj = factor(subj), item = factor(item))
  ours <- lmm(y ~ x + (1 | subj) + (1 | item), d)
  expect_match(ours$optinfo$message, "Newton steps with the exact gradient", fixed = TRUE)
  ref <- lmer_full(y ~ x + (1 | subj) + (1 | item), data = d)
  expect_gte(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-7)
  expect_equal(unname(ours$theta), unname(getME(ref, "theta")), tolerance = 1e-5)
  expect_lt(max(abs(fixef(ours) - fixef(ref)) / sqrt(diag(as.matrix(vcov(ref))))), 1e-4)
})
