# Numerically hard models, side by side with lme4: badly scaled predictors, a nearly singular
# variance component, binomial groups that are all 0 or all 1, huge counts and a huge response
# scale. mixedrs must reach lme4's optimum (or a better one) and warn only about what happened.

hard_data <- function() {
  set.seed(1)
  n <- 400
  g <- factor(rep(1:40, each = 10))
  d <- data.frame(g = g, x = rnorm(n), big = rnorm(n, 1e6, 1e5), small = rnorm(n, 0, 1e-3))
  d$y <- 2 + 3e-5 * d$big + 400 * d$small + rnorm(40)[g] + rnorm(n)
  d
}

# Warnings (and messages) raised while evaluating `expr`, and its value.
conditions_of <- function(expr) {
  seen <- character()
  value <- withCallingHandlers(expr,
    warning = function(w) {
      seen <<- c(seen, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      seen <<- c(seen, conditionMessage(m))
      invokeRestart("muffleMessage")
    })
  list(value = value, conditions = seen)
}

test_that("predictors on scales 1e6 apart fit as lme4 fits them, with lme4's scale warning", {
  d <- hard_data()
  ref <- suppressWarnings(lmer_full(y ~ big + small + (1 | g), d))
  ours <- conditions_of(lmm(y ~ big + small + (1 | g), d))
  expect_equal(REMLcrit(ours$value), lme4::REMLcrit(ref), tolerance = 1e-9)
  expect_equal(fixef(ours$value), lme4::fixef(ref), tolerance = 1e-6)
  expect_identical(sum(grepl("very different scales", ours$conditions)), 1L)
})

test_that("a nearly singular variance component is estimated, not failed", {
  d <- hard_data()
  d$y <- 2 + d$small * 100 + rnorm(40, sd = 1e-4)[d$g] + rnorm(nrow(d))
  ref <- suppressMessages(lmer_full(y ~ 1 + (1 | g), d))
  fit <- suppressMessages(lmm(y ~ 1 + (1 | g), d))
  expect_lte(REMLcrit(fit), lme4::REMLcrit(ref) + 1e-7)
  expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-4)
})

test_that("binomial groups that are all 0 or all 1 reach lme4's optimum without false warnings", {
  d <- hard_data()
  set.seed(3)
  d$y <- rbinom(nrow(d), 1, plogis(d$x + rnorm(40)[d$g]))
  d$y[d$g %in% 1:5] <- 1
  d$y[d$g %in% 6:8] <- 0
  ref <- glmer_tight(quote(lme4::glmer(y ~ x + (1 | g), d, family = binomial)), environment())
  ours <- conditions_of(glmm(y ~ x + (1 | g), d, family = binomial))
  expect_lte(-2 * as.numeric(logLik(ours$value)), -2 * as.numeric(logLik(ref)) + 1e-6)
  expect_equal(fixef(ours$value), lme4::fixef(ref), tolerance = 1e-4)
  # with its defaults lme4 stops at a worse point (deviance ~1e-4 higher) and warns of a
  # failed convergence check; ours reaches the optimum without a warning
  expect_identical(ours$conditions, character())
})

test_that("huge Poisson counts and a huge response scale fit as in lme4", {
  d <- hard_data()
  set.seed(4)
  d$count <- rpois(nrow(d), exp(12 + 0.3 * d$x + rnorm(40, sd = 0.5)[d$g]))
  ref <- glmer_tight(quote(lme4::glmer(count ~ x + (1 | g), d, family = poisson)), environment())
  ours <- conditions_of(glmm(count ~ x + (1 | g), d, family = poisson))
  expect_equal(as.numeric(logLik(ours$value)), as.numeric(logLik(ref)), tolerance = 1e-8)
  expect_equal(fixef(ours$value), lme4::fixef(ref), tolerance = 1e-6)
  expect_identical(ours$conditions, character())

  d$y_big <- d$y * 1e8
  ref <- lmer_full(y_big ~ small + (1 | g), d)
  fit <- lmm(y_big ~ small + (1 | g), d)
  expect_equal(REMLcrit(fit), lme4::REMLcrit(ref), tolerance = 1e-9)
  expect_equal(sigma(fit), sigma(ref), tolerance = 1e-6)
})

test_that("separation by the fixed effects is an error naming the predictor (glmer: pwrssUpdate)", {
  d <- hard_data()
  d$sep <- as.integer(d$x > 0)
  expect_error(glmm(sep ~ x + small + (1 | g), d, family = binomial),
               "separate the binomial response completely.*'x' grow without bound")
  # lme4 fails here with "pwrssUpdate did not converge in (maxit) iterations"
  expect_error(suppressWarnings(lme4::glmer(sep ~ x + small + (1 | g), d, family = binomial)))
  set.seed(5)
  d$f <- factor(rep(c("b", "a", "c", "d"), 100))
  d$y01 <- rbinom(nrow(d), 1, 0.5)
  d$y01[d$f == "a"] <- 0
  expect_error(glmm(y01 ~ f + (1 | g), d, family = binomial),
               "quasi-completely.*'\\(Intercept\\)', 'fb', 'fc', 'fd' grow without bound")
})
