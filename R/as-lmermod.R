# Conversion of "lmm" and "glmm" fits into lme4's "lmerMod" and "glmerMod"
# objects, built through lme4's modular functions (lFormula/glFormula,
# mkLmerDevfun/mkGlmerDevfun, mkMerMod) and evaluated once at our
# estimates, so that every lme4 tool (and every package built on lme4's
# classes) can be used on a model fitted by mixedrs without refitting it.

#' Convert a mixed model fit to an lme4 object
#'
#' Builds the lme4 object of the same model at the estimates of the fit,
#' without optimizing: for an `"lmm"` fit `lme4::lFormula()` and
#' `lme4::mkLmerDevfun()` set up the model, the deviance function is
#' evaluated once at our `theta` (which solves for the fixed effects and the
#' conditional modes as lme4 does) and `lme4::mkMerMod()` assembles an
#' `"lmerMod"` object. For a `"glmm"` fit `lme4::glFormula()`,
#' `lme4::mkGlmerDevfun()` and `lme4::updateGlmerDevfun()` set up the model,
#' the deviance is evaluated at our `theta` and fixed effects (PIRLS then
#' finds the conditional modes), and the result is a `"glmerMod"` object
#' carrying our finite-difference Hessian (so its `vcov()` is ours). For
#' `nAGQ = 0` fits the deviance is evaluated at `theta`, the fixed effects
#' being estimated inside PIRLS as in the fit.
#'
#' The data are found as the fit found them (the call's `data`, `subset`,
#' `weights`, `offset`, `na.action`, evaluated in the environment of the
#' model formula) unless `data` is given. The optimizer record holds
#' mixedrs' evaluation count and convergence messages, and names the
#' optimizer lme4 uses when it refits or profiles the object (`refit()`,
#' `bootMer()`, `profile()`): the fit's last-stage optimizer where lme4 has
#' it (`"bobyqa"`, `"Nelder_Mead"`, `"nloptwrap"`, `"nlminbwrap"`), otherwise
#' `"bobyqa"`. The call
#' of the result is the equivalent `lme4::lmer()` or `lme4::glmer()` call
#' (without mixedrs' `control`, with `data` as given here), so `update()`
#' refits with lme4.
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param data Optional data frame to build the model from (default: the
#'   data of the fit's call).
#' @param ... Not used (an error if given).
#' @return An object of class `"lmerMod"` or `"glmerMod"` (package lme4).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' m <- as_lmerMod(fit)
#' class(m)
#' lme4::getME(m, "theta")
#' confint(m, method = "Wald")
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' summary(as_lmerMod(gfit))
#' @export
as_lmerMod <- function(x, data = NULL, ...) {
  check_no_dots(..., caller = "as_lmerMod()")
  require_classic_family(x, "as_lmerMod()")
  if (!inherits(x, c("lmm", "glmm"))) {
    stop("as_lmerMod() needs a fit from lmm() or glmm(), not an object of ",
         "class '", class(x)[1L], "'", call. = FALSE)
  }
  if (!requireNamespace("lme4", quietly = TRUE)) {
    stop("as_lmerMod() needs the lme4 package, which is not installed; ",
         "install it with install.packages(\"lme4\")", call. = FALSE)
  }
  if (has_structured_terms(x$reterms)) {
    stop("as_lmerMod(): lme4 ", utils::packageVersion("lme4"), " has no ",
         "structured covariance terms (diag, cs, ar1, toep), so this fit cannot ",
         "become an lme4 object", call. = FALSE)
  }
  data_expr <- if (!is.null(data)) substitute(data)
  m <- if (is_glmm(x)) as_glmer_mod(x, data) else as_lmer_mod(x, data)
  # the call names the data as the caller did
  if (!is.null(data_expr)) m@call$data <- data_expr
  m
}

# The fit's call turned into a call of `fun` (lme4's lmer, glmer, lFormula,
# glFormula): mixedrs' own arguments dropped, `data` replaced if given.
lme4_call <- function(x, fun, data) {
  cl <- x$call
  cl[[1L]] <- fun
  cl <- cl[!names(cl) %in% c("control", "start", "verbose")]
  if (!is.null(data)) cl$data <- quote(data)
  cl
}

# Evaluates an lme4 set-up call where the fit's call was evaluated (the
# environment of its formula), with `data` visible when given.
eval_lme4_call <- function(cl, x, data) {
  env <- environment(x$formula)
  if (is.null(env)) env <- parent.frame(2L)
  if (!is.null(data)) {
    env <- new.env(parent = env)
    assign("data", data, envir = env)
  }
  tryCatch(eval(cl, env), error = function(e) {
    stop("as_lmerMod() could not rebuild the model with lme4 from the fit's ",
         "call (", conditionMessage(e), "); give the data the model was ",
         "fitted to as 'data'", call. = FALSE)
  })
}

check_same_rows <- function(fr, x) {
  if (nrow(fr) != mer_nobs(x)) {
    stop("lme4 built a model frame of ", nrow(fr), " rows from the data, but ",
         "the fit used ", mer_nobs(x), "; give the data the model was fitted ",
         "to as 'data'", call. = FALSE)
  }
}

# The optimizer's record in the form mkMerMod() reads. Its optimizer is the
# one lme4 runs when it refits or profiles the object (refit(), bootMer(),
# profile() look it up by name): the fit's last-stage optimizer where lme4
# has one of that name, otherwise bobyqa.
lme4_opt <- function(x, par, fval) {
  oi <- x$optinfo
  last <- oi$optimizer[length(oi$optimizer)]
  known <- c("bobyqa", "Nelder_Mead", "nloptwrap", "nlminbwrap")
  structure(list(par = par, fval = fval, conv = oi$conv$opt, feval = oi$feval,
                 message = oi$message),
            optimizer = if (is.character(last) && last %in% known) last else "bobyqa",
            derivs = oi$derivs, warnings = list())
}

as_lmer_mod <- function(x, data) {
  lf <- eval_lme4_call(lme4_call(x, quote(lme4::lFormula), data), x, data)
  check_same_rows(lf$fr, x)
  devfun <- do.call(lme4::mkLmerDevfun, lf, envir = lme4_frame())
  theta <- unname(as.double(x$theta))
  fval <- devfun(theta)
  mc <- lme4_call(x, quote(lme4::lmer), data)
  lme4::mkMerMod(environment(devfun), lme4_opt(x, theta, fval), lf$reTrms,
                 fr = lf$fr, mc = mc, lme4conv = x$optinfo$conv$lme4)
}

as_glmer_mod <- function(x, data) {
  cl <- lme4_call(x, quote(lme4::glFormula), data)
  cl$nAGQ <- NULL
  cl$family <- x$family
  glmod <- eval_lme4_call(cl, x, data)
  check_same_rows(glmod$fr, x)
  nagq <- x$nAGQ
  theta <- unname(as.double(x$theta))
  par <- if (nagq == 0L) theta else c(theta, unname(as.double(x$beta)))
  # lme4's PIRLS run to a tight tolerance (its default 1e-7 leaves the
  # conditional modes, and so the deviance, off by ~1e-4), looser if it
  # cannot reach it
  devfun <- NULL
  for (tol in c(1e-10, 1e-8, 1e-7)) {
    devfun <- tryCatch(glmer_devfun_at(glmod, nagq, theta, par, tol),
                       error = function(e) NULL)
    if (!is.null(devfun)) break
  }
  if (is.null(devfun)) {
    stop("lme4's PIRLS did not converge at the estimates of the fit", call. = FALSE)
  }
  fval <- devfun(par)
  rho <- environment(devfun)
  # as glmer() leaves it after its second stage: the offset without X beta
  if (nagq > 0L) rho$resp$setOffset(rho$baseOffset)
  mc <- lme4_call(x, quote(lme4::glmer), data)
  mc$family <- if (is.null(x$call$family)) quote(binomial) else x$call$family
  lme4::mkMerMod(rho, lme4_opt(x, par, fval), glmod$reTrms,
                 fr = glmod$fr, mc = mc, lme4conv = x$optinfo$conv$lme4)
}

# lme4's deviance function of a glmer model (stage 2 for nAGQ > 0), with
# PIRLS tolerance `tol`, evaluated at `par` (its environment then holds the
# model at those parameters).
glmer_devfun_at <- function(glmod, nagq, theta, par, tol) {
  ctrl <- lme4::glmerControl(tolPwrss = tol)
  devfun <- do.call(lme4::mkGlmerDevfun, c(glmod, list(nAGQ = 0L, control = ctrl)),
                    envir = lme4_frame())
  devfun(theta)
  if (nagq > 0L) {
    devfun <- lme4::updateGlmerDevfun(devfun, glmod$reTrms, nAGQ = nagq)
  }
  val <- devfun(par)
  if (!is.finite(val)) stop("non-finite deviance")
  devfun
}

# lme4's deviance-function builders keep their state in an environment whose
# parent is the caller's frame, and the deviance functions call lme4's
# internals from there (as glmer() and lmer() call them from lme4's
# namespace): they are called from a frame whose parent is that namespace.
lme4_frame <- function() new.env(parent = asNamespace("lme4"))
