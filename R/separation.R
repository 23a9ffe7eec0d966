# Why a binomial GLMM's PIRLS can fail: complete or quasi-complete separation by the fixed
# effects. Then some linear combination of the columns of X predicts the 0/1 outcome perfectly,
# the likelihood keeps increasing as those coefficients grow, and no maximum-likelihood estimate
# exists (glmer stops with "pwrssUpdate did not converge"). The check fits the fixed-effects-only
# logistic regression with glm.fit(): separation shows as fitted probabilities of exactly 0 or 1
# and coefficients that run off to very large values.

# A sentence explaining a PIRLS failure by separation, or NULL when the data are not separated
# (or the family is not binomial).
separation_diagnosis <- function(inputs, family) {
  if (!identical(family$family, "binomial")) return(NULL)
  X <- inputs$X
  w <- as.double(inputs$weights) * as.double(inputs$n_trials)
  fit_glm <- function(epsilon) {
    tryCatch(suppressWarnings(stats::glm.fit(
      X, as.double(inputs$y), weights = w, offset = inputs$offset,
      family = stats::binomial(link = family$link),
      control = stats::glm.control(epsilon = epsilon, maxit = 100L)
    )), error = function(e) NULL)
  }
  g <- fit_glm(1e-8)
  if (is.null(g)) return(NULL)
  # glm.fit stops after maxit steps on the way to infinity: fitted values within 1e-6 of 0 or 1
  # are those it is driving there.
  extreme <- g$fitted.values < 1e-6 | g$fitted.values > 1 - 1e-6
  # Diverging: a coefficient whose change of the log-odds per standard deviation of its column
  # is beyond anything a logistic regression estimates from data that are not separated.
  coefs <- g$coefficients
  spread <- apply(X, 2L, stats::sd)
  # (Columns along which the fit merely drifts while the separating ones run off are left out:
  # they move by a small fraction as much.)
  # The intercept (no spread) counts by its own size.
  effect <- ifelse(!is.finite(coefs), 0, abs(coefs) * ifelse(spread > 0, spread, 0.5))
  diverging <- names(coefs)[effect > 4 & effect > 0.05 * max(effect)]
  if (!any(extreme[w > 0]) || !length(diverging)) {
    # Quasi-complete separation by a rare column (e.g. one observation with a
    # 1 in an indicator): its coefficient's change per standard deviation stays
    # small while it runs off, and glm.fit's default tolerance stops before the
    # separated observations reach 0 or 1. Run to a tight tolerance, and take
    # as diverging the coefficients whose standard error per standard deviation
    # of their column has exploded (about 0.1 to 1 in data that are not
    # separated).
    g <- fit_glm(1e-14)
    if (is.null(g) || g$rank < ncol(X)) return(NULL)
    extreme <- g$fitted.values < 1e-6 | g$fitted.values > 1 - 1e-6
    se <- sqrt(diag(chol2inv(qr.R(g$qr))))[order(g$qr$pivot)]
    se_effect <- se * ifelse(spread > 0, spread, 0.5)
    diverging <- colnames(X)[is.finite(se_effect) & se_effect > 50]
    if (!any(extreme[w > 0]) || !length(diverging)) return(NULL)
  }
  paste0(
    "the fixed effects separate the binomial response ",
    if (all(extreme[w > 0])) "completely" else "quasi-completely",
    ": a logistic regression on them alone predicts ", sum(extreme[w > 0]), " of ",
    sum(w > 0), " observations with probability 0 or 1, and the estimates of ",
    paste(sQuote(diverging, FALSE), collapse = ", "),
    " grow without bound, so maximum-likelihood estimates do not exist. Remove or recode ",
    if (length(diverging) == 1L) "that predictor" else "those predictors",
    " (or merge the categories that are all 0 or all 1)"
  )
}

# Calls `fit_call()` (the engine); a PIRLS failure of a separated binomial model is re-raised
# with the diagnosis, any other engine error without the internal call.
with_separation_check <- function(fit_call, inputs, family) {
  tryCatch(fit_call(), error = function(e) {
    msg <- conditionMessage(e)
    why <- if (grepl("PIRLS|not positive definite", msg)) {
      separation_diagnosis(inputs, family)
    }
    if (!is.null(why)) stop(why, call. = FALSE)
    stop(msg, call. = FALSE)
  })
}
