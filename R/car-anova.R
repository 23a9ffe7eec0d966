# car::Anova() for mixed model fits: the Wald chi-square tests (type II and
# III) that car computes for lme4's fits, and for linear mixed models fitted
# by REML the F tests with Kenward-Roger's adjusted covariance and
# denominator degrees of freedom (car takes them from pbkrtest; here from
# the Kenward-Roger machinery of R/ddf.R). Registered on car's generic when
# car is loaded.

#' ANOVA tables of mixed models for car::Anova()
#'
#' The tables `car::Anova()` gives for lme4's fits, for `"lmm"` and `"glmm"`
#' fits:
#' * type II: each term tested after the terms that do not contain it, the
#'   hypothesis being the part of the term's and its relatives' coefficients
#'   orthogonal (in the metric of the coefficients' covariance) to the
#'   relatives' (a term's relatives are the terms with all its variables);
#' * type III: each term's coefficients are zero (the intercept included).
#'
#' `test.statistic = "Chisq"` gives Wald chi-square tests from `vcov(mod)`
#' (or `vcov.`); `"F"` (REML fits of linear mixed models only) F tests with
#' Kenward-Roger's adjusted covariance, scaled statistic and denominator
#' degrees of freedom, as car computes them with pbkrtest.
#'
#' @param mod A fitted model of class `"lmm"` or `"glmm"`.
#' @param type `"II"` or `"III"` (also `2` or `3`).
#' @param test.statistic `"Chisq"` or `"F"`.
#' @param vcov. For Wald chi-square tests, the covariance of the fixed
#'   effects: a matrix or a function of the fit (default `vcov(mod)`); with
#'   `"F"` it must not be given (car ignores it with a warning).
#' @param singular.ok Accepted for car's signature: mixedrs' fixed-effects
#'   matrices are of full rank (dropped columns are not coefficients), so
#'   there are no aliased coefficients.
#' @param ... Not used (an error if given).
#' @return An object of class `c("anova", "data.frame")` with columns
#'   `Chisq`, `Df`, `Pr(>Chisq)` or `F`, `Df`, `Df.res`, `Pr(>F)`, and car's
#'   heading.
#' @examplesIf requireNamespace("car", quietly = TRUE) && requireNamespace("lme4", quietly = TRUE)
#' cake <- lme4::cake
#' fit <- lmm(angle ~ recipe * temperature + (1 | recipe:replicate), cake)
#' car::Anova(fit)
#' car::Anova(fit, type = 3, test.statistic = "F")
#' @rdname car-Anova
#' @exportS3Method car::Anova
Anova.lmm <- function(mod, type = c("II", "III", 2, 3),
                      test.statistic = c("Chisq", "F"), vcov. = NULL,
                      singular.ok = NULL, ...) {
  check_no_dots(..., caller = "Anova()")
  type <- as.character(type)
  type <- c(II = "II", III = "III", "2" = "II", "3" = "III")[[match.arg(type, c("II", "III", "2", "3"))]]
  test <- match.arg(test.statistic, c("Chisq", "F"))
  p <- length(mod$beta)
  if (test == "F") {
    if (!is.null(vcov.)) {
      stop("Anova(): 'vcov.' cannot be used with test.statistic = \"F\" (the F ",
           "tests use Kenward-Roger's adjusted covariance)", call. = FALSE)
    }
    if (!isREML.mixedrs_fit(mod)) {
      stop("Anova(): the F test is available only for linear mixed models fitted ",
           "by REML", call. = FALSE)
    }
    parts <- ddf_parts(mod, "Kenward-Roger")
    V <- parts$vcov_adj
  } else {
    V <- if (is.null(vcov.) && is_extended_fit(mod)) as.matrix(mod$vcov)
         else if (is.null(vcov.)) as.matrix(stats::vcov(mod))
         else if (is.function(vcov.)) as.matrix(vcov.(mod))
         else as.matrix(vcov.)
    if (!identical(dim(V), c(p, p))) {
      stop("Anova(): 'vcov.' must be a ", p, " x ", p, " matrix", call. = FALSE)
    }
  }
  beta <- unname(mod$beta)
  hyps <- car_hypotheses(mod, type, V)
  stats <- t(vapply(hyps, function(L) {
    if (test == "Chisq") {
      Lb <- L %*% beta
      c(drop(crossprod(Lb, solve(L %*% V %*% t(L), Lb))), nrow(L), NA)
    } else {
      r <- contrast_md(parts, L)
      c(r[["F value"]], r[["NumDF"]], r[["DenDF"]])
    }
  }, numeric(3)))
  heading_type <- if (type == "II") "Type II" else "Type III"
  response <- paste("Response:", deparse(attr(terms.mixedrs_fit(mod), "variables")[[2L]]))
  out <- if (test == "Chisq") {
    data.frame(Chisq = stats[, 1L], Df = stats[, 2L],
               "Pr(>Chisq)" = stats::pchisq(stats[, 1L], stats[, 2L], lower.tail = FALSE),
               check.names = FALSE, row.names = names(hyps))
  } else {
    data.frame(F = stats[, 1L], Df = stats[, 2L], Df.res = stats[, 3L],
               "Pr(>F)" = stats::pf(stats[, 1L], stats[, 2L], stats[, 3L], lower.tail = FALSE),
               check.names = FALSE, row.names = names(hyps))
  }
  attr(out, "heading") <- c(
    paste0("Analysis of Deviance Table (", heading_type,
           if (test == "Chisq") " Wald chisquare tests)\n"
           else " Wald F tests with Kenward-Roger df)\n"),
    response)
  class(out) <- c("anova", "data.frame")
  out
}

#' @rdname car-Anova
#' @exportS3Method car::Anova
Anova.glmm <- function(mod, type = c("II", "III", 2, 3),
                       test.statistic = c("Chisq", "F"), vcov. = NULL,
                       singular.ok = NULL, ...) {
  if (identical(match.arg(test.statistic, c("Chisq", "F")), "F")) {
    stop("Anova(): the F test is available only for linear mixed models fitted ",
         "by REML", call. = FALSE)
  }
  Anova.lmm(mod, type = type, test.statistic = "Chisq", vcov. = vcov.,
            singular.ok = singular.ok, ...)
}

# The hypothesis matrix of each term, car's way. Type III: the rows of the
# identity for the term's columns (intercept included). Type II: within the
# span of the term's and its relatives' columns, the directions orthogonal
# to the relatives' columns in the metric V.
car_hypotheses <- function(mod, type, V) {
  X <- mod$X
  p <- ncol(X)
  I <- diag(p)
  asgn <- attr(X, "assign")
  tt <- terms.mixedrs_fit(mod)
  labels <- attr(tt, "term.labels")
  intercept <- "(Intercept)" %in% colnames(X)
  if (type == "III") {
    out <- lapply(seq_along(labels), function(i) I[asgn == i, , drop = FALSE])
    names(out) <- labels
    if (intercept) out <- c(list("(Intercept)" = I[asgn == 0L, , drop = FALSE]), out)
    return(out[vapply(out, nrow, 1L) > 0L])
  }
  factors <- attr(tt, "factors")
  # the terms whose variables include all of term i's
  relatives <- function(i) {
    mine <- factors[, i] != 0
    setdiff(which(vapply(seq_along(labels), function(j) all(factors[mine, j] != 0), NA)), i)
  }
  out <- lapply(seq_along(labels), function(i) {
    own <- which(asgn == i)
    rel <- which(asgn %in% relatives(i))
    if (!length(rel)) return(I[own, , drop = FALSE])
    Z <- t(I[c(rel, own), , drop = FALSE])
    R <- t(I[rel, , drop = FALSE])
    # the directions Z a orthogonal to R's columns in the inner product V:
    # R' V Z a = 0, a spanning the null space of R' V Z
    M <- crossprod(R, V %*% Z)
    s <- svd(M, nv = ncol(M))
    rank <- sum(s$d > max(dim(M)) * max(s$d) * .Machine$double.eps)
    null <- s$v[, seq.int(rank + 1L, ncol(M)), drop = FALSE]
    t(Z %*% null)
  })
  names(out) <- labels
  out
}
