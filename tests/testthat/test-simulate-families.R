# Simulation for the families of glmmTMB-style fits (simulate_extended_response()
# against glmmTMB's simulate() with the same seed and parameters, and the
# distributions' moments), glmmTMB-style and glmer.nb-style fits against
# glmmTMB and lme4, and inverse Gaussian simulations against lme4's.

# glmmTMB's simulate() at the fit's parameters, and ours from the same
# parameters (mean, dispersion, zero-inflation probability, trials) read off
# the glmmTMB fit, with the same seed. The fits have no random effects, so
# the draws of every simulation are those of the observations alone.
expect_tmb_draws <- function(fit, family_name, nsim = 3, seed = 11, tolerance = 0) {
  data <- fit$obj$env$data
  mu <- stats::predict(fit, type = "conditional")
  phi <- if (ncol(data$Xd) > 0L) exp(drop(data$Xd %*% glmmTMB::fixef(fit)$disp + data$doffset))
  zprob <- if (ncol(data$Xzi) > 0L) stats::predict(fit, type = "zprob")
  n_trials <- if (length(data$size)) data$size
  if (family_name %in% c("poisson", "binomial")) phi <- NULL
  ours <- withr::with_seed(seed, simulate_extended_response(
    family_name, mu, phi, zprob, n_trials, nsim))
  theirs <- simulate(fit, nsim = nsim, seed = seed)
  theirs <- vapply(theirs, function(s) if (is.matrix(s)) s[, 1L] else s, numeric(length(mu)))
  expect_identical(dim(ours), c(length(mu), as.integer(nsim)))
  expect_equal(unname(ours), unname(theirs), tolerance = tolerance,
               label = paste(family_name, "draws"))
  invisible(ours)
}

tmb_fit <- function(...) {
  suppressWarnings(glmmTMB::glmmTMB(...))
}

test_that("count draws are glmmTMB's for the same seed (nbinom2, nbinom1, poisson, zero-inflation)", {
  skip_if_not_installed("glmmTMB")
  sal <- glmmTMB::Salamanders
  expect_tmb_draws(tmb_fit(count ~ mined + spp, family = glmmTMB::nbinom2, data = sal), "nbinom2")
  expect_tmb_draws(tmb_fit(count ~ mined, family = glmmTMB::nbinom1, data = sal), "nbinom1")
  # zero-inflation: the Bernoulli draw after each observation's count
  zi <- expect_tmb_draws(tmb_fit(count ~ mined + spp, ziformula = ~ mined, family = poisson,
                                 data = sal), "poisson", nsim = 2)
  expect_true(mean(zi == 0) > 0.3)
  expect_tmb_draws(tmb_fit(count ~ mined + spp, ziformula = ~ mined, family = glmmTMB::nbinom2,
                           data = sal), "nbinom2", nsim = 2)
  expect_tmb_draws(tmb_fit(count ~ mined, ziformula = ~ 1, dispformula = ~ mined,
                           family = glmmTMB::nbinom1, data = sal), "nbinom1", nsim = 2)
  # sqrt link
  expect_tmb_draws(tmb_fit(count ~ mined, family = glmmTMB::nbinom2(link = "sqrt"), data = sal),
                   "nbinom2", nsim = 1)
})

test_that("continuous and binomial-type draws are glmmTMB's for the same seed", {
  skip_if_not_installed("glmmTMB")
  set.seed(5)
  n <- 150
  d <- data.frame(x = stats::rnorm(n), k = stats::rbinom(n, 20, 0.5) + 1L)
  p <- stats::plogis(-0.4 + 0.7 * d$x)
  d$prop <- stats::rbeta(n, p * 6, (1 - p) * 6)
  d$succ <- stats::rbinom(n, d$k, stats::rbeta(n, p * 4, (1 - p) * 4))
  d$pos <- stats::rgamma(n, shape = 3, rate = 3 / exp(0.2 + 0.5 * d$x))
  d$g <- 1 + 0.5 * d$x + stats::rnorm(n, sd = exp(-0.5 + 0.4 * d$x))
  # Continuous draws agree to rounding: glmmTMB's mean and dispersion come
  # from its C++ template, ours from predict() and the coefficients
  # (1e-12 relative covers a few ulps in exp() and the link inverse).
  expect_tmb_draws(tmb_fit(prop ~ x, dispformula = ~ x, family = glmmTMB::beta_family, data = d),
                   "beta", tolerance = 1e-12)
  expect_tmb_draws(tmb_fit(pos ~ x, family = Gamma(link = "log"), data = d), "Gamma",
                   tolerance = 1e-12)
  expect_tmb_draws(tmb_fit(g ~ x, dispformula = ~ x, family = gaussian, data = d), "gaussian",
                   tolerance = 1e-12)
  # betabinomial: rbeta() then rbinom() per observation
  expect_tmb_draws(tmb_fit(cbind(succ, k - succ) ~ x, family = glmmTMB::betabinomial, data = d),
                   "betabinomial")
  expect_tmb_draws(tmb_fit(cbind(succ, k - succ) ~ x, family = binomial, data = d), "binomial")
})

test_that("the generators draw from the families' distributions", {
  # Moments over many draws at fixed parameters: with 2e5 draws the relative
  # standard error of a mean is < 0.5% and of a variance < 1.5% here, so 4%
  # (variances) and 1.5% (means) fail only for a wrong parameterisation.
  N <- 200000
  mu <- rep(c(1.5, 6), N / 2)
  phi <- 2.5
  sim <- function(...) withr::with_seed(3, as.vector(simulate_extended_response(...)))
  moments <- function(y, at) c(mean = mean(y[at]), var = stats::var(y[at]))
  a <- mu == 1.5
  b <- !a
  y <- sim("nbinom2", mu, phi)
  expect_equal(moments(y, a), c(mean = 1.5, var = 1.5 * (1 + 1.5 / phi)), tolerance = 0.04)
  expect_equal(moments(y, b), c(mean = 6, var = 6 * (1 + 6 / phi)), tolerance = 0.04)
  y <- sim("nbinom1", mu, phi)
  expect_equal(moments(y, b), c(mean = 6, var = 6 * (1 + phi)), tolerance = 0.04)
  # zero-inflation: mean (1 - p) mu, P(0) = p + (1 - p) P_nb(0)
  y <- sim("nbinom2", mu, phi, zprob = 0.3)
  expect_equal(mean(y[b]), 0.7 * 6, tolerance = 0.015)
  expect_equal(mean(y[b] == 0), 0.3 + 0.7 * stats::dnbinom(0, size = phi, mu = 6), tolerance = 0.015)
  # beta: mean mu, variance mu (1 - mu) / (1 + phi)
  m <- rep(c(0.2, 0.7), N / 2)
  y <- sim("beta", m, 8)
  expect_equal(moments(y, m == 0.2), c(mean = 0.2, var = 0.2 * 0.8 / 9), tolerance = 0.04)
  # betabinomial (successes of 10 trials): n mu (1 - mu) (1 + (n - 1) / (1 + phi))
  y <- sim("betabinomial", m, 4, n_trials = 10)
  expect_true(all(y >= 0 & y <= 10 & y == round(y)))
  expect_equal(moments(y, m == 0.7), c(mean = 7, var = 10 * 0.21 * (1 + 9 / 5)), tolerance = 0.04)
  # Gamma: shape phi, so variance mu^2 / phi; gaussian: variance phi
  y <- sim("Gamma", mu, phi)
  expect_equal(moments(y, b), c(mean = 6, var = 36 / phi), tolerance = 0.04)
  y <- sim("gaussian", mu, phi)
  expect_equal(moments(y, b), c(mean = 6, var = phi), tolerance = 0.04)
  # a zero mean of a negative binomial (identity or sqrt link) is a zero count
  expect_identical(as.vector(simulate_extended_response("nbinom2", c(0, 0), 2)), c(0, 0))
  # mu as an n x nsim matrix: one column per simulation
  y <- withr::with_seed(1, simulate_extended_response("poisson", cbind(rep(1, 5), rep(50, 5)),
                                                       nsim = 2))
  expect_true(all(y[, 2] > y[, 1]))
  expect_error(simulate_extended_response("nbinom2", 1:3, NULL), "'phi' must have length 1 or 3")
  expect_error(simulate_extended_response("beta", 0.5, 2, zprob = 0.1), "zero-inflation for the beta family")
  expect_error(simulate_extended_response("tweedie", 1, 1), "simulation is not implemented for the tweedie family")
  expect_error(simulate_extended_response("nbinom1", c(1, -0.5, -2), 2),
               "cannot simulate nbinom1 counts: 2 of the conditional means are negative")
})

test_that("inverse Gaussian simulations are lme4's draws", {
  skip_if_no_glmm()
  skip_if_not_installed("statmod")
  d <- gamma_data()
  fit <- glmm(y ~ x + (1 | g), family = inverse.gaussian(link = "log"), data = d)
  ref <- glmer_tight(quote(lme4::glmer(y ~ x + (1 | g), family = inverse.gaussian(link = "log"),
                                       data = d)), environment())
  # Same generator (statmod::rinvgauss) and the same order of draws. lme4
  # 1.1-31 gives the inverse Gaussian the shape w / sigma, where the
  # dispersion sigma^2 makes it w / sigma^2 (ours): at lme4's sigma =
  # ours^2 and our beta and theta the draws are the same numbers.
  np <- list(beta = unname(fit$beta), theta = unname(fit$theta), sigma = sigma(fit)^2)
  ours <- simulate(fit, nsim = 3, seed = 4)
  theirs <- suppressMessages(simulate(ref, nsim = 3, seed = 4, newparams = np))
  attr(ours, "seed") <- attr(theirs, "seed") <- NULL
  expect_equal(ours, theirs, tolerance = 1e-13)
  # Conditional on the random effects: lme4 keeps its own fit's conditional
  # modes under 'newparams', which differ from ours by the two fits'
  # agreement (~1e-6 relative here), so the draws agree to 1e-5.
  ours <- simulate(fit, nsim = 3, seed = 4, re.form = NULL)
  theirs <- suppressMessages(simulate(ref, nsim = 3, seed = 4, re.form = NULL, newparams = np))
  attr(ours, "seed") <- attr(theirs, "seed") <- NULL
  expect_equal(ours, theirs, tolerance = 1e-5)
  # the draws have the inverse Gaussian's dispersion sigma^2
  many <- simulate(fit, nsim = 300, seed = 2, re.form = NULL)
  mu <- rep(fitted(fit), 300)
  expect_equal(mean((unlist(many) - mu)^2 / mu^3), sigma(fit)^2, tolerance = 0.05)
})

# Random intercepts and correlated random slopes whose formula order is not
# lme4's (g1 has more levels, so lme4 would draw its effects first).
two_term_data <- function() {
  set.seed(8)
  d <- expand.grid(rep = 1:6, g1 = factor(1:30))
  d$g2 <- factor(sample(1:8, nrow(d), replace = TRUE))
  d$x <- stats::rnorm(nrow(d))
  b1 <- matrix(stats::rnorm(60), 30) %*% chol(matrix(c(0.5, 0.15, 0.15, 0.2), 2))
  d$y <- stats::rpois(nrow(d), exp(0.5 + 0.4 * d$x + b1[d$g1, 1] + b1[d$g1, 2] * d$x +
                                     stats::rnorm(8, sd = 0.5)[d$g2]))
  d
}

# glmmTMB's parameters (parfull) for a model with the terms (1 | g2) +
# (1 + x | g1) from our beta and Lambda: log sds, and for the 2 x 2 term
# glmmTMB's correlation parameter rho / sqrt(1 - rho^2).
tmb_parfull_two_terms <- function(tmb, beta, theta) {
  sd_g2 <- theta[["g2.(Intercept)"]]
  l11 <- theta[["g1.(Intercept)"]]
  l21 <- theta[["g1.x.(Intercept)"]]
  l22 <- theta[["g1.x"]]
  sd_x <- sqrt(l21^2 + l22^2)
  rho <- l21 / sd_x
  p <- tmb$fit$parfull
  p[names(p) == "beta"] <- beta
  p[names(p) == "theta"] <- c(log(sd_g2), log(l11), log(sd_x), rho / sqrt(1 - rho^2))
  p
}

test_that("glmmTMB-style simulations draw random effects and responses in glmmTMB's order", {
  skip_if_not_installed("glmmTMB")
  d <- two_term_data()
  fit <- glmm(y ~ x + (1 | g2) + (1 + x | g1), family = poisson, data = d)
  n <- nrow(d)
  # The fit as a glmmTMB-style fit of the same Poisson model (the fields of
  # fit$extended that simulate() reads), and a zero-inflated and a negative
  # binomial version at given zero-inflation and dispersion parameters.
  fit$extended <- list(style = "glmmTMB", family = "poisson", zi = NULL, disp = NULL,
                       sigma = 1, n_trials = rep(1, n), prior_weights = rep(1, n))
  tmb <- suppressWarnings(glmmTMB::glmmTMB(y ~ x + (1 | g2) + (1 + x | g1), family = poisson,
                                           data = d))
  tmb$fit$parfull <- tmb_parfull_two_terms(tmb, fit$beta, fit$theta)
  compare <- function(ours, theirs) {
    attr(ours, "seed") <- attr(theirs, "seed") <- NULL
    expect_identical(dim(ours), dim(theirs))
    expect_equal(unname(as.matrix(ours)), unname(as.matrix(theirs)), tolerance = 0)
  }
  compare(simulate(fit, nsim = 3, seed = 9), simulate(tmb, nsim = 3, seed = 9))

  zfit <- fit
  zfit$extended$zi <- list(formula = ~ 1, beta = c("(Intercept)" = -1), X = matrix(1, n, 1),
                           offset = NULL, eta = rep(-1, n), prob = rep(stats::plogis(-1), n))
  ztmb <- suppressWarnings(glmmTMB::glmmTMB(y ~ x + (1 | g2) + (1 + x | g1), ziformula = ~ 1,
                                            family = poisson, data = d))
  p <- tmb_parfull_two_terms(ztmb, fit$beta, fit$theta)
  p[names(p) == "betazi"] <- -1
  ztmb$fit$parfull <- p
  zs <- simulate(zfit, nsim = 2, seed = 3)
  compare(zs, simulate(ztmb, nsim = 2, seed = 3))
  expect_true(mean(unlist(zs) == 0) > mean(unlist(simulate(fit, nsim = 2, seed = 3)) == 0))

  nfit <- fit
  nfit$extended$family <- "nbinom2"
  nfit$extended$disp <- list(formula = ~ 1, beta = c("(Intercept)" = log(2.5)),
                             X = matrix(1, n, 1), offset = NULL, eta = rep(log(2.5), n),
                             phi = rep(2.5, n))
  ntmb <- suppressWarnings(glmmTMB::glmmTMB(y ~ x + (1 | g2) + (1 + x | g1),
                                            family = glmmTMB::nbinom2, data = d))
  p <- tmb_parfull_two_terms(ntmb, fit$beta, fit$theta)
  p[names(p) == "betad"] <- log(2.5)
  ntmb$fit$parfull <- p
  compare(simulate(nfit, nsim = 2, seed = 5), simulate(ntmb, nsim = 2, seed = 5))
  # new data with constant zero-inflation and dispersion is fine; prior
  # weights and a new sigma are errors for these fits
  expect_identical(dim(simulate(nfit, newdata = d[1:10, ], seed = 1)), c(10L, 1L))
  expect_error(simulate(nfit, weights = rep(2, n)), "'weights' is not supported by simulate\\(\\)")
  expect_error(simulate(nfit, newparams = list(beta = fit$beta, sigma = 2)),
               "'newparams\\$sigma' is not supported for this fit")
  vfit <- nfit
  vfit$extended$disp$formula <- ~ x
  expect_error(simulate(vfit, newdata = d[1:10, ]),
               "simulate\\(\\) for 'newdata' is not supported when 'dispformula' has variables")
})

# glmmTMB's simulate() of `tmb` at the parameters of our glmmTMB-style fit
# `fit` (models with one scalar random-effects term) and ours, same seed.
expect_fit_draws <- function(fit, tmb, seed = 21, tolerance = 0) {
  p <- tmb$fit$parfull
  p[names(p) == "beta"] <- fit$beta
  if (!is.null(fit$extended$zi)) p[names(p) == "betazi"] <- fit$extended$zi$beta
  if (!is.null(fit$extended$disp)) p[names(p) == "betad"] <- fit$extended$disp$beta
  p[names(p) == "theta"] <- log(fit$theta)
  tmb$fit$parfull <- p
  successes <- function(s) vapply(s, function(x) if (is.matrix(x)) x[, 1L] else x,
                                  numeric(nrow(s)))
  ours <- simulate(fit, nsim = 3, seed = seed)
  theirs <- simulate(tmb, nsim = 3, seed = seed)
  expect_identical(vapply(ours, is.matrix, NA), vapply(theirs, is.matrix, NA))
  expect_equal(successes(ours), successes(theirs), tolerance = tolerance)
}

test_that("simulations of real glmmTMB-style fits equal glmmTMB's at the same parameters", {
  skip_if_not_installed("glmmTMB")
  skip_if(!"ziformula" %in% names(formals(glmm)), "glmm() has no ziformula yet")
  tmb <- function(...) suppressWarnings(glmmTMB::glmmTMB(...))
  sal <- glmmTMB::Salamanders
  expect_fit_draws(glmm(count ~ mined + (1 | site), ziformula = ~ mined, family = nbinom2,
                        data = sal),
                   tmb(count ~ mined + (1 | site), ziformula = ~ mined,
                       family = glmmTMB::nbinom2, data = sal))
  expect_fit_draws(glmm(count ~ mined + (1 | site), dispformula = ~ mined, family = nbinom1,
                        data = sal),
                   tmb(count ~ mined + (1 | site), dispformula = ~ mined,
                       family = glmmTMB::nbinom1, data = sal))
  expect_fit_draws(glmm(count ~ mined + (1 | site), ziformula = ~ mined, family = poisson,
                        data = sal),
                   tmb(count ~ mined + (1 | site), ziformula = ~ mined, family = poisson,
                       data = sal))
  set.seed(5)
  n <- 240
  d <- data.frame(x = stats::rnorm(n), g = factor(rep(1:24, each = 10)),
                  k = stats::rbinom(n, 15, 0.5) + 1L)
  b <- stats::rnorm(24, sd = 0.5)[d$g]
  p <- stats::plogis(-0.4 + 0.7 * d$x + b)
  d$prop <- stats::rbeta(n, p * 6, (1 - p) * 6)
  d$succ <- stats::rbinom(n, d$k, stats::rbeta(n, p * 4, (1 - p) * 4))
  d$pos <- stats::rgamma(n, shape = 3, rate = 3 / exp(0.2 + 0.5 * d$x + b))
  # continuous draws: equal to rounding of the means (1e-12 relative)
  expect_fit_draws(glmm(prop ~ x + (1 | g), dispformula = ~ x, family = beta_family, data = d),
                   tmb(prop ~ x + (1 | g), dispformula = ~ x, family = glmmTMB::beta_family,
                       data = d), tolerance = 1e-12)
  expect_fit_draws(glmm(cbind(succ, k - succ) ~ x + (1 | g), family = betabinomial, data = d),
                   tmb(cbind(succ, k - succ) ~ x + (1 | g), family = glmmTMB::betabinomial,
                       data = d))
  expect_fit_draws(glmm(pos ~ x + (1 | g), dispformula = ~ 1, family = Gamma(link = "log"),
                        data = d),
                   tmb(pos ~ x + (1 | g), family = Gamma(link = "log"), data = d),
                   tolerance = 1e-12)
})

test_that("simulations of glmm.nb() fits are lme4's for glmer.nb() fits", {
  skip_if_not_installed("lme4")
  skip_if(!exists("glmm.nb", envir = asNamespace("mixedrs")), "glmm.nb() not built yet")
  sal <- glmmTMB::Salamanders
  fit <- glmm.nb(count ~ mined + (1 | site), data = sal)
  ref <- suppressWarnings(lme4::glmer.nb(count ~ mined + (1 | site), data = sal))
  # lme4 simulates at its own theta (not a 'newparams' element): ours at
  # lme4's theta, both at our beta and random-effects parameters, so the
  # draws are the same numbers.
  fit$extended$sigma <- lme4::getME(ref, "glmer.nb.theta")
  ours <- simulate(fit, nsim = 3, seed = 2)
  np <- list(beta = stats::setNames(unname(fit$beta), names(lme4::fixef(ref))),
             theta = stats::setNames(unname(fit$theta), names(lme4::getME(ref, "theta"))))
  theirs <- simulate(ref, nsim = 3, seed = 2, newparams = np)
  attr(ours, "seed") <- attr(theirs, "seed") <- NULL
  expect_equal(unname(as.matrix(ours)), unname(as.matrix(theirs)), tolerance = 0)
})
