# Conditional variances of the random effects: lme4's
# ranef(fit, condVar = TRUE) "postVar" arrays and the "condsd" column of
# as.data.frame(ranef(...)).
#
# For level j of a term, the conditional covariance matrix of its random
# effects is sigma^2 [Lambda (Lambda'Z'WZ Lambda + I)^-1 Lambda']_jj: the
# Rust core (src/rust/inference/condvar.rs) computes the diagonal blocks of the inverse
# from the blocked Cholesky factor at the estimates (for GLMMs at the PIRLS
# weights of the conditional modes, from the stored linear predictor), without
# forming the inverse.

# The conditional covariance arrays (q x q x levels) of every random-effects
# term of a fitted "lmm" or "glmm" object, in term order, scaled by sigma^2.
term_condvar <- function(object) {
  inputs <- fit_engine_inputs(object)
  theta <- unname(as.double(object$theta))
  if (!is.null(object$extended)) {
    # A family with extra parameters: the weights of the fit's Laplace factor.
    glmm_condvar_weights_rs(inputs, theta, as.double(object$extended$working_weights),
                            engine_threads(0L, control_of(object, parent.frame())))
  } else if (inherits(object, "glmm")) {
    glmm_condvar_rs(inputs, object$family$family,
                    object$family$link, theta, unname(as.double(object$eta)),
                    as.double(stats::sigma(object)),
                    engine_threads(0L, control_of(object, parent.frame())))
  } else {
    lmm_condvar_rs(inputs, isTRUE(object$REML), theta,
                   engine_threads(0L, control_of(object, parent.frame())))
  }
}

# lme4's "postVar" per grouping factor: the term's array when the factor has
# one term, otherwise a list of the terms' arrays named as lme4 names them
# (as.character() of each term's column names).
factor_condvar <- function(object) {
  arrays <- term_condvar(object)
  fl <- object$flist
  term_factor <- attr(fl, "assign")
  out <- lapply(seq_along(fl), function(i) {
    idx <- which(term_factor == i)
    if (length(idx) == 1L) return(arrays[[idx]])
    stats::setNames(arrays[idx],
                    as.character(lapply(object$reterms[idx], `[[`, "cnms")))
  })
  names(out) <- names(fl)
  out
}

# Conditional standard deviations in the long layout of
# as.data.frame(ranef(...)): for each term, each of its columns, each level.
condvar_sd <- function(pv) {
  one <- function(a) {
    unlist(lapply(seq_len(dim(a)[1L]), function(k) sqrt(a[k, k, ])),
           use.names = FALSE)
  }
  if (is.list(pv)) unlist(lapply(pv, one), use.names = FALSE) else one(pv)
}
