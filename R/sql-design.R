# The metadata of a model fitted in a database, once the levels are known:
# the fixed-effects columns (names, assign, contrasts, SQL), the
# random-effects terms as lmm() builds them in memory (group, term, a
# length-0 factor with the levels, cnms, structure; ordered and checked by
# the same code as lmm_inputs()), the grouping factors (flist), and the
# shifts: with an intercept in X, the response minus offset and the columns
# of X made only of numeric variables are centred by their means over the
# rows used, written as 15-significant-digit literals so that the database
# and R use the same constant.

# `model` from sql_levels_and_counts(); returns list(X, reterms (with the
# SQL of their Z columns and their level coding in `.sql`), flist, xlevels
# (levels of the factor variables), x_shift,
# x_shift_sql, y_shift, y_shift_sql).
sql_design <- function(model, parsed, contrasts, control) {
  backend <- model$backend
  vars <- lapply(model$vars, function(v) {
    if (v$kind != "factor") return(v)
    sql_factor_levels(v, unique(level_tuples(model, v$column)[[v$column]]), backend)
  })
  X <- sql_design_columns(parsed$fixed_formula, vars, contrasts, backend)
  reterms <- Map(function(bar, structure, cols) {
    term <- deparse1(bar)
    Z <- sql_design_columns(stats::as.formula(call("~", bar[[2L]]), env = baseenv()),
                            vars, NULL, backend)
    if (length(Z$names) == 0L) {
      stop("random-effects term (", term, ") has no columns: the part before ",
           "'|' must give at least an intercept (1) or a variable", call. = FALSE)
    }
    D <- unique(level_tuples(model, cols)[cols])
    codes <- group_codes(bar[[3L]], D, term)
    rt <- list(group = deparse_var(bar[[3L]]), term = term,
               factor = factor(character(), levels = codes$labels),
               cnms = Z$names)
    if (!identical(structure$type, "us")) {
      rt$structure <- structure
      covariance_layout(list(rt))
    }
    rt$.sql <- list(z = Z$sql, cols = cols, tuples = D, codes = codes$codes)
    rt
  }, parsed$bars, parsed$structures, model$group_cols)
  reterms <- order_reterms(reterms)
  flist <- make_flist(reterms)
  # lmm()'s checks, which read the number of columns of each term's Z.
  check_grouping(flist, lapply(reterms, function(rt) {
    rt$Z <- matrix(0, 0L, length(rt$cnms))
    rt
  }), model$n, control)
  intercept <- "(Intercept)" %in% X$names
  shift_literal <- function(m) if (intercept && is.finite(m) && m != 0) sprintf("%.15e", m) else ""
  x_shift_sql <- vapply(seq_along(X$names), function(j) {
    t <- X$term[j]
    if (t == 0L || !X$numeric_term[t]) return("")
    shift_literal(model$term_means[[as.character(t)]])
  }, "")
  y_shift_sql <- shift_literal(model$y_mean)
  to_num <- function(s) ifelse(nzchar(s), suppressWarnings(as.numeric(s)), 0)
  # the levels of every factor variable (fixed effects and random-effects
  # columns), for type III hypotheses and predictions on new data
  factor_labels <- names(Filter(function(v) v$kind == "factor", vars))
  xlevels <- lapply(vars[union(names(X$contrasts), factor_labels)], `[[`, "levels")
  list(X = X, reterms = reterms, flist = flist, xlevels = xlevels,
       x_shift = to_num(x_shift_sql), x_shift_sql = x_shift_sql,
       y_shift = to_num(y_shift_sql), y_shift_sql = y_shift_sql)
}

# The distinct tuples (a data frame) of the level set that holds `cols`.
level_tuples <- function(model, cols) {
  for (i in seq_along(model$level_sets)) {
    if (all(cols %in% model$level_sets[[i]])) return(model$tuples[[i]])
  }
  stop("internal error: no level query covers ", quote_names(cols), call. = FALSE)
}
