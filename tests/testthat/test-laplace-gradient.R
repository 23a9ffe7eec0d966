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

test_that("lme4's binomial and Poisson fits use the exact gradient where it is cheap", {
  data(VerbAgg, cbpp, package = "lme4")
  tight <- lme4::glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                              optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
  gt <- transform(lme4::grouseticks, HEIGHT = as.numeric(scale(HEIGHT)))
  models <- list(
    cbpp = list(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial),
    verbagg = list(r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), VerbAgg,
                   binomial),
    grouse = list(TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION), gt,
                  poisson)
  )
  for (nm in names(models)) {
    m <- models[[nm]]
    fit <- glmm(m[[1]], data = m[[2]], family = m[[3]])
    ref <- lme4::glmer(m[[1]], data = m[[2]], family = m[[3]], control = tight)
    expect_identical(fit$optinfo$optimizer[2], "BFGS", info = nm)
    # No nAGQ = 0 stage before the quasi-Newton search by default
    expect_length(fit$optinfo$feval_stages, 1L)
    expect_gt(as.numeric(logLik(fit)), as.numeric(logLik(ref)) - 1e-7)
    se <- sqrt(diag(as.matrix(vcov(ref))))
    expect_lt(max(abs(fixef(fit) - lme4::fixef(ref)) / se), 1e-3, label = nm)
    expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-3,
                 info = nm)
  }
  # nAGQ0initStep = TRUE (lme4's default, and what its translated control
  # asks) runs the first stage all the same, to the same optimum.
  m <- models$cbpp
  first <- glmm(m[[1]], data = m[[2]], family = m[[3]],
                control = glmmControl(nAGQ0initStep = TRUE))
  lme4_ctl <- glmm(m[[1]], data = m[[2]], family = m[[3]],
                   control = lme4::glmerControl(optimizer = "bobyqa"))
  plain <- glmm(m[[1]], data = m[[2]], family = m[[3]])
  expect_length(first$optinfo$feval_stages, 2L)
  expect_length(lme4_ctl$optinfo$feval_stages, 2L)
  expect_equal(as.numeric(logLik(first)), as.numeric(logLik(plain)), tolerance = 1e-10)
  expect_equal(fixef(first), fixef(plain), tolerance = 1e-5)
  # A crossed design whose factor fills a dense 150 x 150 trailing block (the
  # selected inverse costs ~70 passes over the rows' pairs) takes the gradient
  # and reaches glmer's optimum; with more than 1,500 random effects (about
  # 1,700 + 150 levels) the gradient is not formed and glmer's BOBYQA stage 2
  # runs.
  crossed <- function(ns, ni, n) {
    set.seed(11)
    d <- data.frame(s = factor(sample(ns, n, TRUE)), i = factor(sample(ni, n, TRUE)),
                    x = stats::rnorm(n))
    d$y <- stats::rbinom(n, 1, stats::plogis(0.3 * d$x + stats::rnorm(ns, sd = 0.5)[d$s] +
                                               stats::rnorm(ni, sd = 0.4)[d$i]))
    d
  }
  d <- crossed(200, 150, 6000)
  fit <- glmm(y ~ x + (1 | s) + (1 | i), data = d, family = binomial)
  expect_identical(fit$optinfo$optimizer[2], "BFGS")
  ref <- lme4::glmer(y ~ x + (1 | s) + (1 | i), data = d, family = binomial, control = tight)
  expect_gt(as.numeric(logLik(fit)), as.numeric(logLik(ref)) - 1e-7)
  d <- crossed(2000, 150, 4000)
  expect_gt(nlevels(droplevels(d$s)) + nlevels(droplevels(d$i)), 1500L)
  fit <- glmm(y ~ x + (1 | s) + (1 | i), data = d, family = binomial)
  expect_identical(fit$optinfo$optimizer[2], "bobyqa")
})

test_that("lme4's families with a dispersion take the exact gradient to glmer's optimum", {
  # Their criterion's aic is a function of the deviance at the modes, which the
  # modes do not make stationary (src/rust/model/family.rs,
  # aic_deviance_slope). glmer's criterion therefore carries its PIRLS error
  # to first order (its logLik at the same point differs from ours by ~1e-5),
  # so the optima are compared on glmer's own deviance function, whose values
  # still carry that error (up to ~1e-6 at tolPwrss = 1e-12), and on ours,
  # which PIRLS makes exact for these families (seed 22's inverse Gaussian
  # stopped 1.3e-7 above glmer's point while our criterion had noise of 4e-8).
  tight <- lme4::glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                              optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
  for (seed in c(21, 22)) {
    set.seed(seed)
    n <- 1500
    d <- data.frame(g = factor(sample(50, n, TRUE)), h = factor(sample(30, n, TRUE)),
                    x = stats::rnorm(n))
    eta <- 1 + 0.3 * d$x + stats::rnorm(50, sd = 0.4)[d$g] + stats::rnorm(30, sd = 0.3)[d$h]
    d$y_gamma <- stats::rgamma(n, shape = 3, scale = exp(eta) / 3)
    d$y_inverse <- stats::rgamma(n, shape = 4, scale = 1 / (4 * (1 + 0.1 * d$x +
                                                                  stats::runif(50, 0, 0.3)[d$g])))
    d$y_lognormal <- exp(eta + stats::rnorm(n, sd = 0.3))
    cases <- list(gamma_log = list("y_gamma", Gamma("log")),
                  gamma_inverse = list("y_inverse", Gamma("inverse")),
                  inverse_gaussian_log = list("y_lognormal", inverse.gaussian("log")),
                  gaussian_log = list("y_lognormal", gaussian("log")))
    for (nm in names(cases)) {
      info <- paste(nm, seed)
      fo <- stats::as.formula(paste(cases[[nm]][[1]], "~ x + (1 | g) + (1 | h)"))
      fam <- cases[[nm]][[2]]
      fit <- glmm(fo, data = d, family = fam)
      ref <- lme4::glmer(fo, data = d, family = fam, control = tight)
      expect_identical(fit$optinfo$optimizer[2], "BFGS", info = info)
      at_ours <- c(fit$theta, fixef(fit))
      at_ref <- c(lme4::getME(ref, "theta"), lme4::fixef(ref))
      theirs <- lme4::glmer(fo, data = d, family = fam, control = tight, devFunOnly = TRUE)
      expect_lt(theirs(at_ours), theirs(at_ref) + 1e-6, label = info)
      ours <- glmm(fo, data = d, family = fam, devFunOnly = TRUE)
      expect_lt(ours(at_ours), ours(at_ref) + 1e-8, label = info)
      se <- sqrt(diag(as.matrix(vcov(ref))))
      expect_lt(max(abs(fixef(fit) - lme4::fixef(ref)) / se), 1e-3, label = info)
      expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-3,
                   info = info)
    }
  }
  # Their standard errors: test-glmm-se.R, against the Hessian of glmer's
  # deviance function.
})
