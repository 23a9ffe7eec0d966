# The LMM start strategy (?lmm, "Starting values"): a fit from the moment
# estimate is also run from lme4's start (theta = identity) when the model is
# small or either the start or the optimum is near the boundary, and the better
# optimum is kept. So a fit never ends worse than the fit from lme4's start, and
# never worse than lme4's own optimum run to full precision.

# lmer_full() (helper-reference.R) without its messages and warnings.
lmer_full_quiet <- function(formula, data, REML = TRUE) {
  suppressMessages(suppressWarnings(lmer_full(formula, data, REML = REML)))
}

identity_start <- function(fit) as.numeric(fit$lower == 0)

# Our fit against lme4's at full precision and against our own fit from lme4's
# start. lme4's optimum is located to rhoend 1e-12, ours to 1e-7: the criterion
# is flat at a minimum, so both agree to ~1e-10; 1e-6 leaves room for optima on
# the boundary, where the criterion is not flat. The comparison with our own
# identity-start fit holds up to rounding: the same optimizer from the same
# start is one of the runs the default fit made, and a second run counts as
# better only when lower by more than 1e-11 relative (about 1e-9 here).
expect_no_worse <- function(formula, data, REML, label) {
  fit <- suppressMessages(lmm(formula, data, REML = REML))
  fit1 <- suppressMessages(lmm(formula, data, REML = REML, start = identity_start(fit)))
  ref <- lmer_full_quiet(formula, data, REML = REML)
  expect_gte(c(logLik(fit)) - c(logLik(ref)), -1e-6, label = paste(label, "vs lme4"))
  expect_gte(c(logLik(fit)) - c(logLik(fit1)), -1e-8,
             label = paste(label, "vs the fit from lme4's start"))
  if (abs(c(logLik(fit)) - c(logLik(ref))) < 1e-6) {
    # Same optimum: the fixed effects agree to well within their standard errors.
    se <- sqrt(diag(as.matrix(vcov(ref))))
    expect_lt(max(abs(fixef(fit) - lme4::fixef(ref)) / se), 5e-3,
              label = paste(label, "fixed effects in SE units"))
  }
  invisible(fit)
}

test_that("a moment start near a boundary face does not trap the fit (issue example)", {
  skip_if_not_installed("lme4")
  set.seed(551); g <- factor(sample(4, 15, TRUE)); x <- rnorm(15)
  d <- data.frame(g, x, y = x + rnorm(4)[g] * (1 - x) + rnorm(15))
  fit <- expect_no_worse(y ~ x + (x | g), d, TRUE, "seed 551")
  ref <- lmer_full_quiet(y ~ x + (x | g), d)
  # lme4 reaches REML logLik -22.127 with correlation -1; the moment start alone
  # stopped at -27.989 with the intercept variance at 0.
  expect_equal(c(logLik(fit)), c(logLik(ref)), tolerance = 1e-7)
  expect_gte(fit$optinfo$starts, 2L)
})

test_that("small random designs with correlated and uncorrelated slopes reach lme4's optimum", {
  skip_if_not_installed("lme4")
  for (seed in 1:40) {
    set.seed(seed)
    ng <- sample(3:8, 1)
    n <- sample((3 * ng):40, 1)
    g <- factor(sample(ng, n, TRUE))
    x <- rnorm(n)
    b0 <- rnorm(ng, sd = runif(1, 0, 2))
    b1 <- rnorm(ng, sd = runif(1, 0, 2))
    d <- data.frame(g = g, x = x, y = 1 + x + b0[g] + b1[g] * x + rnorm(n))
    if (nlevels(droplevels(d$g)) < 2) next
    REML <- seed %% 2 == 0
    form <- if (seed %% 3 == 0) y ~ x + (x || g) else y ~ x + (x | g)
    expect_no_worse(form, d, REML, sprintf("seed %d, %s", seed, deparse(form)))
  }
})

test_that("a singular 3 x 3 covariance reaches the better of its two faces", {
  # From a randomized comparison (seed 258): Sigma of (f | g) has rank 2 at
  # two local optima, one with the second column degenerate (where BOBYQA
  # stops, from lme4's start as from ours; lme4's default fit too), one with
  # the third, 1.6e-4 lower in the REML criterion, which lme4 reaches only
  # at rhoend 1e-12. The restart from Sigma lifted off its face finds it.
  skip_if_not_installed("lme4")
  set.seed(258)
  ng <- sample(5:25, 1); nh <- sample(3:12, 1)
  n <- ng * sample(4:12, 1)
  d <- data.frame(g = factor(sample(ng, n, TRUE)), h = factor(sample(nh, n, TRUE)),
                  s = factor(sample(3, n, TRUE)), x1 = rnorm(n), x2 = runif(n, -1, 2),
                  f = factor(sample(c("a", "b", "c")[seq_len(sample(2:3, 1))], n, TRUE)))
  re <- function(k, sd) rnorm(k, sd = sd)
  gs <- interaction(d$g, d$s)
  eta <- 0.5 + 0.4 * d$x1 - 0.3 * d$x2 + 0.5 * (as.integer(d$f) - 1) +
    re(ng, runif(1, 0, 1.2))[d$g] + re(ng, runif(1, 0, 0.8))[d$g] * d$x1 +
    re(nh, runif(1, 0, 1))[d$h] + re(nlevels(gs), runif(1, 0, 0.8))[gs] +
    re(ng, runif(1, 0, 0.5))[d$g] * d$x2 + re(nh, runif(1, 0, 0.5))[d$h] * d$x1
  d$y <- eta + rnorm(n, sd = runif(1, 0.3, 2))
  fit <- expect_no_worse(y ~ f + (f | g), d, REML = TRUE, label = "seed 258")
  ref <- lmer_full_quiet(y ~ f + (f | g), d, REML = TRUE)
  expect_equal(c(logLik(fit)), c(logLik(ref)), tolerance = 1e-9)
  expect_true(isSingular(fit))
})

test_that("a singular factor-slope term also restarts from its standard deviations as they are", {
  # (f | Subject) with a random three-level factor, ML: every start (lme4's,
  # the moment estimate, the face restart with the second column's sd 0.19
  # raised to 0.3 x 0.81, the lifted covariance) ended on the face where T's
  # second diagonal is 0, 0.0047 log-likelihood units below lme4's default
  # fit, which ends on the face where the third is 0. From the sds as they
  # are (correlations 0) the optimizer reaches that face.
  d <- lme4::sleepstudy
  set.seed(1)
  d$f <- factor(sample(c("a", "b", "c"), nrow(d), TRUE))
  fit <- suppressMessages(lmm(Reaction ~ (f | Subject), d, REML = FALSE))
  ref <- suppressMessages(lmer_full(Reaction ~ (f | Subject), d, REML = FALSE))
  ref_default <- suppressMessages(lme4::lmer(Reaction ~ (f | Subject), d, REML = FALSE))
  expect_gt(as.numeric(logLik(fit)), as.numeric(logLik(ref)) - 1e-9)
  expect_gt(as.numeric(logLik(fit)), as.numeric(logLik(ref_default)) - 1e-9)
  expect_equal(unname(getME(fit, "theta")), unname(getME(ref, "theta")), tolerance = 1e-4)
  expect_equal(fit$optinfo$starts, 5L)
})

test_that("an optimum far out towards sigma -> 0 restarts nearer in and turns to lme4's direction", {
  # 28 rows, 24 levels of g:h within 8 of g: the two intercept terms absorb
  # the residual, and the criterion depends, out there, almost only on the
  # ratio of their sds. From the moment start BOBYQA ran out to relative sds
  # of (115765, 64782), whose ratio gives a REML criterion 1.29 above the
  # (1, 1) direction lme4 ends on (logLik 0.647 below); there it cannot turn
  # (a turn takes steps as large as the parameters) and stopped with a
  # gradient warning.
  set.seed(166)
  ng <- sample(6:20, 1)
  n <- ng * sample(4:10, 1)
  d <- data.frame(g = factor(sample(ng, n, TRUE)), h = factor(sample(sample(3:8, 1), n, TRUE)),
                  x = stats::rnorm(n), f = factor(sample(c("a", "b", "c"), n, TRUE)),
                  e = factor(sample(c("u", "v"), n, TRUE)), z = stats::runif(n))
  b0 <- stats::rnorm(ng) * stats::runif(1, 0, 1.5)
  b1 <- stats::rnorm(ng) * stats::runif(1, 0, 1)
  bh <- stats::rnorm(nlevels(d$h)) * stats::runif(1, 0, 1)
  d$y <- 1 + stats::runif(1, 0, 0.5) * d$x + stats::runif(1, 0, 1) * (d$f == "b") -
    stats::runif(1, 0, 0.6) * (d$e == "v") * (d$f == "c") + b0[d$g] + b1[d$g] * d$x + bh[d$h] +
    stats::rnorm(n, sd = stats::runif(1, 0.3, 2))
  d <- d[!(d$f == "c" & d$e == "v"), ]
  expect_identical(nrow(d), 28L)
  form <- y ~ f * z + e + (1 | g:h) + (1 | g)
  fit <- suppressMessages(lmm(form, d))
  expect_length(fit$optinfo$conv$lme4$messages, 0L)
  ref <- lmer_full_quiet(form, d)
  ref_default <- suppressMessages(suppressWarnings(lme4::lmer(form, d)))
  expect_gt(as.numeric(logLik(fit)), as.numeric(logLik(ref)) - 1e-7)
  expect_gt(as.numeric(logLik(fit)), as.numeric(logLik(ref_default)) - 1e-7)
  # the direction of the two sds is lme4's
  theta <- getME(fit, "theta")
  expect_equal(theta[[1]] / theta[[2]], 1, tolerance = 0.05)
})
