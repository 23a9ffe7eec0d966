# The optimizer settings lme4 users write: the optimizer's name or function
# and its optCtrl, the lme4 arguments shared by lmmControl() and
# glmmControl(), lme4's own control objects translated into ours, and the
# call of a user's optimizer function with lme4's calling convention.

# The built-in optimizers of lmm() and the optCtrl names each understands.
optimizer_ctrl_names <- list(
  bobyqa = c("rhobeg", "rhoend", "maxfun", "iprint"),
  nloptwrap = c("maxeval", "xtol_abs", "ftol_abs", "ftol_rel", "print_level",
                "algorithm"),
  Nelder_Mead = c("maxfun", "verbose"),
  none = character()
)

# The optimizer as given: list(name, fun), `fun` the function of a function
# optimizer (NULL otherwise); `expr` is the expression the caller wrote,
# which names a function optimizer.
# `env` is where a function named by a string is looked for (the caller of
# the control function).
check_optimizer <- function(optimizer, expr, caller, env = parent.frame(2L)) {
  if (is.null(optimizer)) return(list(name = "none", fun = NULL))
  if (is.function(optimizer)) {
    label <- if (is.name(expr)) as.character(expr) else "user function"
    return(list(name = label, fun = check_optimizer_fun(optimizer, label, caller)))
  }
  if (!is.character(optimizer) || length(optimizer) != 1L || is.na(optimizer)) {
    stop(caller, ": 'optimizer' must be one name or a function, not ",
         deparse1(optimizer), call. = FALSE)
  }
  if (optimizer %in% names(optimizer_ctrl_names)) {
    return(list(name = optimizer, fun = NULL))
  }
  if (identical(optimizer, "optimx")) return(list(name = "optimx", fun = optimx_optimizer(caller)))
  # As lme4's getOptfun(): another name is a function found from the caller
  # (or in lme4, as nlminbwrap).
  fun <- get0(optimizer, envir = env, mode = "function")
  if (is.null(fun) && requireNamespace("lme4", quietly = TRUE)) {
    fun <- get0(optimizer, envir = asNamespace("lme4"), mode = "function")
  }
  if (is.null(fun)) {
    stop(caller, ": couldn't find optimizer function \"", optimizer, "\": it is neither one of ",
         paste0("\"", names(optimizer_ctrl_names), "\"", collapse = ", "),
         " nor a function that can be found", call. = FALSE)
  }
  list(name = optimizer, fun = check_optimizer_fun(fun, optimizer, caller))
}

# The optimizers of glmm()'s two stages as glmerControl() takes them: one
# (used for both stages) or two, each a name, a function or NULL ("none"),
# two given as a character vector or a list. A list of two list(name, fun).
check_stage_optimizers <- function(optimizer, expr, caller, env) {
  one <- function(o, e) check_optimizer(o, e, caller, env)
  if (is.null(optimizer) || is.function(optimizer)) {
    return(rep(list(one(optimizer, expr)), 2L))
  }
  if (!(is.character(optimizer) || is.list(optimizer)) || !length(optimizer) %in% 1:2) {
    stop(caller, ": 'optimizer' must be one optimizer or two (one per stage), ",
         "each a name, a function or NULL; not ", deparse1(optimizer), call. = FALSE)
  }
  stages <- lapply(seq_along(optimizer), function(i) {
    e <- if (is.call(expr) && length(expr) == length(optimizer) + 1L) expr[[i + 1L]] else NULL
    one(optimizer[[i]], e)
  })
  if (length(stages) == 1L) stages <- rep(stages, 2L)
  stages
}

# optimizer = "optimx", as lme4 runs it: optimx::optimx() with the one
# method that optCtrl names (optCtrl$method) and the rest of optCtrl as its
# control; its result read as lme4 reads it (the first row).
optimx_optimizer <- function(caller) {
  if (!requireNamespace("optimx", quietly = TRUE)) {
    stop(caller, ": optimizer = \"optimx\" needs the optimx package", call. = FALSE)
  }
  function(par, fn, lower, upper, control) {
    method <- control$method
    if (!is.character(method) || length(method) != 1L) {
      stop("optimizer = \"optimx\" needs one of optimx's methods in optCtrl ",
           "(optCtrl = list(method = \"nlminb\"), say), as lme4's", call. = FALSE)
    }
    control$method <- NULL
    res <- optimx::optimx(par = par, fn = fn, lower = lower, upper = upper, method = method,
                          control = control)
    details <- attr(res, "details")
    list(par = as.double(stats::coef(res)[1L, ]), conv = res$convcode[1L],
         feval = sum(c(res$fevals[1L], res$gevals[1L]), na.rm = TRUE),
         message = if (!is.null(details)) as.character(details[, "message"][[1L]]) else "")
  }
}

check_optimizer_fun <- function(fun, label, caller) {
  need <- c("fn", "par", "lower", "control")
  missing_args <- setdiff(need, names(formals(fun)))
  if (length(missing_args) > 0L) {
    stop(caller, ": the optimizer function ", label, " must take the ",
         "arguments ", paste(need, collapse = ", "), " (lme4's convention); ",
         "it lacks ", paste(missing_args, collapse = ", "), call. = FALSE)
  }
  fun
}

# A check level given as lme4's .makeCC() list(action, tol, ...) or as the
# action alone: list(action, tol).
check_cc <- function(value, choices, name, tol, caller) {
  if (is.list(value)) {
    extra <- setdiff(names(value), c("action", "tol", "relTol"))
    if (length(extra)) {
      stop(caller, ": '", name, "' has unknown elements ",
           paste(extra, collapse = ", "), call. = FALSE)
    }
    if (!is.null(value$tol)) tol <- value$tol
    action <- value$action
    if (is.null(action)) {
      stop(caller, ": '", name, "' must give an 'action'", call. = FALSE)
    }
  } else {
    action <- value
  }
  check_positive_number(tol, paste0(name, "$tol"), caller)
  list(action = match_level(action, choices, name, caller), tol = as.numeric(tol),
       relTol = if (is.list(value)) value$relTol)
}

check_scale_level <- function(value, choices, caller) {
  rescale <- c("silent.rescale", "message+rescale", "warn+rescale")
  if (is.character(value) && length(value) >= 1L && value[1L] %in% rescale) {
    stop(caller, ": check.scaleX = \"", value[1L], "\" has no meaning in ",
         "mixedrs: it does not rescale X; use \"warning\", \"message\", ",
         "\"stop\" or \"ignore\"", call. = FALSE)
  }
  match_level(value, choices, "check.scaleX", caller)
}

# The settings both controls share, checked, with optCtrl folded into the
# optimizer's settings (its names checked against the optimizer `opt`).
lme4_common_settings <- function(caller, opt, optCtrl, rhobeg, rhoend, maxfun,
                                 calc.derivs, boundary.tol, restart_edge,
                                 use.last.params, sparseX, standardize.X,
                                 check.nobs.vs.rankZ, check.formula.LHS,
                                 check.conv.singular, check.conv.grad,
                                 check.conv.hess, grad.tol, choices) {
  if (!is.list(optCtrl)) {
    stop(caller, ": 'optCtrl' must be a list", call. = FALSE)
  }
  if (length(optCtrl) && (is.null(names(optCtrl)) || any(!nzchar(names(optCtrl))))) {
    stop(caller, ": every element of 'optCtrl' must be named", call. = FALSE)
  }
  ftol_abs <- NULL
  ftol_rel <- NULL
  opt_verbose <- 0L
  if (is.null(opt$fun)) {
    if (opt$name == "nloptwrap" && !is.null(optCtrl$maxfun)) {
      # optCtrl = list(maxfun = ) is how lme4 users raise the evaluation
      # limit; lme4's nloptwrap() passes it to nloptr, which ignores it.
      # Here it is the limit, as maxeval.
      if (!is.null(optCtrl$maxeval)) {
        stop(caller, ": give only one of optCtrl's 'maxfun' and 'maxeval' ",
             "(the same limit for \"nloptwrap\")", call. = FALSE)
      }
      optCtrl$maxeval <- optCtrl$maxfun
      optCtrl$maxfun <- NULL
    }
    known <- optimizer_ctrl_names[[opt$name]]
    unknown <- setdiff(names(optCtrl), known)
    if (length(unknown)) {
      stop(caller, ": optCtrl setting", if (length(unknown) > 1L) "s", " ",
           paste0("'", unknown, "'", collapse = ", "), " not understood by ",
           "optimizer \"", opt$name, "\"",
           if (length(known)) paste0(" (it takes ", paste(known, collapse = ", "), ")")
           else " (it takes none)", call. = FALSE)
    }
    if (opt$name == "nloptwrap") {
      # lme4's nloptwrap() defaults, then the user's.
      rhoend <- 1e-8
      maxfun <- 1e5
      ftol_abs <- 1e-8
      if (!is.null(optCtrl$algorithm) && !identical(optCtrl$algorithm, "NLOPT_LN_BOBYQA")) {
        stop(caller, ": nloptwrap's algorithm ", deparse1(optCtrl$algorithm),
             " is not available; mixedrs runs \"NLOPT_LN_BOBYQA\" (use ",
             "optimizer = \"Nelder_Mead\" for the simplex method)", call. = FALSE)
      }
      if (!is.null(optCtrl$xtol_abs)) rhoend <- optCtrl$xtol_abs
      if (!is.null(optCtrl$maxeval)) maxfun <- optCtrl$maxeval
      if (!is.null(optCtrl$ftol_abs)) ftol_abs <- optCtrl$ftol_abs
      if (!is.null(optCtrl$ftol_rel)) ftol_rel <- optCtrl$ftol_rel
      if (!is.null(optCtrl$print_level)) opt_verbose <- optCtrl$print_level
      rhoend <- min(rhoend, rhobeg)
    } else {
      for (nm in intersect(names(optCtrl), c("rhobeg", "rhoend", "maxfun"))) {
        assign(nm, optCtrl[[nm]])
      }
      if (!is.null(optCtrl$iprint)) opt_verbose <- optCtrl$iprint
      if (!is.null(optCtrl$verbose)) opt_verbose <- optCtrl$verbose
    }
    if (!is.null(ftol_abs)) check_nonnegative_number(ftol_abs, "ftol_abs", caller)
    if (!is.null(ftol_rel)) check_nonnegative_number(ftol_rel, "ftol_rel", caller)
    if (!is.numeric(opt_verbose) || length(opt_verbose) != 1L || is.na(opt_verbose) ||
        opt_verbose < 0) {
      stop(caller, ": the optimizer's print level in optCtrl must be a ",
           "non-negative number", call. = FALSE)
    }
  }
  check_positive_number(rhobeg, "rhobeg", caller)
  check_positive_number(rhoend, "rhoend", caller)
  if (rhoend > rhobeg) {
    stop(caller, ": 'rhoend' (", rhoend, ") must not exceed 'rhobeg' (",
         rhobeg, ")", call. = FALSE)
  }
  check_count(maxfun, "maxfun", caller)
  # lmmControl()'s message for it has always been without the caller
  check_flag(calc.derivs, "calc.derivs", if (caller != "lmmControl()") caller)
  check_nonnegative_number(boundary.tol, "boundary.tol", caller)
  check_flag(restart_edge, "restart_edge", caller)
  if (caller == "lmmControl()" && !restart_edge) {
    # lme4's restart_edge = FALSE skips its restart off the boundary; the
    # engine's boundary try is switched off by boundary.tol = 0 instead.
    warning(caller, ": restart_edge = FALSE has no effect in mixedrs: the engine always ",
            "restarts off the boundary where that lowers the criterion; use ",
            "boundary.tol = 0 to switch its boundary try off", call. = FALSE)
  }
  check_flag(use.last.params, "use.last.params", caller)
  if (use.last.params) {
    stop(caller, ": use.last.params = TRUE has no meaning in mixedrs: the ",
         "fit is always finished at the optimum", call. = FALSE)
  }
  check_flag(sparseX, "sparseX", caller)
  if (sparseX) {
    stop(caller, ": sparseX = TRUE is not available: mixedrs holds the ",
         "fixed-effects matrix dense", call. = FALSE)
  }
  check_flag(standardize.X, "standardize.X", caller)
  if (standardize.X) {
    stop(caller, ": standardize.X = TRUE is not available: mixedrs does ",
         "not rescale the fixed-effects matrix", call. = FALSE)
  }
  if (!identical(check.nobs.vs.rankZ, "ignore")) {
    stop(caller, ": check.nobs.vs.rankZ = ", deparse1(check.nobs.vs.rankZ),
         " is not available: mixedrs does not compute the rank of Z; only ",
         "\"ignore\" (lme4's default)", call. = FALSE)
  }
  if (!identical(check.formula.LHS, "stop")) {
    stop(caller, ": check.formula.LHS = ", deparse1(check.formula.LHS),
         " has no meaning in mixedrs: a model needs a response; only \"stop\"",
         call. = FALSE)
  }
  check_positive_number(grad.tol, "grad.tol", caller)
  sing <- check_cc(check.conv.singular, choices("check.conv.singular"),
                   "check.conv.singular", 1e-4, caller)
  grad <- check_cc(check.conv.grad, choices("check.conv.grad"),
                   "check.conv.grad", grad.tol, caller)
  if (!is.null(grad$relTol)) check_positive_number(grad$relTol, "check.conv.grad$relTol", caller)
  hess <- check_cc(check.conv.hess, choices("check.conv.hess"),
                   "check.conv.hess", 1e-6, caller)
  list(
    rhobeg = as.numeric(rhobeg),
    rhoend = as.numeric(rhoend),
    maxfun = as.integer(maxfun),
    ftol_abs = if (!is.null(ftol_abs)) as.numeric(ftol_abs),
    ftol_rel = if (!is.null(ftol_rel)) as.numeric(ftol_rel),
    optCtrl = optCtrl,
    opt_verbose = as.integer(opt_verbose),
    calc.derivs = calc.derivs,
    boundary.tol = as.numeric(boundary.tol),
    restart_edge = restart_edge,
    use.last.params = use.last.params,
    sparseX = sparseX,
    standardize.X = standardize.X,
    check.nobs.vs.rankZ = "ignore",
    check.formula.LHS = "stop",
    check.conv.singular = sing$action,
    singular.tol = sing$tol,
    check.conv.grad = grad$action,
    grad.tol = grad$tol,
    grad.relTol = grad$relTol,
    check.conv.hess = hess$action,
    hess.tol = hess$tol
  )
}

# lme4's control object (class "merControl", from lmerControl() or
# glmerControl()) or a control list, as an lmmControl/glmmControl (`kind`:
# "lmm" or "glmm"); our own objects pass through.
as_fit_control <- function(control, kind) {
  own <- paste0(kind, "Control")
  if (inherits(control, own)) return(control)
  builder <- switch(kind, lmm = lmmControl, glmm = glmmControl)
  if (inherits(control, "merControl")) {
    if (kind == "glmm" && inherits(control, "lmerControl")) {
      # As glmer() does when given lmerControl(): a warning, then its
      # settings are used.
      warning("'control' was built by lmerControl(), which is for linear ",
              "mixed models: please use glmerControl() (or glmmControl()) ",
              "for glmm(); its settings are used", call. = FALSE)
    }
    args <- c(control[setdiff(names(control), c("checkControl", "checkConv"))],
              control$checkControl, control$checkConv)
    # lme4's glmerControl() passes one optimizer per stage and rejects NULL;
    # lmerControl()'s NULL means no optimization.
    if (kind == "lmm" && is.null(control$optimizer)) args$optimizer <- "none"
    if (kind == "lmm") args$check.response.not.const <- NULL
    args <- args[!vapply(args, is.null, TRUE) | names(args) == "optimizer"]
    unknown <- setdiff(names(args), names(formals(builder)))
    if (length(unknown)) {
      stop("'control': the lme4 setting", if (length(unknown) > 1L) "s", " ",
           paste(unknown, collapse = ", "), " ha", if (length(unknown) > 1L) "ve" else "s",
           " no counterpart in ", own, "()", call. = FALSE)
    }
    # lme4's control already took options(lmerControl/glmerControl) into
    # account: they are not applied (nor warned about) a second time.
    option <- if (kind == "lmm") "lmerControl" else "glmerControl"
    op <- options(stats::setNames(list(NULL), option))
    on.exit(options(op), add = TRUE)
    return(do.call(builder, args))
  }
  if (is.list(control) && !is.object(control)) {
    unknown <- setdiff(names(control), names(formals(builder)))
    if (length(unknown) || (length(control) && is.null(names(control)))) {
      stop("'control': unknown setting", if (length(unknown) > 1L) "s", " ",
           paste(unknown, collapse = ", "), " for ", own, "()", call. = FALSE)
    }
    return(do.call(builder, control))
  }
  other <- if (kind == "lmm") "glmmControl" else "lmmControl"
  stop("'control' must be built by ", own, "() (or lme4's ",
       if (kind == "lmm") "lmerControl" else "glmerControl", "()), not ",
       if (inherits(control, other)) paste0("by ", other, "()") else
         paste("a", class(control)[1L]), call. = FALSE)
}

# lme4's check.nlev.gtreq.5: grouping factors with fewer than 5 levels.
check_nlev_gtreq_5 <- function(flist, level) {
  if (is.null(level) || level == "ignore") return(invisible(NULL))
  nlev <- vapply(flist, nlevels, 1L)
  if (any(nlev < 5L)) {
    signal_check(level, "grouping factors with < 5 sampled levels may give unreliable estimates")
  }
  invisible(NULL)
}

# Calls a function optimizer with lme4's convention and reads its result as
# lme4's optwrap() does: par, fval (or value, fvalues), conv (or
# convergence, ierr), message (or msg), feval. Warnings the optimizer raises
# are passed on.
run_optimizer_fun <- function(fun, label, devfun, start, lower, upper, optCtrl) {
  # The evaluations counted here where the optimizer reports none (as
  # lme4's nlminbwrap).
  count <- 0L
  counted <- function(x) {
    count <<- count + 1L
    devfun(x)
  }
  res <- fun(par = start, fn = counted, lower = lower, upper = upper, control = optCtrl)
  if (!is.list(res) || is.null(res$par)) {
    stop("the optimizer ", label, " must return a list with element 'par' ",
         "(lme4's convention)", call. = FALSE)
  }
  par <- as.double(res$par)
  if (length(par) != length(start) || anyNA(par)) {
    stop("the optimizer ", label, " returned 'par' of length ", length(par),
         " (or with NAs); it was started from ", length(start),
         " parameters", call. = FALSE)
  }
  first <- function(...) {
    for (x in list(...)) if (!is.null(x)) return(x)
    NULL
  }
  conv <- first(res$conv, res$convergence, res$ierr, 0L)
  msg <- first(res$message, res$msg, "")
  feval <- first(res$feval, res$fevals, res$counts[[1L]], res$evaluations[[1L]], count)
  list(par = par, conv = as.integer(conv[1L]), message = paste(as.character(msg), collapse = " "),
       feval = if (is.na(feval[1L])) 0L else as.integer(feval[1L]))
}

# lme4's Hessian check at the optimum (check.conv.hess), on the Hessian the
# gradient check computed (it is computed when the gradient is not already
# small): the message when the Hessian has negative eigenvalues (lme4's
# "degenerate Hessian": the point is not a minimum), or NULL. lme4's further
# advice on very large eigenvalues or eigenvalue ratios concerns the scaling
# of the variables, not convergence, and is not repeated.
hessian_message <- function(H, tol) {
  if (is.null(H) || !length(H)) return(NULL)
  ev <- tryCatch(eigen(H, symmetric = TRUE, only.values = TRUE)$values,
                 error = function(e) NULL)
  if (is.null(ev) || anyNA(ev)) {
    return("Problem with Hessian check (infinite or missing values?)")
  }
  negative <- sum(ev < -tol)
  if (negative) {
    return(sprintf("Model failed to converge: degenerate  Hessian with %d negative eigenvalues",
                   negative))
  }
  NULL
}

# The control of refits made inside the engine (bootstrap replicates,
# profiles, deletion refits), as a list for the engine: the fit's settings,
# with the engine's BOBYQA where the fit's optimizer was a function or
# "none", neither of which can run there; a warning says so. (The engine's
# own optimizers are BOBYQA for an LMM and each stage's for a GLMM.)
replicate_control <- function(control, caller) {
  outside <- setdiff(control$optimizer, c("bobyqa", "nloptwrap", "Nelder_Mead"))
  if (length(outside)) {
    warning(caller, ": the refits run in the engine with BOBYQA, not with the fit's ",
            "optimizer ", paste0("\"", outside, "\"", collapse = " and "),
            " (an R function or no optimization cannot run inside the engine's refits)",
            call. = FALSE)
  }
  if (inherits(control, "glmmControl")) glmm_engine_control(control) else unclass(control)
}
