# Formula -> SQL: the columns of the fixed-effects matrix X, of each
# random-effects term's Z, the response, weights and offset, written as SQL
# expressions over the rows of a table, with the names, order, `assign` and
# `contrasts` that model.matrix() gives in memory. A model-matrix column is
# a product over the variables of its term of one "piece" per variable: the
# variable's value (a numeric variable), or one column of the factor's
# coding (its contrast matrix, or the indicators of all its levels where
# model.matrix() codes it by indicators), taken in model.matrix()'s order
# (first variable fastest). The names are checked against model.matrix() run
# on a small prototype frame with the same levels, which also gives `assign`
# and `contrasts`. Expressions are translated by dbplyr for the connection;
# only arithmetic, I(), log(), exp(), sqrt(), abs(), factor() and offset()
# are accepted (anything else is an error naming the term). Grouping
# factors' levels are found from the distinct tuples of their columns, coded
# as factor() and lme4's interaction (`a:b`) code them in memory.

# The error for a term that cannot be computed in the database.
unsupported_term <- function(term, what) {
  stop("the term '", term, "' cannot be computed in the database: ", what,
       " is not translated to SQL (only arithmetic, I(), log(), exp(), ",
       "sqrt(), abs(), factor(column) and offset() are); compute the column ",
       "upstream, e.g. with dplyr::mutate(), and use it in the formula",
       call. = FALSE)
}

# Functions of one argument translated to SQL by dbplyr.
sql_math_functions <- c("log", "exp", "sqrt", "abs")

# CAST(x AS <double>) for the backend.
sql_double <- function(backend, x) paste0("CAST(", x, " AS ", backend$dbl, ")")

# The SQL of a numeric expression of columns (`term` names it in errors):
# every column cast to double precision, small whole powers written as
# products (portable: SQLite has no POWER() without its math extension),
# the rest translated by dbplyr for the backend's connection.
sql_numeric <- function(expr, ctx, term) {
  r_expr <- sql_numeric_expr(expr, ctx, term)
  as.character(dbplyr::translate_sql_(list(r_expr), con = ctx$backend$con,
                                      window = FALSE))
}

# sql_numeric()'s walk: an R call whose leaves are numbers and dbplyr::sql()
# column references, using only functions dbplyr translates.
sql_numeric_expr <- function(e, ctx, term) {
  rec <- function(x) sql_numeric_expr(x, ctx, term)
  if (is.numeric(e) && length(e) == 1L && is.finite(e)) return(as.double(e))
  if (is.symbol(e)) {
    col <- as.character(e)
    type <- ctx$types[[col]]
    if (!identical(type, "numeric")) {
      stop("column '", col, "' used as a number in '", term, "' is ", type,
           ", not numeric", call. = FALSE)
    }
    return(dbplyr::sql(sql_double(ctx$backend, ctx$backend$ident(col))))
  }
  if (!is.call(e) || !is.symbol(e[[1L]])) unsupported_term(term, deparse1(e))
  fn <- as.character(e[[1L]])
  args <- as.list(e)[-1L]
  if (!is.null(names(args)) && any(nzchar(names(args)))) {
    unsupported_term(term, paste0(fn, "() with named arguments"))
  }
  n_args <- length(args)
  if (fn %in% c("I", "(") && n_args == 1L) return(call("(", rec(args[[1L]])))
  if (fn %in% c("+", "-") && n_args %in% c(1L, 2L)) {
    return(as.call(c(list(as.name(fn)), lapply(args, rec))))
  }
  if (fn %in% c("*", "/") && n_args == 2L) {
    return(call(fn, rec(args[[1L]]), rec(args[[2L]])))
  }
  if (fn == "^" && n_args == 2L) {
    base <- call("(", rec(args[[1L]]))
    ex <- args[[2L]]
    if (is.numeric(ex) && length(ex) == 1L && ex %in% 1:8) {
      prod <- Reduce(function(a, i) call("*", a, base), seq_len(ex - 1L), base)
      return(call("(", prod))
    }
    return(call("^", base, rec(ex)))
  }
  if (fn %in% sql_math_functions && n_args == 1L) return(call(fn, rec(args[[1L]])))
  unsupported_term(term, paste0(fn, "()"))
}

# What a variable of the formula (a symbol or call, as terms() lists them)
# is in the database: a factor (a character or logical column, or
# factor(column)) with `column` and `type`, levels to be filled in from the
# data; or a numeric expression with its SQL.
sql_variable <- function(expr, ctx) {
  label <- deparse_var(expr)
  col <- NULL
  if (is.symbol(expr)) {
    col <- as.character(expr)
    type <- ctx$types[[col]]
    if (type %in% c("character", "logical")) {
      return(list(label = label, kind = "factor", column = col, type = type))
    }
  } else if (is_call_to(expr, "factor")) {
    if (length(expr) != 2L || !is.symbol(expr[[2L]])) {
      unsupported_term(label, "factor() of anything but a column")
    }
    col <- as.character(expr[[2L]])
    type <- ctx$types[[col]]
    if (!type %in% c("numeric", "character", "logical")) {
      stop("column '", col, "' in '", label, "' has an unsupported type (",
           type, ")", call. = FALSE)
    }
    return(list(label = label, kind = "factor", column = col, type = "factor"))
  }
  inner <- if (is_call_to(expr, "offset") && length(expr) == 2L) expr[[2L]] else expr
  list(label = label, kind = "numeric", sql = sql_numeric(inner, ctx, label))
}

# The levels of a factor variable from the distinct values of its column
# (`values`, as the database returns them): labels as factor() (or, for a
# logical column, model.matrix()'s FALSE/TRUE) gives them, and for each
# level the raw values it stands for (several when distinct numbers print
# alike), as SQL literals.
sql_factor_levels <- function(var, values, backend) {
  values <- values[!is.na(values)]
  if (var$type == "logical") {
    values <- as.logical(values)
    f <- factor(values, levels = c(FALSE, TRUE))
  } else {
    f <- factor(values)
  }
  var$levels <- levels(f)
  codes <- as.integer(f)
  var$level_sql <- lapply(seq_along(var$levels), function(l) {
    vapply(values[codes == l], sql_literal, "", backend = backend)
  })
  var
}

# A value of a column as an SQL literal (numbers with 17 significant digits,
# which give the same double back).
sql_literal <- function(v, backend) {
  if (is.character(v)) return(backend$string(v))
  if (is.logical(v)) {
    return(as.character(dbplyr::escape(v, con = backend$con, parens = FALSE)))
  }
  if (is.numeric(v)) return(sprintf("%.17g", as.double(v)))
  stop("cannot write a value of class ", class(v)[1L], " as an SQL literal",
       call. = FALSE)
}

# SQL of the indicator "column takes one of these values", as a double.
sql_indicator <- function(backend, column, literals) {
  cond <- if (length(literals) == 1L) paste(column, "=", literals) else
    paste0(column, " IN (", paste(literals, collapse = ", "), ")")
  sql_double(backend, paste0("CASE WHEN ", cond, " THEN 1 ELSE 0 END"))
}

# The coding pieces of a factor variable in a term: one per column of its
# contrast matrix (`full = FALSE`) or per level (`full = TRUE`), each with
# its name and SQL (a CASE over the levels with non-zero coefficients).
factor_pieces <- function(var, full, contrasts, backend) {
  lev <- var$levels
  if (full) {
    C <- diag(length(lev))
    names <- paste0(var$label, lev)
  } else {
    C <- factor_contrasts(var, contrasts)
    names <- colnames(C)
  }
  column <- backend$ident(var$column)
  sql <- vapply(seq_len(ncol(C)), function(j) {
    nz <- which(C[, j] != 0)
    if (length(nz) == 0L) return(sql_double(backend, "0"))
    if (all(C[nz, j] == 1)) {
      return(sql_indicator(backend, column, unlist(var$level_sql[nz])))
    }
    whens <- vapply(nz, function(l) {
      lits <- var$level_sql[[l]]
      cond <- if (length(lits) == 1L) paste(column, "=", lits) else
        paste0(column, " IN (", paste(lits, collapse = ", "), ")")
      paste0("WHEN ", cond, " THEN ", sprintf("%.17g", C[l, j]))
    }, "")
    sql_double(backend, paste0("CASE ", paste(whens, collapse = " "), " ELSE 0 END"))
  }, "")
  list(names = names, sql = as.list(sql))
}

# The contrast matrix model.matrix() applies to a factor variable (levels x
# columns, columns named as model.matrix() names them), taken from
# model.matrix() of a one-row-per-level frame.
factor_contrasts <- function(var, contrasts) {
  f1 <- stats::as.formula(call("~", str2lang(var$label)), env = baseenv())
  tt <- stats::terms(f1)
  d <- list(prototype_values(var, length(var$levels)))
  names(d) <- var$label
  d <- structure(d, class = "data.frame", row.names = seq_along(var$levels),
                 terms = tt)
  ctr <- contrasts[intersect(names(contrasts), var$label)]
  mm <- stats::model.matrix(tt, d, contrasts.arg = if (length(ctr)) ctr)
  mm[, -1L, drop = FALSE]
}

# Values of a variable for a prototype frame of `n` rows: every level of a
# factor (in level order, recycled), 1 for a numeric variable.
prototype_values <- function(var, n) {
  if (var$kind == "numeric") return(rep(1, n))
  switch(var$type,
         logical = rep_len(c(FALSE, TRUE), n),
         character = rep_len(var$levels, n),
         factor(rep_len(var$levels, n), levels = var$levels))
}

# The model-matrix columns of a formula's right-hand side over the
# variables `vars` (named by label): names, `assign`, `contrasts` (as
# model.matrix() gives them) and per column the SQL factors whose product it
# is (an empty vector for the intercept).
sql_design_columns <- function(formula, vars, contrasts, backend) {
  tt <- stats::terms(formula)
  fac <- attr(tt, "factors")
  labels <- attr(tt, "term.labels")
  if (attr(tt, "intercept") == 0L) fac <- no_intercept_coding(fac, vars)
  names <- if (attr(tt, "intercept") == 1L) "(Intercept)" else character()
  sql <- if (attr(tt, "intercept") == 1L) list(character()) else list()
  term_of <- if (attr(tt, "intercept") == 1L) 0L else integer()
  for (j in seq_along(labels)) {
    in_term <- rownames(fac)[fac[, j] != 0]
    cols <- list(names = "", sql = list(character()))
    for (v in in_term) {
      var <- vars[[v]]
      pieces <- if (var$kind == "numeric") {
        list(names = var$label, sql = list(var$sql))
      } else {
        factor_pieces(var, fac[v, j] == 2L, contrasts, backend)
      }
      # model.matrix() order: the earlier variables vary fastest.
      idx <- expand.grid(old = seq_along(cols$names), new = seq_along(pieces$names))
      cols <- list(
        names = ifelse(cols$names[idx$old] == "", pieces$names[idx$new],
                       paste(cols$names[idx$old], pieces$names[idx$new], sep = ":")),
        sql = Map(c, cols$sql[idx$old], pieces$sql[idx$new]))
    }
    names <- c(names, cols$names)
    sql <- c(sql, cols$sql)
    term_of <- c(term_of, rep.int(j, length(cols$names)))
  }
  mm <- prototype_matrix(tt, vars, contrasts)
  if (!identical(unname(colnames(mm)), names)) {
    stop("internal error: the SQL columns of ", deparse1(formula), " (",
         paste(names, collapse = ", "), ") differ from model.matrix()'s (",
         paste(colnames(mm), collapse = ", "), ")", call. = FALSE)
  }
  list(names = names, assign = attr(mm, "assign"),
       contrasts = attr(mm, "contrasts"), sql = sql, term = term_of,
       numeric_term = vapply(seq_along(labels), function(j) {
         all(vapply(rownames(fac)[fac[, j] != 0],
                    function(v) vars[[v]]$kind == "numeric", TRUE))
       }, TRUE))
}

# Without an intercept, model.matrix() codes the first factor (with more
# than one level) of the first term that has one by the indicators of all
# its levels: its entry of the terms' "factors" matrix becomes 2.
no_intercept_coding <- function(fac, vars) {
  for (j in seq_len(ncol(fac))) {
    for (v in rownames(fac)) {
      var <- vars[[v]]
      if (fac[v, j] > 0 && !is.null(var) && var$kind == "factor" &&
          length(var$levels) > 1L) {
        fac[v, j] <- 2L
        return(fac)
      }
    }
  }
  fac
}

# model.matrix() of the terms `tt` over a prototype frame: every factor
# variable takes each of its levels, numeric variables are 1. Gives the
# names, `assign` and `contrasts` of the matrix the same model has in memory.
prototype_matrix <- function(tt, vars, contrasts) {
  var_labels <- vapply(as.list(attr(tt, "variables"))[-1L], deparse_var, "")
  n <- max(2L, vapply(vars[intersect(var_labels, names(vars))], function(v) {
    if (v$kind == "factor") length(v$levels) else 1L
  }, 1L))
  d <- lapply(var_labels, function(v) {
    if (is.null(vars[[v]])) rep(1, n) else prototype_values(vars[[v]], n)
  })
  names(d) <- var_labels
  d <- structure(d, class = "data.frame", row.names = seq_len(n), terms = tt)
  tryCatch(stats::model.matrix(tt, d, contrasts.arg = contrasts),
           error = function(e) {
    stop("could not build the fixed-effects model matrix: ",
         conditionMessage(e), call. = FALSE)
  })
}

# The column names a grouping expression reads (`a`, `a:b`, nesting already
# expanded into `b:a`), checked to be plain variables.
group_columns <- function(group, term) {
  if (is_call_to(group, "(")) return(group_columns(group[[2L]], term))
  if (is_call_to(group, ":") && length(group) == 3L) {
    return(unique(c(group_columns(group[[2L]], term),
                    group_columns(group[[3L]], term))))
  }
  if (!is.symbol(group)) {
    stop("grouping factor '", deparse1(group), "' of random-effects term (",
         term, ") must be a column or an interaction of columns such as a:b ",
         "(or nesting a/b) in the database; compute it upstream with ",
         "dplyr::mutate()", call. = FALSE)
  }
  as.character(group)
}

# Levels of a grouping expression over the distinct tuples `D` of its
# columns, as lmm() codes it in memory: factor() of a column, and for `a:b`
# the observed combinations in the order of (level of a, level of b),
# labelled "a:b". Returns the labels and each tuple's code.
group_codes <- function(group, D, term) {
  if (is_call_to(group, "(")) return(group_codes(group[[2L]], D, term))
  if (is_call_to(group, ":") && length(group) == 3L) {
    a <- group_codes(group[[2L]], D, term)
    b <- group_codes(group[[3L]], D, term)
    nb <- length(b$labels)
    key <- (a$codes - 1) * nb + b$codes
    ukey <- sort(unique(key))
    labels <- paste(a$labels[(ukey - 1) %/% nb + 1], b$labels[(ukey - 1) %% nb + 1],
                    sep = ":")
    if (anyDuplicated(labels)) {
      stop("grouping factor '", deparse1(group), "' of random-effects term (",
           term, "): levels containing ':' make the labels of the interaction ",
           "ambiguous; recode them upstream with dplyr::mutate()", call. = FALSE)
    }
    return(list(labels = labels, codes = match(key, ukey)))
  }
  f <- factor(D[[as.character(group)]])
  list(labels = levels(f), codes = as.integer(f))
}

# For each row of `R`, the row of `D` with the same values in `cols` (NA
# when there is none); values are compared exactly (match()).
tuple_match <- function(R, D, cols) {
  kr <- character(nrow(R))
  kd <- character(nrow(D))
  for (col in cols) {
    u <- unique(D[[col]])
    kr <- paste(kr, match(R[[col]], u), sep = "\r")
    kd <- paste(kd, match(D[[col]], u), sep = "\r")
  }
  match(kr, kd)
}
