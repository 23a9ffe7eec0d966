# car's vif(), linearHypothesis(), deltaMethod(), Confint(), matchCoefs() and
# multcomp's glht() on lmm() and glmm() fits, side by side with the same
# functions on lme4's fits of the same models run to full precision
# (helper-reference.R, helper-glmm.R). Their default methods read coef(),
# which on a mixed model is the per-group table: vif() gave wrong GVIFs.

factor_data <- function() {
  set.seed(11)
  d <- data.frame(A = factor(sample(3, 120, TRUE)), B = factor(sample(2, 120, TRUE)),
                  x = rnorm(120), g = factor(sample(12, 120, TRUE)))
  d$x <- d$x + 0.5 * as.integer(d$A)
  d$y <- 1 + d$x + as.integer(d$A) * (d$B == "2") + rnorm(12)[d$g] + rnorm(120)
  d
}

# The lmm() fit of `formula` to factor_data() and lme4's full-precision fit.
factor_pair <- function(formula) {
  d <- factor_data()
  list(d = d, fit = lmm(formula, d), ref = lmer_full(formula, d))
}

test_that("car::vif() gives car's GVIFs of the lmer and glmer fits", {
  skip_if_not_installed("car")
  skip_if_not_installed("lme4")
  pair <- factor_pair(y ~ A * B + x + (1 | g))
  expect_equal(car::vif(pair$fit), car::vif(pair$ref), tolerance = 1e-6)
  # one coefficient per term: a named vector
  pair1 <- factor_pair(y ~ x + as.integer(A) + (1 | g))
  expect_equal(car::vif(pair1$fit), car::vif(pair1$ref), tolerance = 1e-6)
  expect_null(dim(car::vif(pair1$fit)))
  gt <- lme4::grouseticks
  gpair <- fit_glmm_pair(quote(glmm(TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD),
                                    family = poisson, data = gt)))
  expect_equal(car::vif(gpair$fit), car::vif(gpair$ref), tolerance = 1e-4)
  expect_error(car::vif(lmm(y ~ x + (1 | g), pair$d)), "fewer than 2 fixed-effect terms")
})

test_that("car::linearHypothesis() gives car's Wald and Kenward-Roger tests", {
  skip_if_not_installed("car")
  skip_if_not_installed("pbkrtest")
  pair <- factor_pair(y ~ A * B + x + (1 | g))
  d <- pair$d
  fit <- pair$fit
  ref <- pair$ref
  same <- function(ours, theirs, tol = 1e-6) {
    expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = tol)
    expect_identical(dimnames(ours), dimnames(theirs))
    expect_identical(attr(ours, "heading"), attr(theirs, "heading"))
  }
  same(car::linearHypothesis(fit, c("A2 = 0", "A3 = 0")),
       car::linearHypothesis(ref, c("A2 = 0", "A3 = 0")))
  same(car::linearHypothesis(fit, "x = 1"), car::linearHypothesis(ref, "x = 1"))
  L <- rbind(c(0, 1, -1, 0, 0, 0, 0), c(0, 0, 0, 0, 0, 1, 0))
  same(car::linearHypothesis(fit, L), car::linearHypothesis(ref, L))
  same(car::linearHypothesis(fit, L, vcov. = 2 * vcov(fit)),
       car::linearHypothesis(ref, L, vcov. = 2 * as.matrix(vcov(ref))))
  same(car::linearHypothesis(fit, c("A2 = 0", "A3 = 0"), test = "F"),
       car::linearHypothesis(ref, c("A2 = 0", "A3 = 0"), test = "F"), 1e-5)
  # a non-zero rhs is tested (car sets it to 0 with a warning): the F test of
  # x = 1 is the F test of x = 0 for the response less x
  d$y1 <- d$y - d$x
  fit1 <- lmm(y1 ~ A * B + x + (1 | g), d)
  expect_equal(car::linearHypothesis(fit, "x = 1", test = "F")[2, "F"],
               car::linearHypothesis(fit1, "x = 0", test = "F")[2, "F"], tolerance = 1e-6)
  expect_error(car::linearHypothesis(refitML(fit), "x = 0", test = "F"), "fitted by REML")
  expect_error(car::linearHypothesis(fit, "x = 0", test = "F", vcov. = vcov(fit)),
               "'vcov.' cannot be used")
  expect_error(car::linearHypothesis(fit, c(1, 0)), "one column per fixed effect")
  gpair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                    family = binomial, data = lme4::cbpp)))
  same(car::linearHypothesis(gpair$fit, c("period2 = period3", "period4 = 0")),
       car::linearHypothesis(gpair$ref, c("period2 = period3", "period4 = 0")), 1e-4)
})

test_that("car::deltaMethod(), Confint() and matchCoefs() work on the fixed effects", {
  skip_if_not_installed("car")
  pair <- factor_pair(y ~ A * B + x + (1 | g))
  fit <- pair$fit
  ref <- pair$ref
  expect_equal(car::deltaMethod(fit, "A2 / A3"), car::deltaMethod(ref, "A2 / A3"),
               tolerance = 1e-6)
  k <- 3
  expect_equal(car::deltaMethod(fit, "k * x"), car::deltaMethod(ref, "k * x"), tolerance = 1e-6)
  expect_equal(car::deltaMethod(fit, "b1 + b2", parameterNames = paste0("b", 0:6)),
               car::deltaMethod(ref, "b1 + b2", parameterNames = paste0("b", 0:6)),
               tolerance = 1e-6)
  expect_equal(car::Confint(fit), car::Confint(ref), tolerance = 1e-6)
  expect_equal(car::Confint(fit, level = 0.9, estimate = FALSE),
               car::Confint(ref, level = 0.9, estimate = FALSE), tolerance = 1e-6)
  expect_identical(car::matchCoefs(fit, "A"), car::matchCoefs(ref, "A"))
  gpair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                    family = binomial, data = lme4::cbpp)))
  expect_equal(car::Confint(gpair$fit, exponentiate = TRUE, silent = TRUE),
               car::Confint(gpair$ref, exponentiate = TRUE, silent = TRUE),
               tolerance = 1e-4)
  expect_error(car::Confint(fit, exponentiate = TRUE), "log or logit link")
})

test_that("multcomp::glht() of an mcp() contrast gives its result on the lmer fit", {
  skip_if_not_installed("multcomp")
  pair <- factor_pair(y ~ A + B + x + (1 | g))
  fit <- pair$fit
  ref <- pair$ref
  ours <- summary(multcomp::glht(fit, linfct = multcomp::mcp(A = "Tukey")),
                  test = multcomp::adjusted("single-step"))
  theirs <- summary(multcomp::glht(ref, linfct = multcomp::mcp(A = "Tukey")),
                    test = multcomp::adjusted("single-step"))
  expect_equal(ours$test$coefficients, theirs$test$coefficients, tolerance = 1e-6)
  expect_equal(ours$test$sigma, theirs$test$sigma, tolerance = 1e-6)
  # the adjusted p-values come from a randomized integration (mvtnorm)
  expect_equal(ours$test$pvalues, theirs$test$pvalues, tolerance = 1e-3,
               ignore_attr = TRUE)
  expect_equal(ours$df, theirs$df)
})

test_that("car::outlierTest(), influencePlot() and powerTransform() give car's results on the lmer fit", {
  skip_if_not_installed("car")
  d <- factor_data()
  d$y <- d$y + 10
  fit <- lmm(y ~ A + x + (1 | g), d)
  ref <- lmer_full(y ~ A + x + (1 | g), d)
  expect_equal(unclass(car::outlierTest(fit))[c("rstudent", "p", "bonf.p")],
               unclass(car::outlierTest(ref))[c("rstudent", "p", "bonf.p")], tolerance = 1e-5)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off(), add = TRUE)
  expect_equal(car::influencePlot(fit), car::influencePlot(ref), tolerance = 1e-5)
  expect_equal(car::powerTransform(fit)$lambda, car::powerTransform(ref)$lambda,
               tolerance = 1e-3)
})
