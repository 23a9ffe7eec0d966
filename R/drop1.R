# drop1() for mixed model fits: lmerTest's single-term-deletion F tests of a
# linear mixed model (Satterthwaite's or Kenward-Roger's denominator degrees
# of freedom, through the contrast algebra of R/ddf.R and R/anova.R), and
# lme4's table of AIC and likelihood-ratio tests from refits without each
# term (for GLMMs, and for LMMs when asked for with `test` or
# ddf = "lme4").

#' Drop single fixed-effects terms of a mixed model
#'
#' For an `"lmm"` fit, by default the F test of each fixed-effects term that
#' can be dropped (no other term contains it) as lmerTest's `drop1()`
#' computes it: the hypothesis that the term's coefficients are zero, with
#' Satterthwaite's or Kenward-Roger's denominator degrees of freedom (for a
#' model whose fixed-effects matrix lost columns, rank deficient, as lmerTest
#' tests it: the part of the model's column space that the model without the
#' term does not span). With
#' `test` given (`"none"` or `"Chisq"`), or `ddf = "lme4"`, and always for a
#' `"glmm"` fit, lme4's `drop1()`: each term is dropped in turn, the model
#' refitted ([stats::update()], evaluated in the environment of the model
#' formula), and the AIC of the fits by maximum likelihood compared
#' ([extractAIC.mixedrs_fit()]); `test = "Chisq"` adds the likelihood-ratio
#' tests.
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param scope The terms to drop: a character vector of term labels, or
#'   (lme4's tables only) a formula whose fixed-effects terms are taken.
#'   Default: every term that no other term contains ([stats::drop.scope()]).
#' @param ddf For the F tests of an `"lmm"` fit: `"Satterthwaite"`,
#'   `"Kenward-Roger"` (REML fits) or `"lme4"` (lme4's table instead).
#' @param test For lme4's table: `"none"` (AIC only), `"Chisq"` (also the
#'   likelihood-ratio tests) or `"user"` (the columns `sumFun` returns).
#' @param k Penalty per parameter of the AIC.
#' @param trace Logical or a number: > 1 prints each term as it is dropped
#'   (lme4's tables).
#' @param sumFun For `test = "user"`: a function called as lme4 calls it,
#'   `sumFun(object, scale = , k = , ...)` for the `"<none>"` row and
#'   `sumFun(object, refit, scale = , k = , ...)` for each refit without a
#'   term, returning a named numeric vector.
#' @param scale Not used; must be 0 (lme4 ignores it).
#' @param ... Passed to `sumFun`; otherwise not used (an error if given).
#' @return An object of class `c("anova", "data.frame")`: lmerTest's columns
#'   `Sum Sq`, `Mean Sq`, `NumDF`, `DenDF`, `F value`, `Pr(>F)` (the
#'   hypothesis matrices in attribute `"hypotheses"`) or lme4's `npar`,
#'   `AIC` and, for `test = "Chisq"`, `LRT` and `Pr(Chi)`.
#' @seealso [anova.lmm()] for type I, II and III tables.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' cake <- lme4::cake
#' fit <- lmm(angle ~ recipe + temperature + (1 | recipe:replicate), cake)
#' drop1(fit)
#' drop1(fit, ddf = "Kenward-Roger")
#' drop1(fit, test = "Chisq")
#' cbpp <- lme4::cbpp
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = cbpp)
#' drop1(gfit, test = "Chisq")
#' @importFrom stats drop1
#' @export
drop1.lmm <- function(object, scope, ddf = c("Satterthwaite", "Kenward-Roger", "lme4"),
                      test = c("none", "Chisq", "user"), k = 2, trace = FALSE,
                      sumFun = NULL, scale = 0, ...) {
  ddf <- match_choice(ddf)
  if (!missing(test) || ddf == "lme4") {
    return(drop1_refits(object, scope, match_choice(test), k, trace, sumFun, scale, ...))
  }
  check_no_dots(..., caller = "drop1()")
  if (!missing(k) || !missing(trace) || !is.null(sumFun) || !missing(scale)) {
    stop("drop1(): 'k', 'trace', 'sumFun' and 'scale' belong to lme4's table ",
         "(give 'test' or ddf = \"lme4\"); the F tests use none of them",
         call. = FALSE)
  }
  drop1_f_tests(object, scope, ddf)
}

#' @rdname drop1.lmm
#' @export
drop1.glmm <- function(object, scope, test = c("none", "Chisq", "user"), k = 2,
                       trace = FALSE, sumFun = NULL, scale = 0, ...) {
  drop1_refits(object, scope, match_choice(test), k, trace, sumFun, scale, ...)
}

# lmerTest's F tests: the marginal hypothesis of each droppable term (its
# coefficients are zero; with a single term or column, the type I
# hypothesis, as lmerTest).
drop1_f_tests <- function(object, scope, ddf) {
  X <- object$X
  tt <- terms.mixedrs_fit(object)
  droppable <- stats::drop.scope(tt)
  if (missing(scope)) {
    scope <- droppable
  } else if (length(scope) == 0L || !is.character(scope)) {
    stop("drop1(): 'scope' should be a character vector naming terms to be dropped",
         call. = FALSE)
  } else if (!all(scope %in% droppable)) {
    stop("drop1(): only marginal terms can be dropped from the model (",
         paste(sQuote(droppable, FALSE), collapse = ", "), "), not ",
         paste(sQuote(setdiff(scope, droppable), FALSE), collapse = ", "),
         call. = FALSE)
  }
  labels <- attr(tt, "term.labels")
  Llist <- if (length(attr(X, "col.dropped"))) {
    rank_deficient_deletions(object, tt, scope)
  } else if (ncol(X) <= 1L || length(labels) <= 1L) {
    contrasts_type1(object)
  } else {
    tc <- term_columns(object)
    I <- diag(ncol(X))
    dimnames(I) <- list(colnames(X), colnames(X))
    lapply(tc$cols, function(cols) I[cols, , drop = FALSE])
  }
  Llist <- Llist[scope]
  columns <- c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")
  tab <- if (length(Llist)) {
    parts <- ddf_parts(object, ddf)
    as.data.frame(do.call(rbind, lapply(Llist, function(L) contrast_md(parts, L))),
                  check.names = FALSE)
  } else {
    as.data.frame(matrix(numeric(0), 0L, length(columns), dimnames = list(NULL, columns)),
                  check.names = FALSE)
  }
  rownames(tab) <- names(Llist)
  tab$NumDF <- as.integer(tab$NumDF)
  method <- if (ddf == "Satterthwaite") "Satterthwaite's" else "Kenward-Roger's"
  attr(tab, "heading") <- c(paste("Single term deletions using", method, "method:"),
                            "\nModel:", paste(deparse(mer_formula(object), width.cutoff = 500L),
                                              collapse = " "))
  attr(tab, "hypotheses") <- Llist
  attr(tab, "ddf") <- ddf
  class(tab) <- c("anova", "data.frame")
  tab
}

# The hypotheses of dropping each term in `scope` from a model whose
# fixed-effects matrix X lost columns (rank deficient), as lmerTest forms
# them: X beta lies in the column space of the model matrix without the term
# (X0: the full model matrix without the term's columns, the other terms
# coded as before since none contains it), i.e. L beta = 0 with L's rows an
# orthonormal basis of the part of X's column space orthogonal to X0's,
# mapped by X'. A term whose columns were all aliased has no hypothesis (NA).
rank_deficient_deletions <- function(object, tt, scope) {
  X <- object$X
  full <- full_fixed_matrix(object)
  assign <- attr(full, "assign")
  labels <- attr(tt, "term.labels")
  stats::setNames(lapply(scope, function(term) {
    X0 <- full[, assign != match(term, labels), drop = FALSE]
    if (qr(X0)$rank >= ncol(X)) return(matrix(NA_real_, 1L, ncol(X)))
    nested_restriction_matrix(X, X0)
  }), scope)
}

# lme4's drop1(): each term in `scope` dropped by update() of the call,
# the refits summarised by sumFun (default: extractAIC()).
drop1_refits <- function(object, scope, test, k, trace, sumFun, scale, ...) {
  require_rows(object, "drop1() with refits (test = \"Chisq\" or \"user\")")
  if ((test == "user") != !is.null(sumFun)) {
    stop("drop1(): 'sumFun' must be given if (and only if) test = \"user\"",
         call. = FALSE)
  }
  if (!identical(as.numeric(scale), 0)) {
    stop("drop1(): 'scale' is not used for mixed models; leave it at 0", call. = FALSE)
  }
  if (is.null(sumFun)) {
    check_no_dots(..., caller = "drop1()")
    sumFun <- function(x, scale, k, ...) {
      stats::setNames(extractAIC.mixedrs_fit(x, k = k), c("df", "AIC"))
    }
  }
  labels <- attr(terms.mixedrs_fit(object), "term.labels")
  if (missing(scope)) {
    scope <- stats::drop.scope(terms.mixedrs_fit(object))
  } else {
    if (!is.character(scope)) {
      full <- stats::update.formula(model_formula(object), scope)
      scope <- attr(stats::terms(parse_lmm_formula(full)$fixed_formula), "term.labels")
    }
    if (!all(scope %in% labels)) {
      stop("drop1(): 'scope' is not a subset of the term labels (",
           paste(sQuote(labels, FALSE), collapse = ", "), ")", call. = FALSE)
    }
  }
  # as lme4: the "<none>" row from sumFun(object, ...), also for test = "user"
  ss <- sumFun(object, scale = scale, k = k, ...)
  ans <- matrix(NA_real_, length(scope) + 1L, length(ss),
                dimnames = list(c("<none>", scope), names(ss)))
  ans[1L, ] <- ss
  n0 <- stats::nobs(object)
  env <- parent.frame(2L)
  for (i in seq_along(scope)) {
    term <- scope[i]
    if (trace > 1) {
      cat("trying -", term, "\n", sep = "")
      utils::flush.console()
    }
    cl <- stats::update(object, stats::as.formula(paste("~ . -", term)), evaluate = FALSE)
    nfit <- eval_model_call(cl, object, env)
    ans[i + 1L, ] <- if (test == "user") sumFun(object, nfit, scale = scale, k = k, ...)
                     else sumFun(nfit, scale = scale, k = k, ...)
    if (stats::nobs(nfit) != n0) {
      stop("drop1(): the number of rows in use has changed when dropping '", term,
           "': remove missing values?", call. = FALSE)
    }
  }
  aod <- if (test == "user") {
    as.data.frame(ans)
  } else {
    dfs <- ans[1L, 1L] - ans[, 1L]
    dfs[1L] <- NA
    out <- data.frame(npar = dfs, AIC = ans[, 2L])
    if (test == "Chisq") {
      dev <- ans[, 2L] - k * ans[, 1L]
      dev <- dev - dev[1L]
      dev[1L] <- NA
      p <- dev
      ok <- !is.na(dev)
      # (no test where dropping the term removed no parameter: its columns
      # were aliased; lme4's safe_pchisq())
      p[ok] <- stats::pchisq(dev[ok], ifelse(dfs[ok] > 0, dfs[ok], NA), lower.tail = FALSE)
      out[, c("LRT", "Pr(Chi)")] <- list(dev, p)
    }
    out
  }
  heading <- c("Single term deletions", "\nModel:", deparse(mer_formula(object)))
  # (as lme4: a "method" attribute of sumFun's value is shown in the heading)
  if (!is.null(method <- attr(ss, "method"))) heading <- c(heading, "Method: ", method, "\n")
  structure(aod, heading = heading, class = c("anova", "data.frame"))
}
