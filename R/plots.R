# Diagnostic plots of "lmm" and "glmm" fits in base graphics: residuals
# against fitted values (lme4's default plot of a merMod), a normal QQ plot
# of the residuals, and caterpillar and QQ plots of the conditional modes of
# the random effects with their conditional intervals (lme4's
# dotplot.ranef.mer and qqmath.ranef.mer, drawn with base graphics).

#' Residuals against fitted values of a mixed model
#'
#' Draws the Pearson residuals against the fitted values (lme4's default
#' `plot()` of a fitted mixed model, `resid(., type = "pearson") ~
#' fitted(.)`), with a horizontal reference line at 0 and, optionally, a
#' lowess smooth.
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param smooth Logical: add a [stats::lowess()] smooth of the residuals?
#' @param xlab,ylab,main Axis labels and title.
#' @param ... Further graphical parameters passed to [graphics::plot()].
#' @return Invisibly, a data frame with columns `fitted` and `residuals`
#'   (the plotted points, one per observation used in the fit).
#' @seealso [qqnorm.lmm()], [plot.ranef.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' plot(fit)
#' plot(fit, smooth = TRUE, col = "grey40")
#' @export
plot.lmm <- function(x, smooth = FALSE, xlab = "Fitted values",
                     ylab = "Pearson residuals", main = "", ...) {
  check_flag(smooth, "smooth", "plot()")
  pts <- data.frame(fitted = mer_fitted_plain(x), residuals = mer_pearson_plain(x))
  graphics::plot(pts$fitted, pts$residuals, xlab = xlab, ylab = ylab, main = main, ...)
  graphics::abline(h = 0, lty = 2, col = "grey50")
  if (smooth) graphics::lines(stats::lowess(pts$fitted, pts$residuals), col = "red")
  invisible(pts)
}

#' @rdname plot.lmm
#' @export
plot.glmm <- plot.lmm

# Fitted values (response scale) and Pearson residuals, unpadded.
mer_fitted_plain <- function(x) {
  unname(as.vector(if (is_glmm(x)) x$mu else x$fitted))
}

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
#' @seealso [plot.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' qqnorm(fit)
#' @importFrom stats qqnorm
#' @export
qqnorm.lmm <- function(y, line = TRUE, main = "Normal Q-Q plot of the residuals",
                       ylab = "Scaled Pearson residuals", ...) {
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

#' Caterpillar and QQ plots of the random effects
#'
#' `plot()` draws, for every grouping factor and every random effect of it,
#' a caterpillar plot: the levels sorted by their conditional mode, each
#' with its conditional interval `mode +/- qnorm((1 + level) / 2) * condsd`
#' (as lme4's `dotplot(ranef(fit, condVar = TRUE))`). `qqnorm()` plots the
#' conditional modes of each random effect against normal quantiles, with
#' the same intervals (as lme4's `qqmath()` of a ranef object). The panels
#' are laid out in one figure (one row per grouping factor); intervals need
#' `ranef(fit, condVar = TRUE)` (the default).
#'
#' @param x,y An object of class `"ranef.lmm"` from [ranef.lmm()] (with
#'   `drop = FALSE`, the default).
#' @param level Coverage of the intervals.
#' @param ... Further graphical parameters passed to [graphics::plot()] for
#'   every panel (e.g. `pch`, `cex`).
#' @return Invisibly, the data frame of [as.data.frame.ranef.lmm()] with
#'   columns `lower` and `upper` (the interval ends, `NA` without
#'   conditional variances) and, for `qqnorm()`, `theoretical` (the normal
#'   quantile of each mode).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' plot(ranef(fit))
#' qqnorm(ranef(fit))
#' @export
plot.ranef.lmm <- function(x, level = 0.95, ...) {
  d <- ranef_plot_data(x, level)
  panels <- split(d, interaction(d$grpvar, d$term, drop = TRUE, lex.order = TRUE))
  old <- ranef_panel_layout(x)
  on.exit(graphics::par(old))
  for (p in panels) {
    p <- p[order(p$condval), , drop = FALSE]
    k <- nrow(p)
    lims <- range(c(p$lower, p$upper, p$condval), na.rm = TRUE)
    graphics::plot(p$condval, seq_len(k), xlim = lims, yaxt = "n",
                   xlab = paste(p$term[1L], "|", p$grpvar[1L]), ylab = "",
                   pch = 16, ...)
    graphics::axis(2, at = seq_len(k), labels = as.character(p$grp), las = 1,
                   cex.axis = min(1, 25 / k))
    ok <- !is.na(p$lower)
    if (any(ok)) {
      graphics::segments(p$lower[ok], seq_len(k)[ok], p$upper[ok], seq_len(k)[ok])
    }
    graphics::abline(v = 0, lty = 2, col = "grey50")
  }
  invisible(d)
}

#' @rdname plot.ranef.lmm
#' @export
qqnorm.ranef.lmm <- function(y, level = 0.95, ...) {
  d <- ranef_plot_data(y, level)
  d$theoretical <- NA_real_
  key <- interaction(d$grpvar, d$term, drop = TRUE, lex.order = TRUE)
  old <- ranef_panel_layout(y)
  on.exit(graphics::par(old))
  for (lv in levels(key)) {
    idx <- which(key == lv)
    p <- d[idx, , drop = FALSE]
    th <- stats::qnorm(stats::ppoints(nrow(p)))[rank(p$condval, ties.method = "first")]
    d$theoretical[idx] <- th
    lims <- range(c(p$lower, p$upper, p$condval), na.rm = TRUE)
    graphics::plot(p$condval, th, xlim = lims, pch = 16,
                   xlab = paste(p$term[1L], "|", p$grpvar[1L]),
                   ylab = "Standard normal quantiles", ...)
    ok <- !is.na(p$lower)
    if (any(ok)) graphics::segments(p$lower[ok], th[ok], p$upper[ok], th[ok])
    graphics::abline(v = 0, lty = 2, col = "grey50")
  }
  invisible(d)
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
  graphics::par(mfrow = c(nr, nc), mar = c(4, 6, 1, 1))
}
