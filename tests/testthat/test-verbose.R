# verbose output: every optimizer evaluation (criterion and parameters) as lme4 prints it, and
# with verbose = 2 every PIRLS iteration of a GLMM.

test_that("verbose prints each evaluation, verbose = 2 adds the PIRLS iterations", {
  out1 <- capture.output(fit1 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                      family = binomial, data = lme4::cbpp, verbose = TRUE))
  out2 <- capture.output(fit2 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                      family = binomial, data = lme4::cbpp, verbose = 2))
  expect_true(any(grepl("^iteration: 1$", out1)))
  expect_true(any(grepl("f\\(x\\) = ", out1)))
  expect_false(any(grepl("PIRLS", out1)))
  pirls <- grep("^  PIRLS [0-9]+: penalized deviance [0-9.]+, largest relative step", out2)
  expect_gt(length(pirls), sum(grepl("^iteration:", out2)))
  # printing changes nothing
  expect_identical(fixef(fit1), fixef(fit2))
  expect_identical(fit1$theta, fit2$theta)

  out <- capture.output(lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, verbose = 1))
  expect_true(any(grepl("^\ttheta = ", out)))
  expect_silent(lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy))
})
