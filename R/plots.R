# Diagnostic plots of "lmm" and "glmm" fits in base graphics: a normal QQ
# plot of the residuals, and caterpillar and QQ plots of the conditional
# modes of the random effects with their conditional intervals (the base
# graphics counterparts of lme4's dotplot.ranef.mer and qqmath.ranef.mer;
# the lattice versions are in R/lattice-ranef.R, plot(fit) in
# R/plot-formula.R).

# Pearson residuals, unpadded.
mer_pearson_plain <- function(x) {
  if (is_glmm(x)) return(glmm_residuals(x, "pearson"))
  sqrt(as.vector(x$weights)) * (as.vector(x$y) - as.vector(x$fitted))
}

#' Normal QQ plot of a mixed model's residuals
#'
#' Plots the quantiles of the scaled Pearson residuals (Pearson residuals
#' divided by `sigma(y)`) against those of the standard normal distribution,
#' with the [stats::qqline()] through the quartiles.
#'
#' @param y A fitted model of class `"lmm"` or `"glmm"`.
#' @param line Logical: add the reference line?
#' @param main,ylab Title and y-axis label.
#' @param ... Further arguments passed to [stats::qqnorm()].
#' @return Invisibly, the list of `x` (theoretical quantiles) and `y`
#'   (residuals) that [stats::qqnorm()] returns.
#' @seealso [qqmath.mixedrs_fit()] for lattice's version, [plot.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' qqnorm(fit)
#' @importFrom stats qqnorm
#' @export
qqnorm.lmm <- function(y, line = TRUE, main = "Normal Q-Q plot of the residuals",
                       ylab = "Scaled Pearson residuals", ...) {
  require_rows(y, "qqnorm()")
  check_flag(line, "line", "qqnorm()")
  r <- mer_pearson_plain(y) / stats::sigma(y)
  q <- stats::qqnorm(r, main = main, ylab = ylab, ...)
  if (line) stats::qqline(r, lty = 2, col = "grey50")
  invisible(q)
}

#' @rdname qqnorm.lmm
#' @method qqnorm glmm
#' @export
qqnorm.glmm <- qqnorm.lmm

#' Caterpillar and QQ plots of the random effects (base graphics)
#'
#' `plot()` draws, for every grouping factor and every random effect of it,
#' a caterpillar plot: the conditional modes with their conditional
#' intervals `mode +/- qnorm((1 + level) / 2) * condsd`, the levels on the
#' vertical axis ordered by their mode of the grouping factor's first random
#' effect, in the same order in every panel of the factor (as lme4's
#' `dotplot(ranef(fit, condVar = TRUE))`; see [dotplot.ranef.lmm()] for the
#' lattice version). `qqnorm()` plots each random effect's modes against
#' normal quantiles, with the same intervals. The panels are laid out in one
#' figure, one row per grouping factor, each titled `term | factor`.
#' Intervals need `ranef(fit, condVar = TRUE)` (the default).
#'
#' A grouping factor with more than `max_labels` levels is drawn without
#' level labels, with small points and light, thin intervals, so that a
#' factor of thousands of levels (e.g. `lme4::InstEval`'s students) still
#' shows the spread of its modes.
#'
#' @param x,y An object of class `"ranef.lmm"` from [ranef.lmm()] (with
#'   `drop = FALSE`, the default).
#' @param level Coverage of the intervals.
#' @param max_labels Largest number of levels whose labels are written.
#' @param ... Further graphical parameters passed to [graphics::plot()] for
#'   every panel (e.g. `pch`, `cex`, `col`).
#' @return Invisibly, the data frame of [as.data.frame.ranef.lmm()] with
#'   columns `lower` and `upper` (the interval ends, `NA` without
#'   conditional variances), `position` (the level's place on the vertical
#'   axis, 1 at the bottom) and, for `qqnorm()`, `theoretical` (the normal
#'   quantile of each mode).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' plot(ranef(fit))
#' qqnorm(ranef(fit))
#' pen <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
#' plot(ranef(pen), level = 0.9)
#' @export
plot.ranef.lmm <- function(x, level = 0.95, max_labels = 60, ...) {
  check_max_labels(max_labels)
  d <- ranef_plot_data(x, level)
  d$position <- ranef_positions(d)
  key <- interaction(d$grpvar, d$term, drop = TRUE, lex.order = TRUE)
  old <- ranef_panel_layout(x)
  on.exit(graphics::par(old))
  for (lv in levels(key)) {
    p <- d[key == lv, , drop = FALSE]
    k <- nrow(p)
    style <- ranef_panel_style(k, max_labels)
    lims <- range(c(p$lower, p$upper, p$condval), na.rm = TRUE)
    labels <- as.character(p$grp)[order(p$position)]
    ranef_panel(p, p$position, lims, k, style, labels = if (style$labels) labels,
                ylab = "", ...)
  }
  invisible(d)
}

#' @rdname plot.ranef.lmm
#' @export
qqnorm.ranef.lmm <- function(y, level = 0.95, max_labels = 60, ...) {
  check_max_labels(max_labels)
  d <- ranef_plot_data(y, level)
  d$position <- ranef_positions(d)
  d$theoretical <- NA_real_
  key <- interaction(d$grpvar, d$term, drop = TRUE, lex.order = TRUE)
  old <- ranef_panel_layout(y)
  on.exit(graphics::par(old))
  for (lv in levels(key)) {
    idx <- which(key == lv)
    p <- d[idx, , drop = FALSE]
    n <- nrow(p)
    th <- stats::qnorm(stats::ppoints(n))[rank(p$condval, ties.method = "first")]
    d$theoretical[idx] <- th
    lims <- range(c(p$lower, p$upper, p$condval), na.rm = TRUE)
    ranef_panel(p, th, lims, n, ranef_panel_style(n, max_labels), labels = NULL,
                ylab = "Standard normal quantiles", ...)
  }
  invisible(d)
}

# Each level's place on the vertical axis of a caterpillar plot: one order
# per grouping factor, the increasing modes of its first random effect (ties
# in the order of the levels), shared by all its panels.
ranef_positions <- function(d) {
  pos <- integer(nrow(d))
  for (gv in unique(d$grpvar)) {
    rows <- d$grpvar == gv
    first <- rows & d$term == d$term[rows][1L]
    lev <- as.character(d$grp[first])
    ranked <- lev[order(d$condval[first])]
    pos[rows] <- match(as.character(d$grp[rows]), ranked)
  }
  pos
}

# One panel: modes at heights `at`, their intervals, a line at 0 and the
# title "term | factor".
ranef_panel <- function(p, at, lims, k, style, labels, ylab, ...) {
  args <- utils::modifyList(list(pch = 16, cex = style$cex), list(...))
  do.call(graphics::plot, c(list(p$condval, at, xlim = lims, yaxt = "n", ylab = ylab,
                                 xlab = "Conditional mode",
                                 main = paste(p$term[1L], "|", p$grpvar[1L]), type = "n"),
                            args[setdiff(names(args), c("pch", "cex", "col"))]))
  if (!is.null(labels)) {
    graphics::axis(2, at = seq_len(k), labels = labels, las = 1, cex.axis = min(1, 25 / k))
  } else if (ylab == "") {
    graphics::axis(2, at = range(at), labels = FALSE)
    graphics::mtext(paste(k, "levels"), side = 2, line = 1)
  } else {
    graphics::axis(2)
  }
  ok <- !is.na(p$lower)
  if (any(ok)) {
    graphics::segments(p$lower[ok], at[ok], p$upper[ok], at[ok], col = style$bar,
                       lwd = style$lwd)
  }
  graphics::abline(v = 0, lty = 2, col = "grey50")
  graphics::points(p$condval, at, pch = args$pch, cex = args$cex,
                   col = if (is.null(args$col)) style$point else args$col)
}

# How a panel of k levels is drawn: labels and full-size symbols up to
# `max_labels` levels; beyond, small points and light thin intervals whose
# overlap shows where the modes are dense.
ranef_panel_style <- function(k, max_labels) {
  if (k <= max_labels) {
    return(list(labels = TRUE, cex = 1, lwd = 1, bar = "black", point = "black"))
  }
  list(labels = FALSE, cex = max(0.15, min(0.6, 30 / sqrt(k) / 2)), lwd = 0.5,
       bar = grDevices::adjustcolor("steelblue", alpha.f = max(0.1, min(0.5, 100 / k))),
       point = grDevices::adjustcolor("black", alpha.f = max(0.2, min(1, 200 / k))))
}

check_max_labels <- function(max_labels) {
  if (!is.numeric(max_labels) || length(max_labels) != 1L || is.na(max_labels) ||
      max_labels < 0) {
    stop("'max_labels' must be a single non-negative number", call. = FALSE)
  }
  invisible(NULL)
}

# as.data.frame() of a ranef object with the interval ends.
ranef_plot_data <- function(x, level) {
  check_level(level)
  d <- as.data.frame.ranef.lmm(x)
  if (!"condsd" %in% names(d)) d$condsd <- NA_real_
  z <- stats::qnorm((1 + level) / 2)
  d$lower <- d$condval - z * d$condsd
  d$upper <- d$condval + z * d$condsd
  d
}

# One row of panels per grouping factor, one column per random effect.
ranef_panel_layout <- function(x) {
  nr <- length(x)
  nc <- max(vapply(x, function(el) NCOL(el), 1L))
  graphics::par(mfrow = c(nr, nc), mar = c(4, 6, 2.5, 1))
}
