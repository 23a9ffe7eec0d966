#' Control settings for `lmm()`
#'
#' Builds and validates the settings that steer the model checks and the
#' optimizer of [lmm()]. The `check.*` arguments follow the names and
#' meanings of `lme4::lmerControl()`; each takes one of the levels listed in
#' its default.
#'
#' @param optimizer Optimizer for the covariance parameters. Only `"bobyqa"`
#'   (Powell's bound-constrained quadratic-model method, as lme4's default
#'   `"nloptwrap"` uses) is available.
#' @param rhobeg,rhoend Initial and final trust-region radius of BOBYQA on
#'   the relative covariance parameters `theta`. `rhoend` sets the accuracy of
#'   `theta`. Without a `start` in [lmm()], the initial radius is
#'   `min(rhobeg, max(0.02, 0.05 * max(theta0)))` for the moment-based start
#'   `theta0`; from a given start, or lme4's, it is
#'   `min(rhobeg, max(0.01, 0.2 * max(abs(start))))` (minqa's `bobyqa` rule).
#' @param maxfun Largest number of deviance evaluations the optimizer may use.
#' @param calc.derivs Logical: check convergence with finite-difference
#'   gradient and Hessian at the optimum (and polish the optimum when the check
#'   fails) as lme4 does?
#' @param boundary.tol Estimates of `theta` closer than this to their lower
#'   bound are tried on the bound and kept there when that is no worse
#'   (lme4's `restart_edge`/`boundary.tol`). Use `0` to switch off.
#' @param check.nlev.gtr.1 What to do when a grouping factor has only one
#'   level: `"stop"`, `"warning"`, `"message"` or `"ignore"`.
#' @param check.nobs.vs.nlev What to do when a grouping factor has as many
#'   levels as there are observations.
#' @param check.nobs.vs.nRE What to do when a random-effects term has at
#'   least as many random effects as there are observations.
#' @param check.rankX How to treat a rank-deficient fixed-effects matrix:
#'   `"message+drop.cols"` (default), `"silent.drop.cols"`,
#'   `"warn+drop.cols"` or `"stop.deficient"`.
#' @param check.scaleX What to do when predictors are on very different
#'   scales: `"warning"` (default), `"message"`, `"stop"` or `"ignore"`.
#' @param check.conv.singular How to report a singular fit: `"message"`
#'   (default), `"warning"` or `"ignore"`.
#' @param check.conv.grad How to report a failed gradient check at the
#'   optimum: `"warning"` (default), `"message"`, `"stop"` or `"ignore"`.
#' @param grad.tol Tolerance of the gradient check (lme4's default 0.002).
#' @param threads Number of threads for the linear algebra of the fit
#'   (the dense Cholesky factorization of the crossed random-effects block
#'   and the products that form it): `NULL` (default) uses all cores, or a
#'   positive whole number. Estimates agree for any number of threads up to
#'   rounding error. The count bounds the fit's parallel work; it does not
#'   change any global setting.
#' @return An object of class `"lmmControl"`: a list of the validated
#'   settings (`threads` is stored as an integer, `0` meaning all cores).
#' @examples
#' lmmControl()
#' ctrl <- lmmControl(check.conv.singular = "ignore", maxfun = 5000)
#' ctrl
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' # a singular fit, without the "boundary (singular) fit" message
#' fit <- lmm(Yield ~ 1 + (1 | Batch), lme4::Dyestuff2, control = ctrl)
#' isSingular(fit)
#' fit$optinfo$feval   # evaluations used (at most maxfun)
#' @export
lmmControl <- function(optimizer = "bobyqa", rhobeg = 0.5, rhoend = 1e-7,
                       maxfun = 10000L, calc.derivs = TRUE,
                       boundary.tol = 1e-5,
                       check.nlev.gtr.1 = "stop",
                       check.nobs.vs.nlev = "stop",
                       check.nobs.vs.nRE = "stop",
                       check.rankX = c("message+drop.cols", "silent.drop.cols",
                                       "warn+drop.cols", "stop.deficient"),
                       check.scaleX = c("warning", "message", "stop", "ignore"),
                       check.conv.singular = c("message", "warning", "ignore"),
                       check.conv.grad = c("warning", "message", "stop", "ignore"),
                       grad.tol = 0.002, threads = NULL) {
  if (!identical(optimizer, "bobyqa")) {
    stop("lmmControl(): optimizer ", deparse1(optimizer),
         " is not supported yet; the only optimizer is \"bobyqa\"",
         call. = FALSE)
  }
  check_positive_number(rhobeg, "rhobeg")
  check_positive_number(rhoend, "rhoend")
  if (rhoend > rhobeg) {
    stop("lmmControl(): 'rhoend' (", rhoend, ") must not exceed 'rhobeg' (",
         rhobeg, ")", call. = FALSE)
  }
  check_positive_number(maxfun, "maxfun")
  check_flag(calc.derivs, "calc.derivs")
  if (!is.numeric(boundary.tol) || length(boundary.tol) != 1L ||
      !is.finite(boundary.tol) || boundary.tol < 0) {
    stop("lmmControl(): 'boundary.tol' must be a single non-negative number",
         call. = FALSE)
  }
  check_positive_number(grad.tol, "grad.tol")
  threads <- check_threads(threads)
  levels4 <- c("stop", "warning", "message", "ignore")
  structure(
    list(
      optimizer = optimizer,
      rhobeg = as.numeric(rhobeg),
      rhoend = as.numeric(rhoend),
      maxfun = as.integer(maxfun),
      calc.derivs = calc.derivs,
      boundary.tol = as.numeric(boundary.tol),
      check.nlev.gtr.1 = match_level(check.nlev.gtr.1, levels4, "check.nlev.gtr.1"),
      check.nobs.vs.nlev = match_level(check.nobs.vs.nlev, levels4, "check.nobs.vs.nlev"),
      check.nobs.vs.nRE = match_level(check.nobs.vs.nRE, levels4, "check.nobs.vs.nRE"),
      check.rankX = match_level(check.rankX, eval(formals()$check.rankX), "check.rankX"),
      check.scaleX = match_level(check.scaleX, eval(formals()$check.scaleX), "check.scaleX"),
      check.conv.singular = match_level(check.conv.singular,
                                        eval(formals()$check.conv.singular),
                                        "check.conv.singular"),
      check.conv.grad = match_level(check.conv.grad, eval(formals()$check.conv.grad),
                                    "check.conv.grad"),
      grad.tol = as.numeric(grad.tol),
      threads = threads
    ),
    class = "lmmControl"
  )
}

#' @method print lmmControl
#' @export
print.lmmControl <- function(x, ...) {
  cat("lmm control settings:\n")
  utils::str(unclass(x), give.head = FALSE, no.list = TRUE)
  invisible(x)
}

#' Control settings for `glmm()`
#'
#' Builds and validates the settings that steer the model checks, the
#' penalized iteratively reweighted least squares (PIRLS) iterations and the
#' optimizers of `glmm()`. The arguments follow the names, meanings and
#' defaults of `lme4::glmerControl()`; the `check.*` arguments are those of
#' [lmmControl()], plus `check.response.not.const`.
#'
#' As `lme4::glmer()`, a GLMM fit has two stages: with `nAGQ0initStep =
#' TRUE` the first optimizes the covariance parameters `theta` with the
#' fixed effects found inside PIRLS (the `nAGQ = 0` fit), and the second
#' optimizes `theta` and the fixed effects jointly from there (unless
#' `nAGQ = 0`). Unlike for linear mixed models, a grouping factor may have as
#' many levels as there are observations (observation-level random effects),
#' so `check.nobs.vs.nlev` and `check.nobs.vs.nRE` only act when there are
#' more levels, or more random effects, than observations.
#'
#' @param optimizer Optimizers of the two stages: one string (used for both)
#'   or two, each `"bobyqa"` (Powell's bound-constrained quadratic-model
#'   method) or `"Nelder_Mead"` (bounded Nelder-Mead simplex). Note that
#'   `lme4::glmerControl()` uses `c("bobyqa", "Nelder_Mead")` by default.
#' @param rhobeg,rhoend Initial and final trust-region radius of BOBYQA. The
#'   second stage searches every parameter in units of about one standard
#'   error (the fixed effects decorrelated by their first-stage covariance,
#'   each `theta` scaled by the curvature of the deviance along it), so both
#'   radii apply in those units there. A GLMM deviance comes from the
#'   iterative PIRLS solution, accurate to about 1e-8, so radii below the
#'   default `1e-5` would only chase that noise (the deviance changes by
#'   ~1e-10 over such a step).
#' @param maxfun Largest number of deviance evaluations each optimizer stage
#'   may use.
#' @param calc.derivs Logical: check convergence with a finite-difference
#'   gradient and Hessian at the optimum, as lme4 does?
#' @param boundary.tol Estimates of `theta` closer than this to their lower
#'   bound are tried on the bound and kept there when that is no worse. Use
#'   `0` to switch off.
#' @param tolPwrss Convergence tolerance of PIRLS: the iterations stop when
#'   the relative change of the penalized deviance is below it.
#' @param maxit Largest number of PIRLS iterations per deviance evaluation.
#' @param nAGQ0initStep Logical: run the first (`nAGQ = 0`) optimization
#'   stage to find starting values?
#' @param check.nlev.gtr.1,check.nobs.vs.nlev,check.nobs.vs.nRE,check.rankX,check.scaleX,check.conv.singular,check.conv.grad
#'   As in [lmmControl()].
#' @param check.response.not.const What to do when the response (as fitted,
#'   e.g. proportions for `cbind()` responses) is constant: `"stop"`
#'   (default), `"warning"`, `"message"` or `"ignore"`.
#' @param grad.tol Tolerance of the gradient check (lme4's default 0.002).
#' @param threads As in [lmmControl()]: `NULL` (all cores) or a positive
#'   whole number of threads for the fit's linear algebra.
#' @return An object of class `"glmmControl"`: a list of the validated
#'   settings, with `optimizer` always of length two.
#' @seealso [lmmControl()]
#' @examples
#' glmmControl()
#' glmmControl(optimizer = "Nelder_Mead", maxit = 50)
#' glmmControl(optimizer = c("bobyqa", "Nelder_Mead"), nAGQ0initStep = FALSE)
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' # glmer's default pairing: BOBYQA in the first stage, Nelder-Mead in the second
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp,
#'              control = glmmControl(optimizer = c("bobyqa", "Nelder_Mead")))
#' gfit
#' gfit$optinfo$feval_stages   # evaluations in each stage
#' @export
glmmControl <- function(optimizer = c("bobyqa", "bobyqa"), rhobeg = 0.5,
                        rhoend = 1e-5, maxfun = 10000L, calc.derivs = TRUE,
                        boundary.tol = 1e-5, tolPwrss = 1e-7, maxit = 100L,
                        nAGQ0initStep = TRUE,
                        check.nlev.gtr.1 = "stop",
                        check.nobs.vs.nlev = "stop",
                        check.nobs.vs.nRE = "stop",
                        check.rankX = c("message+drop.cols", "silent.drop.cols",
                                        "warn+drop.cols", "stop.deficient"),
                        check.scaleX = c("warning", "message", "stop", "ignore"),
                        check.conv.singular = c("message", "warning", "ignore"),
                        check.conv.grad = c("warning", "message", "stop", "ignore"),
                        check.response.not.const = "stop",
                        grad.tol = 0.002, threads = NULL) {
  caller <- "glmmControl()"
  optimizers <- c("bobyqa", "Nelder_Mead")
  if (!is.character(optimizer) || !length(optimizer) %in% 1:2 ||
      anyNA(optimizer) || !all(optimizer %in% optimizers)) {
    stop(caller, ": 'optimizer' must be one or two (one per stage) of ",
         "\"bobyqa\" and \"Nelder_Mead\", not ", deparse1(optimizer),
         call. = FALSE)
  }
  if (length(optimizer) == 1L) optimizer <- rep(optimizer, 2L)
  check_positive_number(rhobeg, "rhobeg", caller)
  check_positive_number(rhoend, "rhoend", caller)
  if (rhoend > rhobeg) {
    stop(caller, ": 'rhoend' (", rhoend, ") must not exceed 'rhobeg' (",
         rhobeg, ")", call. = FALSE)
  }
  check_count(maxfun, "maxfun", caller)
  check_flag(calc.derivs, "calc.derivs", caller)
  check_nonnegative_number(boundary.tol, "boundary.tol", caller)
  check_positive_number(tolPwrss, "tolPwrss", caller)
  check_count(maxit, "maxit", caller)
  check_flag(nAGQ0initStep, "nAGQ0initStep", caller)
  check_positive_number(grad.tol, "grad.tol", caller)
  threads <- check_threads(threads)
  levels4 <- c("stop", "warning", "message", "ignore")
  choices <- function(arg) eval(formals(glmmControl)[[arg]])
  structure(
    list(
      optimizer = optimizer,
      rhobeg = as.numeric(rhobeg),
      rhoend = as.numeric(rhoend),
      maxfun = as.integer(maxfun),
      calc.derivs = calc.derivs,
      boundary.tol = as.numeric(boundary.tol),
      tolPwrss = as.numeric(tolPwrss),
      maxit = as.integer(maxit),
      nAGQ0initStep = nAGQ0initStep,
      check.nlev.gtr.1 = match_level(check.nlev.gtr.1, levels4,
                                     "check.nlev.gtr.1", caller),
      check.nobs.vs.nlev = match_level(check.nobs.vs.nlev, levels4,
                                       "check.nobs.vs.nlev", caller),
      check.nobs.vs.nRE = match_level(check.nobs.vs.nRE, levels4,
                                      "check.nobs.vs.nRE", caller),
      check.rankX = match_level(check.rankX, choices("check.rankX"),
                                "check.rankX", caller),
      check.scaleX = match_level(check.scaleX, choices("check.scaleX"),
                                 "check.scaleX", caller),
      check.conv.singular = match_level(check.conv.singular,
                                        choices("check.conv.singular"),
                                        "check.conv.singular", caller),
      check.conv.grad = match_level(check.conv.grad, choices("check.conv.grad"),
                                    "check.conv.grad", caller),
      check.response.not.const = match_level(check.response.not.const, levels4,
                                             "check.response.not.const", caller),
      grad.tol = as.numeric(grad.tol),
      threads = threads
    ),
    class = "glmmControl"
  )
}

#' @method print glmmControl
#' @export
print.glmmControl <- function(x, ...) {
  cat("glmm control settings:\n")
  utils::str(unclass(x), give.head = FALSE, no.list = TRUE)
  invisible(x)
}

# Validation helpers shared by lmmControl() and glmmControl(); `caller`
# names the function in the messages.

# The first element of `value` when it is one of `choices`.
match_level <- function(value, choices, name, caller = "lmmControl()") {
  if (!is.character(value) || length(value) < 1L) {
    stop(caller, ": '", name, "' must be one of ",
         paste0("\"", choices, "\"", collapse = ", "), call. = FALSE)
  }
  value <- value[1L]
  if (!value %in% choices) {
    stop(caller, ": '", name, "' must be one of ",
         paste0("\"", choices, "\"", collapse = ", "), ", not \"", value, "\"",
         call. = FALSE)
  }
  value
}

check_positive_number <- function(value, name, caller = "lmmControl()") {
  if (!is.numeric(value) || length(value) != 1L || !is.finite(value) || value <= 0) {
    stop(caller, ": '", name, "' must be a single positive number",
         call. = FALSE)
  }
}

# match.arg() for a character option whose choices are the default of the
# calling function's formal argument, with an error that names the argument
# and the value given (match.arg()'s names neither).
match_choice <- function(arg) {
  name <- deparse(substitute(arg))
  fun <- sys.function(sys.parent())
  choices <- eval(formals(fun)[[name]], envir = parent.frame())
  if (identical(arg, choices)) return(choices[1L])
  i <- if (is.character(arg) && length(arg) == 1L && !is.na(arg)) {
    pmatch(arg, choices)
  } else {
    NA_integer_
  }
  if (is.na(i)) {
    stop("'", name, "' must be one of ", paste(dQuote(choices, FALSE), collapse = ", "),
         "; not ", deparse1(arg), call. = FALSE)
  }
  choices[i]
}

# An error naming the arguments in `...` (as they were written in the call)
# that a method does not use: lme4 warns that they are ignored and goes on,
# which hides a misspelled argument behind a result that was not asked for.
stop_unused <- function(..., caller) {
  if (...length() == 0L) return(invisible(NULL))
  exprs <- as.list(substitute(list(...)))[-1L]
  nms <- names(exprs)
  if (is.null(nms)) nms <- character(length(exprs))
  shown <- vapply(seq_along(exprs), function(i) {
    value <- paste(deparse(exprs[[i]], width.cutoff = 60L, nlines = 1L), collapse = "")
    if (nzchar(nms[i])) paste(nms[i], "=", value) else value
  }, "")
  stop(caller, ": unused argument", if (length(shown) > 1L) "s", " ",
       paste(shown, collapse = ", "), call. = FALSE)
}

check_flag <- function(value, name, caller = NULL) {
  if (!is.logical(value) || length(value) != 1L || is.na(value)) {
    stop(if (!is.null(caller)) paste0(caller, ": "), "'", name,
         "' must be TRUE or FALSE", call. = FALSE)
  }
}

# A single whole number >= 1 (iteration and evaluation limits).
check_count <- function(value, name, caller) {
  if (!is.numeric(value) || length(value) != 1L || !is.finite(value) ||
      value < 1 || value != round(value) || value > .Machine$integer.max) {
    stop(caller, ": '", name, "' must be a single whole number >= 1, not ",
         deparse1(value), call. = FALSE)
  }
}

check_nonnegative_number <- function(value, name, caller) {
  if (!is.numeric(value) || length(value) != 1L || !is.finite(value) ||
      value < 0) {
    stop(caller, ": '", name, "' must be a single non-negative number",
         call. = FALSE)
  }
}

# Acts on a check level from lmmControl(): "stop", "warning", "message" or
# "ignore".
signal_check <- function(level, msg) {
  switch(level,
         stop = stop(msg, call. = FALSE),
         warning = warning(msg, call. = FALSE),
         message = message(msg),
         ignore = invisible(NULL))
}

# The default settings, validated once per session: lmm() and glmm() called
# without `control` take them from here instead of building them again on
# every call (lmmControl() costs about as much as a tenth of a small fit).
default_controls <- new.env(parent = emptyenv())

default_control <- function(kind) {
  ctl <- default_controls[[kind]]
  if (is.null(ctl)) {
    ctl <- switch(kind, lmm = lmmControl(), glmm = glmmControl())
    assign(kind, ctl, envir = default_controls)
  }
  ctl
}
