# glmmTMB's parameterization of the random effects' covariances (log
# standard deviations, transformed correlations; R/glmmtmb-theta.R) where
# it shows: vcov(full = TRUE), the coefficients then rows "theta_<bar>.<k>",
# and confint()'s Wald rows of standard deviations and correlations, side
# by side with glmmTMB run to rel.tol = 1e-12.

# One model fitted by both packages: the row names must be glmmTMB's, the
# coefficients' block must agree to `tol_coef` and the covariance
# parameters' rows to `tol_theta` (each entry relative to the standard
# deviations of its row and column). The estimates of glmmTMB's theta are
# checked first, so that both matrices are taken at the same optimum.
expect_full_vcov_like_tmb <- function(ours, ref, tol_coef, tol_theta) {
  a <- vcov(ref, full = TRUE)
  dimnames(a) <- lapply(dimnames(a), unname)
  b <- vcov(ours, full = TRUE)
  expect_identical(rownames(b), rownames(a))
  expect_identical(colnames(b), colnames(a))
  ref_theta <- ref$fit$par[names(ref$fit$par) %in% c("theta", "thetazi")]
  cond <- mixedrs:::glmmtmb_theta_part(unname(mixedrs:::cov_par(ours)), ours$reterms,
                                       ours$formula[[3L]])$value
  expect_equal(cond, unname(ref_theta[names(ref_theta) == "theta"]), tolerance = 1e-4)
  scaled <- abs(a - b) / sqrt(outer(diag(a), diag(a)))
  k <- sum(!startsWith(rownames(a), "theta_"))
  expect_lt(max(scaled[seq_len(k), seq_len(k)]), tol_coef)
  expect_lt(max(scaled[-seq_len(k), ]), tol_theta)
}

# Repeated measures of 4 times in 60 groups, 2 per cell, with an AR(1)-like
# covariance whose standard deviations grow with time.
simulate_times <- function() {
  set.seed(3)
  d <- expand.grid(t = factor(1:4), g = factor(1:60), rep = 1:2)
  S <- 0.6^abs(outer(1:4, 1:4, "-")) * outer(c(1, 1.5, 2, 2.5), c(1, 1.5, 2, 2.5))
  b <- t(chol(S)) %*% matrix(stats::rnorm(4 * 60), 4)
  d$y <- 1 + b[cbind(as.integer(d$t), as.integer(d$g))] + stats::rnorm(nrow(d), sd = 0.5)
  d$x <- stats::rnorm(nrow(d))
  d
}

test_that("vcov(full = TRUE) has glmmTMB's theta rows for unstructured terms", {
  skip_if_not_installed("glmmTMB")
  sleepstudy <- lme4::sleepstudy
  ref <- tmb_tight(glmmTMB::glmmTMB(Reaction ~ Days + (Days | Subject), sleepstudy,
                                    control = tmb_tight_control()))
  fit <- glmm(Reaction ~ Days + (Days | Subject), sleepstudy, family = gaussian,
              dispformula = ~1)
  expect_full_vcov_like_tmb(fit, ref, 1e-5, 1e-4)
  # `||` is one diagonal term for glmmTMB ("z|t"), in formula order
  d <- simulate_times()
  d$z <- stats::rnorm(nrow(d))
  d$y2 <- d$y + 0.3 * stats::rnorm(4)[d$t] * d$z
  ref <- tmb_tight(glmmTMB::glmmTMB(y2 ~ x + (1 | g) + (z || t), d,
                                    control = tmb_tight_control()))
  fit <- glmm(y2 ~ x + (1 | g) + (z || t), d, family = gaussian, dispformula = ~1)
  expect_identical(tail(rownames(vcov(fit, full = TRUE)), 3L),
                   c("theta_1|g.1", "theta_z|t.1", "theta_z|t.2"))
  expect_full_vcov_like_tmb(fit, ref, 1e-5, 1e-4)
  # glmmTMB keeps the formula's order where lme4's puts the term with more
  # levels (site, 23) first
  sal <- glmmTMB::Salamanders
  ref <- tmb_tight(glmmTMB::glmmTMB(count ~ mined + (1 | spp) + (1 | site), sal,
                                    family = poisson, control = tmb_tight_control()))
  fit <- glmm(count ~ mined + (1 | spp) + (1 | site), sal, family = poisson, dispformula = ~1)
  expect_identical(vapply(fit$reterms, `[[`, "", "group"), c("site", "spp"))
  expect_identical(tail(rownames(vcov(fit, full = TRUE)), 2L), c("theta_1|spp.1", "theta_1|site.1"))
  expect_full_vcov_like_tmb(fit, ref, 1e-4, 2e-4)
})

test_that("vcov(full = TRUE) and confint() are glmmTMB's for diag, cs, ar1 and toep terms", {
  skip_if_not_installed("glmmTMB")
  d <- simulate_times()
  # (our Hessian: forward differences of the exact gradient, glmmTMB's
  # exact; agreement to ~1e-5 observed)
  for (s in c("diag", "cs", "ar1", "toep")) {
    f <- stats::as.formula(sprintf("y ~ x + %s(t + 0 | g)", s))
    ref <- tmb_tight(glmmTMB::glmmTMB(f, d, control = tmb_tight_control()))
    fit <- glmm(f, d, family = gaussian, dispformula = ~1)
    expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-9)
    expect_full_vcov_like_tmb(fit, ref, 1e-4, 1e-4)
    # Wald rows of the standard deviations and correlations (none for
    # diag(), as in glmmTMB), each end within 1e-4 of the interval's width
    a <- confint(ref)
    b <- confint(fit)
    expect_identical(rownames(b), rownames(a))
    expect_false(anyNA(b))
    expect_lt(max(abs(b[, 1:2] - a[, 1:2]) / (a[, 2L] - a[, 1L])), 1e-4)
    expect_equal(b[, 3L], a[, 3L], tolerance = 1e-4)
  }
})

test_that("vcov(full = TRUE) has the zero-inflation model's theta rows after the conditional's", {
  skip_if_not_installed("glmmTMB")
  d <- simulate_times()
  set.seed(5)
  d$cnt <- stats::rpois(nrow(d), exp(0.2 + 0.3 * d$x + 0.5 * stats::rnorm(60)[d$g])) *
    stats::rbinom(nrow(d), 1, stats::plogis(0.5 + stats::rnorm(4)[d$t]))
  ref <- tmb_tight(glmmTMB::glmmTMB(cnt ~ x + (1 | g), d, family = poisson,
                                    ziformula = ~ 1 + (1 | t), control = tmb_tight_control()))
  fit <- glmm(cnt ~ x + (1 | g), d, family = poisson, ziformula = ~ 1 + (1 | t))
  expect_identical(tail(rownames(vcov(fit, full = TRUE)), 2L), c("theta_1|g.1", "theta_1|t.1"))
  expect_full_vcov_like_tmb(fit, ref, 1e-4, 1e-4)
})

test_that("vcov(full = TRUE) of an lme4-style binomial fit is glmmTMB's", {
  skip_if_not_installed("glmmTMB")
  cbpp <- lme4::cbpp
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  ref <- tmb_tight(glmmTMB::glmmTMB(f, cbpp, family = binomial, control = tmb_tight_control()))
  # glmmTMB's defaults written out give glmer's model, fitted lme4's way
  fit <- glmm(f, cbpp, family = binomial, dispformula = ~1)
  expect_false(mixedrs:::is_extended_fit(fit))
  expect_full_vcov_like_tmb(fit, ref, 1e-5, 1e-4)
  # full = FALSE is the ordinary matrix; the other arguments do not go with full = TRUE
  expect_identical(vcov(fit, full = FALSE), vcov(fit))
  expect_error(vcov(fit, full = TRUE, use.hessian = TRUE), "takes no 'correlation'")
  expect_error(vcov(fit, full = NA), "'full' must be TRUE or FALSE")
  fit0 <- glmm(f, cbpp, family = binomial, nAGQ = 0)
  expect_error(vcov(fit0, full = TRUE), "did not compute \\(nAGQ = 0")
})

test_that("vcov(full = TRUE) warns where a variance is estimated at 0", {
  set.seed(11)
  d <- data.frame(g = factor(rep(1:6, each = 8)), x = stats::rnorm(48))
  d$y <- stats::rpois(48, exp(0.5 + 0.3 * d$x))
  fit <- glmm(y ~ x + (1 | g), d, family = poisson, dispformula = ~1)
  # (a precondition: this model's random intercept variance is estimated at 0)
  expect_equal(unname(fit$theta), 0)
  expect_warning(v <- vcov(fit, full = TRUE),
                 "no covariance for theta_1\\|g.1: the estimate is on the boundary")
  expect_true(all(is.na(v["theta_1|g.1", ])))
  expect_false(anyNA(v[1:2, 1:2]))
})
