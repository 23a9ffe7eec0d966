# The results layer of fits with random effects in the zero-inflation model
# (glmmTMB's `ziformula = ~ x + (1 | g)`; R/print-extended.R,
# R/varcorr-extended.R): print(), summary(), VarCorr(), ranef() with its
# conditional variances, as.data.frame(ranef()) and coef(), side by side
# with glmmTMB 1.1.5's on glmmTMB's fit of the same model.
#
# glmmTMB runs with its default control: with the tight nlminb tolerances
# of the other glmmTMB-style tests it stops with "singular convergence (7)"
# on most of these models (at the same logLik). The two fits then agree to
# ~1e-9 in logLik and ~2e-5 in the estimates and modes, so: standard
# deviations and correlations within 2e-4 relatively, conditional modes
# within 1e-4 relatively + 5e-5, conditional standard deviations (the
# conditional variance plus the part due to the estimated parameters, as
# glmmTMB's sdreport()) within 5e-4 relatively (observed: up to 3e-5), and
# printed numbers within 1e-3 relatively or one unit in their last digit
# (p-values printed in e-notation within 2%).

skip_if_not_installed("glmmTMB")

Salamanders <- glmmTMB::Salamanders

# Our fit and glmmTMB's of a Poisson model of Salamanders with random
# effects in `zi` (the data bound to the same name in both calls, so that
# the "Data:" lines agree); glmmTMB's must have converged cleanly.
zi_pair <- function(formula, ziformula) {
  ours <- call("glmm", formula, data = quote(Salamanders), family = quote(poisson),
               ziformula = ziformula)
  ref <- call("glmmTMB", formula, data = quote(Salamanders), family = quote(poisson),
              ziformula = ziformula)
  ref[[1L]] <- quote(glmmTMB::glmmTMB)
  ref_fit <- eval(ref)
  stopifnot(ref_fit$fit$convergence == 0, isTRUE(ref_fit$sdr$pdHess))
  list(fit = suppressMessages(eval(ours)), ref = ref_fit)
}

pairs <- list(
  spp = zi_pair(count ~ mined + (1 | site), ~ mined + (1 | spp)),
  # the same grouping factor in both models: the joint Hessian couples them
  site = zi_pair(count ~ spp + mined + (1 | site), ~ spp + (1 | site)),
  # two zero-inflation terms (written in the order that lme4's ordering of
  # the terms, by decreasing number of levels, gives: glmmTMB keeps the
  # formula's order)
  two = zi_pair(count ~ mined + (1 | site), ~ mined + (1 | site) + (1 | spp)),
  # a random slope: a 2 x 2 covariance block with a correlation
  slope = zi_pair(count ~ mined + (1 | site), ~ mined + (mined | spp))
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

# Printed lines: identical, or each line as long as glmmTMB's with its text
# the same and its numbers within the tolerance (expect_same_print()).
expect_same_layout <- function(ours, ref, rel_tol = 1e-3, rel_tol_exp = 0.02, info = NULL) {
  if (identical(ours, ref)) return(succeed())
  expect_identical(nchar(ours), nchar(ref), info = info)
  expect_same_print(ours, ref, rel_tol = rel_tol, rel_tol_exp = rel_tol_exp)
}

lines_of <- function(x, ...) utils::capture.output(print(x, ...))

test_that("the fits are glmmTMB's (the reference for everything below)", {
  for (nm in names(pairs)) {
    expect_equal(as.numeric(logLik(pairs[[nm]]$fit)), as.numeric(logLik(pairs[[nm]]$ref)),
                 tolerance = 1e-8, info = nm)
  }
})

test_that("print() and summary() show the zero-inflation random effects as glmmTMB", {
  for (nm in names(pairs)) {
    fit <- pairs[[nm]]$fit
    ref <- pairs[[nm]]$ref
    expect_same_layout(lines_of(fit), lines_of(ref), info = nm)
    expect_same_layout(lines_of(summary(fit)), lines_of(summary(ref)), info = nm)
    expect_same_layout(lines_of(summary(fit), ranef.comp = "Std.Dev."),
                       lines_of(summary(ref), ranef.comp = "Std.Dev."), info = nm)
  }
  p <- lines_of(pairs$spp$fit)
  s <- lines_of(summary(pairs$spp$fit))
  for (out in list(p, s)) {
    expect_true("Zero inflation:         ~mined + (1 | spp)" %in% out)
    expect_identical(sum(out == "Zero-inflation model:"), 2L) # random and fixed effects
  }
  expect_true("Number of obs: 644 / Conditional model: site, 23 / Zero-inflation model: spp, 7" %in% p)
  expect_identical(sum(s == "Number of obs: 644, groups:  site, 23"), 1L)
  expect_identical(sum(s == "Number of obs: 644, groups:  spp, 7"), 1L)
  # the zero-inflation table follows the conditional one
  expect_lt(match("Conditional model:", s), match("Zero-inflation model:", s))
  expect_true(" spp    (Intercept) 0.7201   0.8486  " %in% s)
  expect_true("Number of obs: 644 / Conditional model: site, 23 / Zero-inflation model: site, 23; spp, 7" %in%
                lines_of(pairs$two$fit))
})

test_that("VarCorr() has glmmTMB's zi component", {
  for (nm in names(pairs)) {
    ours <- VarCorr(pairs[[nm]]$fit)
    ref <- VarCorr(pairs[[nm]]$ref)
    expect_identical(names(ours), c("cond", "zi"))
    expect_identical(names(ours$zi), names(ref$zi), info = nm)
    # glmmTMB's attributes, in its order (its "blockCode" on the list)
    expect_identical(names(attributes(ours$zi)), names(attributes(ref$zi)), info = nm)
    expect_identical(attributes(ours$zi)[c("sc", "useSc", "blockCode")],
                     attributes(ref$zi)[c("sc", "useSc", "blockCode")], info = nm)
    for (g in names(ref$zi)) {
      o <- ours$zi[[g]]
      r <- ref$zi[[g]]
      expect_identical(names(attributes(o)), names(attributes(r)), info = nm)
      expect_identical(dimnames(o), dimnames(r), info = nm)
      expect_identical(dimnames(attr(o, "correlation")), dimnames(attr(r, "correlation")))
      expect_close(attr(o, "stddev"), attr(r, "stddev"), rel = 2e-4, info = nm)
      expect_close(attr(o, "correlation"), attr(r, "correlation"), rel = 2e-4, abs = 2e-4,
                   info = nm)
      expect_close(o, r, rel = 4e-4, info = nm)
    }
    expect_same_layout(lines_of(ours), lines_of(ref), info = nm)
    expect_same_layout(lines_of(ours, comp = c("Variance", "Std.Dev."), digits = 3),
                       lines_of(ref, comp = c("Variance", "Std.Dev."), digits = 3), info = nm)
  }
  # a given sigma: both components show it in a residual row
  ours <- VarCorr(pairs$spp$fit, sigma = 2)
  ref <- VarCorr(pairs$spp$ref, sigma = 2)
  expect_identical(attributes(ours$zi)[c("sc", "useSc")], attributes(ref$zi)[c("sc", "useSc")])
  expect_same_layout(lines_of(ours), lines_of(ref))
})

test_that("ranef() has glmmTMB's zi component with its conditional variances", {
  for (nm in names(pairs)) {
    ours <- ranef(pairs[[nm]]$fit)
    ref <- ranef(pairs[[nm]]$ref)
    for (cc in c("cond", "zi")) {
      expect_identical(names(ours[[cc]]), names(ref[[cc]]), info = nm)
      for (g in names(ref[[cc]])) {
        o <- ours[[cc]][[g]]
        r <- ref[[cc]][[g]]
        info <- paste(nm, cc, g)
        expect_s3_class(o, "data.frame")
        expect_identical(dimnames(o), dimnames(r), info = info)
        expect_close(as.matrix(o), as.matrix(r), rel = 1e-4, abs = 5e-5, info = info)
        cv_o <- attr(o, "condVar")
        cv_r <- attr(r, "condVar")
        expect_identical(dim(cv_o), unname(dim(cv_r)), info = info)
        # glmmTMB fills the diagonal only (NA elsewhere); ours has the covariances
        on_diag <- !is.na(cv_r)
        expect_close(sqrt(cv_o[on_diag]), sqrt(cv_r[on_diag]), rel = 5e-4, info = info)
        expect_false(anyNA(cv_o))
        expect_true(all(apply(cv_o, 3L, function(m) isSymmetric(m, tol = 1e-10))))
      }
    }
    # The layout: glmmTMB's object holding our values prints as ours does
    # (modes near zero agree to the absolute tolerance above only, so the
    # printouts of the two fits differ in their digits there).
    ref_ours <- ref
    for (cc in c("cond", "zi")) {
      for (g in names(ref[[cc]])) ref_ours[[cc]][[g]][] <- ours[[cc]][[g]]
    }
    expect_identical(lines_of(ours), lines_of(ref_ours), info = nm)
    expect_identical(lines_of(ours, simplify = FALSE), lines_of(ref_ours, simplify = FALSE),
                     info = nm)
  }
  no_cv <- ranef(pairs$spp$fit, condVar = FALSE)
  expect_null(attr(no_cv$zi$spp, "condVar"))
  expect_null(attr(no_cv$cond$site, "condVar"))
})

test_that("glmmTMB's conditional variances of zi terms include the parameters' uncertainty", {
  # The conditional variance at the estimates alone (the joint Lambda Huu^-1
  # Lambda') is far smaller than glmmTMB's: the comparison above could not
  # pass with that definition.
  fit <- pairs$spp$fit
  s <- mixedrs:::extended_mode_sensitivity(fit)
  plain <- mixedrs:::joint_term_condvar(s)
  ref <- attr(ranef(pairs$spp$ref)$zi$spp, "condVar")[1, 1, ]
  expect_gt(min(1 - sqrt(plain[[2L]][1, 1, ] / ref)), 0.25)
  ours <- attr(ranef(fit)$zi$spp, "condVar")[1, 1, ]
  expect_true(all(ours > plain[[2L]][1, 1, ]))
})

test_that("the conditional model's conditional variances use the joint Hessian", {
  # With the same grouping factor in both models, the conditional model's
  # block of the Hessian alone (what the engine's term_condvar() inverts)
  # misses the coupling through each row's 2 x 2 information: its
  # conditional standard deviations are off by several percent, which the
  # comparison with glmmTMB above (5e-4) would catch.
  fit <- pairs$site$fit
  s <- mixedrs:::extended_mode_sensitivity(fit)
  joint <- mixedrs:::joint_term_condvar(s)[[1L]][1, 1, ]
  cond_only <- mixedrs:::term_condvar(fit)[[1L]][1, 1, ]
  expect_gt(max(abs(sqrt(cond_only / joint) - 1)), 0.03)
  # Without random effects in zi, the joint computation is the engine's.
  plain_fit <- suppressMessages(glmm(count ~ mined + (1 | site), data = Salamanders,
                                     family = poisson, ziformula = ~mined))
  s0 <- mixedrs:::extended_mode_sensitivity(plain_fit)
  expect_close(mixedrs:::joint_term_condvar(s0)[[1L]], mixedrs:::term_condvar(plain_fit)[[1L]],
               rel = 1e-6)
})

test_that("the 2 x 2 information of the rows is the engine's", {
  # The derivatives of the log-density (central differences) against the
  # engine's working weights at the modes, W[eta, eta], W[eta, rho] and
  # W[rho, rho].
  for (nm in names(pairs)) {
    fit <- pairs[[nm]]$fit
    d <- mixedrs:::extended_loglik_derivs(fit, zeta_terms = TRUE)
    ww <- fit$extended$zi_working_weights
    expect_close(-d$ee, fit$extended$working_weights, rel = 1e-5, abs = 1e-6, info = nm)
    expect_close(-d$ez, ww$cross, rel = 1e-5, abs = 1e-6, info = nm)
    expect_close(-d$zz, ww$zi, rel = 1e-5, abs = 1e-6, info = nm)
  }
})

test_that("as.data.frame(ranef()) has glmmTMB's zi rows", {
  for (nm in names(pairs)) {
    d_o <- as.data.frame(ranef(pairs[[nm]]$fit))
    d_r <- as.data.frame(ranef(pairs[[nm]]$ref))
    expect_identical(names(d_o), names(d_r))
    expect_identical(lapply(d_o, class), lapply(d_r, class), info = nm)
    expect_identical(rownames(d_o), rownames(d_r), info = nm)
    expect_true(any(d_o$component == "zi"))
    for (v in c("component", "grpvar")) expect_identical(d_o[[v]], d_r[[v]], info = nm)
    expect_identical(d_o$term, d_r$term, info = nm)
    expect_identical(as.character(d_o$grp), as.character(d_r$grp), info = nm)
    expect_identical(levels(d_o$grp), levels(d_r$grp), info = nm)
    expect_close(d_o$condval, d_r$condval, rel = 1e-4, abs = 5e-5, info = nm)
    expect_close(d_o$condsd, d_r$condsd, rel = 5e-4, info = nm)
    n_o <- as.data.frame(ranef(pairs[[nm]]$fit, condVar = FALSE))
    n_r <- as.data.frame(ranef(pairs[[nm]]$ref, condVar = FALSE))
    expect_identical(names(n_o), names(n_r))
    expect_identical(n_o$component, n_r$component)
  }
})

test_that("coef() has glmmTMB's zi component", {
  for (nm in names(pairs)) {
    ours <- coef(pairs[[nm]]$fit)
    ref <- coef(pairs[[nm]]$ref)
    expect_identical(names(ours$zi), names(ref$zi), info = nm)
    for (g in names(ref$zi)) {
      expect_identical(dimnames(ours$zi[[g]]), dimnames(ref$zi[[g]]), info = nm)
      expect_close(as.matrix(ours$zi[[g]]), as.matrix(ref$zi[[g]]), rel = 1e-4, abs = 5e-5,
                   info = nm)
    }
    # The layout: glmmTMB's object holding our values prints as ours does,
    # but for the two lines 'attr(,"class")' and '[1] "coef.mer"' glmmTMB
    # shows under each element (its elements' class has no print method;
    # ours keep the class and print method of coef() of the other fits).
    ref_ours <- ref
    for (cc in c("cond", "zi")) {
      for (g in names(ref[[cc]])) ref_ours[[cc]][[g]][] <- ours[[cc]][[g]]
    }
    ref_lines <- lines_of(ref_ours)
    drop <- which(ref_lines == "attr(,\"class\")")
    expect_identical(ref_lines[drop + 1L], rep("[1] \"coef.mer\"", 2L))
    expect_identical(lines_of(ours), ref_lines[-c(drop, drop + 1L)], info = nm)
  }
})

test_that("structured zi terms: conditional variances as glmmTMB's", {
  fit <- suppressMessages(glmm(count ~ mined + (1 | site), data = Salamanders,
                               family = poisson, ziformula = ~ mined + diag(mined | spp)))
  ref <- suppressWarnings(glmmTMB::glmmTMB(
    count ~ mined + (1 | site), data = Salamanders, family = poisson,
    ziformula = ~ mined + diag(mined | spp),
    control = glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12, eval.max = 1e4,
                                                     iter.max = 1e4))))
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-9)
  re <- ranef(fit)
  expect_identical(dim(re$zi$spp), c(7L, 2L))
  cv <- attr(re$zi$spp, "condVar")
  cv_ref <- attr(glmmTMB::ranef(ref, condVar = TRUE)$zi$spp, "condVar")
  # glmmTMB fills the diagonal only; agreement to ~1e-6 observed
  expect_equal(as.vector(apply(cv, 3L, diag)), as.vector(apply(cv_ref, 3L, diag)),
               tolerance = 1e-4)
  expect_identical(dim(ranef(fit, condVar = FALSE)$zi$spp), c(7L, 2L))
  expect_identical(attr(VarCorr(fit)$zi, "blockCode"), c(diag = 0))
})
