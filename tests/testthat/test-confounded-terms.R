# Random effects that repeat fixed effects: with REML their variance is not
# identified (the criterion is flat in it), which is said by a warning; the
# rest of the fit is compared with lmer at full precision.

# The REML criterion and the identified parameters of `fit` against lmer's
# (`ref`), `free` the positions of the theta that are not identified.
expect_same_identified_fit <- function(fit, ref, free) {
  expect_equal(-2 * as.numeric(logLik(fit)), lme4::REMLcrit(ref), tolerance = 1e-9)
  expect_equal(unname(fit$theta[-free]), unname(lme4::getME(ref, "theta")[-free]),
               tolerance = 1e-4)
  expect_equal(unname(fixef(fit)), unname(lme4::fixef(ref)), tolerance = 1e-5)
}

test_that("a grouping factor that is also a fixed effect is reported with REML (Pixel)", {
  skip_if_not_installed("nlme")
  data("Pixel", package = "nlme")
  f <- pixel ~ day + I(day^2) + Side + (day | Dog) + (1 | Side/Dog)
  expect_warning(fit <- lmm(f, Pixel),
                 "random effects of the intercept in term \\(1 \\| Side\\) repeat the fixed")
  ref <- suppressWarnings(lmer_full(f, Pixel))
  free <- which(names(lme4::getME(ref, "theta")) == "Side.(Intercept)")
  expect_length(free, 1L)
  expect_same_identified_fit(fit, ref, free)
  # The criterion is flat in that theta: moving it changes nothing.
  dev <- lmm(f, Pixel, devFunOnly = TRUE)
  moved <- fit$theta
  moved[free] <- moved[free] * 3 + 1
  expect_equal(dev(moved), dev(fit$theta), tolerance = 1e-9)
  # With ML its variance goes to 0: a singular fit, and no warning of this kind.
  expect_message(ml <- lmm(f, Pixel, REML = FALSE), "singular")
  expect_equal(unname(ml$theta[free]), 0)
  expect_equal(as.numeric(logLik(ml)),
               as.numeric(logLik(suppressMessages(suppressWarnings(
                 lmer_full(f, Pixel, REML = FALSE))))),
               tolerance = 1e-9)
  # check.conv.hess decides how it is reported.
  expect_error(lmm(f, Pixel, control = lmmControl(check.conv.hess = "stop")),
               "REML criterion does not depend")
  expect_no_warning(lmm(f, Pixel, control = lmmControl(check.conv.hess = "ignore")))
})

test_that("confounded slopes are named, and unconfounded terms are not reported", {
  set.seed(59)
  g <- factor(rep(1:4, each = 30))
  h <- factor(sample(1:12, 120, replace = TRUE))
  x <- rnorm(120)
  d <- data.frame(g, h, x, y = rnorm(120) + as.integer(g) * (1 + 0.5 * x) +
                    rnorm(12)[h])
  # Intercept and slope of g both repeat fixed effects g and g:x.
  f <- y ~ g * x + (x | g) + (1 | h)
  expect_warning(fit <- lmm(f, d), "columns '\\(Intercept\\)', 'x' in term \\(x \\| g\\)")
  ref <- suppressWarnings(lmer_full(f, d))
  expect_equal(-2 * as.numeric(logLik(fit)), lme4::REMLcrit(ref), tolerance = 1e-9)
  # Only the intercept: the slope's variance is identified.
  expect_warning(lmm(y ~ g + x + (0 + x | g) + (1 | g) + (1 | h), d),
                 "intercept in term \\(1 \\| g\\)")
  # As many fixed columns as g has levels, none repeating it: no warning.
  d$x2 <- rnorm(120)
  d$x3 <- rnorm(120)
  expect_no_warning(fit <- lmm(y ~ x + x2 + x3 + (1 | g) + (1 | h), d))
  ref <- lmer_full(y ~ x + x2 + x3 + (1 | g) + (1 | h), d)
  expect_same_identified_fit(fit, ref, integer())
  expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-4)
})

test_that("refit() of a fit with a confounded term warns again", {
  skip_if_not_installed("nlme")
  data("Pixel", package = "nlme")
  f <- pixel ~ day + I(day^2) + Side + (day | Dog) + (1 | Side/Dog)
  fit <- suppressWarnings(lmm(f, Pixel))
  expect_warning(refit(fit, Pixel$pixel + 1), "term \\(1 \\| Side\\)")
  ml <- suppressMessages(lmm(f, Pixel, REML = FALSE))
  expect_warning(suppressMessages(update(ml, REML = TRUE)), "term \\(1 \\| Side\\)")
})

test_that("a confounded term is found from the sums of a database table too", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  set.seed(59)
  g <- factor(rep(1:4, each = 30))
  h <- factor(sample(1:12, 120, replace = TRUE))
  x <- rnorm(120)
  d <- data.frame(g, h, x, w = runif(120, 0.5, 2),
                  y = rnorm(120) + as.integer(g) * (1 + 0.5 * x) + rnorm(12)[h])
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  DBI::dbWriteTable(con, "d", transform(d, g = as.character(g), h = as.character(h)))
  tbl <- dplyr::tbl(con, "d")
  expect_warning(fit <- lmm(y ~ g * x + (x | g) + (1 | h), tbl, weights = w),
                 "columns '\\(Intercept\\)', 'x' in term \\(x \\| g\\)")
  ref <- suppressWarnings(lmer_full(y ~ g * x + (x | g) + (1 | h), d, weights = w))
  expect_equal(-2 * as.numeric(logLik(fit)), lme4::REMLcrit(ref), tolerance = 1e-9)
  expect_warning(lmm(y ~ g + x + (0 + x | g) + (1 | g) + (1 | h), tbl),
                 "intercept in term \\(1 \\| g\\)")
  expect_no_warning(lmm(y ~ x + (1 | g) + (1 | h), tbl))
  # A refit by REML of the ML fit says it again.
  ml <- suppressMessages(lmm(y ~ g * x + (x | g) + (1 | h), tbl, REML = FALSE))
  expect_warning(suppressMessages(update(ml, REML = TRUE)), "term \\(x \\| g\\)")
})
