# VarCorr(), ranef() and coef() of glmmTMB-style fits (R/varcorr-extended.R)
# side by side with glmmTMB's on glmmTMB's fit of the same model: structure
# (names, classes, dimensions, dimnames, attributes), values, printouts and
# as.data.frame(); glmm.nb() fits keep lme4's objects.
#
# Tolerances: glmmTMB is run to its optimum (tight nlminb tolerances), so the
# estimates of the two fits differ by ~1e-6; standard deviations and
# correlations are compared within 2e-3, conditional modes within 1e-3
# relative + 1e-6. Conditional standard deviations (glmmTMB's sdreport():
# the conditional variance plus the part due to the estimated parameters)
# within 2%: the second part comes from two different Hessians of the
# Laplace approximation (TMB's automatic derivatives, our finite
# differences), which agree to ~1%.

skip_if_not_installed("glmmTMB")

tmb_tight <- function() {
  glmmTMB::glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-12))
}

# Our fit and glmmTMB's of the same model (the same data name in both calls).
re_pair <- function(formula, data, family, ziformula = NULL, dispformula = NULL) {
  ours <- list(formula, data = data, family = family)
  ref <- list(formula, data = data, family = family, control = tmb_tight())
  if (!is.null(ziformula)) ours$ziformula <- ref$ziformula <- ziformula
  if (!is.null(dispformula)) ours$dispformula <- ref$dispformula <- dispformula
  list(fit = suppressMessages(do.call(glmm, ours)),
       ref = suppressWarnings(do.call(glmmTMB::glmmTMB, ref)))
}

Salamanders <- glmmTMB::Salamanders
Owls <- glmmTMB::Owls
sleepstudy <- lme4::sleepstudy

pairs <- list(
  zinb = re_pair(count ~ mined + (1 | site), Salamanders, glmmTMB::nbinom2(),
                 ziformula = ~mined),
  sleep_disp = re_pair(Reaction ~ Days + (Days | Subject), sleepstudy, gaussian(),
                       dispformula = ~Days),
  # no dispersion model in glmmTMB's call (its default ~1): a residual row
  sleep = re_pair(Reaction ~ Days + (Days | Subject), sleepstudy, gaussian(),
                  dispformula = ~1),
  owls = re_pair(SiblingNegotiation ~ FoodTreatment + (1 | Nest), Owls, glmmTMB::nbinom1()),
  crossed = re_pair(count ~ mined + (1 | site) + (1 | spp), Salamanders, glmmTMB::nbinom2()),
  # a grouping factor with two terms: the "condVar" attribute is a list
  two_terms = re_pair(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy,
                      gaussian(), dispformula = ~1)
)

# |ours - ref| <= rel |ref| + abs, elementwise.
expect_close <- function(ours, ref, rel, abs = 0, info = NULL) {
  ours <- as.numeric(ours)
  ref <- as.numeric(ref)
  expect_identical(is.na(ours), is.na(ref), info = info)
  ok <- !is.na(ref)
  worst <- max(c(0, abs(ours[ok] - ref[ok]) - (rel * abs(ref[ok]) + abs)))
  expect(worst <= 0, sprintf("%s: values differ by up to %.3g beyond the tolerance",
                             if (is.null(info)) "" else info, worst))
}

# Printed lines: identical text, or (numbers differing in the last digit)
# the same layout -- each line as long as glmmTMB's -- with the numbers
# parsed and compared within `rel_tol` or one unit in the last digit.
expect_same_layout <- function(ours, ref, rel_tol) {
  if (identical(ours, ref)) return(succeed())
  expect_identical(nchar(ours), nchar(ref))
  expect_same_print(ours, ref, rel_tol = rel_tol)
}

test_that("the fits are glmmTMB-style", {
  for (nm in names(pairs)) expect_true(mixedrs:::is_extended_fit(pairs[[nm]]$fit), info = nm)
})

test_that("VarCorr() has glmmTMB's structure and values", {
  for (nm in names(pairs)) {
    ours <- VarCorr(pairs[[nm]]$fit)
    ref <- VarCorr(pairs[[nm]]$ref)
    expect_s3_class(ours, "VarCorr_components")
    expect_identical(names(ours), names(ref), info = nm)
    expect_null(ours$zi)
    expect_identical(attr(ours, "sc"), attr(ref, "sc"), info = nm)
    expect_identical(names(ours$cond), names(ref$cond), info = nm)
    expect_identical(attr(ours$cond, "useSc"), attr(ref$cond, "useSc"), info = nm)
    expect_close(attr(ours$cond, "sc"), attr(ref$cond, "sc"), rel = 2e-3, info = nm)
    for (g in names(ref$cond)) {
      o <- ours$cond[[g]]
      r <- ref$cond[[g]]
      expect_true(is.matrix(o))
      expect_identical(dimnames(o), dimnames(r), info = nm)
      expect_identical(attr(o, "blockCode"), attr(r, "blockCode"), info = nm)
      expect_identical(names(attr(o, "stddev")), names(attr(r, "stddev")), info = nm)
      expect_identical(dimnames(attr(o, "correlation")), dimnames(attr(r, "correlation")))
      expect_close(attr(o, "stddev"), attr(r, "stddev"), rel = 2e-3, info = nm)
      expect_close(attr(o, "correlation"), attr(r, "correlation"), rel = 2e-3, abs = 2e-3,
                   info = nm)
      expect_close(o, r, rel = 4e-3, abs = 1e-8, info = nm)
    }
  }
  # a given sigma: the residual row shows it, for every family (as glmmTMB)
  ours <- VarCorr(pairs$zinb$fit, sigma = 2)
  ref <- VarCorr(pairs$zinb$ref, sigma = 2)
  expect_identical(attributes(ours$cond)[c("sc", "useSc")], attributes(ref$cond)[c("sc", "useSc")])
})

test_that("print(VarCorr()) is glmmTMB's, line by line", {
  for (nm in names(pairs)) {
    fit <- pairs[[nm]]$fit
    ref <- pairs[[nm]]$ref
    expect_same_layout(capture.output(print(VarCorr(fit))),
                       capture.output(print(VarCorr(ref))), rel_tol = 2e-3)
    expect_same_layout(capture.output(print(VarCorr(fit), comp = c("Variance", "Std.Dev."),
                                            digits = 3)),
                       capture.output(print(VarCorr(ref), comp = c("Variance", "Std.Dev."),
                                            digits = 3)), rel_tol = 4e-3)
    expect_same_layout(capture.output(print(VarCorr(fit), comp = "Var")),
                       capture.output(print(VarCorr(ref), comp = "Var")), rel_tol = 4e-3)
  }
  expect_error(print(VarCorr(pairs$zinb$fit), comp = "sd"), "Illegal 'comp'")
})

test_that("ranef() has glmmTMB's structure, modes and conditional variances", {
  for (nm in names(pairs)) {
    ours <- ranef(pairs[[nm]]$fit)
    ref <- ranef(pairs[[nm]]$ref)
    expect_s3_class(ours, "ranef_components")
    expect_identical(names(ours), names(ref))
    expect_identical(ours$zi, list())
    expect_identical(names(ours$cond), names(ref$cond), info = nm)
    for (g in names(ref$cond)) {
      o <- ours$cond[[g]]
      r <- ref$cond[[g]]
      expect_s3_class(o, "data.frame")
      expect_identical(dimnames(o), dimnames(r), info = nm)
      expect_close(as.matrix(o), as.matrix(r), rel = 1e-3, abs = 1e-6, info = nm)
      cv_o <- attr(o, "condVar")
      cv_r <- attr(r, "condVar")
      expect_identical(is.list(cv_o), is.list(cv_r), info = nm)
      if (!is.list(cv_r)) {
        cv_o <- list(cv_o)
        cv_r <- list(cv_r)
      }
      # (glmmTMB's dims and list carry stray names: compared without them)
      expect_identical(unname(lengths(cv_o)), unname(lengths(cv_r)))
      for (k in seq_along(cv_r)) {
        expect_identical(dim(cv_o[[k]]), unname(dim(cv_r[[k]])), info = nm)
        # glmmTMB fills the diagonal only (NA elsewhere); ours has the covariances
        on_diag <- !is.na(cv_r[[k]])
        expect_close(sqrt(cv_o[[k]][on_diag]), sqrt(cv_r[[k]][on_diag]), rel = 0.02, info = nm)
        expect_false(anyNA(cv_o[[k]]))
      }
    }
  }
  # condVar = FALSE: no attribute
  no_cv <- ranef(pairs$zinb$fit, condVar = FALSE)
  expect_null(attr(no_cv$cond$site, "condVar"))
  expect_identical(names(as.data.frame(no_cv)), names(as.data.frame(ranef(pairs$zinb$ref,
                                                                       condVar = FALSE))))
})

test_that("the conditional variances include the parameters' uncertainty (glmmTMB's)", {
  # lme4's definition (the conditional variance at the estimates) is smaller
  # by far for some levels: the test above could not pass with it
  fit <- pairs$zinb$fit
  plain <- mixedrs:::term_condvar(fit)[[1L]][1, 1, ]
  ours <- attr(ranef(fit)$cond$site, "condVar")[1, 1, ]
  ref <- attr(ranef(pairs$zinb$ref)$cond$site, "condVar")[1, 1, ]
  expect_true(all(ours > plain))
  expect_gt(max(abs(sqrt(plain / ref) - 1)), 0.2)
})

test_that("print(ranef()) and as.data.frame(ranef()) are glmmTMB's", {
  for (nm in names(pairs)) {
    ours <- ranef(pairs[[nm]]$fit)
    ref <- ranef(pairs[[nm]]$ref)
    expect_same_layout(capture.output(print(ours)), capture.output(print(ref)), rel_tol = 2e-3)
    expect_same_layout(capture.output(print(ours, simplify = FALSE)),
                       capture.output(print(ref, simplify = FALSE)), rel_tol = 2e-3)
    d_o <- as.data.frame(ours)
    d_r <- as.data.frame(ref)
    expect_identical(names(d_o), c("component", "grpvar", "term", "grp", "condval", "condsd"))
    expect_identical(names(d_o), names(d_r))
    expect_identical(lapply(d_o, class), lapply(d_r, class), info = nm)
    expect_identical(rownames(d_o), rownames(d_r), info = nm)
    for (v in c("component", "grpvar")) expect_identical(d_o[[v]], d_r[[v]], info = nm)
    expect_identical(d_o$term, d_r$term, info = nm)
    expect_identical(as.character(d_o$grp), as.character(d_r$grp), info = nm)
    expect_identical(sort(levels(d_o$grp)), sort(levels(d_r$grp)), info = nm)
    expect_close(d_o$condval, d_r$condval, rel = 1e-3, abs = 1e-6, info = nm)
    expect_close(d_o$condsd, d_r$condsd, rel = 0.02, info = nm)
  }
  expect_error(as.data.frame(ranef(pairs$zinb$fit), nonsense = 1), "unknown arguments")
  expect_no_error(as.data.frame(ranef(pairs$zinb$fit), stringsAsFactors = FALSE))
  expect_error(as.data.frame(ranef(pairs$zinb$fit), stringsAsFactors = TRUE), "not available")
  expect_error(as.data.frame(ranef(pairs$zinb$fit), row.names = 1:3), "not available")
})

test_that("coef() is glmmTMB's list of components", {
  for (nm in names(pairs)) {
    ours <- coef(pairs[[nm]]$fit)
    ref <- coef(pairs[[nm]]$ref)
    expect_s3_class(ours, "coef_components")
    expect_identical(names(ours), names(ref))
    expect_identical(ours$zi, list())
    expect_identical(names(ours$cond), names(ref$cond), info = nm)
    for (g in names(ref$cond)) {
      expect_identical(dimnames(ours$cond[[g]]), dimnames(ref$cond[[g]]), info = nm)
      expect_close(as.matrix(ours$cond[[g]]), as.matrix(ref$cond[[g]]), rel = 1e-3, abs = 1e-6,
                   info = nm)
    }
    # The layout: glmmTMB's object holding our values prints as ours does (how
    # many digits R shows depends on the last digits of the values, which the
    # two fits share only to the tolerance above).
    ref_ours <- ref
    for (g in names(ref$cond)) ref_ours$cond[[g]][] <- ours$cond[[g]]
    expect_identical(capture.output(print(ours)), capture.output(print(ref_ours)), info = nm)
  }
  expect_error(coef(pairs$zinb$fit, condVar = TRUE), "not available")
  expect_error(coef(pairs$zinb$ref, condVar = TRUE), "not \\(yet\\) available")
})

test_that("tidy() of the random effects is broom.mixed's", {
  skip_if_not_installed("broom.mixed")
  for (nm in c("zinb", "owls", "sleep_disp")) {
    ours <- as.data.frame(tidy(pairs[[nm]]$fit, effects = "ran_vals"))
    ref <- as.data.frame(broom.mixed::tidy(pairs[[nm]]$ref, effects = "ran_vals"))
    expect_identical(ours$level, ref$level, info = nm)
    expect_identical(ours$term, ref$term, info = nm)
    expect_close(ours$estimate, ref$estimate, rel = 1e-3, abs = 1e-6, info = nm)
    expect_close(ours$std.error, ref$std.error, rel = 0.02, info = nm)
    rp <- as.data.frame(tidy(pairs[[nm]]$fit, effects = "ran_pars"))
    rp_ref <- as.data.frame(broom.mixed::tidy(pairs[[nm]]$ref, effects = "ran_pars"))
    expect_identical(rp$term, rp_ref$term, info = nm)
    expect_close(rp$estimate, rp_ref$estimate, rel = 2e-3, abs = 2e-3, info = nm)
  }
})

test_that("arguments glmmTMB's methods do not take are errors", {
  fit <- pairs$zinb$fit
  expect_error(ranef(fit, drop = TRUE), "takes 'condVar' only.*'drop'")
  expect_error(ranef(fit, whichel = "site"), "'whichel'")
  expect_error(ranef(fit, condVar = NA), "condVar")
  expect_error(VarCorr(fit, sigma = "a"), "'sigma' must be a single number")
  expect_error(VarCorr(fit, rdig = 2), "not used|unused|ignored|argument")
  expect_error(print(ranef(fit), simplify = NA), "simplify")
})

test_that("structured covariance terms: conditional variances as glmmTMB's", {
  pair <- re_pair(SiblingNegotiation ~ FoodTreatment + diag(1 + FoodTreatment | Nest),
                  Owls, glmmTMB::nbinom1())
  re <- ranef(pair$fit)
  ref <- glmmTMB::ranef(pair$ref, condVar = TRUE)
  expect_identical(dim(re$cond$Nest), c(27L, 2L))
  cv <- attr(re$cond$Nest, "condVar")
  cv_ref <- attr(ref$cond$Nest, "condVar")
  expect_identical(dim(cv), unname(dim(cv_ref)))
  # glmmTMB fills the diagonal only
  on_diag <- !is.na(cv_ref)
  expect_close(sqrt(cv[on_diag]), sqrt(cv_ref[on_diag]), rel = 0.02)
  expect_identical(dim(ranef(pair$fit, condVar = FALSE)$cond$Nest), c(27L, 2L))
  # printed as glmmTMB prints it, the diag() term with its zero correlation
  expect_same_print(capture.output(print(VarCorr(pair$fit))),
                    capture.output(print(VarCorr(pair$ref))), rel_tol = 2e-3)
  # ar1() and cs(): counts over 4 times in 60 groups
  set.seed(3)
  d <- expand.grid(t = factor(1:4), g = factor(1:60), rep = 1:2)
  S <- 0.6^abs(outer(1:4, 1:4, "-"))
  b <- t(chol(S)) %*% matrix(stats::rnorm(4 * 60), 4)
  d$x <- stats::rnorm(nrow(d))
  d$cnt <- stats::rpois(nrow(d), exp(0.3 + 0.3 * d$x + 0.6 * b[cbind(as.integer(d$t),
                                                                      as.integer(d$g))]))
  for (s in c("ar1", "cs")) {
    pair <- re_pair(stats::as.formula(sprintf("cnt ~ x + %s(t + 0 | g)", s)), d, poisson(),
                    dispformula = ~1)
    cv <- attr(ranef(pair$fit)$cond$g, "condVar")
    cv_ref <- attr(glmmTMB::ranef(pair$ref, condVar = TRUE)$cond$g, "condVar")
    on_diag <- !is.na(cv_ref)
    expect_close(sqrt(cv[on_diag]), sqrt(cv_ref[on_diag]), rel = 1e-3, info = s)
  }
})

test_that("glmm.nb() fits keep lme4's VarCorr() and ranef()", {
  skip_if_not_installed("lme4")
  ours <- suppressMessages(glmm.nb(count ~ mined + (1 | site), data = Salamanders))
  ref <- suppressWarnings(lme4::glmer.nb(count ~ mined + (1 | site), data = Salamanders))
  vc <- VarCorr(ours)
  expect_s3_class(vc, "VarCorr.glmm")
  expect_identical(names(vc), names(VarCorr(ref)))
  expect_close(attr(vc$site, "stddev"), attr(VarCorr(ref)$site, "stddev"), rel = 2e-3)
  expect_same_print(capture.output(print(vc)), capture.output(print(VarCorr(ref))),
                    rel_tol = 2e-3)
  re <- ranef(ours)
  expect_s3_class(re, "ranef.glmm")
  expect_identical(names(re), names(lme4::ranef(ref)))
  expect_identical(dim(attr(re$site, "postVar")), dim(attr(lme4::ranef(ref)$site, "postVar")))
  expect_identical(names(as.data.frame(re)), names(as.data.frame(lme4::ranef(ref))))
  expect_s3_class(coef(ours), "coef.glmm")
  expect_identical(names(coef(ours)), names(coef(ref)))
})
