# Bad input to glmm() with glmmTMB's families: each an ordinary R error
# whose message names the cause (the kind of bad value, the argument, the
# family); and a fit leaves the user's data frame as it was.

skip_if_not_installed("glmmTMB")
skip_if_not_installed("lme4")

# The error of `expr`, its message matching every pattern (case-insensitive).
expect_error_naming <- function(expr, patterns) {
  err <- tryCatch({
    force(expr)
    NULL
  }, error = function(e) e)
  if (is.null(err)) {
    fail("no error")
    return(invisible())
  }
  msg <- conditionMessage(err)
  missing <- patterns[!vapply(patterns, grepl, TRUE, x = msg, ignore.case = TRUE)]
  expect(length(missing) == 0L, sprintf("the error message does not mention %s:\n  %s",
                                        paste(sQuote(missing), collapse = ", "), msg))
  invisible(err)
}

salamanders <- family_data("Salamanders")
owls <- family_data("Owls")
cbpp <- family_data("cbpp")
props <- family_data("beta_crossed")

test_that("negative counts are an error for nbinom2 and nbinom1", {
  d <- salamanders
  d$count[c(3, 7)] <- -1L
  for (fam in c("nbinom2", "nbinom1")) {
    expect_error_naming(glmm(count ~ mined + (1 | site), d, family = fam),
                        c("negative", "count"))
  }
})

test_that("non-integer counts are an error for nbinom2 and nbinom1", {
  d <- salamanders
  d$count <- as.numeric(d$count)
  d$count[5] <- 2.5
  for (fam in c("nbinom2", "nbinom1")) {
    expect_error_naming(glmm(count ~ mined + (1 | site), d, family = fam),
                        c("(non-integer|whole)", "count"))
  }
  # the same for glmm.nb()
  expect_error_naming(glmm.nb(count ~ mined + (1 | site), d), c("(non-integer|whole)"))
  d$count[5] <- -2
  expect_error_naming(glmm.nb(count ~ mined + (1 | site), d), "negative")
})

test_that("proportions outside (0, 1) are an error for beta", {
  d <- props
  d$prop[4] <- 1.2
  expect_error_naming(glmm(prop ~ x + (1 | subject), d, family = "beta_family"),
                      c("outside", "prop"))
  d$prop[4] <- -0.1
  expect_error_naming(glmm(prop ~ x + (1 | subject), d, family = "beta_family"),
                      c("outside", "prop"))
})

test_that("proportions of exactly 0 or 1 are an error for beta naming the ordered-beta route", {
  for (v in c(0, 1)) {
    d <- props
    d$prop[c(2, 9)] <- v
    err <- expect_error_naming(glmm(prop ~ x + (1 | subject), d, family = "beta_family"),
                               c("between 0 and 1", "ordbeta|ordered.beta", "not support"))
  }
  # glmmTMB's family object gives the same error
  d <- props
  d$prop[1] <- 0
  expect_error_naming(glmm(prop ~ x + (1 | subject), d, family = glmmTMB::beta_family()),
                      c("ordbeta|ordered.beta"))
})

test_that("ziformula with a family that cannot carry it is an error naming both", {
  expect_error_naming(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                           family = binomial, ziformula = ~1),
                      c("ziformula", "binomial"))
  expect_error_naming(glmm(Reaction ~ Days + (1 | Subject), family_data("sleepstudy"),
                           family = gaussian, ziformula = ~1),
                      c("ziformula", "gaussian"))
  expect_error_naming(glmm(prop ~ x + (1 | subject), props, family = "beta_family",
                           ziformula = ~1),
                      c("ziformula", "beta"))
})

test_that("dispformula with a family without a dispersion parameter is an error", {
  expect_error_naming(glmm(count ~ mined + (1 | site), salamanders, family = poisson,
                           dispformula = ~mined),
                      c("poisson", "dispersion"))
  expect_error_naming(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                           family = binomial, dispformula = ~period),
                      c("binomial", "dispersion"))
})

test_that("an unsupported family is an error naming it", {
  expect_error_naming(glmm(count ~ mined + (1 | site), salamanders, family = "tweedie"),
                      c("tweedie", "support"))
  expect_error_naming(glmm(count ~ mined + (1 | site), salamanders,
                           family = glmmTMB::tweedie()),
                      c("tweedie", "support"))
  expect_error_naming(glmm(count ~ mined + (1 | site), salamanders,
                           family = glmmTMB::truncated_nbinom2()),
                      c("truncated_nbinom2", "support"))
})

test_that("a random effect in dispformula is an error that says so", {
  expect_error_naming(glmm(count ~ mined + (1 | site), salamanders, family = "nbinom2",
                           dispformula = ~ mined + (1 | site)),
                      c("dispformula", "random"))
})

test_that("the square-root link with a mode at eta = 0 is an error that says why", {
  # Its mean is eta^2 for every eta (as glmmTMB's), but not 0: without an
  # intercept a site whose counts are all 0 (VF-3) has its mode at eta = 0.
  # The models that used to stop at eta = 0 fit now (test-sqrt-link.R).
  err <- expect_error_naming(glmm(count ~ 0 + (1 | site), salamanders,
                                  family = nbinom2(link = "sqrt")),
                             c("square-root link", "observation 3", "mean is 0",
                               "without an intercept"))
  expect_null(err$call)
})

test_that("fits leave the user's data frame unchanged", {
  d_sal <- salamanders
  d_owls <- owls
  d_cbpp <- cbpp
  d_props <- props
  # a deep copy: a fit that wrote into the columns' memory (from compiled
  # code) would change a shallow copy as well
  deep_copy <- function(x) unserialize(serialize(x, NULL))
  before <- deep_copy(list(d_sal, d_owls, d_cbpp, d_props))
  suppressWarnings(suppressMessages({
    glmm(count ~ spp + mined + (1 | site), d_sal, family = "nbinom2", ziformula = ~mined)
    glmm(SiblingNegotiation ~ FoodTreatment + (1 | Nest), d_owls, family = "nbinom1",
         offset = log(BroodSize), dispformula = ~FoodTreatment)
    glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), d_cbpp,
         family = "betabinomial")
    glmm(prop ~ x + (1 | subject) + (1 | item), d_props, family = "beta_family",
         dispformula = ~z)
    glmm.nb(count ~ mined + (1 | site), d_sal)
  }))
  expect_identical(list(d_sal, d_owls, d_cbpp, d_props), before)
  # an error part-way leaves it unchanged too
  d_bad <- d_props
  d_bad$prop[1] <- 1
  copy <- deep_copy(d_bad)
  expect_error(glmm(prop ~ x + (1 | subject), d_bad, family = "beta_family"))
  expect_identical(d_bad, copy)
})

test_that("a constant response follows check.response.not.const for every family", {
  d <- data.frame(y = rep(3, 40), g = factor(rep(1:8, each = 5)))
  expect_error(glmm(y ~ 1 + (1 | g), family = nbinom2, data = d),
               "Response is constant.*nbinom2")
  expect_error(glmm(y ~ 1 + (1 | g), family = poisson, ziformula = ~1, data = d),
               "Response is constant.*poisson")
  # With the check a warning, the fit goes on: a constant count has no overdispersion, so the
  # dispersion runs off to infinity and its standard error is NA, which a second warning says.
  seen <- character()
  withCallingHandlers(
    try(glmm(y ~ 1 + (1 | g), family = nbinom2, data = d,
             control = glmmControl(check.response.not.const = "warning")), silent = TRUE),
    warning = function(w) {
      seen <<- c(seen, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  expect_true(any(grepl("Response is constant", seen)))
  expect_true(all(grepl("Response is constant|not available \\(NA\\) for disp", seen)),
              info = paste(seen, collapse = " | "))
})

test_that("standard errors left NA are named in a warning, never silently", {
  data(Salamanders, package = "glmmTMB")
  expect_warning(
    fit <- glmm(count ~ mined + (1 | site), ziformula = ~mined, family = nbinom2,
                data = Salamanders, control = glmmControl(calc.derivs = FALSE)),
    "not available .*zi\\.minedno.*calc.derivs = FALSE")
  expect_true(all(is.na(diag(vcov(fit)$zi))))
  expect_silent(glmm(count ~ mined + (1 | site), ziformula = ~mined, family = nbinom2,
                     data = Salamanders))
})

test_that("a binomial glmm() with glmmTMB's defaults written out is glmer's model (logit) or an error", {
  set.seed(1)
  n <- 300
  d <- data.frame(g = factor(sample(20, n, TRUE)), x = rnorm(n), ntr = sample(1:10, n, TRUE))
  d$s <- rbinom(n, d$ntr, plogis(0.3 * d$x + rnorm(20)[d$g]))
  d$b <- rbinom(n, 1, 0.4)
  plain <- glmm(cbind(s, ntr - s) ~ x + (1 | g), d, family = binomial)
  for (extra in list(list(dispformula = ~1), list(ziformula = ~0),
                     list(ziformula = ~0, dispformula = ~1))) {
    fit <- do.call(glmm, c(list(cbind(s, ntr - s) ~ x + (1 | g), d, family = binomial), extra))
    expect_identical(logLik(fit), logLik(plain))
    expect_identical(fixef(fit), fixef(plain))
  }
  # glmmTMB fits the same model: its logit-link Laplace likelihood is glmer's
  ref <- tmb_tight(glmmTMB::glmmTMB(cbind(s, ntr - s) ~ x + (1 | g), d, family = binomial,
                                    dispformula = ~1, control = tmb_tight_control()))
  expect_equal(as.numeric(logLik(plain)), as.numeric(logLik(ref)), tolerance = 1e-6)
  expect_error(glmm(b ~ x + (1 | g), d, family = binomial("probit"), dispformula = ~1),
               "with the probit link glmmTMB's likelihood")
  expect_error(glmm(b ~ x + (1 | g), d, family = binomial("cloglog"), ziformula = ~0),
               "leave out 'ziformula' and 'dispformula'")
})
