# rePCA() side by side with lme4::rePCA() on the same models fitted by lme4
# at full precision: the standard deviations of the components to 1e-6
# (relative), the directions to 1e-4 (up to sign), summary() alike.

skip_if_not_installed("lme4")

expect_rePCA_parity <- function(ours, ref, what) {
  expect_identical(names(ours), names(ref), info = what)
  for (g in names(ref)) {
    expect_s3_class(ours[[g]], "prcomp")
    expect_equal(ours[[g]]$sdev, ref[[g]]$sdev, tolerance = 1e-6, info = paste(what, g))
    expect_equal(abs(ours[[g]]$rotation), abs(as.matrix(ref[[g]]$rotation)), tolerance = 1e-4,
                 info = paste(what, g))
    expect_false(ours[[g]]$center)
    expect_false(ours[[g]]$scale)
    s_o <- summary(ours)[[g]]$importance
    s_r <- summary(ref)[[g]]$importance
    expect_equal(s_o, s_r, tolerance = 1e-5, info = paste(what, g))
  }
  # printed as lme4's (the class line "prcomplist")
  printed <- capture.output(print(ours))
  expect_identical(printed[length(printed)], capture.output(print(ref))[length(printed)])
  expect_identical(printed[length(printed) - 1L], "attr(,\"class\")")
}

test_that("rePCA() of LMMs and a GLMM is lme4's", {
  ss <- lme4::sleepstudy
  pen <- lme4::Penicillin
  cases <- list(
    list(Reaction ~ Days + (Days | Subject), ss),
    # two terms on one factor: their factors joined block-diagonally
    list(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), ss),
    list(diameter ~ 1 + (1 | plate) + (1 | sample), pen))
  for (cs in cases) {
    fit <- lmm(cs[[1]], cs[[2]])
    ref <- lme4::lmer(cs[[1]], cs[[2]], control = lmer_full_control())
    expect_rePCA_parity(rePCA(fit), lme4::rePCA(ref), deparse1(cs[[1]]))
  }
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
  ref <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                     family = binomial, control = glmer_reference_control())
  expect_rePCA_parity(rePCA(fit), lme4::rePCA(ref), "cbpp")
  # lme4's generic reaches our method (lme4 attached after mixedrs)
  expect_identical(lme4::rePCA(fit), rePCA(fit))
  # a singular fit has a component of standard deviation 0
  sing <- suppressMessages(lmm(Yield ~ 1 + (1 | Batch), lme4::Dyestuff2))
  expect_equal(rePCA(sing)$Batch$sdev, 0)
  expect_error(summary(rePCA(fit), digits = 2), "does not use the argument")
})
