# simulate(), refit() and bootmm() of fits with random effects in the
# zero-inflation model (glmmTMB's `ziformula = ~ x + (1 | g)`): simulations
# side by side with glmmTMB 1.1.5's simulate() for the same seed (its
# template draws the conditional model's random effects, then the
# zero-inflation model's, then each observation's count and structural-zero
# draw), refits against fresh glmm() fits of the new response, and the
# bootstrap's replicates against refits of the same draws.

skip_if_not_installed("glmmTMB")

zrs_data <- function(name) {
  e <- new.env()
  utils::data(list = name, package = "glmmTMB", envir = e)
  e[[name]]
}

# Our fit and glmmTMB's of one model.
zrs_fits <- function(formula, zi, family, data) {
  list(fit = suppressWarnings(glmm(formula, data = data, family = family, ziformula = zi)),
       ref = suppressWarnings(glmmTMB::glmmTMB(formula, data = data, family = family,
                                               ziformula = zi)))
}

# Lower triangle (by columns) of the Cholesky factor of a covariance matrix:
# the layout of theta for a term of a scale-free fit.
zrs_chol_theta <- function(S) {
  L <- t(chol(as.matrix(S)))
  L[lower.tri(L, diag = TRUE)]
}

# `fit` with glmmTMB's estimates in place of its own (conditional and
# zero-inflation coefficients, both models' covariances, the dispersion), so
# that the two simulate from the same parameters. Grouping factors are used
# once per model in these tests, so VarCorr()'s blocks are found by name.
zrs_plug <- function(fit, ref) {
  pf <- ref$fit$parfull
  vc <- glmmTMB::VarCorr(ref)
  fit$beta[] <- pf[names(pf) == "beta"]
  fit$extended$zi$beta[] <- pf[names(pf) == "betazi"]
  fit$theta[] <- unlist(lapply(fit$reterms, function(rt) zrs_chol_theta(vc$cond[[rt$group]])))
  fit$extended$zi$random$theta <- unlist(lapply(
    fit$extended$zi$random$reterms, function(rt) zrs_chol_theta(vc$zi[[rt$group]])))
  if (!is.null(fit$extended$disp)) {
    fit$extended$disp$phi <- exp(drop(fit$extended$disp$X %*% pf[names(pf) == "betad"]))
  }
  fit
}

zrs_models <- list(
  list(formula = count ~ mined + (1 | site), zi = ~ mined + (1 | spp),
       family = stats::poisson(), data = "Salamanders"),
  # Two zero-inflation terms whose formula order (spp, 7 levels; site, 23) is
  # not lme4's (most levels first): glmmTMB draws them in formula order. The
  # conditional terms likewise.
  list(formula = count ~ mined + (1 | spp) + (1 | site), zi = ~ mined + (1 | site) + (1 | spp),
       family = stats::poisson(), data = "Salamanders"),
  # A vector-valued zero-inflation term (its effects drawn per level together).
  list(formula = count ~ mined + (1 | site), zi = ~ (mined | spp),
       family = stats::poisson(), data = "Salamanders"),
  list(formula = SiblingNegotiation ~ FoodTreatment + offset(log(BroodSize)) + (1 | Nest),
       zi = ~ FoodTreatment + (1 | Nest), family = glmmTMB::nbinom1(), data = "Owls")
)

zrs_cache <- local({
  cache <- NULL
  function() {
    if (is.null(cache)) {
      cache <<- lapply(zrs_models, function(m) {
        c(zrs_fits(m$formula, m$zi, m$family, zrs_data(m$data)),
          list(data = zrs_data(m$data), model = m))
      })
    }
    cache
  }
})

test_that("simulate() draws as glmmTMB's simulate() for the same seed", {
  for (f in zrs_cache()) {
    label <- paste(deparse1(f$model$formula), "| zi", deparse1(f$model$zi))
    theirs <- simulate(f$ref, nsim = 3, seed = 17)
    # From glmmTMB's parameters the draws are glmmTMB's, bit for bit.
    ours <- simulate(zrs_plug(f$fit, f$ref), nsim = 3, seed = 17)
    expect_identical(names(ours), names(theirs))
    for (j in 1:3) {
      expect_identical(as.numeric(ours[[j]]), as.numeric(theirs[[j]]),
                       label = paste(label, "sim", j, "from glmmTMB's parameters"))
    }
    # From our own estimates (within ~1e-4 of glmmTMB's) a draw may differ
    # only where a count's inversion falls within that of a boundary.
    own <- simulate(f$fit, nsim = 3, seed = 17)
    same <- mean(unlist(own) == unlist(theirs))
    expect_gt(same, 0.995, label = paste(label, "share of identical draws"))
    # The seed is restored and recorded as stats::simulate() records it.
    expect_identical(attr(own, "seed"), attr(theirs, "seed"))
  }
})

test_that("the zero-inflation random effects are drawn afresh in each simulation", {
  f <- zrs_cache()[[1L]]
  fit <- f$fit
  nsim <- 300
  sims <- as.matrix(simulate(fit, nsim = nsim, seed = 3))
  spp <- f$data$spp
  # A species' share of zeros varies between simulations through its new
  # zero-inflation effect: its between-simulation variance exceeds that of
  # the same shares with the effects held at their modes (re.form = NULL)
  # by far (the zero-inflation sd is about 1 on the logit scale).
  zero_share <- function(s) vapply(split(seq_len(nrow(s)), spp), function(i) colMeans(s[i, ] == 0),
                                   numeric(ncol(s)))
  v_new <- mean(apply(zero_share(sims), 2, stats::var))
  cond <- as.matrix(simulate(fit, nsim = nsim, seed = 3, re.form = NULL))
  v_cond <- mean(apply(zero_share(cond), 2, stats::var))
  expect_gt(v_new / v_cond, 3)
  # With re.form = NULL the simulations' mean is the fitted mean (1 - p) mu:
  # over 300 simulations of 644 counts, its sd is below 0.01.
  pred <- predict(fit, type = "response")
  expect_equal(mean(cond), mean(pred), tolerance = 0.03 / mean(pred))
  expect_gt(stats::cor(rowMeans(cond), pred), 0.95)
  # ... and the zeros' share per observation the fitted zero probability,
  # p + (1 - p) exp(-mu) for the Poisson.
  p0 <- predict(fit, type = "zprob") +
    (1 - predict(fit, type = "zprob")) * exp(-predict(fit, type = "conditional"))
  expect_lt(max(abs(rowMeans(cond == 0) - p0)), 0.12)
  expect_equal(mean(cond == 0), mean(p0), tolerance = 0.01 / mean(p0))
})

test_that("simulate() of zero-inflation random effects takes newdata and checks re.form", {
  f <- zrs_cache()[[1L]]
  fit <- f$fit
  # The fitted data as newdata: the same draws as for the fitted rows.
  a <- simulate(fit, nsim = 2, seed = 8)
  b <- simulate(fit, nsim = 2, seed = 8, newdata = f$data)
  expect_identical(unname(as.matrix(a)), unname(as.matrix(b)))
  # Conditional on the modes: the mean of many simulations is predict()'s.
  nd <- f$data[c(1, 30, 200, 401, 600), ]
  s <- simulate(fit, nsim = 4000, seed = 2, newdata = nd, re.form = NULL)
  pred <- predict(fit, newdata = nd, type = "response")
  expect_equal(unname(rowMeans(as.matrix(s))), unname(pred), tolerance = 0.1)
  nd_new <- nd
  nd_new$spp <- factor(c("new", as.character(nd$spp[-1])))
  expect_error(simulate(fit, newdata = nd_new, seed = 1), "new")
  s_new <- simulate(fit, newdata = nd_new, seed = 1, allow.new.levels = TRUE, nsim = 2)
  expect_identical(dim(as.matrix(s_new)), c(5L, 2L))
  expect_error(simulate(fit, re.form = ~ (1 | site)),
               "re.form = NULL .* or NA/~0")
  expect_error(simulate(fit, re.form = ~ (1 | spp)), "re.form = NULL")
})

test_that("refit() of zero-inflation random effects equals a fresh fit", {
  for (k in c(1L, 2L, 4L)) {
    f <- zrs_cache()[[k]]
    label <- paste(deparse1(f$model$formula), "| zi", deparse1(f$model$zi))
    fit <- f$fit
    y <- simulate(fit, nsim = 1, seed = 100 + k)[[1L]]
    # The refit searches from the same starts as glmm(): it calls
    # zi_random_fit_raw().
    calls <- 0L
    suppressMessages(trace("zi_random_fit_raw", tracer = function() calls <<- calls + 1L,
                           where = asNamespace("mixedrs"), print = FALSE))
    re <- tryCatch(refit(fit, y), finally = suppressMessages(
      untrace("zi_random_fit_raw", where = asNamespace("mixedrs"))))
    expect_identical(calls, 1L, label = paste(label, "calls of zi_random_fit_raw()"))
    d2 <- f$data
    d2[[all.vars(f$model$formula[[2L]])]] <- y
    fresh <- suppressWarnings(glmm(f$model$formula, data = d2, family = f$model$family,
                                   ziformula = f$model$zi))
    expect_equal(as.numeric(logLik(re)), as.numeric(logLik(fresh)), tolerance = 1e-6,
                 label = paste(label, "logLik"))
    expect_equal(fixef(re)$cond, fixef(fresh)$cond, tolerance = 1e-6,
                 label = paste(label, "conditional coefficients"))
    expect_equal(fixef(re)$zi, fixef(fresh)$zi, tolerance = 1e-6,
                 label = paste(label, "zero-inflation coefficients"))
    expect_equal(re$theta, fresh$theta, tolerance = 1e-6, label = paste(label, "theta"))
    expect_equal(re$extended$zi$random$theta, fresh$extended$zi$random$theta,
                 tolerance = 1e-6, label = paste(label, "zero-inflation theta"))
    expect_equal(re$extended$disp$beta, fresh$extended$disp$beta, tolerance = 1e-6,
                 label = paste(label, "dispersion"))
    expect_equal(unname(predict(re, type = "zprob")), unname(predict(fresh, type = "zprob")),
                 tolerance = 1e-6, label = paste(label, "zero-inflation probabilities"))
    expect_identical(re$y, as.double(y))
  }
  # The fit's own response gives the fit back.
  fit <- zrs_cache()[[1L]]$fit
  again <- refit(fit)
  expect_equal(as.numeric(logLik(again)), as.numeric(logLik(fit)), tolerance = 1e-8)
  expect_equal(again$extended$zi$random$theta, fit$extended$zi$random$theta, tolerance = 1e-6)
  expect_error(refit(fit, fit$y - 0.5), "non-negative whole numbers")
})

test_that("refit() of zero-inflation random effects keeps the call's start", {
  f <- zrs_cache()[[1L]]
  sal <- f$data
  fit <- glmm(count ~ mined + (1 | site), data = sal, family = poisson,
              ziformula = ~ mined + (1 | spp), start = list(theta = 0.5))
  y <- simulate(fit, nsim = 1, seed = 21)[[1L]]
  d2 <- sal
  d2$count <- y
  fresh <- glmm(count ~ mined + (1 | site), data = d2, family = poisson,
                ziformula = ~ mined + (1 | spp), start = list(theta = 0.5))
  re <- refit(fit, y)
  expect_equal(as.numeric(logLik(re)), as.numeric(logLik(fresh)), tolerance = 1e-8)
  expect_equal(re$beta, fresh$beta, tolerance = 1e-6)
})

test_that("bootmm() of zero-inflation random effects: replicates are refits of simulate()'s draws", {
  f <- zrs_cache()[[1L]]
  fit <- f$fit
  stat <- function(m) c(fixef(m)$cond, fixef(m)$zi, m$theta, zi_sd = m$extended$zi$random$theta)
  b <- bootmm(fit, stat, nsim = 4, seed = 5)
  expect_s3_class(b, "bootmm")
  expect_identical(dim(b$t), c(4L, length(stat(fit))))
  expect_true(all(is.finite(b$t)))
  # bootmm() sets the seed and draws all responses with simulate().
  set.seed(5)
  sims <- simulate(fit, nsim = 4)
  for (i in 1:4) {
    re <- suppressWarnings(refit(fit, sims[[i]]))
    expect_equal(unname(b$t[i, ]), unname(stat(re)), tolerance = 1e-10,
                 label = paste("replicate", i))
  }
  # The same seed, the same replicates.
  expect_identical(bootmm(fit, stat, nsim = 4, seed = 5)$t, b$t)
})
