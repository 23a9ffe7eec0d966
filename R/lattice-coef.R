# lattice plots of the per-level coefficients of coef(): dotplot() draws them
# as the caterpillar plots of dotplot.ranef.lmm() (without intervals), and
# plot() draws, per grouping factor, the coefficients that vary between
# levels against each other, as lme4 draws its "coef.mer" objects.

#' lattice plots of the per-level coefficients
#'
#' `dotplot()` of a [coef()] result draws, as lme4's `dotplot()` of its
#' `coef.mer` objects, one caterpillar plot per grouping factor with one panel
#' per coefficient (the fixed effect plus the level's random effect), the
#' levels ordered by their first coefficient; there are no intervals.
#' `plot()` draws, as lme4's `plot()` of `coef.mer`, the coefficients that
#' vary between the levels of a grouping factor against each other: a normal
#' QQ plot for one, a scatter plot of the first against the second for two,
#' a scatter-plot matrix for more.
#'
#' @param x An object of class `"coef.lmm"` from [coef.lmm()].
#' @param data Not used (lattice's generic has it); an error if given.
#' @param y Not used; an error if given.
#' @param ... For `dotplot()`, arguments of [dotplot.ranef.lmm()] (`main`,
#'   `transf`) and of [lattice::dotplot()]; for `plot()`, arguments of
#'   [lattice::qqmath()], [lattice::xyplot()] or [lattice::splom()].
#' @return A named list of `"trellis"` objects, one per grouping factor
#'   (`plot()`: `NULL` for a factor whose coefficients are all the same); it
#'   prints the plots.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' library(lattice)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' dotplot(coef(fit))
#' plot(coef(fit))
#' @name lattice-coef
#' @aliases dotplot.coef.lmm plot.coef.lmm
NULL

#' @rdname lattice-coef
#' @exportS3Method lattice::dotplot coef.lmm
dotplot.coef.lmm <- function(x, data, ...) {
  if (!missing(data)) stop("dotplot() of a coef object does not use 'data'", call. = FALSE)
  dotplot.ranef.lmm(x, ...)
}

#' @rdname lattice-coef
#' @export
plot.coef.lmm <- function(x, y, ...) {
  if (!missing(y)) stop("plot() of a coef object does not use 'y'", call. = FALSE)
  one <- function(d) {
    varying <- d[, !vapply(d, function(v) all(v == v[1L]), NA), drop = FALSE]
    cn <- lapply(names(varying), as.name)
    switch(min(ncol(varying), 3L) + 1L,
           NULL,
           lattice::qqmath(eval(call("~", cn[[1L]])), data = varying, ...),
           lattice::xyplot(eval(call("~", cn[[1L]], cn[[2L]])), data = varying, ...),
           lattice::splom(~varying, ...))
  }
  lapply(unclass(x), one)
}
