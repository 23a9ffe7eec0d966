# The families with a dispersion parameter (nbinom2, nbinom1, beta_family,
# betabinomial) side by side with glmmTMB's objects; the normalisation of
# the `family` argument; the response checks of these families; which
# families may carry zero-inflation or a dispersion model.

tmb_family <- function(name, ...) getExportedValue("glmmTMB", name)(...)

test_that("the family objects compute what glmmTMB's compute", {
  skip_if_not_installed("glmmTMB")
  mu_count <- c(0.2, 1, 3.5, 40)
  mu_prop <- c(0.01, 0.3, 0.5, 0.97)
  eta <- c(-2, -0.1, 0.4, 3)
  cases <- list(
    list("nbinom2", "log", mu_count), list("nbinom2", "sqrt", mu_count),
    list("nbinom2", "identity", mu_count), list("nbinom1", "log", mu_count),
    list("nbinom1", "sqrt", mu_count), list("beta_family", "logit", mu_prop),
    list("beta_family", "probit", mu_prop), list("beta_family", "cloglog", mu_prop),
    list("betabinomial", "logit", mu_prop), list("betabinomial", "cloglog", mu_prop))
  for (case in cases) {
    name <- case[[1]]
    link <- case[[2]]
    mu <- case[[3]]
    ours <- get(name, envir = asNamespace("mixedrs"))(link = link)
    theirs <- tmb_family(name, link = link)
    label <- paste(name, link)
    expect_s3_class(ours, "family")
    expect_identical(ours$family, theirs$family, label = label)
    expect_identical(ours$link, link, label = label)
    # Identical link functions: both come from stats::make.link().
    expect_identical(ours$linkfun(mu), theirs$linkfun(mu), label = label)
    expect_identical(ours$linkinv(eta), theirs$linkinv(eta), label = label)
    expect_identical(ours$mu.eta(eta), theirs$mu.eta(eta), label = label)
    expect_identical(ours$valideta(eta), theirs$valideta(eta), label = label)
    # Variance functions with glmmTMB's argument names and values.
    expect_identical(names(formals(ours$variance)), names(formals(theirs$variance)),
                     label = label)
    disp <- c(0.7, 2, 5, 11)
    vargs <- switch(name, nbinom2 = list(mu = mu, theta = disp),
                    nbinom1 = list(mu = mu, alpha = disp),
                    beta_family = list(mu = mu),
                    betabinomial = list(mu = mu, phi = disp))
    expect_equal(do.call(ours$variance, vargs), do.call(theirs$variance, vargs),
                 tolerance = 1e-15, label = label)
  }
  # The values themselves: mu (1 + mu / theta), mu (1 + alpha), mu (1 - mu).
  expect_equal(nbinom2()$variance(mu = 3, theta = 2), 7.5)
  expect_equal(nbinom1()$variance(mu = 4, alpha = 0.5), 6)
  expect_equal(beta_family()$variance(0.25), 0.1875)
  # The negative binomial unit deviance is MASS's.
  skip_if_not_installed("MASS")
  y <- c(0, 1, 4, 12)
  expect_equal(nbinom2()$dev.resids(y, mu_count, rep(1, 4), theta = 1.7),
               MASS::negative.binomial(1.7)$dev.resids(y, mu_count, rep(1, 4)),
               tolerance = 1e-14)
})

test_that("variance functions need their dispersion and links are checked", {
  expect_error(nbinom2()$variance(3), "nbinom2 family needs the dispersion parameter 'theta'")
  expect_error(nbinom1()$variance(3), "nbinom1 family needs the dispersion parameter 'alpha'")
  expect_error(nbinom2(link = "logit"),
               "link 'logit' is not supported for the nbinom2 family; use one of: \"log\", \"sqrt\", \"identity\"")
  expect_error(nbinom1(link = "inverse"), "link 'inverse' is not supported for the nbinom1 family")
  expect_error(beta_family(link = "log"),
               "link 'log' is not supported for the beta_family family; use one of: \"logit\", \"probit\", \"cloglog\"")
  expect_error(betabinomial(link = "cauchit"), "not supported for the betabinomial family")
  expect_error(nbinom2(link = c("log", "sqrt")), "'link' of nbinom2\\(\\) must be a single string")
  expect_error(beta_family(link = 1), "'link' of beta_family\\(\\) must be a single string")
})

test_that("extended_family() takes our and glmmTMB's objects, functions and names", {
  check <- function(fam, name, link) {
    expect_s3_class(fam, "family")
    expect_identical(fam$family, name)
    expect_identical(fam$link, link)
    # normalised to our object (a variance function that needs theta, ...)
    expect_identical(names(fam), names(get(switch(name, beta = "beta_family", name))()))
  }
  # names
  check(extended_family("nbinom2"), "nbinom2", "log")
  check(extended_family("nbinom1"), "nbinom1", "log")
  check(extended_family("beta_family"), "beta", "logit")
  check(extended_family("beta"), "beta", "logit")
  check(extended_family("betabinomial"), "betabinomial", "logit")
  # our functions and objects
  check(extended_family(nbinom2), "nbinom2", "log")
  check(extended_family(beta_family), "beta", "logit")
  check(extended_family(nbinom1(link = "sqrt")), "nbinom1", "sqrt")
  check(extended_family(betabinomial(link = "probit")), "betabinomial", "probit")
  # glmmTMB's functions and objects
  skip_if_not_installed("glmmTMB")
  for (name in c("nbinom2", "nbinom1", "beta_family", "betabinomial")) {
    fam_name <- if (name == "beta_family") "beta" else name
    default <- if (fam_name %in% c("nbinom2", "nbinom1")) "log" else "logit"
    check(extended_family(getExportedValue("glmmTMB", name)), fam_name, default)
    check(extended_family(tmb_family(name)), fam_name, default)
  }
  check(extended_family(tmb_family("nbinom2", link = "sqrt")), "nbinom2", "sqrt")
  check(extended_family(tmb_family("beta_family", link = "cloglog")), "beta", "cloglog")
  # a glmmTMB object with a link glmm() does not fit
  expect_error(extended_family(tmb_family("nbinom2", link = "inverse")),
               "link 'inverse' is not supported for the nbinom2 family")
  # families for resolve_family(): NULL
  expect_null(extended_family("poisson"))
  expect_null(extended_family(binomial))
  expect_null(extended_family(Gamma(link = "log")))
  expect_null(extended_family(poisson()))
  expect_null(extended_family(function() poisson()))
  expect_null(extended_family(42))
  expect_null(extended_family(c("nbinom2", "poisson")))
})

test_that("glmmTMB's families that glmm() does not fit are errors naming them", {
  supported <- "supported families \\(links\\): nbinom2 \\(log, sqrt, identity\\), nbinom1 .*betabinomial \\(logit, probit, cloglog\\), binomial"
  for (name in c("truncated_poisson", "truncated_nbinom1", "truncated_nbinom2",
                 "genpois", "truncated_genpois", "compois", "truncated_compois",
                 "tweedie", "ordbeta", "t_family", "ziGamma")) {
    expect_error(extended_family(name),
                 paste0("family '", name, "' is not supported by glmm\\(\\)"))
    expect_error(extended_family(name), supported)
  }
  expect_error(extended_family("ordbeta"), "ordered beta regression, for proportions that include 0 and 1, is not supported yet")
  skip_if_not_installed("glmmTMB")
  for (name in c("truncated_poisson", "truncated_nbinom2", "genpois", "compois",
                 "tweedie", "ordbeta", "t_family")) {
    fun <- getExportedValue("glmmTMB", name)
    # as a function (recognised without calling it) ...
    expect_error(extended_family(fun), paste0("family '", name, "' is not supported by glmm\\(\\)"))
    # ... and as an object, named by its $family
    obj_name <- tmb_family(name)$family
    expect_error(extended_family(tmb_family(name)),
                 paste0("family '", obj_name, "' is not supported by glmm\\(\\)"))
  }
})

test_that("count responses must be non-negative whole numbers", {
  y <- c(0, 3, 1, 7)
  for (fam in c("nbinom2", "nbinom1", "poisson")) {
    r <- extended_response(y, fam, NULL, "the response 'count'")
    expect_identical(r, list(y = y, n_trials = rep(1, 4), weights = rep(1, 4)))
  }
  r <- extended_response(c(a = 2L, b = 5L), nbinom1(), c(2, 0.5), "the response 'count'")
  expect_identical(r, list(y = c(2, 5), n_trials = c(1, 1), weights = c(2, 0.5)))
  expect_error(extended_response(c(1, -2, -1, 4), nbinom2(), NULL, "the response 'count'"),
               "the response 'count' has 2 negative values \\(e.g. -2 in row 2\\); the nbinom2 family is for counts")
  expect_error(extended_response(c(1, 2.5, 3), "nbinom1", NULL, "the response 'count'"),
               "the response 'count' has 1 non-integer value \\(e.g. 2.5 in row 2\\); the nbinom1 family is for counts: non-negative whole numbers")
  expect_error(extended_response(c(0.5, 2.5), "poisson", NULL, "the response 'y'"),
               "has 2 non-integer values")
  expect_error(extended_response(cbind(1:3, 3:1), "nbinom2", NULL, "the response 'y'"),
               "has 2 columns; a two-column cbind\\(successes, failures\\) response is for the binomial and betabinomial families, not nbinom2")
  expect_error(extended_response(factor(c("a", "b")), "nbinom2", NULL, "the response 'y'"),
               "response must be numeric for the nbinom2 family: the response 'y' is a factor")
  expect_error(extended_response(c(TRUE, FALSE), "nbinom2", NULL, "the response 'y'"),
               "response must be numeric for the nbinom2 family: the response 'y' is logical")
  expect_error(extended_response(c(1, 2), "nbinom2", c(1, -1), "the response 'y'"),
               "'weights' must not be negative")
  expect_error(extended_response(c(1, 2), "nbinom2", 1:3, "the response 'y'"),
               "'weights' must be a numeric vector with one value per observation \\(2\\)")
})

test_that("beta responses must lie strictly between 0 and 1", {
  y <- c(0.1, 0.5, 0.999)
  expect_identical(extended_response(y, beta_family(), NULL, "the response 'p'"),
                   list(y = y, n_trials = rep(1, 3), weights = rep(1, 3)))
  err <- expect_error(extended_response(c(0, 0.3, 1, 1, 0.2), "beta", NULL, "the response 'p'"),
                      "the response 'p' has 1 zero and 2 ones; the beta family needs values strictly between 0 and 1")
  msg <- conditionMessage(err)
  expect_match(msg, "ordered-beta family \\(ordbeta\\) is the usual route", fixed = FALSE)
  expect_match(msg, "mixedrs does not support it yet", fixed = TRUE)
  expect_match(msg, "(y * (n - 1) + 0.5) / n", fixed = TRUE)
  expect_error(extended_response(c(0, 0, 0.3), "beta", NULL, "the response 'p'"),
               "has 2 zeros; the beta family")
  expect_error(extended_response(c(0.3, 1.2, -0.1), "beta", NULL, "the response 'p'"),
               "has 2 values outside \\[0, 1\\] \\(e.g. 1.2 in row 2\\); the beta family is for proportions strictly between 0 and 1")
})

test_that("betabinomial responses: cbind, proportions with trials, 0/1", {
  # cbind(successes, failures): successes and trials; the prior weights kept
  m <- cbind(s = c(2, 0, 5), f = c(3, 4, 0))
  m_before <- m
  expect_identical(extended_response(m, betabinomial(), NULL, "the response"),
                   list(y = c(2, 0, 5), n_trials = c(5, 4, 5), weights = rep(1, 3)))
  expect_identical(extended_response(m, "betabinomial", c(1, 2, 3), "the response")$weights,
                   c(1, 2, 3))
  expect_identical(m, m_before)
  # proportions with the trials as weights: successes, trials, weights 1
  expect_identical(extended_response(c(0.4, 0, 1), "betabinomial", c(5, 4, 5), "the response"),
                   list(y = c(2, 0, 5), n_trials = c(5, 4, 5), weights = rep(1, 3)))
  # 0/1 values (also logical, two-level factors): one trial each, the
  # weights stay prior weights (as glmmTMB treats them)
  expect_identical(extended_response(c(0, 1, 1), "betabinomial", c(2, 3, 4), "the response"),
                   list(y = c(0, 1, 1), n_trials = c(1, 1, 1), weights = c(2, 3, 4)))
  expect_identical(extended_response(c(TRUE, FALSE), "betabinomial", NULL, "the response")$y,
                   c(1, 0))
  expect_identical(extended_response(factor(c("no", "yes", "no")), "betabinomial", NULL,
                                     "the response")$y, c(0, 1, 0))
  # errors
  expect_error(extended_response(cbind(c(1, -1), c(2, 2)), "betabinomial", NULL, "the response 'y'"),
               "has 1 negative or non-integer count in column 1 \\(successes, e.g. -1 in row 2\\)")
  expect_error(extended_response(cbind(c(1, 1), c(2, 2.5)), "betabinomial", NULL, "the response 'y'"),
               "has 1 negative or non-integer count in column 2 \\(failures, e.g. 2.5 in row 2\\)")
  # rows of zero trials are kept (they add nothing to the likelihood)
  expect_equal(extended_response(cbind(c(1, 0, 0), c(2, 0, 0)), "betabinomial", NULL,
                                 "the response 'y'")$n_trials, c(3, 0, 0))
  expect_error(extended_response(cbind(1:3, 1:3, 1:3), "betabinomial", NULL, "the response 'y'"),
               "numeric matrix with 3 columns")
  expect_error(extended_response(c(0.5, 0.2), "betabinomial", NULL, "the response 'y'"),
               "has 2 values strictly between 0 and 1 but no 'weights'")
  expect_error(extended_response(c(0.5, 0.2), "betabinomial", c(3, 5), "the response 'y'"),
               "'weights' times the response 'y' \\(the number of successes\\) must be whole numbers for the betabinomial family; 1 value not \\(e.g. row 1: 3 x 0.5\\)")
  expect_error(extended_response(c(0.5, 0.2), "betabinomial", c(2.5, 5), "the response 'y'"),
               "'weights' \\(the numbers of trials of the proportions in the response 'y'\\) has 1 non-integer value")
  expect_error(extended_response(c(0.5, 1.5), "betabinomial", c(2, 2), "the response 'y'"),
               "has 1 value outside \\[0, 1\\]")
  expect_error(extended_response(factor(c("a", "b", "c")), "betabinomial", NULL, "the response 'y'"),
               "is a factor with 3 levels")
  expect_error(extended_response("a", "betabinomial", NULL, "the response 'y'"),
               "must be cbind\\(successes, failures\\), proportions with the number of trials as 'weights', or 0/1 values")
})

test_that("zero-inflation and dispersion models are checked against the family", {
  for (fam in c("poisson", "nbinom1", "nbinom2")) expect_silent(check_zi_family(fam))
  for (fam in c("binomial", "beta", "betabinomial", "Gamma", "gaussian")) {
    expect_error(check_zi_family(fam),
                 paste0("'ziformula' \\(zero-inflation\\) needs a count family: poisson, nbinom1 or nbinom2; the ",
                        fam, " family cannot carry it"))
  }
  for (fam in c("nbinom1", "nbinom2", "beta", "betabinomial", "gaussian", "Gamma")) {
    expect_silent(check_disp_family(fam))
  }
  for (fam in c("binomial", "poisson")) {
    expect_error(check_disp_family(fam),
                 paste0("'dispformula' cannot be used with the ", fam,
                        " family: it has no dispersion parameter"))
  }
  expect_error(check_disp_family("inverse.gaussian"),
               "'dispformula' is not supported for the inverse.gaussian family; a dispersion model can be given for: nbinom1, nbinom2")
})

test_that("glmm() takes the family in every form and stops on bad responses", {
  skip_if_not_installed("glmmTMB")
  sal <- glmmTMB::Salamanders[1:200, ]
  ref <- glmm(count ~ mined + (1 | site), family = nbinom2, data = sal)
  # the same fit whichever way the family is given
  for (fam in list("nbinom2", nbinom2(), glmmTMB::nbinom2, glmmTMB::nbinom2())) {
    fit <- glmm(count ~ mined + (1 | site), family = fam, data = sal)
    expect_identical(fit$family$family, "nbinom2")
    expect_equal(fit$beta, ref$beta, tolerance = 1e-10)
  }
  bad <- sal
  bad$count[c(3, 9)] <- c(-1, 2.5)
  expect_error(glmm(count ~ mined + (1 | site), family = nbinom1, data = bad),
               "the response 'count' has 1 negative value \\(e.g. -1 in row 3\\); the nbinom1 family is for counts")
  d <- data.frame(p = c(0, 0.2, 0.5, 1, 0.7, 0.4), g = factor(rep(1:3, 2)))
  expect_error(glmm(p ~ 1 + (1 | g), family = beta_family, data = d),
               "the response 'p' has 1 zero and 1 one; the beta family needs values strictly between 0 and 1")
  expect_error(glmm(count ~ mined + (1 | site), family = "truncated_nbinom2", data = sal),
               "family 'truncated_nbinom2' is not supported by glmm\\(\\)")
  d$p[c(1, 4)] <- c(0.1, 0.9)
  expect_error(glmm(p ~ 1 + (1 | g), ziformula = ~ 1, family = beta_family, data = d),
               "'ziformula' \\(zero-inflation\\) needs a count family")
  expect_error(glmm(count ~ mined + (1 | site), dispformula = ~ mined, family = poisson, data = sal),
               "'dispformula' cannot be used with the poisson family: it has no dispersion parameter")
})

test_that("glmm() takes glmmTMB's REML argument: REML for the Gaussian identity model only", {
  skip_if_not_installed("glmmTMB")
  ss <- lme4::sleepstudy
  f <- Reaction ~ Days + (Days | Subject)
  for (reml in c(TRUE, FALSE)) {
    # glmmTMB's call of the Gaussian model: lmm()'s fit with that criterion, no
    # deprecation warning (glmer's shortcut without REML keeps it)
    fit <- expect_no_warning(glmm(f, ss, family = gaussian, REML = reml))
    expect_identical(eval(fit$call$REML), reml)
    expect_identical(isREML(fit), reml)
    ref <- tmb_tight(glmmTMB::glmmTMB(f, ss, REML = reml, control = tmb_tight_control()))
    expect_gte(as.numeric(logLik(fit)), as.numeric(logLik(ref)) - 1e-7)
    expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-9)
    expect_equal(fixef(fit), glmmTMB::fixef(ref)$cond, tolerance = 1e-6)
    expect_equal(sigma(fit), sigma(ref), tolerance = 1e-5)
    expect_equal(unname(sqrt(diag(as.matrix(vcov(fit))))),
                 unname(sqrt(diag(vcov(ref)$cond))), tolerance = 1e-4)
  }
  expect_warning(glmm(f, ss, family = gaussian), "shortcut to lmm\\(\\) is deprecated")
  # Other families: maximum likelihood, which glmm() fits; REML = TRUE is an error
  # naming the family, and REML = FALSE leaves the call as lme4's.
  cbpp <- lme4::cbpp
  g <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  ml <- glmm(g, cbpp, family = binomial, REML = FALSE)
  expect_null(ml$call$REML)
  expect_identical(fixef(ml), fixef(glmm(g, cbpp, family = binomial)))
  expect_error(glmm(g, cbpp, family = binomial, REML = TRUE),
               "REML = TRUE only for the Gaussian family.*binomial family \\(logit link\\)")
  sal <- glmmTMB::Salamanders
  expect_error(glmm(count ~ mined + (1 | site), sal, family = nbinom2, REML = TRUE),
               "nbinom2 family \\(log link\\).*use REML = FALSE")
  expect_error(glmm(Reaction ~ Days + (1 | Subject), ss, family = gaussian,
                    dispformula = ~Days, REML = TRUE),
               "Gaussian family with 'ziformula' or 'dispformula'")
  expect_error(glmm(g, cbpp, family = binomial, REML = NA), "'REML' must be TRUE or FALSE")
})
