# predict() for "lmm" and "glmm" fits, side by side with lme4's
# predict.merMod. Tolerances: 1e-5 relative for predictions (the fits agree
# to ~1e-7 for these LMMs, lme4's run to full precision; GLMM references are
# glmer fits run to their optimum, see helper-glmm.R), 1e-8 to 1e-12 for
# identities computed from our own estimates (se.fit against X V X',
# random.only against Z b, newparams at the estimates against the fit).

skip_if_not_installed("lme4")

# Continuous, factor and character covariates, an offset and two crossed
# grouping factors.
covariate_data <- function() {
  set.seed(11)
  d <- data.frame(g = factor(rep(letters[1:12], each = 10)),
                  h = factor(rep(1:5, 24)),
                  x = stats::runif(120, 1, 5), z = stats::rnorm(120, 10, 3),
                  f = factor(sample(c("lo", "mid", "hi"), 120, TRUE)),
                  ch = sample(c("p", "q", "r"), 120, TRUE),
                  o = stats::runif(120))
  d$y <- 2 + d$x - 0.3 * d$x^2 + 0.2 * d$z + as.integer(d$f) +
    stats::rnorm(12)[d$g] + stats::rnorm(5)[d$h] + d$o + stats::rnorm(120, sd = 0.5)
  d
}

# lme4's fit run to full precision (its default optimizer stops ~1e-5 short);
# its singular-fit message is silenced.
lmer_full <- function(formula, data, ...) {
  suppressMessages(lme4::lmer(
    formula, data, ...,
    control = lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12))))
}

sleep_pair <- function(formula = Reaction ~ Days + (Days | Subject), data = lme4::sleepstudy, ...) {
  list(fit = lmm(formula, data, ...), ref = lmer_full(formula, data, ...))
}

test_that("lmm predictions for new data match lme4 for every re.form", {
  p <- sleep_pair()
  nd <- data.frame(Days = c(0, 5, 9, 2, 7), Subject = c("308", "309", "310", "372", "308"))
  expect_equal(predict(p$fit, nd), predict(p$ref, nd), tolerance = 1e-5)
  expect_named(predict(p$fit, nd), as.character(1:5))
  for (rf in list(NA, ~0, ~ (1 | Subject), ~ (0 + Days | Subject), ~ (Days | Subject))) {
    expect_equal(predict(p$fit, nd, re.form = rf), predict(p$ref, nd, re.form = rf),
                 tolerance = 1e-5)
  }
  # type is ignored for linear mixed models
  expect_identical(predict(p$fit, nd, type = "response"), predict(p$fit, nd))
  # the caller's data frame is left as it was
  nd0 <- nd
  predict(p$fit, nd, allow.new.levels = TRUE)
  expect_identical(nd, nd0)
})

test_that("predictions for the fitted data match lme4 and fitted()", {
  p <- sleep_pair()
  expect_equal(predict(p$fit), fitted(p$fit))
  expect_equal(predict(p$fit), predict(p$ref), tolerance = 1e-5)
  for (rf in list(NA, ~0, ~ (1 | Subject), ~ (Days | Subject))) {
    expect_equal(predict(p$fit, re.form = rf), predict(p$ref, re.form = rf),
                 tolerance = 1e-5)
  }
  # the data themselves as newdata give the fitted values
  expect_equal(predict(p$fit, lme4::sleepstudy), fitted(p$fit), tolerance = 1e-10)
})

test_that("poly(), scale(), factors, character variables and offset() are rebuilt as lme4 does", {
  d <- covariate_data()
  form <- y ~ poly(x, 2) + scale(z) + f + ch + offset(o) + (1 | g) + (1 | h)
  fit <- lmm(form, d)
  ref <- lme4::lmer(form, d)
  # a few rows: poly() and scale() must use the fitting data's constants,
  # and the factors a subset of their levels
  nd <- d[c(3, 15, 27, 99, 100), ]
  nd$f <- factor(as.character(nd$f))
  expect_lt(nlevels(nd$f), 3L)
  expect_equal(predict(fit, nd), predict(ref, nd), tolerance = 1e-5)
  expect_equal(predict(fit, nd, re.form = NA), predict(ref, nd, re.form = NA), tolerance = 1e-5)
  expect_equal(predict(fit, nd, re.form = ~ (1 | h)), predict(ref, nd, re.form = ~ (1 | h)),
               tolerance = 1e-5)
  # a term written (~1 | h), which R parses as ~(1 | h), is read as (1 | h), as lme4 does
  expect_equal(predict(fit, nd, re.form = ~ (1 | g) + (~1 | h)),
               predict(ref, nd, re.form = ~ (1 | g) + (~1 | h)), tolerance = 1e-5)
  expect_equal(predict(fit, nd, re.form = ~ (~1 | h)), predict(ref, nd, re.form = ~ (1 | h)),
               tolerance = 1e-5)
  one <- data.frame(x = 2, z = 11, f = "mid", ch = "q", o = 0.5, g = "a", h = "3")
  expect_equal(predict(fit, one), predict(ref, one), tolerance = 1e-5)
  expect_equal(predict(fit, d), fitted(fit), tolerance = 1e-10)

  # a rank-deficient X (scale(x) is collinear with poly(x, 2)): the dropped
  # column is dropped for new data too
  form2 <- y ~ poly(x, 2) + scale(x) + f + (1 | g)
  fit2 <- suppressMessages(lmm(form2, d))
  ref2 <- suppressMessages(lme4::lmer(form2, d))
  expect_equal(predict(fit2, nd), predict(ref2, nd), tolerance = 1e-5)
})

test_that("nested and crossed terms, and a subset of them, match lme4", {
  d <- covariate_data()
  form <- y ~ x + (1 | g/h) + (0 + x | h)
  fit <- lmm(form, d)
  ref <- lme4::lmer(form, d)
  nd <- d[c(1, 22, 57, 84, 120), ]
  expect_equal(predict(fit, nd), predict(ref, nd), tolerance = 1e-5)
  for (rf in list(~ (1 | h:g), ~ (1 | g/h), ~ (1 | g) + (0 + x | h), NA)) {
    expect_equal(predict(fit, nd, re.form = rf), predict(ref, nd, re.form = rf),
                 tolerance = 1e-5)
    expect_equal(predict(fit, re.form = rf), predict(ref, re.form = rf), tolerance = 1e-5)
  }
  # factor-valued random slopes
  form3 <- y ~ x + (f | g)
  fit3 <- lmm(form3, d)
  ref3 <- suppressMessages(lme4::lmer(form3, d))
  expect_equal(predict(fit3, nd), predict(ref3, nd), tolerance = 1e-3)
  expect_equal(predict(fit3, nd), drop(model.matrix(fit3)[c(1, 22, 57, 84, 120), ] %*% fixef(fit3)) +
                 vapply(c(1, 22, 57, 84, 120), function(i) {
                   r <- unlist(ranef(fit3)$g[as.character(d$g[i]), ])
                   sum(r * c(1, d$f[i] == "lo", d$f[i] == "mid"))
                 }, 0), tolerance = 1e-10, ignore_attr = TRUE)
  expect_error(predict(fit3, transform(nd, f = "zz")), "factor 'f' has new level.*'zz'")
})

test_that("offsets from offset() terms and the offset argument are evaluated in newdata", {
  d <- covariate_data()
  fit <- lmm(y ~ x + (1 | g), d, offset = o)
  nd <- d[c(2, 40, 77), ]
  expect_equal(predict(fit, d), fitted(fit), tolerance = 1e-10)
  X <- cbind(1, nd$x)
  expect_equal(unname(predict(fit, nd, re.form = NA)), drop(X %*% fixef(fit)) + nd$o,
               tolerance = 1e-12)
  # both kinds of offset at once
  fit2 <- lmm(y ~ x + offset(2 * o) + (1 | g), d, offset = log(z))
  expect_equal(predict(fit2, d), fitted(fit2), tolerance = 1e-10)
  expect_equal(unname(predict(fit2, nd, re.form = NA)),
               drop(X %*% fixef(fit2)) + 2 * nd$o + log(nd$z), tolerance = 1e-12)
  expect_error(predict(fit2, nd[c("x", "g", "o")]), "variable 'z' needed by")
})

test_that("glmm predictions match lme4 on the link and response scales", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = cbpp)))
  nd <- data.frame(period = c("1", "4", "2", "3"), herd = c("3", "7", "15", "1"))
  for (type in c("link", "response")) {
    expect_equal(predict(pair$fit, nd, type = type), predict(pair$ref, nd, type = type),
                 tolerance = 1e-5)
    expect_equal(predict(pair$fit, nd, type = type, re.form = NA),
                 predict(pair$ref, nd, type = type, re.form = NA), tolerance = 1e-5)
    expect_equal(predict(pair$fit, type = type, re.form = NA),
                 predict(pair$ref, type = type, re.form = NA), tolerance = 1e-5)
  }
  expect_equal(predict(pair$fit, cbpp, type = "response"), fitted(pair$fit), tolerance = 1e-8)
  expect_error(predict(pair$fit, nd, type = "terms"), "'type' should be one of")
  expect_error(predict(pair$fit, nd, foo = 1), "predict\\(\\): unused argument foo = 1")

  # Poisson with an offset() term
  po <- fit_glmm_pair(quote(glmm(incidence ~ period + offset(log(size)) + (1 | herd),
                                 family = poisson, data = cbpp)))
  nd2 <- cbpp[c(1, 9, 30, 55), ]
  nd2$size <- nd2$size * 2
  for (type in c("link", "response")) {
    expect_equal(predict(po$fit, nd2, type = type), predict(po$ref, nd2, type = type),
                 tolerance = 1e-5)
  }
})

test_that("new levels are an error naming the factor and level, or population level", {
  p <- sleep_pair()
  nd <- data.frame(Days = c(1, 2, 3, 4), Subject = c("308", "999", "998", "309"))
  expect_error(predict(p$fit, nd),
               "new levels detected in newdata: 999, 998 \\(grouping factor 'Subject'\\).*allow.new.levels = TRUE")
  expect_equal(predict(p$fit, nd, allow.new.levels = TRUE),
               predict(p$ref, nd, allow.new.levels = TRUE), tolerance = 1e-5)
  pop <- predict(p$fit, nd, re.form = NA)
  expect_equal(predict(p$fit, nd, allow.new.levels = TRUE)[2:3], pop[2:3])
  # population-level predictions need no grouping factor at all
  expect_equal(predict(p$fit, nd, re.form = NA), predict(p$ref, nd, re.form = NA),
               tolerance = 1e-5)

  # missing grouping values: an error, or population level, as lme4
  nd_na <- data.frame(Days = c(1, 2, 3), Subject = factor(c("308", NA, "309")))
  expect_error(predict(p$fit, nd_na), "grouping factor 'Subject' has missing values.*row 2")
  expect_equal(predict(p$fit, nd_na, allow.new.levels = TRUE),
               predict(p$ref, nd_na, allow.new.levels = TRUE), tolerance = 1e-5)
  expect_error(lme4_pred <- predict(p$ref, nd_na), "NAs are not allowed")

  # new levels of an interaction
  d <- covariate_data()
  fit <- lmm(y ~ x + (1 | g:h), d)
  ref <- lme4::lmer(y ~ x + (1 | g:h), d)
  nd2 <- data.frame(x = c(2, 3), g = c("a", "a"), h = c("1", "9"))
  expect_error(predict(fit, nd2), "new levels detected in newdata: a:9 \\(grouping factor 'g:h'\\)")
  expect_equal(predict(fit, nd2, allow.new.levels = TRUE),
               predict(ref, nd2, allow.new.levels = TRUE), tolerance = 1e-5)
})

test_that("se.fit gives sqrt(diag(X V X')) for population-level predictions", {
  p <- sleep_pair()
  nd <- data.frame(Days = c(0, 4.5, 9, 12), Subject = "308")
  res <- predict(p$fit, nd, re.form = NA, se.fit = TRUE)
  expect_named(res, c("fit", "se.fit"))
  X <- cbind(1, nd$Days)
  V <- vcov(p$fit)
  expect_equal(unname(res$se.fit), sqrt(diag(X %*% V %*% t(X))), tolerance = 1e-10)
  expect_equal(res$fit, predict(p$fit, nd, re.form = NA))
  expect_named(res$se.fit, names(res$fit))
  expect_equal(predict(p$fit, re.form = ~0, se.fit = TRUE)$se.fit,
               stats::setNames(sqrt(rowSums((model.matrix(p$fit) %*% V) * model.matrix(p$fit))),
                               rownames(lme4::sleepstudy)), tolerance = 1e-10)
  # With random effects: given (values checked in test-predict-se.R).
  with_re <- predict(p$fit, nd, se.fit = TRUE)
  expect_named(with_re$se.fit, names(res$fit))
  expect_true(all(is.finite(with_re$se.fit) & with_re$se.fit > 0))

  # without between-group variation the fit is singular and equals lm(): the
  # standard errors are predict.lm()'s
  set.seed(3)
  d <- data.frame(g = factor(rep(1:10, each = 10)), x = stats::runif(100))
  d$y <- 1 + 2 * d$x + stats::rnorm(100)
  fit0 <- suppressWarnings(suppressMessages(lmm(y ~ x + (1 | g), d)))
  skip_if_not(isSingular(fit0))
  lfit <- stats::lm(y ~ x, d)
  nd0 <- data.frame(x = c(0, 0.5, 2))
  ours <- predict(fit0, nd0, re.form = NA, se.fit = TRUE)
  theirs <- stats::predict(lfit, nd0, se.fit = TRUE)
  expect_equal(ours$fit, theirs$fit, tolerance = 1e-5)
  expect_equal(ours$se.fit, theirs$se.fit, tolerance = 1e-4)

  # GLMM: link scale, and the delta method on the response scale
  skip_if_no_glmm()
  g <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
            family = binomial, data = lme4::cbpp)
  ndg <- data.frame(period = factor(1:4))
  link <- predict(g, ndg, re.form = NA, se.fit = TRUE)
  Xg <- model.matrix(~period, ndg)
  expect_equal(unname(link$se.fit), unname(sqrt(diag(Xg %*% vcov(g) %*% t(Xg)))),
               tolerance = 1e-10)
  resp <- predict(g, ndg, re.form = NA, type = "response", se.fit = TRUE)
  expect_equal(resp$fit, stats::plogis(link$fit))
  expect_equal(resp$se.fit, link$se.fit * stats::dlogis(link$fit), tolerance = 1e-10)
})

test_that("na.action on newdata and on the fit's omitted rows behaves as lme4", {
  p <- sleep_pair()
  nd <- data.frame(Days = c(1, NA, 3), Subject = c("308", "309", "310"))
  for (na in list(stats::na.pass, stats::na.omit, stats::na.exclude)) {
    expect_equal(predict(p$fit, nd, na.action = na), predict(p$ref, nd, na.action = na),
                 tolerance = 1e-5)
  }
  expect_length(predict(p$fit, nd, na.action = "na.omit"), 2L)
  se <- predict(p$fit, nd, re.form = NA, se.fit = TRUE, na.action = na.exclude)
  expect_length(se$se.fit, 3L)
  expect_true(is.na(se$se.fit[2]) && is.na(se$fit[2]))

  ss <- lme4::sleepstudy
  ss$Reaction[c(3, 50)] <- NA
  ss$Days2 <- ss$Days
  ss$Days2[7] <- NA
  fit <- lmm(Reaction ~ Days2 + (Days | Subject), ss, na.action = na.exclude)
  ref <- lme4::lmer(Reaction ~ Days2 + (Days | Subject), ss, na.action = na.exclude)
  expect_length(predict(fit), 180L)
  expect_equal(predict(fit), predict(ref), tolerance = 1e-5)
  expect_equal(predict(fit, re.form = NA), predict(ref, re.form = NA), tolerance = 1e-5)
  # (lme4's result also carries the na.omit() attribute of its fitted values)
  expect_equal(predict(fit, na.action = na.omit), predict(ref, na.action = na.omit),
               tolerance = 1e-5, ignore_attr = "na.action")
  expect_length(predict(fit, na.action = na.omit), 177L)
  expect_equal(predict(fit, ss), predict(ref, ss), tolerance = 1e-5)
  fit_omit <- lmm(Reaction ~ Days2 + (Days | Subject), ss)
  ref_omit <- lme4::lmer(Reaction ~ Days2 + (Days | Subject), ss)
  expect_length(predict(fit_omit), 177L)
  expect_equal(predict(fit_omit, na.action = na.exclude),
               predict(ref_omit, na.action = na.exclude), tolerance = 1e-5)
})

test_that("bad inputs give errors naming the cause", {
  p <- sleep_pair()
  fit <- p$fit
  expect_error(predict(fit, data.frame(Subject = "308")),
               "variable 'Days' needed by the fixed-effects part of the model not found in 'newdata'")
  expect_error(predict(fit, data.frame(Days = 1)),
               "variable 'Subject' needed by random-effects term \\(Days \\| Subject\\).*re.form = NA")
  expect_equal(unname(predict(fit, data.frame(Days = 1), re.form = NA)),
               sum(fixef(fit)), tolerance = 1e-12)
  expect_error(predict(fit, re.form = ~ (1 | foo)), "uses variable 'foo', which is not a variable of the model")
  expect_error(predict(fit, re.form = ~ (1 | Days)), "'Days' is not a grouping factor of the model")
  fit_int <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  expect_error(predict(fit_int, re.form = ~ (Days | Subject)),
               "random effect 'Days' that the model does not have for grouping factor 'Subject'")
  expect_error(predict(fit, re.form = y ~ (1 | Subject)), "one-sided formula")
  expect_error(predict(fit, re.form = "Subject"), "'re.form' must be NULL")
  expect_error(predict(fit, re.form = ~ Days), "has no random-effects term")
  expect_error(predict(fit, re.form = ~ Days + (1 | Subject)), "only random-effects terms")
  expect_error(predict(fit, newdata = 1:3), "'newdata' must be a data frame")
  expect_error(predict(fit, allow.new.levels = NA), "'allow.new.levels' must be TRUE or FALSE")
  expect_error(predict(fit, se.fit = "yes"), "'se.fit' must be TRUE or FALSE")
  expect_error(predict(fit, na.action = 3), "'na.action' must be a function")
  expect_error(predict(fit, foo = 1), "predict\\(\\): unused argument foo = 1")
  # lme4's old names of re.form are taken with lme4's deprecation warning
  # (test-lme4-suite-gaps.R compares with lme4); other lme4 arguments that
  # ours does not take are errors saying so
  expect_warning(predict(fit, REform = NA), "'REform' is deprecated")
  expect_error(predict(fit, terms = "Days"), "'terms' is not implemented")
})

# --- random.only and newparams ---------------------------------------------

test_that("random.only gives lme4's random-effects part, for the data and newdata", {
  p <- sleep_pair()
  nd <- data.frame(Days = c(0, 5, 9, 2, 7), Subject = c("308", "309", "310", "new", "308"))
  for (rf in list(NULL, ~ (1 | Subject), ~ (0 + Days | Subject))) {
    ours <- predict(p$fit, random.only = TRUE, re.form = rf)
    expect_equal(ours, predict(p$ref, random.only = TRUE, re.form = rf), tolerance = 1e-5)
    # it is what the full prediction adds to the population-level one
    expect_equal(ours, predict(p$fit, re.form = rf) - predict(p$fit, re.form = NA),
                 tolerance = 1e-8)
    expect_equal(predict(p$fit, nd, random.only = TRUE, re.form = rf, allow.new.levels = TRUE),
                 predict(p$ref, nd, random.only = TRUE, re.form = rf, allow.new.levels = TRUE),
                 tolerance = 1e-5)
  }
  # Z b itself, from the conditional modes
  b <- ranef(p$fit)$Subject
  rows <- match(as.character(lme4::sleepstudy$Subject), rownames(b))
  expect_equal(unname(predict(p$fit, random.only = TRUE)),
               b[rows, 1] + b[rows, 2] * lme4::sleepstudy$Days, tolerance = 1e-10)
  # no random effects: zeros, as lme4 (whose vector has no names)
  expect_equal(predict(p$fit, random.only = TRUE, re.form = NA),
               predict(p$ref, random.only = TRUE, re.form = NA), ignore_attr = TRUE)
  expect_true(all(predict(p$fit, nd, random.only = TRUE, re.form = NA) == 0))
  # the fixed-effects variables are not needed with na.pass
  expect_equal(predict(p$fit, nd["Subject"], random.only = TRUE, re.form = ~ (1 | Subject),
                       allow.new.levels = TRUE),
               predict(p$ref, nd, random.only = TRUE, re.form = ~ (1 | Subject),
                       allow.new.levels = TRUE), tolerance = 1e-5)
})

test_that("random.only leaves out the offset and respects na.action", {
  d <- covariate_data()
  form <- y ~ x + f + offset(o) + (1 | g) + (x | h)
  fit <- lmm(form, d)
  ref <- lmer_full(form, d)
  nd <- d[c(3, 17, 40, 88, 101), ]
  expect_equal(predict(fit, random.only = TRUE), predict(ref, random.only = TRUE),
               tolerance = 1e-5)
  expect_equal(predict(fit, nd, random.only = TRUE), predict(ref, nd, random.only = TRUE),
               tolerance = 1e-5)
  expect_equal(predict(fit, nd, random.only = TRUE, re.form = ~ (x | h)),
               predict(ref, nd, random.only = TRUE, re.form = ~ (x | h)), tolerance = 1e-5)
  # rows with missing fixed-effects variables: na.omit drops them, na.exclude
  # pads (lme4 1.1-31 recycles the shorter vector here, with a warning)
  nd$f[2] <- NA
  full <- predict(fit, nd, random.only = TRUE)
  expect_equal(predict(fit, nd, random.only = TRUE, na.action = na.omit), full[-2])
  expect_equal(predict(fit, nd, random.only = TRUE, na.action = na.exclude),
               replace(full, 2, NA))
  # a missing grouping factor is reported by the row of newdata it is on,
  # also after na.omit has left out an earlier row
  nd$g[4] <- NA
  expect_error(predict(fit, nd, na.action = na.omit),
               "grouping factor 'g' has missing values in newdata \\(row 88\\)")
  expect_error(predict(fit, random.only = NA), "'random.only' must be TRUE or FALSE")
  # no fixed part and no random-effects term: nothing varies
  expect_true(all(predict(fit, random.only = TRUE, re.form = NA, se.fit = TRUE)$se.fit == 0))
})

test_that("newparams predicts at other parameters as lme4 does", {
  p <- sleep_pair()
  nd <- data.frame(Days = c(0, 5, 9, 2, 7), Subject = c("308", "309", "310", "new", "308"))
  theta <- p$fit$theta * c(1.5, 0.5, 2)
  beta <- lme4::fixef(p$ref) + c(3, -1)
  np <- list(beta = beta, theta = theta, sigma = 20)
  np_ref <- list(beta = beta, theta = setNames(theta, names(lme4::getME(p$ref, "theta"))),
                 sigma = 20)
  for (rf in list(NULL, NA, ~ (1 | Subject))) {
    ours <- predict(p$fit, newparams = np, re.form = rf)
    expect_equal(ours, predict(p$ref, newparams = np_ref, re.form = rf), tolerance = 1e-5)
    expect_equal(predict(p$fit, nd, newparams = np, re.form = rf, allow.new.levels = TRUE),
                 predict(p$ref, nd, newparams = np_ref, re.form = rf, allow.new.levels = TRUE),
                 tolerance = 1e-5)
    # the parameters change the predictions (else this test could not fail)
    expect_gt(max(abs(ours - predict(p$fit, re.form = rf))), 1)
  }
  expect_equal(predict(p$fit, newparams = np, random.only = TRUE),
               predict(p$ref, newparams = np_ref, random.only = TRUE), tolerance = 1e-5)
  # population level: X beta exactly
  X <- model.matrix(p$fit)
  expect_equal(unname(predict(p$fit, newparams = list(beta = beta, theta = theta), re.form = NA)),
               unname(drop(X %*% beta)), tolerance = 1e-12)
  # the fit's own parameters give its own predictions
  own <- list(beta = fixef(p$fit), theta = p$fit$theta, sigma = sigma(p$fit))
  expect_equal(predict(p$fit, newparams = own), predict(p$fit), tolerance = 1e-8)
  expect_equal(predict(p$fit, nd, newparams = own, allow.new.levels = TRUE),
               predict(p$fit, nd, allow.new.levels = TRUE), tolerance = 1e-8)
  # names are matched, whatever their order; unnamed vectors are in the model's order
  shuffled <- list(theta = rev(theta), beta = rev(beta))
  expect_equal(predict(p$fit, newparams = shuffled),
               predict(p$fit, newparams = list(theta = unname(theta), beta = unname(beta))),
               tolerance = 1e-12)
})

test_that("newparams with two terms and for glmm fits match lme4", {
  pen <- lme4::Penicillin
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen)
  ref <- lmer_full(diameter ~ 1 + (1 | plate) + (1 | sample), pen)
  np <- list(beta = 22, theta = c(0.5, 3), sigma = 1)
  expect_equal(predict(fit, newparams = np), suppressMessages(predict(ref, newparams = np)),
               tolerance = 1e-5)
  expect_equal(predict(fit, newparams = np, re.form = ~ (1 | sample)),
               suppressMessages(predict(ref, newparams = np, re.form = ~ (1 | sample))),
               tolerance = 1e-5)

  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = cbpp)))
  npg <- list(beta = c(-1, -0.5, -1, -1.2), theta = 0.3)
  nd <- data.frame(period = c("1", "4", "2", "3"), herd = c("3", "7", "15", "1"))
  for (type in c("link", "response")) {
    expect_equal(predict(pair$fit, newparams = npg, type = type),
                 suppressMessages(predict(pair$ref, newparams = npg, type = type)),
                 tolerance = 1e-5)
    expect_equal(predict(pair$fit, nd, newparams = npg, type = type),
                 suppressMessages(predict(pair$ref, nd, newparams = npg, type = type)),
                 tolerance = 1e-5)
    expect_equal(predict(pair$fit, random.only = TRUE, type = type),
                 predict(pair$ref, random.only = TRUE, type = type), tolerance = 1e-5)
  }
  # binomial: no scale parameter
  expect_error(predict(pair$fit, newparams = c(npg, sigma = 1)),
               "'newparams' has element 'sigma'.*no scale parameter")
})

test_that("bad newparams are errors naming the cause; missing ones warn", {
  p <- sleep_pair()
  fit <- p$fit
  expect_error(predict(fit, newparams = c(beta = 1)), "'newparams' must be a list")
  expect_error(predict(fit, newparams = list(1, 2)), "'newparams' must be a list")
  expect_error(predict(fit, newparams = list(beta = 1:2, Beta = 1)),
               "'newparams' has element 'Beta'")
  expect_error(predict(fit, newparams = list(beta = 1:3, theta = fit$theta)),
               "'newparams\\$beta' must be 2 finite numbers")
  expect_error(predict(fit, newparams = list(beta = c(1, NA), theta = fit$theta)),
               "'newparams\\$beta' must be 2 finite numbers")
  expect_error(predict(fit, newparams = list(beta = c(a = 1, b = 2), theta = fit$theta)),
               "the names of 'newparams\\$beta' \\(a, b\\) are not the model's")
  expect_error(predict(fit, newparams = list(beta = fixef(fit), theta = c(-1, 0, 1))),
               "below its lower bound for 'Subject.\\(Intercept\\)'")
  expect_error(predict(fit, newparams = list(beta = fixef(fit), theta = fit$theta, sigma = -1)),
               "'newparams\\$sigma' must be a single positive number")
  expect_error(predict(fit, newparams = list(beta = fixef(fit)), re.form = NA, se.fit = TRUE),
               "se.fit = TRUE is not available with newparams")
  # a parameter the prediction needs but newparams leaves out: the fit's, with a warning
  expect_warning(out <- predict(fit, newparams = list(theta = fit$theta)),
                 "'newparams' has no 'beta': the fit's estimates are used for it")
  expect_equal(out, predict(fit), tolerance = 1e-8)
  expect_warning(predict(fit, newparams = list(beta = fixef(fit))), "has no 'theta'")
  # not needed: no warning
  expect_no_warning(predict(fit, newparams = list(beta = fixef(fit)), re.form = NA))
  expect_no_warning(predict(fit, newparams = list(theta = fit$theta), random.only = TRUE))
})
