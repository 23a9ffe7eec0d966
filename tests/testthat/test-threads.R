# The `threads` option of lmmControl() and glmmControl(): validated once, and
# fits that agree for any number of threads up to rounding.

crossed_data <- function(n = 6000, ns = 500, ni = 320, seed = 11) {
  set.seed(seed)
  subj <- sample.int(ns, n, replace = TRUE)
  item <- sample.int(ni, n, replace = TRUE, prob = 1 / seq_len(ni)^0.7)
  x <- rnorm(n)
  y <- 1 + 0.5 * x + rnorm(ns, sd = 0.8)[subj] + rnorm(ns, sd = 0.3)[subj] * x +
    rnorm(ni, sd = 0.5)[item] + rnorm(n)
  data.frame(y, x, subj = factor(subj), item = factor(item),
             z = rbinom(n, 1, plogis(y - 1)))
}

expect_same_fit <- function(f1, f2, tol = 1e-8) {
  expect_equal(f1$theta, f2$theta, tolerance = tol)
  expect_equal(fixef(f1), fixef(f2), tolerance = tol)
  expect_equal(f1$devcomp$cmp, f2$devcomp$cmp, tolerance = tol)
  expect_equal(unlist(ranef(f1)), unlist(ranef(f2)), tolerance = tol)
}

test_that("lmm() gives the same fit on one and on two threads", {
  d <- crossed_data()
  f <- y ~ x + (1 | subj) + (1 | item)
  f1 <- lmm(f, d, control = lmmControl(threads = 1))
  f2 <- lmm(f, d, control = lmmControl(threads = 2))
  f0 <- lmm(f, d)
  expect_same_fit(f1, f2)
  expect_same_fit(f1, f0)
  s1 <- lmm(y ~ x + (x | subj) + (1 | item), d, control = lmmControl(threads = 1))
  s2 <- lmm(y ~ x + (x | subj) + (1 | item), d, control = lmmControl(threads = 2))
  expect_same_fit(s1, s2)
})

test_that("glmm() gives the same fit on one and on two threads", {
  d <- crossed_data(n = 3000, ns = 300, ni = 280)
  f <- z ~ x + (1 | subj) + (1 | item)
  g1 <- glmm(f, d, family = binomial, control = glmmControl(threads = 1))
  g2 <- glmm(f, d, family = binomial, control = glmmControl(threads = 2))
  expect_same_fit(g1, g2, tol = 1e-6)
})

test_that("the quasi-Newton GLMM fit is the same on one and on two threads", {
  # With two threads the calibration's probes and the Hessian's differences of
  # the exact gradient are shared with a copy of the model built while the
  # first PIRLS runs; its estimates and standard errors agree with the
  # one-thread fit, which evaluates everything in turn on the model itself.
  # (Models as small as grouseticks run on one thread whatever `threads` says:
  # there a thread costs more than it saves; see PARALLEL_MIN_WORK in glmm.rs.)
  data(VerbAgg, package = "lme4")
  d <- crossed_data(n = 1500, ns = 150, ni = 100)
  d$k <- rpois(nrow(d), exp(0.3 * d$y))
  fits <- list(
    verbagg = function(threads) glmm(r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item),
                                     VerbAgg, family = binomial,
                                     control = glmmControl(threads = threads)),
    poisson = function(threads) glmm(k ~ x + (1 | subj) + (1 | item), d, family = poisson,
                                     control = glmmControl(threads = threads)))
  for (fit in fits) {
    g1 <- fit(1)
    g2 <- fit(2)
    expect_identical(g1$optinfo$optimizer[2], "BFGS")
    expect_identical(g2$optinfo$optimizer[2], "BFGS")
    expect_same_fit(g1, g2, tol = 1e-6)
    expect_equal(as.numeric(logLik(g1)), as.numeric(logLik(g2)), tolerance = 1e-10)
    expect_equal(sqrt(diag(as.matrix(vcov(g1)))), sqrt(diag(as.matrix(vcov(g2)))),
                 tolerance = 1e-5)
  }
})

test_that("threads is validated and stored", {
  expect_identical(lmmControl()$threads, 0L)
  expect_identical(lmmControl(threads = 3)$threads, 3L)
  expect_identical(glmmControl(threads = 2L)$threads, 2L)
  for (bad in list(0, -1, 1.5, NA, "2", c(1, 2))) {
    expect_error(lmmControl(threads = bad), "'threads' must be NULL")
    expect_error(glmmControl(threads = bad), "'threads' must be NULL")
  }
})
