# allFit(): a fit refitted with each available optimizer, and the summary
# that compares them (lme4's allFit and summary.allFit components).

#' Refit a model with every available optimizer
#'
#' Refits `object` with each optimizer of `meth.tab` and collects the fits,
#' as `lme4::allFit()` does, to check that the estimates do not depend on
#' the optimizer. For an `lme4` fit (`merMod`) it calls `lme4::allFit()`.
#'
#' @param object A fit from [lmm()] or [glmm()] (or lme4's).
#' @param meth.tab Optimizers to use: a character vector of names
#'   [lmmControl()] (for a GLMM, [glmmControl()], used for both stages)
#'   accepts. Default: `"bobyqa"`, `"nloptwrap"`, `"Nelder_Mead"`, and for
#'   an LMM lme4's `"nlminbwrap"` when lme4 is installed.
#' @param verbose Logical: say which optimizer is running?
#' @param maxfun Largest number of evaluations per optimizer.
#' @param ... For a `merMod`, passed to `lme4::allFit()`; otherwise an error.
#' @return An object of class `c("mixedrs_allFit", "allFit")`: a named list of the fits (an
#'   error object where a fit failed), each with attribute `"time"` (its
#'   elapsed time). `summary()` gives lme4's components `which.OK`, `msgs`,
#'   `fixef`, `llik`, `sdcor`, `theta`, `times` and `feval`.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("sleepstudy", package = "lme4")
#' fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
#' af <- allFit(fit, verbose = FALSE)
#' s <- summary(af)
#' s$which.OK
#' s$fixef
#' s$llik
#' @export
allFit <- function(object, meth.tab = NULL, verbose = TRUE, maxfun = 1e5, ...) {
  if (inherits(object, "merMod")) {
    return(lme4::allFit(object, meth.tab = meth.tab, verbose = verbose, maxfun = maxfun, ...))
  }
  stop_unused(..., caller = "allFit()")
  if (!inherits(object, "mixedrs_fit")) {
    stop("allFit(): 'object' must be a fit from lmm() or glmm(), not ",
         class(object)[1L], call. = FALSE)
  }
  glmm_fit <- inherits(object, "glmm")
  if (is.null(meth.tab)) {
    meth.tab <- c("bobyqa", "nloptwrap", "Nelder_Mead",
                  if (!glmm_fit && requireNamespace("lme4", quietly = TRUE)) "nlminbwrap")
  }
  if (!is.character(meth.tab) || !length(meth.tab) || anyNA(meth.tab)) {
    stop("allFit(): 'meth.tab' must name optimizers", call. = FALSE)
  }
  env <- environment(object$formula)
  if (!is.environment(env)) env <- parent.frame()
  fits <- lapply(meth.tab, function(o) {
    if (verbose) message(o, " : ", appendLF = FALSE)
    call <- object$call
    call$control <- if (glmm_fit) {
      glmmControl(optimizer = o, maxfun = maxfun)
    } else {
      lmmControl(optimizer = o, maxfun = maxfun)
    }
    t0 <- proc.time()
    res <- tryCatch(suppressWarnings(suppressMessages(eval(call, env))),
                    error = function(e) e)
    attr(res, "time") <- proc.time() - t0
    if (verbose) message(if (inherits(res, "error")) "[failed]" else "[OK]")
    res
  })
  names(fits) <- meth.tab
  # Its own class first, so that lme4's allFit objects keep lme4's methods.
  structure(fits, class = c("mixedrs_allFit", "allFit"))
}

#' @method print mixedrs_allFit
#' @export
print.mixedrs_allFit <- function(x, ...) {
  ok <- !vapply(x, inherits, TRUE, "error")
  cat("allFit: refits with", length(x), "optimizers,", sum(ok), "succeeded\n")
  cat("original model:\n")
  print(formula(x[[which(ok)[1L]]]))
  cat("optimizers (", length(x), "): ", paste(names(x), collapse = ", "), "\n", sep = "")
  if (any(!ok)) cat("failed:", paste(names(x)[!ok], collapse = ", "), "\n")
  invisible(x)
}

#' @method summary mixedrs_allFit
#' @export
summary.mixedrs_allFit <- function(object, ...) {
  ok <- !vapply(object, inherits, TRUE, "error")
  fits <- object[ok]
  rows <- function(f) {
    out <- t(vapply(fits, f, f(fits[[1L]])))
    if (nrow(out) != length(fits)) out <- t(out)
    rownames(out) <- names(fits)
    out
  }
  vc_label <- function(vc) {
    ifelse(vc$grp == "Residual", "sigma",
           paste0(ifelse(is.na(vc$var2), "sd_", "cor_"), vc$var1,
                  ifelse(is.na(vc$var2), "", paste0(".", vc$var2)), "|", vc$grp))
  }
  vc1 <- as.data.frame(VarCorr(fits[[1L]]))
  sdcor <- rows(function(f) as.data.frame(VarCorr(f))[["sdcor"]])
  colnames(sdcor) <- vc_label(vc1)
  res <- list(
    which.OK = ok,
    msgs = lapply(fits, function(f) f$optinfo$conv$lme4$messages),
    fixef = rows(fixef),
    llik = vapply(fits, function(f) as.numeric(logLik(f)), 1),
    sdcor = as.data.frame(sdcor),
    theta = rows(function(f) f$theta),
    times = rows(function(f) unclass(attr(f, "time"))[1:5]),
    feval = vapply(fits, function(f) as.numeric(f$optinfo$feval), 1)
  )
  class(res) <- c("summary.mixedrs_allFit", "summary.allFit")
  res
}

#' @method print summary.mixedrs_allFit
#' @export
print.summary.mixedrs_allFit <- function(x, ...) {
  print(unclass(x), ...)
  invisible(x)
}
