# emmeans on lmm() and glmm() fits against emmeans on the lme4 fits of the
# same models. Estimates and standard errors to 1e-5 (relative) and degrees
# of freedom to 1e-4 against independent lme4 fits run to full precision
# (helper-reference.R; df move ~3x more than
# the estimates with theta; pbkrtest and lmerTest differentiate
# numerically); 1e-6 and 1e-5 at our estimates (through as_lmerMod()).

skip_if_no_emmeans <- function() {
  skip_if_not_installed("lme4")
  skip_if_not_installed("emmeans")
  skip_if_not_installed("pbkrtest")
  skip_if_not_installed("lmerTest")
}

expect_emm_equal <- function(ours, ref, tol = 1e-5, df_tol = 1e-4) {
  a <- as.data.frame(ours)
  b <- as.data.frame(ref)
  expect_identical(names(a), names(b))
  for (cn in names(b)) {
    if (is.numeric(b[[cn]])) {
      expect_equal(a[[cn]], b[[cn]], label = cn,
                   tolerance = if (cn %in% c("df", "p.value")) df_tol else tol)
    } else {
      expect_identical(as.character(a[[cn]]), as.character(b[[cn]]), label = cn)
    }
  }
}

test_that("emmeans() of an lmm fit equals emmeans of the lmer fit (cake)", {
  skip_if_no_emmeans()
  cake <- lme4::cake
  fit <- lmm(angle ~ recipe * temperature + (1 | recipe:replicate), data = cake)
  ref <- lmer_full(angle ~ recipe * temperature + (1 | recipe:replicate), data = cake)
  emm <- function(obj, ...) suppressMessages(emmeans::emmeans(obj, ...))
  # Kenward-Roger (emmeans' default for lme4 fits)
  expect_emm_equal(emm(fit, ~ recipe), emm(ref, ~ recipe))
  expect_emm_equal(emm(fit, ~ temperature | recipe), emm(ref, ~ temperature | recipe))
  expect_emm_equal(summary(pairs(emm(fit, ~ recipe))), summary(pairs(emm(ref, ~ recipe))))
  # Satterthwaite and asymptotic
  expect_emm_equal(emm(fit, ~ recipe, lmer.df = "satterthwaite"),
                   emm(ref, ~ recipe, lmer.df = "satterthwaite"))
  expect_emm_equal(emm(fit, ~ temperature, mode = "asymptotic"),
                   emm(ref, ~ temperature, lmer.df = "asymptotic"))
  # at our estimates
  conv <- as_lmerMod(fit)
  expect_emm_equal(emm(fit, ~ recipe * temperature), emm(conv, ~ recipe * temperature),
                   tol = 1e-6, df_tol = 1e-5)
})

test_that("emmeans() works with a numeric covariate and an ML fit (ChickWeight)", {
  skip_if_no_emmeans()
  cw <- datasets::ChickWeight
  fit <- lmm(weight ~ Time * Diet + (1 | Chick), data = cw, REML = FALSE)
  ref <- lmer_full(weight ~ Time * Diet + (1 | Chick), data = cw, REML = FALSE)
  e1 <- suppressMessages(emmeans::emmeans(fit, ~ Diet, at = list(Time = 10),
                                          lmer.df = "satterthwaite"))
  e2 <- suppressMessages(emmeans::emmeans(ref, ~ Diet, at = list(Time = 10),
                                          lmer.df = "satterthwaite"))
  expect_emm_equal(e1, e2)
  trends <- emmeans::emtrends(fit, ~ Diet, var = "Time", lmer.df = "satterthwaite")
  trends_ref <- emmeans::emtrends(ref, ~ Diet, var = "Time", lmer.df = "satterthwaite")
  expect_emm_equal(trends, trends_ref)
  # Kenward-Roger, emmeans' default also for ML fits: pbkrtest's adjusted
  # covariance of the REML refit
  expect_emm_equal(suppressMessages(emmeans::emmeans(fit, ~ Diet, at = list(Time = 10))),
                   suppressMessages(emmeans::emmeans(ref, ~ Diet, at = list(Time = 10))))
  expect_emm_equal(summary(pairs(emmeans::emmeans(fit, ~ Diet))),
                   summary(pairs(emmeans::emmeans(ref, ~ Diet))))
  # emmeans' option lmer.df sets the default
  old <- emmeans::emm_options(lmer.df = "satterthwaite")
  on.exit(emmeans::emm_options(old), add = TRUE)
  expect_emm_equal(suppressMessages(emmeans::emmeans(fit, ~ Diet, at = list(Time = 10))), e2)
})

test_that("emmeans(component = ) of zero-inflation and dispersion parts equals glmmTMB's", {
  skip_if_not_installed("glmmTMB")
  skip_if_not_installed("emmeans")
  # a negative binomial whose mean, zero inflation and dispersion depend on f
  set.seed(7)
  n <- 900
  d <- data.frame(f = factor(sample(c("a", "b", "c"), n, TRUE)), g = factor(sample(30, n, TRUE)))
  mu <- exp(1 + 0.5 * (d$f == "b") - 0.4 * (d$f == "c") + rnorm(30, sd = 0.4)[d$g])
  zi <- stats::plogis(-1 + 0.8 * (d$f == "b"))
  d$y <- ifelse(runif(n) < zi, 0, rnbinom(n, size = exp(0.5 + 0.8 * (d$f == "c")), mu = mu))
  fit <- glmm(y ~ f + (1 | g), ziformula = ~ f, dispformula = ~ f, family = "nbinom2", data = d)
  ref <- tmb_tight(glmmTMB::glmmTMB(y ~ f + (1 | g), ziformula = ~ f, dispformula = ~ f,
                                    family = glmmTMB::nbinom2, data = d,
                                    control = tmb_tight_control()))
  # the fits agree to ~1e-6 (glmmTMB's standard errors from TMB's Hessian,
  # ours by finite differences)
  for (component in c("cond", "zi", "disp")) {
    for (type in c("link", "response")) {
      expect_emm_equal(emmeans::emmeans(fit, ~ f, component = component, type = type),
                       emmeans::emmeans(ref, ~ f, component = component, type = type),
                       tol = 1e-4)
    }
  }
  expect_emm_equal(summary(pairs(emmeans::emmeans(fit, ~ f, component = "zi"))),
                   summary(pairs(emmeans::emmeans(ref, ~ f, component = "zi"))), tol = 1e-4)
  data("Salamanders", package = "glmmTMB", envir = environment())
  zip <- glmm(count ~ mined + (1 | site), ziformula = ~ mined, family = poisson,
              data = Salamanders)
  expect_error(emmeans::emmeans(zip, ~ mined, component = "disp"),
               "component = \"disp\" is not a part of this model")
  expect_error(emmeans::emmeans(zip, ~ mined, component = "foo"), "not a part of this model")
  cbpp <- lme4::cbpp
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial,
               data = cbpp)
  expect_error(emmeans::emmeans(gfit, ~ period, component = "zi"), "has \"cond\"")
  lfit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  expect_error(emmeans::emmeans(lfit, ~ Days, component = "zi"), "not a part of this model")
})

test_that("emmeans() of a glmm fit back-transforms like lme4's", {
  skip_if_no_emmeans()
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = binomial, data = cbpp)
  conv <- as_lmerMod(fit)
  expect_emm_equal(emmeans::emmeans(fit, ~ period, type = "response"),
                   emmeans::emmeans(conv, ~ period, type = "response"), tol = 1e-6)
  expect_emm_equal(summary(pairs(emmeans::emmeans(fit, ~ period))),
                   summary(pairs(emmeans::emmeans(conv, ~ period))), tol = 1e-6)
})
