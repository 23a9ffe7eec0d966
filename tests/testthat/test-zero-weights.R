# GLMM rows of prior weight 0 (zero 'weights', or binomial rows of zero
# trials) add nothing to the likelihood, as in glm() and glmer(): the fits are
# compared with glmer's and glmmTMB's at full precision, every row kept.

# logLik, parameters, standard errors, information criteria and residuals of
# a glmm() fit against glmer's reference fit of the same rows.
expect_same_as_glmer <- function(pair) {
  fit <- pair$fit
  ref <- pair$ref
  expect_gte(as.numeric(logLik(fit)) - as.numeric(logLik(ref)), -1e-7)
  # (relative 1e-7: for the Gamma family glmer's logLik is not its criterion, whose optimum
  # ends a little below ours on the logLik, with positive weights too)
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-7)
  expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-4)
  expect_equal(unname(fixef(fit)), unname(lme4::fixef(ref)), tolerance = 1e-5)
  expect_equal(unname(sqrt(diag(as.matrix(vcov(fit))))),
               unname(sqrt(diag(as.matrix(vcov(ref))))), tolerance = 1e-4)
  expect_identical(nobs(fit), nobs(ref))
  expect_equal(df.residual(fit), df.residual(ref))
  expect_equal(c(AIC(fit), BIC(fit)), c(AIC(ref), BIC(ref)), tolerance = 1e-7)
  for (type in c("deviance", "pearson", "response", "working")) {
    expect_equal(unname(residuals(fit, type = type)), unname(residuals(ref, type = type)),
                 tolerance = 1e-4, label = paste(type, "residuals"))
  }
  expect_equal(unname(fitted(fit)), unname(fitted(ref)), tolerance = 1e-5)
}

test_that("binomial rows of zero trials add nothing, as in glmer", {
  skip_if_no_glmm()
  d <- lme4::cbpp
  d$size[c(3, 10, 40)] <- 0
  d$incidence[c(3, 10, 40)] <- 0
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   d, family = binomial)))
  expect_same_as_glmer(pair)
  # the same fit as without those rows
  without <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), d[-c(3, 10, 40), ],
                  family = binomial)
  expect_equal(as.numeric(logLik(pair$fit)), as.numeric(logLik(without)), tolerance = 1e-10)
  # proportions with the trials as weights
  d$prop <- ifelse(d$size > 0, d$incidence / pmax(d$size, 1), 0)
  expect_same_as_glmer(fit_glmm_pair(quote(glmm(prop ~ period + (1 | herd), d,
                                                family = binomial, weights = size))))
  # the parametric bootstrap draws 0 for those rows and refits
  boot <- bootmm(pair$fit, function(x) fixef(x), nsim = 5, seed = 1, .progress = "none")
  expect_true(all(is.finite(boot$t)))
})

test_that("zero Poisson weights add nothing (crossed terms, a level of weight 0, AGQ)", {
  skip_if_no_glmm()
  g <- lme4::grouseticks
  set.seed(3)
  g$w <- sample(c(0, 1, 2), nrow(g), TRUE, prob = c(0.2, 0.5, 0.3))
  expect_same_as_glmer(fit_glmm_pair(quote(glmm(TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION), g,
                                                family = poisson, weights = w))))
  g$w[g$BROOD == levels(g$BROOD)[1L]] <- 0
  pair <- fit_glmm_pair(quote(glmm(TICKS ~ YEAR + (1 | BROOD), g, family = poisson,
                                   weights = w, nAGQ = 9)))
  expect_same_as_glmer(pair)
  # a level without information has its mode at 0
  expect_equal(ranef(pair$fit)$BROOD[1L, 1L], 0)
})

test_that("zero weights of a Gamma GLMM add nothing, as in glmer", {
  skip_if_no_glmm()
  d <- gamma_data()
  d$w <- rep(c(0, 1, 2), 40)
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (1 | g), d, family = Gamma(link = "log"),
                                   weights = w)))
  expect_same_as_glmer(pair)
  expect_equal(sigma(pair$fit), sigma(pair$ref), tolerance = 1e-5)
  boot <- bootmm(pair$fit, function(x) fixef(x), nsim = 3, seed = 1, .progress = "none")
  expect_true(all(is.finite(boot$t)))
})

test_that("zero weights and zero trials with glmmTMB's families add nothing, as in glmmTMB", {
  skip_if_not_installed("glmmTMB")
  g <- lme4::grouseticks
  set.seed(3)
  g$w <- sample(c(0, 1, 2), nrow(g), TRUE, prob = c(0.2, 0.5, 0.3))
  compare <- function(fit, ref) {
    expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-8)
    expect_equal(unname(fixef(fit)$cond), unname(glmmTMB::fixef(ref)$cond), tolerance = 1e-4)
    expect_equal(unname(fitted(fit)), unname(fitted(ref)), tolerance = 1e-4)
  }
  compare(glmm(TICKS ~ YEAR + (1 | BROOD), g, family = nbinom2, weights = w),
          glmmTMB::glmmTMB(TICKS ~ YEAR + (1 | BROOD), g, family = glmmTMB::nbinom2,
                           weights = w))
  d <- lme4::cbpp
  d$size[c(3, 10)] <- 0
  d$incidence[c(3, 10)] <- 0
  compare(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), d,
               family = betabinomial),
          glmmTMB::glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), d,
                           family = glmmTMB::betabinomial))
  # glmer.nb fails on zero weights ("PIRLS loop resulted in NaN value"); glmm.nb()
  # fits as on the rows of positive weight
  nb <- glmm.nb(TICKS ~ YEAR + (1 | BROOD), g, weights = w)
  nb_rows <- glmm.nb(TICKS ~ YEAR + (1 | BROOD), g[g$w > 0, ], weights = w)
  expect_equal(as.numeric(logLik(nb)), as.numeric(logLik(nb_rows)), tolerance = 1e-8)
  expect_equal(lme4::getME(nb, "glmer.nb.theta"), lme4::getME(nb_rows, "glmer.nb.theta"),
               tolerance = 1e-5)
})

test_that("rows of weight 0 that leave a fixed effect unestimable, or no row, are errors", {
  d <- lme4::cbpp
  d$size[d$period == "4"] <- 0
  d$incidence[d$period == "4"] <- 0
  # (glmer: "Downdated VtV is not positive definite")
  expect_error(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), d,
                    family = binomial),
               "cannot estimate every fixed effect: column 'period4'.*13 of 56 rows have weight 0")
  g <- lme4::grouseticks
  g$w <- 0
  expect_error(glmm(TICKS ~ YEAR + (1 | BROOD), g, family = poisson, weights = w),
               "every row has prior weight 0")
  # a linear mixed model needs positive weights (lme4 returns logLik -Inf)
  g$w <- rep(c(0, 1), length.out = nrow(g))
  expect_error(lmm(TICKS ~ YEAR + (1 | BROOD), g, weights = w),
               "zero 'weights' are not supported by a linear mixed model")
  expect_error(glmm(TICKS ~ YEAR + (1 | BROOD), g, family = poisson, weights = -w),
               "must not be negative")
})
