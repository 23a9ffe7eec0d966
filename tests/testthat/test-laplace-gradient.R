# The exact gradient of the Laplace deviance of glmmTMB-style fits
# (src/rust/fit/laplace_gradient.rs), which drives their quasi-Newton stage and
# their standard errors, against Richardson-extrapolated central differences
# of the deviance itself (whose values the side-by-side tests check against
# glmmTMB's logLik), away from the optimum, where the gradient is not ~0.

skip_if_not_installed("glmmTMB")

gradient_vs_differences <- function(fit, shift = 0.05) {
  ns <- asNamespace("mixedrs")
  pars <- c(ns$cov_par(fit), fit$extended$zi$random$par, fit$extended$extra, fit$beta) +
    shift
  model <- ns$extended_engine_model(fit)
  fam <- ns$extended_engine_family(fit)
  at <- function(p) {
    ns$glmm_laplace_gradient_rs(model, fam, as.double(fit$extended$n_trials),
                                as.double(fit$eta), as.double(p))
  }
  exact <- at(pars)
  dev <- function(p) at(p)$deviance
  numeric <- vapply(seq_along(pars), function(k) {
    h <- 1e-3 * max(1, abs(pars[k]))
    d <- function(h) {
      up <- pars
      dn <- pars
      up[k] <- up[k] + h
      dn[k] <- dn[k] - h
      (dev(up) - dev(dn)) / (2 * h)
    }
    (4 * d(h / 2) - d(h)) / 3
  }, numeric(1))
  expect_equal(exact$deviance, dev(pars))
  list(exact = exact$gradient, numeric = numeric)
}

test_that("the gradient matches differences of the deviance for every kind of part", {
  data(Salamanders, package = "glmmTMB")
  data(Owls, package = "glmmTMB")
  data(sleepstudy, package = "lme4")
  set.seed(5)
  d <- data.frame(g = factor(rep(1:12, each = 10)), h = factor(rep(1:8, 15)),
                  x = stats::rnorm(120))
  d$prop <- stats::plogis(-0.3 + 0.5 * d$x + stats::rnorm(12, sd = 0.4)[d$g] +
                            stats::rnorm(8, sd = 0.3)[d$h] + stats::rnorm(120, sd = 0.5))
  fits <- list(
    zinb = glmm(count ~ mined + (1 | site), ziformula = ~mined, family = nbinom2,
                data = Salamanders),
    zip = glmm(count ~ mined + (1 | site), ziformula = ~mined, family = poisson,
               data = Salamanders),
    nb1_offset = glmm(SiblingNegotiation ~ FoodTreatment + (1 | Nest),
                      offset = log(BroodSize), family = nbinom1, data = Owls),
    beta_crossed = glmm(prop ~ x + (1 | g) + (1 | h), family = beta_family, data = d),
    gaussian_slopes = glmm(Reaction ~ Days + (Days | Subject), dispformula = ~Days,
                           family = gaussian, data = sleepstudy),
    nb2_crossed = glmm(count ~ mined + DOY + (1 | site) + (1 | spp), family = nbinom2,
                       data = Salamanders),
    # lme4's Laplace (expected weights in the determinant, observed ones move the mode)
    glmer_nb = glmm.nb(TICKS ~ YEAR + (1 | BROOD), data = lme4::grouseticks),
    # Random effects in the zero-inflation logit: two predictors per row
    # (src/rust/fit/laplace_gradient_paired.rs), a shared grouping factor, a
    # dispersion, an offset and a zero-inflation slope.
    zi_random_nb2 = glmm(count ~ spp + mined + (1 | site), ziformula = ~ (1 | site),
                         family = nbinom2, data = Salamanders),
    zi_random_nb1_offset = glmm(SiblingNegotiation ~ FoodTreatment + (1 | Nest),
                                offset = log(BroodSize), ziformula = ~ (1 | Nest),
                                family = nbinom1, data = Owls),
    zi_random_slope = glmm(count ~ mined + (1 | site), ziformula = ~ mined + (mined | spp),
                           family = poisson, data = Salamanders)
  )
  for (nm in names(fits)) {
    g <- gradient_vs_differences(fits[[nm]])
    expect_equal(g$exact, g$numeric, tolerance = 1e-6, info = nm)
  }
})

test_that("the quasi-Newton stage reports itself and reaches glmmTMB's optimum", {
  data(epil, package = "MASS")
  # A local minimum at sd = 0 (the dispersion absorbs the subjects'
  # variation), 28 deviance units above the optimum: the search from the
  # stage-1 start (sd = 0) must leave it.
  fit <- glmm(y ~ trt + base + age + (1 | subject), family = nbinom2, data = epil)
  ref <- glmmTMB::glmmTMB(y ~ trt + base + age + (1 | subject), family = glmmTMB::nbinom2,
                          data = epil)
  expect_identical(fit$optinfo$optimizer[2], "BFGS")
  expect_gt(as.numeric(logLik(fit)), as.numeric(logLik(ref)) - 1e-6)
  expect_equal(unname(fit$theta), exp(unname(ref$fit$par["theta"])), tolerance = 1e-4)
})
