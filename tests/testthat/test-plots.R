# Diagnostic plots of lmm() and glmm() fits: they draw without error on a
# null device and return the plotted values invisibly.

with_null_device <- function(expr) {
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  withVisible(expr)
}

test_that("plot() draws residuals against fitted values", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  res <- with_null_device(plot(fit, smooth = TRUE))
  expect_false(res$visible)
  expect_identical(names(res$value), c("fitted", "residuals"))
  expect_equal(res$value$fitted, unname(fitted(fit)))
  expect_equal(res$value$residuals, unname(residuals(fit, type = "pearson")))
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
               family = binomial, data = lme4::cbpp)
  gres <- with_null_device(plot(gfit, main = "cbpp"))
  expect_equal(gres$value$fitted, unname(fitted(gfit)))
  expect_equal(gres$value$residuals, unname(residuals(gfit, type = "pearson")))
  expect_error(with_null_device(plot(fit, smooth = NA)), "smooth")
})

test_that("qqnorm() plots the scaled Pearson residuals", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  q <- with_null_device(qqnorm(fit))
  expect_false(q$visible)
  expect_equal(q$value$y, unname(residuals(fit, type = "pearson", scaled = TRUE)))
  expect_equal(sort(q$value$x), stats::qnorm(stats::ppoints(180)))
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
               family = binomial, data = lme4::cbpp)
  gq <- with_null_device(qqnorm(gfit, line = FALSE))
  expect_length(gq$value$y, nobs(gfit))
})

test_that("caterpillar and QQ plots of the random effects", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  re <- ranef(fit)
  cat_plot <- with_null_device(plot(re, level = 0.9))
  expect_false(cat_plot$visible)
  d <- cat_plot$value
  expect_identical(nrow(d), 36L)
  z <- stats::qnorm(0.95)
  expect_equal(d$lower, d$condval - z * d$condsd)
  expect_equal(d$upper, d$condval + z * d$condsd)
  qq <- with_null_device(qqnorm(re))
  expect_true(all(is.finite(qq$value$theoretical)))
  # several grouping factors, a GLMM, and no conditional variances
  pen <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
  expect_identical(nrow(with_null_device(plot(ranef(pen)))$value), 30L)
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
               family = binomial, data = lme4::cbpp)
  expect_true(all(is.na(with_null_device(plot(ranef(gfit, condVar = FALSE)))$value$lower)))
  expect_error(with_null_device(plot(re, level = 2)), "level")
})
