# Backward elimination of the terms of a linear mixed model, lmerTest's
# step(): first the random-effects terms, by ranova()'s likelihood ratio
# tests (with reduce.terms: a term, or one column of it, at a time): while
# some p-value exceeds alpha.random, the reduction with the largest is made
# and the model refitted (by lm() once no random effects are left); then
# the fixed-effects terms, by drop1()'s F tests of the marginal terms
# (Satterthwaite's or Kenward-Roger's df; lm()'s F tests for a model left
# without random effects): while some p-value of a term not kept exceeds
# alpha.fixed, the term with the largest is removed and the model refitted.

#' Backward elimination of random and fixed effects
#'
#' lmerTest's `step()` for a linear mixed model: the random-effects part is
#' reduced first, by the likelihood ratio tests of [ranova()]
#' (`reduce.terms = TRUE`): as long as a p-value is above `alpha.random`,
#' the term (or column of a term) with the largest p-value is removed and
#' the model refitted, with [stats::lm()] once no random-effects term is
#' left. Then the fixed-effects part is reduced by the F tests of
#' [drop1.lmm()] (only terms that no other term contains can go): as long as
#' a p-value of a term not in `keep` is above `alpha.fixed`, that term with
#' the largest p-value is removed and the model refitted. The refits are
#' evaluated in the caller's frame, through the model's call, with the
#' model's criterion (REML or ML).
#'
#' Loading mixedrs masks `stats::step()` with this generic, as loading
#' lmerTest does; for other models it calls `stats::step()`, and an
#' `lme4::lmer()` fit goes to lmerTest's `step()`. A model fitted by
#' [glmm()] has no such method (neither has lme4's `glmer()`): compare its
#' terms with `drop1(fit, test = "Chisq")` or [anova()] of nested fits.
#'
#' @param object A linear mixed model fitted by [lmm()] from a data frame;
#'   for `step.default()`, any model `stats::step()` takes.
#' @param ddf The denominator degrees of freedom of the F tests:
#'   `"Satterthwaite"` or `"Kenward-Roger"` (REML fits).
#' @param alpha.random,alpha.fixed The p-value above which a random-effects
#'   reduction or a fixed-effects term is eliminated.
#' @param reduce.random,reduce.fixed Logical: reduce that part of the model
#'   (`FALSE`: its tests are still shown).
#' @param keep A character vector of fixed-effects term labels that are not
#'   eliminated.
#' @param ... For `step.lmm()`, not used (an argument given here is an
#'   error); for `step.default()`, the arguments of `stats::step()`.
#' @return For a linear mixed model, an object of class `"step_list"`: a list
#'   of two `"anova"` tables, `random` and `fixed`, whose column `Eliminated`
#'   gives the order in which the rows were eliminated (0: kept), with the
#'   final model ([get_model()]) in attribute `"model"` and its [drop1()]
#'   table in attribute `"drop1"`.
#' @seealso [ranova()], [drop1.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("sleepstudy", package = "lme4")
#' set.seed(1)
#' sleepstudy$noise <- rnorm(nrow(sleepstudy))
#' fit <- lmm(Reaction ~ Days + noise + (Days | Subject), sleepstudy)
#' s <- step(fit)
#' s
#' get_model(s)
#' @export
step <- function(object, ...) UseMethod("step")

#' @rdname step
#' @export
step.default <- function(object, ...) {
  # stats::step() (or, for an lme4 fit, lmerTest's step()) called in the
  # caller's frame, where it evaluates its refits; `object` is passed as
  # its value, so that its expression is not evaluated again.
  call <- match.call()
  call$object <- object
  if (is_lmerTest_model(object)) return(call_lmerTest(call, "step", parent.frame()))
  call[[1L]] <- quote(stats::step)
  eval(call, parent.frame())
}

#' @rdname step
#' @export
step.lmm <- function(object, ddf = c("Satterthwaite", "Kenward-Roger"), alpha.random = 0.1,
                     alpha.fixed = 0.05, reduce.fixed = TRUE, reduce.random = TRUE, keep,
                     ...) {
  check_no_dots(..., caller = "step()")
  ddf <- match.arg(ddf)
  check_probability(alpha.random, "alpha.random")
  check_probability(alpha.fixed, "alpha.fixed")
  check_flag(reduce.fixed, "reduce.fixed", "step()")
  check_flag(reduce.random, "reduce.random", "step()")
  require_rows(object, "step()")
  labels <- attr(stats::terms(object), "term.labels")
  if (missing(keep)) {
    keep <- character(0L)
  } else if (!is.character(keep) || anyNA(keep) || !all(keep %in% labels)) {
    stop("step(): 'keep' must name fixed-effects terms of the model (",
         if (length(labels)) paste(sQuote(labels, FALSE), collapse = ", ") else "it has none",
         "), not ", paste(sQuote(setdiff(as.character(keep), labels), FALSE), collapse = ", "),
         call. = FALSE)
  }
  env <- parent.frame()
  random <- eliminate_random(object, if (reduce.random) alpha.random else 1, env)
  fixed <- eliminate_fixed(random$model, ddf, if (reduce.fixed) alpha.fixed else 1, keep, env)
  structure(list(random = random$table, fixed = fixed$table), model = fixed$model,
            drop1 = fixed$drop1, class = c("mixedrs_step_list", "step_list"))
}

#' @rdname step
#' @export
step.glmm <- function(object, ...) {
  stop("step() is lmerTest's backward elimination for linear mixed models (lmm()); ",
       "for a glmm() fit compare terms with drop1(fit, test = \"Chisq\") or anova() ",
       "of nested fits", call. = FALSE)
}

check_probability <- function(x, name) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x < 0 || x > 1) {
    stop("step(): '", name, "' must be a number between 0 and 1, not ", deparse1(x),
         call. = FALSE)
  }
}

# The random-effects part reduced while a ranova() p-value exceeds `alpha`:
# the final model, and the table of the reductions made (after the full
# model's row) followed by the final model's tests.
eliminate_random <- function(model, alpha, env) {
  reml <- isREML(model)
  tests <- ranova_fits(model, TRUE, env)
  eliminated <- tests$table[1L, , drop = FALSE]
  last <- tests$table
  repeat {
    p <- last[-1L, "Pr(>Chisq)"]
    if (!any(!is.na(p) & p > alpha)) break
    worst <- which.max(p)
    eliminated <- rbind(eliminated, last[1L + worst, , drop = FALSE])
    model <- tests$fits[[worst]]
    if (inherits(model, "lm")) {
      last <- structure(lr_table(ranova_loglik(model, reml)), row.names = "<none>",
                        class = c("anova", "data.frame"))
      break
    }
    tests <- ranova_fits(model, TRUE, env)
    last <- tests$table
  }
  table <- rbind(cbind(Eliminated = c(NA, seq_len(nrow(eliminated) - 1L)), eliminated),
                 cbind(Eliminated = rep(0, nrow(last) - 1L), last[-1L, , drop = FALSE]))
  list(model = model, table = structure(table, heading = "Backward reduced random-effect table:\n",
                                        class = c("anova", "data.frame")))
}

# The fixed-effects part reduced while the F test of a term not in `keep`
# has a p-value above `alpha`: the final model, its drop1() table, and the
# table of the terms eliminated (in order) followed by that drop1() table.
eliminate_fixed <- function(model, ddf, alpha, keep, env) {
  tests <- fixed_term_tests(model, ddf)
  eliminated <- tests[0L, , drop = FALSE]
  n <- stats::nobs(model)
  repeat {
    consider <- setdiff(rownames(tests), keep)
    p <- tests[consider, "Pr(>F)"]
    if (!any(!is.na(p) & p > alpha)) break
    term <- consider[which.max(p)]
    eliminated <- rbind(eliminated, tests[term, , drop = FALSE])
    form <- stats::formula(model)
    reduced <- unwrap_structured_terms(stats::update(form, paste0("~ . - (", term, ")")))
    environment(reduced) <- environment(form)
    # (the call's formula replaced: update() would rewrite it through
    # update.formula(), which puts a structured term in parentheses)
    call <- stats::getCall(model)
    call$formula <- reduced
    model <- eval_model_call(call, model, env)
    if (stats::nobs(model) != n) {
      stop("number of rows in use has changed: remove missing values? (the model without ",
           sQuote(term, FALSE), " used ", stats::nobs(model), " rows, the model ", n, ")",
           call. = FALSE)
    }
    tests <- fixed_term_tests(model, ddf)
  }
  table <- rbind(cbind(Eliminated = seq_len(nrow(eliminated)), eliminated),
                 cbind(Eliminated = rep(0, nrow(tests)), tests))
  heading <- "Backward reduced fixed-effect table:"
  if (inherits(model, "lmm")) heading <- c(heading, paste("Degrees of freedom method:", ddf, "\n"))
  list(model = model, drop1 = tests,
       table = structure(table, heading = heading, class = c("anova", "data.frame")))
}

# The F tests of the terms that can be dropped: drop1.lmm()'s, or lm()'s.
fixed_term_tests <- function(model, ddf) {
  if (inherits(model, "lmm")) return(stats::drop1(model, ddf = ddf))
  stats::drop1(model, test = "F")[-1L, , drop = FALSE]
}

#' @exportS3Method print mixedrs_step_list
print.mixedrs_step_list <- function(x, ...) {
  print(x[["random"]], ...)
  cat("\n")
  print(x[["fixed"]], ...)
  cat("\nModel found:", deparse1(stats::formula(attr(x, "model"))), sep = "\n")
  invisible(x)
}

#' @rdname step
#' @param x A `"step_list"` returned by `step()`.
#' @param which,pairwise,level For `plot()`: the plot of [ls_means()] of the
#'   model found.
#' @param y,mult Passed to the `plot()` method of [ls_means()].
#' @exportS3Method plot mixedrs_step_list
plot.mixedrs_step_list <- function(x, y = NULL, which = NULL, pairwise = FALSE, mult = TRUE,
                                   level = 0.95, ddf = c("Satterthwaite", "Kenward-Roger"), ...) {
  model <- get_model(x)
  if (!inherits(model, "lmm")) {
    stop("plot(): the model found by step() has no random effects (an lm() fit); ",
         "its LS-means are not drawn", call. = FALSE)
  }
  plot(ls_means(model, pairwise = pairwise, level = level, ddf = match.arg(ddf)), y = y,
       which = which, mult = mult, ...)
}

#' The model found by step()
#'
#' The final model of a backward elimination by [step()] (lmerTest's
#' `get_model()`).
#'
#' @param x A `"step_list"` returned by [step()].
#' @param ... Not used.
#' @return The model that [step()] arrived at: a fit of [lmm()], or of
#'   [stats::lm()] when every random-effects term was eliminated.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("sleepstudy", package = "lme4")
#' s <- step(lmm(Reaction ~ Days + (Days | Subject), sleepstudy))
#' get_model(s)
#' @export
get_model <- function(x, ...) UseMethod("get_model")

#' @rdname get_model
#' @export
get_model.step_list <- function(x, ...) attr(x, "model")
