# contest(): t and F tests of contrasts of the fixed effects, side by side
# with lmerTest::contest() on an lmerTest fit run to full precision (the two
# fits agree to ~1e-7, which moves small p-values by ~1e-6 relatively).
skip_if_not_installed("lmerTest")

contest_data <- function() {
  d <- lme4::sleepstudy
  set.seed(2)
  d$f <- factor(sample(c("a", "b", "c"), nrow(d), TRUE))
  d
}

test_that("contest() gives lmerTest's t and F tests, Satterthwaite and Kenward-Roger", {
  d <- contest_data()
  fit <- lmm(Reaction ~ Days * f + (Days | Subject), d)
  ref <- lmerTest_full(Reaction ~ Days * f + (Days | Subject), d)
  L <- rbind(c(0, 1, 0, 0, 0, 0), c(0, 0, 1, -1, 0, 0), c(0, 0, 0, 0, 1, 1))
  named <- list(slope = L[1, ], f = L[2:3, ], all = L)
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    expect_equal(contest(fit, L, ddf = ddf), lmerTest::contest(ref, L, ddf = ddf),
                 tolerance = 1e-5)
    expect_equal(contest(fit, L, rhs = c(1, 2, 3), ddf = ddf),
                 lmerTest::contest(ref, L, rhs = c(1, 2, 3), ddf = ddf), tolerance = 1e-5)
    expect_equal(contest(fit, L, joint = FALSE, rhs = 2, level = 0.9, ddf = ddf),
                 lmerTest::contest(ref, L, joint = FALSE, rhs = 2, level = 0.9, ddf = ddf),
                 tolerance = 1e-5)
    expect_equal(contest(fit, L[1, ], joint = FALSE, confint = FALSE, ddf = ddf),
                 lmerTest::contest(ref, L[1, ], joint = FALSE, confint = FALSE, ddf = ddf),
                 tolerance = 1e-5)
    for (joint in c(TRUE, FALSE)) for (collect in c(TRUE, FALSE)) {
      expect_equal(contest(fit, named, joint = joint, collect = collect, ddf = ddf),
                   lmerTest::contest(ref, named, joint = joint, collect = collect, ddf = ddf),
                   tolerance = 1e-5)
    }
  }
})

test_that("contest() of an lme4 fit is lmerTest's", {
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_identical(contest(ref, c(0, 1), joint = FALSE), lmerTest::contest(ref, c(0, 1), joint = FALSE))
})

test_that("contest() stops with the cause on contrasts and arguments it cannot use", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_error(contest(fit, c(0, 1, 0)), "'L' has 3 columns \\(or values\\); the model has 2")
  expect_error(contest(fit, c(0, NA)), "'L' must be a finite numeric vector or matrix")
  expect_error(contest(fit, "Days"), "'L' must be a finite numeric vector or matrix")
  expect_error(contest(fit, diag(2), rhs = 1:3), "one number or one per row")
  expect_error(contest(fit, diag(2), joint = FALSE, rhs = 1:2), "'rhs' must be one number")
  expect_error(contest(fit, rbind(c(0, 1), c(0, 2)), rhs = c(1, 1)), "not consistent with 'L'")
  expect_error(contest(fit, c(0, 1), level = 1), "'level' must be a number between 0 and 1")
  expect_error(contest(fit, c(0, 1), ddf = "lme4"), "should be one of")
  expect_error(contest(fit, c(0, 1), joint = NA), "'joint' must be TRUE or FALSE")
  expect_error(contest(fit, c(0, 1), method = "x"), "does not take 'method'")
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
               family = binomial)
  expect_error(contest(gfit, c(0, 1, 0, 0)), "linear mixed model fitted by lmm\\(\\)")
  # a consistent rhs with dependent rows is accepted: the F test of the one row
  expect_equal(contest(fit, rbind(c(0, 1), c(0, 2)), rhs = c(1, 2)),
               contest(fit, c(0, 1), rhs = 1))
})

test_that("contest() warns that confidence settings have no use for the joint F test", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_warning(res <- contest(fit, diag(2), level = 0.9), "'confint' and 'level' apply to")
  expect_equal(res, contest(fit, diag(2)))
  expect_warning(contest(fit, diag(2), confint = FALSE), "were not used")
  expect_no_warning(contest(fit, diag(2), joint = FALSE, level = 0.9))
})

test_that("contest1D() and contestMD() are lmerTest's tests of one contrast and of several", {
  d <- contest_data()
  fit <- lmm(Reaction ~ Days * f + (Days | Subject), d)
  ref <- lmerTest_full(Reaction ~ Days * f + (Days | Subject), d)
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    expect_equal(contest1D(fit, c(0, 1, 0, 0, 0, 0), ddf = ddf),
                 lmerTest::contest1D(ref, c(0, 1, 0, 0, 0, 0), ddf = ddf), tolerance = 1e-5)
    expect_equal(contest1D(fit, matrix(c(0, 1, 0, 1, 0, 0), 1), rhs = 2, confint = TRUE, level = 0.9,
                           ddf = ddf),
                 lmerTest::contest1D(ref, matrix(c(0, 1, 0, 1, 0, 0), 1), rhs = 2, confint = TRUE,
                                     level = 0.9, ddf = ddf), tolerance = 1e-5)
    L <- diag(6)[2:4, ]
    expect_equal(contestMD(fit, L, rhs = c(1, 0, 0), ddf = ddf),
                 lmerTest::contestMD(ref, L, rhs = c(1, 0, 0), ddf = ddf), tolerance = 1e-5)
  }
  # eps: the eigenvalues of L V L' kept in the test
  L <- rbind(c(0, 1, 0, 0, 0, 0), c(0, 0, 1e-3, 0, 0, 0))
  expect_equal(contestMD(fit, L, eps = 0.5), lmerTest::contestMD(ref, L, eps = 0.5),
               tolerance = 1e-5)
  expect_identical(contestMD(fit, L, eps = 0.5)$NumDF, 1L)
  expect_error(contest1D(fit, diag(6)[1:2, ]), "'L' must be one contrast")
  expect_error(contestMD(fit, L, eps = -1), "'eps' must be a number")
})

test_that("contest() of a model without fixed effects gives lmerTest's empty tables", {
  m0 <- lmm(Reaction ~ 0 + (1 | Subject) + (0 + Days | Subject), lme4::sleepstudy)
  ref <- lmerTest_full(Reaction ~ 0 + (1 | Subject) + (0 + Days | Subject), lme4::sleepstudy)
  expect_identical(contest(m0, numeric(0)), lmerTest::contest(ref, numeric(0)))
  expect_identical(contestMD(m0, numeric(0)), lmerTest::contestMD(ref, numeric(0)))
  expect_identical(contest1D(m0, numeric(0)), lmerTest::contest1D(ref, numeric(0)))
  expect_identical(nrow(contest(m0, numeric(0), joint = FALSE)), 0L)
})
