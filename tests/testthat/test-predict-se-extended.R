# predict(se.fit = TRUE) of glmmTMB-style fits with the random effects
# (re.form = NULL; R/predict-se-extended.R) side by side with glmmTMB's
# predict(se.fit = TRUE) (TMB's sdreport() of the prediction) on glmmTMB's
# fit of the same model: every type, without and with newdata, levels of
# newdata not in the fit (allow.new.levels = TRUE), rows the fit dropped
# (na.exclude); bad input is an error naming the cause.
#
# Tolerances: glmmTMB is run to its optimum (tight nlminb tolerances), so the
# estimates of the two fits differ by up to ~3e-6 (Owls). Predictions are
# compared within 1e-5 relative + 1e-5 (observed: up to 5e-6 absolute, i.e.
# ~2e-5 relative on a linear predictor of 0.22, and ~5e-6 relative on the
# means).
# Standard errors within 1e-3 relative: observed at most ~2.5e-5 (the
# differences of the estimates and of the two Hessians, TMB's automatic
# derivatives and our finite differences); a missing part of the variance
# (the conditional variance of the random effects, the modes moving with the
# parameters, a new level's prior variance) changes them by far more.

skip_if_not_installed("glmmTMB")

tmb_tight <- function() {
  glmmTMB::glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-12))
}

# Our fit and glmmTMB's of the same model.
se_pair <- function(formula, data, family, ziformula = NULL, dispformula = NULL, ...) {
  ours <- list(formula, data = data, family = family, ...)
  ref <- list(formula, data = data, family = family, control = tmb_tight(), ...)
  if (!is.null(ziformula)) ours$ziformula <- ref$ziformula <- ziformula
  if (!is.null(dispformula)) ours$dispformula <- ref$dispformula <- dispformula
  list(fit = suppressMessages(do.call(glmm, ours)),
       ref = suppressWarnings(do.call(glmmTMB::glmmTMB, ref)))
}

# |ours - ref| <= rel |ref| + abs, elementwise (equal infinite values agree),
# NA where glmmTMB's is NA.
expect_close <- function(ours, ref, rel, abs = 0, info = NULL) {
  ours <- as.numeric(ours)
  ref <- as.numeric(ref)
  expect_identical(is.na(ours), is.na(ref), info = info)
  ok <- !is.na(ref) & !(is.infinite(ref) & ours %in% ref)
  worst <- max(c(0, abs(ours[ok] - ref[ok]) - (rel * abs(ref[ok]) + abs)))
  expect(worst <= 0, sprintf("%s: values differ by up to %.3g beyond the tolerance",
                             if (is.null(info)) "" else info, worst))
}

# predict(se.fit = TRUE) of both fits for each type, compared.
expect_same_se <- function(pair, types, newdata = NULL, label = "", ...) {
  for (type in types) {
    info <- paste(label, type)
    ours <- predict(pair$fit, newdata = newdata, type = type, se.fit = TRUE, ...)
    # (glmmTMB pads the rows its fit dropped only when newdata is missing)
    ref <- suppressWarnings(if (is.null(newdata)) {
      predict(pair$ref, type = type, se.fit = TRUE, ...)
    } else {
      predict(pair$ref, newdata = newdata, type = type, se.fit = TRUE, ...)
    })
    expect_named(ours, c("fit", "se.fit"))
    expect_identical(length(ours$se.fit), length(ref$se.fit), info = info)
    expect_identical(names(ours$se.fit), names(ours$fit), info = info)
    expect_close(ours$fit, ref$fit, rel = 1e-5, abs = 1e-5, info = paste(info, "fit"))
    expect_close(ours$se.fit, ref$se.fit, rel = 1e-3, info = paste(info, "se.fit"))
  }
}

all_types <- c("link", "response", "conditional", "zprob", "zlink", "disp")

Salamanders <- glmmTMB::Salamanders
Owls <- glmmTMB::Owls
sleepstudy <- lme4::sleepstudy

zinb <- se_pair(count ~ mined + (1 | site), Salamanders, glmmTMB::nbinom2(),
                ziformula = ~mined)

test_that("zero-inflated nbinom2 (Salamanders): every type, fitted rows and newdata", {
  expect_same_se(zinb, all_types, label = "zinb")
  # (site as character: glmmTMB refuses a factor whose contrasts differ from
  # the fit's once unused levels are dropped)
  nd <- Salamanders[c(1, 20, 300, 644, 77), c("mined", "site")]
  nd$site <- as.character(nd$site)
  expect_same_se(zinb, all_types, nd, label = "zinb newdata")
  # a new site: random effect 0, its prior variance in the standard error
  nd_new <- data.frame(mined = factor(c("yes", "no", "no"), levels = levels(Salamanders$mined)),
                       site = c("R-1", "elsewhere", "VF-3"))
  expect_same_se(zinb, all_types, nd_new, label = "zinb new level", allow.new.levels = TRUE)
  # with the random effects the standard errors are larger than the
  # population-level ones (which glmmTMB gives too)
  with_re <- predict(zinb$fit, nd, se.fit = TRUE)$se.fit
  pop <- predict(zinb$fit, nd, se.fit = TRUE, re.form = NA)$se.fit
  expect_true(all(with_re > pop))
})

test_that("nbinom1 with an offset (Owls), fitted rows and newdata with a new nest", {
  owls <- se_pair(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) +
                    (1 | Nest), Owls, glmmTMB::nbinom1())
  # no zero inflation: zprob and zlink are 0 and -Inf with NA standard errors
  expect_same_se(owls, all_types, label = "owls")
  nd <- Owls[c(1, 50, 300, 599), c("FoodTreatment", "SexParent", "BroodSize", "Nest")]
  expect_same_se(owls, c("link", "response", "conditional"), nd, label = "owls newdata")
  nd$Nest <- as.character(nd$Nest)
  nd$Nest[2] <- "Nowhere"
  expect_same_se(owls, c("link", "response"), nd, label = "owls new level",
                 allow.new.levels = TRUE)
})

test_that("gaussian (Days | Subject) with a dispersion model (sleepstudy)", {
  sleep <- se_pair(Reaction ~ Days + (Days | Subject), sleepstudy, gaussian(),
                   dispformula = ~Days)
  expect_same_se(sleep, c("link", "response", "conditional", "disp"), label = "sleep")
  # a new subject: the 2 x 2 prior covariance of its intercept and slope
  nd <- data.frame(Days = c(0, 4.5, 9, 12), Subject = c("308", "309", "372", "999"))
  expect_same_se(sleep, c("link", "response", "disp"), nd, label = "sleep newdata",
                 allow.new.levels = TRUE)
})

test_that("beta with crossed random effects (simulated)", {
  beta <- se_pair(prop ~ x + (1 | subject) + (1 | item), simulate_beta_crossed(),
                  glmmTMB::beta_family())
  expect_same_se(beta, c("link", "response", "conditional", "disp"), label = "beta")
  # a new subject with a seen item; a seen subject with a new item
  nd <- data.frame(x = c(-1, 0, 2, 0.5), subject = c("3", "40", "41", "7"),
                   item = c("1", "8", "2", "9"))
  expect_same_se(beta, c("link", "response"), nd, label = "beta newdata",
                 allow.new.levels = TRUE)
})

test_that("Gamma with a dispersion model (simulated): 1 / sqrt(phi) reported", {
  gam <- se_pair(y ~ x + (1 | g), simulate_gamma_disp(), Gamma(link = "log"),
                 dispformula = ~type)
  expect_same_se(gam, c("link", "response", "disp"), label = "Gamma")
  nd <- data.frame(x = c(0, 1), g = c("4", "31"), type = c("a", "b"))
  expect_same_se(gam, c("link", "response", "disp"), nd, label = "Gamma newdata",
                 allow.new.levels = TRUE)
})

test_that("rows the fit dropped (na.exclude) have NA standard errors, as in glmmTMB", {
  d <- Salamanders
  d$DOY2 <- d$DOY
  d$DOY2[c(3, 10, 200)] <- NA
  pair <- list(
    fit = glmm(count ~ mined + DOY2 + (1 | site), data = d, family = "nbinom2",
               ziformula = ~mined, na.action = na.exclude),
    ref = suppressWarnings(glmmTMB::glmmTMB(count ~ mined + DOY2 + (1 | site), data = d,
                                            family = glmmTMB::nbinom2(), ziformula = ~mined,
                                            na.action = na.exclude, control = tmb_tight())))
  expect_same_se(pair, c("link", "response", "zprob", "disp"), label = "na.exclude")
  se <- predict(pair$fit, type = "response", se.fit = TRUE)$se.fit
  expect_identical(which(is.na(se)), c(`3` = 3L, `10` = 10L, `200` = 200L))
})

test_that("structured covariance terms (diag, cs, ar1, toep), with zero inflation too", {
  # counts over 4 times in 60 groups with an AR(1)-like random effect
  # whose standard deviation grows with time
  set.seed(3)
  d <- expand.grid(t = factor(1:4), g = factor(1:60), rep = 1:2)
  S <- 0.6^abs(outer(1:4, 1:4, "-")) * outer(c(1, 1.5, 2, 2.5), c(1, 1.5, 2, 2.5))
  b <- t(chol(S)) %*% matrix(stats::rnorm(4 * 60), 4)
  y <- 1 + b[cbind(as.integer(d$t), as.integer(d$g))] + stats::rnorm(nrow(d), sd = 0.5)
  d$x <- stats::rnorm(nrow(d))
  d$cnt <- stats::rpois(nrow(d), exp(0.3 * y))
  nd <- d[c(1, 50, 300), ]
  for (s in c("diag", "cs", "ar1", "toep")) {
    f <- stats::as.formula(sprintf("cnt ~ x + %s(t + 0 | g)", s))
    pair <- se_pair(f, d, poisson, dispformula = ~1)
    expect_same_se(pair, c("link", "response"), label = s)
    expect_same_se(pair, "response", newdata = nd, label = paste(s, "newdata"))
  }
  pair <- se_pair(cnt ~ x + ar1(t + 0 | g), d, poisson, ziformula = ~x)
  expect_same_se(pair, c("response", "zprob"), label = "ar1, zero inflation")
  # A standard deviation estimated at 0 (glmmTMB: log sd -23) adds no
  # uncertainty, as in glmmTMB (its parameter, infinite there, moves nothing);
  # the rest of the covariance comes from Hessians that differ near that
  # boundary (ours one-sided in the standard deviation itself): within 1%.
  set.seed(3)
  b <- t(chol(S)) %*% matrix(stats::rnorm(4 * 60), 4)
  d$x <- stats::rnorm(nrow(d))
  d$cnt <- stats::rpois(nrow(d), exp(0.3 + 0.3 * b[cbind(as.integer(d$t), as.integer(d$g))]))
  pair <- se_pair(cnt ~ x + cs(t + 0 | g), d, poisson, dispformula = ~1)
  expect_equal(unname(pair$fit$par[1L]), 0)
  ours <- predict(pair$fit, se.fit = TRUE)
  ref <- predict(pair$ref, se.fit = TRUE)
  expect_close(ours$se.fit, ref$se.fit, rel = 1e-2, info = "cs at a boundary, se.fit")
})

test_that("bad input is an error naming the cause", {
  # a type glmmTMB does not have
  expect_error(predict(zinb$fit, type = "zeta", se.fit = TRUE), "should be one of")
  # a re.form selecting terms (glmmTMB takes NULL, NA or ~0 only)
  expect_error(predict(zinb$fit, re.form = ~ (1 | site), se.fit = TRUE), "re.form = NULL")
})

test_that("missing and new grouping values are predicted as glmmTMB predicts them", {
  # a missing value: the population level for that term (glmmTMB's way of
  # asking for it), silently, with or without allow.new.levels
  nd <- data.frame(mined = c("no", "yes"), site = NA)
  for (type in c("link", "response", "zprob")) {
    ref <- predict(zinb$ref, nd, type = type, se.fit = TRUE)
    expect_silent(ours <- predict(zinb$fit, nd, type = type, se.fit = TRUE))
    expect_equal(unname(ours$fit), unname(ref$fit), tolerance = 1e-4)
    expect_equal(unname(ours$se.fit), unname(ref$se.fit), tolerance = 5e-4)
    expect_equal(predict(zinb$fit, nd, type = type, allow.new.levels = TRUE), ours$fit)
  }
  # a new level: glmmTMB's warning, then the new level's prediction
  nd2 <- data.frame(mined = "no", site = "elsewhere")
  expect_warning(ours <- predict(zinb$fit, nd2, se.fit = TRUE),
                 "Predicting new random effect levels for terms: 1 \\| site")
  ref <- suppressWarnings(predict(zinb$ref, nd2, se.fit = TRUE))
  expect_equal(unname(ours$se.fit), unname(ref$se.fit), tolerance = 5e-4)
  expect_silent(predict(zinb$fit, nd2, allow.new.levels = TRUE))
})
