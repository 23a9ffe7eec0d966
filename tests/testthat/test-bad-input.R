# Bad input, walked through case by case: every one is an ordinary R error whose message names
# the cause (the variable, argument or level) and says what would be valid; never a Rust panic
# message; the caller's data is never modified; and the session fits the next model correctly.

ss <- lme4::sleepstudy
cbpp <- lme4::cbpp

# Expects an error matching every pattern in `...`, and no trace of Rust in the message.
expect_plain_error <- function(expr, ...) {
  msg <- tryCatch({
    force(expr)
    NA_character_
  }, error = function(e) conditionMessage(e))
  expect_false(is.na(msg), label = "an error")
  for (pattern in c(...)) expect_match(msg, pattern, fixed = TRUE)
  expect_no_match(msg, "panick|RUST_BACKTRACE|\\.rs:[0-9]")
}

test_that("malformed formulas say what a formula must look like", {
  expect_plain_error(lmm("Reaction ~ Days + (|Subject)", ss),
                     "could not parse 'formula'", "(1 | group)")
  expect_plain_error(lmm("Reaction ~ Days + (Days|)", ss),
                     "could not parse 'formula'", "(x | group)")
  expect_plain_error(lmm(Reaction ~ Days, ss), "no random-effects term", "(1 | group)")
  expect_plain_error(lmm(~ Days + (1 | Subject), ss), "has no response", "y ~ x + (1 | group)")
  expect_plain_error(lmm(NULL, ss), "'formula' is missing")
  expect_plain_error(glmm("incidence ~ (|herd)", cbpp, family = poisson),
                     "could not parse 'formula'")
})

test_that("unknown variables are named, wherever they appear", {
  expect_plain_error(lmm(Reaction ~ Days + (1 | nosuch), ss),
                     "variable 'nosuch'", "(1 | nosuch)", "not found in 'data'")
  expect_plain_error(lmm(Reaction ~ Days + (nosuch | Subject), ss),
                     "variable 'nosuch'", "(nosuch | Subject)")
  expect_plain_error(lmm(Reaction ~ nosuch + (1 | Subject), ss), "variable 'nosuch'")
  expect_plain_error(glmm(incidence ~ period + (1 | nosuch), cbpp, family = poisson),
                     "variable 'nosuch'")
})

test_that("bad data and responses are named with what is valid", {
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), "notadataframe"),
                     "'data' must be a data frame")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss[0, ]), "'data' has no rows")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject),
                         transform(ss, Reaction = as.character(Reaction))),
                     "response 'Reaction' must be numeric")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), transform(ss, Reaction = Inf)),
                     "response 'Reaction'", "non-finite")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), transform(ss, Reaction = NA_real_)),
                     "no observations left")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss, subset = Days > 100),
                     "no observations left", "'subset'")
  expect_plain_error(lmm(Reaction ~ Days + (Days | Subject), ss[ss$Subject == "308", ]),
                     "grouping factor 'Subject'", "one sampled level")
})

test_that("bad arguments of lmm() are named", {
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss, weights = rep(-1, 180)),
                     "'weights' must not be negative")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss, weights = 1:3),
                     "variable lengths differ", "weights")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss, offset = 1:3),
                     "variable lengths differ", "offset")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss, REML = NA), "'REML'")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss, REML = "yes"), "'REML'")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss, start = c(1, 2)),
                     "'start'", "length 1")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss, control = list(a = 1)),
                     "'control': unknown setting a for lmmControl()")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss, na.action = "na.nothing"),
                     "na.nothing")
  expect_plain_error(lmm(Reaction ~ Days + (1 | Subject), ss, verbose = -1),
                     "'verbose'", "non-negative", "-1")
})

test_that("an optimizer stopped by its evaluation limit is said once, plainly", {
  # (Newton steps fit sleepstudy in 6 evaluations, BOBYQA in 67)
  w <- capture_warnings(
    lmm(Reaction ~ Days + (Days | Subject), ss, control = lmmControl(maxfun = 3)))
  expect_length(w, 1L)
  expect_match(w, "limit of maxfun = 3 deviance evaluations", fixed = TRUE)
  expect_match(w, "raise lmmControl(maxfun = )", fixed = TRUE)
  w <- capture_warnings(
    glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial,
         control = glmmControl(maxfun = 5)))
  expect_length(w, 1L)
  expect_match(w, "raise glmmControl(maxfun = )", fixed = TRUE)
  # The quasi-Newton stage 2 (glmmTMB's families) keeps to the same limit.
  skip_if_not_installed("glmmTMB")
  data(Salamanders, package = "glmmTMB")
  w <- capture_warnings(
    glmm(count ~ mined + (1 | site), family = nbinom2, data = Salamanders,
         control = glmmControl(maxfun = 5)))
  expect_length(w, 1L)
  expect_match(w, "limit of maxfun = 5 deviance evaluations", fixed = TRUE)
})

test_that("GLMM responses and families are checked with the reason", {
  expect_plain_error(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                          family = "nosuch"), "unknown family \"nosuch\"", "binomial")
  expect_plain_error(glmm(incidence ~ period + (1 | herd), cbpp, family = binomial),
                     "response 'incidence'", "outside [0, 1]", "cbind(successes, failures)")
  expect_plain_error(glmm(incidence / size ~ period + (1 | herd), cbpp, family = binomial),
                     "strictly between 0 and 1", "'weights'")
  expect_plain_error(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                          family = poisson), "only for the binomial family")
  expect_plain_error(glmm(-incidence ~ period + (1 | herd), cbpp, family = poisson),
                     "negative values", "counts >= 0")
  expect_plain_error(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                          family = binomial, nAGQ = 3.5), "'nAGQ'", "3.5")
  expect_plain_error(glmm(cbind(incidence, size - incidence) ~ period + (period | herd), cbpp,
                          family = binomial), "(period | herd)", "number of random effects")
  # glmer's shortcut: gaussian with the identity link fits the LMM, with a
  # deprecation warning (before, an error)
  expect_warning(g <- glmm(Reaction ~ Days + (1 | Subject), ss, family = gaussian),
                 "shortcut to lmm\\(\\) is deprecated")
  expect_s3_class(g, "lmm")
})

test_that("bad arguments of the methods are named", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss)
  expect_plain_error(predict(fit, newdata = data.frame(Days = 1, Subject = "999")),
                     "new levels detected", "'Subject'", "999", "allow.new.levels = TRUE")
  expect_plain_error(predict(fit, newdata = data.frame(Subject = "308")),
                     "variable 'Days'", "'newdata'")
  expect_plain_error(predict(fit, newdata = "x"), "'newdata' must be a data frame")
  expect_plain_error(predict(fit, re.form = ~ (1 | nosuch)), "'nosuch'")
  expect_plain_error(predict(fit, type = "nosuch"), "'type' should be one of", "\"nosuch\"")
  expect_plain_error(simulate(fit, nsim = -1), "'nsim'")
  expect_plain_error(confint(fit, parm = "nosuch"), "'parm'", "'nosuch'", ".sig01")
  expect_plain_error(confint(fit, level = 2), "'level'")
  expect_plain_error(ranef(fit, condVar = "yes"), "'condVar' must be TRUE or FALSE")
  expect_plain_error(summary(fit, ddf = "nosuch"), "'ddf' should be one of", "\"nosuch\"")
  expect_plain_error(fixef(fit, add.dropped = NA), "'add.dropped' must be TRUE or FALSE")
  expect_plain_error(VarCorr(fit, sigma = -1), "'sigma'", "non-negative")
  expect_plain_error(update(fit, . ~ . + nosuch), "variable 'nosuch'")
})

test_that("the caller's data are never modified, and the session fits correctly afterwards", {
  d <- ss
  d$Subject <- as.character(d$Subject)
  d$w <- 1
  before <- d
  fit <- lmm(Reaction ~ Days + (Days | Subject), d, weights = w)
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
               family = binomial)
  expect_identical(d, before)
  expect_identical(cbpp, lme4::cbpp)
  # after all the errors above, a fit still equals lme4's
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), d, weights = w)
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-6)
  expect_equal(REMLcrit(fit), lme4::REMLcrit(ref), tolerance = 1e-8)
  gref <- glmer_tight(quote(lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                         data = cbpp, family = binomial)), environment())
  expect_equal(unname(gfit$theta), unname(lme4::getME(gref, "theta")), tolerance = 1e-4)
})

test_that("a Rust panic reaches R as an ordinary error and the session goes on", {
  err <- tryCatch(mixedrs:::panic_probe_rs(), error = function(e) e)
  expect_s3_class(err, "error")
  expect_match(conditionMessage(err), "deliberate panic")
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  expect_equal(REMLcrit(fit), lme4::REMLcrit(ref), tolerance = 1e-8)
})

test_that("`obj$name` in the formula and the arguments is a variable lookup of obj, as lme4's", {
  skip_if_not_installed("lme4")
  gt <- lme4::grouseticks
  pois <- glmm(TICKS ~ YEAR + (1 | BROOD), gt, family = poisson)
  ref <- suppressWarnings(lme4::glmer(TICKS ~ YEAR + (1 | BROOD), gt, family = poisson,
                                      etastart = pois$eta))
  # (before, 'eta' was looked for as a variable of its own and not found)
  fit <- glmm(TICKS ~ YEAR + (1 | BROOD), gt, family = poisson, etastart = pois$eta)
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-6)
  lst <- list(h = log(gt$HEIGHT), w = seq(0.5, 1.5, length.out = nrow(gt)))
  fit <- lmm(log(TICKS + 1) ~ lst$h + (1 | BROOD), gt, weights = lst$w)
  ref <- lme4::lmer(log(TICKS + 1) ~ lst$h + (1 | BROOD), gt, weights = lst$w,
                    control = lmer_full_control())
  expect_identical(names(fixef(fit)), names(lme4::fixef(ref)))
  expect_equal(unname(fixef(fit)), unname(lme4::fixef(ref)), tolerance = 1e-6)
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-8)
  # an element of a missing object is still named
  expect_plain_error(lmm(Reaction ~ nosuch$x + (1 | Subject), ss), "variable 'nosuch'")
})

test_that("a constant response stops naming it (lme4 returns a fit with REML -Inf)", {
  dat <- data.frame(y = 0, fac = factor(rep(1:3, 10)), grp = factor(rep(1:5, each = 6)))
  expect_error(lmm(y ~ fac + (1 | grp), dat),
               "the response is constant \\(every value is 0\\): no variance is left")
})
