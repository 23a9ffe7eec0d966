# allFit(): a fit refitted with each available optimizer, and the summary
# that compares them (lme4's allFit and summary.allFit components).

#' Refit a model with every available optimizer
#'
#' Refits `object` with each optimizer of `meth.tab` and collects the fits,
#' as `lme4::allFit()` does, to check that the estimates do not depend on
#' the optimizer. The arguments are lme4's. For an `lme4` fit (`merMod`) it
#' calls `lme4::allFit()`.
#'
#' Each refit keeps the settings of the fit's own `control` (however it was
#' given: `lmmControl(...)`, `glmmControl(...)`, lme4's
#' `lmerControl(...)`/`glmerControl(...)`, a list or a variable holding one)
#' and changes the optimizer (both stages of a GLMM), its own settings and its
#' evaluation limit.
#'
#' @param object A fit from [lmm()] or [glmm()] (or lme4's).
#' @param meth.tab Optimizers to use: lme4's two-column character matrix
#'   (`optimizer`, `method`: nloptwrap's `algorithm`), or a character vector
#'   of optimizer names that [lmmControl()] (for a GLMM [glmmControl()])
#'   accepts. Default: lme4's table, `"bobyqa"`, `"Nelder_Mead"`,
#'   `"nlminbwrap"` (lme4's wrapper of [stats::nlminb()]), `"nmkbw"` (lme4's
#'   wrapper of dfoptim's bounded Nelder-Mead), `"optimx"` with
#'   `"L-BFGS-B"` and `"nloptwrap"` with `"NLOPT_LN_BOBYQA"`, each where its
#'   package is installed (nloptwrap's `"NLOPT_LN_NELDERMEAD"` is left
#'   out). An optimizer that is not
#'   available (e.g. nloptwrap's `"NLOPT_LN_NELDERMEAD"`) gives a failed
#'   entry saying why.
#' @param data Stored with the result (attribute `"data"`), as lme4 does.
#' @param verbose Logical: say which optimizer is running?
#' @param show.meth.tab Logical: return the table of optimizers that would be
#'   used, without fitting.
#' @param maxfun Largest number of evaluations per optimizer (passed as each
#'   optimizer's own limit: `maxfun`, `maxeval`, `eval.max`).
#' @param parallel `"no"`, `"multicore"` (forked processes; not on Windows)
#'   or `"snow"` (a socket cluster: `cl`, or one of `ncpus` local workers);
#'   used when `ncpus > 1` or `cl` is given.
#' @param ncpus Number of processes for `parallel`.
#' @param cl A cluster from [parallel::makeCluster()] for `parallel = "snow"`
#'   (mixedrs is loaded on its workers).
#' @param catch.errs Logical: keep a failed refit as its error object (the
#'   default) rather than stop?
#' @param ... For a `merMod`, passed to `lme4::allFit()`; otherwise an error.
#' @return An object of class `c("mixedrs_allFit", "allFit")`: a named list
#'   of the fits (an error object where a fit failed), each with attributes
#'   `"time"` (its timing) and `"optCtrl"`; attributes `fit` (`object`),
#'   `sessionInfo` and `data`. `summary()` gives lme4's components
#'   `which.OK`, `msgs`, `fixef`, `llik`, `sdcor`, `theta`, `times` and
#'   `feval`.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("sleepstudy", package = "lme4")
#' fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
#' allFit(fit, show.meth.tab = TRUE)
#' af <- allFit(fit, verbose = FALSE)
#' s <- summary(af)
#' s$which.OK
#' s$fixef
#' s$llik
#' @export
allFit <- function(object, meth.tab = NULL, data = NULL, verbose = TRUE,
                   show.meth.tab = FALSE, maxfun = 1e5,
                   parallel = c("no", "multicore", "snow"),
                   ncpus = getOption("allFit.ncpus", 1L), cl = NULL,
                   catch.errs = TRUE, ...) {
  # lme4's allFit(show.meth.tab = TRUE) needs no model
  if (missing(object) && isTRUE(show.meth.tab)) return(allfit_table(meth.tab))
  if (inherits(object, "merMod")) {
    return(lme4::allFit(object, meth.tab = meth.tab, data = data, verbose = verbose,
                        show.meth.tab = show.meth.tab, maxfun = maxfun,
                        parallel = parallel, ncpus = ncpus, cl = cl,
                        catch.errs = catch.errs, ...))
  }
  stop_unused(..., caller = "allFit()")
  require_classic_family(object, "allFit()")
  if (!inherits(object, "mixedrs_fit")) {
    stop("allFit(): 'object' must be a fit from lmm() or glmm(), not ",
         class(object)[1L], call. = FALSE)
  }
  tab <- allfit_table(meth.tab)
  if (show.meth.tab) return(tab)
  parallel <- match.arg(parallel)
  check_flag(catch.errs, "catch.errs", "allFit()")
  glmm_fit <- inherits(object, "glmm")
  env <- environment(object$formula)
  if (!is.environment(env)) env <- parent.frame()
  base_args <- allfit_control_args(object, env)
  # The data travel with the refits (to the workers of a cluster too); the
  # fits' calls name the caller's data again.
  fit_env <- new.env(parent = env)
  if (!is.null(object$call$data)) fit_env$.allFit_data <- eval(object$call$data, env)
  labels <- ifelse(nzchar(tab[, "method"]),
                   paste(tab[, "optimizer"], tab[, "method"], sep = "."), tab[, "optimizer"])
  fit_one <- function(i) {
    if (verbose) message(labels[i], " : ", appendLF = FALSE)
    t0 <- proc.time()
    args <- NULL
    refit <- function() {
      args <<- allfit_optimizer_args(base_args, tab[[i, "optimizer"]], tab[[i, "method"]],
                                     maxfun)
      call <- object$call
      call$control <- as.call(c(if (glmm_fit) quote(mixedrs::glmmControl)
                                else quote(mixedrs::lmmControl), args))
      if (!is.null(call$data)) call$data <- quote(.allFit_data)
      fit <- suppressWarnings(suppressMessages(eval(call, fit_env)))
      fit$call$data <- object$call$data
      fit
    }
    res <- if (catch.errs) tryCatch(refit(), error = function(e) e) else refit()
    attr(res, "time") <- proc.time() - t0
    attr(res, "optCtrl") <- args$optCtrl
    if (verbose) message(if (inherits(res, "error")) "[failed]" else "[OK]")
    res
  }
  index <- seq_len(nrow(tab))
  fits <- if (parallel == "multicore" && (ncpus > 1L) && .Platform$OS.type != "windows") {
    parallel::mclapply(index, fit_one, mc.cores = ncpus)
  } else if (parallel == "snow" && (ncpus > 1L || !is.null(cl))) {
    if (is.null(cl)) {
      cl <- parallel::makePSOCKcluster(rep("localhost", ncpus))
      on.exit(parallel::stopCluster(cl), add = TRUE)
    }
    parallel::clusterEvalQ(cl, library(mixedrs))
    parallel::parLapply(cl, index, fit_one)
  } else {
    lapply(index, fit_one)
  }
  names(fits) <- labels
  # Its own class first, so that lme4's allFit objects keep lme4's methods.
  structure(fits, class = c("mixedrs_allFit", "allFit"), fit = object,
            sessionInfo = utils::sessionInfo(), data = data)
}

# allFit()'s table of optimizers: lme4's matrix with columns optimizer and
# method, from a matrix, a vector of names or the default.
allfit_table <- function(meth.tab) {
  if (is.null(meth.tab)) {
    # lme4's table, less what is not installed (as lme4's allFit() leaves
    # those out) and nloptwrap's NLOPT_LN_NELDERMEAD (not available here)
    lme4 <- requireNamespace("lme4", quietly = TRUE)
    tab <- rbind(c("bobyqa", ""), c("Nelder_Mead", ""),
                 if (lme4) c("nlminbwrap", ""),
                 if (lme4 && requireNamespace("dfoptim", quietly = TRUE)) c("nmkbw", ""),
                 if (requireNamespace("optimx", quietly = TRUE)) c("optimx", "L-BFGS-B"),
                 c("nloptwrap", "NLOPT_LN_BOBYQA"))
    colnames(tab) <- c("optimizer", "method")
    return(tab)
  }
  if (is.character(meth.tab) && is.null(dim(meth.tab)) && length(meth.tab) && !anyNA(meth.tab)) {
    return(cbind(optimizer = meth.tab, method = ""))
  }
  if (is.matrix(meth.tab) && is.character(meth.tab) && nrow(meth.tab) &&
      all(c("optimizer", "method") %in% colnames(meth.tab))) {
    return(meth.tab[, c("optimizer", "method"), drop = FALSE])
  }
  stop("allFit(): 'meth.tab' must name optimizers: a character vector or lme4's ",
       "matrix with columns \"optimizer\" and \"method\"", call. = FALSE)
}

# The settings of the fit's control (control_of(): its call's `control`
# evaluated again and translated, whether written as a call, a variable or
# lme4's object) as arguments of lmmControl()/glmmControl(), without the
# optimizer's own (optimizer, optCtrl, maxfun, trust-region radii): each
# refit sets those for its optimizer. The check levels carry their
# tolerances.
allfit_control_args <- function(object, env) {
  if (is.null(object$call$control)) return(list())
  ctrl <- unclass(control_of(object, env))
  builder <- if (inherits(object, "glmm")) glmmControl else lmmControl
  args <- ctrl[intersect(names(ctrl), names(formals(builder)))]
  args$check.conv.singular <- list(action = ctrl$check.conv.singular, tol = ctrl$singular.tol)
  args$check.conv.hess <- list(action = ctrl$check.conv.hess, tol = ctrl$hess.tol)
  args$check.conv.grad <- c(list(action = ctrl$check.conv.grad, tol = ctrl$grad.tol),
                            if (!is.null(ctrl$grad.relTol)) list(relTol = ctrl$grad.relTol))
  if (identical(args$threads, 0L)) args$threads <- NULL
  args[setdiff(names(args), c("optimizer", "optCtrl", "maxfun", "rhobeg", "rhoend",
                              "grad.tol"))]
}

# The control arguments of one allFit() refit: the optimizer, its method
# (nloptwrap's algorithm) and the evaluation limit under the optimizer's
# own name for it.
allfit_optimizer_args <- function(args, optimizer, method, maxfun) {
  args$optimizer <- optimizer
  opt_ctrl <- list()
  if (optimizer %in% c("bobyqa", "Nelder_Mead")) {
    args$maxfun <- maxfun
  } else if (optimizer == "nloptwrap") {
    opt_ctrl$maxeval <- maxfun
  } else if (optimizer == "nlminbwrap") {
    opt_ctrl$eval.max <- maxfun
  } else if (optimizer == "nmkbw") {
    opt_ctrl$maxfeval <- maxfun
  } else if (optimizer == "optimx") {
    opt_ctrl$maxit <- maxfun
  }
  if (nzchar(method)) {
    if (!optimizer %in% c("nloptwrap", "optimx")) {
      stop("allFit(): method \"", method, "\" of optimizer \"", optimizer,
           "\" is not available (only nloptwrap and optimx take a method)", call. = FALSE)
    }
    if (optimizer == "optimx") opt_ctrl$method <- method else opt_ctrl$algorithm <- method
  }
  args$optCtrl <- opt_ctrl
  args
}

#' @method print mixedrs_allFit
#' @export
print.mixedrs_allFit <- function(x, ...) {
  ok <- !vapply(x, inherits, TRUE, "error")
  cat("allFit: refits with", length(x), "optimizers,", sum(ok), "succeeded\n")
  cat("original model:\n")
  print(formula(if (!is.null(attr(x, "fit"))) attr(x, "fit") else x[[which(ok)[1L]]]))
  cat("optimizers (", length(x), "): ", paste(names(x), collapse = ", "), "\n", sep = "")
  if (any(!ok)) cat("failed:", paste(names(x)[!ok], collapse = ", "), "\n")
  invisible(x)
}

#' @method summary mixedrs_allFit
#' @export
summary.mixedrs_allFit <- function(object, ...) {
  ok <- !vapply(object, inherits, TRUE, "error")
  if (!any(ok)) {
    stop("summary(): no refit of the allFit() object succeeded; its entries are ",
         "the errors", call. = FALSE)
  }
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
  vc1 <- as.data.frame(varcorr_lme4(fits[[1L]]))
  sdcor <- rows(function(f) as.data.frame(varcorr_lme4(f))[["sdcor"]])
  # lme4 names the columns by theta's names (and "sigma"); where a covariance
  # structure gives the two vectors different lengths, by what each one is
  theta_nm <- names(getME.mixedrs_fit(fits[[1L]], "theta"))
  lme4_names <- c(theta_nm, if (any(vc1$grp == "Residual")) "sigma")
  colnames(sdcor) <- if (length(lme4_names) == ncol(sdcor)) lme4_names else vc_label(vc1)
  theta <- rows(function(f) f$theta)
  colnames(theta) <- theta_nm
  res <- list(
    which.OK = ok,
    msgs = lapply(fits, function(f) f$optinfo$conv$lme4$messages),
    fixef = rows(fixef),
    llik = vapply(fits, function(f) as.numeric(logLik(f)), 1),
    sdcor = as.data.frame(sdcor),
    theta = theta,
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
