# Predictions from fitted "lmm" and "glmm" objects, with lme4's semantics
# (predict.merMod): the fixed part is rebuilt for new data from the fit's
# terms, `predvars` (so poly(), scale(), ns() ... use the fitting data's
# constants), factor levels and contrasts; the random part adds the
# conditional modes of the terms selected by `re.form` for the levels the
# new data has. Everything is computed from stored fields: no call back into
# the Rust engine.
#
# The pieces are shared with simulate() (R/simulate.R):
# * prediction_bars()   which random-effects terms `re.form` selects;
# * fixed_design()      X and offset for new data (or the fit's);
# * random_data()       the random-effects variables of new data, as a frame
#                       laid out like the fit's model frame;
# * term_design()       grouping factor and columns of one term on that frame;
# * random_part()       the conditional modes those terms contribute.
# When newdata is a database table the prediction is written in SQL instead
# (R/sql-predict.R).

#' Predictions from a fitted mixed model
#'
#' Predictions on the scale of the linear predictor (or, for GLMMs, of the
#' response) for the data the model was fitted to or for new data, with all,
#' some or none of the random effects, as lme4's `predict()` for `lmer()` and
#' `glmer()` fits.
#'
#' For `newdata`, the fixed-effects model matrix is rebuilt from the model's
#' terms with the fitting data's transformation constants (the `predvars` of
#' the model frame, so `poly(x, 2)`, `scale(x)` or `log(x)` give the same
#' columns as in the fit), factor levels and contrasts. Offsets come from the
#' formula's `offset()` terms and from an `offset` argument of the original
#' call, both evaluated in `newdata`. Every variable the prediction needs
#' must be a column of `newdata` (a variable absent from it is only taken
#' from the formula's environment when it is a single constant).
#'
#' Random effects: `re.form = NULL` adds the conditional modes of all terms,
#' `re.form = NA` or `~0` gives population-level predictions, and a formula
#' of random-effects terms such as `~ (1 | Subject)` adds only those terms'
#' conditional modes (their grouping factor must be one of the model's, their
#' columns among the model's random effects for that factor). A level of a
#' grouping factor that was not in the fitting data is an error naming the
#' factor and the level, unless `allow.new.levels = TRUE`; then that term
#' contributes 0 (the population level) to those rows. Missing values of a
#' grouping factor are treated the same way.
#'
#' `random.only = TRUE` gives only the random-effects contribution `Z b` of
#' the terms `re.form` selects (all by default; `re.form = NA` then gives
#' zeros): no fixed effects and no offset, as lme4. For GLMMs with
#' `type = "response"` the inverse link is applied to it, as lme4 does. With
#' `newdata` the fixed-effects variables are then only needed when
#' `na.action` is not [stats::na.pass()] (they decide which rows are kept).
#'
#' `newparams` makes the predictions at other parameter values than the
#' estimates, as lme4's `predict(newparams = )`: a list with elements
#' `beta` (fixed effects, as [fixef()]), `theta` (relative covariance
#' parameters, as `getME(, "theta")`) and, for models with a scale
#' parameter, `sigma` (checked but not used: predictions do not depend on
#' it). Vectors with names are matched to the model's names; unnamed ones
#' are taken in the model's order. The random effects are those lme4 uses,
#' `b = Lambda(theta) u` with the fit's spherical conditional modes `u`:
#' they are not re-estimated at the new parameters. An element the
#' prediction needs but `newparams` leaves out (`beta`, and `theta` when
#' random effects are included) is taken from the fit, with a warning.
#'
#' `se.fit = TRUE` (lme4 >= 2.0; not in lme4 1.1-31) gives standard errors
#' of the predictions on the link scale, multiplied by `|dmu/deta|` for a
#' GLMM with `type = "response"` (the delta method), as lme4 2.x computes
#' them. Population-level predictions (`re.form = NA` or `~0`):
#' `sqrt(diag(X V X'))` with `V = vcov(object)`. Predictions with random
#' effects (`re.form = NULL` or a formula, or `random.only = TRUE`): the
#' standard deviation of `z'b + x'beta` under the joint conditional
#' covariance of the conditional modes `b` and the fixed effects `beta` at
#' the estimates (lme4 2.x's `vcov(full = TRUE)`),
#' `C = sigma^2 [Lambda 0; 0 I] M^-1 [Lambda' 0; 0 I]`, with
#' `M = [Lambda'Z'WZ Lambda + I, Lambda'Z'WX; X'WZ Lambda, X'WX]` the
#' penalized least squares system (`W` the prior weights, or for a GLMM the
#' working weights of the final PIRLS iteration) and `z`, `x` the rows of the
#' prediction's random- and fixed-effects model matrices (the random part
#' only for the terms `re.form` selects; with `random.only` no fixed part).
#' A level not in the fitting data (`allow.new.levels = TRUE`) contributes
#' neither a conditional mode nor variance to its term, as in lme4 2.x (whose
#' joint covariance is padded with zeros for new levels). None of these
#' include the uncertainty of the covariance parameters; for GLMMs they rest
#' on the Laplace approximation.
#'
#' @section Database tables:
#' When `newdata` is a dbplyr lazy table (`dplyr::tbl(con, "events")`, also
#' after `filter()` or `mutate()`) the prediction is written in SQL and
#' computed by the database: the result is a lazy table with the columns of
#' `newdata` and one more, `column` (default `".fitted"`), holding the
#' prediction; `dplyr::collect()` brings it into R, other dplyr verbs keep
#' it in the database. This works for any fit, in memory (score a large
#' table with a model fitted to a sample) or from a table (`lmm(data = tbl)`).
#' The fixed part is the fit's fixed-effects columns written in SQL with the
#' fit's factor levels and contrasts (the same translation as for fitting a
#' table: arithmetic, `I()`, `log()`, `exp()`, `sqrt()`, `abs()`,
#' `factor(column)` and `offset()`; other functions such as `poly()` are an
#' error naming the term), times the estimates; the conditional modes travel
#' inside the query as inline tables (a `VALUES` list per grouping factor,
#' joined by level), so nothing is written to the database. The query text
#' grows with the levels (about 70 bytes per level of a term with two random
#' effects): SQLite and PostgreSQL read 500,000 levels (33 MB of SQL) in
#' under 3 seconds; beyond that the engine's limit on a query's size (1 GB
#' for both) is the limit. Levels
#' not in the fit are an error giving how many levels and rows are new (one
#' query), or with `allow.new.levels = TRUE` predicted at the population
#' level for that term; a new level of a fixed-effect factor is always an
#' error. A row with a NULL in a column the prediction uses gets a NULL
#' prediction (also a NULL grouping value when `allow.new.levels = FALSE`,
#' where a data frame gives an error). `re.form`, `random.only` and, for
#' GLMMs, `type` work as for data frames; `type = "response"` is available
#' for the identity, log, logit, cloglog, inverse and sqrt links (whose
#' inverses portable SQL computes). `se.fit`, `newparams` and `na.action`
#' are errors there.
#'
#' For an [sql_source()] (Spark through reticulate, ...) the result is an
#' `sql_source()` whose `table` is the prediction's query, a parenthesized
#' subquery: run it with `src$run(paste("SELECT * FROM", p$table, "AS p"))`
#' or use it in the engine's own SQL. Its inline tables are written as
#' standard SQL's `(VALUES ...) AS t (columns)`, which PostgreSQL and Spark
#' read (SQLite does not).
#'
#' A model fitted from a table's sums has no rows: `predict()` without
#' `newdata` is an error, and with a data frame it rebuilds the model
#' matrices from the stored levels and contrasts (standard errors only with
#' `re.form = NA`).
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param newdata Optional data frame to predict for (default: the data the
#'   model was fitted to).
#' @param re.form Which random effects to condition on: `NULL` (all, the
#'   default), `NA` or `~0` (none), or a one-sided formula of random-effects
#'   terms of the model.
#' @param allow.new.levels Logical: allow levels of grouping factors (and
#'   missing values) that were not in the fitting data? Their random effects
#'   are then 0. With `FALSE` they are an error, except for glmmTMB-style
#'   fits, which predict as glmmTMB does: a missing grouping value at the
#'   population level for that term, silently, and a new level too, with
#'   glmmTMB's warning.
#' @param type For `"glmm"` fits: `"link"` (the linear predictor, default) or
#'   `"response"` (the inverse link of it). Ignored for `"lmm"` fits.
#' @param se.fit Logical: also return standard errors (see Details)?
#' @param na.action Function (or its name) applied to the fixed-effects
#'   variables of `newdata`: [stats::na.pass()] (default; rows with missing
#'   values give `NA`), [stats::na.omit()] (drop them) or
#'   [stats::na.exclude()] (drop them, then pad the result with `NA`).
#'   Without `newdata` an explicit `na.action` says how rows the fit dropped
#'   are reported: padded with `NA` for `na.exclude`, left out otherwise.
#' @param newparams Optional list of parameter values to predict at:
#'   `beta`, `theta` and (models with a scale parameter) `sigma`; see
#'   Details.
#' @param random.only Logical: only the random-effects part of the
#'   prediction (see Details)?
#' @param column When `newdata` is a database table: the name of the
#'   prediction's column in the result (see the section "Database tables").
#' @param ... Further arguments: lme4's `terms` (not implemented there
#'   either) and its old spellings `ReForm`, `REForm`, `REform` of
#'   `re.form` are errors, and so is any other (lme4 ignores those with a
#'   warning, which hides a misspelled argument).
#' @return A numeric vector named by the rows of `newdata` (or of the model
#'   frame), padded with `NA` per `na.action`; with `se.fit = TRUE` a list
#'   with components `fit` and `se.fit`, as `predict.lm()` returns. When
#'   `newdata` is a lazy table, a lazy table with its columns and `column`;
#'   when it is an `sql_source()`, an `sql_source()` of that query.
#' @seealso [simulate.lmm()], [fitted.lmm()], [fitted.glmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("sleepstudy", package = "lme4")
#' fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
#' nd <- data.frame(Days = c(0, 5, 9), Subject = c("308", "309", "310"))
#' predict(fit, nd)
#' predict(fit, nd, re.form = NA)
#' predict(fit, nd, re.form = NA, se.fit = TRUE)
#' predict(fit, nd, se.fit = TRUE)   # with the subjects' random effects
#' # a subject not in the data gets the population-level prediction
#' predict(fit, data.frame(Days = 3, Subject = "new"), allow.new.levels = TRUE)
#'
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' nd <- data.frame(period = factor(1:4), herd = "1")
#' predict(gfit, nd, type = "response")
#' predict(gfit, nd, re.form = NA, type = "response", se.fit = TRUE)
#' predict(gfit, nd, type = "response", se.fit = TRUE)   # herd 1's effect included
#'
#' # the random-effects part only, and predictions at other parameters
#' head(predict(fit, random.only = TRUE))
#' predict(fit, data.frame(Days = c(0, 5), Subject = "308"),
#'         newparams = list(beta = c(250, 10), theta = fit$theta))
#' @examplesIf requireNamespace("lme4", quietly = TRUE) && requireNamespace("RSQLite", quietly = TRUE) && requireNamespace("dbplyr", quietly = TRUE)
#' # a table in a database: the prediction is computed there, in SQL
#' con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
#' DBI::dbWriteTable(con, "sleep", lme4::sleepstudy)
#' sleep <- dplyr::tbl(con, "sleep")
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' pred <- predict(fit, newdata = sleep)
#' pred
#' dplyr::collect(predict(fit, newdata = sleep, re.form = NA, column = "population"))
#' # a model fitted to the table itself: predictions for the table or a data frame
#' tfit <- lmm(Reaction ~ Days + (Days | Subject), data = sleep)
#' head(dplyr::collect(predict(tfit, newdata = sleep)))
#' predict(tfit, data.frame(Days = 3, Subject = "308"))
#' DBI::dbDisconnect(con)
#' @importFrom stats predict
#' @method predict lmm
#' @export
predict.lmm <- function(object, newdata = NULL, re.form = NULL,
                        allow.new.levels = FALSE, type = c("link", "response"),
                        se.fit = FALSE, na.action = stats::na.pass,
                        newparams = NULL, random.only = FALSE, column = ".fitted", ...) {
  re.form <- old_re_form(re.form, ...)
  predict_check_dots(...)
  match_choice(type)
  if (is_sql_data(newdata)) {
    return(sql_predict(object, newdata, re.form, allow.new.levels, "link", se.fit,
                       explicit_na = !missing(na.action), newparams = newparams,
                       random.only = random.only, column = column))
  }
  predict_in_r_checks(object, newdata, missing(column))
  mer_predict(object, newdata, re.form, allow.new.levels, "link", se.fit,
              na.action, explicit_na = !missing(na.action),
              newparams = newparams, random.only = random.only)
}

#' @rdname predict.lmm
#' @method predict glmm
#' @export
predict.glmm <- function(object, newdata = NULL, re.form = NULL,
                         allow.new.levels = FALSE, type = c("link", "response"),
                         se.fit = FALSE, na.action = stats::na.pass,
                         newparams = NULL, random.only = FALSE, column = ".fitted", ...) {
  re.form <- old_re_form(re.form, ...)
  predict_check_dots(...)
  if (is_extended_fit(object) && !is_sql_data(newdata)) {
    # glmmTMB-style fits: glmmTMB's types (R/methods-extended.R)
    predict_in_r_checks(object, newdata, missing(column))
    return(predict_extended(object, newdata, re.form, allow.new.levels,
                            if (missing(type)) "link" else type, se.fit, na.action,
                            !missing(na.action), newparams, random.only))
  }
  type <- match_choice(type)
  if (is_sql_data(newdata)) {
    return(sql_predict(object, newdata, re.form, allow.new.levels, type, se.fit,
                       explicit_na = !missing(na.action), newparams = newparams,
                       random.only = random.only, column = column))
  }
  predict_in_r_checks(object, newdata, missing(column))
  mer_predict(object, newdata, re.form, allow.new.levels, type, se.fit,
              na.action, explicit_na = !missing(na.action),
              newparams = newparams, random.only = random.only)
}

# Checks of a prediction computed in R: `column` names only the column of a
# prediction on a database table, and a fit from sums has no rows to predict
# for without newdata.
predict_in_r_checks <- function(object, newdata, column_missing) {
  if (!column_missing) {
    stop("'column' names the prediction's column when 'newdata' is a database ",
         "table; with ", if (is.null(newdata)) "no newdata" else "a data frame",
         " predict() returns a vector", call. = FALSE)
  }
  if (is.null(newdata) && is_table_fit(object)) {
    stop("predict() without 'newdata' needs the rows of the data, but this model was ",
         "fitted ", if (is_sums_fit(object)) "from aggregates computed" else
           "to the rows grouped by covariate pattern", " where the data live (",
         object$source, "): ",
         "give newdata = the table (e.g. dplyr::tbl(con, \"events\")) for a lazy table ",
         "of per-row predictions computed there, or a data frame", call. = FALSE)
  }
  invisible(NULL)
}

# Arguments of lme4's predict() (or simulate()) that ours does not take are
# errors saying so, and so is anything else in `...`.
# `unsupported`: lme4's arguments without an equivalent here, with the
# reason.
predict_check_dots <- function(..., caller = "predict()", unsupported = c(
                                 terms = "is not implemented for predictions of mixed models (nor by lme4)")) {
  nms <- ...names()
  if (is.null(nms)) return(stop_unused(..., caller = caller))
  known <- intersect(nms, names(unsupported))
  if (length(known)) {
    stop("'", known[1L], "' ", unsupported[[known[1L]]], call. = FALSE)
  }
  # lme4's old names of re.form were taken by old_re_form().
  exprs <- as.list(substitute(list(...)))[-1L]
  exprs <- exprs[!nms %in% old_re_form_names]
  if (length(exprs)) {
    eval(as.call(c(list(stop_unused), exprs, list(caller = caller))))
  }
  invisible(NULL)
}

old_re_form_names <- c("ReForm", "REForm", "REform")

# lme4's old names of `re.form` (ReForm, REForm, REform), accepted as lme4
# accepts them: with a deprecation warning, the old name's value replacing
# re.form.
old_re_form <- function(re.form, ...) {
  nms <- ...names()
  hit <- which(nms %in% old_re_form_names)
  if (length(hit) == 0L) return(re.form)
  if (length(hit) > 1L) {
    stop("give only one of 're.form' and its old names ",
         paste0("'", nms[hit], "'", collapse = ", "), call. = FALSE)
  }
  warning("'", nms[hit], "' is deprecated (lme4's old name of 're.form'); ",
          "use 're.form'", call. = FALSE)
  ...elt(hit)
}

# The shared body of both methods. `explicit_na`: was `na.action` given (it
# then decides, without newdata, whether rows dropped by the fit are padded).
mer_predict <- function(object, newdata, re.form, allow.new.levels, type,
                        se.fit, na.action, explicit_na, newparams = NULL,
                        random.only = FALSE) {
  check_flag(allow.new.levels, "allow.new.levels")
  check_flag(se.fit, "se.fit")
  check_flag(random.only, "random.only")
  na.action <- check_na_action(na.action)
  bars <- prediction_bars(object, re.form)
  if (is_sums_fit(object)) {
    if (se.fit && (length(bars) || random.only)) {
      stop("se.fit = TRUE with random effects is not available for a model fitted ",
           "from aggregates: it needs the rows' random-effects design; use ",
           "re.form = NA for standard errors of the population-level predictions",
           call. = FALSE)
    }
    object$frame <- sums_prototype_frame(object)
  }
  if (se.fit && !is.null(newparams)) {
    stop("se.fit = TRUE is not available with newparams: the covariance of ",
         "the fixed effects is that of the estimates, not of other parameter ",
         "values", call. = FALSE)
  }
  if (!is.null(newparams)) {
    object <- with_newparams(object, newparams, uses_beta = !random.only,
                             uses_theta = length(bars) > 0L)
  }
  core <- predict_core(object, newdata, bars, allow.new.levels, na.action,
                       stored = is.null(re.form) && is.null(newparams) && !random.only,
                       random_only = random.only)
  eta <- core$eta
  na_act <- core$na_action
  if (is.null(newdata)) na_act <- fit_na_action(object, na.action, explicit_na)
  fit <- if (type == "response") object$family$linkinv(eta) else eta
  fit <- stats::napredict(na_act, fit)
  if (!se.fit) return(fit)
  se <- if (length(bars) || random.only) {
    predict_se_joint(object, core, bars, allow.new.levels, random.only,
                     where = if (is.null(newdata)) "the model frame" else "newdata",
                     own_frame = is.null(newdata))
  } else {
    V <- as.matrix(stats::vcov(object))
    X <- core$X
    sqrt(pmax(rowSums((X %*% V) * X), 0))
  }
  if (type == "response") se <- se * abs(object$family$mu.eta(eta))
  names(se) <- names(eta)
  list(fit = fit, se.fit = stats::napredict(na_act, se))
}

# Linear predictor (offset included) for `newdata` (NULL: the fitted data)
# with the random-effects terms `bars`. Returns `eta` (named), the
# fixed-effects matrix `X` it used, the na.action of the new data's frame,
# the kept rows of `newdata` (`rows`) and the random-effects frame.
# `stored = TRUE` (re.form = NULL without newdata) returns the fit's own
# linear predictor, as lme4 does.
# `random_only`: the linear predictor without the fixed part and offset
# (lme4's random.only); with newdata and na.pass the fixed-effects variables
# are then not needed.
predict_core <- function(object, newdata, bars, allow.new.levels, na.action,
                         stored = FALSE, random_only = FALSE) {
  if (is.null(newdata)) {
    X <- object$X
    nm <- mer_obs_names(object, nrow(X))
    if (stored) {
      eta <- if (inherits(object, "glmm")) object$eta else object$fitted
      return(list(eta = stats::setNames(as.vector(eta), nm), X = X,
                  na_action = NULL, rows = NULL, rfd = object$frame))
    }
    eta <- if (random_only) numeric(nrow(X)) else
      as.vector(X %*% object$beta) + as.vector(object$offset)
    rfd <- object$frame
    rows <- NULL
    na_act <- NULL
  } else {
    newdata <- check_newdata(newdata)
    if (random_only && identical(na.action, stats::na.pass)) {
      X <- NULL
      rows <- seq_len(nrow(newdata))
      nm <- rownames(newdata)
      eta <- numeric(nrow(newdata))
      na_act <- NULL
    } else {
      fx <- fixed_design(object, newdata, na.action)
      X <- fx$X
      nm <- rownames(X)
      eta <- if (random_only) numeric(nrow(X)) else
        as.vector(X %*% object$beta) + fx$offset
      rows <- fx$rows
      na_act <- fx$na_action
    }
    rfd <- if (length(bars)) random_data(object, bars, newdata[rows, , drop = FALSE])
  }
  if (length(bars)) {
    eta <- eta + random_part(object, bars, rfd, allow.new.levels,
                             where = if (is.null(newdata)) "the model frame" else "newdata",
                             own_frame = is.null(newdata))
  }
  list(eta = stats::setNames(eta, nm), X = X, na_action = na_act, rows = rows,
       rfd = rfd)
}

# The fit with the parameters of `newparams` (see predict.lmm()) in place of
# its estimates: beta replaced, theta replaced and the conditional modes
# b = Lambda(theta) u recomputed from the fit's spherical modes u (lme4's
# setParams() followed by ranef()). `uses_beta`, `uses_theta`: does the
# prediction depend on them (a missing one is then taken from the fit with a
# warning)? `uses_sigma`: likewise for sigma (simulations), which then
# replaces the fit's.
with_newparams <- function(object, newparams, uses_beta = TRUE, uses_theta = TRUE,
                           uses_sigma = FALSE) {
  allowed <- c("beta", "theta", if (mer_use_sc(object)) "sigma")
  nms <- names(newparams)
  if (!is.list(newparams) || is.object(newparams) || length(newparams) == 0L ||
      is.null(nms) || any(!nzchar(nms)) || anyDuplicated(nms)) {
    stop("'newparams' must be a list with named elements among ",
         paste(sQuote(allowed, FALSE), collapse = ", "), call. = FALSE)
  }
  bad <- setdiff(nms, allowed)
  if (length(bad)) {
    stop("'newparams' has element", if (length(bad) > 1L) "s", " ",
         paste(sQuote(bad, FALSE), collapse = ", "), "; its elements must be among ",
         paste(sQuote(allowed, FALSE), collapse = ", "),
         if ("sigma" %in% bad) " (this model has no scale parameter)", call. = FALSE)
  }
  absent <- c(if (uses_beta) "beta", if (uses_theta) "theta",
              if (uses_sigma && "sigma" %in% allowed) "sigma")
  absent <- setdiff(absent, nms)
  if (length(absent)) {
    warning("'newparams' has no ", paste(sQuote(absent, FALSE), collapse = " or "),
            ": the fit's estimates are used for ", if (length(absent) > 1L) "them" else "it",
            call. = FALSE)
  }
  if (!is.null(newparams$beta)) {
    object$beta <- newparams_vector(newparams$beta, names(object$beta), "beta")
  }
  if (!is.null(newparams$sigma)) {
    s <- newparams$sigma
    if (!is.numeric(s) || length(s) != 1L || !is.finite(s) || s <= 0) {
      stop("'newparams$sigma' must be a single positive number, not ",
           deparse1(s), call. = FALSE)
    }
    object$sigma <- as.double(s)
  }
  if (!is.null(newparams$theta)) {
    theta <- newparams_vector(newparams$theta, names(object$theta), "theta")
    low <- which(theta < object$lower)
    if (length(low)) {
      stop("'newparams$theta' is below its lower bound for ",
           paste(sQuote(names(object$theta)[low], FALSE), collapse = ", "),
           " (diagonal elements of the relative covariance factors must be >= 0)",
           call. = FALSE)
    }
    object$theta <- theta
    object$b <- modes_at_theta(object)
  }
  object
}

# A parameter vector of `newparams`: numeric, finite, of the model's length;
# matched by name when named (the names must be the model's), else taken in
# the model's order.
newparams_vector <- function(x, model_names, what) {
  if (!is.numeric(x) || length(x) != length(model_names) || any(!is.finite(x))) {
    stop("'newparams$", what, "' must be ", length(model_names), " finite number",
         if (length(model_names) != 1L) "s", " (", paste(model_names, collapse = ", "),
         "), not ", deparse1(x, nlines = 1L), call. = FALSE)
  }
  given <- names(x)
  if (!is.null(given)) {
    if (!setequal(given, model_names) || anyDuplicated(given)) {
      stop("the names of 'newparams$", what, "' (", paste(given, collapse = ", "),
           ") are not the model's (", paste(model_names, collapse = ", "), ")",
           call. = FALSE)
    }
    x <- x[model_names]
  }
  stats::setNames(as.double(x), model_names)
}

# Conditional modes b = Lambda(theta) u of every term at object$theta, from
# the fit's spherical modes u (terms in order, levels in order, the effects
# of one level together), in the layout of object$b.
modes_at_theta <- function(object) {
  u <- object$u
  sizes <- vapply(object$reterms, function(t) nlevels(t$factor) * length(t$cnms), 1)
  if (is.null(u) || length(u) != sum(sizes)) {
    stop("this fit does not hold its spherical random effects 'u': refit it ",
         "with this version of mixedrs to predict with newparams$theta", call. = FALSE)
  }
  ends <- cumsum(sizes)
  out <- lapply(seq_along(object$reterms), function(k) {
    t <- object$reterms[[k]]
    uk <- matrix(u[ends[k] - sizes[k] + seq_len(sizes[k])], ncol = length(t$cnms),
                 byrow = TRUE)
    b <- uk %*% t(term_lambda(object, t$term))
    dimnames(b) <- dimnames(object$b[[k]])
    b
  })
  names(out) <- names(object$b)
  out
}

# lme4's handling of rows the fit dropped when there is no newdata: padded
# per the fit's na.action, or, when `na.action` is given, per its class
# (na.exclude pads, na.omit and na.pass do not).
fit_na_action <- function(object, na.action, explicit_na) {
  na_act <- mer_na_action(object)
  if (explicit_na && !is.null(na_act)) {
    cls <- attr(na.action(NA), "na.action")
    na_act <- structure(as.vector(na_act), names = names(na_act))
    if (!is.null(cls)) class(na_act) <- class(cls)
  }
  na_act
}

check_na_action <- function(na.action) {
  if (is.character(na.action) && length(na.action) == 1L) {
    na.action <- get0(na.action, mode = "function")
  }
  if (!is.function(na.action)) {
    stop("'na.action' must be a function such as na.pass, na.omit or ",
         "na.exclude (or its name)", call. = FALSE)
  }
  na.action
}

check_newdata <- function(newdata) {
  if (!is.data.frame(newdata)) {
    if (is.list(newdata) && !is.null(names(newdata))) {
      newdata <- tryCatch(as.data.frame(newdata, stringsAsFactors = FALSE),
                          error = function(e) NULL)
    }
    if (!is.data.frame(newdata)) {
      stop("'newdata' must be a data frame, not ", describe_class(newdata),
           call. = FALSE)
    }
  }
  as.data.frame(newdata)
}

# ---------------------------------------------------------------------------
# re.form

# The random-effects terms (bar calls `lhs | group`, `||` and nesting
# expanded) of the model, in formula order.
model_bars <- function(object) parse_lmm_formula(model_formula(object))$bars

# The terms a prediction includes: all of the model's (re.form = NULL), none
# (NA or ~0), or those of a one-sided formula, each checked against the
# model's grouping factors (its columns are checked by random_part()).
prediction_bars <- function(object, re.form) {
  if (is.null(re.form)) return(model_bars(object))
  if (is.logical(re.form) && length(re.form) == 1L && is.na(re.form)) return(list())
  if (!inherits(re.form, "formula")) {
    stop("'re.form' must be NULL (all random effects), NA or ~0 (none) or a ",
         "one-sided formula of the model's random-effects terms such as ",
         "~ (1 | g); not ", deparse1(re.form), call. = FALSE)
  }
  if (length(re.form) != 2L) {
    stop("'re.form' must be a one-sided formula such as ~ (1 | g), not ",
         deparse1(re.form), call. = FALSE)
  }
  rhs <- re.form[[2L]]
  if (is_zero(rhs)) return(list())
  rhs <- expand_double_bars(drop_inner_tildes(rhs))
  split <- split_bars(rhs)
  bars <- split$bars
  if (length(bars) == 0L) {
    stop("'re.form' (", deparse1(re.form), ") has no random-effects term; ",
         "use re.form = NA or ~0 for population-level predictions",
         call. = FALSE)
  }
  rest <- split$rest
  if (!is.null(rest) && !is_zero(rest) && !identical(rest, 1)) {
    stop("'re.form' may contain only random-effects terms such as (1 | g), ",
         "not '", deparse1(rest), "' (fixed effects are always included)",
         call. = FALSE)
  }
  lapply(bars, check_bar)
  bars <- unlist(lapply(bars, expand_nesting), recursive = FALSE)
  groups <- names(object$flist)
  frame_terms <- attr(object$frame, "terms")
  model_vars <- if (is.null(frame_terms)) all.vars(object$formula) else
    all.vars(attr(frame_terms, "variables"))
  for (bar in bars) {
    bad <- setdiff(all.vars(bar), model_vars)
    if (length(bad)) {
      stop("re.form term (", deparse1(bar), ") uses variable ", quote_names(bad),
           ", which is not a variable of the model", call. = FALSE)
    }
    g <- deparse1(bar[[3L]])
    if (!g %in% groups) {
      stop("re.form term (", deparse1(bar), "): '", g, "' is not a grouping ",
           "factor of the model; its grouping factors are ", quote_names(groups),
           call. = FALSE)
    }
  }
  bars
}

is_zero <- function(x) is.numeric(x) && length(x) == 1L && x == 0

# `expr` (the right-hand side of re.form) with each term written `(~x | g)`
# read as `(x | g)`, as lme4's predict() reads it: R parses `~x | g` as the
# one-sided formula `~(x | g)`. Descends through `+` and parentheses.
drop_inner_tildes <- function(expr) {
  if (!is.call(expr)) return(expr)
  if (identical(expr[[1L]], as.name("~")) && length(expr) == 2L && is_bar(expr[[2L]])) {
    return(expr[[2L]])
  }
  if (identical(expr[[1L]], sym_plus) || identical(expr[[1L]], sym_paren)) {
    for (i in seq_along(expr)[-1L]) expr[[i]] <- drop_inner_tildes(expr[[i]])
  }
  expr
}

# ---------------------------------------------------------------------------
# Fixed part

# The fixed-effects matrix (dropped columns removed, as in the fit) and
# offset for `newdata`, from a model frame of the fixed-effects variables
# built with the fit's `predvars` and factor levels. `rows` are the rows of
# `newdata` that `na.action` kept.
fixed_design <- function(object, newdata, na.action) {
  frame <- object$frame
  fixed <- parse_lmm_formula(model_formula(object))$fixed_formula
  env <- environment(object$formula)
  if (is.null(env)) env <- parent.frame()
  tt <- stats::delete.response(stats::terms(fixed))
  pv <- attr(attr(frame, "terms"), "predvars.fixed")
  if (!is.null(pv)) {
    pv <- as.list(pv)
    if (attr(stats::terms(fixed), "response") == 1L) pv <- pv[-2L]
    if (length(pv) == length(attr(tt, "variables"))) {
      attr(tt, "predvars") <- as.call(pv)
    }
  }
  offset_expr <- attr(frame, "offset")
  if (is.null(offset_expr)) offset_expr <- object$call$offset
  vars <- as.list(attr(tt, "variables"))[-1L]
  check_newdata_vars(c(vars, if (!is.null(offset_expr)) list(offset_expr)),
                     newdata, env, "the fixed-effects part of the model")
  mf_call <- as.call(c(list(quote(stats::model.frame), formula = tt,
                            data = quote(.mixedrs_newdata),
                            na.action = quote(.mixedrs_na_action)),
                       if (!is.null(offset_expr)) list(offset = offset_expr)))
  eval_env <- new.env(parent = env)
  assign(".mixedrs_newdata", newdata, envir = eval_env)
  assign(".mixedrs_na_action", na.action, envir = eval_env)
  mf <- tryCatch(eval(mf_call, eval_env), error = function(e) {
    stop("could not evaluate the fixed-effects variables in 'newdata': ",
         conditionMessage(e), call. = FALSE)
  })
  mf <- align_levels(mf, frame)
  X <- stats::model.matrix(tt, mf, contrasts.arg = attr(object$X, "contrasts"))
  dropped <- attr(object$X, "col.dropped")
  if (is.numeric(dropped) && length(dropped)) X <- X[, -dropped, drop = FALSE]
  if (!identical(colnames(X), colnames(object$X))) {
    stop("the fixed-effects columns built from 'newdata' (",
         paste(colnames(X), collapse = ", "), ") differ from the model's (",
         paste(colnames(object$X), collapse = ", "), ")", call. = FALSE)
  }
  offset <- stats::model.offset(mf)
  if (is.null(offset)) offset <- rep(0, nrow(X))
  na_act <- attr(mf, "na.action")
  rows <- seq_len(nrow(newdata))
  if (!is.null(na_act)) rows <- rows[-as.integer(na_act)]
  list(X = X, offset = as.vector(offset), na_action = na_act, rows = rows)
}

# A stand-in for the model frame of a fit from sums, which has no rows: no
# rows, the fit's factor variables with their stored levels, and the terms
# of the formula, which is what fixed_design() and random_data() read of it
# (a model fitted in SQL has no data-dependent transformations).
sums_prototype_frame <- function(object) {
  ctr <- names(attr(object$X, "contrasts"))
  lev <- object$xlevels
  if (!all(ctr %in% names(lev))) {
    stop("this model was fitted from aggregates without the levels of its factor ",
         quote_names(setdiff(ctr, names(lev))), " (inputs$xlevels): its predictions ",
         "cannot be coded", call. = FALSE)
  }
  frame <- lapply(lev, function(l) factor(character(), levels = l))
  frame <- structure(frame, names = names(lev), class = "data.frame",
                     row.names = integer())
  attr(frame, "terms") <- stats::terms(parse_lmm_formula(model_formula(object))$frame_formula)
  frame
}

# Stops, naming the variable and what needs it, when a variable of `exprs`
# is neither a column of `newdata` nor a single constant (not a function)
# in the formula's environment.
check_newdata_vars <- function(exprs, newdata, env, what, hint = "") {
  vars <- unique(unlist(lapply(exprs, all.vars)))
  absent <- setdiff(vars, names(newdata))
  bad <- absent[!vapply(absent, function(v) {
    obj <- get0(v, envir = env, inherits = TRUE)
    !is.null(obj) && !is.function(obj) && length(obj) == 1L
  }, logical(1))]
  if (length(bad)) {
    stop("variable ", quote_names(bad), " needed by ", what, " not found in ",
         "'newdata' (its columns: ", paste(names(newdata), collapse = ", "), ")",
         hint, call. = FALSE)
  }
  invisible(NULL)
}

# Gives the factor columns of a new model frame the fit's levels: the
# fitting frame's levels first, then the new values in order of appearance.
# For the columns named in `strict` (covariates, as opposed to grouping
# factors) new values are an error naming the variable and the levels, and
# character columns get the sorted levels model.matrix() gave them in the
# fit. Contrasts set on the fitting frame's factors are kept.
align_levels <- function(mf, frame, strict = names(mf)) {
  for (v in intersect(names(mf), names(frame))) {
    old <- frame[[v]]
    error_on_new <- v %in% strict
    if (!is.factor(old) && !(error_on_new && is.character(old))) next
    x <- mf[[v]]
    if (!is.factor(x) && !is.character(x) && !is.logical(x) && !is.numeric(x)) next
    old_levels <- if (is.factor(old)) levels(old) else levels(factor(old))
    vals <- as.character(x)
    new <- setdiff(unique(vals[!is.na(vals)]), old_levels)
    if (error_on_new && length(new)) {
      stop("factor '", v, "' has new level", if (length(new) > 1L) "s",
           " in 'newdata' not seen when fitting: ", level_list(new),
           "; its levels are ", level_list(old_levels), call. = FALSE)
    }
    f <- factor(vals, levels = c(old_levels, new))
    ctr <- attr(old, "contrasts")
    if (!is.null(ctr)) attr(f, "contrasts") <- ctr
    mf[[v]] <- f
  }
  mf
}

# 'a', 'b', ... for messages, cut after 10 values.
level_list <- function(x, quote = TRUE) {
  shown <- utils::head(x, 10L)
  shown <- if (quote) quote_names(shown) else paste(shown, collapse = ", ")
  paste0(shown, if (length(x) > 10L) paste0(", ... (", length(x), " in all)"))
}

# ---------------------------------------------------------------------------
# Random part

# The variables of the terms `bars` for `newdata`, as a model frame laid out
# like the fit's (columns named as there, built with the fit's `predvars`,
# factor levels of the fit first, then new ones); rows with missing values
# are kept (na.pass).
random_data <- function(object, bars, newdata) {
  frame <- object$frame
  env <- environment(object$formula)
  if (is.null(env)) env <- parent.frame()
  rhs <- Reduce(function(a, b) call("+", a, b), lapply(bars, bars_to_sums))
  tt <- stats::terms(stats::as.formula(call("~", rhs), env = env))
  vars <- as.list(attr(tt, "variables"))[-1L]
  ftt <- attr(frame, "terms")
  frame_vars <- vapply(as.list(attr(ftt, "variables"))[-1L], deparse1, "")
  frame_pv <- as.list(attr(ftt, "predvars"))[-1L]
  pv <- lapply(vars, function(v) {
    i <- match(deparse1(v), frame_vars)
    if (is.na(i) || length(frame_pv) < i) v else frame_pv[[i]]
  })
  attr(tt, "predvars") <- as.call(c(quote(list), pv))
  for (bar in bars) {
    check_newdata_vars(list(bar), newdata, env,
                       paste0("random-effects term (", deparse1(bar), ")"),
                       hint = paste0("; for predictions without that term use ",
                                     "re.form = NA or a re.form that leaves it out"))
  }
  eval_env <- new.env(parent = env)
  assign(".mixedrs_newdata", newdata, envir = eval_env)
  mf_call <- call("model.frame", tt, data = quote(.mixedrs_newdata),
                  na.action = quote(stats::na.pass))
  mf_call[[1L]] <- quote(stats::model.frame)
  rfd <- tryCatch(eval(mf_call, eval_env), error = function(e) {
    stop("could not evaluate the random-effects variables in 'newdata': ",
         conditionMessage(e), call. = FALSE)
  })
  lhs_vars <- unlist(lapply(bars, function(bar) {
    vapply(as.list(attr(stats::terms(stats::as.formula(call("~", bar[[2L]]))),
                        "variables"))[-1L], deparse1, "")
  }))
  align_levels(rfd, frame, strict = lhs_vars)
}

# Grouping factor and columns of one term on a frame `rfd` laid out like the
# model frame (the fit's own frame, or random_data()). For a term of the
# model on the fit's own frame the stored factor and columns are used.
term_design <- function(object, bar, rfd, own_frame = FALSE) {
  term <- deparse1(bar)
  if (own_frame) {
    for (rt in object$reterms) {
      if (identical(rt$term, term)) {
        return(list(group = rt$group, term = term, factor = rt$factor, Z = rt$Z))
      }
    }
  }
  env <- environment(object$formula)
  if (is.null(env)) env <- parent.frame()
  Z <- tryCatch(
    stats::model.matrix(stats::as.formula(call("~", bar[[2L]]), env = env), rfd),
    error = function(e) {
      stop("could not build the columns of random-effects term (", term, "): ",
           conditionMessage(e), call. = FALSE)
    })
  Z <- matrix(as.double(Z), nrow(Z), ncol(Z), dimnames = list(NULL, colnames(Z)))
  list(group = deparse1(bar[[3L]]), term = term,
       factor = new_group_factor(bar[[3L]], rfd, term), Z = Z)
}

# Grouping factor of a term from the columns of `rfd`, with lme4's levels:
# those present, in the order of the column's levels (for factors) or sorted
# (other types); `a:b` gives the observed combinations ordered by the levels
# of a, then b. Missing values stay missing.
new_group_factor <- function(group, rfd, term) {
  if (is_call_to(group, "(")) return(new_group_factor(group[[2L]], rfd, term))
  if (is_call_to(group, ":") && length(group) == 3L) {
    f1 <- new_group_factor(group[[2L]], rfd, term)
    f2 <- new_group_factor(group[[3L]], rfd, term)
    labels <- paste(f1, f2, sep = ":")
    labels[is.na(f1) | is.na(f2)] <- NA
    first <- which(!duplicated(labels) & !is.na(labels))
    ord <- order(as.integer(f1)[first], as.integer(f2)[first])
    return(factor(labels, levels = labels[first][ord]))
  }
  name <- deparse1(group)
  x <- rfd[[name]]
  if (is.null(x) || NCOL(x) != 1L) {
    stop("grouping factor '", name, "' of random-effects term (", term,
         ") must be a variable or an interaction of variables", call. = FALSE)
  }
  factor(x)
}

# Conditional modes of the model's random effects, one levels x columns
# matrix per grouping factor (terms sharing a factor combined, as ranef()).
group_modes <- function(object) {
  fl <- object$flist
  asg <- attr(fl, "assign")
  out <- lapply(seq_along(fl), function(i) {
    do.call(cbind, lapply(object$b[asg == i], as.matrix))
  })
  names(out) <- names(fl)
  out
}

# The random-effects part of the linear predictor for the terms `bars` on
# the frame `rfd`: per row, the term's columns times the conditional modes
# of its level. Unseen levels and missing values of a grouping factor are an
# error unless `allow.new.levels` (they then contribute 0).
random_part <- function(object, bars, rfd, allow.new.levels, where = "newdata",
                        own_frame = FALSE) {
  modes <- group_modes(object)
  n <- nrow(rfd)
  total <- numeric(n)
  for (bar in bars) {
    d <- term_design(object, bar, rfd, own_frame)
    b <- modes[[d$group]]
    extra <- setdiff(colnames(d$Z), colnames(b))
    if (length(extra)) {
      stop("random-effects term (", d$term, ") has random effect", if (length(extra) > 1L) "s",
           " ", quote_names(extra), " that the model does not have for grouping ",
           "factor '", d$group, "' (it has ", quote_names(colnames(b)), ")",
           call. = FALSE)
    }
    idx <- check_new_levels(d, rownames(b), allow.new.levels, where, rownames(rfd))
    B <- b[idx, colnames(d$Z), drop = FALSE]
    B[is.na(idx), ] <- 0
    total <- total + rowSums(d$Z * B)
  }
  total
}

# ---------------------------------------------------------------------------
# Standard errors with random effects

# Standard errors of predictions that include the conditional modes of the
# terms `bars` (or, with `random_only`, of the random part alone), from the
# joint conditional covariance of (b, beta) at the estimates,
#   C = sigma^2 [Lambda 0; 0 I] M^-1 [Lambda' 0; 0 I]
# with M the penalized least squares system (mer_joint_factor()): for a row
# a = (z, x) of the prediction, se = sigma |L^-1 P (Lambda' z, x)|. Columns of
# terms not in `bars`, and of levels not in the fit (allow.new.levels), are
# zero (those terms predict at the population level there); with
# `random_only` the fixed-effects columns are zero.
predict_se_joint <- function(object, core, bars, allow.new.levels, random_only,
                             where, own_frame) {
  jf <- mer_joint_factor(object)
  n <- length(core$eta)
  p <- ncol(jf$X)
  Z <- prediction_z(object, bars, core$rfd, n, allow.new.levels, where, own_frame)
  X <- if (random_only || is.null(core$X)) Matrix::Matrix(0, n, p, sparse = TRUE) else
    Matrix::Matrix(core$X, sparse = TRUE)
  A <- cbind(methods::as(Z %*% mer_lambda(object), "CsparseMatrix"), X)
  ok <- which(is.finite(Matrix::rowSums(abs(A))))
  se <- rep(NA_real_, n)
  chunk <- max(1L, floor(1e7 / ncol(A)))
  for (start in seq.int(1L, length(ok), by = chunk)) {
    idx <- ok[seq.int(start, min(length(ok), start + chunk - 1L))]
    B <- mer_joint_solve(jf$factor, Matrix::t(A[idx, , drop = FALSE]))
    se[idx] <- sqrt(Matrix::colSums(B^2))
  }
  stats::sigma(object) * se
}

# The n x Q random-effects model matrix of a prediction, columns as the fit's
# (term by term, level by level, effect by effect: mer_model_matrix()), with
# the columns of the terms `bars` selects filled from the frame `rfd` and
# rows of unseen levels left at zero.
prediction_z <- function(object, bars, rfd, n, allow.new.levels, where, own_frame) {
  reterms <- object$reterms
  q <- vapply(reterms, function(t) length(t$cnms), 1L)
  nl <- vapply(reterms, function(t) nlevels(t$factor), 1L)
  offs <- cumsum(c(0L, q * nl))
  asg <- attr(object$flist, "assign")
  groups <- names(object$flist)
  ii <- integer()
  jj <- integer()
  xx <- numeric()
  for (bar in bars) {
    d <- term_design(object, bar, rfd, own_frame)
    g <- match(d$group, groups)
    idx <- check_new_levels(d, levels(object$flist[[g]]), allow.new.levels, where,
                            rownames(rfd))
    for (col in colnames(d$Z)) {
      terms_g <- which(asg == g)
      t <- terms_g[vapply(terms_g, function(k) col %in% reterms[[k]]$cnms, NA)][1L]
      if (is.na(t)) {
        stop("random-effects term (", d$term, ") has random effect '", col, "' that the ",
             "model does not have for grouping factor '", d$group, "'", call. = FALSE)
      }
      lev <- match(levels(object$flist[[g]])[idx], levels(reterms[[t]]$factor))
      keep <- which(!is.na(lev))
      ii <- c(ii, keep)
      jj <- c(jj, offs[t] + (lev[keep] - 1L) * q[t] + match(col, reterms[[t]]$cnms))
      xx <- c(xx, d$Z[keep, col])
    }
  }
  Matrix::sparseMatrix(i = ii, j = jj, x = xx, dims = c(n, offs[length(offs)]))
}

# Index of each row's level among the fitted levels `known` (NA for unseen
# levels and missing values), stopping on those unless `allow`. Rows are
# named in messages by `row_names` (those of the frame, so that rows left
# out by na.action do not shift them), else by position.
check_new_levels <- function(d, known, allow, where = "newdata", row_names = NULL) {
  lev <- as.character(d$factor)
  idx <- match(lev, known)
  new <- setdiff(unique(lev[!is.na(lev)]), known)
  if (allow) {
    # (glmmTMB-style predictions warn of them: predict_extended())
    if (length(new)) {
      signalCondition(structure(class = c("mixedrs_new_levels", "condition"),
                                list(message = "", call = NULL, term = d$term)))
    }
    return(idx)
  }
  if (length(new)) {
    stop("new levels detected in ", where, ": ", level_list(new, quote = FALSE),
         " (grouping factor '", d$group, "'); use ",
         "allow.new.levels = TRUE to predict them at the population level ",
         "(random effects 0) for that term", call. = FALSE)
  }
  if (anyNA(lev)) {
    rows <- which(is.na(lev))
    if (length(row_names) == length(lev)) rows <- row_names[rows]
    stop("NAs are not allowed in prediction data for grouping variables: ",
         "grouping factor '", d$group, "' has missing values in ", where,
         " (row", if (length(rows) > 1L) "s", " ",
         paste(utils::head(rows, 10L), collapse = ", "),
         if (length(rows) > 10L) ", ...", "); use allow.new.levels = TRUE ",
         "to predict them at the population level for that term, or ",
         "re.form = NA", call. = FALSE)
  }
  idx
}
