# lmm() and glmm() on data that live in a database or Spark: the call's
# `data` is a dbplyr lazy table or an sql_source(). For lmm() the grouped
# sums of the model are computed there (sql_model_inputs(), R/sql-sums.R)
# and the model is fitted from them alone (lmm_sums_fit(), R/sums-fit.R); no
# row reaches R. For glmm() the rows are grouped by covariate pattern there
# (sql_compressed_rows(), R/sql-compress.R) and the patterns fitted in memory.

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
  name <- sql_na_action_name(mc, env)
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

# glmm()'s fit of its call `mc` to the table `data` (already known to be a
# lazy table or sql_source).
glmm_sql_fit <- function(mc, data, env, family, control, verbose, devFunOnly) {
  if (!family$family %in% c("binomial", "poisson")) {
    stop("glmm() fits a database table for the binomial and Poisson families ",
         "(by exact compression of the rows with the same covariates and group ",
         "levels), not for family ", family$family, "; pull the rows into R ",
         "with dplyr::collect() and fit the data frame", call. = FALSE)
  }
  if (isTRUE(devFunOnly)) {
    stop("devFunOnly = TRUE is not available for a database table: the ",
         "deviance function of the rows grouped by covariate pattern differs from ",
         "the rows' by a constant", call. = FALSE)
  }
  for (arg in c("mustart", "etastart")) {
    if (!is.null(mc[[arg]])) {
      stop("'", arg, "' gives a value per row, which a database table does not ",
           "have in R; leave it out", call. = FALSE)
    }
  }
  na_name <- sql_na_action_name(mc, env)
  formula <- lmm_formula(eval(mc$formula, env), env)
  quoted <- function(arg) if (!is.null(mc[[arg]])) mc[[arg]]
  comp <- sql_compressed_rows(formula, data, family$family,
                              weights = quoted("weights"), offset = quoted("offset"),
                              subset = quoted("subset"),
                              budget_mb = control$table.budget.mb, verbose = verbose)
  if (identical(na_name, "na.fail") && comp$n_dropped > 0) {
    stop("na.action = na.fail: ", format(comp$n_dropped, big.mark = ","),
         " rows of the table have a NULL in a column the model uses", call. = FALSE)
  }
  local_call <- mc
  local_call[[1L]] <- glmm
  local_call$data <- quote(.mixedrs_patterns)
  local_call$formula <- comp$formula
  local_call$weights <- if (!is.null(comp$weights)) as.name(comp$weights)
  if (comp$rows_offset) {
    local_call$offset <- if (is.null(mc$offset)) quote(.mixedrs_log_rows) else
      call("+", mc$offset, quote(.mixedrs_log_rows))
  }
  local_call$subset <- NULL
  local_call$na.action <- NULL
  # lme4's checks of levels against observations count the table's rows,
  # not the patterns: run after the fit with the rows' number.
  local_control <- control
  local_control$check.nobs.vs.nlev <- "ignore"
  local_control$check.nobs.vs.nRE <- "ignore"
  local_call$control <- quote(.mixedrs_control)
  fit_env <- new.env(parent = env)
  assign(".mixedrs_patterns", comp$frame, envir = fit_env)
  assign(".mixedrs_control", local_control, envir = fit_env)
  fit <- eval(local_call, fit_env)
  check_grouping(fit$flist, fit$reterms, comp$n,
                 control[c("check.nlev.gtr.1", "check.nobs.vs.nlev", "check.nobs.vs.nRE")],
                 allow_n = TRUE)
  fit$call <- mc
  # The model as the user wrote it (the local one may read the response
  # column as a proportion, or carry the patterns' log(rows) offset), for
  # predict() on new rows.
  fit$formula[[2L]] <- formula[[2L]]
  attr(fit$frame, "offset") <- mc$offset
  fit$devcomp$dims[c("N", "n")] <- comp$n
  fit$devcomp$dims[["nmp"]] <- comp$n - fit$devcomp$dims[["p"]]
  # With nAGQ > 1 the criterion is built on the deviance residuals (as
  # lme4's), so the deviance's constant applies.
  fit$table <- list(n = comp$n, n_dropped = comp$n_dropped, patterns = nrow(comp$frame),
                    loglik_offset = if (fit$nAGQ > 1L) -comp$deviance_offset / 2 else
                      comp$loglik_offset,
                    deviance_offset = comp$deviance_offset)
  fit$source <- comp$source
  fit
}

# The name of the call's na.action for a table: na.omit (the default) or
# na.fail; anything else is an error.
sql_na_action_name <- function(mc, env) {
  if (is.null(mc$na.action)) return("na.omit")
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
  name
}

