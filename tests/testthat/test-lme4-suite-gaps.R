# lme4 behaviour that lme4's own test files (run with lmer/glmer swapped for
# lmm/glmm) found missing: glmer's and lmer's `contrasts`, glmer's `mustart`
# and `etastart`, lme4's old names of `re.form`, simulate()'s recycled
# `weights`, plain-list and lmerControl() controls, glmer's default family,
# nAGQ up to 100, the separation error for a rare indicator, and a '.' in
# the formula. Each is checked side by side with lme4 on the same model.

test_that("lmm() and glmm() take lme4's 'contrasts' argument", {
  skip_if_not_installed("lme4")
  cake <- lme4::cake
  ctr <- list(recipe = "contr.sum")
  fit <- lmm(angle ~ recipe + temp + (1 | replicate), cake, contrasts = ctr)
  ref <- lmer_full(angle ~ recipe + temp + (1 | replicate), cake, contrasts = ctr)
  expect_identical(colnames(model.matrix(fit)), colnames(lme4::getME(ref, "X")))
  # contr.sum columns (recipe1, recipe2), not treatment ones (recipeB, recipeC)
  expect_identical(names(fixef(fit))[2:3], c("recipe1", "recipe2"))
  # Both at the REML optimum (lmer run to rhoend = 1e-12): estimates and
  # their covariance agree to the optimizer's precision.
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-7)
  expect_equal(as.matrix(vcov(fit)), as.matrix(vcov(ref)), tolerance = 1e-6)
  # New data are coded with the fit's contrasts.
  nd <- cake[c(1, 20, 40, 200), ]
  expect_equal(predict(fit, nd), predict(ref, nd), tolerance = 1e-7)
  expect_equal(predict(fit, nd, re.form = NA), predict(ref, nd, re.form = NA),
               tolerance = 1e-7)
  # A function as contrast, in a GLMM (glmer run to its optimum).
  cbpp <- lme4::cbpp
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
               family = binomial, contrasts = list(period = contr.helmert))
  gref <- glmer_tight(quote(lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                        cbpp, family = binomial,
                                        contrasts = list(period = contr.helmert))),
                      environment())
  expect_equal(fixef(gfit), lme4::fixef(gref), tolerance = 1e-5)
  expect_equal(as.numeric(logLik(gfit)), as.numeric(logLik(gref)), tolerance = 1e-8)
  # update() keeps them; NULL is the default coding.
  expect_identical(names(fixef(update(fit, . ~ . - temp))), c("(Intercept)", "recipe1", "recipe2"))
  expect_identical(names(fixef(lmm(angle ~ recipe + (1 | replicate), cake, contrasts = NULL)))[2],
                   "recipeB")
  expect_error(lmm(angle ~ recipe + (1 | replicate), cake, contrasts = "contr.sum"),
               "'contrasts' must be NULL or a named list")
  expect_error(lmm(angle ~ recipe + (1 | replicate), cake, contrasts = list(recipe = "no_such_fun")),
               "could not build the fixed-effects model matrix")
})

test_that("glmm() takes glmer's 'mustart' and 'etastart'", {
  skip_if_not_installed("lme4")
  dd <- expand.grid(x = seq(-2, 3, length.out = 10), f = factor(1:10))
  set.seed(101)
  dd$y <- pmax(exp(dd$x + rnorm(10)[dd$f]) + rnorm(100), 0)
  # gaussian(link = "log") cannot start from a response with zeros: both
  # packages stop, and both fit from a given mustart.
  expect_error(glmm(y ~ x + (1 | f), family = gaussian(link = "log"), data = dd),
               "must be positive, or valid starting values must be given")
  expect_error(lme4::glmer(y ~ x + (1 | f), family = gaussian(link = "log"), data = dd),
               "valid starting values")
  fit <- glmm(y ~ x + (1 | f), family = gaussian(link = "log"), data = dd,
              mustart = pmax(y, 0.1))
  ref <- glmer_tight(quote(lme4::glmer(y ~ x + (1 | f), family = gaussian(link = "log"),
                                       data = dd, mustart = pmax(y, 0.1))),
                     environment())
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-8)
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-5)
  # a mustart that names a function as an argument (family = Gamma), as glmer takes it
  dd$yp <- dd$y + 0.5
  fitG <- glmm(yp ~ x + (1 | f), family = Gamma(link = "log"), data = dd,
               mustart = fitted(glm(yp ~ x, data = dd, family = Gamma)))
  refG <- glmer_tight(quote(lme4::glmer(yp ~ x + (1 | f), family = Gamma(link = "log"),
                                        data = dd,
                                        mustart = fitted(glm(yp ~ x, data = dd,
                                                             family = Gamma)))),
                      environment())
  expect_equal(as.numeric(logLik(fitG)), as.numeric(logLik(refG)), tolerance = 1e-6)
  # etastart, evaluated in data, with rows of missing values dropped as the
  # response's are.
  cbpp <- lme4::cbpp
  cbpp$eta0 <- 1
  cbpp$size[3] <- NA
  fitE <- glmm(incidence / size ~ period + (1 | herd), weights = size, family = binomial,
               data = cbpp, etastart = eta0)
  refE <- glmer_tight(quote(lme4::glmer(incidence / size ~ period + (1 | herd), weights = size,
                                        family = binomial, data = cbpp, etastart = eta0)),
                      environment())
  expect_equal(nobs(fitE), nobs(refE))
  expect_equal(as.numeric(logLik(fitE)), as.numeric(logLik(refE)), tolerance = 1e-8)
  expect_equal(fixef(fitE), lme4::fixef(refE), tolerance = 1e-5)
  expect_error(glmm(y ~ x + (1 | f), family = gaussian(link = "log"), data = dd,
                    mustart = rep(-1, 100)),
               "'mustart' must give 100 valid starting values")
  expect_error(glmm(y ~ x + (1 | f), family = gaussian(link = "log"), data = dd,
                    mustart = rep(1, 3)),
               "could not build the model frame")
})

test_that("predict() and simulate() take lme4's old names of re.form, with its warning", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
  ref <- glmer_tight(quote(lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                       cbpp, family = binomial)), environment())
  expect_warning(p_old <- predict(fit, ReForm = NA), "'ReForm' is deprecated")
  expect_warning(p_ref <- predict(ref, ReForm = NA), "is deprecated")
  expect_equal(p_old, predict(fit, re.form = NA))
  expect_equal(p_old, p_ref, tolerance = 1e-6)
  expect_warning(p2 <- predict(fit, REform = ~0, type = "response"), "'REform' is deprecated")
  expect_equal(p2, predict(fit, re.form = ~0, type = "response"))
  expect_warning(s_old <- simulate(fit, seed = 3, REForm = NULL), "'REForm' is deprecated")
  expect_warning(s_ref <- simulate(ref, seed = 3, REForm = NULL), "is deprecated")
  expect_equal(s_old, simulate(fit, seed = 3, re.form = NULL))
  # same draws as lme4 from (almost) the same conditional means
  expect_equal(unname(as.matrix(s_old[[1]])), unname(as.matrix(s_ref[[1]])))
  expect_error(suppressWarnings(simulate(fit, use.u = TRUE, ReForm = NA)),
               "should specify only one of 'use.u' and 're.form'")
  expect_error(predict(fit, ReForm = NA, REForm = NA), "give only one of 're.form'")
  expect_error(suppressWarnings(predict(fit, ReForm = NA, junk = 1)), "unused argument junk = 1")
})

test_that("simulate() recycles a single weight for new data, as lme4", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
  ref <- glmer_tight(quote(lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                       cbpp, family = binomial)), environment())
  nd <- with(cbpp, expand.grid(period = unique(period), herd = unique(herd)))[1:3, ]
  ours <- simulate(fit, newdata = nd, weights = 20, seed = 101)[[1]]
  expect_equal(rowSums(ours), rep(20, 3))
  expect_equal(ours, simulate(fit, newdata = nd, weights = rep(20, 3), seed = 101)[[1]])
  expect_equal(unname(ours), unname(simulate(ref, newdata = nd, weights = 20, seed = 101)[[1]]))
  expect_error(simulate(fit, newdata = nd, weights = c(20, 20)),
               "one for all rows or one per row of 'newdata' \\(3\\)")
})

test_that("controls: an empty plain list, and lmerControl() given to glmm() (with glmer's warning)", {
  skip_if_not_installed("lme4")
  dye <- lme4::Dyestuff
  fit <- lmm(Yield ~ 1 | Batch, dye, control = list())
  expect_equal(REMLcrit(fit), lme4::REMLcrit(lmer_full(Yield ~ 1 | Batch, dye)), tolerance = 1e-10)
  ss <- lme4::sleepstudy[1:100, ]
  expect_warning(g <- glmm(round(Reaction) ~ Days + (1 | Subject), ss, family = poisson,
                           control = lme4::lmerControl()),
                 "please use glmerControl\\(\\)")
  gref <- glmer_tight(quote(lme4::glmer(round(Reaction) ~ Days + (1 | Subject), ss,
                                        family = poisson)), environment())
  expect_equal(as.numeric(logLik(g)), as.numeric(logLik(gref)), tolerance = 1e-8)
})

test_that("glmm() without a family is glmer's gaussian shortcut to lmm()", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  expect_warning(fit <- glmm(Reaction ~ Days + (Days | Subject), ss),
                 "calling glmm\\(\\) with family=gaussian .* as a shortcut to lmm\\(\\)")
  expect_warning(shortcut <- lme4::glmer(Reaction ~ Days + (Days | Subject), ss),
                 "calling glmer\\(\\) with family=gaussian .* as a shortcut")
  expect_s3_class(fit, "lmm")
  expect_true(lme4::isLMM(shortcut))
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-7)
  expect_equal(REMLcrit(fit), lme4::REMLcrit(ref), tolerance = 1e-10)
})

test_that("nAGQ may go up to 100 quadrature points, as glmer's", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
              family = binomial, nAGQ = 60)
  ref <- glmer_tight(quote(lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                       cbpp, family = binomial, nAGQ = 60)), environment())
  # both at the optimum of the 60-point criterion
  expect_equal(deviance(fit), deviance(ref), tolerance = 1e-8)
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-6)
  expect_equal(fit$nAGQ, 60L)
  expect_error(update(fit, nAGQ = 101), "'nAGQ' must be a whole number from 0 to 100")
  expect_error(suppressWarnings(update(ref, nAGQ = 101)))
})

test_that("separation by a rare indicator is an error naming it (glmer: estimate off to -Inf)", {
  skip_if_not_installed("lme4")
  set.seed(101)
  d <- data.frame(y = rbinom(1000, size = 1, p = 0.5), x = runif(1000),
                  f = factor(rep(1:20, each = 50)), x2 = rep(0:1, c(999, 1)))
  d$y[1000] <- 0
  expect_error(glmm(y ~ x + x2 + (1 | f), data = d, family = binomial),
               "separate the binomial response quasi-completely.*'x2' grow without bound")
  # glmer returns a huge estimate (its size set by where its PIRLS stops)
  ref <- suppressWarnings(suppressMessages(
    lme4::glmer(y ~ x + x2 + (1 | f), data = d, family = binomial,
                control = lme4::glmerControl(check.conv.hess = "ignore",
                                             check.conv.grad = "ignore"))))
  expect_lt(lme4::fixef(ref)[["x2"]], -10)
})

test_that("options(lmerControl =) and options(glmerControl =) set the data checks, as in lme4", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  # 36 observations for 36 random effects: both refuse by default ...
  expect_error(lmm(Reaction ~ Days + (Days | Subject), ss, subset = Days %in% c(1, 9)),
               "number of observations \\(=36\\) <= number of random effects \\(=36\\)")
  expect_error(lme4::lmer(Reaction ~ Days + (Days | Subject), ss, subset = Days %in% c(1, 9)),
               "number of observations \\(=36\\) <= number of random effects \\(=36\\)")
  # ... and both fit when the option turns the checks off, with or without
  # a control argument.
  op <- options(lmerControl = list(check.nobs.vs.rankZ = "ignore", check.nobs.vs.nRE = "ignore"))
  on.exit(options(op), add = TRUE)
  expect_s3_class(lmm(Reaction ~ Days + (Days | Subject), ss, subset = Days %in% c(1, 9),
                      control = lmmControl(check.conv.grad = "ignore", check.conv.hess = "ignore")),
                  "lmm")
  expect_s3_class(suppressWarnings(lmm(Reaction ~ Days + (Days | Subject), ss,
                                       subset = Days %in% c(1, 9))), "lmm")
  expect_s4_class(suppressWarnings(lme4::lmer(Reaction ~ Days + (Days | Subject), ss,
                                              subset = Days %in% c(1, 9))), "lmerMod")
  # An explicit argument wins over the option.
  expect_identical(lmmControl(check.nobs.vs.nRE = "stop")$check.nobs.vs.nRE, "stop")
  # Names lme4 does not read from the option are ignored with a warning.
  options(lmerControl = list(junk = 1, check.conv.grad = "ignore"))
  expect_warning(fit <- lmm(Reaction ~ Days + (1 | Subject), ss),
                 "some options in getOption\\(\"lmerControl\"\\) are ignored: junk, check.conv.grad")
  expect_warning(lme4::lmerControl(), "ignored : junk, check.conv.grad")
  options(lmerControl = NULL)
  expect_equal(REMLcrit(fit), lme4::REMLcrit(lmer_full(Reaction ~ Days + (1 | Subject), ss)),
               tolerance = 1e-10)
  withr::local_options(glmerControl = list(check.nlev.gtreq.5 = "warning"))
  cb4 <- subset(lme4::cbpp, herd %in% levels(herd)[1:4])
  expect_warning(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cb4,
                      family = binomial),
                 "< 5 sampled levels")
  expect_warning(lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb4,
                             family = binomial),
                 "< 5 sampled levels")
})

test_that("optCtrl = list(maxfun = ) with lmerControl()'s default optimizer (nloptwrap) is the evaluation limit", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  # lme4's default optimizer is nloptwrap, whose own name for the limit is
  # maxeval; the common lmerControl(optCtrl = list(maxfun = )) is taken as it.
  ctrl <- lme4::lmerControl(optCtrl = list(maxfun = 1000))
  expect_identical(ctrl$optimizer, "nloptwrap")
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss, REML = FALSE, control = ctrl)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), ss, REML = FALSE)
  expect_equal(AIC(fit), AIC(ref), tolerance = 1e-8)
  expect_lte(fit$optinfo$feval, 1000)
  # a binding limit is reported (lme4's nloptwrap ignores maxfun and runs on)
  expect_warning(lmm(Reaction ~ Days + (Days | Subject), ss, REML = FALSE,
                     control = lme4::lmerControl(optCtrl = list(maxfun = 3))),
                 "limit of maxfun = 3")
  expect_identical(lmmControl(optimizer = "nloptwrap", optCtrl = list(maxfun = 50))$maxfun, 50L)
  expect_error(lmmControl(optimizer = "nloptwrap", optCtrl = list(maxfun = 50, maxeval = 60)),
               "give only one of optCtrl's 'maxfun' and 'maxeval'")
})

test_that("dotplot() and plot() of coef() draw what lme4 draws for coef.mer", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  ours <- lattice::dotplot(coef(fit))
  # (lme4's method re-evaluates its call in its own frame: the object is
  # passed by value)
  theirs <- do.call(lattice::dotplot, list(coef(ref)))
  expect_s3_class(ours$Subject, "trellis")
  # the same panels (one per coefficient), points and level order, both at
  # the REML optimum
  expect_equal(ours$Subject$panel.args, theirs$Subject$panel.args, tolerance = 1e-6)
  expect_identical(levels(ours$Subject$panel.args[[1]]$y),
                   levels(theirs$Subject$panel.args[[1]]$y))
  p <- plot(coef(fit))
  q <- plot(coef(ref))
  expect_s3_class(p$Subject, "trellis")
  expect_identical(deparse(p$Subject$formula), deparse(q$Subject$formula))
  expect_equal(p$Subject$panel.args, q$Subject$panel.args, tolerance = 1e-6)
  # one varying coefficient: a normal QQ plot of it (lme4 fails here,
  # its one-column frame having become a vector)
  fit1 <- lmm(Reaction ~ Days + (1 | Subject), ss)
  p1 <- plot(coef(fit1))$Subject
  expect_s3_class(p1, "trellis")
  expect_equal(sort(p1$panel.args[[1]]$x), sort(coef(fit1)$Subject[["(Intercept)"]]))
  expect_error(lattice::dotplot(coef(fit), data = ss), "does not use 'data'")
})

test_that("bootmm() conditions on some random-effects terms with re.form, as bootMer()", {
  skip_if_not_installed("lme4")
  pastes <- lme4::Pastes
  fit <- lmm(strength ~ (1 | batch / cask), pastes)
  ref <- lmer_full(strength ~ (1 | batch / cask), pastes)
  stat <- function(m) c(fixef(m), sigma = sigma(m))
  # batch effects kept at their estimates, new cask:batch effects drawn: the
  # same draws as lme4's (same seed, same order of the random numbers), so
  # the refits agree to the optimizers' precision.
  ours <- bootmm(fit, stat, nsim = 4, seed = 3, re.form = ~ (1 | batch))
  theirs <- lme4::bootMer(ref, stat, nsim = 4, seed = 3, re.form = ~ (1 | batch))
  expect_equal(unname(ours$t), unname(theirs$t), tolerance = 1e-5)
  # all terms named: the same as re.form = NULL (use.u = TRUE)
  all_terms <- bootmm(fit, stat, nsim = 3, seed = 4, re.form = ~ (1 | batch) + (1 | cask:batch))
  expect_equal(all_terms$t, bootmm(fit, stat, nsim = 3, seed = 4, use.u = TRUE)$t)
  expect_equal(unname(all_terms$t),
               unname(lme4::bootMer(ref, stat, nsim = 3, seed = 4,
                                    re.form = ~ (1 | batch) + (1 | cask:batch))$t),
               tolerance = 1e-5)
  expect_error(bootmm(fit, stat, nsim = 2, re.form = ~ (1 | plate)),
               "re.form term \\(1 \\| plate\\) uses variable 'plate'")
})

test_that("a '.' in the formula stands for the data's other columns, as in lme4", {
  skip_if_not_installed("lme4")
  # lme4's tests/testthat/test-predict.R
  set.seed(101)
  dd <- data.frame(groups = rep(1:3, each = 100), x = rnorm(300), dv = rnorm(300))
  fit <- lmm(dv ~ . - groups + (1 | groups), data = dd)
  ref <- lmer_full(dv ~ . - groups + (1 | groups), data = dd)
  expect_identical(names(fixef(fit)), c("(Intercept)", "x"))
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-7)
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-10)
  # formula() shows it as written, as lme4's does; predictions for new data
  # build their design from the columns the '.' stood for.
  expect_identical(formula(fit), formula(ref))
  expect_equal(predict(fit, dd[1:5, ]), predict(ref, dd[1:5, ]), tolerance = 1e-7)
  expect_equal(predict(fit, dd[1:5, ], re.form = NA), predict(ref, dd[1:5, ], re.form = NA),
               tolerance = 1e-7)
  # Without "- groups" the '.' takes the grouping variable into the fixed part too.
  all_cols <- lmm(dv ~ . + (1 | groups), data = dd)
  ref_all <- lmer_full(dv ~ . + (1 | groups), data = dd)
  expect_equal(fixef(all_cols), lme4::fixef(ref_all), tolerance = 1e-6)
  # terms() and the tests of the fixed part (lme4's terms() stops at the '.').
  expect_identical(attr(terms(fit), "term.labels"), "x")
  expect_identical(rownames(anova(fit, ddf = "lme4")), "x")
  # A GLMM as well.
  dd$yb <- as.numeric(dd$dv > 0.3)
  gfit <- glmm(yb ~ . - dv - groups + (1 | groups), data = dd, family = binomial)
  gref <- glmer_tight(quote(lme4::glmer(yb ~ . - dv - groups + (1 | groups), data = dd,
                                        family = binomial)), environment())
  expect_equal(fixef(gfit), lme4::fixef(gref), tolerance = 1e-5)
  # Without data there is nothing for '.' to stand for.
  expect_error(lmm(dv ~ . + (1 | groups)), "uses '.'.*needs the 'data' argument")
})
