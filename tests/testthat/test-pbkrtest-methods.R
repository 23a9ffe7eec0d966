# pbkrtest::KRmodcomp() and pbkrtest::SATmodcomp() on lmm() fits, side by
# side with pbkrtest on lme4's fits of the same models run to full
# precision: the statistics, df, F scaling and p-values (1e-6 relative, the
# precision of the two optima), pbkrtest's auxiliary quantities, and its
# printouts line by line.

skip_if_not_installed("pbkrtest")
skip_if_not_installed("lme4")

expect_same_lines <- function(ours, ref) {
  expect_identical(utils::capture.output(print(ours)), utils::capture.output(print(ref)))
}

test_that("KRmodcomp() of nested fits, a formula and a restriction matrix is pbkrtest's", {
  cake <- lme4::cake
  large <- angle ~ recipe * temperature + (1 | recipe:replicate)
  small <- angle ~ recipe + temperature + (1 | recipe:replicate)
  fit1 <- lmm(large, cake)
  fit0 <- lmm(small, cake)
  ref1 <- lmer_full(large, data = cake)
  ref0 <- lmer_full(small, data = cake)
  ours <- pbkrtest::KRmodcomp(fit1, fit0)
  ref <- pbkrtest::KRmodcomp(ref1, ref0)
  expect_s3_class(ours, "KRmodcomp")
  expect_equal(ours$test, ref$test, tolerance = 1e-6)
  expect_identical(ours$test$ndf, c(10L, 10L))
  expect_equal(ours$aux, ref$aux, tolerance = 1e-6)
  expect_equal(ours$L, as.matrix(ref$L), tolerance = 1e-8)
  expect_same_lines(ours, ref)
  # either order; the small model as a formula
  expect_equal(pbkrtest::KRmodcomp(fit0, fit1)$test, ours$test)
  expect_equal(pbkrtest::KRmodcomp(fit1, ~ . - recipe:temperature)$test, ours$test)
  # a restriction matrix with a hypothesized value
  L <- rbind(c(0, 1, 0, rep(0, 15)), c(0, 0, 1, rep(0, 15)))
  ours <- pbkrtest::KRmodcomp(fit1, L, betaH = 0.5)
  ref <- pbkrtest::KRmodcomp(ref1, L, betaH = 0.5)
  expect_equal(ours$test, ref$test, tolerance = 1e-6)
  expect_same_lines(ours, ref)
})

test_that("an ML fit is refitted by REML, as pbkrtest does; bad comparisons are errors", {
  ss <- lme4::sleepstudy
  fit1 <- lmm(Reaction ~ Days + (Days | Subject), ss, REML = FALSE)
  fit0 <- lmm(Reaction ~ 1 + (Days | Subject), ss, REML = FALSE)
  ref1 <- lmer_full(Reaction ~ Days + (Days | Subject), data = ss, REML = FALSE)
  ref0 <- lmer_full(Reaction ~ 1 + (Days | Subject), data = ss, REML = FALSE)
  expect_equal(pbkrtest::KRmodcomp(fit1, fit0)$test, pbkrtest::KRmodcomp(ref1, ref0)$test,
               tolerance = 1e-6)
  expect_error(pbkrtest::KRmodcomp(fit1, fit1), "the same or not nested")
  other <- lmm(Reaction ~ I(Days^2) + (Days | Subject), ss)
  expect_error(pbkrtest::KRmodcomp(fit1, other), "not nested")
  expect_error(pbkrtest::KRmodcomp(fit1, matrix(1, 1, 3)), "has 2 fixed effects")
  expect_error(pbkrtest::KRmodcomp(fit1, "x"), "must be an lmm\\(\\) fit")
  expect_error(pbkrtest::KRmodcomp(fit1, fit0, details = 1), "'details'.*leave it 0")
  expect_error(pbkrtest::SATmodcomp(fit1, fit0, details = 2), "'details'.*leave it 0")
})

test_that("SATmodcomp() is pbkrtest's", {
  cake <- lme4::cake
  large <- angle ~ recipe * temperature + (1 | recipe:replicate)
  small <- angle ~ recipe + temperature + (1 | recipe:replicate)
  ours <- pbkrtest::SATmodcomp(lmm(large, cake), lmm(small, cake))
  # (pbkrtest evaluates lme4's stored call again in its own frame: the call
  # names its data by a path found anywhere, and holds its formula)
  ref1 <- eval(bquote(lmer_full(.(large), data = lme4::cake)))
  ref0 <- eval(bquote(lmer_full(.(small), data = lme4::cake)))
  ref <- pbkrtest::SATmodcomp(ref1, ref0)
  expect_s3_class(ours, "SATmodcomp")
  expect_equal(ours$test, ref$test, tolerance = 1e-6)
  expect_equal(ours$sigma, ref$sigma, tolerance = 1e-6)
  expect_same_lines(ours, ref)
  ss <- lme4::sleepstudy
  ours <- pbkrtest::SATmodcomp(lmm(Reaction ~ Days + (Days | Subject), ss), matrix(c(0, 1), 1))
  ref <- pbkrtest::SATmodcomp(lmer_full(Reaction ~ Days + (Days | Subject),
                                        data = lme4::sleepstudy),
                              matrix(c(0, 1), 1))
  expect_equal(ours$test, ref$test, tolerance = 1e-6)
})

test_that("PBmodcomp() of LMMs and GLMMs is pbkrtest's", {
  # pbkrtest 0.5.2 draws from the session's random numbers whatever its
  # 'seed' (it does not pass it on): both runs start from one set.seed()
  ss <- lme4::sleepstudy
  fit1 <- lmm(Reaction ~ Days + (Days | Subject), ss)
  fit0 <- lmm(Reaction ~ 1 + (Days | Subject), ss)
  ref1 <- lmer_full(Reaction ~ Days + (Days | Subject), data = lme4::sleepstudy)
  ref0 <- lmer_full(Reaction ~ 1 + (Days | Subject), data = lme4::sleepstudy)
  set.seed(1)
  ours <- pbkrtest::PBmodcomp(fit1, fit0, nsim = 20)
  set.seed(1)
  ref <- pbkrtest::PBmodcomp(ref1, ref0, nsim = 20, cl = 1)
  expect_s3_class(ours, "PBmodcomp")
  expect_equal(as.vector(ours$ref), as.vector(ref$ref), tolerance = 1e-5)
  expect_equal(ours$test, ref$test, tolerance = 1e-8)
  expect_equal(ours$LRTstat, ref$LRTstat, tolerance = 1e-8)
  expect_identical(ours$samples, ref$samples)
  expect_equal(summary(ours)$test, summary(ref)$test, tolerance = 1e-5)
  # our 'seed' is used
  expect_identical(as.vector(pbkrtest::PBmodcomp(fit1, fit0, nsim = 5, seed = 3)$ref),
                   as.vector(pbkrtest::PBmodcomp(fit1, ~ . - Days, nsim = 5, seed = 3)$ref))
  cbpp <- lme4::cbpp
  g1 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
  g0 <- glmm(cbind(incidence, size - incidence) ~ 1 + (1 | herd), cbpp, family = binomial)
  r1 <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
                    family = binomial, control = glmer_reference_control())
  r0 <- lme4::glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), lme4::cbpp,
                    family = binomial, control = glmer_reference_control())
  set.seed(2)
  ours <- pbkrtest::PBmodcomp(g1, g0, nsim = 20)
  set.seed(2)
  ref <- suppressWarnings(pbkrtest::PBmodcomp(r1, r0, nsim = 20, cl = 1))
  expect_equal(as.vector(ours$ref), as.vector(ref$ref), tolerance = 1e-5)
  expect_equal(ours$test, ref$test, tolerance = 1e-7)
  expect_error(pbkrtest::PBmodcomp(fit1, fit0, nsim = 5, cl = 2), "'cl' is not available")
  expect_error(pbkrtest::PBmodcomp(fit1, matrix(c(0, 1), 1), nsim = 5),
               "a restriction matrix is not available")
  expect_error(pbkrtest::PBmodcomp(fit1, g0, nsim = 5), "same kind")
  # a reference distribution given: it is used, nsim and seed would not be
  again <- pbkrtest::PBmodcomp(g1, g0, ref = ours$ref)
  expect_identical(again$test, ours$test)
  expect_error(pbkrtest::PBmodcomp(g1, g0, ref = ours$ref, seed = 1), "are not used")
})

test_that("vcovAdj() and get_Lb_ddf() are pbkrtest's, also for ML fits through the REML refit", {
  skip_if_not_installed("pbkrtest")
  sleepstudy <- lme4::sleepstudy
  for (reml in c(TRUE, FALSE)) {
    fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = reml)
    ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy, REML = reml)
    ours <- pbkrtest::vcovAdj(fit)
    theirs <- pbkrtest::vcovAdj(ref)
    expect_s4_class(ours, "dgeMatrix")
    expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = 1e-5)
    for (L in list(c(0, 1), c(1, 0), rbind(c(1, 0), c(0, 1)))) {
      expect_equal(pbkrtest::get_Lb_ddf(fit, L), pbkrtest::get_Lb_ddf(ref, L), tolerance = 1e-4)
      # pbkrtest's own Lb_ddf() on our adjusted covariance
      expect_equal(pbkrtest::Lb_ddf(L, as.matrix(vcov(fit)), ours),
                   pbkrtest::get_Lb_ddf(ref, L), tolerance = 1e-4)
    }
  }
  expect_error(pbkrtest::vcovAdj(fit, details = 1), "'details'")
  expect_error(pbkrtest::get_Lb_ddf(fit, c(1, 0, 0)), "one column per fixed effect")
})
