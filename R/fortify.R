# ggplot2's fortify() for mixedrs fits, as lme4 defines it for merMod fits:
# the data with the fitted values, the residuals and the scaled Pearson
# residuals added as columns.

#' Data with fitted values and residuals, for ggplot2
#'
#' The method of ggplot2's `fortify()` that lme4 provides for its fits: the
#' data with three columns added, `.fitted` ([predict()] of the fit, on the
#' link scale for `glmm()` fits), `.resid` ([residuals()] of the default
#' type) and `.scresid` (Pearson residuals scaled by the residual standard
#' deviation, `residuals(type = "pearson", scaled = TRUE)`).
#'
#' @param model A fitted model of class `"lmm"` or `"glmm"`.
#' @param data The data to add the columns to: by default [getData()] (the
#'   data the model was fitted to). It must have one row per value those
#'   methods return: one per observation used, or, for a fit with
#'   `na.action = na.exclude`, one per row of the data (the excluded rows get
#'   `NA`).
#' @param ... Not used (an error if given).
#' @return `data` as a data frame with the columns `.fitted`, `.resid` and
#'   `.scresid`.
#' @seealso [augment.lmm()], which adds more columns (hat values, Cook's
#'   distances, ...).
#' @examplesIf requireNamespace("lme4", quietly = TRUE) && requireNamespace("ggplot2", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' fd <- ggplot2::fortify(fit)
#' head(fd)
#' ggplot2::ggplot(fd, ggplot2::aes(.fitted, .scresid)) + ggplot2::geom_point()
#' @exportS3Method ggplot2::fortify
fortify.mixedrs_fit <- function(model, data = getData(model), ...) {
  check_no_dots(..., caller = "fortify()")
  data <- as.data.frame(data)
  cols <- list(.fitted = stats::predict(model), .resid = stats::residuals(model),
               .scresid = stats::residuals(model, type = "pearson", scaled = TRUE))
  n <- length(cols$.fitted)
  if (nrow(data) != n) {
    stop("'data' has ", nrow(data), " rows; fortify() needs one row per fitted value (",
         n, ")", if (!inherits(mer_na_action(model), "exclude")) {
           " (na.action = na.exclude gives one per row of the data)"
         }, call. = FALSE)
  }
  for (nm in names(cols)) data[[nm]] <- unname(as.vector(cols[[nm]]))
  data
}
