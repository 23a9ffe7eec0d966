# Profiles on another scale, as lme4's logProf() and varianceProf(): the
# standard-deviation columns of an "lmmprofile" (lme4's names .sigNN and
# .sigma) replaced by their logarithms or squares, so that xyplot(),
# densityplot(), splom() and confint() work on that scale. A profile's zeta
# does not depend on the parameterisation, so only the parameter values
# change.

#' Profiles of the log or the square of the standard deviations
#'
#' `logProf()` and `varianceProf()` transform a likelihood profile (from
#' [profile.lmm()]) as lme4's functions of the same names do: the columns of
#' the random-effect standard deviations (lme4's names `.sig01`, ...) and
#' of the residual standard deviation (`.sigma`) become their logarithms
#' (`.lsig01`, `.lsigma`) or squares, the variances (`.sigsq01`,
#' `.sigmasq`). Plots and [confint()] of the result are then on that scale.
#' Points where a standard deviation is 0 are dropped from the log profile.
#' Correlations (also named `.sigNN` by lme4) stay as they are: lme4
#' transforms them too, which gives NaNs for the log of a negative
#' correlation and a non-monotone profile for its square.
#' Profiles made with `signames = FALSE` keep their descriptive names and
#' are returned unchanged, as lme4 does. An lme4 profile (`"thpr"`) is
#' handed to lme4's function.
#'
#' @param x A profile from [profile.lmm()] (or lme4's).
#' @param base Base of the logarithm.
#' @param ranef Logical: transform the random-effect standard deviations
#'   (and `.sigma`)? `FALSE`: `.sigma` only.
#' @param sigIni The start of the names transformed (lme4's argument):
#'   `"sig"` (all standard deviations) or `"sigma"` (the residual one only).
#' @return The profile, an `"lmmprofile"` object, on the new scale.
#' @seealso [profile.lmm()], [xyplot.lmmprofile()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
#' pr <- profile(fit)
#' confint(logProf(pr))
#' exp(confint(logProf(pr))[1:2, ])   # the intervals of the sds again
#' confint(varianceProf(pr))
#' lattice::xyplot(logProf(pr))
#' @export
logProf <- function(x, base = exp(1), ranef = TRUE, sigIni = if (ranef) "sig" else "sigma") {
  if (inherits(x, "thpr")) return(lme4::logProf(x, base = base, ranef = ranef, sigIni = sigIni))
  check_profile_arg(x, "logProf()")
  check_positive_number(base, "base", "logProf()")
  pattern <- paste0("^\\.", sigIni)
  transform_profile(x, pattern, function(v) log(v, base = base),
                    function(nm) sub(pattern, sub("sig", ".lsig", sigIni), nm),
                    drop_nonfinite = TRUE)
}

#' @rdname logProf
#' @export
varianceProf <- function(x, ranef = TRUE) {
  if (inherits(x, "thpr")) return(lme4::varianceProf(x, ranef = ranef))
  check_profile_arg(x, "varianceProf()")
  check_flag(ranef, "ranef", "varianceProf()")
  pattern <- paste0("^(\\.sig", if (ranef) "(ma)?" else "ma", ")")
  transform_profile(x, pattern, function(v) v^2, function(nm) sub(pattern, "\\1sq", nm),
                    drop_nonfinite = FALSE)
}

check_profile_arg <- function(x, caller) {
  if (!inherits(x, "lmmprofile")) {
    stop(caller, ": 'x' must be a profile from profile() of a mixedrs fit (or lme4's), not ",
         describe_class(x), call. = FALSE)
  }
}

# `x` with the parameter columns whose names match `pattern` mapped by `fun`
# and renamed by `rename`, in the data, the parameter factor and the
# attributes (bounds, optimum); with `drop_nonfinite`, without the rows where
# a mapped value is not finite.
transform_profile <- function(x, pattern, fun, rename, drop_nonfinite) {
  params <- setdiff(names(x), c(".zeta", ".par"))
  # Standard deviations only: lme4's .sigNN also names correlations (lower
  # bound -1), whose logarithm or square lme4 takes too, which gives no
  # usable profile (NaNs; a non-monotone spline).
  lower <- attr(x, "lower")
  is_sd <- params %in% names(lower)[!is.na(lower) & lower == 0]
  cols <- grep(pattern, params[is_sd], value = TRUE)
  if (!length(cols)) return(x)
  rename_all <- rename
  rename <- function(nm) ifelse(nm %in% cols, rename_all(nm), nm)
  keep <- attributes(x)[c("lower", "upper", "optimum")]
  for (nm in cols) x[[nm]] <- fun(x[[nm]])
  for (a in names(keep)) {
    v <- keep[[a]]
    hit <- names(v) %in% cols
    v[hit] <- fun(v[hit])
    names(v) <- rename(names(v))
    keep[[a]] <- v
  }
  if (drop_nonfinite) {
    ok <- apply(is.finite(as.matrix(x[cols])), 1L, all)
    x <- x[ok, , drop = FALSE]
  }
  names(x) <- rename(names(x))
  levels(x$.par) <- rename(levels(x$.par))
  rownames(x) <- NULL
  for (a in names(keep)) attr(x, a) <- keep[[a]]
  x
}
