# as_lmerMod(): lme4 objects built at our estimates agree with our fits, and
# lme4's tools work on them. Tolerance 1e-6 (relative) unless stated.

test_that("an lmm fit becomes an lmerMod with our estimates", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  m <- as_lmerMod(fit)
  expect_s4_class(m, "lmerMod")
  expect_equal(lme4::fixef(m), fixef(fit), tolerance = 1e-6)
  expect_equal(lme4::getME(m, "theta"), fit$theta, tolerance = 1e-10)
  expect_equal(as.numeric(logLik(m)), as.numeric(logLik(fit)), tolerance = 1e-6)
  expect_equal(attr(logLik(m), "df"), attr(logLik(fit), "df"))
  expect_equal(sigma(m), sigma(fit), tolerance = 1e-6)
  vc <- lme4::VarCorr(m)
  expect_equal(unclass(vc$Subject), unclass(VarCorr(fit)$Subject), tolerance = 1e-6,
               ignore_attr = TRUE)
  expect_equal(as.matrix(vcov(m)), vcov(fit), tolerance = 1e-6)
  s <- summary(m)
  expect_equal(coef(s), coef(summary(fit, ddf = "lme4")), tolerance = 1e-6)
  expect_equal(s$AICtab, mer_criterion_table(fit), tolerance = 1e-6, ignore_attr = TRUE)
  expect_equal(as.matrix(lme4::ranef(m)$Subject), as.matrix(ranef(fit)$Subject),
               tolerance = 1e-6, ignore_attr = TRUE)
  # lme4's tools
  expect_equal(confint(m, method = "Wald"), confint(fit, method = "Wald"),
               tolerance = 1e-6)
  expect_equal(lme4::getME(m, "lower"), fit$lower, ignore_attr = TRUE)
  expect_equal(predict(m), predict(fit), tolerance = 1e-6)
  # lme4 refits it, to full precision (helper-reference.R)
  refit <- suppressMessages(stats::update(m, control = lmer_full_control()))
  expect_equal(lme4::fixef(refit), fixef(fit), tolerance = 1e-6)
  # lme4's tools that rerun the optimizer the object names (it named
  # "mixedrs::bobyqa", which lme4 could not find): profile intervals,
  # refit() and bootMer(), as on lme4's own fit
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_equal(suppressWarnings(confint(m)), suppressWarnings(confint(ref)), tolerance = 1e-4)
  y2 <- simulate(ref, seed = 1)[[1L]]
  expect_equal(lme4::fixef(lme4::refit(m, y2)), lme4::fixef(lme4::refit(ref, y2)),
               tolerance = 1e-5)
  boot <- lme4::bootMer(m, lme4::fixef, nsim = 3, seed = 2)
  expect_false(anyNA(boot$t))
  expect_equal(boot$t, lme4::bootMer(ref, lme4::fixef, nsim = 3, seed = 2)$t, tolerance = 1e-4)
  gm <- as_lmerMod(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                        family = binomial, data = lme4::cbpp))
  expect_false(anyNA(lme4::bootMer(gm, lme4::fixef, nsim = 2, seed = 3)$t))
})

test_that("ML, weights, || and crossed terms convert", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days || Subject), lme4::sleepstudy, REML = FALSE,
             weights = rep(c(1, 2), 90))
  m <- as_lmerMod(fit)
  expect_equal(as.numeric(logLik(m)), as.numeric(logLik(fit)), tolerance = 1e-6)
  expect_equal(lme4::fixef(m), fixef(fit), tolerance = 1e-6)
  expect_equal(as.numeric(deviance(m)), deviance(fit), tolerance = 1e-6)
  pen <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
  pm <- as_lmerMod(pen)
  expect_equal(lme4::REMLcrit(pm), REMLcrit.lmm(pen), tolerance = 1e-6)
  expect_equal(as.data.frame(lme4::VarCorr(pm))$sdcor,
               as.data.frame(VarCorr(pen))$sdcor, tolerance = 1e-6)
})

test_that("a glmm fit becomes a glmerMod with our estimates", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = binomial, data = cbpp)
  m <- as_lmerMod(fit)
  expect_s4_class(m, "glmerMod")
  expect_equal(lme4::fixef(m), fixef(fit), tolerance = 1e-10)
  expect_equal(as.numeric(logLik(m)), as.numeric(logLik(fit)), tolerance = 1e-6)
  expect_equal(as.matrix(vcov(m)), vcov(fit), tolerance = 1e-6)
  expect_equal(coef(summary(m)), coef(summary(fit)), tolerance = 1e-6)
  expect_equal(fitted(m), fitted(fit), tolerance = 1e-6)
  expect_equal(deviance(m), deviance(fit), tolerance = 1e-6)
  expect_equal(lme4::getME(m, "theta"), fit$theta, tolerance = 1e-10)
  expect_equal(as.matrix(lme4::ranef(m)$herd), as.matrix(ranef(fit)$herd),
               tolerance = 1e-6, ignore_attr = TRUE)
  expect_equal(confint(m, method = "Wald")[-1, ], confint(fit, method = "Wald")[-1, ],
               tolerance = 1e-6)
  expect_identical(lme4::getME(m, "devcomp")$dims[["nAGQ"]], 1L)
  # quadrature and nAGQ = 0 fits, a Poisson model
  f5 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
             family = binomial, data = cbpp, nAGQ = 5)
  expect_equal(as.numeric(logLik(as_lmerMod(f5))), as.numeric(logLik(f5)), tolerance = 1e-6)
  f0 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
             family = binomial, data = cbpp, nAGQ = 0)
  m0 <- as_lmerMod(f0)
  expect_equal(lme4::fixef(m0), fixef(f0), tolerance = 1e-6)
  expect_equal(as.numeric(logLik(m0)), as.numeric(logLik(f0)), tolerance = 1e-6)
  pf <- glmm(TICKS ~ YEAR + (1 | BROOD), family = poisson, data = lme4::grouseticks)
  pm <- as_lmerMod(pf)
  expect_equal(as.numeric(logLik(pm)), as.numeric(logLik(pf)), tolerance = 1e-6)
  expect_identical(family(pm)$family, "poisson")
})

test_that("as_lmerMod() takes data and rejects what it cannot convert", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (1 | Subject), d)
  m <- as_lmerMod(fit, data = d)
  expect_equal(lme4::fixef(m), fixef(fit), tolerance = 1e-6)
  expect_identical(m@call$data, quote(d))
  expect_equal(lme4::fixef(suppressMessages(stats::update(m, control = lmer_full_control()))),
               fixef(fit), tolerance = 1e-6)
  expect_error(as_lmerMod(fit, data = d[1:100, ]), "rows")
  make_fit <- function() {
    dd <- lme4::sleepstudy
    lmm(Reaction ~ Days + (1 | Subject), dd)
  }
  lost <- make_fit()
  environment(lost$formula) <- globalenv()
  expect_error(as_lmerMod(lost), "give the data")
  expect_equal(lme4::fixef(as_lmerMod(lost, data = d)), fixef(lost), tolerance = 1e-6)
  expect_error(as_lmerMod(lm(Reaction ~ Days, d)), "lmm\\(\\) or glmm\\(\\)")
  expect_error(as_lmerMod(fit, REML = FALSE), "as_lmerMod")
})
