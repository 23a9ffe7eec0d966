# Random effects in the zero-inflation model (glmmTMB's `ziformula = ~ x +
# (1 | g)`), side by side with glmmTMB: the Laplace approximation over the
# random effects of both linear predictors at once (src/rust/fit/pirls.rs).

skip_if_not_installed("glmmTMB")

zi_random_models <- list(
  list(name = "Poisson, zi ~ mined + (1 | spp)",
       formula = count ~ mined + (1 | site), zi = ~ mined + (1 | spp),
       family = "poisson", data = "Salamanders"),
  list(name = "Poisson, zi ~ spp + (1 | site) (shared grouping factor)",
       formula = count ~ spp + mined + (1 | site), zi = ~ spp + (1 | site),
       family = "poisson", data = "Salamanders"),
  list(name = "nbinom2, zi ~ (1 | site)",
       formula = count ~ spp + mined + (1 | site), zi = ~ (1 | site),
       family = "nbinom2", data = "Salamanders"),
  # From lme4's usual start the search followed a ridge of growing
  # zero-inflation variance and ended 8.7 log-likelihood units below.
  list(name = "nbinom2, zi ~ mined + (1 | spp)",
       formula = count ~ spp + mined + (1 | site), zi = ~ mined + (1 | spp),
       family = "nbinom2", data = "Salamanders"),
  list(name = "Owls nbinom1 with offset, zi ~ FoodTreatment + (1 | Nest)",
       formula = SiblingNegotiation ~ FoodTreatment + offset(log(BroodSize)) + (1 | Nest),
       zi = ~ FoodTreatment + (1 | Nest), family = "nbinom1", data = "Owls"),
  list(name = "Owls Poisson, zi ~ (1 | Nest)",
       formula = SiblingNegotiation ~ FoodTreatment + offset(log(BroodSize)) + (1 | Nest),
       zi = ~ (1 | Nest), family = "poisson", data = "Owls")
)

zi_random_data <- function(name) {
  e <- new.env()
  utils::data(list = name, package = "glmmTMB", envir = e)
  e[[name]]
}

zi_random_family <- function(name) {
  switch(name, poisson = stats::poisson(), nbinom2 = glmmTMB::nbinom2(),
         nbinom1 = glmmTMB::nbinom1())
}

zi_random_fits <- local({
  cache <- NULL
  function() {
    if (is.null(cache)) {
      cache <<- lapply(zi_random_models, function(m) {
        d <- zi_random_data(m$data)
        # (zi minedno runs off in the Salamanders nbinom2 model: its SE is NA)
        fit <- muffle_ran_off_se(glmm(m$formula, data = d, family = zi_random_family(m$family),
                                      ziformula = m$zi),
                                 if (m$name == "nbinom2, zi ~ mined + (1 | spp)") "zi\\.minedno")
        ref <- glmmTMB::glmmTMB(m$formula, data = d, family = zi_random_family(m$family),
                                ziformula = m$zi)
        list(model = m, data = d, fit = fit, ref = ref)
      })
    }
    cache
  }
})

test_that("fits with random effects in ziformula reach glmmTMB's optimum", {
  for (f in zi_random_fits()) {
    label <- f$model$name
    expect_true(f$ref$sdr$pdHess, label = paste(label, "(glmmTMB's Hessian)"))
    ll <- as.numeric(logLik(f$fit))
    ll_ref <- as.numeric(logLik(f$ref))
    expect_gt(ll - ll_ref, -1e-6, label = paste(label, "logLik"))
    expect_equal(ll, ll_ref, tolerance = 1e-7, label = paste(label, "logLik"))
    expect_identical(attr(logLik(f$fit), "df"), attr(logLik(f$ref), "df"))
    se_c <- sqrt(diag(vcov(f$ref)$cond))
    se_z <- sqrt(diag(vcov(f$ref)$zi))
    expect_lt(max(abs(fixef(f$fit)$cond - glmmTMB::fixef(f$ref)$cond) / se_c), 1e-3,
              label = paste(label, "conditional coefficients"))
    # A coefficient running off to -Inf (zi.minedno of the nbinom2 model: -20
    # in glmmTMB, SE 3464) stops wherever the likelihood is flat to each
    # search's tolerance: it only has to have run off too.
    off <- abs(glmmTMB::fixef(f$ref)$zi) > 10
    expect_lt(max(abs(fixef(f$fit)$zi - glmmTMB::fixef(f$ref)$zi)[!off] / se_z[!off]), 1e-3,
              label = paste(label, "zero-inflation coefficients"))
    expect_true(all(sign(fixef(f$fit)$zi[off]) == sign(glmmTMB::fixef(f$ref)$zi[off]) &
                      abs(fixef(f$fit)$zi[off]) > 10), label = paste(label, "run-off"))
    vc <- glmmTMB::VarCorr(f$ref)
    sd_ref_c <- vapply(vc$cond, function(v) attr(v, "stddev"), 0)
    sd_ref_z <- vapply(vc$zi, function(v) attr(v, "stddev"), 0)
    expect_equal(unname(f$fit$theta), unname(sd_ref_c), tolerance = 1e-3,
                 label = paste(label, "conditional sd"))
    expect_equal(f$fit$extended$zi$random$theta, unname(sd_ref_z), tolerance = 1e-3,
                 label = paste(label, "zero-inflation sd"))
    # (Its variance is set by where each search stopped: left out.)
    keep <- !off
    expect_equal(unname(vcov(f$fit)$zi[keep, keep]), unname(vcov(f$ref)$zi[keep, keep]),
                 tolerance = 1e-3,
                 label = paste(label, "zero-inflation coefficients' covariance"))
  }
})

# glmmTMB's population-level predictions (re.form = NA) of the zero-inflation
# model: its fixed part from glmmTMB's coefficients. (glmmTMB 1.1.5's own
# predict(re.form = NA) does not return that part for a zero-inflation model
# with random effects, so it is not the reference here.)
zi_population_reference <- function(f) {
  zi_fixed <- stats::update(f$model$zi, ~ . - (1 | site) - (1 | spp) - (1 | Nest))
  Xz <- stats::model.matrix(zi_fixed, f$data)
  zlink <- drop(Xz %*% glmmTMB::fixef(f$ref)$zi)
  link <- unname(predict(f$ref, type = "link", re.form = NA))
  list(zlink = zlink, zprob = stats::plogis(zlink), link = link,
       response = (1 - stats::plogis(zlink)) * exp(link))
}

test_that("predictions include the zero-inflation random effects as glmmTMB's do", {
  for (f in zi_random_fits()[c(1L, 2L, 5L)]) {
    label <- f$model$name
    population <- zi_population_reference(f)
    # (glmmTMB 1.1.5 stops on a subset of these data as newdata, "contrasts
    # mismatch"; its predictions for the fitted rows are the reference.)
    rows <- c(1, 5, 40, 100)
    nd <- f$data[rows, ]
    for (type in c("zprob", "zlink", "response", "link")) {
      expect_equal(unname(predict(f$fit, type = type)),
                   unname(predict(f$ref, type = type)), tolerance = 1e-4,
                   label = paste(label, type))
      expect_equal(unname(predict(f$fit, newdata = nd, type = type)),
                   unname(predict(f$ref, type = type)[rows]), tolerance = 1e-4,
                   label = paste(label, type, "newdata"))
      expect_equal(unname(predict(f$fit, type = type, re.form = NA)),
                   unname(population[[type]]), tolerance = 1e-4,
                   label = paste(label, type, "re.form = NA"))
      expect_equal(unname(predict(f$fit, newdata = nd, type = type, re.form = NA)),
                   unname(population[[type]][rows]), tolerance = 1e-4,
                   label = paste(label, type, "newdata, re.form = NA"))
    }
    # The random part of the zero-inflation logit moves the predictions.
    expect_gt(max(abs(predict(f$fit, type = "zprob") -
                        predict(f$fit, type = "zprob", re.form = NA))), 1e-3)
    expect_equal(unname(residuals(f$fit, type = "pearson")),
                 unname(residuals(f$ref, type = "pearson")), tolerance = 1e-4,
                 label = paste(label, "Pearson residuals"))
  }
})

test_that("a likelihood-ratio test of the zero-inflation random effect matches glmmTMB's", {
  f <- zi_random_fits()[[1L]]
  d <- f$data
  fit0 <- glmm(count ~ mined + (1 | site), data = d, family = poisson, ziformula = ~ mined)
  ref0 <- glmmTMB::glmmTMB(count ~ mined + (1 | site), data = d, family = poisson,
                           ziformula = ~ mined)
  a <- anova(fit0, f$fit)
  r <- anova(ref0, f$ref)
  expect_equal(a$npar, r$Df)
  expect_equal(a$Chisq[2], r$Chisq[2], tolerance = 1e-5)
})

test_that("methods not built for zero-inflation random effects say so", {
  f <- zi_random_fits()[[1L]]
  expect_error(predict(f$fit, re.form = ~ (1 | site)), "re.form must be NULL")
  expect_error(glmm(count ~ mined + (1 | site), data = f$data, family = poisson,
                    dispformula = ~ (1 | spp)),
               "random effects in 'dispformula'")
})

test_that("se.fit, profile() and tidy() include the zero-inflation random effects", {
  # (compared with glmmTMB in test-zi-random-inference.R)
  f <- zi_random_fits()[[1L]]
  se <- predict(f$fit, type = "zprob", se.fit = TRUE)$se.fit
  expect_true(all(is.finite(se) & se > 0))
  expect_gt(max(abs(se - predict(f$fit, type = "zprob", se.fit = TRUE, re.form = NA)$se.fit)),
            1e-3)
  pr <- profile(f$fit, which = "theta_", signames = FALSE)
  expect_identical(levels(pr$.par), c("sd_(Intercept)|site", "zi.sd_(Intercept)|spp"))
  td <- tidy(f$fit)
  expect_identical(td$component[td$effect == "ran_pars"], c("cond", "zi"))
  expect_identical(td$group[td$effect == "ran_pars"], c("site", "spp"))
  fixed <- tidy(f$fit, effects = "fixed")
  expect_equal(fixed$estimate, unname(c(fixef(f$fit)$cond, fixef(f$fit)$zi)))
})

test_that("random effects in ziformula alone are an error that says so", {
  d <- zi_random_data("Salamanders")
  expect_error(glmm(count ~ mined, ziformula = ~ (1 | site), family = poisson, data = d),
               "random effects in 'ziformula' alone")
})

test_that("an end whose run with the derivatives fails is not reported as checked", {
  # zi_random_end_derivatives() with stand-in ends: the lowest end gets the
  # derivatives first; where every run from the ends fails, the lowest end
  # stands with the reason, so that the fit warns and names it.
  end <- function(dev) list(deviance = dev, messages = character(), stage1 = NULL,
                            stage2 = list(feval = 10L))
  fits <- list(a = end(12), b = end(10))
  ctl <- list(calc.derivs = TRUE)
  failing <- function(nm) simpleError("PIRLS diverged")
  out <- mixedrs:::zi_random_end_derivatives(fits, failing, ctl)
  expect_named(out, "b")
  expect_match(out$b$hessian_problem, "could not be computed.*PIRLS diverged")
  expect_match(out$b$messages, "^convergence could not be checked")
  # The first run that passes ends the loop; evaluations of both runs count.
  passing <- function(nm) list(deviance = fits[[nm]]$deviance - 1e-9, messages = character(),
                               stage2 = list(feval = 3L))
  out <- mixedrs:::zi_random_end_derivatives(fits, passing, ctl)
  expect_named(out, "b")
  expect_identical(out$b$stage2$feval, 13L)
  expect_identical(mixedrs:::zi_random_end_derivatives(fits, failing,
                                                       list(calc.derivs = FALSE)), fits)
})

test_that("the searches from several starts give the same fit at once as one after the other", {
  # zi_random_fit_raw() runs its three searches on threads of their own; with
  # threads = 1 they run one after the other, each as a separate engine call.
  d <- zi_random_data("Salamanders")
  f <- function(control) {
    muffle_ran_off_se(glmm(count ~ spp + mined + (1 | site), data = d,
                           family = glmmTMB::nbinom2(), ziformula = ~ mined + (1 | spp),
                           control = control), "zi\\.minedno")
  }
  at_once <- f(glmmControl())
  in_turn <- f(glmmControl(threads = 1))
  expect_identical(logLik(at_once), logLik(in_turn))
  expect_identical(fixef(at_once), fixef(in_turn))
  expect_identical(at_once$extended$zi$random$theta, in_turn$extended$zi$random$theta)
  expect_identical(vcov(at_once), vcov(in_turn))
})
