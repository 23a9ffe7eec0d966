# glmm() on a table in a database, by exact compression. A binomial or
# Poisson GLMM's likelihood depends on the rows only through sums over rows
# that share their linear predictor, i.e. the same values of every column
# the formula's right-hand side uses (the covariate pattern and the group
# levels): with successes s_i of m_i trials, the binomial kernel
# sum_i [s_i log(mu) + (m_i - s_i) log(1 - mu)] equals
# S log(mu) + (M - S) log(1 - mu) with S = sum s_i, M = sum m_i; with counts
# y_i and offsets o_i, the Poisson kernel sum_i [y_i (eta + o_i) - exp(eta +
# o_i)] equals Y (eta + O) - exp(eta + O) with Y = sum y_i and
# O = log(sum exp(o_i)) (a summed exposure). So the database groups the rows
# by pattern (one GROUP BY), the patterns travel to R, and glmm() fits them in
# memory: the same estimates, variance components and standard errors.
# The likelihood of the rows differs from the patterns' by a constant, which
# the fit keeps and adds back (logLik, AIC/BIC, deviance, likelihood-ratio
# tests): binomial sum_i lchoose(m_i, s_i) - sum_k lchoose(M_k, S_k);
# Poisson sum_i [y_i o_i - lgamma(y_i + 1)] - sum_k [Y_k O_k - lgamma(Y_k + 1)]
# (the sums over rows from the distribution of the response values, a second
# small GROUP BY). A compressed table larger than a memory budget is an
# error that says how many patterns there are.

# TRUE when `e` is a linear function of columns without a constant term
# (columns, numbers only as factors, +, -, *, /, parentheses): then the
# expression of the columns' sums is the sum of the expression.
is_linear_homogeneous <- function(e) {
  if (is.symbol(e)) return(TRUE)
  if (!is.call(e) || !is.symbol(e[[1L]])) return(FALSE)
  fn <- as.character(e[[1L]])
  args <- as.list(e)[-1L]
  is_const <- function(x) is.numeric(x) && length(x) == 1L && is.finite(x)
  switch(fn,
    "(" = , "I" = length(args) == 1L && is_linear_homogeneous(args[[1L]]),
    "+" = , "-" = all(vapply(args, is_linear_homogeneous, TRUE)),
    "*" = length(args) == 2L &&
      ((is_const(args[[1L]]) && is_linear_homogeneous(args[[2L]])) ||
         (is_const(args[[2L]]) && is_linear_homogeneous(args[[1L]]))),
    "/" = length(args) == 2L && is_const(args[[2L]]) && args[[2L]] != 0 &&
      is_linear_homogeneous(args[[1L]]),
    FALSE)
}

# The rows of `data` grouped by covariate pattern, as a data frame glmm()
# fits in memory: the columns of the formula's right-hand side (and those of
# offsets it cannot sum) as they are; the response's columns summed (a
# column response as the proportion S / M, with `weights` naming the trials
# column); a Poisson offset `log(col)` or `col` by its summed exposure. With
# the counts of rows used and dropped and the likelihood's and deviance's
# constants.
sql_compressed_rows <- function(formula, data, family, weights, offset, subset,
                                budget_mb, verbose) {
  backend <- sql_backend(data)
  ident <- backend$ident
  columns <- backend$columns()
  if ("." %in% all.vars(formula)) {
    stop("'.' in the formula ", deparse1(formula), " cannot be used with a ",
         "database table: name the columns", call. = FALSE)
  }
  weights <- sql_argument_expr(weights, "weights")
  offset <- sql_argument_expr(offset, "offset")
  subset <- sql_argument_expr(subset, "subset")
  check_cols <- function(expr, where) sql_used_columns(expr, where, columns, backend$label)
  lhs <- formula[[2L]]
  rhs <- formula[[3L]]
  offsets <- c(formula_offsets(rhs), if (!is.null(offset)) list(offset))
  rhs_cols <- check_cols(strip_offsets(rhs), "the model's right-hand side")
  lhs_cols <- check_cols(lhs, "the response")
  check_cols(as.call(c(quote(c), offsets)), "the offset")
  w_cols <- if (!is.null(weights)) check_cols(weights, "'weights'")
  if (family == "poisson" && !is.null(weights)) {
    stop("prior weights with the Poisson family are not available for a database ",
         "table (the weighted counts do not compress to counts); pull the rows ",
         "into R with dplyr::collect() to fit them", call. = FALSE)
  }
  # A Poisson offset log(col) or col used nowhere else is summed as an
  # exposure; any other offset is part of the pattern.
  off_col <- NULL
  if (family == "poisson" && length(offsets) == 1L) {
    o <- offsets[[1L]]
    inner <- if (is_call_to(o, "log") && length(o) == 2L) o[[2L]] else o
    if (is.symbol(inner) && !as.character(inner) %in% c(rhs_cols, lhs_cols)) {
      off_col <- as.character(inner)
      off_log <- !identical(inner, o)
    }
  }
  pattern <- unique(c(rhs_cols, if (is.null(off_col)) unlist(lapply(offsets, all.vars))))
  both <- intersect(pattern, c(lhs_cols, w_cols))
  if (length(both)) {
    stop("column ", quote_names(both), " is used both in the ",
         if (length(intersect(both, lhs_cols))) "response" else "weights",
         " and on the right-hand side (or in an offset) of the formula; on a ",
         "database table the response and weights are summed over the rows of ",
         "each covariate pattern, so compute the column upstream with ",
         "dplyr::mutate()", call. = FALSE)
  }
  used <- unique(c(pattern, lhs_cols, w_cols, off_col))
  where_subset <- if (is.null(subset)) NULL else
    sql_subset(subset, columns, backend, environment(formula))
  complete <- paste(c(if (!is.null(where_subset)) paste0("(", where_subset, ")"),
                      paste(vapply(used, ident, ""), "IS NOT NULL")), collapse = " AND ")
  types <- sql_column_types(backend, used, complete, verbose)
  ctx <- list(backend = backend, types = types)
  resp <- sql_glmm_response(lhs, family, weights, ctx, complete, verbose)
  when <- function(x) paste0("SUM(CASE WHEN ", complete, " THEN ", x, " END)")
  count_if <- function(cond) {
    paste0("SUM(CASE WHEN ", complete, " AND (", cond, ") THEN 1 ELSE 0 END)")
  }
  aggs <- c(rows = "COUNT(*)",
            used = paste0("SUM(CASE WHEN ", complete, " THEN 1 ELSE 0 END)"),
            stats::setNames(vapply(resp$sums, when, ""), names(resp$sums)),
            stats::setNames(vapply(resp$bad, count_if, ""), names(resp$bad)))
  off_sql <- NULL
  if (!is.null(off_col)) {
    col_sql <- sql_numeric(as.name(off_col), ctx, off_col)
    off_sql <- if (off_log) {
      as.character(dbplyr::translate_sql_(list(call("log", dbplyr::sql(col_sql))),
                                          con = backend$con, window = FALSE))
    } else col_sql
    exposure <- if (off_log) col_sql else
      as.character(dbplyr::translate_sql_(list(call("exp", dbplyr::sql(col_sql))),
                                          con = backend$con, window = FALSE))
    aggs <- c(aggs, exposure = when(exposure),
              y_offset = when(paste0("(", resp$y_sql, ") * (", off_sql, ")")),
              bad_exposure = count_if(paste0(col_sql, if (off_log) " <= 0" else " IS NULL")))
  }
  keys <- vapply(pattern, ident, "")
  budget_bytes <- budget_mb * 2^20
  per_pattern <- 8 * (length(pattern) + length(aggs))
  max_rows <- max(1, floor(budget_bytes / per_pattern))
  sql <- dbplyr::sql_query_select(
    backend$con,
    select = dbplyr::sql(paste(c(keys, paste0(aggs, " AS ", vapply(paste0("mx_", names(aggs)), ident, ""))),
                               collapse = ", ")),
    from = dbplyr::sql(backend$from),
    where = if (!is.null(where_subset)) {
      dbplyr::sql(paste0("(", where_subset, ") OR (", where_subset, ") IS NULL"))
    },
    group_by = dbplyr::sql(paste(keys, collapse = ", ")),
    limit = max_rows + 1)
  res <- sql_run(backend, as.character(sql),
                 paste0("the rows grouped by ", paste(pattern, collapse = ", ")), verbose)
  if (nrow(res) > max_rows) {
    sql_pattern_budget_error(backend, pattern, keys, complete, per_pattern, budget_mb,
                             verbose)
  }
  k <- length(keys)
  vals <- as.data.frame(lapply(res[-seq_len(k)], as.double))
  names(vals) <- names(aggs)
  tot <- colSums(vals, na.rm = TRUE)
  n <- tot[["used"]]
  if (n == 0) {
    stop("no rows of ", backend$label, " are left after 'subset' and the removal ",
         "of rows with NULL", call. = FALSE)
  }
  for (b in names(resp$bad)) {
    if (tot[[b]] > 0) {
      stop(format(tot[[b]], big.mark = ","), " rows of ", backend$label, " ",
           resp$bad_message[[b]], call. = FALSE)
    }
  }
  if (!is.null(off_col) && tot[["bad_exposure"]] > 0) {
    stop(format(tot[["bad_exposure"]], big.mark = ","), " rows of ", backend$label,
         " have ", if (off_log) "a value <= 0 in" else "an infinite exp() of",
         " the offset column '", off_col, "'", call. = FALSE)
  }
  keep <- vals$used > 0
  frame <- res[keep, seq_len(k), drop = FALSE]
  names(frame) <- pattern
  vals <- vals[keep, , drop = FALSE]
  frame <- cbind(frame, resp$columns(vals))
  local_formula <- formula
  local_formula[[2L]] <- resp$lhs
  rows_offset <- FALSE
  if (!is.null(off_col)) {
    frame[[off_col]] <- if (off_log) vals$exposure else log(vals$exposure)
  } else if (family == "poisson") {
    # Each pattern's count is the sum of its rows' counts: its mean is their
    # number times a row's, an offset log(rows) more.
    frame$.mixedrs_log_rows <- log(vals$used)
    rows_offset <- TRUE
  }
  rownames(frame) <- NULL
  # The constants: the rows' log-likelihood and deviance minus the patterns'.
  dist <- resp$distribution(backend, verbose)
  consts <- resp$constants(dist, vals)
  if (family == "poisson") {
    # sum_i y_i o_i - sum_k Y_k O_k, O_k the pattern's offset (its summed
    # exposure, or its rows' common offset plus log(rows), whose first part
    # cancels).
    extra <- if (!is.null(off_col)) {
      sum(vals$y_offset) - sum(vals$y * log(vals$exposure))
    } else {
      -sum(vals$y * log(vals$used))
    }
    consts$loglik <- consts$loglik + extra
    consts$deviance <- consts$deviance - 2 * extra
  }
  list(frame = frame, formula = local_formula, weights = resp$weights,
       rows_offset = rows_offset, n = n, n_dropped = tot[["rows"]] - n,
       loglik_offset = consts$loglik, deviance_offset = consts$deviance,
       source = backend$label)
}

# The offset() terms of a right-hand side (their arguments).
formula_offsets <- function(rhs) {
  if (is_call_to(rhs, "offset")) return(list(rhs[[2L]]))
  if (is.call(rhs) && (is_call_to(rhs, "+") || is_call_to(rhs, "("))) {
    return(unlist(lapply(as.list(rhs)[-1L], formula_offsets), recursive = FALSE))
  }
  list()
}

# The right-hand side without its offset() terms.
strip_offsets <- function(rhs) {
  if (is_call_to(rhs, "offset")) return(NULL)
  if (is_call_to(rhs, "+") && length(rhs) == 3L) {
    a <- strip_offsets(rhs[[2L]])
    b <- strip_offsets(rhs[[3L]])
    if (is.null(a)) return(b)
    if (is.null(b)) return(a)
    return(call("+", a, b))
  }
  rhs
}

# The error for a compressed table above the budget: how many patterns.
sql_pattern_budget_error <- function(backend, pattern, keys, complete, per_pattern,
                                     budget_mb, verbose) {
  sql <- paste0("SELECT COUNT(*) AS n FROM (SELECT ", paste(keys, collapse = ", "),
                " FROM ", backend$from, " WHERE ", complete, " GROUP BY ",
                paste(keys, collapse = ", "), ") AS mixedrs_patterns")
  n <- as.double(sql_run(backend, sql, "the number of covariate patterns", verbose)[[1L]])
  stop("the rows of ", backend$label, " fall into ", format(n, big.mark = ","),
       " distinct covariate patterns of (", paste(pattern, collapse = ", "), "): about ",
       format(round(n * per_pattern / 2^20), big.mark = ","), " MB in R, more than the ",
       "budget of ", format(budget_mb, big.mark = ","), " MB ",
       "(glmmControl(table.budget.mb = )). A glmm() on a table is fitted to the rows ",
       "grouped by the values of every column on the formula's right-hand side, so ",
       "columns with many distinct values (continuous covariates) leave little to ",
       "compress: round or bin them upstream with dplyr::mutate(), or raise the budget",
       call. = FALSE)
}

# The response of a binomial or Poisson model on a table: the per-row SQL
# sums (`sums`, the first being the successes or counts), the checks (`bad`:
# SQL conditions that must hold on no row, with messages), the compressed
# response columns, the name of a weights column, and the likelihood's
# constants from the distribution of the per-row values.
sql_glmm_response <- function(lhs, family, weights, ctx, complete, verbose) {
  backend <- ctx$backend
  label <- deparse1(lhs)
  not_whole <- function(x) paste0("CAST(", x, " AS BIGINT) <> ", x)
  if (family == "poisson") {
    if (!is_linear_homogeneous(lhs)) {
      stop("the response '", label, "' of a Poisson model on a database table ",
           "must be a column (or a sum of columns); compute it upstream with ",
           "dplyr::mutate()", call. = FALSE)
    }
    y_sql <- sql_numeric(lhs, ctx, label)
    cols <- all.vars(lhs)
    return(list(
      y_sql = y_sql,
      sums = c(y = y_sql, stats::setNames(vapply(cols, function(col) {
        sql_numeric(as.name(col), ctx, col)
      }, ""), paste0("col_", seq_along(cols)))),
      bad = c(bad_negative = paste0(y_sql, " < 0"), bad_whole = not_whole(y_sql)),
      bad_message = c(bad_negative = paste0("have a negative count '", label,
                                            "' (the Poisson family needs counts >= 0)"),
                      bad_whole = paste0("have a count '", label, "' that is not a whole ",
                                         "number (the Poisson family needs counts)")),
      weights = NULL,
      lhs = lhs,
      columns = function(vals) {
        stats::setNames(vals[paste0("col_", seq_along(cols))], cols)
      },
      distribution = function(backend, verbose) {
        sql <- paste0("SELECT ", y_sql, " AS y, COUNT(*) AS n FROM ", backend$from,
                      " WHERE ", complete, " GROUP BY ", y_sql)
        d <- sql_run(backend, sql, "the distribution of the counts", verbose)
        data.frame(y = as.double(d$y), n = as.double(d$n))
      },
      constants = function(dist, vals) {
        Y <- vals$y
        xlogx <- function(x) ifelse(x > 0, x * log(x), 0)
        list(loglik = -sum(dist$n * lgamma(dist$y + 1)) + sum(lgamma(Y + 1)),
             deviance = 2 * sum(dist$n * xlogx(dist$y)) - 2 * sum(xlogx(Y)))
      }))
  }
  # Binomial: successes s and trials m per row.
  if (is_call_to(lhs, "cbind")) {
    if (length(lhs) != 3L || !all(vapply(as.list(lhs)[-1L], is_linear_homogeneous, TRUE))) {
      stop("the response '", label, "' of a binomial model on a database table ",
           "must be cbind(successes, failures) of columns or of sums and ",
           "differences of columns (as cbind(s, n - s)); compute it upstream with ",
           "dplyr::mutate()", call. = FALSE)
    }
    if (!is.null(weights)) {
      stop("prior weights with a cbind() response are not available for a ",
           "database table; pull the rows into R with dplyr::collect()", call. = FALSE)
    }
    s_sql <- sql_numeric(lhs[[2L]], ctx, label)
    f_sql <- sql_numeric(lhs[[3L]], ctx, label)
    m_sql <- paste0("(", s_sql, ") + (", f_sql, ")")
    cols <- all.vars(lhs)
    sums <- c(s = s_sql, m = m_sql, stats::setNames(vapply(cols, function(col) {
      sql_numeric(as.name(col), ctx, col)
    }, ""), paste0("col_", seq_along(cols))))
    columns <- function(vals) stats::setNames(vals[paste0("col_", seq_along(cols))], cols)
    w_name <- NULL
    bernoulli <- FALSE
    bad <- c(bad_negative = paste0(s_sql, " < 0 OR ", f_sql, " < 0"),
             bad_whole = paste0(not_whole(s_sql), " OR ", not_whole(f_sql)))
    bad_message <- c(
      bad_negative = paste0("have a negative count in '", label, "'"),
      bad_whole = paste0("have counts in '", label, "' that are not whole numbers ",
                         "(on a table the binomial counts must be whole)"))
  } else {
    as_factor <- is_call_to(lhs, "factor") && length(lhs) == 2L && is.symbol(lhs[[2L]])
    if (!is.symbol(lhs) && !as_factor) {
      stop("the response '", label, "' of a binomial model on a database table ",
           "must be a column (0/1, logical, or text as a factor) or factor(column) ",
           "or cbind(successes, failures); compute it upstream with dplyr::mutate()",
           call. = FALSE)
    }
    col <- as.character(if (as_factor) lhs[[2L]] else lhs)
    type <- ctx$types[[col]]
    y_sql <- if (as_factor || type == "character") {
      # As glm() codes a factor response: its first level (in factor()'s
      # order) is failure, the others success. A text column is taken as
      # the factor of its values.
      sql <- paste0("SELECT DISTINCT ", backend$ident(col), " AS v FROM ", backend$from,
                    " WHERE ", complete)
      values <- sql_run(backend, sql, paste0("the values of the response ", col), verbose)$v
      first <- levels(factor(values))[1L]
      first <- values[as.character(values) == first][1L]
      paste0("CASE WHEN ", backend$ident(col), " = ", sql_literal(first, backend),
             " THEN 0.0 ELSE 1.0 END")
    } else if (type == "numeric") {
      sql_numeric(lhs, ctx, label)
    } else if (type == "logical") {
      paste0("CASE WHEN ", backend$ident(col), " THEN 1.0 ELSE 0.0 END")
    } else {
      stop("the response '", col, "' has an unsupported type (", type, ")", call. = FALSE)
    }
    bernoulli <- is.null(weights)
    m_sql <- if (bernoulli) "1.0" else sql_numeric(weights, ctx, "weights")
    s_sql <- if (bernoulli) y_sql else paste0("(", y_sql, ") * (", m_sql, ")")
    sums <- c(s = s_sql, m = m_sql)
    w_name <- ".mixedrs_trials"
    # The response column as the proportion of successes (factor(col) then
    # reads it as a number: the call's response becomes the column itself).
    columns <- function(vals) {
      stats::setNames(data.frame(ifelse(vals$m > 0, vals$s / vals$m, 0), vals$m),
                      c(col, w_name))
    }
    bad <- c(bad_range = paste0(y_sql, " < 0 OR ", y_sql, " > 1"),
             if (bernoulli) c(bad_binary = paste0(y_sql, " > 0 AND ", y_sql, " < 1")),
             if (!bernoulli) c(bad_weights = paste0(m_sql, " < 0"),
                               bad_whole = paste0(not_whole(m_sql), " OR ",
                                                  not_whole(s_sql))))
    bad_message <- c(
      bad_range = paste0("have a response '", col, "' outside [0, 1]"),
      bad_binary = paste0("have a response '", col, "' strictly between 0 and 1; ",
                          "for proportions give the numbers of trials as 'weights'"),
      bad_weights = "have negative weights",
      bad_whole = paste0("have weights (trials) or successes '", col, "' * weights ",
                         "that are not whole numbers (on a table the binomial counts ",
                         "must be whole)"))
  }
  list(
    lhs = if (is.null(w_name)) lhs else as.name(col),
    sums = sums, bad = bad, bad_message = bad_message[names(bad)], weights = w_name,
    columns = columns,
    distribution = function(backend, verbose) {
      if (bernoulli) return(NULL)
      sql <- paste0("SELECT ", m_sql, " AS m, ", s_sql, " AS s, COUNT(*) AS n FROM ",
                    backend$from, " WHERE ", complete, " GROUP BY ", m_sql, ", ", s_sql)
      d <- sql_run(backend, sql, "the distribution of the trials and successes", verbose)
      data.frame(m = as.double(d$m), s = as.double(d$s), n = as.double(d$n))
    },
    constants = function(dist, vals) {
      h <- function(s, m) {
        p <- ifelse(m > 0, s / m, 0)
        ifelse(s > 0, s * log(p), 0) + ifelse(m - s > 0, (m - s) * log1p(-p), 0)
      }
      rows_ll <- if (is.null(dist)) 0 else sum(dist$n * lchoose(dist$m, dist$s))
      rows_h <- if (is.null(dist)) 0 else sum(dist$n * h(dist$s, dist$m))
      list(loglik = rows_ll - sum(lchoose(vals$m, vals$s)),
           deviance = 2 * rows_h - 2 * sum(h(vals$s, vals$m)))
    })
}
