# glmm() with glmmTMB's families, zero inflation and dispersion models, side
# by side with glmmTMB on every glmmTMB-referenced model of the catalogue
# (helper-glmm-families.R): log-likelihood, the fixed effects of all
# components, sigma(), the random-effect standard deviations, standard
# errors, and anova() likelihood-ratio tests between families.
#
# Tolerances, and why:
# - logLik: ours never below glmmTMB's by more than 1e-3 (the issue's
#   criterion; glmmTMB's own gradient at its optimum is ~1e-3, so its logLik
#   is accurate to far better than that). Where ours is higher by more than
#   1e-3 the two fits sit at different optima: that is reported (a message)
#   and the parameters are not compared.
# - coefficients (cond, zi, disp): |ours - glmmTMB| < 0.02 SE + 1e-4, the SE
#   glmmTMB's. Both maximise the same Laplace likelihood; 2% of a standard
#   error is far below any statistical meaning and far above the optimizers'
#   stopping error (glmmTMB's gradient of ~1e-3 moves its estimates by about
#   1e-3 SE^2, i.e. < 1e-4 SE here).
# - sigma(): compared on the log scale, where it is a linear function of the
#   dispersion intercept (log theta = betad for nbinom2, log sigma = betad/2
#   for gaussian, ...), with the same 0.02 SE + 1e-4 rule.
# - random-effect standard deviations: the same rule on log(sd), with
#   glmmTMB's standard error of log(sd) (scalar terms); for a vector term
#   (no such SE) 0.2% relatively and 2e-3 on correlations; a singular term
#   (glmmTMB's sd < 1e-3, its log-sd SE then in the thousands) must be below
#   1e-2 in ours too.
# - standard errors: within 2% of glmmTMB's (both from the Hessian of the
#   Laplace likelihood; ours by finite differences, glmmTMB's by automatic
#   differentiation).

skip_if_not_installed("glmmTMB")
skip_if_not_installed("lme4")

tmb_cases <- Filter(function(case) case$reference == "glmmTMB", family_cases())

# logLik differences (ours - glmmTMB), reported in the last test.
family_loglik_report <- new.env(parent = emptyenv())

# log(sigma) as a multiple of the dispersion intercept (glmmTMB's sigma()).
log_sigma_factor <- function(family) {
  switch(family, gaussian = 0.5, Gamma = -0.5, 1)
}

expect_close_in_se <- function(ours, ref, se, what) {
  expect_identical(names(ours), names(ref), info = what)
  if (length(ours) != length(ref)) return(invisible())
  diff <- abs(unname(ours) - unname(ref))
  allowed <- 0.02 * unname(se) + 1e-4
  bad <- is.na(diff) | !(diff < allowed)
  expect(!any(bad), sprintf(
    "%s: |ours - glmmTMB| above 0.02 SE + 1e-4 for %s (ours %s, glmmTMB %s, SE %s)", what,
    paste(names(ref)[bad], collapse = ", "), paste(signif(ours[bad], 7), collapse = ", "),
    paste(signif(ref[bad], 7), collapse = ", "), paste(signif(se[bad], 3), collapse = ", ")))
}

expect_se_close <- function(ours, ref, what) {
  if (length(ours) != length(ref)) {
    fail(sprintf("%s: %d standard errors, glmmTMB %d", what, length(ours), length(ref)))
    return(invisible())
  }
  ratio <- unname(ours) / unname(ref)
  bad <- is.na(ratio) | !(abs(ratio - 1) < 0.02)
  expect(!any(bad), sprintf(
    "%s: standard errors differ from glmmTMB's by more than 2%% for %s (ratio %s)", what,
    paste(names(ref)[bad], collapse = ", "), paste(signif(ratio[bad], 4), collapse = ", ")))
}

compare_random_sds <- function(fit, ref, what) {
  sd_o <- random_sds(fit)
  sd_r <- random_sds(ref)
  # matched by name: lme4 and mixedrs order terms by their numbers of levels,
  # glmmTMB as written
  expect_setequal(names(sd_o), names(sd_r))
  if (!setequal(names(sd_o), names(sd_r))) return(invisible())
  sd_o <- sd_o[names(sd_r)]
  se_log <- glmmTMB_log_sd_se(ref)
  for (k in seq_along(sd_r)) {
    label <- paste(what, names(sd_r)[k])
    if (sd_r[[k]] < 1e-3) {
      expect(sd_o[[k]] < 1e-2, sprintf("%s: glmmTMB's sd is %.2g (singular), ours %.4g",
                                       label, sd_r[[k]], sd_o[[k]]))
    } else if (!is.na(se_log[k])) {
      d <- abs(log(sd_o[[k]]) - log(sd_r[[k]]))
      expect(d < 0.02 * se_log[k] + 1e-4, sprintf(
        "%s: log sd differs by %.3g (ours %.6g, glmmTMB %.6g; allowed 0.02 SE + 1e-4 = %.3g)",
        label, d, sd_o[[k]], sd_r[[k]], 0.02 * se_log[k] + 1e-4))
    } else {
      expect(abs(sd_o[[k]] / sd_r[[k]] - 1) < 2e-3, sprintf(
        "%s: sd %.6g, glmmTMB %.6g (relative difference above 2e-3)", label, sd_o[[k]],
        sd_r[[k]]))
    }
  }
  vc_o <- nlme::VarCorr(fit)
  if (is.list(vc_o) && !is.null(vc_o$cond)) vc_o <- vc_o$cond
  vc_r <- glmmTMB::VarCorr(ref)$cond
  for (g in names(vc_r)) {
    cr <- attr(vc_r[[g]], "correlation")
    if (length(cr) > 1L) {
      co <- attr(vc_o[[g]], "correlation")
      # Correlations to 2e-3 absolute.
      gap <- max(abs(unname(co[lower.tri(co)]) - unname(cr[lower.tri(cr)])))
      expect(gap < 2e-3, sprintf("%s %s correlation: differs from glmmTMB's by %.3g",
                                 what, g, gap))
    }
  }
}

compare_with_glmmTMB <- function(case) {
  fit <- mixedrs_fit(case)
  ref <- reference_fit(case)
  what <- case$name
  expect_s3_class(fit, c("glmm", "mixedrs_fit"))
  if (has_zi(case) || has_disp_model(case) || case$family != "poisson") {
    expect_identical(fit$extended$style, "glmmTMB", info = what)
    expect_identical(fit$extended$family, case$family, info = what)
  }
  expect_equal(as.numeric(stats::nobs(fit)), as.numeric(stats::nobs(ref)), info = what)

  ll_o <- stats::logLik(fit)
  ll_r <- stats::logLik(ref)
  expect_identical(as.integer(attr(ll_o, "df")), as.integer(attr(ll_r, "df")), info = what)
  diff <- as.numeric(ll_o) - as.numeric(ll_r)
  family_loglik_report[[what]] <- diff
  expect(diff >= -1e-3, sprintf("%s: logLik %.6f is below glmmTMB's %.6f by %.3g", what,
                                as.numeric(ll_o), as.numeric(ll_r), -diff))
  if (diff > 1e-3) {
    message(sprintf("%s: our logLik is higher than glmmTMB's by %.4g (%.6f vs %.6f)",
                    what, diff, as.numeric(ll_o), as.numeric(ll_r)))
    return(invisible())
  }

  # the engine's estimates, read from the fit's fields (the contract in
  # helper-glmm-families.R); the methods that show them are checked against
  # these fields in the next test
  for (component in c("cond", "zi", "disp")) {
    fe_o <- fit_component(fit, component)
    fe_r <- component_fixef(ref, component)
    label <- paste(what, component)
    if (component == "disp" && !has_disp_model(case)) {
      # an intercept-only dispersion model: compared through sigma below
      next
    }
    if (is.null(fe_r)) {
      expect_null(fe_o, info = label)
      next
    }
    se_r <- component_se(ref, component)
    expect_close_in_se(fe_o, fe_r, se_r, label)
    # A coefficient with a standard error above 100 on the link scale is not
    # identified: its estimate runs off towards infinity (e.g. a species
    # without zero inflation, Salamanders zi ~spp: logit -15 and -17, SEs in
    # the thousands) and both packages stop wherever the likelihood is flat
    # to their tolerance, so its estimate is covered by the 0.02 SE rule and
    # its standard error (arbitrary in both) is not compared.
    se_o <- component_se(fit, component)
    identified <- se_r < 100
    if (length(se_o) == length(se_r)) {
      expect_se_close(se_o[identified], se_r[identified], label)
    } else {
      expect_se_close(se_o, se_r, label)
    }
  }

  sig_o <- fit_sigma(fit)
  sig_r <- stats::sigma(ref)
  if (is.na(sig_r)) {
    expect_true(is.na(sig_o), info = paste(what, "sigma"))
  } else if (case$family %in% c("poisson", "binomial")) {
    expect_identical(as.numeric(sig_o), 1, info = paste(what, "sigma"))
  } else {
    se_log <- abs(log_sigma_factor(case$family)) * component_se(ref, "disp")
    d <- abs(log(sig_o) - log(sig_r))
    expect(isTRUE(d < 0.02 * se_log + 1e-4), sprintf(
      "%s: sigma %.7g, glmmTMB %.7g (log difference %.3g; allowed 0.02 SE + 1e-4 = %.3g)",
      what, sig_o, sig_r, d, 0.02 * se_log + 1e-4))
  }
  compare_random_sds(fit, ref, what)
}

# fixef() (glmmTMB's components), sigma() and logLik() show the fit's fields.
expect_methods_show_fit <- function(case) {
  fit <- mixedrs_fit(case)
  what <- case$name
  extended <- !is.null(fit$extended)
  fe <- nlme::fixef(fit)
  if (extended) {
    if (!is.list(fe) || !identical(names(fe), c("cond", "zi", "disp"))) {
      fail(sprintf("%s: fixef() is not glmmTMB's list(cond, zi, disp) but a %s", what,
                   paste(class(fe), collapse = "/")))
      return(invisible())
    }
    for (component in c("cond", "zi", "disp")) {
      v <- fe[[component]]
      expect_equal(if (length(v)) v else NULL, fit_component(fit, component),
                   tolerance = 1e-12, info = paste(what, component))
    }
    expect_equal(stats::sigma(fit), fit$extended$sigma, tolerance = 1e-12, info = what)
    expect_equal(as.numeric(stats::logLik(fit)), fit$extended$loglik, tolerance = 1e-12,
                 info = what)
    expect_identical(as.integer(attr(stats::logLik(fit), "df")),
                     as.integer(fit$extended$df), info = what)
  } else {
    expect_equal(fe, fit$beta, tolerance = 1e-12, info = what)
  }
}

for (case in tmb_cases) {
  local({
    case <- case
    test_that(sprintf("%s: glmm() against glmmTMB", case$name), {
      compare_with_glmmTMB(case)
    })
    test_that(sprintf("%s: fixef(), sigma(), logLik() show the fit", case$name), {
      expect_methods_show_fit(case)
    })
  })
}

test_that("the catalogue holds at least 16 models on real and simulated data", {
  cases <- family_cases()
  expect_gte(length(cases), 16L)
  expect_setequal(unique(vapply(cases, `[[`, "", "data")),
                  c("Salamanders", "Owls", "grouse", "epil", "beta_crossed", "beta_disp",
                    "cbpp", "sleepstudy", "gamma_disp"))
})

# --- anova() likelihood-ratio tests between families --------------------------

# The last row's chi-squared statistic and its degrees of freedom (glmmTMB
# names the test's df "Chi Df", lme4 "Df").
lrt_row <- function(tab) {
  tab <- as.data.frame(tab)
  df_col <- if ("Chi Df" %in% names(tab)) "Chi Df" else "Df"
  c(chisq = tab$Chisq[nrow(tab)], df = tab[[df_col]][nrow(tab)])
}

# Chisq: each logLik may sit up to 1e-3 from glmmTMB's (the criterion
# above), so the statistic may differ by up to 4e-3.
expect_same_lrt <- function(name_a, name_b) {
  cases <- family_cases()
  a <- mixedrs_fit(cases[[name_a]])
  b <- mixedrs_fit(cases[[name_b]])
  ra <- reference_fit(cases[[name_a]])
  rb <- reference_fit(cases[[name_b]])
  ours <- lrt_row(stats::anova(a, b))
  ref <- lrt_row(suppressWarnings(stats::anova(ra, rb)))
  label <- paste(name_a, "vs", name_b)
  expect_identical(unname(ours[["df"]]), unname(ref[["df"]]), info = label)
  # (as lme4 and glmmTMB, a negative difference shows as 0)
  expect_equal(unname(ours[["chisq"]]), max(0, 2 * (as.numeric(stats::logLik(b)) -
                                                      as.numeric(stats::logLik(a)))),
               tolerance = 1e-8, info = label)
  expect(abs(ours[["chisq"]] - ref[["chisq"]]) < 4e-3, sprintf(
    "%s: Chisq %.6f, glmmTMB %.6f", label, ours[["chisq"]], ref[["chisq"]]))
}

test_that("anova(): Poisson against negative binomial, as glmmTMB's", {
  expect_same_lrt("Salamanders poisson", "Salamanders nbinom2")
})

test_that("anova(): negative binomial with and without zero inflation, as glmmTMB's", {
  expect_same_lrt("Salamanders nbinom2", "Salamanders nbinom2 zi ~mined")
})

test_that("anova(): Poisson with and without zero inflation, as glmmTMB's", {
  expect_same_lrt("Salamanders poisson", "Salamanders zipoisson ~mined")
})

test_that("logLik differences from glmmTMB (report)", {
  d <- unlist(as.list(family_loglik_report))
  skip_if(length(d) == 0L, "no fits compared")
  d <- d[order(names(d))]
  message("logLik(mixedrs) - logLik(glmmTMB):\n",
          paste(sprintf("  %-42s %+.3g", names(d), d), collapse = "\n"))
  expect_true(all(d >= -1e-3))
})

test_that("a glmmTMB-style Poisson fit without zero inflation or dispersion model has glmmTMB's SEs and no warning", {
  # Nothing is eliminated from its Hessian (no family parameters): the
  # elimination of an empty block once turned the Hessian into NAs, with a
  # false "Problem with Hessian check" warning and R_X-based SEs.
  sal <- family_data("Salamanders")
  fit <- NULL
  expect_no_warning(fit <- glmm(count ~ mined + (1 | site), sal, family = poisson,
                                ziformula = ~0))
  ref <- glmmTMB::glmmTMB(count ~ mined + (1 | site), sal, family = poisson)
  expect_false(anyNA(fit$optinfo$derivs$Hessian))
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-8)
  expect_equal(unname(sqrt(diag(as.matrix(vcov(fit)$cond)))),
               unname(sqrt(diag(vcov(ref)$cond))), tolerance = 1e-4)
})

# Simulated count data with two crossed grouping factors and a random slope
# component: zero-inflated Poisson or nbinom1 counts (the generator of the
# randomized side-by-side runs that found the models below).
simulate_crossed_counts <- function(seed, family = c("zipoisson", "nbinom1")) {
  family <- match.arg(family)
  set.seed(seed)
  ng <- sample(5:40, 1)
  n <- ng * sample(4:25, 1)
  d <- data.frame(g = factor(sample(ng, n, TRUE)),
                  h = factor(sample(sample(3:10, 1), n, TRUE)),
                  x = stats::rnorm(n), z = stats::rnorm(n),
                  k = factor(sample(letters[1:3], n, TRUE)))
  b <- stats::rnorm(ng, sd = stats::runif(1, 0, 1.2))
  bh <- stats::rnorm(nlevels(d$h), sd = stats::runif(1, 0, 0.8))
  bs <- stats::rnorm(ng, sd = stats::runif(1, 0, 0.5))
  eta <- stats::runif(1, -1, 1.5) + 0.4 * d$x + b[d$g] + bh[d$h] + bs[d$g] * d$x
  stats::runif(1)  # (an nbinom2 dispersion neither family uses)
  p_zero <- stats::plogis(stats::runif(1, -2, 0) + 0.6 * d$z)
  if (family == "nbinom1") {
    phi <- stats::runif(1, 0.3, 3)
    d$y <- stats::rnbinom(n, mu = exp(eta), size = exp(eta) / phi)
    return(d)
  }
  d$y <- stats::rpois(n, exp(eta))
  d$y <- ifelse(stats::runif(n) < p_zero, 0, d$y)
  d
}

# glmm() and glmmTMB on simulate_crossed_counts(seed) (zero-inflated Poisson,
# y ~ x + (1 | g) + (1 | h), zi ~ z), checked side by side: glmmTMB's Hessian
# positive definite, our logLik not below its (1e-6: both optimizers'
# precision), every coefficient within 2e-3 of its standard error. Returns
# both fits.
expect_zipoisson_crossed_matches_glmmTMB <- function(seed) {
  d <- simulate_crossed_counts(seed)
  fit <- glmm(y ~ x + (1 | g) + (1 | h), data = d, family = poisson, ziformula = ~z)
  ref <- glmmTMB::glmmTMB(y ~ x + (1 | g) + (1 | h), data = d, family = poisson,
                          ziformula = ~z)
  expect_true(ref$sdr$pdHess)
  expect_gt(as.numeric(logLik(fit)) - as.numeric(logLik(ref)), -1e-6)
  se <- sqrt(c(diag(vcov(ref)$cond), diag(vcov(ref)$zi)))
  diffs <- c(fixef(fit)$cond - glmmTMB::fixef(ref)$cond, fixef(fit)$zi - glmmTMB::fixef(ref)$zi)
  expect_lt(max(abs(diffs) / se), 2e-3)
  list(fit = fit, ref = ref)
}

test_that("a fit whose PIRLS at the starting values converges slowly reaches glmmTMB's optimum", {
  # Zero-inflated Poisson, two crossed terms, 96 observations: from lme4's
  # cold start PIRLS crept along a flat direction for 100 iterations, one
  # run short of converging, and the fit stopped with an error.
  expect_zipoisson_crossed_matches_glmmTMB(1006)
})

test_that("an nbinom1 fit at its Poisson limit is the Poisson fit, without noise in the deviance", {
  # The dispersion runs to 0 (mu / phi to 1e9): ln Gamma(y + s) - ln Gamma(s)
  # formed as a difference of two ln Gamma values carried errors of ~1e-6
  # per observation, and PIRLS stopped with "step-halving failed to reduce
  # the penalized deviance" on that noise (glmmTMB's Hessian is not positive
  # definite there). The limit is the Poisson model, which glmer fits. The
  # deviance is flat in log(phi) there, so the Hessian may be singular along
  # it: a warning naming disp.(Intercept)'s standard error (as glmmTMB warns
  # of its Hessian) is allowed, nothing else.
  d <- simulate_crossed_counts(502, "nbinom1")
  fit <- withCallingHandlers(
    glmm(y ~ x + (1 | g) + (1 | h), data = d, family = glmmTMB::nbinom1()),
    warning = function(w) {
      if (grepl("standard errors are not available (NA) for disp.(Intercept)",
                conditionMessage(w), fixed = TRUE)) {
        invokeRestart("muffleWarning")
      }
    })
  ref <- lme4::glmer(y ~ x + (1 | g) + (1 | h), data = d, family = poisson,
                     control = glmer_reference_control())
  expect_lt(sigma(fit), 1e-6)
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-5)
  expect_equal(unname(fixef(fit)$cond), unname(lme4::fixef(ref)), tolerance = 1e-4)
})

test_that("PIRLS takes exact Newton steps at zero-inflated zeros that are all but surely structural", {
  # Zero-inflated Poisson with crossed terms: zeros with large means have an
  # observed information near 0; the expected information stood in for it,
  # PIRLS converged only linearly (about 100 iterations per evaluation), the
  # search stalled near its start and the fit ended 5.1 log-likelihood units
  # below glmmTMB's optimum.
  fits <- expect_zipoisson_crossed_matches_glmmTMB(3306)
  fit <- fits$fit
  ref <- fits$ref
  expect_lt(sum(fit$optinfo$pirls_iterations), 2000)
  expect_equal(unname(sqrt(diag(as.matrix(vcov(fit)$cond)))), unname(sqrt(diag(vcov(ref)$cond))),
               tolerance = 1e-3)
})

test_that("a zero-inflated negative binomial with several optima reaches the best one known", {
  # Zero-inflated negative binomial counts (size 5) with a random intercept
  # (150 observations), some zeros made structural. The negative binomial
  # with zero inflation has several optima here: overdispersion (phi 7.2) with
  # little zero inflation, where a search from a moment estimate of phi ended,
  # 3.02 log-likelihood units below glmmTMB; the Poisson limit (phi -> Inf)
  # with the zeros in the zero-inflation model, where glmmTMB's search and our
  # search from the Poisson side end (-176.252); and, higher than both
  # (-175.867), phi 6.5 with zero-inflation coefficients that run off
  # (a separation: structural zeros only at one end of x), which glmmTMB
  # started there keeps. The fit must be at least as good as glmmTMB's and as
  # its zero-inflated Poisson limit, and where it ends must be a point of
  # glmmTMB's likelihood.
  set.seed(120)
  ng <- sample(5:25, 1)
  n <- ng * sample(4:15, 1)
  d <- data.frame(g = factor(sample(ng, n, TRUE)), x = rnorm(n))
  eta <- runif(1, -0.5, 1.5) + 0.4 * d$x + rnorm(ng, sd = runif(1, 0, 1))[d$g]
  invisible(sample(5, 1))
  cnt <- rnbinom(n, mu = exp(eta), size = 5)
  d$y <- ifelse(runif(n) < runif(1, 0, 0.4), 0, cnt)
  fit <- suppressWarnings(glmm(y ~ x + (1 | g), d, family = nbinom2, ziformula = ~ x))
  tmb_control <- glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12, eval.max = 1e4,
                                                        iter.max = 1e4))
  ref <- suppressWarnings(glmmTMB::glmmTMB(y ~ x + (1 | g), d, family = glmmTMB::nbinom2,
                                           ziformula = ~ x, control = tmb_control))
  zip <- suppressWarnings(glmmTMB::glmmTMB(y ~ x + (1 | g), d, family = poisson,
                                           ziformula = ~ x, control = tmb_control))
  ll <- as.numeric(logLik(fit))
  expect_gt(ll, -ref$fit$objective - 1e-6)
  expect_gt(ll, -zip$fit$objective - 1e-6)
  # The best optimum known, 0.385 above the Poisson limit.
  expect_gt(ll, -zip$fit$objective + 0.3)
  start <- list(beta = unname(fixef(fit)$cond), betazi = unname(fixef(fit)$zi),
                betad = log(sigma(fit)),
                theta = log(unname(attr(VarCorr(fit)$cond$g, "stddev"))))
  there <- suppressWarnings(glmmTMB::glmmTMB(y ~ x + (1 | g), d, family = glmmTMB::nbinom2,
                                             ziformula = ~ x, control = tmb_control,
                                             start = start))
  expect_equal(ll, -there$fit$objective, tolerance = 1e-8)
  expect_equal(unname(fixef(fit)$cond), unname(glmmTMB::fixef(there)$cond), tolerance = 1e-4)
  expect_equal(sigma(fit), sigma(there), tolerance = 1e-4)
  expect_equal(fit$optinfo$starts, 2L)
})

test_that("zero-inflation coefficients that run off are searched again from 0 (glmmTMB's ?Salamanders zipm3)", {
  # From the share-of-zeros start the zero-inflation coefficient of the cell
  # EC-L x mined ran off to -21.5 (logLik -860.1008, standard errors NA); the
  # interior optimum, glmmTMB's, is 0.057 higher
  sal <- glmmTMB::Salamanders
  fit <- glmm(count ~ spp * mined + (1 | site), ziformula = ~ spp * mined, family = poisson,
              data = sal)
  tmb_control <- glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12, eval.max = 1e4,
                                                        iter.max = 1e4))
  ref <- tmb_tight(glmmTMB::glmmTMB(count ~ spp * mined + (1 | site), ziformula = ~ spp * mined,
                                    family = poisson, data = sal, control = tmb_control))
  expect_gt(as.numeric(logLik(fit)), -ref$fit$objective - 1e-6)
  expect_equal(fixef(fit)$zi, glmmTMB::fixef(ref)$zi, tolerance = 1e-4)
  expect_equal(fixef(fit)$cond, glmmTMB::fixef(ref)$cond, tolerance = 1e-4)
  expect_false(anyNA(sqrt(diag(vcov(fit)$zi))))
  expect_identical(fit$optinfo$starts, 2L)
})

test_that("an nbinom1 fit whose moment start of phi fails in PIRLS starts from phi = 1 (glmmTMB's test-families.R data)", {
  # a random-intercept sd of 5: the marginal variance says phi ~ 1e4, where
  # the observed information of the joint modes is not positive definite
  set.seed(101)
  x <- rnorm(200)
  f <- factor(rep(1:10, 20))
  mu <- exp(2 + x + rnorm(10, sd = 5)[f])
  d <- data.frame(x, f, y = rnbinom(200, size = mu, mu = mu))
  fit <- glmm(y ~ x + (1 | f), family = nbinom1, data = d)
  tmb_control <- glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12, eval.max = 1e4,
                                                        iter.max = 1e4))
  ref <- tmb_tight(glmmTMB::glmmTMB(y ~ x + (1 | f), family = glmmTMB::nbinom1, data = d,
                                    control = tmb_control))
  expect_gt(as.numeric(logLik(fit)), -ref$fit$objective - 1e-6)
  expect_equal(fixef(fit)$cond, glmmTMB::fixef(ref)$cond, tolerance = 1e-4)
  expect_equal(sigma(fit), sigma(ref), tolerance = 1e-4)
})

test_that("coefficients that ran off leave the other standard errors: those of glmmTMB with them held", {
  # zi sppDF and minedno run off (-62, -26): no curvature along them, which
  # made every standard error NA; the others' covariance is that of the
  # model with these two held at their values (glmmTMB's map)
  sal <- glmmTMB::Salamanders
  fit <- NULL
  expect_warning(fit <- glmm(count ~ spp + mined + (1 | site), ziformula = ~ spp + mined,
                             family = "nbinom2", data = sal),
                 "standard errors are not available \\(NA\\) for zi.sppDF, zi.minedno:")
  bz <- fixef(fit)$zi
  expect_lt(bz[["sppDF"]], -20)
  ref <- tmb_tight(glmmTMB::glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~ spp + mined,
                                    family = glmmTMB::nbinom2, data = sal,
                                    start = list(beta = fixef(fit)$cond, betazi = bz,
                                                 betad = log(sigma(fit)), theta = log(fit$theta)),
                                    map = list(betazi = factor(c(1:6, NA, NA))),
                                    control = tmb_tight_control()))
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-8)
  expect_equal(vcov(fit)$cond, vcov(ref)$cond, tolerance = 1e-4)
  expect_equal(sqrt(diag(vcov(fit)$zi))[1:6], sqrt(diag(vcov(ref)$zi)), tolerance = 1e-4,
               ignore_attr = TRUE)
  expect_true(all(is.na(diag(vcov(fit)$zi)[7:8])))
})

test_that("ziformula = ~ . is the conditional formula's right-hand side without offsets, as glmmTMB's", {
  owls <- glmmTMB::Owls
  owls <- transform(owls, Nest = reorder(Nest, NegPerChick), NCalls = SiblingNegotiation,
                    FT = FoodTreatment)
  tmb_control <- glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12, eval.max = 1e4,
                                                        iter.max = 1e4))
  fit <- glmm(NCalls ~ (FT + ArrivalTime) * SexParent + offset(log(BroodSize)) + (1 | Nest),
              ziformula = ~ ., family = nbinom1, data = owls)
  ref <- tmb_tight(glmmTMB::glmmTMB(NCalls ~ (FT + ArrivalTime) * SexParent + offset(log(BroodSize)) +
                                      (1 | Nest), ziformula = ~ ., family = glmmTMB::nbinom1, data = owls,
                                    control = tmb_control))
  expect_gt(as.numeric(logLik(fit)), -ref$fit$objective - 1e-6)
  expect_equal(fixef(fit)$zi, glmmTMB::fixef(ref)$zi, tolerance = 1e-4)
  line <- function(x) grep("^Zero inflation:", capture.output(print(x)), value = TRUE)
  expect_identical(line(fit), line(ref))
  # terms added and removed
  sal <- glmmTMB::Salamanders
  fit2 <- glmm(count ~ mined + (1 | site), ziformula = ~ . - (1 | site) + spp,
               family = poisson, data = sal)
  ref2 <- tmb_tight(glmmTMB::glmmTMB(count ~ mined + (1 | site), ziformula = ~ . - (1 | site) + spp,
                                     family = poisson, data = sal, control = tmb_control))
  expect_gt(as.numeric(logLik(fit2)), -ref2$fit$objective - 1e-6)
  expect_equal(fixef(fit2)$zi, glmmTMB::fixef(ref2)$zi, tolerance = 1e-4)
})

test_that("a negative binomial fit heading for its Poisson limit is searched again from the Poisson side", {
  # sleepstudy's reaction times rounded, with an ar1() term: the optimum is the
  # Poisson limit, along which the search from the moment start ran out of its
  # 10,000 evaluations 2e-3 below it
  fss <- transform(lme4::sleepstudy, y = round(Reaction), fD = factor(Days))
  fit <- suppressWarnings(glmm(y ~ Days + (1 | Subject) + ar1(fD + 0 | Subject),
                               family = nbinom2, data = fss))
  pois <- glmmTMB::glmmTMB(y ~ Days + (1 | Subject) + ar1(fD + 0 | Subject), family = poisson,
                           data = fss)
  expect_gt(as.numeric(logLik(fit)), as.numeric(logLik(pois)) - 1e-6)
  expect_gt(sigma(fit), 1e6)
  expect_equal(fixef(fit)$cond, glmmTMB::fixef(pois)$cond, tolerance = 1e-5)
  expect_identical(utils::tail(fit$optinfo$starts, 1L), 2L)
  expect_false(grepl("maximum number of evaluations", fit$optinfo$message))
})

test_that("dispersion-model standard errors of the beta and beta-binomial are glmmTMB's", {
  # their rows' derivatives in log(phi) are in closed form; the central
  # differences used before, divided by the Hessian's small steps, left the
  # beta-binomial's dispersion standard errors up to 2% off
  set.seed(2)
  n <- 600
  d <- data.frame(g = factor(sample(22, n, TRUE)), x = rnorm(n),
                  f = factor(sample(c("a", "b", "c"), n, TRUE)))
  d$ntr <- sample(1:20, n, TRUE)
  mu <- stats::plogis(0.5 + 0.3 * d$x + rnorm(22)[d$g])
  phi <- exp(3 + c(a = 0, b = 0.5, c = -1)[as.character(d$f)])
  p <- rbeta(n, mu * phi, (1 - mu) * phi)
  d$s <- rbinom(n, d$ntr, p)
  d$p <- pmin(pmax(p, 1e-6), 1 - 1e-6)
  tmb_control <- glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12, eval.max = 1e4,
                                                        iter.max = 1e4))
  fit <- glmm(cbind(s, ntr - s) ~ x + (1 | g), data = d, family = betabinomial,
              dispformula = ~ f)
  ref <- tmb_tight(glmmTMB::glmmTMB(cbind(s, ntr - s) ~ x + (1 | g), data = d,
                                    family = glmmTMB::betabinomial, dispformula = ~ f,
                                    control = tmb_control))
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-8)
  expect_equal(vcov(fit)$disp, vcov(ref)$disp, tolerance = 1e-4)
  expect_equal(vcov(fit)$cond, vcov(ref)$cond, tolerance = 1e-4)
  fitb <- glmm(p ~ x + (1 | g), data = d, family = beta_family(), dispformula = ~ f)
  refb <- tmb_tight(glmmTMB::glmmTMB(p ~ x + (1 | g), data = d, family = glmmTMB::beta_family(),
                                     dispformula = ~ f, control = tmb_control))
  expect_equal(as.numeric(logLik(fitb)), as.numeric(logLik(refb)), tolerance = 1e-8)
  expect_equal(vcov(fitb)$disp, vcov(refb)$disp, tolerance = 1e-4)
})
