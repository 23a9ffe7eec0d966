# The row-free inputs of a linear mixed model from a table in a database:
# an LMM depends on its rows only through the weighted cross-products
# [Z X y]'W[Z X y], which are sums -- totals (X and y), sums grouped by the
# levels of each grouping factor (its block of Z with itself, with X and y)
# and grouped by the level pairs of two grouping factors (their block of
# Z'Z). This file writes those sums as GROUP BY queries and assembles what
# comes back into the "sums" list the engine takes, with the model's
# metadata (names, levels, terms) as lmm() builds them in memory. Queries:
#   1. one row to learn the columns' types;
#   2. the distinct tuples of the columns of each grouping factor and each
#      factor variable, the first of them also carrying the row counts
#      (before and after dropping rows with NULLs), the checks on weights and
#      computed columns, and the means used as shifts;
#   3. the totals (ff; unweighted xx and the 0/1 columns' counts for lmm()'s
#      checks), one GROUP BY per grouping factor (zz, fz) and one per
#      pair of grouping factors (zz), at most 1000 sums per query.
# All values are cast to double precision before any product; the response
# and the factor-free columns of X are centred by their means (literal
# constants in the SQL, reported as shifts) when X has an intercept.

#' Aggregates of a linear mixed model computed in a database
#'
#' Computes, by SQL in the database that holds the rows, everything
#' [lmm()] needs from the data of a model: the weighted sums of the
#' products of the columns of the fixed- and random-effects design matrices
#' and the response, in total, per level of each grouping factor and per
#' pair of levels of two grouping factors, with the model's column names,
#' levels and terms as the in-memory fit has them. Only these aggregates,
#' sized by the numbers of levels and level pairs, travel to R; nothing is
#' written to the database.
#'
#' Supported in the formula: numeric columns; character and logical columns
#' and `factor(column)` as factors (levels from the data, in the order
#' `factor()` gives, coded by `contrasts` or `getOption("contrasts")`);
#' interactions; arithmetic inside `I()`; `log()`, `exp()`, `sqrt()`,
#' `abs()` (translated by dbplyr; on SQLite load the math functions with
#' `RSQLite::initExtension(con, "math")`); `offset()`; random-effects terms
#' `(1 | g)`, `(x | g)`, `(x || g)`, crossed, nested `a/b` and `a:b`,
#' factor slopes such as `(0 + f | g)`, and the structured terms `us()`,
#' `diag()`, `cs()`, `ar1()` and `toep()`. Any other function is an error
#' naming the term: compute such a column upstream with `dplyr::mutate()`.
#' Rows with a NULL in a column the model uses are dropped (as
#' `na.action = na.omit`), and counted.
#'
#' @param formula A model formula as for [lmm()].
#' @param data A dbplyr lazy table (`dplyr::tbl(con, "events")`, possibly
#'   after `filter()` or `mutate()`) on any DBI connection, or an
#'   [sql_source()].
#' @param weights,offset `NULL`, a column name, or a quoted expression of
#'   columns (`quote(w)`, `quote(log(exposure))`), as [lmm()] takes them.
#' @param subset `NULL`, or a quoted R expression selecting rows
#'   (`quote(age > 30 & region != "north")`), translated to SQL by dbplyr;
#'   names that are not columns are taken from the formula's environment.
#' @param contrasts `NULL` or a named list of contrasts for factors of the
#'   fixed effects, as in [lmm()].
#' @param control [lmmControl()] settings: their `check.nlev.gtr.1`,
#'   `check.nobs.vs.nlev` and `check.nobs.vs.nRE` act as in `lmm()`.
#' @param verbose `TRUE` or 1 prints each query's purpose and elapsed time;
#'   2 also prints its SQL.
#' @return A list: `formula` (`||` expanded, as lmm() stores it), `n` (rows
#'   used), `n_dropped` (rows dropped for NULLs), `X_names`, `X_assign`,
#'   `X_contrasts` (of the fixed-effects matrix), `reterms` (per
#'   random-effects term: `group`, `term`, `factor` (a factor of length 0
#'   carrying the levels), `cnms`, and `structure` for structured terms),
#'   `flist` (the grouping factors as length-0 factors, with attribute
#'   `assign`), `has_weights`, `has_offset`, `x_shift`, `y_shift` (the
#'   constants subtracted from the columns of X and from the response minus
#'   offset before the sums are formed), `xlevels` (the levels of the
#'   factor variables, of the fixed effects and of random-effects columns,
#'   a named list), `sums` (`n`, `sum_log_w`, `p`,
#'   `ff`, `factors`, `pairs`, `xx`, `x_binary`: see [lmm_sums_fit()]) and
#'   `source` (a description of the data).
#' @seealso [sql_source()] for engines without a DBI driver.
#' @examplesIf requireNamespace("RSQLite", quietly = TRUE) && requireNamespace("dbplyr", quietly = TRUE) && requireNamespace("lme4", quietly = TRUE)
#' con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
#' data("sleepstudy", package = "lme4")
#' DBI::dbWriteTable(con, "sleep", sleepstudy)
#' tbl <- dplyr::tbl(con, "sleep")
#' inputs <- sql_model_inputs(Reaction ~ Days + (Days | Subject), tbl,
#'                            verbose = TRUE)
#' inputs$X_names
#' inputs$sums$ff
#' levels(inputs$flist$Subject)
#' DBI::dbDisconnect(con)
#' @export
sql_model_inputs <- function(formula, data, weights = NULL, offset = NULL,
                             subset = NULL, contrasts = NULL,
                             control = lmmControl(), verbose = 0L) {
  env <- parent.frame()
  if (missing(control)) control <- default_control("lmm")
  control <- as_fit_control(control, "lmm")
  verbose <- check_verbose(verbose)
  formula <- lmm_formula(formula, env)
  if ("." %in% all.vars(formula)) {
    stop("'.' in the formula ", deparse1(formula), " cannot be used with a ",
         "database table: name the columns", call. = FALSE)
  }
  if (!is.null(contrasts) && (!is.list(contrasts) || is.null(names(contrasts)) ||
                              any(!nzchar(names(contrasts))))) {
    stop("'contrasts' must be NULL or a named list such as ",
         "list(f = \"contr.sum\") (one element per factor), not ",
         describe_class(contrasts), call. = FALSE)
  }
  parsed <- parse_lmm_formula(formula)
  backend <- sql_backend(data)
  weights <- sql_argument_expr(weights, "weights")
  offset <- sql_argument_expr(offset, "offset")
  subset <- sql_argument_expr(subset, "subset")
  model <- sql_model_plan(parsed, backend, weights, offset, subset,
                          environment(formula), verbose)
  model <- sql_levels_and_counts(model, verbose)
  design <- sql_design(model, parsed, contrasts, control)
  sums <- sql_sums(model, design, verbose)
  flist <- design$flist
  reterms <- lapply(design$reterms, function(rt) rt[c("group", "term", "factor", "cnms",
                                                      if (!is.null(rt$structure)) "structure")])
  list(formula = with_rhs(formula, expand_double_bars(formula[[3L]])),
       n = model$n, n_dropped = model$n_dropped,
       X_names = design$X$names, X_assign = design$X$assign,
       X_contrasts = design$X$contrasts,
       reterms = reterms, flist = flist,
       has_weights = !is.null(weights), has_offset = length(model$offsets) > 0L,
       x_shift = design$x_shift, y_shift = design$y_shift,
       xlevels = design$xlevels, sums = sums, source = backend$label)
}

# `weights`, `offset` or `subset` as an expression: NULL, a column name (a
# string) or a quoted expression (a symbol or call).
sql_argument_expr <- function(x, what) {
  if (is.null(x)) return(NULL)
  if (is.character(x) && length(x) == 1L && !is.na(x)) return(as.name(x))
  if (is.symbol(x) || is.call(x)) return(x)
  if (inherits(x, "formula") && length(x) == 2L) return(x[[2L]])
  stop("'", what, "' must be NULL, a column name or a quoted expression such ",
       "as quote(w), not ", describe_class(x), call. = FALSE)
}

# Everything about the model that needs no level: the variables, the
# columns they use (checked to exist), their types (from one row), the SQL
# of the response, weights, offsets and numeric variables, the WHERE clauses.
sql_model_plan <- function(parsed, backend, weights, offset, subset, fenv, verbose) {
  columns <- backend$columns()
  fixed_tt <- stats::terms(parsed$fixed_formula)
  fixed_vars <- as.list(attr(fixed_tt, "variables"))[-1L]
  response <- fixed_vars[[attr(fixed_tt, "response")]]
  offsets <- fixed_vars[attr(fixed_tt, "offset")]
  fixed_vars <- fixed_vars[-c(attr(fixed_tt, "response"), attr(fixed_tt, "offset"))]
  bar_vars <- unlist(lapply(parsed$bars, function(bar) {
    as.list(attr(stats::terms(stats::as.formula(call("~", bar[[2L]]), env = baseenv())),
                 "variables"))[-1L]
  }), recursive = FALSE)
  group_cols <- lapply(parsed$bars, function(bar) group_columns(bar[[3L]], deparse1(bar)))
  # Every column the model uses, each named once, with where it is used.
  check_cols <- function(expr, where) sql_used_columns(expr, where, columns, backend$label)
  used <- c(check_cols(response, "the response"),
            unlist(lapply(c(fixed_vars, offsets), check_cols, where = "the fixed effects")),
            unlist(Map(function(bar, g) {
              c(check_cols(bar[[2L]], paste0("random-effects term (", deparse1(bar), ")")),
                check_cols(as.call(c(quote(c), lapply(g, as.name))),
                           paste0("random-effects term (", deparse1(bar), ")")))
            }, parsed$bars, group_cols)),
            if (!is.null(weights)) check_cols(weights, "'weights'"),
            if (!is.null(offset)) check_cols(offset, "'offset'"))
  used <- unique(used)
  ident <- backend$ident
  model <- list(backend = backend, fenv = fenv, used = used)
  model$where_subset <- if (is.null(subset)) NULL else
    sql_subset(subset, columns, backend, fenv)
  model$complete <- paste(paste(vapply(used, ident, ""), "IS NOT NULL"), collapse = " AND ")
  model$where_used <- paste(c(if (!is.null(model$where_subset)) paste0("(", model$where_subset, ")"),
                              model$complete), collapse = " AND ")
  types <- sql_column_types(backend, used, model$where_used, verbose)
  model$types <- types
  ctx <- list(backend = backend, types = types)
  resp_label <- deparse_var(response)
  if (is.symbol(response) && types[[as.character(response)]] != "numeric") {
    stop("response '", resp_label, "' must be numeric, not ",
         types[[as.character(response)]], call. = FALSE)
  }
  model$y_sql <- sql_numeric(response, ctx, resp_label)
  model$offsets <- c(
    lapply(offsets, function(o) sql_numeric(o[[2L]], ctx, deparse_var(o))),
    if (!is.null(offset)) list(sql_numeric(offset, ctx, "offset")))
  model$w_sql <- if (is.null(weights)) NULL else sql_numeric(weights, ctx, "weights")
  vars <- lapply(unique(c(fixed_vars, offsets, bar_vars)), sql_variable, ctx = ctx)
  names(vars) <- vapply(vars, `[[`, "", "label")
  model$vars <- vars
  model$group_cols <- group_cols
  model$response_label <- resp_label
  model$fixed_formula <- parsed$fixed_formula
  model
}

# The SQL of the `subset` expression: columns quoted, other names taken from
# the formula's environment (their values inlined), translated by dbplyr.
sql_subset <- function(subset, columns, backend, fenv) {
  vars <- setdiff(all.vars(subset), columns)
  values <- lapply(vars, function(v) {
    val <- get0(v, envir = fenv, inherits = TRUE)
    if (is.null(val) || !is.atomic(val)) {
      stop("variable '", v, "' used in 'subset' is neither a column of ",
           backend$label, " nor a value in the formula's environment",
           call. = FALSE)
    }
    val
  })
  cols <- intersect(all.vars(subset), columns)
  subs <- c(stats::setNames(values, vars),
            stats::setNames(lapply(cols, function(col) dbplyr::sql(backend$ident(col))), cols))
  expr <- do.call(substitute, list(subset, subs))
  as.character(dbplyr::translate_sql_(list(expr), con = backend$con, window = FALSE))
}

# The sets of columns whose distinct tuples are needed: one per grouping
# factor and one per factor variable, dropping a set contained in another
# (its tuples are a projection of the other's).
sql_level_sets <- function(model) {
  sets <- c(model$group_cols,
            lapply(Filter(function(v) v$kind == "factor", model$vars), `[[`, "column"))
  sets <- unique(lapply(sets, sort))
  keep <- vapply(seq_along(sets), function(i) {
    !any(vapply(seq_along(sets), function(j) {
      j != i && all(sets[[i]] %in% sets[[j]]) &&
        (length(sets[[j]]) > length(sets[[i]]) || j < i)
    }, TRUE))
  }, TRUE)
  sets[keep]
}

# Query 2: the distinct tuples of every level set, the first query also
# carrying the counts, the checks and the sums for the shifts.
sql_levels_and_counts <- function(model, verbose) {
  backend <- model$backend
  ident <- backend$ident
  sets <- sql_level_sets(model)
  # Rows where `subset` is NULL are counted as dropped (model.frame() turns
  # them into rows of NAs, which na.omit drops): this query reads the rows
  # where `subset` is not false, and "used" means subset and complete.
  complete <- paste0("(", model$where_used, ")")
  when <- function(x) paste0("SUM(CASE WHEN ", complete, " THEN ", x, " END)")
  count_if <- function(cond) paste0("SUM(CASE WHEN ", complete, " AND ", cond,
                                    " THEN 1 ELSE 0 END)")
  y_off <- sql_response_minus_offset(model)
  numeric_vars <- Filter(function(v) v$kind == "numeric", model$vars)
  stats <- c(n_subset = "COUNT(*)",
             n_used = paste0("SUM(CASE WHEN ", complete, " THEN 1 ELSE 0 END)"),
             y_sum = when(y_off),
             y_null = count_if(paste0("(", y_off, ") IS NULL")))
  if (length(numeric_vars)) {
    stats <- c(stats, stats::setNames(
      vapply(numeric_vars, function(v) count_if(paste0("(", v$sql, ") IS NULL")), ""),
      paste0("null_", seq_along(numeric_vars))))
  }
  if (!is.null(model$w_sql)) {
    stats <- c(stats,
               w_null = count_if(paste0("(", model$w_sql, ") IS NULL")),
               w_neg = count_if(paste0("(", model$w_sql, ") < 0")),
               w_zero = count_if(paste0("(", model$w_sql, ") = 0")),
               w_log = when(paste0("CASE WHEN (", model$w_sql, ") > 0 THEN ",
                                   dbplyr::translate_sql_(list(call("log", dbplyr::sql(model$w_sql))),
                                                          con = backend$con, window = FALSE),
                                   " END")))
  }
  # Sums of the factor-free terms of X, for their shifts.
  shift_sql <- sql_shift_terms(model)
  if (length(shift_sql)) {
    stats <- c(stats, stats::setNames(when(shift_sql), paste0("m", names(shift_sql))))
  }
  set1 <- sets[[1L]]
  keys <- vapply(set1, ident, "")
  sql <- paste0("SELECT ", paste(c(keys, paste0(stats, " AS mx_", names(stats))),
                                 collapse = ", "),
                " FROM ", backend$from,
                if (!is.null(model$where_subset)) {
                  paste0(" WHERE (", model$where_subset, ") OR (", model$where_subset,
                         ") IS NULL")
                },
                " GROUP BY ", paste(keys, collapse = ", "))
  res <- sql_run(backend, sql, paste0("the row counts, means and levels of ",
                                      paste(set1, collapse = ", ")), verbose)
  k <- length(keys)
  vals <- as.data.frame(lapply(res[-seq_len(k)], as.double))
  tot <- colSums(vals, na.rm = TRUE)
  names(tot) <- names(stats)
  used_rows <- vals[[2L]] > 0
  tuples <- list(stats::setNames(res[used_rows, seq_len(k), drop = FALSE], set1))
  n <- tot[["n_used"]]
  model$n <- n
  model$n_dropped <- tot[["n_subset"]] - n
  if (n == 0) {
    stop("no rows of ", backend$label, " are left after 'subset' and the removal ",
         "of rows with NULL", call. = FALSE)
  }
  sql_check_counts(model, tot, numeric_vars)
  model$y_mean <- tot[["y_sum"]] / n
  model$sum_log_w <- if (is.null(model$w_sql)) 0 else tot[["w_log"]]
  # Means of the factor-free fixed terms, by term number.
  model$term_means <- stats::setNames(tot[paste0("m", names(shift_sql))] / n,
                                      names(shift_sql))
  for (set in sets[-1L]) {
    keys <- vapply(set, ident, "")
    sql <- paste0("SELECT ", paste(keys, collapse = ", "), " FROM ", backend$from,
                  " WHERE ", model$where_used, " GROUP BY ", paste(keys, collapse = ", "))
    res <- sql_run(backend, sql, paste0("the levels of ", paste(set, collapse = ", ")),
                   verbose)
    tuples <- c(tuples, list(stats::setNames(res, set)))
  }
  model$level_sets <- sets
  model$tuples <- tuples
  model
}

# The SQL of the response minus the offsets.
sql_response_minus_offset <- function(model) {
  offsets <- unlist(model$offsets)
  paste(c(paste0("(", model$y_sql, ")"), if (length(offsets)) paste0("(", offsets, ")")),
        collapse = " - ")
}

# The SQL of each fixed term made only of numeric variables (the product of
# their SQL), named by the term's number; their means are the shifts of
# these columns of X.
sql_shift_terms <- function(model) {
  tt <- stats::terms(model$fixed_formula)
  fac <- attr(tt, "factors")
  out <- character()
  for (j in seq_along(attr(tt, "term.labels"))) {
    vars <- model$vars[rownames(fac)[fac[, j] != 0]]
    if (all(vapply(vars, function(v) v$kind == "numeric", TRUE))) {
      out[[as.character(j)]] <- paste0("(", vapply(vars, `[[`, "", "sql"), ")",
                                       collapse = " * ")
    }
  }
  out
}

# Errors for NULL (non-finite) computed values and bad weights, as lmm()
# stops on non-finite values and non-positive weights in memory.
sql_check_counts <- function(model, tot, numeric_vars) {
  if (tot[["y_null"]] > 0) {
    stop("the response '", model$response_label, "' (minus any offset) is NULL ",
         "(not finite) on ", tot[["y_null"]], " rows where its columns are not ",
         "NULL; fix or remove those rows", call. = FALSE)
  }
  for (i in seq_along(numeric_vars)) {
    bad <- tot[[paste0("null_", i)]]
    if (bad > 0) {
      stop("'", numeric_vars[[i]]$label, "' is NULL (not finite) on ", bad,
           " rows where its columns are not NULL; fix or remove those rows",
           call. = FALSE)
    }
  }
  if (!is.null(model$w_sql)) {
    if (tot[["w_null"]] > 0) {
      stop("'weights' is NULL (not finite) on ", tot[["w_null"]], " rows",
           call. = FALSE)
    }
    if (tot[["w_neg"]] > 0) {
      stop("'weights' must not be negative (", tot[["w_neg"]],
           " negative values)", call. = FALSE)
    }
    if (tot[["w_zero"]] > 0) {
      stop("zero 'weights' are not supported by a linear mixed model (", tot[["w_zero"]],
           " zero values; its likelihood holds log(w), and lme4 reports -Inf): ",
           "drop those rows from the data or use 'subset'", call. = FALSE)
    }
  }
  invisible(NULL)
}

# Query 3: the sums. Builds the columns of the rows subquery (f = X columns
# and the response, shifted; w; each factor's Z columns; the grouping
# columns as keys), then the totals, one GROUP BY per grouping factor and
# one per pair, and assembles the `sums` list.
sql_sums <- function(model, design, verbose) {
  backend <- model$backend
  X <- design$X
  p <- length(X$names)
  product <- function(parts) {
    parts <- parts[nzchar(parts)]
    if (length(parts) == 0L) "" else paste0("(", parts, ")", collapse = " * ")
  }
  # The f columns: "" marks the intercept's constant 1.
  f_sql <- vapply(seq_len(p), function(j) {
    x <- product(X$sql[[j]])
    if (nzchar(design$x_shift_sql[j])) x <- paste0(x, " - ", design$x_shift_sql[j])
    x
  }, "")
  y_sql <- sql_response_minus_offset(model)
  if (nzchar(design$y_shift_sql)) y_sql <- paste0(y_sql, " - ", design$y_shift_sql)
  f_sql <- c(f_sql, y_sql)
  f_alias <- ifelse(nzchar(f_sql), paste0("mx_f", seq_along(f_sql)), "")
  w_alias <- if (is.null(model$w_sql)) "" else "mx_w"
  # Z columns per grouping factor, its terms' columns in term order.
  assign <- attr(design$flist, "assign")
  factors <- lapply(seq_along(design$flist), function(k) {
    terms <- design$reterms[assign == k]
    z <- unlist(lapply(terms, function(rt) vapply(rt$.sql$z, product, "")))
    sql1 <- terms[[1L]]$.sql
    list(z = z, alias = ifelse(nzchar(z), paste0("mx_z", k, "_", seq_along(z)), ""),
         cols = sql1$cols, tuples = sql1$tuples, codes = sql1$codes,
         n_levels = nlevels(design$flist[[k]]))
  })
  key_alias <- function(cols) paste0("mx_k", match(cols, model$used))
  inner_cols <- c(stats::setNames(f_sql[nzchar(f_sql)], f_alias[nzchar(f_alias)]),
                  if (nzchar(w_alias)) c(mx_w = model$w_sql))
  rows_sql <- function(extra_cols, keys) {
    cols <- c(inner_cols, extra_cols)
    sel <- c(paste(cols, "AS", names(cols)),
             if (length(keys)) paste(vapply(keys, backend$ident, ""), "AS", key_alias(keys)))
    paste0("(SELECT ", paste(sel, collapse = ", "), " FROM ", backend$from,
           " WHERE ", model$where_used, ") AS mixedrs_rows")
  }
  sum_of <- function(...) {
    parts <- c(w_alias, ...)
    parts <- parts[nzchar(parts)]
    if (length(parts) == 0L) paste0("SUM(", sql_double(backend, "1"), ")")
    else paste0("SUM(", paste(parts, collapse = " * "), ")")
  }
  nf <- p + 1L
  # Totals: sum w f f' over the upper triangle.
  ut <- which(upper.tri(diag(nf), diag = TRUE), arr.ind = TRUE)
  ff_sums <- mapply(function(i, j) sum_of(f_alias[i], f_alias[j]), ut[, 1L], ut[, 2L])
  # In the same query, for lmm()'s rank and scale checks and the type I/II
  # hypotheses (R/sums-checks.R): the unweighted sums of g g', g = (1, X
  # shifted), and per column of X the number of values other than 0 and 1.
  g_alias <- c("", f_alias[seq_len(p)])
  plain_of <- function(a, b) {
    parts <- c(a, b)[nzchar(c(a, b))]
    if (length(parts) == 0L) paste0("SUM(", sql_double(backend, "1"), ")")
    else paste0("SUM(", paste(parts, collapse = " * "), ")")
  }
  xx_sums <- mapply(function(i, j) plain_of(g_alias[i], g_alias[j]), ut[, 1L], ut[, 2L])
  x_plain <- vapply(seq_len(p), function(j) product(X$sql[[j]]), "")
  b_alias <- sprintf("mx_b%d", which(nzchar(x_plain)))
  bin_sums <- vapply(b_alias, function(x) {
    paste0("SUM(CASE WHEN ", x, " = 0 OR ", x, " = 1 THEN 0 ELSE 1 END)")
  }, "", USE.NAMES = FALSE)
  tot <- sql_aggregate(backend, rows_sql(stats::setNames(x_plain[nzchar(x_plain)], b_alias),
                                         NULL), character(),
                       c(ff_sums, xx_sums, bin_sums),
                       "the totals of X and y (ff, xx)", verbose)
  ff <- matrix(0, nf, nf)
  ff[ut] <- tot$values[1L, seq_along(ff_sums)]
  ff[lower.tri(ff)] <- t(ff)[lower.tri(ff)]
  xx <- matrix(0, nf, nf)
  xx[ut] <- tot$values[1L, length(ff_sums) + seq_along(xx_sums)]
  xx[lower.tri(xx)] <- t(xx)[lower.tri(xx)]
  x_binary <- rep(TRUE, p)
  x_binary[nzchar(x_plain)] <- tot$values[1L, length(ff_sums) + length(xx_sums) +
                                              seq_along(bin_sums)] == 0
  # Per grouping factor: zz (upper triangle) and fz.
  out_factors <- lapply(seq_along(factors), function(k) {
    fk <- factors[[k]]
    q <- length(fk$z)
    utz <- which(upper.tri(diag(q), diag = TRUE), arr.ind = TRUE)
    zz_sums <- mapply(function(a, b) sum_of(fk$alias[a], fk$alias[b]), utz[, 1L], utz[, 2L])
    fz_grid <- expand.grid(i = seq_len(nf), a = seq_len(q))
    fz_sums <- mapply(function(i, a) sum_of(f_alias[i], fk$alias[a]), fz_grid$i, fz_grid$a)
    extra <- stats::setNames(fk$z[nzchar(fk$z)], fk$alias[nzchar(fk$alias)])
    res <- sql_aggregate(backend, rows_sql(extra, fk$cols), key_alias(fk$cols),
                         c(zz_sums, fz_sums),
                         paste0("the sums per level of ", names(design$flist)[k],
                                " (zz, fz)"), verbose)
    codes <- level_codes(res$keys, fk, key_alias(fk$cols), names(design$flist)[k])
    V <- by_code(res$values, codes, fk$n_levels)
    nz <- length(zz_sums)
    zz <- matrix(0, fk$n_levels, q * q)
    zz[, (utz[, 2L] - 1L) * q + utz[, 1L]] <- V[, seq_len(nz)]
    zz[, (utz[, 1L] - 1L) * q + utz[, 2L]] <- V[, seq_len(nz)]
    fz <- V[, nz + seq_along(fz_sums), drop = FALSE]
    list(n_levels = fk$n_levels, q = q, zz = as.vector(t(zz)), fz = as.vector(t(fz)))
  })
  # Per pair of grouping factors: zz over the co-occurring level pairs.
  pairs <- list()
  for (i in seq_along(factors)) for (j in seq_along(factors)) {
    if (j <= i) next
    fi <- factors[[i]]
    fj <- factors[[j]]
    grid <- expand.grid(a = seq_along(fi$z), b = seq_along(fj$z))
    zz_sums <- mapply(function(a, b) sum_of(fi$alias[a], fj$alias[b]), grid$a, grid$b)
    cols <- union(fi$cols, fj$cols)
    extra <- c(stats::setNames(fi$z[nzchar(fi$z)], fi$alias[nzchar(fi$alias)]),
               stats::setNames(fj$z[nzchar(fj$z)], fj$alias[nzchar(fj$alias)]))
    nm <- names(design$flist)
    res <- sql_aggregate(backend, rows_sql(extra, cols), key_alias(cols), zz_sums,
                         paste0("the sums per level pair of ", nm[i], " and ", nm[j],
                                " (zz)"), verbose)
    li <- level_codes(res$keys, fi, key_alias(fi$cols), nm[i])
    lj <- level_codes(res$keys, fj, key_alias(fj$cols), nm[j])
    key <- (li - 1) * fj$n_levels + lj
    ukey <- sort(unique(key))
    V <- rowsum(res$values, match(key, ukey), reorder = TRUE)
    pairs[[length(pairs) + 1L]] <- list(
      i = i, j = j, li = as.integer((ukey - 1) %/% fj$n_levels + 1),
      lj = as.integer((ukey - 1) %% fj$n_levels + 1), zz = as.vector(t(V)))
  }
  list(n = model$n, sum_log_w = model$sum_log_w, p = p, ff = ff,
       factors = out_factors, pairs = pairs, xx = xx, x_binary = x_binary)
}

# Runs SELECT keys, sums FROM rows GROUP BY keys, at most 1000 sums per
# query (SQLite returns at most 2000 columns, PostgreSQL 1664), rows of
# later queries matched to the first by their keys. Returns the keys (a
# data frame) and the sums (a double matrix, one row per group).
sql_aggregate <- function(backend, rows, keys, sums, purpose, verbose, chunk = 1000L) {
  chunks <- split(seq_along(sums), (seq_along(sums) - 1L) %/% chunk)
  values <- NULL
  first_keys <- NULL
  for (ci in seq_along(chunks)) {
    idx <- chunks[[ci]]
    sql <- paste0("SELECT ", paste(c(keys, paste0(sums[idx], " AS mx_s", idx)), collapse = ", "),
                  " FROM ", rows,
                  if (length(keys)) paste0(" GROUP BY ", paste(keys, collapse = ", ")))
    what <- if (length(chunks) > 1L) sprintf("%s, part %d of %d", purpose, ci, length(chunks)) else purpose
    res <- sql_run(backend, sql, what, verbose)
    if (ncol(res) != length(keys) + length(idx)) {
      stop("the query for ", what, " on ", backend$label, " returned ", ncol(res),
           " columns instead of ", length(keys) + length(idx), call. = FALSE)
    }
    k <- length(keys)
    key_df <- stats::setNames(res[seq_len(k)], keys)
    vals <- matrix(vapply(res[k + seq_along(idx)], as.double, double(nrow(res))),
                   nrow(res), length(idx))
    if (anyNA(vals)) {
      stop("the query for ", what, " on ", backend$label, " returned NULL sums",
           call. = FALSE)
    }
    if (ci == 1L) {
      first_keys <- key_df
      values <- matrix(0, nrow(res), length(sums))
      values[, idx] <- vals
    } else {
      m <- tuple_match(key_df, first_keys, keys)
      if (anyNA(m) || nrow(res) != nrow(first_keys)) {
        stop("the groups of ", what, " differ from those of its first part: ",
             "did the table change during the fit?", call. = FALSE)
      }
      values[m, idx] <- vals
    }
  }
  list(keys = first_keys, values = values)
}

# The level code of each row of a grouped result (its key columns
# `aliases`, one per column of the factor's level set).
level_codes <- function(keys, fk, aliases, name) {
  R <- stats::setNames(keys[aliases], fk$cols)
  m <- tuple_match(R, fk$tuples, fk$cols)
  if (anyNA(m)) {
    stop("the sums per level of ", name, " have a level the level query did ",
         "not return: did the table change during the fit?", call. = FALSE)
  }
  fk$codes[m]
}

# The rows of `values` summed by level code into an L-row matrix.
by_code <- function(values, codes, L) {
  out <- matrix(0, L, ncol(values))
  rs <- rowsum(values, codes, reorder = TRUE)
  out[as.integer(rownames(rs)), ] <- rs
  out
}
