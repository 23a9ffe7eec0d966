# Standard errors of the fixed effects of glmm() fits against the Hessian of
# lme4's own deviance function f(c(theta, beta)) (glmer(devFunOnly = TRUE),
# nAGQ >= 1), evaluated at our estimates, so that both sides differentiate
# the same function at the same point.
#
# The reference Hessian is computed in two passes: numDeriv (or, without it, the
# Richardson helper below in the original coordinates) gives a first Hessian H0,
# which only serves to whiten the coordinates, x = x0 + T y with T T' = H0^-1;
# then central differences at h = 0.05 and 0.1 in y, combined by Richardson
# extrapolation, give H_y and H = T^-T H_y T^-1. In the original coordinates a
# near-collinear pair of columns makes the small eigenvalue drown in the
# differencing error, and numDeriv's steps shrink to where PIRLS's remaining
# error in lme4's deviance dominates (0.4% in a Hessian entry of a Poisson model
# with 10,000 rows); in y every direction has unit curvature.
#
# Tolerance 5e-3 relative on each SE (the task's accuracy target). The part
# of it used is lme4's own evaluation noise: at tolPwrss = 1e-12 its deviance
# function's Hessian differs by up to ~1.5e-3 in SE from that of an exact
# per-group Newton Laplace deviance written out in R on the Poisson model,
# which ours matches to 1e-7; every other case here agrees to ~2e-4 or better.

richardson_hessian <- function(f, k, h) {
  one <- function(h) {
    f0 <- f(rep(0, k))
    e <- function(i) replace(rep(0, k), i, h)
    fp <- vapply(seq_len(k), function(i) f(e(i)), 0)
    fm <- vapply(seq_len(k), function(i) f(-e(i)), 0)
    H <- matrix(0, k, k)
    for (i in seq_len(k)) {
      H[i, i] <- (fp[i] - 2 * f0 + fm[i]) / h^2
      for (j in seq_len(i - 1L)) {
        H[i, j] <- H[j, i] <- (f(e(i) + e(j)) + f(-e(i) - e(j)) - fp[i] - fm[i] -
                                 fp[j] - fm[j] + 2 * f0) / (2 * h^2)
      }
    }
    H
  }
  (4 * one(h) - one(2 * h)) / 3
}

lme4_hessian_se <- function(fit, call, env) {
  ref_call <- call
  ref_call[[1L]] <- quote(lme4::glmer)
  ref_call$devFunOnly <- TRUE
  ref_call$control <- quote(lme4::glmerControl(tolPwrss = 1e-12))
  dfun <- eval(ref_call, env)
  x0 <- c(unname(fit$theta), unname(fit$beta))
  k <- length(x0)
  H0 <- if (requireNamespace("numDeriv", quietly = TRUE)) {
    numDeriv::hessian(dfun, x0)
  } else {
    s <- pmax(abs(x0), 0.1) * 1e-2
    D <- diag(s, k)
    richardson_hessian(function(y) dfun(x0 + drop(D %*% y)), k, 1) / outer(s, s)
  }
  T <- tryCatch(t(chol(solve(H0))), error = function(e) diag(1 / sqrt(abs(diag(H0))), k))
  Hy <- richardson_hessian(function(y) dfun(x0 + drop(T %*% y)), k, 0.05)
  Ti <- solve(T)
  H <- t(Ti) %*% Hy %*% Ti
  nth <- length(fit$theta)
  sqrt(diag(2 * solve(H))[-seq_len(nth)])
}

expect_se_like_lme4_hessian <- function(call, env = parent.frame()) {
  fit <- suppressMessages(eval(call, env))
  expect_null(fit$optinfo$hessian_problem)
  ours <- unname(sqrt(diag(as.matrix(vcov(fit)))))
  ref <- lme4_hessian_se(fit, call, env)
  expect_equal(ours, ref, tolerance = 5e-3)
  invisible(fit)
}

se_data <- function(n, ng, seed, link = "logit", dist = "binomial",
                    offset = FALSE, collinear = FALSE) {
  set.seed(seed)
  d <- data.frame(g = factor(sample(ng, n, TRUE)), x = stats::rnorm(n),
                  z = stats::runif(n))
  if (collinear) d$x2 <- d$x + stats::rnorm(n, sd = 1e-3)
  d$off <- if (offset) log(stats::runif(n, 0.5, 2)) else 0
  eta <- 0.2 + 0.5 * d$x - 0.3 * d$z + stats::rnorm(ng, sd = 0.5)[d$g] + d$off
  d$y <- switch(dist,
    binomial = stats::rbinom(n, 1, stats::binomial(link)$linkinv(eta)),
    poisson = stats::rpois(n, exp(eta)),
    gamma = stats::rgamma(n, shape = 4, rate = 4 / exp(eta)))
  d
}

test_that("binomial probit, cloglog and logit SEs match the Hessian of lme4's deviance", {
  skip_if_no_glmm()
  d <- se_data(3000, 100, 1, "probit")
  expect_se_like_lme4_hessian(quote(glmm(y ~ x + z + (1 | g), data = d,
                                         family = binomial("probit"))))
  d2 <- se_data(3000, 100, 2, "cloglog")
  expect_se_like_lme4_hessian(quote(glmm(y ~ x + z + (1 | g), data = d2,
                                         family = binomial("cloglog"))))
  d3 <- se_data(2000, 60, 3)
  expect_se_like_lme4_hessian(quote(glmm(y ~ x + z + (x | g), data = d3,
                                         family = binomial)))
})

test_that("Poisson SEs with an offset on 10,000 rows match the Hessian of lme4's deviance", {
  skip_if_no_glmm()
  d <- se_data(10000, 100, 4, dist = "poisson", offset = TRUE)
  fit <- expect_se_like_lme4_hessian(quote(glmm(y ~ x + z + offset(off) + (1 | g),
                                                data = d, family = poisson)))
  # No PIRLS run at a difference point failed, so no false convergence warning.
  expect_length(fit$optinfo$grad_messages, 0L)
})

test_that("Gamma log SEs match lme4's Hessian with nAGQ = 1, 3 and a near-collinear column", {
  skip_if_no_glmm()
  d <- se_data(600, 30, 5, dist = "gamma")
  expect_se_like_lme4_hessian(quote(glmm(y ~ x + z + (1 | g), data = d,
                                         family = Gamma("log"))))
  d2 <- se_data(600, 30, 6, dist = "gamma")
  expect_se_like_lme4_hessian(quote(glmm(y ~ x + z + (1 | g), data = d2,
                                         family = Gamma("log"), nAGQ = 3)))
  d3 <- se_data(600, 30, 7, dist = "gamma", collinear = TRUE)
  fit <- expect_se_like_lme4_hessian(quote(glmm(y ~ x + x2 + z + (1 | g), data = d3,
                                                family = Gamma("log"), nAGQ = 3)))
  # The SEs are the Hessian's, not R_X's (which differ by far more than 5e-3 here).
  expect_false(isTRUE(all.equal(unname(sqrt(diag(fit$vcov_rx))),
                                unname(sqrt(diag(as.matrix(vcov(fit))))),
                                tolerance = 0.05)))
})

test_that("crossed Gamma, inverse Gaussian and Gaussian log fits: SEs from the gradient", {
  # Their Hessian is the forward differences of the exact gradient (the
  # families with a dispersion take it since the gradient carries the
  # deviance's path through the modes), checked against the Hessian of lme4's
  # deviance function. lme4's own standard errors for these families can be
  # far off: its deviance at tolPwrss = 1e-12 carries PIRLS errors of ~1e-5,
  # which its finite-difference Hessian divides by steps of 1e-4.
  skip_if_no_glmm()
  set.seed(21)
  n <- 1500
  d <- data.frame(g = factor(sample(50, n, TRUE)), h = factor(sample(30, n, TRUE)),
                  x = stats::rnorm(n))
  eta <- 1 + 0.3 * d$x + stats::rnorm(50, sd = 0.4)[d$g] + stats::rnorm(30, sd = 0.3)[d$h]
  d$y <- stats::rgamma(n, shape = 3, scale = exp(eta) / 3)
  d$y2 <- exp(eta + stats::rnorm(n, sd = 0.3))
  expect_se_like_lme4_hessian(quote(glmm(y ~ x + (1 | g) + (1 | h), data = d,
                                         family = Gamma("log"))))
  expect_se_like_lme4_hessian(quote(glmm(y2 ~ x + (1 | g) + (1 | h), data = d,
                                         family = inverse.gaussian("log"))))
  expect_se_like_lme4_hessian(quote(glmm(y2 ~ x + (1 | g) + (1 | h), data = d,
                                         family = gaussian("log"))))
})

test_that("a Hessian that gives no covariance is reported with its reason", {
  raw <- list(hessian_problem = NA_character_)
  indefinite <- list(available = TRUE, bad = TRUE,
                     H = matrix(c(2, 0, 0, -1e-3), 2))
  expect_match(mixedrs:::hessian_problem(raw, indefinite), "not positive definite")
  nan <- list(available = TRUE, bad = TRUE, H = matrix(c(2, NaN, NaN, 1), 2))
  expect_match(mixedrs:::hessian_problem(raw, nan), "non-finite")
  fine <- list(available = TRUE, bad = FALSE, H = diag(2))
  expect_null(mixedrs:::hessian_problem(raw, fine))
  failed <- list(hessian_problem = "PIRLS failed at 3 of the difference points")
  expect_match(mixedrs:::hessian_problem(failed, indefinite), "PIRLS failed")
  fit <- list(optinfo = list(hessian_problem = "the Hessian is not positive definite"))
  expect_warning(mixedrs:::report_hessian(fit), "come from R_X.*not positive definite")
})
