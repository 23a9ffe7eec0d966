# Likelihood ratio tests of the random-effects terms of a linear mixed model,
# lmerTest's ranova(): each term is removed (or, with reduce.terms, reduced by
# one of its columns at a time), the model refitted with the same criterion
# (REML or ML), and the statistic 2 (l_full - l_reduced) referred to a
# chi-squared distribution with the difference in parameters as degrees of
# freedom. A reduced model without random effects is fitted by lm(), whose
# REML or ML log-likelihood takes the place of the mixed model's.

#' ANOVA-like table of the random-effects terms
#'
#' For each random-effects term of a linear mixed model, the likelihood ratio
#' test of the model without that term (or, with `reduce.terms = TRUE`, of
#' the model with the term reduced by one of its columns), as
#' `lmerTest::ranova()` computes it: the reduced models are fitted with the
#' criterion of `model` (REML or ML), and a model left without random
#' effects is fitted by [stats::lm()].
#'
#' With `reduce.terms = TRUE` (the default) a term `(1 | g)` is removed, and a
#' term with more columns, such as `(1 + x | g)`, is replaced by the term
#' without one of them in turn (`(1 | g)`; a term whose columns would all go,
#' such as `(0 + x | g)` or `(f | g)` with a factor `f`, becomes `(1 | g)`);
#' the rows are then named "x in (1 + x | g)". Terms with a covariance
#' structure (`cs()`, `ar1()`, `diag()`, `toep()`, `us()`) are removed
#' whole. `||` and nesting (`/`) are expanded first, as lme4 expands them.
#'
#' lmerTest's `ranova()` is not a generic function: with lmerTest attached
#' after mixedrs it masks this one and stops on `lmm()` fits, so call
#' `mixedrs::ranova()` there (or attach mixedrs last). lmerTest's `step()`,
#' `ls_means()`, `difflsmeans()` and `contest()` are generics and reach
#' mixedrs' methods in either order.
#'
#' @param model A linear mixed model fitted by [lmm()] from a data frame (an
#'   `lme4::lmer()` fit is handed to `lmerTest::ranova()`).
#' @param reduce.terms Logical: reduce terms with several columns one column
#'   at a time (`TRUE`, lmerTest's default) or remove each term whole.
#' @param ... Not used; an argument given here is an error.
#' @return A data frame of class `"anova"` with one row for `model`
#'   (`"<none>"`) and one per reduced model: `npar`, `logLik`, `AIC`, and for
#'   the reduced models `LRT`, `Df` and `Pr(>Chisq)`. Its attribute
#'   `"formulae"` holds the reduced models' formulas. The p-values do not
#'   account for variances tested at the boundary of their space (they are
#'   conservative there, as lmerTest's).
#' @seealso [anova.lmm()] for tests of the fixed effects and comparisons of
#'   fitted models.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("sleepstudy", package = "lme4")
#' fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
#' ranova(fit)
#' # the whole term removed instead
#' ranova(fit, reduce.terms = FALSE)
#' @export
ranova <- function(model, reduce.terms = TRUE, ...) {
  # An lme4 fit (with mixedrs attached after lmerTest, this function masks
  # lmerTest's) goes to lmerTest's ranova().
  if (is_lmerTest_model(model)) return(call_lmerTest(match.call(), "ranova", parent.frame()))
  if (!inherits(model, "lmm")) {
    stop("ranova() tests the random-effects terms of a linear mixed model fitted by lmm(), ",
         "not ", describe_class(model), "; for other models compare nested fits with anova()",
         call. = FALSE)
  }
  if (...length() > 0L) {
    dots <- names(list(...))
    stop("ranova() takes 'model' and 'reduce.terms' only, not ",
         if (is.null(dots) || any(dots == "")) "unnamed arguments" else
           paste0("'", dots, "'", collapse = ", "), call. = FALSE)
  }
  check_flag(reduce.terms, "reduce.terms", "ranova()")
  if (is_sums_fit(model)) {
    stop("ranova() refits the model without each random-effects term, which needs the rows: ",
         "this model was fitted from a database table or from aggregates", call. = FALSE)
  }
  ranova_fits(model, reduce.terms, parent.frame())$table
}

#' @rdname ranova
#' @details `rand()` is lmerTest's older name of `ranova()`.
#' @export
rand <- function(model, reduce.terms = TRUE, ...) {
  call <- match.call()
  call[[1L]] <- ranova
  eval(call, parent.frame())
}

# ranova()'s table of an lmm() fit and the reduced models' fits (lmm() or
# lm()), refitted in `env` (the frame of the user's call, where the model's
# data can be found).
ranova_fits <- function(model, reduce.terms, env) {
  reml <- isREML(model)
  form <- formula(model)
  if (!is.null(model$model_formula)) form <- model$model_formula
  parsed <- parse_lmm_formula(form)
  terms_text <- mapply(random_term_text, parsed$bars, parsed$structures)
  fixed_rhs <- deparse1(parsed$fixed_formula[[3L]])
  full <- unwrap_structured_terms(
    stats::update(form, paste(". ~", paste(c(fixed_rhs, terms_text), collapse = " + "))))
  environment(full) <- environment(form)
  reduced <- if (reduce.terms) {
    unlist(unname(Map(reduced_term_formulas, terms_text, parsed$bars, parsed$structures,
               MoreArgs = list(full = full))), recursive = FALSE)
  } else {
    stats::setNames(lapply(terms_text, remove_term_formula, full = full), terms_text)
  }
  rows <- list(ranova_loglik(model, reml))
  fits <- lapply(reduced, ranova_refit, model = model, env = env)
  for (refit in fits) {
    if (stats::nobs(refit) != stats::nobs(model)) {
      stop("number of rows in use has changed: remove missing values? (the model without ",
           "a random-effects term used ", stats::nobs(refit), " rows, the model ",
           stats::nobs(model), ")", call. = FALSE)
    }
    rows[[length(rows) + 1L]] <- ranova_loglik(refit, reml)
  }
  table <- lr_table(do.call(rbind, rows))
  rownames(table) <- c("<none>", names(reduced))
  attr(table, "formulae") <- reduced
  table <- structure(table, heading = c("ANOVA-like table for random-effects: Single term deletions",
                                        "\nModel:", deparse1(full)),
                     class = c("anova", "data.frame"))
  list(table = table, fits = fits)
}

# The text of a random-effects term in a formula: "(lhs | g)" for a plain
# bar, "type(lhs | g)" (with hom = when it is not the structure's default)
# for a structured one.
random_term_text <- function(bar, structure) {
  if (identical(structure$type, "us")) return(paste0("(", deparse1(bar), ")"))
  hom <- if (!is.na(structure_defaults[[structure$type]]) &&
             !identical(structure$hom, structure_defaults[[structure$type]])) {
    paste0(", hom = ", structure$hom)
  }
  paste0(structure$type, "(", deparse1(bar), hom, ")")
}

# `full` without the term written `text`.
remove_term_formula <- function(text, full) {
  f <- unwrap_structured_terms(stats::update(full, paste0("~ . - ", text)))
  environment(f) <- environment(full)
  f
}

# The reduced models of one term, named as lmerTest names them: the term
# removed when it has a single column (or a structure), otherwise one model
# per column of its left-hand side with that column dropped (all of them
# dropped: the intercept kept).
reduced_term_formulas <- function(text, bar, structure, full) {
  lhs <- stats::as.formula(call("~", bar[[2L]]))
  scope <- attr(stats::terms(lhs), "term.labels")
  if (!identical(structure$type, "us") || length(scope) == 0L) {
    return(stats::setNames(list(remove_term_formula(text, full)), text))
  }
  group <- deparse1(bar[[3L]])
  forms <- lapply(scope, function(column) {
    kept <- if (setequal(scope, column)) "1" else
      gsub("~", "", deparse1(stats::update(lhs, paste("~ . -", column))), fixed = TRUE)
    f <- unwrap_structured_terms(
      stats::update(full, paste0("~ . - ", text, " + (", trimws(kept), " | ", group, ")")))
    environment(f) <- environment(full)
    f
  })
  stats::setNames(forms, paste(scope, paste0("in ", text)))
}

# The model refitted with formula `f`: lmm() through the model's call, or
# lm() (without lmm()'s own arguments) when `f` has no random effects left.
ranova_refit <- function(f, model, env) {
  cl <- stats::getCall(model)
  if (contains_bar(f[[3L]])) {
    cl$formula <- f
  } else {
    cl <- cl[!names(cl) %in% c("control", "start", "verbose", "devFunOnly", "REML")]
    cl[[1L]] <- quote(stats::lm)
    cl$formula <- f
  }
  eval_model_call(cl, model, env)
}

# npar and the log-likelihood (REML when `reml`) of a fit.
ranova_loglik <- function(fit, reml) {
  # (an lm() fit without coefficients: its REML log-likelihood is the ML one,
  # which stats::logLik() gives where it gives NA for REML)
  ll <- if (inherits(fit, "lm")) {
    stats::logLik(fit, REML = reml && length(stats::coef(fit)) > 0L)
  } else {
    stats::logLik(fit)
  }
  data.frame(npar = attr(ll, "df"), logLik = as.numeric(ll))
}

# The likelihood ratio table: each reduced model (rows after the first)
# against the first.
lr_table <- function(x) {
  out <- data.frame(npar = x$npar, logLik = x$logLik, AIC = -2 * x$logLik + 2 * x$npar,
                    LRT = NA_real_, Df = NA_real_, `Pr(>Chisq)` = NA_real_,
                    check.names = FALSE)
  if (nrow(x) > 1L) {
    lrt <- 2 * (x$logLik[1L] - x$logLik[-1L])
    df <- x$npar[1L] - x$npar[-1L]
    out$LRT[-1L] <- lrt
    out$Df[-1L] <- df
    out$`Pr(>Chisq)`[-1L] <- stats::pchisq(lrt, ifelse(df > 0, df, NA_real_), lower.tail = FALSE)
  }
  out
}

# TRUE for an lme4 fit that lmerTest's functions can take (lmerTest installed).
is_lmerTest_model <- function(model) {
  inherits(model, "merMod") && requireNamespace("lmerTest", quietly = TRUE)
}

# `call` (of one of our functions named as lmerTest's) evaluated as the call of
# lmerTest's function `name`, in `env`: the caller's frame, where lmerTest
# evaluates its refits.
call_lmerTest <- function(call, name, env) {
  call[[1L]] <- call("::", quote(lmerTest), as.name(name))
  eval(call, env)
}
