# A likelihood profile as a plain data frame, laid out as lme4's
# as.data.frame() of a profile lays it out: lattice formulas such as
# xyplot(.zeta ~ .focal | .par, data = as.data.frame(pr)) then work on either.

#' A likelihood profile as a data frame
#'
#' Turns a profile from [profile.lmm()] into a plain data frame as lme4's
#' `as.data.frame()` of a profile does: the columns `.zeta`, one per
#' parameter and `.par` (now a factor, its levels the parameters in the
#' order they were profiled), and a new column `.focal` with the value of the
#' profiled parameter at each point, so that all parameters' profiles can be
#' drawn in one lattice formula.
#'
#' @param x A profile (an `"lmmprofile"` object) from [profile.lmm()].
#' @param row.names `NULL` (the profile's row names) or a vector of one row
#'   name per point.
#' @param optional As for [as.data.frame()] of a data frame, whose column
#'   names are kept either way.
#' @param stringsAsFactors Passed by [data.frame()]; the profile has no
#'   character columns (`.par` is a factor, as in lme4's data frame).
#' @param ... Nothing else: an argument given here is an error.
#' @return A data frame with the columns of `x`, `.par` as a factor, and
#'   `.focal`.
#' @seealso [profile.lmm()], [xyplot.lmmprofile()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
#' pr <- as.data.frame(profile(fit))
#' head(pr)
#' lattice::xyplot(.zeta ~ .focal | .par, data = pr, type = "l",
#'                 scales = list(x = list(relation = "free")))
#' @export
as.data.frame.lmmprofile <- function(x, row.names = NULL, optional = FALSE,
                                     stringsAsFactors = FALSE, ...) {
  if (...length()) {
    stop("as.data.frame() of a profile takes 'row.names', 'optional' and ",
         "'stringsAsFactors' only; not used: ",
         paste(names(list(...)), collapse = ", "), call. = FALSE)
  }
  out <- x
  attr(out, "lower") <- NULL
  attr(out, "upper") <- NULL
  attr(out, "optimum") <- NULL
  class(out) <- "data.frame"
  par <- as.character(out$.par)
  focal <- rep(NA_real_, nrow(out))
  for (p in unique(par)) {
    rows <- par == p
    focal[rows] <- out[[p]][rows]
  }
  out$.par <- factor(par, levels = unique(par))
  out$.focal <- focal
  if (!is.null(row.names)) {
    if (length(row.names) != nrow(out)) {
      stop("'row.names' must give one name for each of the profile's ", nrow(out),
           " points, not ", length(row.names), call. = FALSE)
    }
    rownames(out) <- row.names
  }
  out
}
