# lmm() against lme4::lmer() on the same models, side by side.
#
# Tolerances: the log-likelihood may never be worse than lme4's by more than
# 1e-3; fixed effects within 1e-3 standard errors; standard errors,
# standard deviations, correlations and conditional modes 2e-3 relative;
# fitted values 1e-4 relative. (Estimates of covariance parameters are
# determined only to ~1e-4 on flat criteria; where our optimum is strictly
# better than lme4's the comparison uses the looser tolerance.)

skip_if_not_installed("lme4")

sim_data <- function(n = 600, seed = 1) {
  set.seed(seed)
  d <- data.frame(
    subj = sample(sprintf("s%02d", 1:30), n, replace = TRUE),
    item = sample(1:25, n, replace = TRUE),
    site = sample(c("north", "south", "east", "west"), n, replace = TRUE),
    x = rnorm(n), z = runif(n, 1, 5), w = runif(n, 0.5, 2),
    stringsAsFactors = FALSE
  )
  u_subj <- rnorm(30, sd = 0.8)
  s_subj <- rnorm(30, sd = 0.4)
  u_item <- rnorm(25, sd = 0.5)
  si <- as.integer(factor(d$subj))
  d$off <- rnorm(n, sd = 0.2)
  d$y <- 1 + 0.5 * d$x + u_subj[si] + s_subj[si] * d$x + u_item[d$item] +
    0.3 * log(d$z) + d$off + rnorm(n, sd = 1 / sqrt(d$w))
  d
}

parity_models <- function() {
  data("sleepstudy", "Penicillin", "Pastes", "cake", "Dyestuff2",
       package = "lme4", envir = environment())
  sim <- sim_data()
  sim_na <- sim
  sim_na$x[c(3, 17, 40)] <- NA
  sim_na$y[5] <- NA
  mach <- data.frame(score = nlme::Machines$score,
                     Machine = factor(as.character(nlme::Machines$Machine)),
                     Worker = factor(as.character(nlme::Machines$Worker)))
  deficient <- sim
  deficient$x2 <- 2 * deficient$x
  list(
    slopes_REML = list(Reaction ~ Days + (Days | Subject), sleepstudy),
    slopes_ML = list(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE),
    uncorrelated = list(Reaction ~ Days + (Days || Subject), sleepstudy),
    no_intercept_slope = list(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy),
    functions_fixed = list(Reaction ~ poly(Days, 2) + I(Days^2 > 4) + log(Days + 1) +
                             (1 | Subject), sleepstudy, REML = FALSE),
    crossed = list(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
    nested_slash = list(strength ~ 1 + (1 | batch/cask), Pastes),
    interaction_group = list(strength ~ 1 + (1 | batch) + (1 | batch:cask), Pastes, REML = FALSE),
    factor_slope = list(score ~ Machine + (0 + Machine | Worker), mach),
    interactions = list(angle ~ recipe * temperature + (1 | recipe:replicate), cake),
    singular = list(Yield ~ 1 + (1 | Batch), Dyestuff2),
    weights_offset = list(y ~ x + log(z) + (x | subj) + (1 | item), sim,
                          weights = quote(w), offset = quote(off)),
    formula_offset = list(y ~ x + offset(off) + (1 | subj) + (1 | site), sim, REML = FALSE),
    numeric_character_groups = list(y ~ x + (1 | item) + (1 | subj) + (1 | site), sim),
    three_crossed_vector = list(y ~ x + (1 + x | subj) + (1 | item) + (0 + z | site), sim),
    subset_na = list(y ~ x + (1 | subj), sim_na, subset = quote(z > 1.5)),
    rank_deficient = list(y ~ x + x2 + (1 | subj), deficient)
  )
}

fit_both <- function(spec) {
  formula <- spec[[1]]
  data <- spec[[2]]
  extra <- spec[-(1:2)]
  ours <- as.call(c(list(quote(lmm), formula = formula, data = quote(data)), extra))
  theirs <- ours
  theirs <- as_lmer_full_call(theirs)
  env <- environment()
  list(fit = suppressMessages(eval(ours, env)),
       ref = suppressMessages(eval(theirs, env)))
}

test_that("at least 12 models match lme4: likelihood, estimates, SEs, variances, BLUPs, fits", {
  models <- parity_models()
  expect_gte(length(models), 12)
  for (name in names(models)) {
    pair <- fit_both(models[[name]])
    fit <- pair$fit
    ref <- pair$ref
    info <- paste("model", name)
    ll <- as.numeric(logLik(fit))
    ll_ref <- as.numeric(logLik(ref))
    expect_gt(ll, ll_ref - 1e-3, label = paste(info, "logLik"))
    better <- ll > ll_ref + 1e-6
    tol <- if (better) 5e-3 else 2e-3
    se_ref <- sqrt(diag(as.matrix(vcov(ref))))
    expect_equal(names(fixef(fit)), names(lme4::fixef(ref)), label = info)
    beta_tol <- if (better) 1e-2 else 1e-3
    expect_true(all(abs(fixef(fit) - lme4::fixef(ref)) < beta_tol * se_ref),
                label = paste(info, "fixef within", beta_tol, "SE"))
    expect_equal(sqrt(diag(vcov(fit))), se_ref, tolerance = tol, label = paste(info, "SE"))
    vc <- as.data.frame(VarCorr(fit))
    vc_ref <- as.data.frame(lme4::VarCorr(ref))
    expect_equal(vc[, c("grp", "var1", "var2")], vc_ref[, c("grp", "var1", "var2")],
                 label = paste(info, "VarCorr layout"))
    expect_equal(vc$sdcor, vc_ref$sdcor, tolerance = tol, label = paste(info, "sdcor"))
    re <- ranef(fit)
    re_ref <- lme4::ranef(ref, condVar = FALSE)
    expect_equal(names(re), names(re_ref), label = info)
    for (g in names(re_ref)) {
      scale <- max(abs(re_ref[[g]]), 1e-8)
      expect_equal(as.matrix(re[[g]]) / scale, as.matrix(re_ref[[g]]) / scale,
                   tolerance = tol, label = paste(info, "ranef", g))
    }
    expect_equal(fitted(fit), fitted(ref), tolerance = 1e-4, label = paste(info, "fitted"))
    expect_equal(nobs(fit), nobs(ref), label = info)
    expect_equal(ngrps(fit), lme4::ngrps(ref), label = info)
    expect_equal(isSingular(fit), lme4::isSingular(ref), label = paste(info, "isSingular"))
  }
})

test_that("the profiled criterion equals lme4's deviance function at arbitrary theta", {
  sim <- sim_data(300, seed = 2)
  cases <- list(
    list(y ~ x + (x | subj) + (1 | item), REML = TRUE),
    list(y ~ x + (x | subj) + (1 | item), REML = FALSE),
    list(y ~ x + (1 | subj) + (0 + z | site), REML = TRUE, weights = quote(w), offset = quote(off))
  )
  set.seed(5)
  for (cs in cases) {
    extra <- cs[-1]
    dev_call <- as.call(c(list(quote(lme4::lmer), formula = cs[[1]], data = quote(sim),
                               devFunOnly = TRUE), extra))
    devfun <- eval(dev_call)
    in_call <- as.call(c(list(quote(lmm), formula = cs[[1]], data = quote(sim)), extra[names(extra) != "REML"]))
    inputs <- lmm_inputs(in_call, environment(), lmmControl())
    lower <- theta_lower(inputs$reterms)
    for (k in 1:5) {
      theta <- ifelse(lower == 0, runif(length(lower), 0.1, 2), runif(length(lower), -1, 1))
      X <- inputs$X
      storage.mode(X) <- "double"
      ours <- lmm_deviance_rs(inputs$y, X, ncol(X), inputs$weights, inputs$offset,
                              engine_terms(inputs), cs$REML, theta)
      expect_equal(ours, devfun(theta), tolerance = 1e-8,
                   label = paste(deparse1(cs[[1]]), "REML =", cs$REML))
    }
  }
})

test_that("InstEval-sized crossed models reach lme4's optimum", {
  data("InstEval", package = "lme4", envir = environment())
  sub <- droplevels(InstEval[seq(1, nrow(InstEval), by = 7), ])
  pair <- fit_both(list(y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept), sub))
  expect_gt(as.numeric(logLik(pair$fit)), as.numeric(logLik(pair$ref)) - 1e-3)
  expect_equal(unname(fixef(pair$fit)), unname(lme4::fixef(pair$ref)), tolerance = 1e-4)
  expect_equal(as.data.frame(VarCorr(pair$fit))$sdcor,
               as.data.frame(lme4::VarCorr(pair$ref))$sdcor, tolerance = 1e-3)
})
