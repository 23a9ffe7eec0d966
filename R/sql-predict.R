# Predictions written in SQL: predict(fit, newdata = <database table>) for
# any mixedrs fit (fitted in memory or from a table's sums). The prediction
# of a row is the linear predictor
#   eta = sum_j beta_j x_j + offset + sum_{terms t} z_t' b_t[level of the row]
# (lme4's predict() with re.form), optionally through the inverse link. The
# fixed part is one SQL expression: the columns x_j of the fit's
# fixed-effects matrix written by R/sql-formula.R's translation (the fit's
# factor levels, contrasts and dropped columns), times the estimates as
# literals. The conditional modes b travel in the query itself, one inline
# table (a VALUES list) per grouping factor keyed by the level's raw column
# values, LEFT JOINed to the rows; nothing is written to the database. A
# level the fit has not seen joins to nothing: an error (one query counts
# such rows) unless allow.new.levels, when its b are 0 (population level).
# Rows with a NULL in a column the prediction uses get a NULL prediction.

# The prediction of `object` for the rows of `newdata` (a dbplyr lazy table
# or an sql_source()): a lazy table (or an sql_source() of the query) with
# newdata's columns and the prediction in `column`.
sql_predict <- function(object, newdata, re.form, allow.new.levels, type, se.fit,
                        explicit_na, newparams, random.only, column) {
  check_flag(allow.new.levels, "allow.new.levels")
  check_flag(random.only, "random.only")
  check_flag(se.fit, "se.fit")
  if (se.fit) {
    stop("se.fit = TRUE is not available when 'newdata' is a database table: the ",
         "standard errors need the covariance of the estimates for each row in R; ",
         "collect the rows (dplyr::collect()) and predict on the data frame",
         call. = FALSE)
  }
  if (!is.null(newparams)) {
    stop("'newparams' is not available when 'newdata' is a database table: predict ",
         "on a data frame of the rows instead", call. = FALSE)
  }
  if (explicit_na) {
    stop("'na.action' is not used when 'newdata' is a database table: a row with a ",
         "NULL in a column the prediction uses gets a NULL prediction; drop such rows ",
         "with dplyr::filter() first if you want them left out", call. = FALSE)
  }
  if (!is.character(column) || length(column) != 1L || is.na(column) || !nzchar(column)) {
    stop("'column' (the name of the prediction's column) must be a single non-empty ",
         "string, not ", deparse1(column), call. = FALSE)
  }
  bars <- prediction_bars(object, re.form)
  backend <- sql_backend(newdata)
  cols <- backend$columns()
  if (column %in% cols) {
    stop("'newdata' already has a column '", column, "': name the prediction's column ",
         "otherwise with 'column ='", call. = FALSE)
  }
  reserved <- grep("^mixedrs_(eta|[kb][0-9]+_[0-9]+)$", cols, value = TRUE)
  if (length(reserved)) {
    stop("'newdata' has column ", quote_names(reserved), ", a name mixedrs uses in the ",
         "prediction's query; rename it with dplyr::rename()", call. = FALSE)
  }
  fixed <- if (random.only) NULL else predict_fixed_exprs(object)
  # Every column the prediction reads must be in newdata.
  need <- c(list(fixed = unlist(lapply(c(fixed$vars, fixed$offsets), all.vars))),
            stats::setNames(lapply(bars, all.vars), vapply(bars, deparse1, "")))
  for (what in names(need)) {
    absent <- setdiff(need[[what]], cols)
    if (length(absent)) {
      part <- if (what == "fixed") "the fixed-effects part of the model" else
        paste0("random-effects term (", what, ")")
      stop("column ", quote_names(absent), " needed by ", part, " not found in ",
           "'newdata' (", backend$label, "; its columns: ", paste(cols, collapse = ", "),
           ")", if (what != "fixed") "; for predictions without that term use re.form = NA or a re.form that leaves it out",
           call. = FALSE)
    }
  }
  used <- unique(unlist(need))
  ctx <- list(backend = backend, types = predict_column_types(backend, used))
  factor_vars <- list()
  guard <- character()
  # The fixed part.
  eta_parts <- character()
  if (!random.only) {
    vars <- lapply(fixed$vars, predict_variable, object = object, ctx = ctx)
    names(vars) <- vapply(vars, `[[`, "", "label")
    X <- predict_fixed_columns(object, fixed$rhs, vars, backend)
    beta <- unname(object$beta)
    eta_parts <- vapply(seq_along(beta), function(j) {
      prod <- sql_product(X$sql[[j]])
      if (nzchar(prod)) paste0(sql_number(beta[j]), " * ", prod) else sql_number(beta[j])
    }, "")
    eta_parts <- c(eta_parts, vapply(fixed$offsets, function(o) {
      paste0("(", sql_numeric(o, ctx, deparse_var(o)), ")")
    }, ""))
    factor_vars <- Filter(function(v) v$kind == "factor", vars)
  }
  # The random part: per term its columns times the joined modes.
  re <- predict_random_parts(object, bars, ctx, allow.new.levels)
  eta_parts <- c(eta_parts, re$parts)
  factor_vars <- c(factor_vars, re$factor_vars)
  factor_vars <- factor_vars[!duplicated(vapply(factor_vars, `[[`, "", "label"))]
  eta <- if (length(eta_parts)) sql_balanced_sum(eta_parts) else "0"
  eta <- sql_double(backend, eta)
  # Factor codings are CASE expressions, 0 for a NULL: guard them so that a
  # NULL in such a column gives a NULL prediction, as a NULL number does.
  guard <- unique(vapply(factor_vars, function(v) backend$ident(v$column), ""))
  if (length(guard)) {
    eta <- paste0("CASE WHEN ", paste(paste(guard, "IS NOT NULL"), collapse = " AND "),
                  " THEN ", eta, " END")
  }
  from <- paste0(backend$from, paste(re$joins, collapse = ""))
  predict_check_levels(backend, from, factor_vars, re$checks)
  link <- if (identical(type, "response") && inherits(object, "glmm")) {
    sql_inverse_link(object$family, "mixedrs_eta", backend)
  } else "mixedrs_eta"
  inner <- paste0("SELECT mixedrs_base.*, ", eta, " AS mixedrs_eta FROM ", from)
  query <- paste0("SELECT ", paste(vapply(cols, backend$ident, ""), collapse = ", "),
                  ", ", link, " AS ", backend$ident(column), " FROM (", inner,
                  ") AS mixedrs_pred")
  if (inherits(newdata, "sql_source")) {
    return(sql_source(newdata$run, table = paste0("(", query, ")"),
                      dialect = newdata$dialect))
  }
  dplyr::tbl(backend$con, dbplyr::sql(query), vars = c(cols, column))
}

# The fixed part's variables (response left out; offset() terms apart) and
# offsets: the formula's offset() terms and the call's `offset` argument.
predict_fixed_exprs <- function(object) {
  fixed <- parse_lmm_formula(object$formula)$fixed_formula
  rhs <- stats::as.formula(call("~", fixed[[3L]]), env = baseenv())
  tt <- stats::terms(rhs)
  vars <- as.list(attr(tt, "variables"))[-1L]
  off <- attr(tt, "offset")
  offsets <- lapply(vars[off], function(o) o[[2L]])
  if (length(off)) vars <- vars[-off]
  arg <- if (!is.null(object$frame)) attr(object$frame, "offset") else NULL
  if (is.null(arg)) arg <- object$call$offset
  if (!is.null(arg)) offsets <- c(offsets, list(arg))
  if (isTRUE(object$has_offset) && length(offsets) == 0L) {
    stop("this model has an offset, but neither its formula nor its call says ",
         "which: its prediction cannot be written in SQL", call. = FALSE)
  }
  list(rhs = rhs, vars = vars, offsets = offsets)
}

# The SQL types of the columns `used` of newdata ("numeric", "character",
# "logical" or another class), from one row with no NULL in them (or, when
# there is none, from an empty result's column types).
predict_column_types <- function(backend, used) {
  if (length(used) == 0L) return(character())
  idents <- dbplyr::sql(paste(vapply(used, backend$ident, ""), collapse = ", "))
  complete <- paste(paste(vapply(used, backend$ident, ""), "IS NOT NULL"), collapse = " AND ")
  one <- dbplyr::sql_query_select(backend$con, select = idents,
                                  from = dbplyr::sql(backend$from),
                                  where = dbplyr::sql(complete), limit = 1L)
  row <- sql_run(backend, as.character(one), "the column types of 'newdata' (one row)")
  if (nrow(row) == 0L) {
    none <- dbplyr::sql_query_select(backend$con, select = idents,
                                     from = dbplyr::sql(backend$from),
                                     where = dbplyr::sql("1 = 0"))
    row <- sql_run(backend, as.character(none), "the column types of 'newdata'")
  }
  types <- vapply(row, function(x) {
    if (is.logical(x)) "logical" else if (is.character(x) || is.factor(x)) "character"
    else if (is.numeric(x) || inherits(x, "integer64")) "numeric" else class(x)[1L]
  }, "")
  stats::setNames(types, used)
}

# The levels a variable (by label) had as a factor in the fit, NULL for a
# numeric variable: from the model frame of a fit in memory (factor,
# character and logical columns, as model.matrix() codes them), from the
# stored levels of a fit from sums.
fit_var_levels <- function(object, label) {
  if (is_sums_fit(object)) return(object$xlevels[[label]])
  x <- object$frame[[label]]
  if (is.factor(x)) return(levels(x))
  if (is.character(x)) return(levels(factor(x)))
  if (is.logical(x)) return(c("FALSE", "TRUE"))
  NULL
}

# The expression a fit in memory evaluated for a variable (its `predvars`
# entry, so data-dependent constants are the fit's), else the variable.
fit_predvar <- function(object, expr) {
  tt <- attr(object$frame, "terms")
  if (is.null(tt)) return(expr)
  vars <- vapply(as.list(attr(tt, "variables"))[-1L], deparse_var, "")
  pv <- as.list(attr(tt, "predvars"))[-1L]
  i <- match(deparse_var(expr), vars)
  if (is.na(i) || length(pv) < i) expr else pv[[i]]
}

# A variable of the formula as R/sql-formula.R's translation takes it, typed
# by the fit (not by newdata's column): a factor with the fit's levels, each
# matched to the raw value of newdata's column that stands for it; or a
# numeric expression with its SQL.
predict_variable <- function(expr, object, ctx) {
  label <- deparse_var(expr)
  levels <- fit_var_levels(object, label)
  if (is.null(levels)) {
    return(list(label = label, kind = "numeric",
                sql = sql_numeric(fit_predvar(object, expr), ctx, label)))
  }
  col <- if (is.symbol(expr)) {
    as.character(expr)
  } else if (is_call_to(expr, "factor") && length(expr) == 2L && is.symbol(expr[[2L]])) {
    as.character(expr[[2L]])
  } else {
    unsupported_term(label, "a factor made by an expression other than factor(column)")
  }
  vals <- level_values(levels, ctx$types[[col]], col, label)
  list(label = label, kind = "factor", column = col, type = "factor", levels = levels,
       level_sql = lapply(vals, function(v) sql_literal(v, ctx$backend)))
}

# The raw values of a column of type `type` that stand for the factor levels
# `levels` (their labels, as factor() made them): the labels for a text
# column, the numbers they print for a numeric column (FALSE/TRUE as 0/1),
# the truth values for a logical one.
level_values <- function(levels, type, col, label) {
  vals <- switch(type,
    character = levels,
    numeric = if (all(levels %in% c("FALSE", "TRUE"))) as.numeric(as.logical(levels)) else
      suppressWarnings(as.numeric(levels)),
    logical = as.logical(levels),
    stop("column '", col, "' of 'newdata' has an unsupported type (", type, ") for the ",
         "factor '", label, "'", call. = FALSE))
  bad <- levels[is.na(vals)]
  if (length(bad)) {
    stop("column '", col, "' of 'newdata' is ", type, ", but the model's factor '", label,
         "' has level", if (length(bad) > 1L) "s", " ", level_list(bad), ", which ",
         if (length(bad) > 1L) "are" else "is", " not ", type, "; give the column ",
         "the fit's type (e.g. with dplyr::mutate())", call. = FALSE)
  }
  vals
}

# The fit's fixed-effects columns written in SQL over `vars`: names,
# contrasts and dropped columns as the fit's model matrix.
predict_fixed_columns <- function(object, rhs, vars, backend) {
  X <- sql_design_columns(rhs, vars, attr(object$X, "contrasts"), backend)
  dropped <- attr(object$X, "col.dropped")
  if (is.numeric(dropped) && length(dropped)) {
    X$names <- X$names[-dropped]
    X$sql <- X$sql[-dropped]
  }
  if (!identical(X$names, colnames(object$X))) {
    stop("the fixed-effects columns written in SQL (", paste(X$names, collapse = ", "),
         ") differ from the model's (", paste(colnames(object$X), collapse = ", "), ")",
         call. = FALSE)
  }
  X
}

# The random part of the prediction for the terms `bars`: `parts` (per term
# and column, z times the joined mode), `joins` (one LEFT JOIN of an inline
# table of modes per grouping factor), `checks` (per grouping factor, the
# SQL that counts rows and levels the fit has not seen; none with
# allow.new.levels) and the factor variables of the terms' columns.
predict_random_parts <- function(object, bars, ctx, allow.new.levels) {
  out <- list(parts = character(), joins = character(), checks = list(), factor_vars = list())
  if (length(bars) == 0L) return(out)
  backend <- ctx$backend
  modes <- group_modes(object)
  groups <- names(modes)
  needed <- list()
  for (bar in bars) {
    term <- deparse1(bar)
    group <- deparse1(bar[[3L]])
    i <- match(group, groups)
    b <- modes[[group]]
    lhs <- stats::as.formula(call("~", bar[[2L]]), env = baseenv())
    lhs_vars <- as.list(attr(stats::terms(lhs), "variables"))[-1L]
    vars <- lapply(lhs_vars, predict_variable, object = object, ctx = ctx)
    names(vars) <- vapply(vars, `[[`, "", "label")
    Z <- sql_design_columns(lhs, vars, NULL, backend)
    extra <- setdiff(Z$names, colnames(b))
    if (length(extra)) {
      stop("random-effects term (", term, ") has random effect", if (length(extra) > 1L) "s",
           " ", quote_names(extra), " that the model does not have for grouping ",
           "factor '", group, "' (it has ", quote_names(colnames(b)), ")", call. = FALSE)
    }
    k <- match(Z$names, colnames(b))
    needed[[group]] <- union(needed[[group]], k)
    ref <- function(c) {
      x <- paste0("mixedrs_re", i, ".mixedrs_b", i, "_", c)
      if (allow.new.levels) paste0("COALESCE(", x, ", 0)") else x
    }
    out$parts <- c(out$parts, vapply(seq_along(k), function(c) {
      z <- sql_product(Z$sql[[c]])
      if (nzchar(z)) paste0(z, " * ", ref(k[c])) else ref(k[c])
    }, ""))
    out$factor_vars <- c(out$factor_vars, Filter(function(v) v$kind == "factor", vars))
  }
  for (group in names(needed)) {
    i <- match(group, groups)
    k <- sort(needed[[group]])
    b <- modes[[group]]
    term <- deparse1(bars[[which(vapply(bars, function(bar) deparse1(bar[[3L]]), "") == group)[1L]]])
    gcols <- group_columns(str2lang(group), term)
    keys <- level_keys(rownames(b), gcols, ctx$types, group)
    key_names <- paste0("mixedrs_k", i, "_", seq_along(gcols))
    b_names <- paste0("mixedrs_b", i, "_", k)
    values <- b[keys$rows, k, drop = FALSE]
    inline <- sql_inline_table(backend, stats::setNames(keys$values, key_names), values, b_names)
    alias <- paste0("mixedrs_re", i)
    on <- paste(paste0("mixedrs_base.", vapply(gcols, backend$ident, ""), " = ", alias, ".",
                       key_names), collapse = " AND ")
    out$joins <- c(out$joins, paste0(" LEFT JOIN (", inline, ") AS ", alias, " ON ", on))
    if (!allow.new.levels) {
      cond <- paste0(paste(paste0("mixedrs_base.", vapply(gcols, backend$ident, ""),
                                  " IS NOT NULL"), collapse = " AND "),
                     " AND ", alias, ".", b_names[1L], " IS NULL")
      out$checks[[group]] <- list(
        rows = paste0("SUM(CASE WHEN ", cond, " THEN 1 ELSE 0 END)"),
        levels = if (length(gcols) == 1L) {
          paste0("COUNT(DISTINCT CASE WHEN ", cond, " THEN mixedrs_base.",
                 backend$ident(gcols), " END)")
        })
    }
  }
  out
}

# The raw key values (one column per grouping column `gcols`) of the levels
# `labels` of a grouping factor: a level of `a:b` is labelled "a:b" by the
# labels of its parts. `rows`: the levels kept (all).
level_keys <- function(labels, gcols, types, group) {
  parts <- if (length(gcols) == 1L) list(labels) else {
    sp <- strsplit(labels, ":", fixed = TRUE)
    bad <- labels[lengths(sp) != length(gcols) | endsWith(labels, ":")]
    if (length(bad)) {
      stop("the levels of grouping factor '", group, "' cannot be split into the values ",
           "of its columns ", quote_names(gcols), " (level ", level_list(bad), " has a ",
           "':' in a part); recode the columns upstream with dplyr::mutate()", call. = FALSE)
    }
    lapply(seq_along(gcols), function(j) vapply(sp, `[`, "", j))
  }
  values <- Map(function(p, col) level_values(p, types[[col]], col, group), parts, gcols)
  values <- lapply(values, function(v) {
    if (is.numeric(v) && all(v == round(v)) && all(abs(v) < .Machine$integer.max)) as.integer(v) else v
  })
  list(values = as.data.frame(values, stringsAsFactors = FALSE, col.names = seq_along(gcols)),
       rows = seq_along(labels))
}

# The SQL of an inline table (a VALUES list, nothing written to the
# database) with the key columns `keys` (a data frame) and the double
# columns `values` (a matrix) named `value_names`. On a DBI connection it is
# dbplyr's copy_inline(), which knows each backend's VALUES syntax; the
# doubles are handed to it as 17-significant-digit strings cast to the
# backend's double type, since dbplyr 2.3 writes number literals with 15
# digits (and as NUMERIC on PostgreSQL). It is written here as standard
# SQL's (VALUES ...) AS t (columns) for an sql_source() (no connection:
# dbplyr's simulated ones quote identifiers with backticks) and for
# RPostgreSQL's connections, for which dbplyr 2.3 cannot render
# copy_inline() (its UNION ALL).
sql_inline_table <- function(backend, keys, values, value_names) {
  con <- backend$con
  cast_type <- function(fn) {
    cast <- as.character(dbplyr::translate_sql_(list(call(fn, quote(x))), con = con))
    sub("^CAST\\(.* AS (.*)\\)$", "\\1", cast)
  }
  key_types <- vapply(keys, function(x) {
    cast_type(if (is.integer(x)) "as.integer" else if (is.numeric(x)) "as.double" else
      if (is.logical(x)) "as.logical" else "as.character")
  }, "")
  key_types[vapply(keys, function(x) is.double(x), NA)] <- backend$dbl
  num <- matrix(sprintf("%.17e", values), nrow(values), ncol(values))
  if (inherits(con, "DBIConnection") && !inherits(con, "PostgreSQLConnection")) {
    df <- keys
    for (c in seq_along(value_names)) df[[value_names[c]]] <- num[, c]
    types <- c(key_types, stats::setNames(rep(backend$dbl, length(value_names)), value_names))
    return(as.character(dbplyr::sql_render(dbplyr::copy_inline(con, df, types = types))))
  }
  lits <- c(lapply(keys, function(x) vapply(x, sql_literal, "", backend = backend)),
            lapply(seq_along(value_names), function(c) num[, c]))
  rows <- do.call(paste, c(lits, sep = ", "))
  names <- c(names(keys), value_names)
  raw <- paste0("mixedrs_v", seq_along(names))
  paste0("SELECT ", paste0("CAST(", raw, " AS ", c(key_types, rep(backend$dbl, length(value_names))),
                           ") AS ", names, collapse = ", "),
         " FROM (VALUES ", paste0("(", rows, ")", collapse = ", "), ") AS mixedrs_v (",
         paste(raw, collapse = ", "), ")")
}

# One query counting, per factor variable, the rows whose value is not one
# of the fit's levels (always an error, as in memory) and, per grouping
# factor in `checks`, the rows whose level the fit has not seen.
predict_check_levels <- function(backend, from, factor_vars, checks) {
  items <- list()
  for (v in factor_vars) {
    col <- paste0("mixedrs_base.", backend$ident(v$column))
    cond <- paste0(col, " IS NOT NULL AND NOT (", col, " IN (",
                   paste(unlist(v$level_sql), collapse = ", "), "))")
    items[[length(items) + 1L]] <- list(
      kind = "factor", name = v$label, levels = v$levels,
      rows = paste0("SUM(CASE WHEN ", cond, " THEN 1 ELSE 0 END)"),
      count = paste0("COUNT(DISTINCT CASE WHEN ", cond, " THEN ", col, " END)"))
  }
  for (g in names(checks)) {
    items[[length(items) + 1L]] <- list(kind = "group", name = g, rows = checks[[g]]$rows,
                                        count = checks[[g]]$levels)
  }
  if (length(items) == 0L) return(invisible(NULL))
  sel <- unlist(lapply(seq_along(items), function(i) {
    c(paste0(items[[i]]$rows, " AS mixedrs_n", i),
      if (!is.null(items[[i]]$count)) paste0(items[[i]]$count, " AS mixedrs_l", i))
  }))
  res <- sql_run(backend, paste0("SELECT ", paste(sel, collapse = ", "), " FROM ", from),
                 "the levels of 'newdata' the model has not seen")
  count <- function(name) {
    x <- if (name %in% names(res)) suppressWarnings(as.double(res[[name]][1L])) else NA
    if (length(x) == 0L || is.na(x)) 0 else x
  }
  for (i in seq_along(items) ) {
    it <- items[[i]]
    n <- count(paste0("mixedrs_n", i))
    if (n == 0) next
    l <- if (is.null(it$count)) NA else count(paste0("mixedrs_l", i))
    how <- paste0(if (!is.na(l)) paste0(format(l, big.mark = ","), " level",
                                          if (l != 1) "s", " on "),
                  format(n, big.mark = ","), " row", if (n != 1) "s")
    if (it$kind == "factor") {
      stop("factor '", it$name, "' has new levels in 'newdata' not seen when fitting (",
           how, "); its levels are ", level_list(it$levels), call. = FALSE)
    }
    stop("new levels of grouping factor '", it$name, "' in 'newdata' (", how, "); use ",
         "allow.new.levels = TRUE to predict them at the population level (random ",
         "effects 0) for that term", call. = FALSE)
  }
  invisible(NULL)
}

# The inverse link applied to the SQL `eta`, as the family's linkinv()
# computes it (including its clamping away from 0 and 1), for the links
# whose inverse dbplyr's portable functions give.
sql_inverse_link <- function(family, eta, backend) {
  con <- backend$con
  ex <- function(x) {
    as.character(dbplyr::translate_sql_(list(call("exp", dbplyr::sql(x))), con = con,
                                        window = FALSE))
  }
  eps <- .Machine$double.eps
  num <- function(x) sql_number(x)
  switch(family$link,
    identity = eta,
    log = paste0("CASE WHEN ", eta, " < ", num(log(eps)), " THEN ", num(eps),
                 " ELSE ", ex(eta), " END"),
    logit = paste0("CASE WHEN ", eta, " < -30 THEN ", num(eps / (1 + eps)),
                   " WHEN ", eta, " > 30 THEN ", num((1 / eps) / (1 + 1 / eps)),
                   " ELSE ", ex(eta), " / (1 + ", ex(eta), ") END"),
    cloglog = {
      # -expm1(-e), e = exp(eta), by its series where 1 - exp(-e) would lose digits.
      e <- ex(eta)
      paste0("CASE WHEN ", eta, " < ", num(log(eps)), " THEN ", num(eps),
             " WHEN ", eta, " > ", num(log(-log(eps))), " THEN ", num(1 - eps),
             " WHEN ", e, " < 1e-5 THEN ", e, " * (1 - ", e, " * (0.5 - ", e, " / 6))",
             " ELSE 1 - ", ex(paste0("-", e)), " END")
    },
    inverse = paste0("1 / ", eta),
    sqrt = paste0(eta, " * ", eta),
    stop("type = \"response\" is not available in SQL for the link '", family$link,
         "': its inverse has no portable SQL translation (available: identity, log, ",
         "logit, cloglog, inverse, sqrt); use type = \"link\" and apply ",
         "family(fit)$linkinv() after dplyr::collect()", call. = FALSE))
}

# A double as an SQL literal in exponent notation (17 significant digits):
# a double in every dialect (Spark reads plain decimals as DECIMAL).
sql_number <- function(x) paste0("(", sprintf("%.17e", x), ")")

# The product of SQL factors ("" for none: the intercept's 1).
sql_product <- function(parts) {
  parts <- parts[nzchar(parts)]
  if (length(parts) == 0L) "" else paste0("(", parts, ")", collapse = " * ")
}

# A sum of SQL terms as a balanced tree of additions, so that the
# expression's depth grows with the log of the number of terms (SQLite
# stops at a depth of 1000).
sql_balanced_sum <- function(parts) {
  if (length(parts) == 1L) return(parts)
  half <- length(parts) %/% 2L
  paste0("(", sql_balanced_sum(parts[seq_len(half)]), " + ",
         sql_balanced_sum(parts[-seq_len(half)]), ")")
}
