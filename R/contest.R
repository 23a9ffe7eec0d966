# Tests of linear contrasts of the fixed effects, lmerTest's contest(): the t
# test of each row l of L (l'beta = rhs, with a confidence interval for
# l'beta) or the joint F test of L beta = rhs, with Satterthwaite's or
# Kenward-Roger's denominator degrees of freedom (the algebra of R/ddf.R).

#' Tests of linear contrasts of the fixed effects
#'
#' Tests hypotheses `L %*% beta = rhs` about the fixed effects of a linear
#' mixed model as `lmerTest::contest()` does: with `joint = TRUE` one F test
#' of all rows of `L` (Satterthwaite's df from the eigen decomposition of
#' `L V L'`, or Kenward-Roger's adjusted covariance, df and scaled F), with
#' `joint = FALSE` a t test of each row with a confidence interval for its
#' estimate.
#'
#' @param model A linear mixed model fitted by [lmm()] (an `lme4::lmer()` fit
#'   is handed to `lmerTest::contest()`).
#' @param L A contrast: a numeric vector with one value per fixed effect, a
#'   matrix with one column per fixed effect and one row per contrast, or a
#'   (named) list of such vectors and matrices, each tested on its own.
#' @param rhs The hypothesised values of `L %*% beta`: one number, or for
#'   `joint = TRUE` one per row of each contrast.
#' @param joint Logical: one F test of all rows (`TRUE`) or a t test per row.
#' @param collect Logical: the results of the contrasts of a list `L` in one
#'   data frame (`TRUE`, rows named by the list's names) or a list.
#' @param confint Logical: with `joint = FALSE`, add the `lower` and `upper`
#'   confidence limits of each row's estimate (with `joint = TRUE`, giving it
#'   warns that it is not used).
#' @param level Confidence level of those limits (as `confint`).
#' @param check_estimability Logical, lmerTest's argument: every contrast of
#'   an `lmm()` fit is estimable (its fixed-effects matrix has full column
#'   rank; rank-deficient columns are dropped when the model is fitted), so
#'   the check always passes.
#' @param ddf `"Satterthwaite"` (default) or `"Kenward-Roger"` (REML fits).
#' @param ... Not used; an argument given here is an error.
#' @return With `joint = TRUE` one row per contrast with `Sum Sq`, `Mean Sq`,
#'   `NumDF`, `DenDF`, `F value` and `Pr(>F)`; otherwise one row per row of
#'   each contrast with `Estimate`, `Std. Error`, `df`, `t value`, `lower`,
#'   `upper` (with `confint`) and `Pr(>|t|)`, the t value and p-value for the
#'   hypothesis `l'beta = rhs`. A data frame, or with `collect = FALSE` a list
#'   of one per contrast.
#' @seealso [anova.lmm()] for the F tests of the model's terms; the emmeans
#'   package for contrasts of marginal means.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("sleepstudy", package = "lme4")
#' fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
#' # is the slope 0? is it 10?
#' contest(fit, c(0, 1), joint = FALSE)
#' contest(fit, c(0, 1), rhs = 10, joint = FALSE)
#' # both coefficients at once, with Kenward-Roger's df
#' contest(fit, diag(2), ddf = "Kenward-Roger")
#' @export
contest <- function(model, L, rhs = 0, joint = TRUE, collect = TRUE, confint = TRUE,
                    level = 0.95, check_estimability = FALSE,
                    ddf = c("Satterthwaite", "Kenward-Roger"), ...) {
  if (is_lmerTest_model(model)) return(call_lmerTest(match.call(), "contest", parent.frame()))
  contrast_tests(model, L, rhs, joint, collect, confint, level, check_estimability, ddf,
                 limits_given = joint && (!missing(confint) || !missing(level)), ...)
}

# contest()'s checks and tests (`limits_given`: confint or level given with
# joint = TRUE, where they are not used; `eps`: as contestMD()'s).
contrast_tests <- function(model, L, rhs, joint, collect, confint, level, check_estimability,
                           ddf, limits_given, eps = sqrt(.Machine$double.eps), ...) {
  if (!inherits(model, "lmm")) {
    stop("contest() tests contrasts of the fixed effects of a linear mixed model fitted by ",
         "lmm(), not ", describe_class(model), call. = FALSE)
  }
  if (...length() > 0L) {
    dots <- names(list(...))
    stop("contest() does not take ",
         if (is.null(dots) || any(dots == "")) "unnamed arguments" else
           paste0("'", dots, "'", collapse = ", "), call. = FALSE)
  }
  for (flag in c("joint", "collect", "confint", "check_estimability")) {
    check_flag(get(flag), flag, "contest()")
  }
  check_level(level, "contest()")
  if (limits_given) {
    warning("contest(): 'confint' and 'level' apply to the t tests of joint = FALSE; the ",
            "joint F test has no confidence limits, so they were not used", call. = FALSE)
  }
  ddf <- match.arg(ddf, c("Satterthwaite", "Kenward-Roger"))
  p <- length(model$beta)
  contrasts <- if (is.list(L)) L else list(L)
  if (length(contrasts) == 0L) stop("contest(): 'L' is an empty list", call. = FALSE)
  contrasts <- lapply(contrasts, contrast_matrix, p = p, coef_names = names(model$beta))
  if (!is.numeric(rhs) || anyNA(rhs)) {
    stop("contest(): 'rhs' must be numeric, not ", deparse1(rhs), call. = FALSE)
  }
  if (p == 0L) {
    # a model without fixed effects: nothing to test (lmerTest's empty tables)
    columns <- if (joint) c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)") else
      c("Estimate", "Std. Error", "df", "t value", if (confint) c("lower", "upper"), "Pr(>|t|)")
    empty <- as.data.frame(matrix(numeric(0), 0L, length(columns),
                                  dimnames = list(NULL, columns)), check.names = FALSE)
    res <- lapply(contrasts, function(l) empty)
    return(if (collect) do.call(rbind, res) else res)
  }
  parts <- ddf_parts(model, ddf)
  res <- lapply(contrasts, function(l) {
    if (joint) return(joint_contrast_test(parts, l, rhs, eps))
    if (length(rhs) != 1L) {
      stop("contest(): with joint = FALSE 'rhs' must be one number (every row is tested ",
           "against it), not ", length(rhs), call. = FALSE)
    }
    rows <- lapply(stats::setNames(seq_len(nrow(l)), rownames(l)), function(i) {
      contrast_t_row(parts, l[i, ], rhs, confint, level)
    })
    do.call(rbind, rows)
  })
  if (collect) do.call(rbind, res) else res
}

# One row of contest(joint = TRUE): the F test of L beta = rhs (eps: the
# relative size below which an eigenvalue of L V L' counts as zero).
joint_contrast_test <- function(parts, L, rhs, eps = sqrt(.Machine$double.eps)) {
  if (!length(rhs) %in% c(1L, nrow(L))) {
    stop("contest(): 'rhs' must be one number or one per row of the contrast (",
         nrow(L), ")", call. = FALSE)
  }
  shifted <- parts
  shifted$beta <- parts$beta - shift_to_rhs(L, rep_len(as.double(rhs), nrow(L)))
  out <- as.data.frame(as.list(contrast_md(shifted, L, eps)), check.names = FALSE)
  out$NumDF <- as.integer(out$NumDF)
  out
}

#' @rdname contest
#' @param eps For `contestMD()`: eigenvalues of `L V L'` below `eps` times
#'   the largest count as zero (the rank of the test).
#' @details `contest1D()` and `contestMD()` are lmerTest's tests of one
#'   contrast (`contest(joint = FALSE)` of a vector `L`, without confidence
#'   limits by default) and of all rows of `L` at once (`contest(joint =
#'   TRUE)`).
#' @export
contest1D <- function(model, L, rhs = 0, ddf = c("Satterthwaite", "Kenward-Roger"),
                      confint = FALSE, level = 0.95, ...) {
  if (is_lmerTest_model(model)) return(call_lmerTest(match.call(), "contest1D", parent.frame()))
  if (is.matrix(L)) {
    if (nrow(L) != 1L) {
      stop("contest1D(): 'L' must be one contrast (a vector or a one-row matrix), not ",
           nrow(L), " rows; use contestMD() or contest()", call. = FALSE)
    }
    L <- drop(L)
  }
  out <- contest(model, L, rhs = rhs, joint = FALSE, confint = confint, level = level,
                 ddf = ddf, ...)
  rownames(out) <- NULL
  out
}

#' @rdname contest
#' @export
contestMD <- function(model, L, rhs = 0, ddf = c("Satterthwaite", "Kenward-Roger"),
                      eps = sqrt(.Machine$double.eps), ...) {
  if (is_lmerTest_model(model)) return(call_lmerTest(match.call(), "contestMD", parent.frame()))
  if (!is.numeric(eps) || length(eps) != 1L || is.na(eps) || eps < 0 || eps >= 1) {
    stop("contestMD(): 'eps' must be a number in [0, 1), not ", deparse1(eps), call. = FALSE)
  }
  out <- contrast_tests(model, L, rhs, joint = TRUE, collect = TRUE, confint = TRUE,
                        level = 0.95, check_estimability = FALSE, ddf = ddf,
                        limits_given = FALSE, eps = eps, ...)
  rownames(out) <- NULL
  out
}

# One row of contest(joint = FALSE): the t test of l'beta = rhs, with the
# confidence limits of l'beta (lmerTest's columns and order).
contrast_t_row <- function(parts, l, rhs, confint, level) {
  r <- contrast_1d(parts, l)
  tval <- (r[["Estimate"]] - rhs) / r[["Std. Error"]]
  out <- data.frame(Estimate = r[["Estimate"]], `Std. Error` = r[["Std. Error"]],
                    df = r[["df"]], `t value` = tval, check.names = FALSE)
  if (confint) {
    half <- stats::qt(1 - (1 - level) / 2, r[["df"]]) * r[["Std. Error"]]
    out$lower <- r[["Estimate"]] - half
    out$upper <- r[["Estimate"]] + half
  }
  out$`Pr(>|t|)` <- 2 * stats::pt(abs(tval), r[["df"]], lower.tail = FALSE)
  out
}

# `L` as a matrix with `p` columns, checked.
contrast_matrix <- function(L, p, coef_names) {
  if (is.list(L) || !is.numeric(L) || anyNA(L) || any(!is.finite(L))) {
    stop("contest(): 'L' must be a finite numeric vector or matrix (one column per fixed ",
         "effect: ", paste(coef_names, collapse = ", "), ")", call. = FALSE)
  }
  if (!is.matrix(L)) L <- matrix(L, nrow = 1L)
  if (ncol(L) != p) {
    stop("contest(): 'L' has ", ncol(L), " column", if (ncol(L) != 1L) "s", " (or values); ",
         "the model has ", p, " fixed effects (", paste(coef_names, collapse = ", "), ")",
         call. = FALSE)
  }
  if (nrow(L) == 0L) stop("contest(): 'L' has no rows", call. = FALSE)
  dimnames(L) <- list(rownames(L), NULL)
  L
}

# A beta0 with L beta0 = rhs (zero when rhs is), so that the test of
# L beta = rhs is the test of L (beta - beta0) = 0.
shift_to_rhs <- function(L, rhs) {
  if (all(rhs == 0)) return(0)
  beta0 <- drop(t(L) %*% pseudo_inverse(L %*% t(L)) %*% rhs)
  if (max(abs(L %*% beta0 - rhs)) > 1e-8 * max(1, abs(rhs))) {
    stop("contest(): 'rhs' is not consistent with 'L' (its rows are linearly dependent ",
         "and 'rhs' does not satisfy the same relation)", call. = FALSE)
  }
  beta0
}
