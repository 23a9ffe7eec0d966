# Refits of a model through its call (ranova(), step(), drop1() with refits,
# the reduced models of KRmodcomp() and friends, update()). The call names
# the data as the user wrote it (`data = d`), so it has to be evaluated
# where that name means the model's data: the caller's frame, or, for a
# model fitted inside a function, the environment of its formula (the
# function's frame, where lme4's update() looks first). The caller's frame
# is tried first, then the formula's environment; for refits of the same
# data, a frame where the name holds other data (a different response) is
# passed over.

eval_model_call <- function(call, fit, env, same_data = TRUE) {
  envs <- list(env)
  formula_env <- environment(mer_formula(fit))
  if (!is.null(formula_env) && !identical(formula_env, env)) envs <- c(envs, formula_env)
  first_error <- NULL
  for (e in envs) {
    refit <- tryCatch(eval(call, e), error = function(err) err)
    if (inherits(refit, "error")) {
      if (is.null(first_error)) first_error <- refit
      next
    }
    if (!same_data || same_response(refit, fit)) return(refit)
  }
  if (is.null(first_error)) {
    stop("the model could not be refitted to its own data: where its call was evaluated, ",
         "the data it names hold another response", call. = FALSE)
  }
  stop(conditionMessage(first_error), call. = FALSE)
}

# TRUE unless `refit` has as many observations as `fit` and another response.
same_response <- function(refit, fit) {
  y <- if (inherits(refit, "lm")) stats::model.response(stats::model.frame(refit)) else refit$y
  if (is.null(y) || is.null(fit$y) || NROW(y) != NROW(fit$y)) return(TRUE)
  identical(unname(as.numeric(y)), unname(as.numeric(fit$y)))
}
