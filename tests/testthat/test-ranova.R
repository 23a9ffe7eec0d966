# ranova(): likelihood ratio tests of the random-effects terms, side by side
# with lmerTest::ranova() on lmerTest fits run to full precision (the reduced
# models refitted with the same control), and with glmmTMB and lm() for a
# structured term, which lmerTest cannot fit.
skip_if_not_installed("lmerTest")

expect_same_ranova <- function(ours, ref, tolerance = 1e-6) {
  expect_identical(rownames(ours), rownames(ref))
  expect_identical(colnames(ours), colnames(ref))
  expect_equal(as.matrix(ours), as.matrix(ref), tolerance = tolerance, ignore_attr = TRUE)
  expect_identical(attr(ours, "heading"), attr(ref, "heading"))
  expect_identical(vapply(attr(ours, "formulae"), deparse1, ""),
                   vapply(attr(ref, "formulae"), deparse1, ""))
}

sleep <- lme4::sleepstudy
set.seed(3)
sleep$z <- stats::rnorm(nrow(sleep))
sleep$f <- factor(sample(c("a", "b"), nrow(sleep), TRUE))

test_that("ranova() gives lmerTest's table for terms with one and several columns, REML and ML", {
  forms <- list(Reaction ~ Days + (Days | Subject), Reaction ~ Days + (1 | Subject),
                Reaction ~ Days + (Days || Subject), Reaction ~ Days + (1 + Days + z | Subject),
                Reaction ~ Days + (0 + Days | Subject) + (1 | Subject),
                Reaction ~ Days + (1 | Subject) + (1 | f), Reaction ~ (f | Subject))
  for (form in forms) {
    for (reml in c(TRUE, FALSE)) {
      fit <- lmm(form, sleep, REML = reml)
      ref <- suppressMessages(lmerTest_full(form, sleep, REML = reml))
      for (reduce in c(TRUE, FALSE)) {
        expect_same_ranova(suppressMessages(ranova(fit, reduce.terms = reduce)),
                           suppressMessages(lmerTest::ranova(ref, reduce.terms = reduce)))
      }
    }
  }
})

test_that("ranova() expands nesting as lme4 does and refits with the model's weights", {
  pastes <- lme4::Pastes
  fit <- lmm(strength ~ (1 | batch/cask), pastes)
  ref <- suppressMessages(lmerTest_full(strength ~ (1 | batch/cask), pastes))
  expect_same_ranova(suppressMessages(ranova(fit)), suppressMessages(lmerTest::ranova(ref)))
  sleep$w <- rep(c(0.5, 1, 2), length.out = nrow(sleep))
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleep, weights = w, REML = FALSE)
  ref <- suppressMessages(lmerTest_full(Reaction ~ Days + (Days | Subject), sleep, weights = w,
                                        REML = FALSE))
  expect_same_ranova(suppressMessages(ranova(fit)), suppressMessages(lmerTest::ranova(ref)))
})

test_that("ranova() removes a structured term whole: glmmTMB's fit against lm()'s", {
  skip_if_not_installed("glmmTMB")
  set.seed(11)
  d <- expand.grid(t = factor(1:4), s = factor(1:15))
  d$x <- stats::rnorm(nrow(d))
  d$y <- 1 + 0.5 * d$x + stats::rnorm(15)[d$s] + stats::rnorm(nrow(d))
  fit <- lmm(y ~ x + cs(0 + t | s), d)
  tab <- ranova(fit)
  # (at rel.tol 1e-12 nlminb may end with "singular convergence (7)", its
  # gradient's rounding; the optimum is reached)
  ref <- suppressWarnings(glmmTMB::glmmTMB(
    y ~ x + cs(0 + t | s), d, REML = TRUE,
    control = glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12))))
  reduced <- stats::lm(y ~ x, d)
  expect_identical(rownames(tab), c("<none>", "cs(0 + t | s)"))
  expect_equal(tab$logLik, c(as.numeric(logLik(ref)), as.numeric(logLik(reduced, REML = TRUE))),
               tolerance = 1e-6)
  expect_equal(tab$npar, c(attr(logLik(ref), "df"), 3))
  expect_equal(tab$LRT[2], 2 * (tab$logLik[1] - tab$logLik[2]))
  expect_equal(tab$`Pr(>Chisq)`[2], stats::pchisq(tab$LRT[2], tab$Df[2], lower.tail = FALSE))
})

test_that("ranova() stops with the cause on models and arguments it cannot use", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  expect_error(ranova(fit, reduce.terms = NA), "'reduce.terms' must be TRUE or FALSE")
  expect_error(ranova(fit, test = "F"), "takes 'model' and 'reduce.terms' only, not 'test'")
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
               family = binomial)
  expect_error(ranova(gfit), "linear mixed model fitted by lmm\\(\\)")
  expect_error(ranova(stats::lm(Reaction ~ Days, sleep)), "not an object of class")
  # a variable used only in the random part with a missing value: the model
  # without that term would use more rows (lmerTest's check)
  sleep$z[3] <- NA
  fit <- lmm(Reaction ~ Days + (1 | Subject) + (0 + z | Subject), sleep)
  expect_error(suppressMessages(ranova(fit)), "number of rows in use has changed")
})

test_that("ranova() of an lme4 fit is lmerTest's", {
  ref <- suppressMessages(lmerTest_full(Reaction ~ Days + (Days | Subject), sleep))
  expect_identical(ranova(ref), lmerTest::ranova(ref))
  lme4_fit <- lmer_full(Reaction ~ Days + (Days | Subject), sleep)
  expect_identical(ranova(lme4_fit, reduce.terms = FALSE),
                   lmerTest::ranova(lme4_fit, reduce.terms = FALSE))
})

test_that("rand() is ranova() under lmerTest's older name", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  ref <- suppressMessages(lmerTest_full(Reaction ~ Days + (Days | Subject), sleep))
  expect_same_ranova(rand(fit, reduce.terms = FALSE), lmerTest::rand(ref, reduce.terms = FALSE))
})

test_that("ranova() of a model without fixed effects: the reduced lm() has none either", {
  fit <- lmm(Reaction ~ -1 + (1 | Subject), sleep)
  ref <- suppressMessages(lmerTest_full(Reaction ~ -1 + (1 | Subject), sleep))
  expect_same_ranova(ranova(fit), lmerTest::ranova(ref))
  expect_false(anyNA(ranova(fit)$logLik))
})
