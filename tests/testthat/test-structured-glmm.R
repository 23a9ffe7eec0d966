# Structured covariance terms in glmm(), side by side with glmmTMB's fits of
# the same models and with glmer (lme4 1.1, full precision) on equivalent
# unstructured models.

skip_if_not_installed("glmmTMB")
skip_if_not_installed("lme4")

data("cbpp", package = "lme4")
data("grouseticks", package = "lme4")
grouseticks$yf <- factor(grouseticks$YEAR)

# Binary outcomes over four occasions with AR(1)-correlated subject effects.
sim_binary <- function(seed, n_subj = 60, n_time = 4) {
  set.seed(seed)
  d <- expand.grid(t = factor(seq_len(n_time)), s = factor(seq_len(n_subj)), rep = 1:3)
  S <- 0.9 * 0.7^abs(outer(seq_len(n_time), seq_len(n_time), "-"))
  b <- t(t(chol(S)) %*% matrix(rnorm(n_time * n_subj), n_time))
  d$x <- rnorm(nrow(d))
  eta <- -0.3 + 0.5 * d$x + b[cbind(as.integer(d$s), as.integer(d$t))]
  d$y <- stats::rbinom(nrow(d), 1, stats::plogis(eta))
  d
}

glmm_models <- list(
  list(f = cbind(incidence, size - incidence) ~ period + cs(0 + period | herd),
       data = cbpp, family = binomial),
  list(f = cbind(incidence, size - incidence) ~ period + diag(0 + period | herd),
       data = cbpp, family = binomial),
  list(f = TICKS ~ HEIGHT + cs(0 + yf | LOCATION), data = grouseticks, family = poisson),
  list(f = TICKS ~ yf + HEIGHT + (1 | BROOD) + ar1(0 + yf | LOCATION),
       data = grouseticks, family = poisson),
  list(f = y ~ x + ar1(0 + t | s), data = sim_binary(5), family = binomial),
  list(f = TICKS ~ HEIGHT + toep(0 + yf | LOCATION), data = grouseticks, family = poisson)
)

test_that("structured GLMMs reach glmmTMB's optimum or a better one", {
  for (m in glmm_models) {
    label <- deparse1(m$f)
    ours <- suppressMessages(glmm(m$f, data = m$data, family = m$family))
    ref <- suppressWarnings(glmmTMB::glmmTMB(m$f, data = m$data, family = m$family))
    expect_true(is.finite(as.numeric(logLik(ours))), info = label)
    ll_ours <- as.numeric(logLik(ours))
    ll_ref <- as.numeric(logLik(ref))
    expect_equal(attr(logLik(ours), "df"), attr(logLik(ref), "df"), info = label)
    expect_true(is.na(ll_ref) || ll_ours >= ll_ref - 1e-3, info = label)
    if (is.na(ll_ref) || abs(ll_ours - ll_ref) > 1e-4) next
    expect_equal(unname(fixef(ours)), unname(glmmTMB::fixef(ref)$cond),
                 tolerance = 1e-3, info = label)
    vo <- VarCorr(ours)
    vr <- glmmTMB::VarCorr(ref)$cond
    for (g in names(vr)) {
      # glmmTMB works on log standard deviations: one estimated as 0 here is
      # ~1e-4 there.
      expect_equal(unname(attr(vo[[g]], "stddev")), unname(attr(vr[[g]], "stddev")),
                   tolerance = 2e-3, info = paste(label, g))
      cr <- attr(vr[[g]], "correlation")
      sds <- attr(vo[[g]], "stddev")
      if (length(cr) > 1L && all(sds[1:2] > 1e-3)) {
        expect_equal(attr(vo[[g]], "correlation")[2, 1], unname(cr[2, 1]),
                     tolerance = 2e-3, info = paste(label, g))
      }
    }
    # Standard errors from the Hessian of the Laplace deviance (ours, checked
    # against lme4 in test-glmm-se.R) and glmmTMB's sdreport differ by ~4 %
    # on lme4 1.1's own unstructured models of these data.
    expect_equal(unname(sqrt(diag(as.matrix(vcov(ours))))),
                 unname(sqrt(diag(vcov(ref)$cond))), tolerance = 0.06, info = label)
  }
})

test_that("diag() in a GLMM equals glmer's (x || g), diag(hom = TRUE) its (1 | g:f)", {
  ctrl <- glmer_reference_control()
  d <- grouseticks
  for (y in levels(d$yf)) d[[paste0("y", y)]] <- as.numeric(d$yf == y)
  dg <- glmm(TICKS ~ HEIGHT + diag(0 + yf | LOCATION), data = d, family = poisson)
  # lme4 1.1's || does not split a factor's columns: one term per dummy.
  ref <- suppressWarnings(lme4::glmer(TICKS ~ HEIGHT + (0 + y95 | LOCATION) +
                                         (0 + y96 | LOCATION) + (0 + y97 | LOCATION),
                                       data = d, family = poisson, control = ctrl))
  # glmer stops 3e-4 short of the optimum here (it warns); never worse is the test.
  expect_gte(as.numeric(logLik(dg)), as.numeric(logLik(ref)) - 1e-8)
  expect_equal(attr(logLik(dg), "df"), attr(logLik(ref), "df"))
  # From our optimum glmer's own criterion agrees to the digits.
  ref2 <- suppressWarnings(lme4::glmer(TICKS ~ HEIGHT + (0 + y95 | LOCATION) +
                                          (0 + y96 | LOCATION) + (0 + y97 | LOCATION),
                                        data = d, family = poisson, control = ctrl,
                                        start = list(theta = unname(dg$par),
                                                     fixef = unname(fixef(dg)))))
  expect_equal(as.numeric(logLik(dg)), as.numeric(logLik(ref2)), tolerance = 1e-8)
  # glmer's restart drifts along a flat ridge while its logLik falls (2.5e-6 below ours): its
  # intercept ends 12.3132 or 12.3141 as ours moves by 1e-7, against 12.3125 here, so the
  # estimates are compared in units of their standard errors (2.4 and 0.0048): within 0.5%.
  expect_lt(max(abs(fixef(dg) - lme4::fixef(ref2)) / sqrt(diag(as.matrix(vcov(dg))))), 0.005)

  hom <- suppressMessages(glmm(cbind(incidence, size - incidence) ~ period +
                                 diag(0 + period | herd, hom = TRUE),
                               data = cbpp, family = binomial))
  ref <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd:period),
                     data = cbpp, family = binomial, control = ctrl)
  expect_equal(as.numeric(logLik(hom)), as.numeric(logLik(ref)), tolerance = 1e-8)
  expect_equal(unname(sqrt(diag(as.matrix(vcov(hom))))),
               unname(sqrt(diag(as.matrix(vcov(ref))))), tolerance = 1e-3)
})

test_that("a structured GLMM prints as lme4 2.x prints it, and its methods work", {
  fit <- suppressMessages(glmm(cbind(incidence, size - incidence) ~ period +
                                 cs(0 + period | herd), data = cbpp, family = binomial))
  ref <- glmmTMB::glmmTMB(cbind(incidence, size - incidence) ~ period + cs(0 + period | herd),
                          data = cbpp, family = binomial)
  rho <- attr(glmmTMB::VarCorr(ref)$cond$herd, "correlation")[2, 1]
  out <- capture.output(print(fit))
  row <- out[grep("^ herd", out)]
  expect_match(row, paste0(" ", format(round(rho, 2), nsmall = 2), " \\(cs\\)$"))
  expect_true(isSingular(fit))
  expect_named(fit$par, c(paste0("herd.period", 1:4), "herd.rho"))
  expect_equal(unname(predict(fit, type = "response")),
               unname(predict(ref, type = "response")), tolerance = 1e-4)
  bb <- bootmm(fit, function(x) x$par, nsim = 3, seed = 1)
  expect_true(all(bb$t[, 5] >= -1 / 3 & bb$t[, 5] <= 1))
  expect_error(glmm(cbind(incidence, size - incidence) ~ period + ar1(1 | herd),
                    data = cbpp, family = binomial), "ar1\\(1 \\| herd\\).*at least two")
})

# Counts or binary outcomes over q occasions of ng groups with AR(1)-like
# correlated effects (standard deviations `sds`), some zeros made structural.
sim_structured <- function(seed, q, rho, sds, family, zi = FALSE, ng = 40) {
  set.seed(seed)
  d <- expand.grid(t = factor(seq_len(q)), g = factor(seq_len(ng)), rep = 1:2)
  S <- rho^abs(outer(seq_len(q), seq_len(q), "-")) * outer(sds, sds)
  b <- t(chol(S + diag(1e-10, q))) %*% matrix(rnorm(q * ng), q)
  d$x <- rnorm(nrow(d))
  eta <- 0.3 + 0.3 * d$x + b[cbind(as.integer(d$t), as.integer(d$g))]
  d$y <- switch(family, poisson = rpois(nrow(d), exp(eta)),
                nbinom2 = rnbinom(nrow(d), mu = exp(eta), size = 2),
                binomial = rbinom(nrow(d), 1, plogis(eta)))
  if (zi) d$y[runif(nrow(d)) < 0.2] <- 0
  d
}

test_that("structured GLMMs are fitted by the quasi-Newton search to glmmTMB's optimum", {
  # Structured terms used to be searched by BOBYQA alone (300 to 2,500
  # evaluations, a few times glmmTMB's time on the slowest); the quasi-Newton
  # search with the exact gradient searches correlations over an angle and
  # keeps the bound 0 of the standard deviations whose sign matters. Each
  # model is compared with glmmTMB run to rel.tol 1e-12: never a worse optimum,
  # and the same estimates where neither is on a boundary.
  tmb_control <- glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12, eval.max = 1e4,
                                                        iter.max = 1e4))
  cases <- list(
    # a heterogeneous standard deviation at its bound 0
    list(term = "cs", data = sim_structured(6, 4, 0.5, c(0, 0.8, 0.8, 0.8), "nbinom2"),
         family = nbinom2),
    # the correlation at its bound 1
    list(term = "cs", data = sim_structured(8, 4, 0.5, c(0, 0.8, 0.8, 0.8), "nbinom2"),
         family = nbinom2),
    # a correlation near -1 (glmmTMB stops 1.4e-6 short of it)
    list(term = "ar1", data = sim_structured(1, 3, -0.95, c(0.8, 0.8, 0.8), "binomial"),
         family = binomial),
    list(term = "toep", data = sim_structured(2, 4, 0.6, c(0.8, 0.8, 0.8, 0.8), "poisson"),
         family = poisson),
    # zero inflation, a standard deviation of diag() at 0
    list(term = "diag", data = sim_structured(1, 3, 0, c(0.5, 0.8, 0.8), "nbinom2", zi = TRUE),
         family = nbinom2, zi = ~1)
  )
  for (m in cases) {
    f <- as.formula(sprintf("y ~ x + %s(t + 0 | g)", m$term))
    zi <- if (is.null(m$zi)) ~0 else m$zi
    label <- paste(m$term, m$family()$family)
    ours <- suppressWarnings(glmm(f, m$data, family = m$family, ziformula = zi,
                                  dispformula = ~1))
    ref <- suppressWarnings(glmmTMB::glmmTMB(f, m$data, family = m$family, ziformula = zi,
                                             control = tmb_control))
    expect_identical(ours$optinfo$optimizer[[2]], "BFGS", info = label)
    ll <- as.numeric(logLik(ours))
    expect_gt(ll, -ref$fit$objective - 1e-7)
    # Binomial and Poisson fits without zero inflation are lme4-style fits.
    vc <- VarCorr(ours)
    vc <- if (is.null(vc$cond)) vc$g else vc$cond$g
    fe <- fixef(ours)
    if (is.list(fe)) fe <- fe$cond
    sds <- attr(vc, "stddev")
    cor <- attr(vc, "correlation")
    interior <- all(sds > 1e-3) && all(abs(cor[lower.tri(cor)]) < 0.999)
    if (interior) {
      # toep: our optimum is 1.7e-8 higher, the coefficients 5e-6 apart.
      expect_equal(unname(fe), unname(glmmTMB::fixef(ref)$cond), tolerance = 1e-4, info = label)
      expect_equal(unname(sds), unname(attr(glmmTMB::VarCorr(ref)$cond$g, "stddev")),
                   tolerance = 1e-4, info = label)
    }
  }
})
