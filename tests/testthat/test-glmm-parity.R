# glmm() against lme4::glmer() on the same models, side by side.
#
# The log-likelihood may never be worse than glmer's by more than 1e-3. The
# reference is glmer run to full precision (bobyqa in both stages to
# rhoend = 1e-10, tolPwrss = 1e-12, see helper-glmm.R) because glmer's defaults stop short of it: its
# Nelder-Mead second stage and PIRLS tolerance leave the deviance up to ~1e-3
# above the optimum, moving standard errors by up to 1%; for families with a
# dispersion (Gamma, inverse.gaussian, gaussian) its loose PIRLS even biases
# the reported likelihood and makes the finite-difference Hessian (hence its
# standard errors) noise. The comparison with default glmer is therefore
# made for binomial and Poisson models only. Fixed effects within `tol`
# standard errors, standard errors and random-effect standard deviations
# within `tol` relative, with tol = 1e-3 where the two optima agree to 5e-6 in
# log-likelihood and 1e-2 otherwise.

skip_if_not_installed("lme4")

glmm_sim <- function(seed = 1, n = 500) {
  set.seed(seed)
  d <- data.frame(
    subj = factor(sample(sprintf("s%02d", 1:40), n, replace = TRUE)),
    item = factor(sample(sprintf("i%02d", 1:15), n, replace = TRUE)),
    site = factor(sample(letters[1:6], n, replace = TRUE)),
    x = rnorm(n), z = runif(n, 0.5, 2), exposure = runif(n, 1, 4)
  )
  d$class <- factor(paste(d$site, sample(1:4, n, replace = TRUE), sep = "."))
  su <- rnorm(40, sd = 0.7)[d$subj]
  ss <- rnorm(40, sd = 0.3)[d$subj]
  iu <- rnorm(15, sd = 0.4)[d$item]
  eta <- -0.2 + 0.5 * d$x + su + ss * d$x + iu
  d$bin <- rbinom(n, 1, plogis(eta))
  d$binf <- factor(ifelse(d$bin == 1, "yes", "no"), levels = c("no", "yes"))
  d$binl <- d$bin == 1
  d$trials <- sample(2:8, n, replace = TRUE)
  d$succ <- rbinom(n, d$trials, plogis(eta))
  d$prop <- d$succ / d$trials
  d$count <- rpois(n, d$exposure * exp(0.3 + 0.4 * d$x + 0.5 * rnorm(6)[d$site] + iu))
  mu_pos <- exp(1 + 0.3 * d$x + su / 2)
  d$gam <- rgamma(n, shape = 4, rate = 4 / mu_pos)
  d$ig <- statmod_rinvgauss(n, mu_pos)
  d$gau <- rnorm(n, mean = mu_pos, sd = 0.3)
  d$xp <- runif(n)
  d$gam_inv <- rgamma(n, shape = 5, rate = 5 * (0.8 + 0.3 * d$xp + 0.15 * abs(su)))
  d
}

# Inverse Gaussian draws (Michael, Schucany and Haas) with shape 5.
statmod_rinvgauss <- function(n, mu, shape = 5) {
  v <- rnorm(n)^2
  x <- mu + mu^2 * v / (2 * shape) - mu / (2 * shape) * sqrt(4 * mu * shape * v + mu^2 * v^2)
  ifelse(runif(n) <= mu / (mu + x), x, mu^2 / x)
}

glmm_parity_models <- function() {
  data("cbpp", "grouseticks", package = "lme4", envir = environment())
  d <- glmm_sim()
  list(
    cbpp_cbind = list(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                      family = quote(binomial)),
    cbpp_proportion = list(incidence / size ~ period + (1 | herd), cbpp,
                           family = quote(binomial), weights = quote(size)),
    cbpp_probit = list(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                       family = quote(binomial(link = "probit"))),
    cbpp_nagq0 = list(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                      family = quote(binomial), nAGQ = 0L),
    cbpp_nagq7 = list(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                      family = quote(binomial), nAGQ = 7L),
    binary_crossed_slopes = list(bin ~ x + (x | subj) + (1 | item), d, family = quote(binomial)),
    factor_cloglog = list(binf ~ x + (1 | subj), d, family = quote(binomial(link = "cloglog"))),
    logical_cauchit_nagq5 = list(binl ~ x + (1 | subj), d,
                                 family = quote(binomial(link = "cauchit")), nAGQ = 5L),
    cbind_crossed = list(cbind(succ, trials - succ) ~ x + (1 | subj) + (1 | item), d,
                         family = quote(binomial)),
    poisson_offset_nested = list(count ~ x + offset(log(exposure)) + (1 | site/class) + (1 | item),
                                 d, family = quote(poisson)),
    poisson_sqrt_offset_arg = list(count ~ x + (1 | item), d, family = quote(poisson(link = "sqrt")),
                                   offset = quote(sqrt(exposure))),
    grouseticks = list(TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),
                       grouseticks, family = quote(poisson)),
    gamma_log = list(gam ~ x + (1 | subj), d, family = quote(Gamma(link = "log"))),
    gamma_inverse = list(gam_inv ~ xp + (1 | subj), d, family = quote(Gamma)),
    inverse_gaussian_log = list(ig ~ x + (1 | subj), d, family = quote(inverse.gaussian(link = "log"))),
    gaussian_log = list(gau ~ x + (1 | subj), d, family = quote(gaussian(link = "log")))
  )
}

fit_glmm_both <- function(spec, tight = TRUE) {
  formula <- spec[[1]]
  data <- spec[[2]]
  extra <- spec[-(1:2)]
  ours <- as.call(c(list(quote(glmm), formula = formula, data = quote(data)), extra))
  ref <- ours
  ref[[1]] <- quote(lme4::glmer)
  env <- environment()
  out <- list(fit = suppressMessages(eval(ours, env)),
              ref = suppressWarnings(suppressMessages(eval(ref, env))))
  if (tight) out$tight <- glmer_tight(ref, env)
  out
}

test_that("at least 10 GLMMs match glmer: likelihood, estimates, SEs, variance components", {
  models <- glmm_parity_models()
  expect_gte(length(models), 10)
  for (name in names(models)) {
    pair <- fit_glmm_both(models[[name]])
    fit <- pair$fit
    info <- paste("model", name)
    ll <- as.numeric(logLik(fit))
    fam <- fit$family
    canonical <- identical(fam$link, switch(fam$family, binomial = "logit", poisson = "log",
                                            Gamma = "inverse", "none"))
    if (fam$family %in% c("binomial", "poisson")) {
      expect_gt(ll, as.numeric(logLik(pair$ref)) - 1e-3, label = paste(info, "logLik vs glmer"))
    }
    ref <- pair$tight
    ll_ref <- as.numeric(logLik(ref))
    expect_gt(ll, ll_ref - 1e-3, label = paste(info, "logLik vs tight glmer"))
    tol <- if (abs(ll - ll_ref) < 5e-6 && canonical) 1e-3 else 1e-2
    if (fam$family == "inverse.gaussian") {
      # glmer's PIRLS cannot reach a tight tolerance here and its Hessian is
      # noise: only the likelihood and the variance components are compared
      expect_equal(as.data.frame(VarCorr(fit))$sdcor,
                   as.data.frame(lme4::VarCorr(ref))$sdcor, tolerance = 2e-2,
                   label = paste(info, "sdcor"))
      next
    }
    se_ref <- sqrt(diag(as.matrix(vcov(ref))))
    expect_equal(names(fixef(fit)), names(lme4::fixef(ref)), label = info)
    expect_true(all(abs(fixef(fit) - lme4::fixef(ref)) < tol * se_ref),
                label = paste(info, "fixef within", tol, "SE"))
    expect_equal(unname(sqrt(diag(vcov(fit)))), unname(se_ref), tolerance = tol,
                 label = paste(info, "SE"))
    vc <- as.data.frame(VarCorr(fit))
    vc_ref <- as.data.frame(lme4::VarCorr(ref))
    expect_equal(vc[, c("grp", "var1", "var2")], vc_ref[, c("grp", "var1", "var2")],
                 label = paste(info, "VarCorr layout"))
    expect_equal(vc$sdcor, vc_ref$sdcor, tolerance = tol * 2, label = paste(info, "sdcor"))
    expect_equal(unname(fit$mu), unname(fitted(ref)), tolerance = tol,
                 label = paste(info, "fitted"))
    expect_equal(fit$devcomp$dims[["nAGQ"]], ref@devcomp$dims[["nAGQ"]], label = info)
    expect_equal(fit$devcomp$dims[["useSc"]], ref@devcomp$dims[["useSc"]], label = info)
  }
})

test_that("the Laplace deviance equals glmer's deviance function at arbitrary parameters", {
  data("cbpp", package = "lme4", envir = environment())
  d <- glmm_sim(seed = 4, n = 300)
  cases <- list(
    list(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial()),
    list(count ~ x + offset(log(exposure)) + (1 | site) + (1 | item), d, poisson()),
    list(gam ~ x + (1 | subj), d, Gamma(link = "log"))
  )
  for (cs in cases) {
    devfun <- lme4::glmer(cs[[1]], data = cs[[2]], family = cs[[3]], devFunOnly = TRUE,
                          control = lme4::glmerControl(tolPwrss = 1e-12))
    fit <- suppressMessages(glmm(cs[[1]], data = cs[[2]], family = cs[[3]]))
    # our estimates, evaluated by lme4: must agree with our criterion
    pars <- c(unname(fit$theta), unname(fit$beta))
    expect_equal(devfun(pars), fit$devcomp$cmp[["dev"]], tolerance = 1e-6,
                 label = deparse1(cs[[1]]))
  }
})

test_that("bad GLMM arguments give errors naming the cause", {
  data("cbpp", package = "lme4", envir = environment())
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  expect_error(glmm(f, cbpp, family = binomial, nAGQ = 101), "'nAGQ' must be a whole number from 0 to 100")
  expect_error(glmm(f, cbpp, family = binomial, nAGQ = -1), "'nAGQ'")
  expect_error(glmm(f, cbpp, family = binomial, nAGQ = 1.5), "'nAGQ'")
  d <- glmm_sim(seed = 3, n = 200)
  expect_error(glmm(bin ~ x + (1 | subj) + (1 | item), d, family = binomial, nAGQ = 5),
               "single scalar random-effects term.*2 terms")
  expect_error(glmm(bin ~ x + (x | subj), d, family = binomial, nAGQ = 3),
               "single scalar random-effects term")
  expect_error(glmm(f, cbpp, family = binomial, control = lmmControl()),
               "'control' must be built by glmmControl")
  expect_error(glmm(f, cbpp, family = binomial, start = list(beta = 1)), "bad name\\(s\\) in 'start': beta")
  expect_error(glmm(f, cbpp, family = binomial, start = list(1, 2)),
               "bad name\\(s\\) in 'start': its elements have no names")
  expect_error(glmm(f, cbpp, family = binomial, start = list(fixef = 1)),
               "'start\\$fixef' must be a finite numeric vector of length 4")
  expect_error(glmm(f, cbpp, family = binomial, nAGQ = 0, start = list(fixef = rep(0, 4))),
               "cannot give 'fixef' with nAGQ = 0")
  expect_error(glmm(f, cbpp, family = "quasibinomial"), "quasibinomial")
  # gaussian with the identity link is glmer's shortcut to the LMM (before, an error)
  expect_warning(glmm(incidence ~ period + (1 | herd), cbpp, family = gaussian), "lmm\\(\\)")
})

test_that("start values and both optimizers reach the same optimum", {
  data("cbpp", package = "lme4", envir = environment())
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  a <- glmm(f, cbpp, family = binomial)
  b <- glmm(f, cbpp, family = binomial, start = list(theta = 0.5, fixef = c(-1, -1, -1, -1)))
  c <- glmm(f, cbpp, family = binomial, control = glmmControl(optimizer = c("bobyqa", "Nelder_Mead")))
  expect_equal(b$devcomp$cmp[["dev"]], a$devcomp$cmp[["dev"]], tolerance = 1e-8)
  expect_equal(c$devcomp$cmp[["dev"]], a$devcomp$cmp[["dev"]], tolerance = 1e-6)
  expect_equal(c$optinfo$optimizer, c("bobyqa", "Nelder_Mead"))
})

test_that("finite-difference SEs of a non-canonical GLMM equal glmer's at a tight PIRLS tolerance", {
  skip_if_no_glmm()
  # Gamma with a log link: PIRLS converges only linearly, so a deviance evaluated from wherever
  # the previous one stopped carries an error that the finite differences divide by 1e-8.
  # Every evaluation of the Hessian starts from the optimum's modes and is made as exact as
  # rounding allows, as is the centre; glmer gets there only with tolPwrss = 1e-13 (with its
  # default tolerance its SE of the intercept is 3e-5 off, and ours were 1.6e-3 off before).
  d <- gamma_data()
  fit <- glmm(y ~ x + (1 | g), family = Gamma(link = "log"), data = d)
  ref <- suppressWarnings(lme4::glmer(y ~ x + (1 | g), family = Gamma(link = "log"), data = d,
                                      control = glmer_reference_control(tolPwrss = 1e-13)))
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-8)
  expect_equal(unname(sqrt(diag(vcov(fit)))), unname(sqrt(diag(as.matrix(vcov(ref))))),
               tolerance = 1e-4)
})
