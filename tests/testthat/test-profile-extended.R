# Profile and Wald intervals of fits with glmmTMB's families, zero inflation
# and dispersion models, and of glmm.nb() fits, side by side with glmmTMB and
# lme4. A profile interval's end is where the deviance, maximized over every
# other parameter, is qchisq(level, 1) above its minimum: each end is checked
# by a reference fit with that parameter held at it (glmmTMB's `map`, or lme4
# with an offset or a fixed theta), besides glmmTMB's own profile where it has
# one.

skip_if_not_installed("glmmTMB")
skip_if_not_installed("lme4")
suppressPackageStartupMessages(library(glmmTMB))

chi <- stats::qchisq(0.95, 1)

# 2 (logLik(full) - logLik(fit with one parameter held)) by glmmTMB: `par` is
# the parameter vector's name ("beta", "betazi", "betad", "theta"), `j` the
# position, `value` where it is held; the others start at the full fit's.
tmb_held <- function(full, par, j, value) {
  pl <- full$obj$env$parList(full$fit$par, full$fit$parfull)
  start <- pl[c("beta", "betazi", "betad", "theta")]
  start <- start[lengths(start) > 0L]
  start[[par]][j] <- value
  lev <- seq_along(start[[par]])
  lev[j] <- NA
  map <- stats::setNames(list(factor(lev)), par)
  held <- stats::update(full, start = start, map = map)
  2 * as.numeric(logLik(full) - logLik(held))
}

test_that("profile intervals of a negative binomial fit agree with glmmTMB's profile", {
  data(Owls, package = "glmmTMB")
  fit <- glmm(SiblingNegotiation ~ FoodTreatment + (1 | Nest), offset = log(BroodSize),
              family = nbinom2, data = Owls)
  ref <- glmmTMB(SiblingNegotiation ~ FoodTreatment + (1 | Nest), offset = log(BroodSize),
                 family = nbinom2, data = Owls)
  ours <- confint(fit, method = "profile", full = TRUE)
  expect_identical(rownames(ours), c("cond.(Intercept)", "cond.FoodTreatmentSatiated",
                                     "sigma", "cond.Std.Dev.(Intercept)|Nest"))
  theirs <- suppressWarnings(confint(ref, method = "profile"))
  # glmmTMB profiles the standard deviation as log sd ("theta_1|Nest.1").
  theirs_sd <- exp(theirs["theta_1|Nest.1", 1:2])
  width <- function(r) diff(r)
  for (k in 1:2) {
    expect_lt(abs(ours[k, 1] - theirs[k, 1]), 0.01 * width(ours[k, 1:2]))
    expect_lt(abs(ours[k, 2] - theirs[k, 2]), 0.01 * width(ours[k, 1:2]))
  }
  expect_lt(max(abs(ours[4, 1:2] - theirs_sd)), 0.01 * width(ours[4, 1:2]))
  # The dispersion (theta) row, which glmmTMB does not profile: each end held
  # by glmmTMB (its betad is log theta) is qchisq(0.95, 1) below the optimum.
  for (k in 1:2) {
    expect_lt(abs(tmb_held(ref, "betad", 1L, log(ours["sigma", k])) - chi), 0.02)
  }
  expect_equal(unname(ours["sigma", 3]), sigma(ref), tolerance = 1e-4)
})

test_that("profile intervals of a zero-inflated fit hold at glmmTMB's constrained fits", {
  data(Salamanders, package = "glmmTMB")
  fit <- glmm(count ~ mined + (1 | site), ziformula = ~mined, family = nbinom2,
              data = Salamanders)
  ref <- glmmTMB(count ~ mined + (1 | site), ziformula = ~mined, family = nbinom2,
                 data = Salamanders)
  ws <- character(0)
  ci <- withCallingHandlers(confint(fit, method = "profile"),
                            warning = function(w) {
                              ws <<- c(ws, conditionMessage(w))
                              invokeRestart("muffleWarning")
                            })
  expect_identical(rownames(ci), c("cond.(Intercept)", "cond.minedno", "zi.(Intercept)",
                                   "zi.minedno", "cond.Std.Dev.(Intercept)|site"))
  # Without zero inflation for unmined sites the likelihood stays within the
  # cutoff: the interval of zi.minedno is unbounded below, and said so.
  expect_identical(ci["zi.minedno", 1], -Inf)
  expect_true(any(grepl("^zi.minedno: the profile levels off", ws)))
  expect_lt(tmb_held(ref, "betazi", 2L, -30), chi)
  ends <- list(c("beta", 1L, "cond.(Intercept)"), c("beta", 2L, "cond.minedno"),
               c("betazi", 1L, "zi.(Intercept)"))
  for (e in ends) {
    for (k in 1:2) {
      d <- tmb_held(ref, e[1], as.integer(e[2]), ci[e[3], k])
      expect_lt(abs(d - chi), 0.02, label = paste(e[3], k))
    }
  }
  expect_lt(abs(tmb_held(ref, "betazi", 2L, ci["zi.minedno", 2]) - chi), 0.02)
  # The profile of a standard deviation bends sharply near 0, where the
  # spline through its points (lme4's reading) is least exact: 0.05 in the
  # deviance is 0.013 in zeta.
  sd_end <- ci["cond.Std.Dev.(Intercept)|site", 1:2]
  for (k in 1:2) expect_lt(abs(tmb_held(ref, "theta", 1L, log(sd_end[k])) - chi), 0.05)
  # Wald and profile estimates are the same column.
  wald <- confint(fit)
  expect_identical(ci[, 3], wald[, 3])
})

test_that("Wald and profile rows of a vector-valued term with a dispersion model", {
  data(sleepstudy, package = "lme4")
  fit <- glmm(Reaction ~ Days + (Days | Subject), dispformula = ~Days, family = gaussian,
              data = sleepstudy)
  ref <- glmmTMB(Reaction ~ Days + (Days | Subject), dispformula = ~Days, data = sleepstudy)
  wald <- confint(fit)
  theirs <- confint(ref)
  expect_identical(rownames(wald), rownames(theirs))
  expect_equal(wald, theirs, tolerance = 1e-4)
  ci <- confint(fit, method = "profile", parm = c("disp.Days", "theta_"))
  expect_identical(rownames(ci), c("disp.Days", "cond.Std.Dev.(Intercept)|Subject",
                                   "cond.Std.Dev.Days|Subject",
                                   "cond.Cor.Days.(Intercept)|Subject"))
  for (k in 1:2) {
    expect_lt(abs(tmb_held(ref, "betad", 2L, ci["disp.Days", k]) - chi), 0.02)
    expect_lt(abs(tmb_held(ref, "theta", 2L, log(ci["cond.Std.Dev.Days|Subject", k])) - chi),
              0.02)
    # glmmTMB's correlation parameter of a 2 x 2 term: rho / sqrt(1 - rho^2).
    rho <- ci["cond.Cor.Days.(Intercept)|Subject", k]
    expect_lt(abs(tmb_held(ref, "theta", 3L, rho / sqrt(1 - rho^2)) - chi), 0.02)
  }
})

test_that("Wald rows of a 3 x 3 term follow glmmTMB's rule", {
  set.seed(3)
  n <- 40
  g <- factor(rep(seq_len(n), each = 12))
  x <- stats::rnorm(12 * n)
  z <- stats::rnorm(12 * n)
  S <- matrix(c(1, 0.3, -0.2, 0.3, 0.5, 0.1, -0.2, 0.1, 0.4), 3)
  b <- matrix(stats::rnorm(3 * n), n) %*% chol(S)
  eta <- 1 + 0.5 * x - 0.3 * z + b[g, 1] + b[g, 2] * x + b[g, 3] * z
  d <- data.frame(y = stats::rnbinom(12 * n, mu = exp(eta), size = 3), x, z, g)
  fit <- glmm(y ~ x + z + (x + z | g), family = nbinom2, data = d)
  ref <- glmmTMB(y ~ x + z + (x + z | g), family = nbinom2, data = d)
  ours <- confint(fit, parm = "theta_")
  theirs <- confint(ref, parm = "theta_")
  expect_identical(rownames(ours), c("Std.Dev.(Intercept)|g", "Std.Dev.x|g", "Std.Dev.z|g",
                                     "Cor.x.(Intercept)|g", "Cor.z.(Intercept)|g",
                                     "Cor.z.x|g"))
  expect_identical(rownames(theirs), rownames(ours))
  expect_equal(unname(ours[, 1:2]), unname(theirs[, 1:2]), tolerance = 1e-3)
})

test_that("glmm.nb() profiles re-optimize theta; its ends hold at lme4's constrained fits", {
  data(grouseticks, package = "lme4")
  fit <- glmm.nb(TICKS ~ YEAR + (1 | BROOD), data = grouseticks)
  ref <- suppressWarnings(lme4::glmer.nb(TICKS ~ YEAR + (1 | BROOD), data = grouseticks))
  ci <- confint(fit, quiet = TRUE)
  expect_identical(rownames(ci), rownames(suppressWarnings(confint(ref, method = "Wald"))))
  ll <- as.numeric(logLik(ref))
  for (k in 1:2) {
    # YEAR97 held by an offset; theta and the rest re-optimized by glmer.nb.
    grouseticks$y96 <- as.numeric(grouseticks$YEAR == "96")
    grouseticks$held <- ci["YEAR97", k] * (grouseticks$YEAR == "97")
    h <- suppressWarnings(lme4::glmer.nb(TICKS ~ y96 + offset(held) + (1 | BROOD),
                                         data = grouseticks))
    expect_lt(abs(2 * (ll - as.numeric(logLik(h))) - chi), 0.05)
  }
  # theta, profiled on request: at each end, lme4's fit with theta held there.
  pr <- profile(fit, which = "theta")
  th <- confint(pr)
  expect_identical(rownames(th), "theta")
  for (k in 1:2) {
    h <- lme4::glmer(TICKS ~ YEAR + (1 | BROOD), data = grouseticks,
                     family = MASS::negative.binomial(th[1, k]))
    expect_lt(abs(2 * (ll - as.numeric(logLik(h))) - chi), 0.05)
  }
  expect_equal(unname(attr(pr, "optimum")[["theta"]]), lme4::getME(ref, "glmer.nb.theta"),
               tolerance = 1e-3)
})

test_that("unsupported interval methods of glmmTMB-style fits are errors that say so", {
  data(Salamanders, package = "glmmTMB")
  fit <- glmm(count ~ mined + (1 | site), family = nbinom1, data = Salamanders)
  expect_error(confint(fit, method = "boot"), "not available for glmmTMB-style fits")
  expect_error(confint(fit, method = "uniroot"), "not available for glmmTMB-style fits")
  expect_error(confint(fit, method = "profile", parm = "nope"), "unknown 'parm'")
  expect_error(profile(fit, which = "nope"), "unknown parameters")
})
