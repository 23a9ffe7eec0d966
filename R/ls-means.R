# Least-squares means of the factor terms of a linear mixed model, lmerTest's
# ls_means(): the reference grid crosses the levels of every factor of the
# fixed effects, with each numeric column at its mean over the rows used;
# the LS-mean of a level (combination) of a factor term is the average of
# the grid's model-matrix rows at that level, l = mean of x_g over those
# rows, estimated as l'beta with a t test of l'beta = 0 and a confidence
# interval (Satterthwaite's or Kenward-Roger's df, R/ddf.R). Pairwise
# differences of the LS-means use the differences of the l's. A contrast
# not estimable in a rank-deficient model (l not orthogonal to the null
# space of the full model matrix) is NA.

#' Least-squares means of the factor terms
#'
#' lmerTest's `ls_means()` (also `lsmeansLT()`) and `difflsmeans()` for a
#' linear mixed model: the least-squares mean of each level (or combination
#' of levels) of each fixed-effects term made only of factors, with its
#' standard error, t test against 0 and confidence interval, or with
#' `pairwise = TRUE` (`difflsmeans()`) the differences of every pair of them.
#'
#' The LS-means are taken over the grid that crosses the levels of all the
#' model's factors, with every numeric variable at its mean over the rows
#' used (a transformed variable such as `log(x)` at the mean of `log(x)`),
#' each level of a term averaging the model-matrix rows of the grid at that
#' level with equal weights; this is lmerTest's definition. Character and
#' logical variables count as factors. The `emmeans` package works on
#' `lmm()` fits too, with its own grids and weights.
#'
#' @param model A linear mixed model fitted by [lmm()] (an `lme4::lmer()`
#'   fit is handed to lmerTest's functions).
#' @param which A character vector of factor terms (term labels such as
#'   `"A"` or `"A:B"`); default all of them.
#' @param level The confidence level of the intervals.
#' @param ddf `"Satterthwaite"` or `"Kenward-Roger"` (REML fits).
#' @param pairwise Logical: the pairwise differences instead of the means.
#' @param ... Not used; an argument given here is an error.
#' @return A data frame of class `"ls_means"`, one row per level or pair,
#'   with columns `Estimate`, `Std. Error`, `df`, `t value`, `lower`, `upper`
#'   and `Pr(>|t|)` (NA where the mean or difference is not estimable in a
#'   rank-deficient model), and the contrast matrices, on all the columns of
#'   the model matrix including those dropped as aliased, in attribute
#'   `"hypotheses"` ([show_tests()]).
#'   `as.data.frame()` adds the columns `term` and `levels`.
#' @seealso [contest()] for other contrasts, [step()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' cake <- lme4::cake
#' fit <- lmm(angle ~ recipe * temperature + (1 | recipe:replicate), cake)
#' ls_means(fit, which = "recipe")
#' difflsmeans(fit, which = "recipe", ddf = "Kenward-Roger")
#' @export
ls_means <- function(model, which = NULL, level = 0.95,
                     ddf = c("Satterthwaite", "Kenward-Roger"), pairwise = FALSE, ...) {
  UseMethod("ls_means")
}

#' @rdname ls_means
#' @export
lsmeansLT <- function(model, which = NULL, level = 0.95,
                      ddf = c("Satterthwaite", "Kenward-Roger"), pairwise = FALSE, ...) {
  UseMethod("ls_means")
}

#' @rdname ls_means
#' @export
difflsmeans <- function(model, which = NULL, level = 0.95,
                        ddf = c("Satterthwaite", "Kenward-Roger"), ...) {
  if (is_lmerTest_model(model)) return(call_lmerTest(match.call(), "difflsmeans", parent.frame()))
  ls_means(model, which = which, level = level, ddf = ddf, pairwise = TRUE, ...)
}

#' @rdname ls_means
#' @export
ls_means.default <- function(model, which = NULL, level = 0.95,
                             ddf = c("Satterthwaite", "Kenward-Roger"), pairwise = FALSE, ...) {
  if (is_lmerTest_model(model)) {
    call <- match.call()
    call$model <- model
    return(call_lmerTest(call, "ls_means", parent.frame()))
  }
  stop("ls_means() and difflsmeans() take a linear mixed model fitted by lmm(), not ",
       describe_class(model), call. = FALSE)
}

#' @rdname ls_means
#' @export
ls_means.glmm <- function(model, which = NULL, level = 0.95,
                          ddf = c("Satterthwaite", "Kenward-Roger"), pairwise = FALSE, ...) {
  stop("ls_means() and difflsmeans() take a linear mixed model fitted by lmm(), not a ",
       "glmm() fit; the emmeans package gives marginal means of a glmm() fit", call. = FALSE)
}

#' @rdname ls_means
#' @export
ls_means.lmm <- function(model, which = NULL, level = 0.95,
                         ddf = c("Satterthwaite", "Kenward-Roger"), pairwise = FALSE, ...) {
  check_no_dots(..., caller = "ls_means()")
  ddf <- match.arg(ddf)
  check_flag(pairwise, "pairwise", "ls_means()")
  check_level(level, "ls_means()")
  require_rows(model, "ls_means()")
  hypotheses <- ls_means_contrasts(model, which, pairwise)
  columns <- c("Estimate", "Std. Error", "df", "t value", "lower", "upper", "Pr(>|t|)")
  means <- if (length(hypotheses)) {
    parts <- ddf_parts(model, ddf)
    null_space <- right_null_space(full_fixed_matrix(model))
    do.call(rbind, lapply(hypotheses, function(L) {
      # (a difference of two means that are not estimable may be)
      L <- estimable_contrasts(L, null_space, colnames(model$X))
      rows <- lapply(seq_len(nrow(L)), function(i) {
        if (anyNA(L[i, ])) {
          return(as.data.frame(as.list(stats::setNames(rep(NA_real_, 7L), columns)),
                               check.names = FALSE))
        }
        contrast_t_row(parts, L[i, ], 0, TRUE, level)
      })
      structure(do.call(rbind, rows), row.names = rownames(L))
    }))
  } else {
    as.data.frame(matrix(numeric(0), 0L, 7L, dimnames = list(NULL, columns)),
                  check.names = FALSE)
  }
  if (length(hypotheses)) rownames(means) <- unlist(lapply(hypotheses, rownames))
  structure(means, response = deparse1(stats::formula(model)[[2L]]), confidence_level = level,
            ddf = ddf, hypotheses = hypotheses, heading = "Least Squares Means table:\n",
            class = c("mixedrs_ls_means", "ls_means", "data.frame"))
}

# The LS-means contrasts of the factor terms in `which` (default: all), or
# with `pairwise` their pairwise differences, one matrix per term with a row
# per level (combination) or pair and a column per column of the full model
# matrix (aliased columns included), as lmerTest's show_tests() shows them.
ls_means_contrasts <- function(model, which, pairwise) {
  tt <- stats::delete.response(stats::terms(model))
  frame <- model$frame
  variables <- vapply(as.list(attr(tt, "variables"))[-1L], deparse1, "")
  labels <- attr(tt, "term.labels")
  factors <- attr(tt, "factors")
  is_factor <- vapply(frame[variables], function(x) is.factor(x) || is.character(x) ||
                        is.logical(x), NA)
  factor_terms <- labels[vapply(labels, function(term) {
    all(is_factor[rownames(factors)[factors[, term] > 0]])
  }, NA)]
  if (is.null(which)) {
    which <- factor_terms
  } else if (!is.character(which) || anyNA(which) || !all(which %in% factor_terms)) {
    stop("ls_means(): 'which' must name terms of the model made only of factors (",
         if (length(factor_terms)) paste(sQuote(factor_terms, FALSE), collapse = ", ") else
           "it has none", "), not ",
         paste(sQuote(setdiff(as.character(which), factor_terms), FALSE), collapse = ", "),
         call. = FALSE)
  }
  if (length(which) == 0L) return(stats::setNames(list(), character(0)))
  levels <- lapply(frame[variables[is_factor]], function(x) {
    if (is.factor(x)) levels(x) else if (is.logical(x)) c("FALSE", "TRUE") else sort(unique(x))
  })
  grid <- expand.grid(levels, KEEP.OUT.ATTRS = FALSE, stringsAsFactors = TRUE)
  for (v in variables[!is_factor]) {
    x <- frame[[v]]
    grid[[v]] <- if (is.matrix(x)) {
      matrix(colMeans(x), nrow(grid), ncol(x), byrow = TRUE, dimnames = list(NULL, colnames(x)))
    } else {
      rep(mean(x), nrow(grid))
    }
  }
  grid_X <- model_matrix_of_frame(tt, grid, attr(model$X, "contrasts"))
  grid_keys <- lapply(grid[variables[is_factor]], as.character)
  stats::setNames(lapply(which, function(term) {
    # the term's level combinations, the first variable varying fastest,
    # named as model.matrix() names the columns of `~ 0 + term`
    in_term <- rownames(factors)[factors[, term] > 0]
    combos <- expand.grid(levels[in_term], KEEP.OUT.ATTRS = FALSE, stringsAsFactors = FALSE)
    at <- do.call(paste, c(unname(grid_keys[in_term]), sep = "\r"))
    indicator <- outer(at, do.call(paste, c(unname(combos), sep = "\r")), "==") + 0
    colnames(indicator) <- do.call(paste, c(unname(Map(paste0, in_term, combos)), sep = ":"))
    L <- t(indicator) %*% grid_X / colSums(indicator)
    if (pairwise) L <- pairwise_differences(L)
    attr(L, "assign") <- attr(L, "contrasts") <- NULL
    L
  }), which)
}

# The contrasts as tested: the columns `kept` of the fit's coefficients
# only, and NA where a contrast is not estimable (not orthogonal to
# `null_space`, that of the full model matrix, which holds the columns
# dropped as aliased).
estimable_contrasts <- function(L, null_space, kept) {
  if (ncol(null_space)) L[rowSums(abs(L %*% null_space)) >= sqrt(.Machine$double.eps), ] <- NA
  L[, kept, drop = FALSE]
}

# The fit's fixed-effects model matrix with every column, those dropped as
# aliased included (the "assign" attribute maps them to the terms).
full_fixed_matrix <- function(model) {
  model_matrix_of_frame(stats::delete.response(stats::terms(model)), model$frame,
                        attr(model$X, "contrasts"))
}

# The model matrix of terms `tt` over `frame`, whose columns are the
# variables as the model frame holds them (log(x) as a column "log(x)").
model_matrix_of_frame <- function(tt, frame, contrasts) {
  variables <- vapply(as.list(attr(tt, "variables"))[-1L], deparse1, "")
  data <- frame[variables]
  attr(data, "terms") <- tt
  stats::model.matrix(tt, data, contrasts.arg = contrasts)
}

# An orthonormal basis of the right null space of A (none when A has full
# column rank): the right singular vectors beyond A's numerical rank.
right_null_space <- function(A) {
  s <- svd(A, nu = 0L, nv = ncol(A))
  rank <- sum(s$d > 1e-8 * s$d[1L])
  s$v[, setdiff(seq_len(ncol(A)), seq_len(rank)), drop = FALSE]
}

# The differences of every pair of rows of L ("a - b"), in lmerTest's order.
pairwise_differences <- function(L) {
  pairs <- utils::combn(nrow(L), 2L)
  D <- L[pairs[1L, ], , drop = FALSE] - L[pairs[2L, ], , drop = FALSE]
  rownames(D) <- paste(rownames(L)[pairs[1L, ]], rownames(L)[pairs[2L, ]], sep = " - ")
  D
}

#' @exportS3Method print mixedrs_ls_means
print.mixedrs_ls_means <- function(x, digits = max(getOption("digits") - 2L, 3L),
                                   signif.stars = getOption("show.signif.stars"), ...) {
  cat(attr(x, "heading"), sep = "\n")
  shown <- as.data.frame(unclass(x), check.names = FALSE, row.names = rownames(x))
  if (nrow(shown)) shown$df <- round(shown$df, 1L)
  stats::printCoefmat(shown, digits = digits, signif.stars = signif.stars, has.Pvalue = TRUE,
                      cs.ind = c(1:2, 5:6), tst.ind = 4L, ...)
  cat(paste0("\n  Confidence level: ", format(100 * attr(x, "confidence_level"), digits = 2),
             "%\n"))
  cat("  Degrees of freedom method:", attr(x, "ddf"), "\n")
  invisible(x)
}

#' @exportS3Method as.data.frame mixedrs_ls_means
as.data.frame.mixedrs_ls_means <- function(x, ..., add_levels = TRUE) {
  out <- as.data.frame(unclass(x)[names(x)], check.names = FALSE, row.names = rownames(x))
  if (!add_levels) return(out)
  hypotheses <- attr(x, "hypotheses")
  terms <- rep(names(hypotheses), vapply(hypotheses, nrow, 1L))
  levels <- as.character(unlist(Map(level_labels, names(hypotheses),
                                    lapply(hypotheses, rownames)), use.names = FALSE))
  cbind(term = terms, levels = levels, out, stringsAsFactors = FALSE)
}

# The levels named by the rows of a term's contrasts ("A1:B2", "A1 - A2"),
# without the variables' names ("1:2", "1 - 2").
level_labels <- function(term, rows) {
  vars <- strsplit(term, ":", fixed = TRUE)[[1L]]
  strip <- function(label) {
    parts <- strsplit(label, ":", fixed = TRUE)[[1L]]
    paste(substring(parts, nchar(vars) + 1L), collapse = ":")
  }
  vapply(rows, function(row) {
    paste(vapply(strsplit(row, " - ", fixed = TRUE)[[1L]], strip, ""), collapse = " - ")
  }, "", USE.NAMES = FALSE)
}

#' @rdname ls_means
#' @param x An `"ls_means"` table.
#' @param y Not used (an error if given).
#' @param mult Logical: one plot with a panel per term (`TRUE`) or one plot
#'   per term.
#' @details `plot()` draws each LS-mean (or difference) as a bar with its
#'   confidence interval, coloured by its p-value, with ggplot2; `which`
#'   selects terms there too. It prints the plots and returns them
#'   invisibly.
#' @exportS3Method plot mixedrs_ls_means
plot.mixedrs_ls_means <- function(x, y = NULL, which = NULL, mult = TRUE, ...) {
  if (!requireNamespace("ggplot2", quietly = TRUE)) {
    stop("plot() of LS-means draws with ggplot2, which is not installed", call. = FALSE)
  }
  if (!is.null(y)) stop("plot() of LS-means does not use 'y'", call. = FALSE)
  check_no_dots(..., caller = "plot() of LS-means")
  check_flag(mult, "mult", "plot()")
  d <- as.data.frame(x)
  if (!is.null(which)) {
    if (!is.character(which) || !all(which %in% d$term)) {
      stop("plot(): 'which' must name terms of the table (",
           paste(sQuote(unique(d$term), FALSE), collapse = ", "), ")", call. = FALSE)
    }
    d <- d[d$term %in% which, , drop = FALSE]
  }
  if (nrow(d) == 0L) stop("plot(): the table has no LS-means to plot", call. = FALSE)
  d$levels <- factor(d$levels, unique(d$levels))
  d$term <- factor(d$term, unique(d$term))
  d$significance <- cut(d$`Pr(>|t|)`, c(-Inf, 0.001, 0.01, 0.05, Inf), right = FALSE,
                        labels = c("p-value < 0.001", "p-value < 0.01", "p-value < 0.05", "NS"))
  .data <- ggplot2::.data
  bars <- function(part) {
    ggplot2::ggplot(part, ggplot2::aes(x = .data$levels, y = .data$Estimate,
                                       fill = .data$significance)) +
      ggplot2::geom_col() +
      ggplot2::geom_errorbar(ggplot2::aes(ymin = .data$lower, ymax = .data$upper), width = 0.1) +
      ggplot2::scale_fill_manual(values = c("p-value < 0.001" = "red", "p-value < 0.01" = "orange",
                                            "p-value < 0.05" = "yellow", NS = "grey"),
                                 name = "Significance") +
      ggplot2::labs(x = NULL, y = attr(x, "response")) +
      ggplot2::theme(axis.text.x = ggplot2::element_text(angle = 90, hjust = 1, vjust = 0.4))
  }
  if (mult && nlevels(d$term) > 1L) {
    plots <- bars(d) + ggplot2::facet_wrap(~term, scales = "free")
    print(plots)
  } else {
    plots <- lapply(split(d, d$term), function(part) {
      bars(part) + ggplot2::labs(x = as.character(part$term[1L]))
    })
    for (p in plots) print(p)
  }
  invisible(plots)
}
