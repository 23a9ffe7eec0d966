# The R front end of glmm(): family resolution, response processing,
# lmm_inputs(..., family =) and glmmControl(), side by side with glm() and
# lme4 (glFormula(), mkRespMod(), glmerControl()).

# Calls lmm_inputs() with a matched call built as glmm() builds it (family
# resolved first, as glmm() resolves it).
call_glmm_inputs <- function(formula, data = NULL, family = binomial, ...,
                             control = glmmControl()) {
  mc <- match.call()
  mc[[1L]] <- quote(glmm)
  env <- parent.frame()
  lmm_inputs(mc, env, control, family = resolve_family(family, env))
}

# Small simulated data with every kind of response.
glmm_data <- function(n = 60, seed = 11) {
  set.seed(seed)
  d <- data.frame(
    x = rnorm(n),
    g = rep(sprintf("g%02d", 1:10), length.out = n),
    trials = rep(c(4, 7, 10), length.out = n),
    stringsAsFactors = FALSE
  )
  d$y01 <- rbinom(n, 1, plogis(0.3 + d$x))
  d$ylog <- d$y01 == 1
  d$yfac <- factor(ifelse(d$y01 == 1, "yes", "no"))
  d$yrev <- factor(ifelse(d$y01 == 1, "yes", "no"), levels = c("yes", "no"))
  d$succ <- rbinom(n, d$trials, plogis(d$x))
  d$prop <- d$succ / d$trials
  d$count <- rpois(n, exp(0.5 + 0.3 * d$x))
  d$pos <- rgamma(n, shape = 2, rate = 2 / exp(1 + 0.2 * d$x))
  d
}

# glmm_response() on lme4's own model frame, compared with mkRespMod() and
# with glm() on the fixed part (y and prior weights do not depend on the
# random part).
expect_response_parity <- function(formula, data, family, weights = FALSE) {
  if (weights) {
    data$.w <- data$trials
    gf <- lme4::glFormula(formula, data, family = family, weights = .w)
    gl <- stats::glm(lme4::nobars(formula), family, data, weights = .w)
  } else {
    gf <- lme4::glFormula(formula, data, family = family)
    gl <- stats::glm(lme4::nobars(formula), family, data)
  }
  ours <- glmm_response(gf$fr, family, stats::model.weights(gf$fr))
  expect_identical(names(ours), c("y", "weights", "n", "mustart", "etastart"))
  for (v in ours) expect_type(v, "double")
  resp <- lme4:::mkRespMod(gf$fr, family = family)
  expect_equal(ours$y, resp$y, tolerance = 1e-12)
  expect_equal(ours$weights, resp$weights, tolerance = 1e-12)
  expect_equal(ours$n, resp$n, tolerance = 1e-12)
  expect_equal(ours$mustart, resp$mu, tolerance = 1e-12)
  expect_equal(ours$etastart, resp$eta, tolerance = 1e-12)
  expect_equal(ours$y, unname(gl$y), tolerance = 1e-12)
  expect_equal(ours$weights, unname(gl$prior.weights), tolerance = 1e-12)
  invisible(ours)
}

# Everything lmm_inputs(..., family =) shares with lme4::glFormula() and
# mkRespMod() must agree: response, weights, trials, X, terms, Z, factors.
expect_glmm_parity <- function(inp, gf) {
  n <- nrow(gf$fr)
  resp <- lme4:::mkRespMod(gf$fr, family = gf$family)
  expect_identical(nrow(inp$frame), n)
  expect_equal(inp$y, resp$y, tolerance = 1e-12)
  expect_equal(inp$weights, resp$weights, tolerance = 1e-12)
  expect_equal(inp$n_trials, resp$n, tolerance = 1e-12)
  # lme4 starts PIRLS from eta = linkfun(mustart) + offset (glm() ignores
  # the offset there); etastart is linkfun(mustart) as glm's
  off <- if (is.null(inp$offset)) 0 else inp$offset
  expect_equal(inp$etastart, inp$family$linkfun(inp$mustart), tolerance = 1e-12)
  expect_equal(inp$etastart + off, resp$eta, tolerance = 1e-12)
  expect_equal(inp$family$linkinv(inp$etastart + off), resp$mu, tolerance = 1e-12)
  if (is.null(inp$offset)) expect_equal(inp$mustart, resp$mu, tolerance = 1e-12)
  expect_identical(inp$family$family, gf$family$family)
  expect_identical(inp$family$link, gf$family$link)
  expect_identical(colnames(inp$X), colnames(gf$X))
  expect_equal(unname(inp$X[, ]), unname(gf$X[, ]), tolerance = 1e-12)
  expect_identical(attr(inp$X, "assign"), attr(gf$X, "assign"))
  expect_identical(attr(inp$X, "contrasts"), attr(gf$X, "contrasts"))
  rt <- gf$reTrms
  expect_identical(vapply(inp$reterms, `[[`, "", "term"), names(rt$Ztlist))
  expect_identical(vapply(inp$reterms, `[[`, "", "group"), names(rt$cnms))
  expect_identical(lapply(inp$reterms, `[[`, "cnms"), unname(rt$cnms))
  for (i in seq_along(inp$reterms)) {
    zt <- methods::as(Matrix::t(rt$Ztlist[[i]]), "matrix")
    expect_equal(expand_term(inp$reterms[[i]]), unname(zt), tolerance = 1e-12)
  }
  expect_identical(names(inp$flist), names(rt$flist))
  expect_identical(lapply(inp$flist, levels), lapply(rt$flist, levels))
  expect_identical(lapply(inp$flist, as.integer), lapply(rt$flist, as.integer))
  expect_identical(attr(inp$flist, "assign"), attr(rt$flist, "assign"))
  off <- stats::model.offset(gf$fr)
  if (is.null(off)) expect_null(inp$offset) else
    expect_equal(inp$offset, unname(as.double(off)), tolerance = 1e-12)
}

supported_links <- list(
  binomial = c("logit", "probit", "cloglog", "cauchit", "log"),
  poisson = c("log", "sqrt", "identity"),
  Gamma = c("inverse", "log", "identity"),
  inverse.gaussian = c("1/mu^2", "log", "inverse"),
  gaussian = c("log", "inverse")
)

test_that("resolve_family() accepts every supported family and link", {
  for (fam in names(supported_links)) {
    fun <- get(fam, envir = asNamespace("stats"))
    for (link in supported_links[[fam]]) {
      obj <- fun(link = link)
      res <- resolve_family(obj)
      expect_identical(res, obj)
      expect_identical(res$family, fam)
      expect_identical(res$link, link)
      # a link given as a link-glm object
      expect_identical(resolve_family(fun(link = stats::make.link(link)))$link, link)
    }
    if (fam == "gaussian") next
    default <- fun()$link
    expect_identical(resolve_family(fun)$link, default)
    expect_identical(resolve_family(fam)$family, fam)
    expect_identical(resolve_family(fam)$link, default)
  }
  expect_identical(resolve_family("binomial")$link, "logit")
  expect_identical(resolve_family(binomial)$link, "logit")
  expect_identical(resolve_family("Gamma")$link, "inverse")
  expect_identical(resolve_family("inverse.gaussian")$link, "1/mu^2")
  # a name is found from the caller's environment first, as glmer() does
  local({
    poisson <- function() stats::poisson(link = "sqrt")
    expect_identical(resolve_family("poisson", environment())$link, "sqrt")
  })
})

test_that("resolve_family() rejects what glmm() cannot fit, saying what can", {
  supported <- "supported families \\(links\\): binomial \\(logit, probit"
  expect_error(resolve_family(quasipoisson), "quasi families \\(here quasipoisson\\)")
  expect_error(resolve_family(quasibinomial(link = "probit")), "quasi families \\(here quasibinomial\\)")
  expect_error(resolve_family("quasi"), "quasi families \\(here quasi\\).*binomial")
  expect_error(resolve_family(gaussian), "gaussian with the identity link.*use lmm\\(\\)")
  expect_error(resolve_family("gaussian"), "gaussian with the identity link.*use lmm\\(\\)")
  expect_error(resolve_family(gaussian()), "use lmm\\(\\)")
  expect_error(resolve_family("foo"), paste0("unknown family \"foo\".*", supported))
  expect_error(resolve_family("gamma"), "unknown family \"gamma\" \\(did you mean \"Gamma\"\\?\\)")
  expect_error(resolve_family("negative.binomial"),
               "negative binomial\\) needs its theta: give MASS::negative.binomial\\(theta\\)")
  expect_error(resolve_family(inverse.gaussian(link = "identity")),
               "link 'identity' is not supported for the inverse.gaussian family; use one of: \"1/mu\\^2\", \"log\", \"inverse\"")
  expect_error(resolve_family(binomial(link = make.link("sqrt"))),
               "link 'sqrt' is not supported for the binomial family.*\"logit\", \"probit\", \"cloglog\", \"cauchit\", \"log\"")
  expect_error(resolve_family(Gamma(link = power(1/3))),
               "link 'mu\\^0.333' is not supported for the Gamma family")
  expect_error(resolve_family(poisson(link = make.link("logit"))),
               "link 'logit' is not supported for the poisson family")
  expect_error(resolve_family(1), "'family' must be a family object.*not an object of class \"numeric\"")
  expect_error(resolve_family(list(family = "binomial", link = "logit")),
               "'family' must be a family object.*\"list\"")
  expect_error(resolve_family(c("binomial", "poisson")), "single string")
  expect_error(resolve_family(structure(list(family = "binomial", link = "logit"),
                                        class = "family")),
               "not a valid family object: it lacks 'linkfun'")
  expect_error(resolve_family(function(link) stop("no way")),
               "could not be called without arguments: no way")
  skip_if_not_installed("MASS")
  # glmm() fits MASS's family with theta held (test-glmm-nb-fixed.R) before
  # it resolves other families; a hand-made one with another name is an error
  nb <- MASS::negative.binomial(theta = 2)
  nb$family <- "negative binomial"
  expect_error(resolve_family(nb), "negative binomial family object \\(negative binomial\\) is not one")
  expect_error(resolve_family(MASS::negative.binomial),
               "needs 'theta': give MASS::negative.binomial\\(theta\\) to hold theta fixed")
})

test_that("glmm_response() matches glm() and lme4 for binomial responses", {
  skip_if_not_installed("lme4")
  d <- glmm_data()
  expect_response_parity(y01 ~ x + (1 | g), d, binomial())
  expect_response_parity(ylog ~ x + (1 | g), d, binomial())
  r <- expect_response_parity(yfac ~ x + (1 | g), d, binomial())
  expect_identical(r$y, as.double(d$yfac == "yes"))
  # the first level counts as failure, whatever its label
  r <- expect_response_parity(yrev ~ x + (1 | g), d, binomial())
  expect_identical(r$y, as.double(d$yrev == "no"))
  r <- expect_response_parity(cbind(succ, trials - succ) ~ x + (1 | g), d,
                              binomial())
  expect_equal(r$y, d$prop, tolerance = 1e-12)
  expect_equal(r$weights, d$trials, tolerance = 1e-12)
  expect_equal(r$n, d$trials, tolerance = 1e-12)
  r <- expect_response_parity(prop ~ x + (1 | g), d, binomial(), weights = TRUE)
  expect_equal(r$weights, d$trials, tolerance = 1e-12)
  expect_identical(r$n, rep(1, nrow(d)))
  # cbind() with prior weights: weights multiply the trials
  r <- expect_response_parity(cbind(succ, trials - succ) ~ x + (1 | g), d,
                              binomial(), weights = TRUE)
  expect_equal(r$weights, d$trials^2, tolerance = 1e-12)
  # 0/1 response with whole-number weights; other links
  expect_response_parity(y01 ~ x + (1 | g), d, binomial(), weights = TRUE)
  expect_response_parity(y01 ~ x + (1 | g), d, binomial(link = "probit"))
  expect_response_parity(cbind(succ, trials - succ) ~ x + (1 | g), d,
                         binomial(link = "cloglog"))
  cbpp <- lme4::cbpp
  expect_response_parity(cbind(incidence, size - incidence) ~ period + (1 | herd),
                         cbpp, binomial())
})

test_that("glmm_response() matches glm() and lme4 for other families", {
  skip_if_not_installed("lme4")
  d <- glmm_data()
  r <- expect_response_parity(count ~ x + (1 | g), d, poisson())
  expect_equal(r$mustart, d$count + 0.1, tolerance = 1e-12)
  expect_response_parity(count ~ x + (1 | g), d, poisson(), weights = TRUE)
  expect_response_parity(count ~ x + (1 | g), d, poisson(link = "sqrt"))
  expect_response_parity(TICKS ~ YEAR + (1 | BROOD), lme4::grouseticks, poisson())
  r <- expect_response_parity(pos ~ x + (1 | g), d, Gamma(link = "log"))
  expect_equal(r$y, d$pos, tolerance = 1e-12)
  expect_response_parity(pos ~ x + (1 | g), d, Gamma())
  expect_response_parity(pos ~ x + (1 | g), d, inverse.gaussian())
  expect_response_parity(pos ~ x + (1 | g), d, gaussian(link = "log"))
  expect_response_parity(pos ~ x + (1 | g), d, gaussian(link = "inverse"),
                         weights = TRUE)
  # logical counts are 0/1 for poisson, as glmer converts them
  fr <- stats::model.frame(ylog ~ x, d)
  expect_identical(glmm_response(fr, poisson())$y, as.double(d$ylog))
})

test_that("lmm_inputs(family =) matches glFormula() on cbpp (cbind response)", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  inp <- call_glmm_inputs(f, cbpp, family = binomial)
  gf <- lme4::glFormula(f, cbpp, family = binomial)
  expect_glmm_parity(inp, gf)
  expect_identical(names(inp), c("formula", "model_formula", "frame", "y", "X",
                                 "fixed_formula", "weights", "offset", "reterms", "flist",
                                 "na.action", "n_trials", "mustart",
                                 "etastart", "family"))
  expect_equal(inp$y, cbpp$incidence / cbpp$size, tolerance = 1e-12)
  expect_equal(inp$weights, cbpp$size, tolerance = 1e-12)
  expect_equal(inp$n_trials, cbpp$size, tolerance = 1e-12)
  expect_equal(inp$etastart, qlogis(inp$mustart), tolerance = 1e-12)
  expect_true(is.matrix(stats::model.response(inp$frame)))
  expect_identical(inp$family$family, "binomial")
  # the same model written as proportions with the trials as weights
  inp2 <- call_glmm_inputs(incidence / size ~ period + (1 | herd), cbpp,
                           family = "binomial", weights = size)
  gf2 <- lme4::glFormula(incidence / size ~ period + (1 | herd), cbpp,
                         family = binomial, weights = size)
  expect_glmm_parity(inp2, gf2)
  expect_equal(inp2$y, inp$y, tolerance = 1e-12)
  expect_equal(inp2$weights, inp$weights, tolerance = 1e-12)
  expect_identical(inp2$n_trials, rep(1, nrow(cbpp)))
  # missing values and subset, with an offset
  cb <- cbpp
  cb$incidence[c(4, 20)] <- NA
  cb$e <- seq(-0.5, 0.5, length.out = nrow(cb))
  f3 <- cbind(incidence, size - incidence) ~ period + offset(e) + (1 | herd)
  inp3 <- call_glmm_inputs(f3, cb, subset = herd != "3")
  gf3 <- lme4::glFormula(f3, cb, family = binomial, subset = herd != "3")
  expect_glmm_parity(inp3, gf3)
  expect_identical(nrow(inp3$frame), nrow(gf3$fr))
  expect_false(any(c(4L, 20L) %in% as.integer(rownames(inp3$frame))))
})

test_that("lmm_inputs(family =) allows observation-level terms (grouseticks)", {
  skip_if_not_installed("lme4")
  gt <- lme4::grouseticks
  f <- TICKS ~ YEAR + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)
  inp <- call_glmm_inputs(f, gt, family = poisson)
  gf <- lme4::glFormula(f, gt, family = poisson)
  expect_glmm_parity(inp, gf)
  expect_identical(nlevels(inp$flist$INDEX), nrow(gt))
  expect_identical(vapply(inp$reterms, `[[`, "", "term"),
                   c("1 | INDEX", "1 | BROOD", "1 | LOCATION"))
  expect_identical(inp$weights, rep(1, nrow(gt)))
  expect_identical(inp$n_trials, rep(1, nrow(gt)))
  expect_equal(inp$mustart, gt$TICKS + 0.1, tolerance = 1e-12)
  expect_equal(inp$etastart, log(gt$TICKS + 0.1), tolerance = 1e-12)
  # the same term is refused for a linear mixed model
  expect_error(call_inputs(f, gt), "'INDEX' has as many levels as observations")
  # but more random effects than observations is still an error, as in lme4
  f2 <- TICKS ~ YEAR + (HEIGHT | INDEX)
  expect_error(lme4::glFormula(f2, gt, family = poisson), "806")
  expect_error(call_glmm_inputs(f2, gt, family = poisson),
               "number of observations \\(=403\\) < number of random effects \\(=806\\) for term \\(HEIGHT \\| INDEX\\)")
  expect_warning(call_glmm_inputs(f2, gt, family = poisson,
                                  control = glmmControl(check.nobs.vs.nRE = "warning",
                                                        check.scaleX = "ignore")),
                 "must not exceed the number of observations")
  # and one level is still too few
  gt$one <- "a"
  expect_error(call_glmm_inputs(TICKS ~ YEAR + (1 | one), gt, family = poisson),
               "grouping factor 'one' has only one sampled level")
})

test_that("lmm_inputs(family =) matches glFormula() on VerbAgg (binary factor)", {
  skip_if_not_installed("lme4")
  va <- lme4::VerbAgg
  f <- r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)
  inp <- call_glmm_inputs(f, va, family = binomial)
  gf <- lme4::glFormula(f, va, family = binomial)
  expect_glmm_parity(inp, gf)
  expect_identical(inp$y, as.double(va$r2 == "Y"))
  expect_identical(inp$weights, rep(1, nrow(va)))
  expect_identical(colnames(inp$X), c("(Intercept)", "Anger", "GenderM",
                                      "btypescold", "btypeshout", "situself"))
  expect_identical(names(inp$flist), c("id", "item"))
  expect_identical(levels(inp$flist$item), levels(va$item))
  # a family object with a non-default link
  inp2 <- call_glmm_inputs(f, va, family = binomial(link = "probit"))
  expect_equal(inp2$etastart, qnorm(inp2$mustart), tolerance = 1e-12)
  expect_identical(inp2$family$link, "probit")
})

test_that("lmm_inputs() resolves a family given by name or function", {
  d <- glmm_data()
  mc <- quote(glmm(formula = count ~ x + (1 | g), data = d))
  a <- lmm_inputs(mc, environment(), glmmControl(), family = "poisson")
  b <- lmm_inputs(mc, environment(), glmmControl(), family = poisson)
  expect_identical(a$family$family, "poisson")
  expect_equal(a[c("y", "weights", "n_trials", "mustart", "etastart")],
               b[c("y", "weights", "n_trials", "mustart", "etastart")])
  # without a family nothing changes: no GLMM elements are added
  l <- lmm_inputs(quote(lmm(formula = pos ~ x + (1 | g), data = d)),
                  environment(), lmmControl())
  expect_identical(names(l), c("formula", "model_formula", "frame", "y", "X",
                               "fixed_formula", "weights", "offset", "reterms",
                               "flist", "na.action"))
  expect_null(l$weights)
})

test_that("bad binomial responses are errors naming the response", {
  d <- glmm_data()
  d$half <- d$succ + 0.5
  expect_error(call_glmm_inputs(cbind(half, trials - succ) ~ x + (1 | g), d),
               "response 'cbind\\(half, trials - succ\\)' has 60 non-integer counts in column 1 \\(half")
  d$neg <- d$succ - 8
  expect_error(call_glmm_inputs(cbind(succ, neg) ~ x + (1 | g), d),
               "response 'cbind\\(succ, neg\\)' has .* negative counts? in column 2 \\(neg")
  expect_error(call_glmm_inputs(succ ~ x + (1 | g), d),
               "response 'succ' has .* values? outside \\[0, 1\\].*cbind\\(successes, failures\\)")
  expect_error(call_glmm_inputs(I(prop * 2) ~ x + (1 | g), d),
               "response 'I\\(prop \\* 2\\)' has .* outside \\[0, 1\\]")
  expect_error(call_glmm_inputs(prop ~ x + (1 | g), d),
               "response 'prop' has .* strictly between 0 and 1.*no 'weights'.*number of trials")
  # weights of one are weights all the same: the message is about 'weights'
  expect_error(call_glmm_inputs(prop ~ x + (1 | g), d, weights = rep(1, 60)),
               "'weights' times response 'prop'")
  expect_error(call_glmm_inputs(prop ~ x + (1 | g), d, weights = trials + 1),
               "'weights' times response 'prop' \\(the number of successes\\) must be whole numbers")
  w <- rep(2.5, nrow(d))
  expect_error(call_glmm_inputs(y01 ~ x + (1 | g), d, weights = w),
               "'weights' times response 'y01'.*weights 2.5 x 1 = 2.5")
  d$y3 <- factor(rep(c("lo", "mid", "hi"), length.out = nrow(d)))
  expect_error(call_glmm_inputs(y3 ~ x + (1 | g), d),
               "response 'y3' is a factor with 3 levels \\(hi, lo, mid\\).*two levels")
  d$ychr <- as.character(d$yfac)
  expect_error(call_glmm_inputs(ychr ~ x + (1 | g), d),
               "response must be numeric or factor for the binomial family.*response 'ychr' is character")
  expect_error(call_glmm_inputs(cbind(succ, trials - succ, trials) ~ x + (1 | g), d),
               "matrix with 3 columns.*cbind\\(successes, failures\\)")
  d$none <- 0
  # rows of zero trials add nothing (as in glmer); all of them leave nothing to fit
  expect_error(call_glmm_inputs(cbind(none, none) ~ x + (1 | g), d,
                                control = glmmControl(check.response.not.const = "ignore")),
               "every row has prior weight 0 \\(zero 'weights', or binomial rows of zero trials\\)")
  d$y01[5] <- NA
  expect_error(call_glmm_inputs(y01 ~ x + (1 | g), d, na.action = na.pass),
               "response 'y01' has 1 non-finite value")
  d$y01[5] <- Inf
  expect_error(call_glmm_inputs(y01 ~ x + (1 | g), d),
               "response 'y01' has 1 non-finite value")
})

test_that("bad Poisson, Gamma and inverse Gaussian responses name the response", {
  d <- glmm_data()
  d$negc <- d$count - 2
  expect_error(call_glmm_inputs(negc ~ x + (1 | g), d, family = poisson),
               "response 'negc' has .* negative values?.*poisson family is for counts >= 0")
  d$frac <- d$count + 0.25
  expect_error(call_glmm_inputs(frac ~ x + (1 | g), d, family = poisson),
               "response 'frac' has 60 non-integer values \\(e.g. [0-9]+.25\\); the poisson family is for whole-number counts")
  expect_error(call_glmm_inputs(cbind(succ, trials - succ) ~ x + (1 | g), d,
                                family = poisson),
               "response 'cbind\\(succ, trials - succ\\)' has 2 columns.*only for the binomial family, not poisson")
  expect_error(call_glmm_inputs(yfac ~ x + (1 | g), d, family = poisson),
               "response 'yfac' is a factor; a factor response needs family = binomial")
  d$zero <- d$pos
  d$zero[3] <- 0
  expect_error(call_glmm_inputs(zero ~ x + (1 | g), d, family = Gamma),
               "response 'zero' has 1 zero or negative value \\(e.g. 0\\); the Gamma family needs a positive response")
  expect_error(call_glmm_inputs(I(-pos) ~ x + (1 | g), d, family = inverse.gaussian),
               "response 'I\\(-pos\\)' has 60 zero or negative values.*inverse.gaussian family")
  expect_error(call_glmm_inputs(zero ~ x + (1 | g), d, family = gaussian(link = "log")),
               "response 'zero' has 1 zero or negative value;.*log link")
  expect_error(call_glmm_inputs(zero ~ x + (1 | g), d, family = gaussian(link = "inverse")),
               "response 'zero' has 1 zero value;.*inverse link")
})

test_that("a constant response follows check.response.not.const", {
  d <- glmm_data()
  d$all0 <- 0
  expect_error(call_glmm_inputs(all0 ~ x + (1 | g), d),
               "^Response is constant: response 'all0' is 0 in all 60 observations")
  d$same <- 3
  expect_error(call_glmm_inputs(same ~ x + (1 | g), d, family = poisson),
               "Response is constant: response 'same'")
  # constant as fitted: equal proportions from different counts
  expect_error(call_glmm_inputs(cbind(trials, trials) ~ x + (1 | g), d),
               "Response is constant: response 'cbind\\(trials, trials\\)' is 0.5")
  # a factor with one used level (unused levels are dropped first)
  d$f1 <- factor(rep("yes", nrow(d)), levels = c("no", "yes"))
  expect_error(call_glmm_inputs(f1 ~ x + (1 | g), d), "Response is constant: response 'f1'")
  expect_warning(call_glmm_inputs(all0 ~ x + (1 | g), d,
                                  control = glmmControl(check.response.not.const = "warning")),
                 "Response is constant")
  expect_silent(call_glmm_inputs(all0 ~ x + (1 | g), d,
                                 control = glmmControl(check.response.not.const = "ignore")))
  skip_if_not_installed("lme4")
  # lme4 stops there too
  gf <- lme4::glFormula(all0 ~ x + (1 | g), d, family = binomial)
  expect_error(lme4:::mkGlmerDevfun(gf$fr, gf$X, gf$reTrms, gf$family),
               "Response is constant")
})

test_that("negative and non-finite weights are errors for GLMMs too; zero ones are rows without weight", {
  d <- glmm_data()
  w <- d$trials
  zero <- call_glmm_inputs(prop ~ x + (1 | g), d, weights = replace(w, 2, 0))
  expect_equal(zero$weights, replace(w, 2, 0))
  expect_error(call_glmm_inputs(count ~ x + (1 | g), d, family = poisson,
                                weights = -w),
               "'weights' must not be negative")
  expect_error(call_glmm_inputs(count ~ x + (1 | g), d, family = poisson,
                                weights = replace(w, 1, Inf)),
               "'weights' has 1 non-finite")
  fr <- stats::model.frame(count ~ x, d)
  expect_error(glmm_response(fr, poisson(), w[-1]),
               "'weights' must be a numeric vector with one value per observation \\(60\\)")
  expect_error(glmm_response(fr, poisson(), replace(w, 1, -2)),
               "'weights' must not be negative \\(1 negative value\\)")
  expect_equal(glmm_response(fr, poisson(), replace(w, 1, 0))$weights, replace(w, 1, 0))
})

test_that("glmmControl() has glmer's defaults and validates its arguments", {
  ctrl <- glmmControl()
  expect_s3_class(ctrl, "glmmControl")
  expect_identical(class(ctrl), "glmmControl")
  expect_identical(ctrl$optimizer, c("bobyqa", "bobyqa"))
  expect_identical(ctrl$maxfun, 10000L)
  expect_identical(ctrl$maxit, 100L)
  expect_identical(ctrl$tolPwrss, 1e-7)
  expect_identical(ctrl$rhobeg, 0.5)
  expect_identical(ctrl$rhoend, 1e-5)
  expect_identical(ctrl$boundary.tol, 1e-5)
  expect_identical(ctrl$grad.tol, 0.002)
  expect_true(ctrl$calc.derivs)
  # NULL: the engine leaves the first stage out before its quasi-Newton stage
  expect_null(ctrl$nAGQ0initStep)
  expect_true("nAGQ0initStep" %in% names(ctrl))
  expect_identical(ctrl$check.response.not.const, "stop")
  expect_identical(glmmControl("Nelder_Mead")$optimizer, c("Nelder_Mead", "Nelder_Mead"))
  expect_identical(glmmControl(c("bobyqa", "Nelder_Mead"))$optimizer,
                   c("bobyqa", "Nelder_Mead"))
  expect_identical(glmmControl(maxit = 50)$maxit, 50L)
  # the same check settings as lmmControl(), and lme4's glmer defaults
  # (rhoend differs: the GLMM deviance carries PIRLS's error, see ?glmmControl)
  shared <- setdiff(names(lmmControl()), c("optimizer", "rhoend", "optimizer_fun",
                                           "restart_edge"))
  expect_identical(unclass(ctrl)[shared], unclass(lmmControl())[shared])
  skip_if_not_installed("lme4")
  gc <- lme4::glmerControl()
  for (nm in c("check.nlev.gtr.1", "check.nobs.vs.nlev", "check.nobs.vs.nRE",
               "check.rankX", "check.scaleX", "check.response.not.const")) {
    expect_identical(ctrl[[nm]], gc$checkControl[[nm]])
  }
  expect_identical(ctrl$tolPwrss, gc$tolPwrss)
  expect_identical(ctrl$boundary.tol, gc$boundary.tol)
  expect_identical(as_fit_control(gc, "glmm")$nAGQ0initStep, gc$nAGQ0initStep)
  expect_identical(ctrl$calc.derivs, gc$calc.derivs)
  expect_identical(ctrl$grad.tol, gc$checkConv$check.conv.grad$tol)
})

test_that("invalid glmmControl() values are errors naming the argument", {
  # a name is an optimizer of the engine's or a function with lme4's convention
  expect_error(glmmControl(optimizer = "nlminb"),
               "glmmControl\\(\\): the optimizer function nlminb must take the arguments fn, par, lower, control")
  expect_error(glmmControl(optimizer = "no_such"),
               "optimizer function \"no_such\": it is neither one of \"bobyqa\", \"nloptwrap\", \"Nelder_Mead\", \"none\"")
  expect_error(glmmControl(optimizer = rep("bobyqa", 3)), "'optimizer' must be one optimizer or two")
  expect_error(glmmControl(optimizer = 1), "'optimizer'")
  expect_error(glmmControl(maxit = 0), "glmmControl\\(\\): 'maxit' must be a single whole number >= 1, not 0")
  expect_error(glmmControl(maxit = 2.5), "'maxit' must be a single whole number")
  expect_error(glmmControl(maxfun = -1), "'maxfun' must be a single whole number")
  expect_error(glmmControl(tolPwrss = 0), "glmmControl\\(\\): 'tolPwrss' must be a single positive number")
  expect_error(glmmControl(tolPwrss = c(1e-7, 1e-8)), "'tolPwrss'")
  expect_error(glmmControl(rhobeg = 1e-9), "'rhoend' \\(1e-05\\) must not exceed 'rhobeg'")
  expect_error(glmmControl(boundary.tol = -1), "'boundary.tol' must be a single non-negative number")
  expect_error(glmmControl(calc.derivs = "yes"), "glmmControl\\(\\): 'calc.derivs' must be TRUE or FALSE")
  expect_error(glmmControl(nAGQ0initStep = NA), "'nAGQ0initStep' must be TRUE or FALSE")
  expect_error(glmmControl(check.response.not.const = "maybe"),
               "'check.response.not.const' should be one of \"stop\", \"warning\", \"message\", \"ignore\", not \"maybe\"")
  expect_error(glmmControl(check.nobs.vs.nlev = "loud"), "'check.nobs.vs.nlev' should be one of")
  expect_error(glmmControl(check.rankX = "drop"), "'check.rankX' should be one of")
  expect_error(glmmControl(grad.tol = -1), "'grad.tol' must be a single positive number")
  # lmmControl() messages are unchanged
  expect_error(lmmControl(rhobeg = -1), "^lmmControl\\(\\): 'rhobeg' must be a single positive number")
  expect_error(lmmControl(calc.derivs = 2), "^'calc.derivs' must be TRUE or FALSE")
})

test_that("glmmControl() prints its settings", {
  out <- capture.output(print(glmmControl()))
  expect_identical(out[1], "glmm control settings:")
  expect_true(any(grepl("tolPwrss", out)))
  expect_true(any(grepl("optimizer.*\"bobyqa\" \"bobyqa\"", out)))
  capture.output(expect_invisible(print(glmmControl())))
})
