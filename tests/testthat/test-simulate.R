# simulate() for "lmm" and "glmm" fits: the same random number draws as
# lme4's simulate.merMod, so for the same seed the simulations agree up to
# the differences of the estimates (1e-5 relative; counts drawn from means
# that agree to ~1e-7 are identical). The "seed" attribute follows
# stats::simulate() and is not compared with lme4's (which stores
# .Random.seed).

skip_if_not_installed("lme4")

# The simulations without their "seed" attribute.
sims <- function(x) {
  attr(x, "seed") <- NULL
  x
}

expect_same_sims <- function(ours, theirs, tolerance = 1e-5) {
  expect_s3_class(ours, "data.frame")
  expect_equal(sims(ours), sims(theirs), tolerance = tolerance)
}

test_that("sleepstudy simulations equal lme4's for the same seed", {
  ss <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  s1 <- simulate(fit, seed = 1)
  expect_named(s1, "sim_1")
  expect_identical(rownames(s1), rownames(ss))
  expect_same_sims(s1, simulate(ref, seed = 1))
  expect_same_sims(simulate(fit, nsim = 3, seed = 1), simulate(ref, nsim = 3, seed = 1))
  expect_named(simulate(fit, nsim = 3, seed = 1), c("sim_1", "sim_2", "sim_3"))
  for (rf in list(NULL, NA, ~0, ~ (1 | Subject))) {
    expect_same_sims(simulate(fit, nsim = 3, seed = 42, re.form = rf),
                     simulate(ref, nsim = 3, seed = 42, re.form = rf))
  }
  expect_same_sims(simulate(fit, seed = 5, use.u = TRUE), simulate(ref, seed = 5, use.u = TRUE))
  # uncorrelated terms: two terms on one factor
  fit2 <- lmm(Reaction ~ Days + (Days || Subject), ss)
  ref2 <- lmer_full(Reaction ~ Days + (Days || Subject), ss)
  expect_same_sims(simulate(fit2, nsim = 2, seed = 4), simulate(ref2, nsim = 2, seed = 4))
})

test_that("crossed terms are drawn in lme4's order", {
  pen <- lme4::Penicillin
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen)
  ref <- lmer_full(diameter ~ 1 + (1 | plate) + (1 | sample), pen)
  expect_same_sims(simulate(fit, nsim = 2, seed = 3), simulate(ref, nsim = 2, seed = 3))
  # terms listed with the smaller factor first are reordered, as lme4 does
  fit_r <- lmm(diameter ~ 1 + (1 | sample) + (1 | plate), pen)
  ref_r <- lmer_full(diameter ~ 1 + (1 | sample) + (1 | plate), pen)
  expect_same_sims(simulate(fit_r, nsim = 2, seed = 3), simulate(ref_r, nsim = 2, seed = 3))
  expect_same_sims(simulate(fit, nsim = 2, seed = 3, re.form = ~ (1 | sample)),
                   simulate(ref, nsim = 2, seed = 3, re.form = ~ (1 | sample)))
})

test_that("simulations for new data equal lme4's", {
  ss <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  nd <- ss[ss$Subject %in% c("308", "309", "335"), ]
  expect_same_sims(simulate(fit, nsim = 2, seed = 1, newdata = nd),
                   simulate(ref, nsim = 2, seed = 1, newdata = nd))
  expect_same_sims(simulate(fit, nsim = 2, seed = 1, newdata = nd, re.form = NULL),
                   simulate(ref, nsim = 2, seed = 1, newdata = nd, re.form = NULL))
  # new subjects: an error unless allowed, then new random effects are drawn
  nd_new <- data.frame(Days = 0:3, Subject = c("a", "a", "b", "308"))
  expect_error(simulate(fit, newdata = nd_new, seed = 1),
               "new levels detected in newdata: a, b \\(grouping factor 'Subject'\\)")
  expect_same_sims(simulate(fit, nsim = 2, seed = 1, newdata = nd_new, allow.new.levels = TRUE),
                   simulate(ref, nsim = 2, seed = 1, newdata = nd_new, allow.new.levels = TRUE))
})

test_that("binomial cbind() responses simulate count matrices equal to lme4's", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = cbpp)))
  ours <- simulate(pair$fit, nsim = 3, seed = 1)
  theirs <- simulate(pair$ref, nsim = 3, seed = 1)
  expect_same_sims(ours, theirs, tolerance = 0)
  expect_true(is.matrix(ours$sim_1))
  expect_identical(dim(ours$sim_2), c(56L, 2L))
  expect_identical(colnames(ours$sim_1), colnames(theirs$sim_1))
  expect_equal(rowSums(ours$sim_3), cbpp$size)
  expect_same_sims(simulate(pair$fit, nsim = 3, seed = 2, re.form = NULL),
                   simulate(pair$ref, nsim = 3, seed = 2, re.form = NULL), tolerance = 0)
  # new data: the number of trials comes from the response's variables
  expect_same_sims(simulate(pair$fit, nsim = 2, seed = 1, newdata = cbpp),
                   simulate(pair$ref, nsim = 2, seed = 1, newdata = cbpp), tolerance = 0)
  expect_error(simulate(pair$fit, newdata = cbpp[c("herd", "period")]),
               "needs the number of trials: give 'weights'")
  s <- simulate(pair$fit, newdata = cbpp[1:4, c("herd", "period")], weights = c(5, 5, 10, 1),
                seed = 1)
  expect_equal(rowSums(s$sim_1), c(5, 5, 10, 1))
})

test_that("other binomial response forms and Poisson fits equal lme4's", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  po <- fit_glmm_pair(quote(glmm(incidence ~ period + offset(log(size)) + (1 | herd),
                                 family = poisson, data = cbpp)))
  expect_same_sims(simulate(po$fit, nsim = 3, seed = 5), simulate(po$ref, nsim = 3, seed = 5),
                   tolerance = 0)
  expect_same_sims(simulate(po$fit, nsim = 3, seed = 5, re.form = NULL),
                   simulate(po$ref, nsim = 3, seed = 5, re.form = NULL), tolerance = 0)
  # proportions with the trials as weights
  prop <- fit_glmm_pair(quote(glmm(incidence / size ~ period + (1 | herd), weights = size,
                                   family = binomial, data = cbpp)))
  expect_same_sims(simulate(prop$fit, nsim = 2, seed = 7), simulate(prop$ref, nsim = 2, seed = 7),
                   tolerance = 0)
  # a factor response gives factors
  cbpp$any <- factor(ifelse(cbpp$incidence > 0, "yes", "no"))
  fac <- fit_glmm_pair(quote(glmm(any ~ period + (1 | herd), family = binomial, data = cbpp)))
  s <- simulate(fac$fit, nsim = 2, seed = 7)
  expect_s3_class(s$sim_1, "factor")
  expect_identical(levels(s$sim_1), c("no", "yes"))
  expect_same_sims(s, simulate(fac$ref, nsim = 2, seed = 7), tolerance = 0)
  expect_error(simulate(prop$fit, weights = cbpp$size + 0.5), "non-integer prior weights")
})

test_that("prior weights set the residual sd of LMM simulations", {
  set.seed(2)
  w <- stats::runif(180, 0.5, 2)
  fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy, weights = w)
  s <- simulate(fit, seed = 3)
  set.seed(3)
  u <- stats::rnorm(18)
  e <- stats::rnorm(180)
  expected <- predict(fit, re.form = NA) +
    sigma(fit) * (fit$theta * u)[lme4::sleepstudy$Subject] + sigma(fit) / sqrt(w) * e
  expect_equal(s$sim_1, unname(expected), tolerance = 1e-12)
})

test_that("Gamma and inverse Gaussian simulations have dispersion sigma^2", {
  skip_if_no_glmm()
  d <- gamma_data()
  gfit <- glmm(y ~ x + (1 | g), family = Gamma(link = "log"), data = d)
  s <- simulate(gfit, nsim = 400, seed = 1, re.form = NULL)
  mu <- rep(fitted(gfit), 400)
  expect_equal(stats::var(unlist(s) / mu), sigma(gfit)^2, tolerance = 0.05)
  expect_equal(mean(unlist(s) / mu), 1, tolerance = 0.02)
  skip_if_not_installed("statmod")
  ifit <- glmm(y ~ x + (1 | g), family = inverse.gaussian(link = "log"), data = d)
  s <- simulate(ifit, nsim = 400, seed = 1, re.form = NULL)
  mu <- rep(fitted(ifit), 400)
  expect_equal(mean((unlist(s) - mu)^2 / mu^3), sigma(ifit)^2, tolerance = 0.05)
})

test_that("the seed attribute and the random number stream follow stats::simulate", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  set.seed(10)
  before <- stats::runif(1)
  set.seed(10)
  s <- simulate(fit, seed = 99)
  expect_identical(stats::runif(1), before)
  expect_identical(as.vector(attr(s, "seed")), 99)
  expect_identical(attr(attr(s, "seed"), "kind"), as.list(RNGkind()))
  # without a seed the current stream is used and its state recorded
  set.seed(7)
  state <- .Random.seed
  s_null <- simulate(fit)
  expect_identical(attr(s_null, "seed"), state)
  expect_identical(sims(s_null), sims(simulate(fit, seed = 7)))
})

test_that("rows the fit excluded are padded as lme4 pads them", {
  ss <- lme4::sleepstudy
  ss$Reaction[c(3, 50)] <- NA
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss, na.action = na.exclude)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), ss, na.action = na.exclude)
  ours <- simulate(fit, nsim = 2, seed = 1)
  theirs <- simulate(ref, nsim = 2, seed = 1)
  expect_identical(dim(ours), c(180L, 2L))
  expect_true(all(is.na(ours$sim_1[c(3, 50)])))
  expect_identical(rownames(ours), rownames(theirs))
  expect_identical(attr(ours, "na.action"), attr(theirs, "na.action"))
  expect_same_sims(ours, theirs)
})

test_that("bad arguments give clear errors", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_error(simulate(fit, nsim = 0), "'nsim' must be a positive whole number")
  expect_error(simulate(fit, nsim = 1.5), "'nsim' must be a positive whole number")
  expect_error(simulate(fit, use.u = TRUE, re.form = NA), "should specify only one of 'use.u' and 're.form'")
  expect_error(simulate(fit, re.form = ~ (1 | foo)), "not a variable of the model")
  expect_error(simulate(fit, weights = 1:3), "'weights' must be positive numbers, one for all rows or one per row")
  expect_error(simulate(fit, newdata = data.frame(Subject = "308")), "variable 'Days' needed by")
  expect_error(simulate(fit, seed = 1, foo = 2), "simulate\\(\\): unused argument foo = 2")
})
