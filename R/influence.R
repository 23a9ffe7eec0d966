# Leverages (hat values) and Cook's distances of "lmm" and "glmm" fits, as
# lme4's hatvalues() and cooks.distance() for merMod objects compute them.
#
# The penalized least squares problem at the estimates has the augmented
# design A = W^1/2 [Z Lambda, X] and the system matrix
#   M = [Lambda'Z'WZ Lambda + I, Lambda'Z'WX; X'WZ Lambda, X'WX],
# so the hat matrix is A M^-1 A' and its diagonal is h_i = |L^-1 P a_i|^2
# for the sparse Cholesky factor P'LL'P = M and a_i the i-th row of A. The
# rows are solved in chunks, so memory stays O(n q) (the sparse A) plus
# O(chunk (q + p)) for the solves; the n x n hat matrix is only formed when
# asked for. For GLMMs, as in lme4, M is built with the working weights of
# the final PIRLS iteration while the rows a_i carry the prior weights.

#' Leverages and Cook's distances of a mixed model
#'
#' `hatvalues()` gives the diagonal of the hat matrix of the penalized least
#' squares problem at the estimates (fixed effects and conditional modes
#' together), `cooks.distance()` the Cook's distances computed from them, as
#' lme4's methods for `lmer()` and `glmer()` fits do:
#' `(r / (1 - h))^2 h / (sigma^2 p)` with `r` the Pearson residuals and `p`
#' the number of fixed effects. For `"glmm"` fits the system matrix uses the
#' working weights of the final PIRLS iteration and the rows the prior
#' weights (lme4's definition, for which lme4 warns that "the hat matrix may
#' not make sense for GLMMs"; values above 1 can occur).
#'
#' The leverages are computed with a sparse Cholesky factor and solved in
#' chunks of observations, in memory proportional to the number of
#' observations times the number of random effects per observation; the
#' n x n hat matrix is never formed unless `fullHatMatrix = TRUE`.
#'
#' @param model A fitted model of class `"lmm"` or `"glmm"`.
#' @param fullHatMatrix Logical: return the whole n x n hat matrix (only
#'   sensible for small n) instead of its diagonal?
#' @param ... Not used (an error if given).
#' @return A named numeric vector, one value per observation (padded with
#'   `NA` for rows omitted with `na.action = na.exclude`), or with
#'   `fullHatMatrix = TRUE` a matrix.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' head(hatvalues(fit))
#' sum(hatvalues(fit))   # effective number of parameters
#' head(cooks.distance(fit))
#' @importFrom stats hatvalues
#' @export
hatvalues.lmm <- function(model, fullHatMatrix = FALSE, ...) {
  require_rows(model, "hatvalues()")
  require_no_tmb_style(model, "hatvalues()")
  check_no_dots(..., caller = "hatvalues()")
  check_flag(fullHatMatrix, "fullHatMatrix", "hatvalues()")
  if (fullHatMatrix) return(mer_hatvalues(model, full = TRUE))
  mer_per_obs(model, mer_hatvalues(model), pad = "predict")
}

#' @rdname hatvalues.lmm
#' @method hatvalues glmm
#' @export
hatvalues.glmm <- hatvalues.lmm

#' @rdname hatvalues.lmm
#' @importFrom stats cooks.distance
#' @export
cooks.distance.lmm <- function(model, ...) {
  require_rows(model, "cooks.distance()")
  require_no_tmb_style(model, "cooks.distance()")
  check_no_dots(..., caller = "cooks.distance()")
  mer_per_obs(model, mer_cooks_distance(model, mer_hatvalues(model)), pad = "resid")
}

#' @rdname hatvalues.lmm
#' @method cooks.distance glmm
#' @export
cooks.distance.glmm <- cooks.distance.lmm

# Stops for a glmmTMB-style fit: its Laplace weights (the observed
# information) can be negative, so it has no hat matrix; glmmTMB has no
# hatvalues() or cooks.distance() either.
require_no_tmb_style <- function(model, what) {
  if (!is_extended_fit(model)) return(invisible(NULL))
  stop(what, " is not available for glmmTMB-style fits (", model$extended$family,
       " family, zero inflation or a dispersion model): their Laplace weights can be ",
       "negative, so there is no hat matrix; glmmTMB has no such method either",
       call. = FALSE)
}

# Relative covariance factor Lambda (Q x Q, sparse), columns in the order of
# model.matrix(x, "random"): term by term, level by level, effect by effect.
mer_lambda <- function(x) {
  cnms <- lapply(x$reterms, `[[`, "cnms")
  thetas <- split_theta(unname(as.double(x$theta)), x$reterms)
  blocks <- lapply(seq_along(cnms), function(i) {
    q <- length(cnms[[i]])
    tm <- matrix(0, q, q)
    tm[lower.tri(tm, diag = TRUE)] <- thetas[[i]]
    Matrix::kronecker(Matrix::Diagonal(nlevels(x$reterms[[i]]$factor)),
                      Matrix::Matrix(tm, sparse = TRUE))
  })
  methods::as(Matrix::bdiag(blocks), "CsparseMatrix")
}

# The sparse Cholesky factor (P'LL'P = M) of the penalized least squares
# system at the estimates, M = [Lambda'Z'WZ Lambda + I, Lambda'Z'WX;
# X'WZ Lambda, X'WX], with W the prior weights (lmm) or the working weights
# of the final PIRLS iteration (glmm); with Z Lambda (`ZL`) and X.
mer_joint_factor <- function(x) {
  ZL <- methods::as(mer_model_matrix(x, "random") %*% mer_lambda(x), "CsparseMatrix")
  X <- x$X
  X <- double_storage(X)
  fit_w <- if (is_glmm(x)) weights.glmm(x, type = "working") else as.vector(x$weights)
  sw <- sqrt(fit_w)
  U <- Matrix::Diagonal(x = sw) %*% ZL
  V <- Matrix::Matrix(sw * X, sparse = TRUE)
  Q <- ncol(ZL)
  M <- rbind(cbind(Matrix::crossprod(U) + Matrix::Diagonal(Q), Matrix::crossprod(U, V)),
             cbind(Matrix::crossprod(V, U), Matrix::crossprod(V)))
  M <- Matrix::forceSymmetric(methods::as(M, "CsparseMatrix"), uplo = "U")
  list(factor = Matrix::Cholesky(M, perm = TRUE, LDL = FALSE), ZL = ZL, X = X)
}

# L^-1 P b for the columns of `b` (a (Q + p) x k matrix): the squared column
# norms are b' M^-1 b.
mer_joint_solve <- function(factor, b) {
  Matrix::solve(factor, Matrix::solve(factor, b, system = "P"), system = "L")
}

# Unpadded leverages (or, with `full`, the hat matrix) of a fit.
mer_hatvalues <- function(x, full = FALSE) {
  jf <- mer_joint_factor(x)
  factor <- jf$factor
  ZL <- jf$ZL
  X <- jf$X
  Q <- ncol(ZL)
  prior <- as.vector(x$weights)
  sp <- sqrt(prior)
  At <- Matrix::t(cbind(Matrix::Diagonal(x = sp) %*% ZL,
                        Matrix::Matrix(sp * X, sparse = TRUE)))
  solve_rows <- function(idx) mer_joint_solve(factor, At[, idx, drop = FALSE])
  n <- nrow(X)
  obs <- mer_obs_names(x, n)
  if (full) {
    B <- solve_rows(seq_len(n))
    H <- as.matrix(Matrix::crossprod(B))
    dimnames(H) <- list(obs, obs)
    return(H)
  }
  h <- numeric(n)
  chunk <- max(1L, floor(1e7 / (Q + ncol(X))))
  for (start in seq.int(1L, n, by = chunk)) {
    idx <- seq.int(start, min(n, start + chunk - 1L))
    h[idx] <- Matrix::colSums(solve_rows(idx)^2)
  }
  h
}

# Unpadded Cook's distances from the leverages `hat`.
mer_cooks_distance <- function(x, hat) {
  r <- if (is_glmm(x)) glmm_residuals(x, "pearson") else
    sqrt(as.vector(x$weights)) * (as.vector(x$y) - as.vector(x$fitted))
  p <- ncol(x$X)
  d <- (r / (1 - hat))^2 * hat / (stats::sigma(x)^2 * p)
  d[is.infinite(d)] <- NaN
  d
}

# ---------------------------------------------------------------------------
# Case-deletion influence (lme4's influence.merMod): the model refitted
# without each observation or each group of observations by the Rust engine
# (src/rust/inference/influence.rs), in lme4's result layout so that
# lme4's and car's methods for "influence.merMod" work on it.

#' Case-deletion influence diagnostics of a mixed model
#'
#' lme4's `influence()` method for [lmm()] and [glmm()] fits: refits the
#' model without each observation, or without all the observations of each
#' group of `groups`, and collects each refit's fixed effects, variance
#' components and covariance matrix of the fixed effects. [cooks.distance()],
#' [dfbeta()] and [dfbetas()] read the result, as they read lme4's; lme4's
#' and car's methods for class `"influence.merMod"` (e.g.
#' `car::infIndexPlot()`) work on it too.
#'
#' Each deletion refit is a complete re-optimization started from the
#' full-data estimates, with the optimizer settings of the fit's `control`
#' and at most `maxfun` evaluations (lme4 refits with
#' `update(model, subset = ...)` in the same way).
#'
#' For [lmm()] fits the criterion (REML or ML) is re-optimized by the engine
#' without rebuilding the model: it subtracts the deleted rows' contributions
#' from the full data's cross-products, and runs the refits in parallel
#' threads. A group level left without observations contributes nothing to
#' the criterion, so the result is that of the model fitted to the remaining
#' rows.
#'
#' For [glmm()] fits each refit is a complete `glmm()` fit: the fit's call
#' (family, `nAGQ`, weights, offset, `subset`) evaluated on `data` with the
#' deleted rows removed through `subset` (so weights or offsets given as
#' vectors are subset with the rows), started at the full fit's `theta` and,
#' for `nAGQ > 0`, its fixed effects (`start = list(theta = , fixef = )`, as
#' lme4 starts them). `sigma^2` is 1 for the binomial and Poisson families.
#' With `ncores > 1` the refits run in forked processes
#' ([parallel::mclapply()]; not available on Windows, where it is an error).
#'
#' Differences from lme4: arguments in `...` are an error (lme4 warns that it
#' disregards them); with several `groups`, a deletion set is a combination
#' of their values (lme4 combines all the columns of `data`); `ncores` is the
#' number of threads (lmm) or forked processes (glmm) where lme4 starts a
#' cluster of processes; a refit that fails (e.g. the remaining rows cannot
#' estimate a fixed effect) gives an `NA` row and a warning naming it.
#' `converged` is `FALSE` for a refit whose optimizer reported a failure or
#' whose convergence checks reported a problem.
#'
#' @param model A fitted model of class `"lmm"` or `"glmm"`.
#' @param groups `NULL`/missing (delete one observation at a time, labelled by
#'   the row names of `data`) or the name(s) of columns of `data` whose values
#'   define the sets of observations deleted together.
#' @param data The data frame the model was fitted to (default: the fit's
#'   `data` argument); its row names identify the model's observations.
#' @param maxfun Largest number of criterion evaluations of each refit (of
#'   each optimizer stage for `glmm()` fits).
#' @param do.coef Logical: `FALSE` gives only the leverages (`hat`), without
#'   refitting.
#' @param ncores For `lmm()` fits the number of threads for the refits
#'   (default: the `mc.cores` option, or, when it is not set, the fit's own
#'   `threads` setting of [lmmControl()], all cores unless set there); for
#'   `glmm()` fits the number of forked processes (default: the `mc.cores`
#'   option, or 1). The results do not depend on it.
#' @param start `NULL` (start from the fit's estimates) or the starting
#'   values of each refit: for `lmm()` fits the covariance parameters `theta`
#'   (a numeric vector or `list(theta = )`), for `glmm()` fits anything
#'   [glmm()]'s `start` takes (e.g. `list(theta = , fixef = )`).
#' @param ... Not used (an error if given).
#' @return An object of class `c("mixedrs_influence", "influence.merMod")`,
#'   a list as lme4's: `fixed.effects`, `fixed.effects[-<groups>]` (one row
#'   per deletion), `var.cov.comps` (`sigma^2` and the lower triangle of each
#'   term's covariance matrix), `var.cov.comps[-<groups>]`, `vcov`,
#'   `vcov[-<groups>]` (a list of matrices), `groups` (`"case"` for single
#'   observations), `deleted` (the deleted values), `converged` and
#'   `function.evals`. With `do.coef = FALSE`, `list(hat = hatvalues(model))`.
#' @seealso [cooks.distance.mixedrs_influence()], [hatvalues.lmm()],
#'   [rstudent.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' infl <- influence(fit, groups = "Subject")
#' head(infl[["fixed.effects[-Subject]"]])
#' cooks.distance(infl)
#' dfbetas(infl)[1:3, ]
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              lme4::cbpp, family = binomial)
#' ginfl <- influence(gfit, groups = "herd")
#' head(ginfl[["var.cov.comps[-herd]"]])
#' round(cooks.distance(ginfl), 3)
#' @importFrom stats influence
#' @export
influence.lmm <- function(model, groups, data, maxfun = 1000, do.coef = TRUE,
                          ncores = getOption("mc.cores"), start = NULL, ...) {
  require_rows(model, "influence()")
  check_no_dots(..., caller = "influence()")
  check_flag(do.coef, "do.coef", "influence()")
  if (!do.coef) return(infl_hat_only(model))
  check_positive_number(maxfun, "maxfun", "influence()")
  threads <- check_threads(if (is.null(ncores)) NULL else ncores)
  data <- infl_data(model, if (!missing(data)) data, parent.frame())
  sets <- infl_deletion_sets(model, data, if (missing(groups)) NULL else groups)
  control <- replicate_control(control_of(model, parent.frame()), "influence()")
  control$maxfun <- as.integer(maxfun)
  start <- infl_start(model, start)
  raws <- lmm_deletion_rs(fit_engine_inputs(model), isTRUE(model$REML), sets$codes,
                          length(sets$labels), start, control,
                          engine_threads(threads, control))
  infl_result(model, sets, raws)
}

# influence(do.coef = FALSE): the leverages only, as lme4 returns them.
infl_hat_only <- function(model) {
  structure(list(hat = hatvalues(model)), class = c("mixedrs_influence", "influence.merMod"))
}

# The data the deletions are taken from: `data` when given, else the fit's
# `data` argument evaluated again in `env` (the caller's frame), as lme4 does.
infl_data <- function(model, data, env) {
  if (is.null(data)) {
    expr <- model$call$data
    if (is.null(expr)) stop("influence(): the model did not use the data argument; give 'data'",
                            call. = FALSE)
    data <- eval(expr, env)
  }
  as.data.frame(data)
}

#' @rdname influence.lmm
#' @method influence glmm
#' @export
influence.glmm <- function(model, groups, data, maxfun = 1000, do.coef = TRUE,
                           ncores = getOption("mc.cores"), start = NULL, ...) {
  check_no_dots(..., caller = "influence()")
  require_classic_family(model, "influence()")
  check_flag(do.coef, "do.coef", "influence()")
  if (!do.coef) return(infl_hat_only(model))
  check_positive_number(maxfun, "maxfun", "influence()")
  ncores <- if (is.null(ncores)) 1L else ncores
  if (!is.numeric(ncores) || length(ncores) != 1L || is.na(ncores) || ncores < 1 ||
      ncores != round(ncores)) {
    stop("influence(): 'ncores' must be a positive whole number, not ", deparse1(ncores),
         call. = FALSE)
  }
  if (ncores > 1L && .Platform$OS.type == "windows") {
    stop("influence(): 'ncores' > 1 runs glmm() refits in forked processes, which ",
         "Windows does not have; use ncores = 1", call. = FALSE)
  }
  env <- environment(model$formula)
  if (!is.environment(env)) env <- parent.frame()
  data <- infl_data(model, if (!missing(data)) data, parent.frame())
  sets <- infl_deletion_sets(model, data, if (missing(groups)) NULL else groups)
  control <- control_of(model, parent.frame())
  control$maxfun <- as.integer(maxfun)
  if (is.null(start)) {
    start <- list(theta = unname(as.double(model$theta)))
    if (!is.null(model$par)) start <- list(par = unname(as.double(model$par)))
    if (model$nAGQ > 0L) start$fixef <- unname(fixef(model))
  }
  refit <- function(i) glmm_deletion_refit(model, data, sets$data_codes != i, start,
                                           control, env)
  k <- length(sets$labels)
  raws <- if (ncores > 1L) {
    parallel::mclapply(seq_len(k), refit, mc.cores = as.integer(ncores))
  } else {
    lapply(seq_len(k), refit)
  }
  infl_result(model, sets, raws)
}

# One deletion refit of a glmm() fit, as lme4's influence.merMod makes it:
# the fit's call evaluated on `data` restricted to the rows `keep` (through
# `subset`, so weights and offsets given as vectors are subset alike), from
# `start` with `control`. The refit in the layout infl_result() reads, or
# list(error = ) when it fails.
glmm_deletion_refit <- function(model, data, keep, start, control, env) {
  call <- model$call
  data[[".mixedrs_keep"]] <- keep
  call$data <- quote(.mixedrs_infl_data)
  call$subset <- if (is.null(call$subset)) quote(.mixedrs_keep) else
    call("&", call("(", call$subset), quote(.mixedrs_keep))
  call$start <- start
  call$control <- control
  call[[1L]] <- glmm
  fenv <- new.env(parent = env)
  fenv$.mixedrs_infl_data <- data
  fit <- tryCatch(suppressMessages(suppressWarnings(eval(call, fenv))),
                  error = function(e) e)
  if (inherits(fit, "error")) return(list(error = conditionMessage(fit)))
  s <- sigma(fit)
  oi <- fit$optinfo
  list(beta = unname(fixef(fit)), theta = fit$theta, sigma = s,
       vcov_unscaled = as.matrix(vcov(fit)) / s^2,
       optinfo = list(code = oi$conv$opt,
                      messages = c(oi$grad_messages, unlist(oi$warnings)),
                      feval = oi$feval))
}

# The deletion set of each of the model's observations: `codes` (1-based
# index into `labels`), `labels` (the deleted values, as lme4's `deleted`)
# and the name of the grouping (".case" for single observations).
infl_deletion_sets <- function(model, data, groups) {
  obs <- rownames(model$frame)
  rows <- match(obs, rownames(data))
  if (is.null(obs) || anyNA(rows)) {
    stop("influence(): the row names of 'data' do not include those of the model's ",
         "observations; give the data frame the model was fitted to", call. = FALSE)
  }
  if (is.null(groups)) {
    values <- rownames(data)
    groups <- ".case"
  } else {
    if (!is.character(groups) || !length(groups) || anyNA(groups)) {
      stop("influence(): 'groups' must be names of columns of 'data', not ",
           deparse1(groups), call. = FALSE)
    }
    absent <- setdiff(groups, names(data))
    if (length(absent)) {
      stop("influence(): 'groups' names ", paste(sQuote(absent, FALSE), collapse = ", "),
           ", not a column of 'data'", call. = FALSE)
    }
    values <- if (length(groups) == 1L) data[[groups]] else
      do.call(paste, c(unname(as.list(data[groups])), sep = "."))
    if (anyNA(values[rows])) {
      stop("influence(): the column(s) ", paste(sQuote(groups, FALSE), collapse = ", "),
           " of 'data' have missing values for observations of the model", call. = FALSE)
    }
    groups <- paste(groups, collapse = ".")
  }
  labels <- unique(values)
  data_codes <- match(as.character(values), as.character(labels))
  list(codes = as.integer(data_codes[rows]), data_codes = as.integer(data_codes),
       labels = labels, groups = groups)
}

# The optimizer parameters each refit starts from.
infl_start <- function(model, start) {
  if (is.null(start)) return(as.double(cov_par(model)))
  if (is.list(start)) {
    if (!identical(names(start), "theta")) {
      stop("influence(): 'start' must be NULL, a numeric theta or list(theta = ); ",
           "starting values of other parameters are not used by linear mixed models",
           call. = FALSE)
    }
    start <- start$theta
  }
  if (!is.numeric(start) || length(start) != length(model$theta) || anyNA(start)) {
    stop("influence(): 'start' must have the ", length(model$theta),
         " covariance parameters theta of the model", call. = FALSE)
  }
  if (has_structured_terms(model$reterms)) {
    stop("influence(): a 'start' is not supported for models with structured covariance ",
         "terms; leave it NULL", call. = FALSE)
  }
  as.double(start)
}

# sigma^2 and the lower triangles of the terms' covariance matrices at
# (theta, sigma), named as lme4 names them.
infl_var_comps <- function(model, theta, sigma) {
  obj <- model
  obj$theta[] <- theta
  vcs <- varcorr_lme4(obj, sigma)
  nms <- names(vcs)
  sep <- ":"
  if (length(nms) == 1L) {
    nms <- ""
    sep <- ""
  }
  out <- c("sigma^2" = sigma^2)
  for (i in seq_along(vcs)) {
    V <- vcs[[i]]
    cn <- colnames(V)
    en <- outer(cn, cn, function(a, b) paste0("C[", a, ",", b, "]"))
    diag(en) <- paste0("v[", cn, "]")
    low <- lower.tri(V, diag = TRUE)
    v <- as.vector(V[low])
    names(v) <- paste0(nms[i], sep, en[low])
    out <- c(out, v)
  }
  out
}

# The "influence.merMod" list from the engine's refits.
infl_result <- function(model, sets, raws) {
  labels <- sets$labels
  keys <- as.character(labels)
  fixed <- fixef(model)
  vc <- infl_var_comps(model, model$theta, sigma(model))
  k <- length(keys)
  p <- length(fixed)
  fixed_1 <- matrix(NA_real_, k, p, dimnames = list(keys, names(fixed)))
  vc_1 <- matrix(NA_real_, k, length(vc), dimnames = list(keys, names(vc)))
  vcov_1 <- vector("list", k)
  converged <- logical(k)
  feval <- rep(NA_real_, k)
  failed <- character()
  for (i in seq_len(k)) {
    r <- raws[[i]]
    if (!is.null(r$error)) {
      failed <- c(failed, paste0(keys[i], ": ", r$error))
      vcov_1[[i]] <- matrix(NA_real_, p, p, dimnames = list(names(fixed), names(fixed)))
      next
    }
    fixed_1[i, ] <- r$beta
    vc_1[i, ] <- infl_var_comps(model, r$theta, r$sigma)
    vcov_1[[i]] <- matrix(r$sigma^2 * r$vcov_unscaled, p, p,
                          dimnames = list(names(fixed), names(fixed)))
    converged[i] <- r$optinfo$code == 0L && !length(r$optinfo$messages)
    feval[i] <- r$optinfo$feval
  }
  if (length(failed)) {
    warning("influence(): ", length(failed), " of ", k, " deletion refits failed (NA rows): ",
            paste(utils::head(failed, 5L), collapse = "; "),
            if (length(failed) > 5L) "; ...", call. = FALSE)
  }
  names(vcov_1) <- names(feval) <- names(converged) <- keys
  groups <- if (sets$groups == ".case") "case" else sets$groups
  out <- list(fixed, fixed_1, vc, vc_1, as.matrix(vcov(model)), vcov_1, groups, labels,
              converged, feval)
  names(out) <- c("fixed.effects", paste0("fixed.effects[-", groups, "]"),
                  "var.cov.comps", paste0("var.cov.comps[-", groups, "]"),
                  "vcov", paste0("vcov[-", groups, "]"),
                  "groups", "deleted", "converged", "function.evals")
  class(out) <- c("mixedrs_influence", "influence.merMod")
  out
}

#' Cook's distances and DFBETA(S) from case-deletion refits
#'
#' Methods for the result of [influence()] of an [lmm()] or [glmm()] fit, as lme4's for
#' class `"influence.merMod"`: `dfbeta()` gives each deletion's change in the
#' fixed effects (or, with `which = "var.cov"`, in the variance components),
#' `dfbetas()` the changes in the fixed effects divided by their standard
#' errors in the refit, and `cooks.distance()` the Cook's distances
#' `D_i = (n - p) / (n p) * d_i' V^-1 d_i` with `d_i` the change in the
#' fixed effects, `V` their covariance matrix in the full fit, `n` the number
#' of deletions and `p` the number of fixed effects.
#'
#' @param model The result of [influence.lmm()].
#' @param which `"fixed"` (fixed effects) or `"var.cov"` (variance
#'   components).
#' @param ... Not used (an error if given).
#' @return `dfbeta()` and `dfbetas()` a matrix with one row per deletion,
#'   `cooks.distance()` a named vector.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' infl <- influence(fit, groups = "Subject")
#' dfbeta(infl)[1:3, ]
#' dfbeta(infl, which = "var.cov")[1:3, ]
#' dfbetas(infl)[1:3, ]
#' round(cooks.distance(infl), 3)
#' @importFrom stats dfbeta
#' @export
dfbeta.mixedrs_influence <- function(model, which = c("fixed", "var.cov"), ...) {
  check_no_dots(..., caller = "dfbeta()")
  infl_require_refits(model, "dfbeta()")
  which <- match_choice(which)
  b <- model[[if (which == "fixed") 2L else 4L]]
  b0 <- model[[if (which == "fixed") 1L else 3L]]
  b - matrix(b0, nrow(b), ncol(b), byrow = TRUE)
}

#' @rdname dfbeta.mixedrs_influence
#' @importFrom stats dfbetas
#' @export
dfbetas.mixedrs_influence <- function(model, ...) {
  check_no_dots(..., caller = "dfbetas()")
  infl_require_refits(model, "dfbetas()")
  se <- t(vapply(model[[6L]], function(v) sqrt(diag(v)), numeric(length(model[[1L]]))))
  dfbeta(model) / se
}

#' @rdname dfbeta.mixedrs_influence
#' @method cooks.distance mixedrs_influence
#' @export
cooks.distance.mixedrs_influence <- function(model, ...) {
  check_no_dots(..., caller = "cooks.distance()")
  infl_require_refits(model, "cooks.distance()")
  db <- dfbeta(model)
  n <- nrow(db)
  p <- ncol(db)
  vinv <- (n - p) / (n * p) * solve(model[[5L]])
  d <- rowSums((db %*% vinv) * db)
  names(d) <- rownames(db)
  d
}

infl_require_refits <- function(model, caller) {
  if (length(model) < 10L) {
    stop(caller, " needs the deletion refits: call influence() with do.coef = TRUE",
         call. = FALSE)
  }
}

#' Studentized residuals of a mixed model
#'
#' As lme4's `rstudent()` for `lmer()` and `glmer()` fits:
#' `sign(d) sqrt(d^2 + h r^2 / (1 - h)) / sigma` with `d` the deviance
#' residuals, `r` the Pearson residuals and `h` the leverages
#' ([hatvalues.lmm()]).
#'
#' @param model A fitted model of class `"lmm"` or `"glmm"`.
#' @param ... Not used (an error if given).
#' @return A named numeric vector, one value per observation (padded with
#'   `NA` for rows omitted with `na.action = na.exclude`).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' head(rstudent(fit))
#' @importFrom stats rstudent
#' @export
rstudent.lmm <- function(model, ...) {
  require_rows(model, "rstudent()")
  check_no_dots(..., caller = "rstudent()")
  d <- residuals(model, type = "deviance")
  pr <- residuals(model, type = "pearson")
  h <- hatvalues(model)
  r <- sign(d) * sqrt(d^2 + h * pr^2 / (1 - h))
  r[is.infinite(r)] <- NaN
  r / sigma(model)
}

#' @rdname rstudent.lmm
#' @method rstudent glmm
#' @export
rstudent.glmm <- rstudent.lmm
