# A covariate of a random slope in other units (days x 1,000) is the same model: the optimizer
# searches the covariance parameters in the scale of their columns, so the fit is the same,
# at lme4's optimum or above it, in as few evaluations.

test_that("a random slope's covariate in any units gives the same fit, at or above lmer's", {
  skip_if_not_installed("lme4")
  base <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, REML = FALSE)
  for (k in c(1e-3, 30, 1000, 1e5)) {
    d <- lme4::sleepstudy
    d$Days <- d$Days * k
    # (lme4's check.scaleX warns of the predictors' scales at the extremes)
    fit <- suppressWarnings(lmm(Reaction ~ Days + (Days | Subject), d, REML = FALSE))
    # the ML log-likelihood does not depend on the units; theta's slope rows scale by 1/k
    expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(base)), tolerance = 1e-10)
    expect_equal(unname(fit$theta), unname(base$theta) / c(1, k, k), tolerance = 1e-4)
    expect_lte(fit$optinfo$feval, 20)
    # lmer's best of BOBYQA and Nelder-Mead at full precision (BOBYQA ends 1.3e-4 below at
    # k = 1000, where this fit ended 1.3e-4 below it before)
    nm <- lme4::lmerControl(optimizer = "Nelder_Mead",
                            optCtrl = list(FtolAbs = 1e-14, FtolRel = 1e-15, XtolRel = 1e-12,
                                           maxfun = 1e5))
    refs <- lapply(list(lmer_full_control(), nm), function(ctl) suppressMessages(suppressWarnings(
      lme4::lmer(Reaction ~ Days + (Days | Subject), d, REML = FALSE, control = ctl))))
    best <- max(vapply(refs, function(r) as.numeric(logLik(r)), 0))
    expect_gte(as.numeric(logLik(fit)) - best, -1e-8)
  }
  # a slope whose relative standard deviation is large only by its units is no fit
  # "towards sigma -> 0" (it was reported as one)
  d <- lme4::sleepstudy
  d$Reaction <- d$Reaction * 1e6
  d$Days <- d$Days * 1e-4
  # (lme4's check.scaleX warns of the predictors' scales)
  expect_no_message(fit <- suppressWarnings(lmm(Reaction ~ Days + (Days | Subject), d)))
  expect_false(isTRUE(fit$optinfo$residual_limit))
})

test_that("structured terms and crossed slopes in large units fit as lmer's or glmmTMB's best", {
  skip_if_not_installed("lme4")
  set.seed(59)
  n <- 400
  d <- data.frame(g = factor(sample(20, n, TRUE)), h = factor(sample(8, n, TRUE)),
                  age = runif(n, 20, 80))
  d$y <- 10 + 0.1 * d$age + rnorm(20, sd = 2)[d$g] + rnorm(20, sd = 0.05)[d$g] * d$age +
    rnorm(8, sd = 1)[d$h] + rnorm(n, sd = 2)
  fit <- lmm(y ~ age + (age | g) + (1 | h), d)
  ref <- lmer_full(y ~ age + (age | g) + (1 | h), d)
  expect_gte(as.numeric(logLik(fit)) - as.numeric(logLik(ref)), -1e-8)
  expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-3)
  skip_if_not_installed("glmmTMB")
  fit_d <- lmm(y ~ age + diag(age | g) + (1 | h), d, REML = FALSE)
  ref_d <- glmmTMB::glmmTMB(y ~ age + diag(age | g) + (1 | h), d, REML = FALSE)
  expect_gte(as.numeric(logLik(fit_d)) - as.numeric(logLik(ref_d)), -1e-6)
})

test_that("a GLMM's random slope in any units is the same fit, in as many PIRLS iterations", {
  skip_if_not_installed("lme4")
  set.seed(5)
  n <- 600
  d <- data.frame(g = factor(sample(30, n, TRUE)), x = runif(n))
  d$y <- rpois(n, exp(0.5 + 0.5 * d$x + rnorm(30, sd = 0.5)[d$g] +
                        rnorm(30, sd = 0.4)[d$g] * d$x))
  d$yb <- rbinom(n, 1, plogis(-0.5 + d$x + rnorm(30, sd = 0.8)[d$g] +
                                rnorm(30, sd = 0.6)[d$g] * d$x))
  for (family in c("poisson", "binomial")) {
    f <- if (family == "poisson") y ~ xs + (xs | g) else yb ~ xs + (xs | g)
    d$xs <- d$x
    base <- glmm(f, d, family = family)
    for (k in c(1e-3, 30, 1000)) {
      d$xs <- d$x * k
      fit <- suppressWarnings(glmm(f, d, family = family))  # (check.scaleX at 1e-3)
      expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(base)), tolerance = 1e-9)
      expect_equal(unname(fit$theta), unname(base$theta) / c(1, k, k), tolerance = 1e-3)
      # (k = 1000 took 588 PIRLS iterations for the Poisson model, where k = 1 takes 39)
      expect_lte(sum(fit$optinfo$pirls_iterations), 1.5 * sum(base$optinfo$pirls_iterations))
      ref <- glmer_tight(as.call(list(quote(lme4::glmer), f, quote(d), family = family)),
                         environment())
      expect_gte(as.numeric(logLik(fit)) - as.numeric(logLik(ref)), -1e-7)
    }
  }
})
