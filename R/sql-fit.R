# lmm() on data that live in a database or Spark: the call's `data` is a
# dbplyr lazy table or an sql_source(). The grouped sums of the model are
# computed there (sql_model_inputs(), R/sql-sums.R) and the model is fitted
# from them alone (lmm_sums_fit(), R/sums-fit.R); no row reaches R.

# TRUE when `data` is a table in a database (a dbplyr lazy table) or an
# sql_source().
is_sql_data <- function(data) {
  inherits(data, "sql_source") || inherits(data, "tbl_lazy")
}

# The fit of lmm()'s call `mc` to the table `data`, as lmm() fits a data
# frame: the same arguments, with na.action's na.omit semantics (rows with a
# NULL in a used column are dropped and counted).
lmm_sql_fit <- function(mc, data, env, REML, control, start, verbose, devFunOnly,
                        contrasts) {
  if (!is.null(mc$na.action)) {
    na_action <- eval(mc$na.action, env)
    name <- if (is.character(na_action)) na_action else {
      hit <- Filter(function(f) identical(na_action, get(f, envir = asNamespace("stats"))),
                    c("na.omit", "na.exclude", "na.fail", "na.pass"))
      if (length(hit)) hit else "a function"
    }
    if (!identical(name, "na.omit") && !identical(name, "na.fail")) {
      stop("na.action = ", name, " is not available for a database table: rows with a ",
           "NULL in a used column are dropped (na.omit), or with na.fail an error; ",
           if (identical(name, "na.exclude")) "na.exclude pads per-row results, which a fit from aggregates does not have",
           call. = FALSE)
    }
  } else {
    name <- "na.omit"
  }
  quoted <- function(arg) if (!is.null(mc[[arg]])) mc[[arg]]
  inputs <- sql_model_inputs(eval(mc$formula, env), data, weights = quoted("weights"),
                             offset = quoted("offset"), subset = quoted("subset"),
                             contrasts = contrasts, control = control, verbose = verbose)
  if (identical(name, "na.fail") && inputs$n_dropped > 0) {
    stop("na.action = na.fail: ", format(inputs$n_dropped, big.mark = ","),
         " rows of the table have a NULL in a column the model uses", call. = FALSE)
  }
  if (devFunOnly) {
    inputs <- sums_fixed_checks(check_sums_inputs(inputs), control)
    return(make_lmm_devfun(lmm_model_list(inputs), inputs$reterms, REML, control$threads))
  }
  fit <- lmm_sums_fit(inputs, REML = REML, control = control, start = start,
                      verbose = verbose)
  mc$formula <- inputs$formula
  fit$call <- mc
  fit
}
