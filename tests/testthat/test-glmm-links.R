# Non-canonical links: glmm() reaches the optimum glmer reaches when both are
# run to full precision (bobyqa in both stages, rhoend 1e-10, tolPwrss 1e-12).
# logLik may not be worse than glmer's by more than 1e-3 (the task's bound;
# at full precision both usually agree to ~1e-6), and the estimates agree to
# 1e-3 relative (both optimizers stop at rhoend-level steps, and on these well-
# determined models a logLik difference of 1e-6 allows parameter differences
# of ~1e-3 of a standard error).

glmer_full <- function(call, env) {
  ref_call <- call
  ref_call[[1L]] <- quote(lme4::glmer)
  ref_call$control <- quote(lme4::glmerControl(optimizer = c("bobyqa", "bobyqa"),
                                               optCtrl = list(rhoend = 1e-10),
                                               tolPwrss = 1e-12))
  suppressWarnings(suppressMessages(eval(ref_call, env)))
}

expect_glmer_optimum <- function(call, env = parent.frame()) {
  fit <- suppressMessages(eval(call, env))
  ref <- glmer_full(call, env)
  ll <- as.numeric(logLik(fit))
  ll_ref <- as.numeric(logLik(ref))
  expect_gt(ll, ll_ref - 1e-3)
  expect_equal(unname(fit$beta), unname(lme4::fixef(ref)), tolerance = 1e-3)
  expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-3)
  # PIRLS is Newton's method here: a handful of iterations per evaluation, not
  # the hundreds of linearly converging Fisher scoring (1,449 on a probit model
  # of 20,000 rows before).
  evals <- sum(fit$optinfo$feval_stages)
  expect_lt(fit$optinfo$pirls_iterations, 12 * (evals + 100))
  # glmer's full-precision fit goes with ours, for tests that compare more.
  attr(fit, "glmer_full") <- ref
  invisible(fit)
}

links_data <- function(n, ng, seed, family) {
  set.seed(seed)
  d <- data.frame(g = factor(sample(ng, n, TRUE)), x = stats::rnorm(n))
  b <- stats::rnorm(ng, sd = 0.4)[d$g]
  eta <- switch(family,
    probit = -0.2 + 0.6 * d$x + b,
    cloglog = -0.5 + 0.5 * d$x + b,
    gamma = 0.7 + 0.3 * d$x + b,
    gamma_id = 3 + 0.5 * d$x + b,
    ig = 0.4 + 0.2 * d$x + 0.5 * b)
  d$y <- switch(family,
    probit = stats::rbinom(n, 1, stats::pnorm(eta)),
    cloglog = stats::rbinom(n, 1, 1 - exp(-exp(eta))),
    gamma = stats::rgamma(n, shape = 3, rate = 3 / exp(eta)),
    gamma_id = stats::rgamma(n, shape = 3, rate = 3 / eta),
    ig = statmod_like_rinvgauss(n, exp(eta), 2))
  d
}

# Inverse-Gaussian draws (Michael, Schucany and Haas) without statmod.
statmod_like_rinvgauss <- function(n, mean, shape) {
  nu <- stats::rnorm(n)^2
  x <- mean + mean^2 * nu / (2 * shape) -
    mean / (2 * shape) * sqrt(4 * mean * shape * nu + mean^2 * nu^2)
  ifelse(stats::runif(n) <= mean / (mean + x), x, mean^2 / x)
}

test_that("binomial probit and cloglog reach glmer's optimum", {
  skip_if_no_glmm()
  d <- links_data(4000, 200, 1, "probit")
  expect_glmer_optimum(quote(glmm(y ~ x + (1 | g), data = d, family = binomial("probit"))))
  d2 <- links_data(4000, 200, 2, "cloglog")
  expect_glmer_optimum(quote(glmm(y ~ x + (1 | g), data = d2, family = binomial("cloglog"))))
  d3 <- links_data(1500, 40, 3, "probit")
  expect_glmer_optimum(quote(glmm(y ~ x + (x | g), data = d3, family = binomial("probit"))))
})

test_that("Gamma log link reaches glmer's optimum", {
  skip_if_no_glmm()
  d <- links_data(1000, 50, 4, "gamma")
  expect_glmer_optimum(quote(glmm(y ~ x + (1 | g), data = d, family = Gamma("log"))))
})

test_that("Gamma identity link reaches glmer's optimum where glmer fits", {
  skip_if_no_glmm()
  d <- links_data(1000, 50, 5, "gamma_id")
  call <- quote(glmm(y ~ x + (1 | g), data = d, family = Gamma("identity")))
  # At tolPwrss = 1e-12 glmer's PIRLS can end in NaN on this link; then there
  # is no full-precision reference to compare with.
  ok <- !is.null(tryCatch(glmer_full(call, environment()), error = function(e) NULL))
  skip_if_not(ok, "glmer does not fit this model at full precision")
  expect_glmer_optimum(call)
})

test_that("Poisson identity link: glmer's optimum, and an error naming the range where the optimum leaves it", {
  skip_if_no_glmm()
  set.seed(2)
  d <- data.frame(g = factor(sample(25, 400, TRUE)), x = stats::runif(400))
  d$y <- stats::rpois(400, 4 + 2 * d$x + stats::rnorm(25)[d$g])
  expect_glmer_optimum(quote(glmm(y ~ x + (1 | g), data = d, family = poisson("identity"))))
  # Means truncated at 0.1: the unrestricted optimum of a linear mean has
  # negative means. glm() finds no valid coefficients and glmer's PIRLS ends
  # in NaN. PIRLS's steps leave the range and are shortened until the means
  # near 0 break the factorization (weights 1/mu; this had been reported as a
  # rank-deficient fixed-effects matrix) or no shortened step is left inside
  # the range (reported as a failed step-halving at an infinite deviance).
  set.seed(3)
  d2 <- data.frame(g = factor(sample(20, 300, TRUE)), x = stats::rnorm(300))
  d2$y <- stats::rpois(300, pmax(0.1, 3 + d2$x + stats::rnorm(20)[d2$g]))
  expect_error(suppressWarnings(stats::glm(y ~ x, family = poisson("identity"), data = d2)),
               "no valid set of coefficients")
  expect_error(suppressWarnings(lme4::glmer(y ~ x + (1 | g), data = d2,
                                            family = poisson("identity"))))
  expect_error(glmm(y ~ x + (1 | g), data = d2, family = poisson("identity")),
               "inside the family's range.*identity link")
})

test_that("inverse Gaussian with a log link reaches glmer's optimum", {
  skip_if_no_glmm()
  d <- links_data(1000, 50, 6, "ig")
  fit <- expect_glmer_optimum(quote(glmm(y ~ x + (1 | g), data = d,
                                         family = inverse.gaussian("log"))))
  # A quarter of the rows lie below half their mean, where the observed
  # information is negative; Newton's steps keep it near the modes, as
  # long as the system for u and beta stays positive definite. Standing in the
  # expected information there converged linearly (119). (Far from the modes
  # the steps still take the expected information there: 43 iterations.)
  expect_lt(fit$optinfo$pirls_iterations, 70)
})

test_that("a crossed inverse Gaussian model with a log link keeps Newton's steps", {
  skip_if_no_glmm()
  set.seed(9)
  n <- 2000
  d <- data.frame(g = factor(sample(100, n, TRUE)), h = factor(sample(30, n, TRUE)),
                  x = stats::rnorm(n))
  eta <- 0.2 + 0.4 * d$x + stats::rnorm(100, sd = 0.5)[d$g] + stats::rnorm(30, sd = 0.3)[d$h]
  d$y <- statmod_like_rinvgauss(n, exp(eta), 2)
  fit <- expect_glmer_optimum(quote(glmm(y ~ x + (1 | g) + (1 | h), data = d,
                                         family = inverse.gaussian("log"))))
  expect_gt(mean(d$y < fitted(fit) / 2), 0.2)
  # 81 PIRLS iterations; 254 when every step took the expected information.
  expect_lt(fit$optinfo$pirls_iterations, 130)
})

test_that("a family with a dispersion starts near glmer's theta", {
  skip_if_no_glmm()
  # lme4's deviance for these families penalizes u without the dispersion, so
  # its theta is not the ratio of the random effects' and the working
  # residuals' standard deviations (Gamma: 0.53 against an optimum of 0.41 on
  # 20,000 rows); the moment start maps the ratio to lme4's minimum.
  cases <- list(
    list(d = links_data(3000, 150, 11, "gamma"), family = quote(Gamma("log"))),
    list(d = links_data(3000, 150, 12, "ig"), family = quote(inverse.gaussian("log"))))
  for (case in cases) {
    d <- case$d
    call <- bquote(glmm(y ~ x + (1 | g), data = d, family = .(case$family)))
    fit <- expect_glmer_optimum(call)
    ref <- attr(fit, "glmer_full")
    start <- fit$optinfo$start[[1L]]
    expect_equal(start, unname(lme4::getME(ref, "theta")), tolerance = 0.1,
                 label = paste(deparse(case$family), "moment start"))
  }
})

test_that("a binary response starts from the working response's linear mixed model", {
  skip_if_no_glmm()
  # The moment estimate weighs the levels equally and ignores the fixed
  # effects' projection: with a binary response's uneven weights it started
  # 8% below glmer's theta on these models (28% and 41% on VerbAgg). The ML fit
  # of the linear mixed model of the working response (a step of penalized
  # quasi-likelihood, from the same cross-products) starts within 4.5%.
  cases <- list(list(d = links_data(4000, 200, 21, "probit"), link = "probit"),
                list(d = links_data(3000, 100, 23, "cloglog"), link = "cloglog"))
  for (case in cases) {
    d <- case$d
    call <- bquote(glmm(y ~ x + (1 | g), data = d, family = binomial(.(case$link))))
    fit <- expect_glmer_optimum(call)
    ref <- attr(fit, "glmer_full")
    expect_equal(fit$optinfo$start[[1L]], unname(lme4::getME(ref, "theta")),
                 tolerance = 0.06, label = paste(case$link, "start"))
  }
})

test_that("an overdispersed Poisson starts with the residual variance known", {
  skip_if_no_glmm()
  # Counts with extra variation per row: the linear mixed model of the working
  # response estimates a residual variance above 1, and its random-effects
  # standard deviation alone started 9% below glmer's theta; with the
  # residual variance held at 1, as the GLMM has it, the random effects take
  # that spread and the start is within 1%.
  set.seed(31)
  n <- 3000
  d <- data.frame(g = factor(sample(100, n, TRUE)), x = stats::rnorm(n))
  d$y <- stats::rpois(n, exp(0.5 + 0.3 * d$x + stats::rnorm(100, sd = 0.4)[d$g] +
                               stats::rnorm(n, sd = 0.7)))
  call <- quote(glmm(y ~ x + (1 | g), data = d, family = poisson))
  fit <- expect_glmer_optimum(call)
  ref <- attr(fit, "glmer_full")
  expect_equal(fit$optinfo$start[[1L]], unname(lme4::getME(ref, "theta")), tolerance = 0.04)
})

test_that("gaussian with an inverse link reaches glmer's optimum where the moment start misleads", {
  # lme4's tests/glmmExt.R: from the moment start the second stage ended at
  # logLik 117.8 with a gradient warning (the joint modes there belong to
  # another solution); the fit then runs again on lme4's path (first stage,
  # Nelder-Mead) and keeps the better end, glmer's
  set.seed(101)
  d <- expand.grid(block = LETTERS[1:26], rep = 1:100, KEEP.OUT.ATTRS = FALSE)
  d$x <- stats::runif(nrow(d))
  b <- stats::rnorm(26)
  d$y <- stats::rnorm(nrow(d), 1 / (4 + 3 * d$x + b[d$block]), sd = 0.01)
  fit <- expect_glmer_optimum(quote(glmm(y ~ x + (1 | block), data = d,
                                         family = gaussian(link = "inverse"))))
  expect_length(fit$optinfo$conv$lme4$messages, 0L)
  expect_equal(sigma(fit), sigma(attr(fit, "glmer_full")), tolerance = 1e-4)
  expect_identical(fit$optinfo$optimizer, c("bobyqa", "Nelder_Mead"))
})

test_that("gaussian with a logit or probit link (proportions) reaches glmer's optimum", {
  # lme4's test-methods.R (a Stack Overflow example): glmer fits it
  df2 <- data.frame(
    prop1 = c(0.46, 0.471, 0.458, 0.764, 0.742, 0.746, 0.569, 0.45, 0.491, 0.467, 0.464,
              0.556, 0.584, 0.478, 0.456, 0.46, 0.493, 0.704, 0.693, 0.651),
    prop2 = c(0.458, 0.438, 0.453, 0.731, 0.738, 0.722, 0.613, 0.498, 0.452, 0.451, 0.447,
              0.48, 0.576, 0.484, 0.473, 0.467, 0.467, 0.722, 0.707, 0.709),
    site = factor(rep(1:8, c(2, 1, 3, 5, 3, 2, 1, 3))))
  fit <- expect_glmer_optimum(quote(glmm(prop2 ~ prop1 + (1 | site), data = df2,
                                         family = gaussian(link = "logit"))))
  expect_equal(sigma(fit), sigma(attr(fit, "glmer_full")), tolerance = 1e-6)
  set.seed(3)
  d <- data.frame(g = factor(rep(1:15, each = 8)), x = stats::rnorm(120))
  d$y <- pmin(pmax(stats::pnorm(-0.3 + 0.5 * d$x + stats::rnorm(15, sd = 0.4)[d$g]) +
                     stats::rnorm(120, sd = 0.03), 0.01), 0.99)
  expect_glmer_optimum(quote(glmm(y ~ x + (1 | g), data = d, family = gaussian(link = "probit"))))
})

test_that("gaussian with a logit link and a response outside (0, 1) stops with the cause", {
  set.seed(3)
  d <- data.frame(g = factor(rep(1:15, each = 8)), x = stats::rnorm(120))
  d$y <- stats::plogis(d$x) + stats::rnorm(120, sd = 0.2)
  expect_error(glmm(y ~ x + (1 | g), data = d, family = gaussian(link = "logit")),
               "models a mean between 0 and 1.*values outside \\(0, 1\\)")
  # (glmer stops inside PIRLS: "PIRLS loop resulted in NaN value")
})

test_that("a Gamma GLMM with the inverse link whose first PIRLS step leaves the range fits", {
  # At theta = 1 the first step of (beta, u) together from the start takes
  # some eta below 0, where the inverse link's mean is negative; there is no
  # earlier state to halve back to, and glmer stops ("PIRLS loop resulted in
  # NaN value"), as did glmm(). It now moves the linear predictor towards the
  # step by halves until the means are valid, and goes on from there.
  set.seed(1)
  n <- 1300
  d <- data.frame(h = factor(sample(26, n, TRUE)), x = rnorm(n))
  eta <- 0.5 * d$x + rnorm(26, sd = 0.7)[d$h]
  d$y <- rgamma(n, shape = 2, scale = 1 / (0.5 + exp(-eta)) / 2)
  f <- y ~ x + (1 | h)
  expect_error(suppressWarnings(lme4::glmer(f, d, family = Gamma(link = "inverse"))), "PIRLS")
  fit <- glmm(f, d, family = Gamma(link = "inverse"))
  # glmer runs from our fitted means (its PIRLS then starts inside the
  # range) and ends where we do.
  d$start_mu <- fitted(fit)
  ref <- suppressWarnings(lme4::glmer(f, d, family = Gamma(link = "inverse"), mustart = start_mu,
                                      control = lme4::glmerControl(optimizer = "bobyqa",
                                                                   optCtrl = list(rhoend = 1e-10),
                                                                   tolPwrss = 1e-12)))
  expect_gt(as.numeric(logLik(fit)) - as.numeric(logLik(ref)), -1e-6)
  expect_equal(unname(c(fit$theta, fit$beta)),
               unname(c(lme4::getME(ref, "theta"), lme4::fixef(ref))), tolerance = 1e-5)
  # glmmTMB's likelihood (dispformula = ~1): glmmTMB needs glm()'s
  # coefficients as its start for this link; we do not.
  skip_if_not_installed("glmmTMB")
  tmb_fit <- glmm(f, d, family = Gamma(link = "inverse"), dispformula = ~1)
  # (nlminb warns of NaN evaluations on its way: steps into eta < 0.)
  tmb <- withCallingHandlers(tmb_tight(glmmTMB::glmmTMB(
    f, d, family = Gamma(link = "inverse"), control = tmb_tight_control(),
    start = list(beta = unname(coef(glm(y ~ x, data = d, family = Gamma)))))),
    warning = function(w) {
      if (grepl("NA/NaN function evaluation", conditionMessage(w), fixed = TRUE)) {
        invokeRestart("muffleWarning")
      }
    })
  expect_equal(as.numeric(logLik(tmb_fit)), as.numeric(logLik(tmb)), tolerance = 1e-8)
  expect_equal(unname(fixef(tmb_fit)$cond), unname(glmmTMB::fixef(tmb)$cond), tolerance = 1e-5)
})
