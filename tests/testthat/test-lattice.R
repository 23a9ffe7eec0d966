# lattice plots as lme4 draws them: dotplot() and qqmath() of ranef(),
# plot(fit, form) and qqmath(fit), xyplot()/densityplot()/splom() of a
# profile. Each trellis object is compared with lme4's on the same model
# (full-precision reference fits, helper-reference.R): the panel data
# (p$panel.args, the extra data passed to the panel functions), the
# conditioning levels and the labels, not pixels.
#
# Tolerances: the fits agree with the full-precision references to ~1e-6
# relative (test-lmm-parity.R), conditional modes, variances and residuals
# with them; 1e-5 covers that. Profile plots read splines through the two
# packages' own profile points (our walker's steps differ from lme4's at the
# ends), so their values agree to ~1e-4 relative (test-confint.R reads the
# intervals to 1e-4); they are compared at 1e-3.

unnamed_args <- function(p) lapply(p$panel.args, function(a) lapply(a, unname))

# lme4's profile ("thpr") as an "lmmprofile" of the same points, so that the
# plots can be compared on the same profile (the parameters in lme4's order,
# not the alphabetical order of its `.par` levels).
as_lmmprofile <- function(thpr) {
  d <- data.frame(unclass(thpr), check.names = FALSE)
  d$.par <- factor(as.character(d$.par), levels = names(attr(thpr, "forward")))
  class(d) <- c("lmmprofile", "data.frame")
  d
}

test_that("dotplot() and qqmath() of ranef() draw lme4's panels", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  ours <- lattice::dotplot(ranef(fit, condVar = TRUE))
  theirs <- lattice::dotplot(lme4::ranef(ref, condVar = TRUE))
  expect_named(ours, "Subject")
  expect_s3_class(ours$Subject, "trellis")
  expect_equal(unnamed_args(ours$Subject), unnamed_args(theirs$Subject), tolerance = 1e-5)
  expect_equal(ours$Subject$panel.args.common$se, theirs$Subject$panel.args.common$se,
               tolerance = 1e-5)
  expect_identical(ours$Subject$condlevels, theirs$Subject$condlevels)
  expect_identical(ours$Subject$main, theirs$Subject$main)
  # the same level order (a factor's levels) in every panel
  expect_identical(levels(ours$Subject$panel.args[[1]]$y),
                   levels(theirs$Subject$panel.args[[1]]$y))
  expect_equal(ours$Subject$x.limits, theirs$Subject$x.limits, tolerance = 1e-4)
  # qqmath: modes against normal quantiles, with the intervals
  q_ours <- lattice::qqmath(ranef(fit))
  q_theirs <- lattice::qqmath(lme4::ranef(ref, condVar = TRUE))
  expect_equal(unnamed_args(q_ours$Subject), unnamed_args(q_theirs$Subject), tolerance = 1e-5)
  expect_equal(q_ours$Subject$panel.args.common$se, q_theirs$Subject$panel.args.common$se,
               tolerance = 1e-5)
  expect_identical(q_ours$Subject$ylab, q_theirs$Subject$ylab)
  # without conditional variances: modes alone, lattice's QQ plot
  d_plain <- lattice::dotplot(ranef(fit, condVar = FALSE))
  expect_null(d_plain$Subject$panel.args.common$se)
  expect_equal(unnamed_args(d_plain$Subject), unnamed_args(theirs$Subject), tolerance = 1e-5)
  q_plain <- lattice::qqmath(ranef(fit, condVar = FALSE))
  q_ref_plain <- lattice::qqmath(lme4::ranef(ref, condVar = FALSE))
  expect_equal(unnamed_args(q_plain$Subject), unnamed_args(q_ref_plain$Subject),
               tolerance = 1e-5)
  # drawing them works
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_silent(print(ours$Subject))
  expect_silent(print(q_ours$Subject))
})

test_that("ranef plots of GLMMs, crossed factors and uncorrelated terms match lme4", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = cbpp)))
  ours <- lattice::dotplot(ranef(pair$fit), transf = exp)
  theirs <- lattice::dotplot(lme4::ranef(pair$ref, condVar = TRUE), transf = exp)
  expect_equal(unnamed_args(ours$herd), unnamed_args(theirs$herd), tolerance = 1e-5)
  expect_equal(ours$herd$panel.args.common$se, theirs$herd$panel.args.common$se,
               tolerance = 1e-5)
  expect_equal(ours$herd$x.limits, theirs$herd$x.limits, tolerance = 1e-4)
  pen <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
  pen_ref <- lmer_full(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
  ours <- lattice::dotplot(ranef(pen))
  theirs <- lattice::dotplot(lme4::ranef(pen_ref, condVar = TRUE))
  expect_named(ours, names(theirs))
  for (g in names(ours)) {
    expect_equal(unnamed_args(ours[[g]]), unnamed_args(theirs[[g]]), tolerance = 1e-5)
    expect_equal(ours[[g]]$panel.args.common$se, theirs[[g]]$panel.args.common$se,
                 tolerance = 1e-5)
  }
  # a factor shared by two terms: one conditional variance array per term
  dd <- lmm(Reaction ~ Days + (Days || Subject), lme4::sleepstudy)
  dd_ref <- lmer_full(Reaction ~ Days + (Days || Subject), lme4::sleepstudy)
  ours <- lattice::dotplot(ranef(dd))
  theirs <- lattice::dotplot(lme4::ranef(dd_ref, condVar = TRUE))
  expect_equal(unnamed_args(ours$Subject), unnamed_args(theirs$Subject), tolerance = 1e-5)
  expect_equal(ours$Subject$panel.args.common$se, theirs$Subject$panel.args.common$se,
               tolerance = 1e-5)
  # (lme4's qqmath() cannot read that list of arrays; ours draws the same
  # intervals as its dotplot)
  q <- lattice::qqmath(ranef(dd))
  expect_equal(sort(q$Subject$panel.args.common$se),
               sort(ours$Subject$panel.args.common$se))
})

test_that("ranef plots reject what they cannot draw", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  expect_error(lattice::dotplot(ranef(fit, drop = TRUE)), "drop = FALSE")
  expect_error(lattice::qqmath(ranef(fit, drop = TRUE)), "drop = FALSE")
  expect_error(lattice::dotplot(ranef(fit), lme4::sleepstudy), "does not use 'data'")
  expect_error(lattice::dotplot(ranef(fit), transf = "exp"), "'transf' must be a function")
  expect_error(lattice::dotplot(ranef(fit), level = 1.5), "level")
  expect_error(lattice::qqmath(ranef(fit), main = NA), "main")
  # level sets the intervals' multiplier
  d <- lattice::dotplot(ranef(fit), level = 0.5)$Subject
  se <- d$panel.args.common$se
  x <- d$panel.args[[1]]$x
  d95 <- lattice::dotplot(ranef(fit))$Subject
  # lattice pads the range of the intervals by the same fraction
  expect_equal(diff(d$x.limits) / diff(d95$x.limits),
               diff(range(x - qnorm(0.75) * se, x + qnorm(0.75) * se)) /
                 diff(range(x - qnorm(0.975) * se, x + qnorm(0.975) * se)))
})

test_that("plot(fit, form) draws lme4's plot.merMod panels", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  same_plot <- function(ours, theirs) {
    expect_s3_class(ours, "trellis")
    expect_identical(ours$call[[1L]], theirs$call[[1L]])
    expect_equal(unnamed_args(ours), unnamed_args(theirs), tolerance = 1e-5)
    expect_identical(ours$condlevels, theirs$condlevels)
    expect_identical(ours$xlab, theirs$xlab)
    expect_identical(ours$ylab, theirs$ylab)
    expect_identical(environment(ours$panel)$abl, environment(theirs$panel)$abl)
  }
  # the default: Pearson residuals against fitted values, a line at 0
  p <- plot(fit)
  same_plot(p, plot(ref))
  expect_equal(environment(p$panel)$abl, c(0, 0))
  expect_equal(p$panel.args[[1]]$y, unname(residuals(fit, type = "pearson")))
  same_plot(plot(fit, resid(.) ~ fitted(.) | Subject, abline = 0),
            plot(ref, resid(.) ~ fitted(.) | Subject, abline = 0))
  same_plot(plot(fit, Reaction ~ fitted(.), abline = c(0, 1)),
            plot(ref, Reaction ~ fitted(.), abline = c(0, 1)))
  same_plot(plot(fit, sqrt(abs(resid(.))) ~ fitted(.), type = c("p", "smooth")),
            plot(ref, sqrt(abs(resid(.))) ~ fitted(.), type = c("p", "smooth")))
  same_plot(plot(fit, resid(., type = "pearson") ~ Days | Subject),
            plot(ref, resid(., type = "pearson") ~ Days | Subject))
  # `.obs`, the observation number (lme4's own cannot find it)
  p_obs <- plot(fit, resid(.) ~ .obs)
  expect_equal(p_obs$panel.args[[1]]$x, 1:180)
  expect_equal(p_obs$panel.args[[1]]$y, unname(residuals(fit)))
  # a factor on the left: box plots
  bw_ours <- plot(fit, Subject ~ resid(.), abline = 0)
  same_plot(bw_ours, plot(ref, Subject ~ resid(.), abline = 0))
  expect_silent(print(bw_ours))
  # labelled observations: the same ones, with the same labels
  lab <- function(p) {
    e <- environment(p$panel)
    if (is.null(e$ids)) list(unname(e$id), e$idLabels) else list(e$ids$id, e$ids$labels)
  }
  p_id <- plot(fit, id = 0.05, idLabels = ~ .obs)
  expect_identical(lab(p_id), lab(plot(ref, id = 0.05, idLabels = ~ .obs)))
  expect_true(any(lab(p_id)[[1]]))
  expect_identical(lab(plot(fit, id = 0.05)), lab(plot(ref, id = 0.05)))
  expect_identical(lab(plot(fit, id = ~ abs(resid(.)) > 40, idLabels = ~ Subject)),
                   lab(plot(ref, id = ~ abs(resid(.)) > 40, idLabels = ~ Subject)))
  expect_silent(print(p_id))
  # a one-sided formula: a histogram (lme4's own stops on it)
  h <- plot(fit, ~ resid(.))
  expect_identical(h$call[[1L]], quote(histogram))
  expect_equal(h$panel.args[[1]]$x, unname(residuals(fit)))
  expect_silent(print(h))
})

test_that("plot(fit, form) of a GLMM and bad formulas", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = cbpp)))
  # (lme4's plot() opens a device to read par("cex"))
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  ours <- plot(pair$fit, resid(., type = "pearson") ~ fitted(.) | period, abline = 0)
  theirs <- plot(pair$ref, resid(., type = "pearson") ~ fitted(.) | period, abline = 0)
  expect_equal(unnamed_args(ours), unnamed_args(theirs), tolerance = 1e-5)
  expect_identical(ours$condlevels, theirs$condlevels)
  expect_equal(unnamed_args(plot(pair$fit)), unnamed_args(plot(pair$ref)), tolerance = 1e-5)
  fit <- pair$fit
  expect_error(plot(fit, "resid(.) ~ fitted(.)"), "'form' must be a formula")
  expect_error(plot(fit, resid(.) ~ nosuch), "'nosuch' not found in the model's data")
  expect_error(plot(fit, resid(.) ~ herd), "must be numeric")
  expect_error(plot(fit, id = 2), "'id' must be a number between 0 and 1")
  expect_error(plot(fit, id = 0.05, idLabels = letters), "'idLabels' has 26 elements")
  expect_error(plot(fit, abline = "h"), "'abline' must be")
  expect_error(plot(fit, grid = NA), "grid")
  expect_error(plot(fit, resid(.) ~ fitted(.)[1:10]), "not one per observation")
})

test_that("plot(fit, form) finds the data of a fit with dropped rows", {
  skip_if_not_installed("lme4")
  sleep_na <- lme4::sleepstudy
  sleep_na$Reaction[c(3, 50)] <- NA
  fit <- lmm(Reaction ~ Days + (1 | Subject), data = sleep_na)
  ref <- lmer_full(Reaction ~ Days + (1 | Subject), data = sleep_na)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  p <- plot(fit, resid(.) ~ Days | Subject)
  kept <- sleep_na[-c(3, 50), ]
  first <- kept$Subject == "308"
  expect_equal(p$panel.args[[1]]$x, kept$Days[first])
  expect_equal(p$panel.args[[1]]$y, unname(residuals(fit)[first]))
  expect_equal(unnamed_args(plot(fit)), unnamed_args(plot(ref)), tolerance = 1e-5)
})

test_that("qqmath(fit) draws lme4's normal QQ plot of the residuals", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  ours <- lattice::qqmath(fit)
  theirs <- lattice::qqmath(ref)
  expect_equal(unnamed_args(ours), unnamed_args(theirs), tolerance = 1e-5)
  expect_identical(ours$xlab, theirs$xlab)
  expect_identical(ours$ylab, theirs$ylab)
  with_id <- lattice::qqmath(fit, id = 0.05, idLabels = ~ .obs)
  sel <- environment(with_id$panel)$ids$id
  expect_identical(which(sel), unname(which(abs(residuals(fit, type = "pearson",
                                                             scaled = TRUE)) > qnorm(0.975))))
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_silent(print(with_id))
  expect_error(lattice::qqmath(fit, id = 0), "'id' must be")
})

test_that("xyplot(), densityplot() and plot() of a profile match lme4's", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  pr <- profile(fit)
  pr_ref <- profile(ref)
  ours <- lattice::xyplot(pr)
  theirs <- lattice::xyplot(pr_ref)
  expect_identical(ours$condlevels, theirs$condlevels)
  expect_equal(unnamed_args(ours), unnamed_args(theirs), tolerance = 1e-3)
  expect_equal(ours$x.limits, theirs$x.limits, tolerance = 1e-3)
  abs_ours <- lattice::xyplot(pr, absVal = TRUE, conf = c(0.8, 0.95), which = "theta_")
  abs_theirs <- lattice::xyplot(pr_ref, absVal = TRUE, conf = c(0.8, 0.95), which = "theta_")
  expect_identical(abs_ours$condlevels, abs_theirs$condlevels)
  expect_equal(unnamed_args(abs_ours), unnamed_args(abs_theirs), tolerance = 1e-3)
  expect_equal(unnamed_args(plot(pr)), unnamed_args(ours))
  d_ours <- lattice::densityplot(pr)
  d_theirs <- lattice::densityplot(pr_ref)
  expect_identical(d_ours$condlevels, d_theirs$condlevels)
  expect_equal(unnamed_args(d_ours), unnamed_args(d_theirs), tolerance = 1e-3)
  # on the same profile points, the same panels to rounding
  same <- as_lmmprofile(pr_ref)
  expect_equal(unnamed_args(lattice::xyplot(same)), unnamed_args(theirs), tolerance = 1e-10)
  expect_equal(unnamed_args(lattice::densityplot(same)), unnamed_args(d_theirs),
               tolerance = 1e-10)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_silent(print(ours))
  expect_silent(print(abs_ours))
  expect_silent(print(d_ours))
  expect_error(lattice::xyplot(pr, conf = 1), "strictly between 0 and 1")
  expect_error(lattice::xyplot(pr, which = "nosuch"), "not profiled")
  expect_error(lattice::densityplot(pr, upper = 0.2), "'upper'")
  expect_error(plot(pr, 1), "does not use 'y'")
})

test_that("as.data.frame() of a profile is lme4's, .focal and .par included", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  pr_ref <- profile(ref)
  theirs <- as.data.frame(pr_ref)
  # On lme4's profile points: lme4's data frame, column for column.
  ours <- as.data.frame(as_lmmprofile(pr_ref))
  expect_identical(class(ours), "data.frame")
  expect_identical(names(ours), names(theirs))
  expect_identical(levels(ours$.par), levels(theirs$.par))
  expect_identical(as.character(ours$.par), as.character(theirs$.par))
  expect_equal(ours$.focal, theirs$.focal, tolerance = 1e-12)
  expect_equal(ours$.zeta, theirs$.zeta, tolerance = 1e-12)
  # On our own profile, the same layout, and the lattice formula of lme4's
  # tests/boundary.R draws.
  fit <- lmm(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  d <- as.data.frame(profile(fit))
  expect_identical(names(d), names(theirs))
  expect_identical(levels(d$.par), levels(theirs$.par))
  for (p in levels(d$.par)) {
    expect_identical(d$.focal[d$.par == p], d[[p]][d$.par == p])
  }
  expect_identical(rownames(as.data.frame(profile(fit), row.names = paste0("p", seq_len(nrow(d))))),
                   paste0("p", seq_len(nrow(d))))
  expect_error(as.data.frame(profile(fit), row.names = "a"), "one name for each")
  expect_error(as.data.frame(profile(fit), cut.off = 2), "not used: cut.off")
  expect_identical(data.frame(profile(fit))$.focal, d$.focal)
  p <- lattice::xyplot(.zeta ~ .focal | .par, data = d, type = "l",
                       scales = list(x = list(relation = "free")))
  expect_identical(p$condlevels[[1]], levels(theirs$.par))
})

test_that("splom() of a profile draws lme4's traces and contours", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (1 | Subject), data = sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (1 | Subject), data = sleepstudy)
  ours <- lattice::splom(profile(fit))
  theirs <- lattice::splom(profile(ref))
  # the variables' ranges
  expect_equal(ours$panel.args.common$z, theirs$panel.args.common$z, tolerance = 1e-3,
               ignore_attr = TRUE)
  # the contours on the zeta scales of every pair (lme4 keeps them in its
  # panel function's environment: traces[[j]][[i]]$ll$pts[level, point, ]
  # with the j-th parameter first)
  pairs <- environment(ours$panel.args.common$lower.panel)$pairs
  traces <- environment(theirs$panel.args.common$lower.panel)$traces
  np <- length(pairs)
  expect_identical(np, 4L)
  for (j in 2:np) for (i in seq_len(j - 1L)) {
    cont <- pairs[[j]][[i]]$contours
    ref_pts <- traces[[j]][[i]]$ll$pts
    expect_equal(unname(cont[, , "hi"]), ref_pts[, , 1], tolerance = 1e-3)
    expect_equal(unname(cont[, , "lo"]), ref_pts[, , 2], tolerance = 1e-3)
    expect_equal(stats::predict(pairs[[j]][[i]]$s_lo)$y,
                 stats::predict(traces[[j]][[i]]$sij)$y, tolerance = 1e-3)
  }
  # on the same profile points, the same contours to rounding
  same <- lattice::splom(as_lmmprofile(profile(ref)))
  same_pairs <- environment(same$panel.args.common$lower.panel)$pairs
  for (j in 2:np) for (i in seq_len(j - 1L)) {
    expect_equal(unname(same_pairs[[j]][[i]]$contours[, , "hi"]), traces[[j]][[i]]$ll$pts[, , 1],
                 tolerance = 1e-10)
    expect_equal(unname(same_pairs[[j]][[i]]$contours[, , "lo"]), traces[[j]][[i]]$ll$pts[, , 2],
                 tolerance = 1e-10)
  }
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_silent(print(ours))
  expect_silent(print(lattice::splom(profile(fit), which = 1:2, draw.upper = FALSE)))
  expect_error(lattice::splom(profile(fit, which = 1)), "at least two")
})

test_that("profile plots of a GLMM match lme4's", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = cbpp)))
  pr <- profile(pair$fit)
  pr_ref <- profile(pair$ref)
  ours <- lattice::xyplot(pr)
  theirs <- lattice::xyplot(pr_ref)
  expect_identical(ours$condlevels, theirs$condlevels)
  expect_equal(unnamed_args(ours), unnamed_args(theirs), tolerance = 1e-3)
  # (the densities are the slopes of splines through the points, which
  # differ between the two walkers by up to 3% near the estimate: they are
  # compared on the same profile below)
  same <- as_lmmprofile(pr_ref)
  expect_equal(unnamed_args(lattice::xyplot(same)), unnamed_args(theirs), tolerance = 1e-10)
  expect_equal(unnamed_args(lattice::densityplot(same)),
               unnamed_args(lattice::densityplot(pr_ref)), tolerance = 1e-10)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_silent(print(lattice::splom(pr, which = 1:3)))
})

test_that("logProf() and varianceProf() transform a profile as lme4's", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (1 | Subject), data = sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (1 | Subject), data = sleepstudy)
  pr <- profile(fit)
  pr_ref <- profile(ref)
  lp <- logProf(pr)
  lp_ref <- lme4::logProf(pr_ref)
  expect_s3_class(lp, "lmmprofile")
  expect_setequal(levels(lp$.par), levels(lp_ref$.par))
  expect_identical(names(lp), names(lp_ref))
  expect_equal(confint(lp), confint(lp_ref)[rownames(confint(lp)), ], tolerance = 1e-4)
  vp <- varianceProf(pr)
  vp_ref <- lme4::varianceProf(pr_ref)
  expect_setequal(levels(vp$.par), levels(vp_ref$.par))
  expect_equal(confint(vp), confint(vp_ref)[rownames(confint(vp)), ], tolerance = 1e-4)
  # the residual sd only; another base
  expect_setequal(levels(logProf(pr, ranef = FALSE)$.par),
                  levels(lme4::logProf(pr_ref, ranef = FALSE)$.par))
  lp10 <- logProf(pr, base = 10)
  expect_equal(confint(lp10), confint(lme4::logProf(pr_ref, base = 10))[rownames(confint(lp10)), ],
               tolerance = 1e-4)
  # on the same profile points, lme4's panels to rounding
  same <- as_lmmprofile(pr_ref)
  for (a in c("lower", "upper", "optimum")) attr(same, a) <- attr(pr, a)
  expect_equal(unnamed_args(lattice::xyplot(logProf(same))),
               unnamed_args(lattice::xyplot(lp_ref)), tolerance = 1e-10)
  expect_equal(unnamed_args(lattice::densityplot(varianceProf(same))),
               unnamed_args(lattice::densityplot(vp_ref)), tolerance = 1e-10)
  # a correlation keeps its scale (lme4 takes its log, NaN where negative)
  fit2 <- lmm(Reaction ~ Days + (Days | Subject), data = sleepstudy)
  pr2 <- profile(fit2)
  lp2 <- logProf(pr2)
  expect_true(".sig02" %in% levels(lp2$.par))
  expect_equal(confint(lp2)[".sig02", ], confint(pr2)[".sig02", ], tolerance = 1e-6)
  expect_equal(exp(confint(lp2)[c(".lsig01", ".lsig03", ".lsigma"), ]),
               confint(pr2)[c(".sig01", ".sig03", ".sigma"), ], tolerance = 1e-3,
               ignore_attr = TRUE)
  # descriptive names are left alone, as lme4 leaves them
  pr3 <- profile(fit, signames = FALSE)
  expect_identical(logProf(pr3), pr3)
  # lme4's profiles go to lme4
  expect_s3_class(logProf(pr_ref), "thpr")
  expect_error(logProf(fit), "must be a profile")
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_silent(print(lattice::xyplot(lp2)))
  expect_silent(print(lattice::splom(varianceProf(pr2))))
})
