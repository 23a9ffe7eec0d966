# Inference for fits with random effects in the zero-inflation model
# (glmmTMB's `ziformula = ~ x + (1 | g)`), side by side with glmmTMB 1.1.5:
# standard errors of predictions (predict(se.fit = TRUE): TMB's sdreport()
# over the joint (fixed, random) uncertainty), Wald and profile confint()
# rows of the zero-inflation standard deviations, and tidy()'s rows of the
# zero-inflation random effects.

skip_if_not_installed("glmmTMB")

zri_models <- list(
  list(name = "Salamanders Poisson, zi ~ mined + (1 | spp)",
       formula = count ~ mined + (1 | site), zi = ~ mined + (1 | spp),
       family = "poisson", data = "Salamanders", group_zi = "spp"),
  list(name = "Salamanders Poisson, zi ~ spp + (1 | site)",
       formula = count ~ spp + mined + (1 | site), zi = ~ spp + (1 | site),
       family = "poisson", data = "Salamanders", group_zi = "site"),
  list(name = "Owls nbinom1 with offset, zi ~ FoodTreatment + (1 | Nest)",
       formula = SiblingNegotiation ~ FoodTreatment + offset(log(BroodSize)) + (1 | Nest),
       zi = ~ FoodTreatment + (1 | Nest), family = "nbinom1", data = "Owls",
       group_zi = "Nest")
)

zri_data <- function(name) {
  e <- new.env()
  utils::data(list = name, package = "glmmTMB", envir = e)
  e[[name]]
}

zri_family <- function(name) {
  switch(name, poisson = stats::poisson(), nbinom1 = glmmTMB::nbinom1())
}

zri_fits <- local({
  cache <- NULL
  function() {
    if (is.null(cache)) {
      cache <<- lapply(zri_models, function(m) {
        d <- zri_data(m$data)
        fit <- glmm(m$formula, data = d, family = zri_family(m$family), ziformula = m$zi)
        ref <- glmmTMB::glmmTMB(m$formula, data = d, family = zri_family(m$family),
                                ziformula = m$zi)
        list(model = m, data = d, fit = fit, ref = ref)
      })
    }
    cache
  }
})

se_types <- c("link", "conditional", "response", "zlink", "zprob")

test_that("se.fit with the random effects matches glmmTMB's sdreport()", {
  for (f in zri_fits()) {
    label <- f$model$name
    for (type in se_types) {
      ours <- predict(f$fit, type = type, se.fit = TRUE)
      ref <- predict(f$ref, type = type, se.fit = TRUE)
      # (the two optima agree to ~1e-5 relative; the standard errors to 5e-5)
      expect_equal(unname(ours$fit), unname(ref$fit), tolerance = 1e-4,
                   label = paste(label, type, "fit"))
      expect_equal(unname(ours$se.fit), unname(ref$se.fit), tolerance = 5e-4,
                   label = paste(label, type, "se.fit"))
    }
  }
})

test_that("se.fit for newdata, with levels not in the fit, matches glmmTMB's", {
  f <- zri_fits()[[1L]]
  d <- f$data
  # the whole data as newdata (glmmTMB refuses subsets without new levels:
  # "contrasts mismatch")
  for (type in c("link", "response", "zprob")) {
    ours <- predict(f$fit, newdata = d, type = type, se.fit = TRUE)
    ref <- predict(f$ref, newdata = d, type = type, se.fit = TRUE)
    expect_equal(unname(ours$se.fit), unname(ref$se.fit), tolerance = 5e-4,
                 label = paste(type, "newdata"))
  }
  # new levels of the conditional (site) and of the zero-inflation (spp)
  # grouping factor: random effect 0 with its prior variance
  nd <- d[c(1, 5, 40, 100, 300), ]
  nd$spp <- as.character(nd$spp)
  nd$site <- as.character(nd$site)
  nd$spp[c(2, 4)] <- "new spp"
  nd$site[c(3, 4)] <- "new site"
  for (type in se_types) {
    ours <- predict(f$fit, newdata = nd, type = type, se.fit = TRUE, allow.new.levels = TRUE)
    ref <- predict(f$ref, newdata = nd, type = type, se.fit = TRUE, allow.new.levels = TRUE)
    expect_equal(unname(ours$fit), unname(ref$fit), tolerance = 1e-4,
                 label = paste(type, "new levels fit"))
    expect_equal(unname(ours$se.fit), unname(ref$se.fit), tolerance = 5e-4,
                 label = paste(type, "new levels se.fit"))
  }
  # a new zero-inflation level raises the zero-inflation standard error
  se <- predict(f$fit, newdata = nd, type = "zlink", se.fit = TRUE,
                allow.new.levels = TRUE)$se.fit
  expect_gt(se[[2L]], se[[1L]])
  # without allow.new.levels glmmTMB's warning, and the same predictions
  expect_warning(no_allow <- predict(f$fit, newdata = nd, type = "zprob", se.fit = TRUE),
                 "Predicting new random effect levels for terms:")
  expect_equal(no_allow, predict(f$fit, newdata = nd, type = "zprob", se.fit = TRUE,
                                 allow.new.levels = TRUE))
})

# Population-level standard errors (re.form = NA): the delta method on the
# conditional and zero-inflation coefficients. (glmmTMB 1.1.5's re.form = NA
# keeps the zero-inflation random effects, re-estimated with the conditional
# ones at 0, so it is no reference; the reference is the delta method on
# glmmTMB's own coefficients and covariance.)
test_that("se.fit with re.form = NA is the delta method on glmmTMB's coefficients", {
  for (f in zri_fits()) {
    label <- f$model$name
    d <- f$data
    X <- stats::model.matrix(lme4::nobars(f$model$formula), d)
    Xz <- stats::model.matrix(lme4::nobars(f$model$zi), d)
    b <- glmmTMB::fixef(f$ref)
    V <- vcov(f$ref, full = TRUE)[seq_len(ncol(X) + ncol(Xz)), seq_len(ncol(X) + ncol(Xz))]
    off <- if (f$model$data == "Owls") log(d$BroodSize) else 0
    eta <- drop(X %*% b$cond) + off
    zeta <- drop(Xz %*% b$zi)
    mu <- exp(eta)
    p <- stats::plogis(zeta)
    zero <- function(M) M * 0
    G <- list(link = cbind(X, zero(Xz)),
              conditional = cbind(X * mu, zero(Xz)),
              response = cbind(X * ((1 - p) * mu), Xz * (-mu * stats::dlogis(zeta))),
              zlink = cbind(zero(X), Xz),
              zprob = cbind(zero(X), Xz * stats::dlogis(zeta)))
    for (type in se_types) {
      ours <- predict(f$fit, type = type, se.fit = TRUE, re.form = NA)
      ref_se <- sqrt(rowSums((G[[type]] %*% V) * G[[type]]))
      expect_equal(unname(ours$se.fit), unname(ref_se), tolerance = 1e-3,
                   label = paste(label, type, "re.form = NA"))
    }
    nd <- d[c(1, 2, 50), ]
    expect_equal(predict(f$fit, newdata = nd, type = "response", se.fit = TRUE,
                         re.form = NA)$se.fit,
                 predict(f$fit, type = "response", se.fit = TRUE,
                         re.form = NA)$se.fit[c(1, 2, 50)],
                 tolerance = 1e-10, ignore_attr = TRUE, label = paste(label, "newdata"))
  }
})

test_that("Wald confint() has glmmTMB's zero-inflation standard-deviation rows", {
  for (f in zri_fits()) {
    label <- f$model$name
    ours <- confint(f$fit)
    ref <- confint(f$ref)
    expect_identical(rownames(ours), rownames(ref))
    zi_row <- paste0("zi.Std.Dev.(Intercept)|", f$model$group_zi)
    expect_true(zi_row %in% rownames(ours), label = paste(label, zi_row))
    expect_equal(unname(ours), unname(ref), tolerance = 1e-3, label = label)
    # "theta_" selects the standard deviations of both models (glmmTMB's
    # "theta_" selects both models' variance parameters)
    th <- confint(f$fit, parm = "theta_")
    expect_identical(rownames(th), grep("Std\\.Dev\\.", rownames(ref), value = TRUE))
    z <- confint(f$fit, component = "zi")
    expect_identical(rownames(z), grep("^zi\\.", rownames(ref), value = TRUE))
    expect_false(any(grepl("^zi\\.", rownames(confint(f$fit, component = "cond")))))
  }
  # a wider level gives a wider interval
  f <- zri_fits()[[1L]]
  row <- "zi.Std.Dev.(Intercept)|spp"
  expect_gt(diff(confint(f$fit, level = 0.99)[row, 1:2]),
            diff(confint(f$fit)[row, 1:2]))
})

test_that("profile confint() includes the zero-inflation standard deviations, as glmmTMB's", {
  # glmmTMB profiles the log standard deviations (rows theta_...): their
  # intervals, exponentiated, are those of the standard deviations
  f <- zri_fits()[[1L]]
  ours <- suppressWarnings(confint(f$fit, method = "profile"))
  ref <- confint(f$ref, method = "profile")
  expect_identical(rownames(ours), rownames(confint(f$fit)))
  fixed <- c(paste0("cond.", names(glmmTMB::fixef(f$ref)$cond)),
             paste0("zi.", names(glmmTMB::fixef(f$ref)$zi)))
  expect_equal(unname(ours[fixed, 1:2]), unname(ref[1:4, ]), tolerance = 1e-3)
  expect_equal(unname(ours[c("cond.Std.Dev.(Intercept)|site",
                             "zi.Std.Dev.(Intercept)|spp"), 1:2]),
               unname(exp(ref[c("theta_1|site.1", "theta_1|spp.1"), ])), tolerance = 2e-3)
  # On the other two models glmmTMB's profile() stops ("spline must be
  # monotone"); its confint(method = "uniroot") finds the ends by root
  # finding on the exact profile. Ours read them off a spline through the
  # profile's points (as lme4), within 0.5% of the exact ends here (the
  # deviance at our ends differs from the cutoff by up to 0.06). The points
  # themselves are checked against glmmTMB refitted with the zero-inflation
  # standard deviation held fixed (map = list(thetazi = NA)).
  for (f in zri_fits()[2:3]) {
    label <- f$model$name
    ours <- suppressWarnings(confint(f$fit, method = "profile", parm = "theta_"))
    ref <- suppressWarnings(confint(f$ref, method = "uniroot", parm = "theta_"))
    expect_identical(rownames(ours), c(
      paste0("cond.Std.Dev.(Intercept)|", f$model$group_zi),
      paste0("zi.Std.Dev.(Intercept)|", f$model$group_zi)))
    expect_equal(unname(ours[, 1:2]), unname(exp(ref[, 1:2])), tolerance = 1e-2, label = label)
    expect_true(all(ours[, 1L] < ours[, 3L] & ours[, 3L] < ours[, 2L]))
    pr <- profile(f$fit, which = "theta_", signames = FALSE)
    nm <- paste0("zi.sd_(Intercept)|", f$model$group_zi)
    pts <- pr[pr$.par == nm & abs(pr$.zeta) > 0.5 & abs(pr$.zeta) < 2.5, c(".zeta", nm)]
    expect_gt(nrow(pts), 1L)
    ll0 <- as.numeric(logLik(f$ref))
    for (k in seq_len(nrow(pts))) {
      v <- pts[[nm]][k]
      held <- glmmTMB::glmmTMB(f$model$formula, data = f$data,
                               family = zri_family(f$model$family), ziformula = f$model$zi,
                               start = list(thetazi = log(v)),
                               map = list(thetazi = factor(NA)))
      zeta_ref <- sign(pts$.zeta[k]) * sqrt(2 * (ll0 - as.numeric(logLik(held))))
      expect_equal(pts$.zeta[k], zeta_ref, tolerance = 1e-3,
                   label = paste(label, "zeta at zi sd", format(v)))
    }
  }
  # profile(): the zero-inflation variance parameters follow the conditional
  # model's, with lme4's .sigNN numbering or descriptive names
  f <- zri_fits()[[1L]]
  pr <- profile(f$fit, which = "theta_")
  expect_identical(levels(pr$.par), c(".sig01", ".sig02"))
  pr2 <- profile(f$fit, which = "theta_", signames = FALSE)
  expect_identical(levels(pr2$.par), c("sd_(Intercept)|site", "zi.sd_(Intercept)|spp"))
  expect_equal(unname(confint(pr2)), unname(confint(pr)), tolerance = 1e-8)
})

test_that("tidy() has the zero-inflation model's ran_pars and ran_vals rows as broom.mixed", {
  for (f in zri_fits()) {
    label <- f$model$name
    ours <- as.data.frame(tidy(f$fit, effects = c("fixed", "ran_pars", "ran_vals")))
    zrows <- ours[ours$effect != "fixed" & ours$component == "zi", ]
    expect_identical(unique(zrows$group), f$model$group_zi)
    expect_identical(sum(zrows$effect == "ran_pars"), 1L)
    expect_equal(zrows$estimate[zrows$effect == "ran_vals"],
                 unname(ranef(f$fit)$zi[[f$model$group_zi]][, 1L]), tolerance = 1e-12)
    only_zi <- as.data.frame(tidy(f$fit, effects = c("ran_pars", "ran_vals"),
                                  component = "zi"))
    expect_identical(unique(only_zi$component), "zi")
    expect_identical(nrow(only_zi), nrow(zrows))
    if (!requireNamespace("broom.mixed", quietly = TRUE)) next
    ref <- as.data.frame(broom.mixed::tidy(f$ref, effects = c("fixed", "ran_pars", "ran_vals")))
    expect_identical(names(ours), names(ref))
    expect_identical(ours[c("effect", "component", "group", "level", "term")],
                     ref[c("effect", "component", "group", "level", "term")], label = label)
    expect_equal(ours[c("estimate", "std.error")], ref[c("estimate", "std.error")],
                 tolerance = 1e-3, label = label)
    ci <- as.data.frame(tidy(f$fit, effects = "ran_pars", conf.int = TRUE))
    ci_ref <- as.data.frame(broom.mixed::tidy(f$ref, effects = "ran_pars", conf.int = TRUE))
    expect_identical(ci[c("component", "group", "term")], ci_ref[c("component", "group", "term")])
    expect_equal(ci[c("estimate", "conf.low", "conf.high")],
                 ci_ref[c("estimate", "conf.low", "conf.high")], tolerance = 1e-3, label = label)
  }
})
