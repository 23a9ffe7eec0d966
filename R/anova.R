#' ANOVA tables for linear mixed models
#'
#' With one model, the F tests of the fixed-effects terms as lmerTest computes
#' them, with Satterthwaite's or Kenward-Roger's denominator degrees of
#' freedom, for one of three types of hypotheses:
#' * type III (default): each term adjusted for all others, with hypotheses
#'   orthogonal to the terms that contain it;
#' * type II: a term that no other term contains is tested adjusted for all
#'   others (its coefficients are zero); any other term is tested adjusted
#'   for every term except those that contain it (as lmerTest's type II
#'   table, and `car::Anova()` for linear models);
#' * type I: sequential, each term adjusted for the terms before it in the
#'   formula.
#'
#' A term contains another if it has all the other's variables and more,
#' and the same numeric variables (so `x` is not contained in `f:x` for a
#' numeric `x` and a factor `f`, as in lmerTest).
#'
#' `ddf = "lme4"` gives lme4's sequential table without degrees of freedom
#' (only with type I hypotheses). With several models, likelihood-ratio
#' tests as `lme4::anova()` gives them (REML fits are refitted by maximum
#' likelihood); `type` and `ddf` are then an error.
#'
#' @param object A fitted model of class `"lmm"`.
#' @param ... Further fitted models to compare with `object`. With one model,
#'   any other argument is an error naming it (lme4 ignores unnamed ones with
#'   a warning).
#' @param type Type of hypotheses for a single model: `"III"`, `"II"` or
#'   `"I"`, also as `"3"`, `"2"`, `"1"` or the numbers 3, 2, 1 (no
#'   abbreviations).
#' @param ddf Denominator degrees of freedom: `"Satterthwaite"`,
#'   `"Kenward-Roger"` (REML fits) or `"lme4"`.
#' @param refit For several models: refit REML fits by maximum likelihood
#'   before comparing them (as lme4)? An error with one model.
#' @param model.names For several models: names for the rows of the table
#'   (by default the expressions the models were given as). An error with
#'   one model.
#' @return An object of class `c("anova", "data.frame")`: for one model the
#'   columns `Sum Sq`, `Mean Sq`, `NumDF`, `DenDF`, `F value`, `Pr(>F)` with
#'   one row per term (the hypothesis matrices in the attribute
#'   `"hypotheses"`); for several models lme4's comparison table.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("cake", package = "lme4")
#' fit <- lmm(angle ~ recipe * temperature + (1 | recipe:replicate), cake)
#' anova(fit)
#' anova(fit, type = "I", ddf = "Kenward-Roger")
#' anova(fit, ddf = "lme4", type = "I")
#' # cake is balanced, so the types agree; without its first 20 rows they do not
#' unbal <- update(fit, data = cake[-(1:20), ])
#' anova(unbal, type = 2)
#' anova(unbal, type = 3)
#' small <- update(fit, . ~ . - recipe:temperature)
#' anova(small, fit)
#' @method anova lmm
#' @export
anova.lmm <- function(object, ..., type = c("III", "II", "I", "3", "2", "1"),
                      ddf = c("Satterthwaite", "Kenward-Roger", "lme4"),
                      refit = TRUE, model.names = NULL) {
  exprs <- c(list(substitute(object)), as.list(substitute(list(...)))[-1L])
  found <- anova_collect_models(object, list(...), exprs, model.names)
  if (!is.null(found)) {
    if (!missing(type) || !missing(ddf)) {
      stop("'type' and 'ddf' apply to the F tests of one model; the ",
           "comparison of several models is a likelihood-ratio test that ",
           "uses neither", call. = FALSE)
    }
    return(anova_compare(found$models, found$names, refit = refit))
  }
  anova_check_one_model_dots(list(...))
  anova_check_one_model_args(missing(refit), missing(model.names))
  type_given <- !missing(type)
  type <- anova_type(type)
  ddf <- match_choice(ddf)
  if (ddf == "lme4") {
    if (type_given && type != "I") {
      stop("ddf = \"lme4\" gives lme4's sequential (type I) table; type ",
           type, " hypotheses need ddf = \"Satterthwaite\" or ",
           "\"Kenward-Roger\"", call. = FALSE)
    }
    return(anova_single_lme4(object))
  }
  L_list <- switch(type, III = contrasts_type3(object, report_missing_cells = TRUE),
                   II = contrasts_type2(object),
                   I = contrasts_type1(object))
  parts <- ddf_parts(object, ddf)
  rows <- lapply(L_list, function(L) contrast_md(parts, L))
  columns <- c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")
  tab <- if (length(rows)) {
    as.data.frame(do.call(rbind, rows), check.names = FALSE)
  } else {
    # no terms besides the intercept: lmerTest's empty table
    as.data.frame(matrix(numeric(0), 0L, length(columns), dimnames = list(NULL, columns)),
                  check.names = FALSE)
  }
  rownames(tab) <- names(L_list)
  tab$NumDF <- as.integer(tab$NumDF)
  attr(tab, "heading") <- paste("Type", type, "Analysis of Variance Table with",
                                if (ddf == "Satterthwaite") "Satterthwaite's" else
                                  "Kenward-Roger's", "method")
  attr(tab, "hypotheses") <- L_list
  class(tab) <- c("anova", "data.frame")
  tab
}

# The type of hypotheses from anova()'s `type`: "I", "II" or "III", given as
# those, as "1", "2", "3" or as the numbers 1, 2, 3 (as lmerTest accepts
# them). Matching is exact: an abbreviation such as "II" must not be taken
# for "III".
anova_type <- function(type) {
  choices <- c("III", "II", "I", "3", "2", "1")
  if (identical(type, choices)) return("III")
  roman <- c("I", "II", "III")
  if (is.numeric(type) && length(type) == 1L && !is.na(type) && type %in% 1:3) {
    return(roman[type])
  }
  if (is.character(type) && length(type) == 1L && !is.na(type) && type %in% choices) {
    return(if (type %in% roman) type else roman[as.integer(type)])
  }
  stop("'type' should be one of ", paste(dQuote(choices, FALSE), collapse = ", "),
       " or the number 1, 2 or 3; not ", deparse1(type), call. = FALSE)
}

# Terms of the fixed part and the columns of X that belong to each.
term_columns <- function(fit) {
  trms <- stats::terms(parse_lmm_formula(model_formula(fit))$fixed_formula)
  labels <- attr(trms, "term.labels")
  asgn <- attr(fit$X, "assign")
  cols <- lapply(seq_along(labels), function(i) which(asgn == i))
  names(cols) <- labels
  list(terms = trms, labels = labels, cols = cols)
}

# X'X of the fixed effects: from the rows, or from the sums of a fit made
# from them (sums_fixed_crossprod()).
fixed_crossprod <- function(fit) {
  if (is_sums_fit(fit)) sums_fixed_crossprod(fit) else crossprod(fit$X)
}

# Type I (sequential) hypotheses: the rows of the unit lower-triangular
# factor of the LDU decomposition of X'X that belong to each term.
contrasts_type1 <- function(fit) {
  X <- fit$X
  tc <- term_columns(fit)
  p <- ncol(X)
  L <- t(unit_lower_factor(fixed_crossprod(fit)))
  dimnames(L) <- list(colnames(X), colnames(X))
  lapply(tc$cols, function(cols) L[cols, , drop = FALSE])
}

# Type II hypotheses, as lmerTest's default type II table defines them. A
# term that no other term contains (see containing_terms()) is tested
# marginally: its coefficients are zero. Any other term is tested adjusted
# for every term except itself and those containing it: X's columns are
# reordered (the other terms first, then the term, then the terms containing
# it) and the term's rows of the unit lower-triangular factor of X'X in that
# order are its hypotheses, mapped back to X's column order.
contrasts_type2 <- function(fit) {
  X <- fit$X
  tc <- term_columns(fit)
  p <- ncol(X)
  if (p <= 1L || length(tc$labels) <= 1L) return(contrasts_type1(fit))
  contains <- containing_terms(fit, tc)
  XtX <- fixed_crossprod(fit)
  lapply(stats::setNames(tc$labels, tc$labels), function(term) {
    own <- tc$cols[[term]]
    if (length(contains[[term]]) == 0L) {
      h <- diag(p)[own, , drop = FALSE]
      dimnames(h) <- list(colnames(X)[own], colnames(X))
      return(h)
    }
    last <- c(own, unlist(tc$cols[contains[[term]]], use.names = FALSE))
    ord <- c(setdiff(seq_len(p), last), last)
    L <- t(unit_lower_factor(XtX[ord, ord, drop = FALSE]))
    h <- L[match(own, ord), order(ord), drop = FALSE]
    dimnames(h) <- list(colnames(X)[own], colnames(X))
    h
  })
}

# Unit lower-triangular L of the Doolittle decomposition A = L U, with
# entries below 1e-6 in absolute value set to 0 (so that a term's
# hypotheses are exactly those of its columns given the earlier ones).
unit_lower_factor <- function(A, eps = 1e-6) {
  n <- nrow(A)
  L <- diag(n)
  U <- matrix(0, n, n)
  for (i in seq_len(n)) {
    for (j in seq_len(n)) {
      U[i, j] <- A[i, j] - if (i > 1) sum(L[i, seq_len(i - 1)] * U[seq_len(i - 1), j]) else 0
    }
    if (i < n) {
      for (j in (i + 1):n) {
        v <- A[j, i] - if (i > 1) sum(L[j, seq_len(i - 1)] * U[seq_len(i - 1), i]) else 0
        L[j, i] <- if (abs(U[i, i]) < eps) 0 else v / U[i, i]
      }
    }
  }
  L[abs(L) < eps] <- 0
  L
}

# Type III hypotheses. Each term's hypothesis is expressed through the
# over-parameterized design (an intercept and every term coded with all its
# levels); the parts of a term's hypothesis that lie in the span of the terms
# containing it (higher-order terms with the same numeric variables) are
# projected out, higher-order terms first. Models coded with other than
# treatment contrasts are analysed in treatment coding and mapped back.
# With `report_missing_cells`, a message names the cells (columns of the
# over-parameterized design) without observations, as lmerTest's does.
contrasts_type3 <- function(fit, report_missing_cells = FALSE) {
  tc <- term_columns(fit)
  if (is_sums_fit(fit)) return(sums_contrasts_type3(fit, tc))
  Xorig <- fit$X
  if (ncol(Xorig) <= 1L || length(tc$labels) <= 1L) return(contrasts_type1(fit))
  codings <- unlist(attr(Xorig, "contrasts"))
  treatment <- length(codings) == 0L ||
    (all(is.character(codings)) && all(codings == "contr.treatment"))
  X <- if (treatment) Xorig else treatment_design(fit, tc$terms)
  frame <- fit$frame
  rd <- lapply(tc$labels, function(lab) {
    stats::model.matrix(stats::as.formula(paste("~ 0 +", lab)), data = frame)
  })
  rdX <- do.call(cbind, rd)
  empty <- colnames(rdX)[colSums(abs(rdX)) == 0]
  if (report_missing_cells && length(empty)) {
    message("Missing cells for: ", paste(empty, collapse = ", "), ".  \n",
            "Interpret type III hypotheses with care.")
  }
  if (attr(tc$terms, "intercept") != 0) {
    rdX <- cbind("(Intercept)" = 1, rdX)
  }
  L <- zap(t(pseudo_inverse_rect(X) %*% rdX))
  dimnames(L) <- list(colnames(rdX), colnames(X))
  map <- lapply(tc$labels, function(lab) which(attr(X, "assign") == match(lab, tc$labels)))
  names(map) <- tc$labels
  contains <- containing_terms(fit, tc)
  order_ <- attr(tc$terms, "order")
  for (term in tc$labels[order(order_, decreasing = TRUE)]) {
    bigger <- contains[[term]]
    if (length(bigger) && length(map[[term]])) {
      basis <- L[, unlist(map[bigger]), drop = FALSE]
      target <- L[, map[[term]], drop = FALSE]
      L[, map[[term]]] <- zap(stats::lm.fit(basis, target)$residuals)
    }
  }
  L <- L[colnames(X), , drop = FALSE]
  out <- lapply(map, function(cols) {
    h <- t(L[, cols, drop = FALSE])
    h[rowSums(abs(h)) > 1e-8, , drop = FALSE]
  })
  if (!treatment) {
    back <- zap(pseudo_inverse_rect(X) %*% Xorig)
    out <- lapply(out, function(h) h %*% back)
  }
  out
}

zap <- function(x) zapsmall(x)

# Moore-Penrose inverse of a rectangular matrix (through its SVD).
pseudo_inverse_rect <- function(X, tol = sqrt(.Machine$double.eps)) {
  s <- svd(X)
  keep <- s$d > tol * max(s$d)
  s$v[, keep, drop = FALSE] %*% (t(s$u[, keep, drop = FALSE]) / s$d[keep])
}

# X rebuilt with treatment contrasts for every factor, columns dropped to
# full rank (pivoted QR, as for the fit).
treatment_design <- function(fit, trms) {
  frame <- fit$frame
  factors <- names(which(vapply(frame, function(v) is.factor(v) || is.character(v), NA)))
  used <- intersect(factors, all.vars(trms))
  ctr <- stats::setNames(rep(list("contr.treatment"), length(used)), used)
  X <- stats::model.matrix(trms, data = frame, contrasts.arg = if (length(ctr)) ctr)
  qrX <- qr(X, tol = 1e-7, LAPACK = FALSE)
  keep <- qrX$pivot[seq_len(qrX$rank)]
  keep <- sort(keep)
  out <- X[, keep, drop = FALSE]
  attr(out, "assign") <- attr(X, "assign")[keep]
  out
}

# For each term, the terms that contain it: all its variables and more, and
# the same numeric variables.
containing_terms <- function(fit, tc) {
  factors <- attr(tc$terms, "factors")
  classes <- if (is_sums_fit(fit)) sums_data_classes(fit, tc$terms) else
    attr(attr(fit$frame, "terms"), "dataClasses")
  vars <- lapply(tc$labels, function(lab) rownames(factors)[factors[, lab] == 1])
  names(vars) <- tc$labels
  numerics <- lapply(vars, function(v) v[which(classes[v] == "numeric")])
  lapply(stats::setNames(tc$labels, tc$labels), function(term) {
    tc$labels[vapply(tc$labels, function(other) {
      all(vars[[term]] %in% vars[[other]]) &&
        length(setdiff(vars[[other]], vars[[term]])) > 0L &&
        setequal(numerics[[term]], numerics[[other]])
    }, NA)]
  })
}
