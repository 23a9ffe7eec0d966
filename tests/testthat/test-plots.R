# Base-graphics diagnostic plots of lmm() and glmm() fits: they draw without
# error on a null device and return the plotted values invisibly. (plot(fit)
# and the lattice plots: test-lattice.R.)

with_null_device <- function(expr) {
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  withVisible(expr)
}

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
  expect_error(with_null_device(plot(re, max_labels = -1)), "max_labels")
})

test_that("a grouping factor's panels share one order, that of lme4's dotplot", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  d <- with_null_device(plot(ranef(fit)))$value
  # every level at the same height in both panels
  by_term <- split(d[c("grp", "position")], d$term)
  expect_identical(as.character(by_term[[1]]$grp), as.character(by_term[[2]]$grp))
  expect_identical(by_term[[1]]$position, by_term[[2]]$position)
  expect_identical(sort(by_term[[1]]$position), 1:18)
  # ordered by the intercepts, as lme4's dotplot (from bottom to top)
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  lme4_order <- levels(lattice::dotplot(lme4::ranef(ref, condVar = TRUE))$Subject$panel.args[[1]]$y)
  expect_identical(as.character(by_term[[1]]$grp)[order(by_term[[1]]$position)], lme4_order)
  # two grouping factors: each its own order
  pen <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
  dp <- with_null_device(plot(ranef(pen)))$value
  expect_identical(sort(dp$position[dp$grpvar == "sample"]), 1:6)
  expect_identical(sort(dp$position[dp$grpvar == "plate"]), 1:24)
  s <- dp[dp$grpvar == "sample", ]
  expect_false(is.unsorted(s$condval[order(s$position)]))
})

test_that("large factors are drawn without labels and with light intervals", {
  expect_true(ranef_panel_style(60, 60)$labels)
  big <- ranef_panel_style(3000, 60)
  expect_false(big$labels)
  expect_lt(big$cex, 1)
  expect_lt(grDevices::col2rgb(big$bar, alpha = TRUE)["alpha", 1], 255)
  skip_if_not_installed("lme4")
  fit <- lmm(y ~ service + (1 | s) + (1 | d), lme4::InstEval)
  d <- with_null_device(plot(ranef(fit)))$value
  expect_identical(nrow(d), nlevels(lme4::InstEval$s) + nlevels(lme4::InstEval$d))
  expect_true(all(is.finite(d$lower)))
})
