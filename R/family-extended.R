# The families with an extra (dispersion) parameter that glmm() fits in
# glmmTMB's parameterisation: the family constructors nbinom2(), nbinom1(),
# beta_family() and betabinomial(); the normalisation of what a user passes
# as `family` (ours, glmmTMB's, or a name) into one of them; the response
# checks of these families (and of a Poisson response fitted glmmTMB-style);
# and which families may carry a zero-inflation or a dispersion model.

# The links each family accepts (the first is the default).
extended_links <- list(
  nbinom2 = c("log", "sqrt", "identity"),
  nbinom1 = c("log", "sqrt", "identity"),
  beta = c("logit", "probit", "cloglog"),
  betabinomial = c("logit", "probit", "cloglog")
)

# Families glmmTMB has and glmm() does not fit: named in `family` (as a
# string, or as the `$family` of an object, or the function's name) they are
# errors rather than passed on.
unsupported_tmb_families <- c(
  "truncated_poisson", "truncated_nbinom1", "truncated_nbinom2",
  "truncated_genpois", "truncated_compois", "genpois", "compois", "tweedie",
  "ordbeta", "t_family", "t", "ziGamma", "skewnormal", "lognormal", "bell"
)

# "nbinom2 (log, sqrt, identity), nbinom1 (...), ..." for messages.
extended_families_text <- function() {
  paste0(c("nbinom2", "nbinom1", "beta_family", "betabinomial"), " (",
         vapply(extended_links, paste, "", collapse = ", "), ")",
         collapse = ", ")
}

# Builds a family object from its name, link and variance function, with
# the link functions of stats::make.link().
new_extended_family <- function(name, link, variance, extra = list()) {
  link <- check_extended_link(name, link)
  lk <- stats::make.link(link)
  fam <- c(list(family = name, link = link), lk,
           list(variance = variance), extra)
  structure(fam, class = "family")
}

check_extended_link <- function(name, link) {
  allowed <- extended_links[[name]]
  label <- if (name == "beta") "beta_family" else name
  if (!is.character(link) || length(link) != 1L || is.na(link)) {
    stop("'link' of ", label, "() must be a single string, one of ",
         paste0("\"", allowed, "\"", collapse = ", "), call. = FALSE)
  }
  if (!link %in% allowed) {
    stop("link '", link, "' is not supported for the ", label, " family; ",
         "use one of: ", paste0("\"", allowed, "\"", collapse = ", "),
         call. = FALSE)
  }
  link
}

# Stops when a dispersion argument of a variance function is missing
# (glmmTMB silently substitutes 1 or 1e-16 there).
need_dispersion <- function(value, arg, family) {
  if (is.null(value)) {
    stop("the variance function of the ", family, " family needs the ",
         "dispersion parameter '", arg, "'", call. = FALSE)
  }
}

#' Families with a dispersion parameter: negative binomial, beta and
#' beta-binomial
#'
#' Family objects for [glmm()] in glmmTMB's parameterisation, with the same
#' names, components and meaning as glmmTMB's (whose objects `glmm()`
#' accepts too). Each has the link functions of [stats::make.link()]
#' (`linkfun`, `linkinv`, `mu.eta`, `valideta`) and a `variance` function of
#' the mean and the dispersion parameter, which is estimated by the fit:
#'
#' * `nbinom2()`: negative binomial with variance `mu * (1 + mu / theta)`
#'   (the model of `lme4::glmer.nb()` and `MASS::glm.nb()`);
#'   `variance(mu, theta)`.
#' * `nbinom1()`: negative binomial with variance `mu * (1 + phi)`, linear in
#'   the mean; `variance(mu, alpha)` with `alpha = phi`.
#' * `beta_family()`: beta distribution for proportions strictly between 0
#'   and 1, with shapes `mu * phi` and `(1 - mu) * phi`, so variance
#'   `mu * (1 - mu) / (1 + phi)`. As in glmmTMB, `variance(mu)` is the
#'   variance function `mu * (1 - mu)` without the factor `1 / (1 + phi)`.
#' * `betabinomial()`: binomial counts whose success probability is beta
#'   distributed with shapes `mu * phi` and `(1 - mu) * phi`; for `n` trials
#'   the number of successes has variance
#'   `n * mu * (1 - mu) * (1 + (n - 1) / (1 + phi))`. As in glmmTMB,
#'   `variance(mu, phi)` returns `mu * (1 - mu)`.
#'
#' The variance functions of the negative binomials need their dispersion
#' argument (glmmTMB's substitute 1 or 1e-16 when it is left out; these are
#' errors).
#'
#' @param link Name of the link function: `"log"` (default), `"sqrt"` or
#'   `"identity"` for the negative binomials; `"logit"` (default),
#'   `"probit"` or `"cloglog"` for `beta_family()` and `betabinomial()`.
#' @return An object of class `"family"`; its `family` component is
#'   `"nbinom2"`, `"nbinom1"`, `"beta"` or `"betabinomial"`.
#' @seealso [glmm()], whose `dispformula` models the dispersion parameter.
#' @examples
#' fam <- nbinom2()
#' fam
#' fam$linkinv(log(3))
#' fam$variance(mu = 3, theta = 2)   # 3 * (1 + 3 / 2)
#' nbinom1(link = "sqrt")$variance(mu = 4, alpha = 0.5)
#' beta_family()$linkfun(0.25)       # qlogis(0.25)
#' betabinomial(link = "probit")$linkinv(0)
#' @name extended_families
#' @export
nbinom2 <- function(link = "log") {
  new_extended_family("nbinom2", link, function(mu, theta = NULL) {
    need_dispersion(theta, "theta", "nbinom2")
    mu * (1 + mu / theta)
  }, list(
    validmu = function(mu) all(is.finite(mu)) && all(mu > 0),
    # Unit deviance of the negative binomial with size theta (as
    # MASS::negative.binomial()'s).
    dev.resids = function(y, mu, wt, theta = NULL) {
      need_dispersion(theta, "theta", "nbinom2")
      2 * wt * (y * log(pmax(1, y) / mu) -
                  (y + theta) * log((y + theta) / (mu + theta)))
    }))
}

#' @rdname extended_families
#' @export
nbinom1 <- function(link = "log") {
  new_extended_family("nbinom1", link, function(mu, alpha = NULL) {
    need_dispersion(alpha, "alpha", "nbinom1")
    mu * (1 + alpha)
  }, list(validmu = function(mu) all(is.finite(mu)) && all(mu > 0)))
}

#' @rdname extended_families
#' @export
beta_family <- function(link = "logit") {
  new_extended_family("beta", link, function(mu) mu * (1 - mu), list(
    validmu = function(mu) all(is.finite(mu)) && all(mu > 0 & mu < 1)))
}

#' @rdname extended_families
#' @export
betabinomial <- function(link = "logit") {
  new_extended_family("betabinomial", link, function(mu, phi = NULL) {
    mu * (1 - mu)
  }, list(validmu = function(mu) all(is.finite(mu)) && all(mu > 0 & mu < 1)))
}

# Our constructor for a family name ("beta_family" and "beta" are the same).
extended_constructors <- list(nbinom2 = nbinom2, nbinom1 = nbinom1,
                              beta = beta_family, beta_family = beta_family,
                              betabinomial = betabinomial)

#' Normalise a `family` argument that names an extended family
#'
#' Given what a user passes as `family` to glmm(): our family objects or
#' functions, glmmTMB's (same names), or the names `"nbinom2"`, `"nbinom1"`,
#' `"beta_family"`, `"beta"`, `"betabinomial"`, returns our family object
#' with the same link. glmmTMB's families that glmm() does not fit
#' (truncated, generalized Poisson, Conway-Maxwell, Tweedie, ordered beta,
#' Student t, ...) are errors naming the family. Anything else (binomial,
#' poisson, Gamma, other objects) gives `NULL`, for [resolve_family()].
#'
#' @param family what the user passed as `family`.
#' @param env environment of the call (unused for the names handled here,
#'   which always mean these families; kept for the caller's symmetry with
#'   resolve_family()).
#' @return A family object or `NULL`.
#' @noRd
extended_family <- function(family, env = parent.frame()) {
  if (is.character(family)) {
    if (length(family) != 1L || is.na(family)) return(NULL)
    if (family %in% names(extended_constructors)) {
      return(extended_constructors[[family]]())
    }
    if (family %in% unsupported_tmb_families) stop_unsupported_family(family)
    return(NULL)
  }
  if (is.function(family)) {
    # Our constructors and glmmTMB's are recognised by identity, so that no
    # other function is called here (resolve_family() deals with those).
    name <- extended_function_name(family)
    if (is.null(name)) return(NULL)
    if (name %in% unsupported_tmb_families) stop_unsupported_family(name)
    return(extended_constructors[[name]]())
  }
  if (inherits(family, "family")) {
    name <- family$family
    if (!is.character(name) || length(name) != 1L) return(NULL)
    if (name %in% unsupported_tmb_families) stop_unsupported_family(name)
    if (!name %in% names(extended_links)) return(NULL)
    link <- family$link
    if (!is.character(link) || length(link) != 1L) {
      stop("'family' (", name, ") is not a valid family object: its 'link' ",
           "component must be a single string", call. = FALSE)
    }
    return(extended_constructors[[name]](link = link))
  }
  NULL
}

# The name of our or glmmTMB's family function `fun` ("nbinom2", ...,
# "ordbeta", ...), or NULL when it is neither. The function's namespace is
# looked at first, so that stats' families (the usual case) cost no
# comparison of closures.
extended_function_name <- function(fun) {
  fenv <- environment(fun)
  if (is.null(fenv) || !isNamespace(fenv)) return(NULL)
  pkg <- unname(getNamespaceName(fenv))
  if (identical(pkg, "mixedrs")) {
    for (name in c("nbinom2", "nbinom1", "beta_family", "betabinomial")) {
      if (identical(fun, extended_constructors[[name]])) return(name)
    }
    return(NULL)
  }
  if (!identical(pkg, "glmmTMB")) return(NULL)
  tmb_names <- c("nbinom2", "nbinom1", "beta_family", "betabinomial",
                 unsupported_tmb_families)
  for (name in tmb_names) {
    f <- get0(name, envir = fenv, mode = "function", inherits = FALSE)
    if (!is.null(f) && identical(fun, f)) return(name)
  }
  NULL
}

stop_unsupported_family <- function(name) {
  hint <- switch(name,
    ordbeta = paste0(" (ordered beta regression, for proportions that ",
                     "include 0 and 1, is not supported yet)"),
    "")
  stop("family '", name, "' is not supported by glmm()", hint,
       "; supported families (links): ", extended_families_text(), ", ",
       supported_families_text(), call. = FALSE)
}

#' Check and convert the response of an extended family
#'
#' @param y the model frame's response: a vector, or for betabinomial a
#'   two-column matrix `cbind(successes, failures)`.
#' @param family a family object or its name (`"nbinom2"`, `"nbinom1"`,
#'   `"poisson"`, `"beta"`, `"betabinomial"`).
#' @param weights prior weights or `NULL`.
#' @param what description of the response for messages, e.g.
#'   "the response 'count'".
#' @return `list(y, n_trials, weights)`: the response as fitted (for
#'   betabinomial the number of successes), the number of trials (ones
#'   except for betabinomial) and the prior weights multiplying each
#'   observation's log-likelihood. The user's data are not modified.
#' @noRd
extended_response <- function(y, family, weights = NULL, what = "the response") {
  name <- if (is.character(family)) family else family$family
  if (!is.null(dim(y)) && length(dim(y)) == 1L) y <- as.vector(y)
  if (is.matrix(y) && ncol(y) == 1L) y <- y[, 1L]
  n <- NROW(y)
  has_weights <- !is.null(weights)
  weights <- response_weights(weights, n)
  if (name == "betabinomial") {
    return(betabinomial_response(y, weights, has_weights, what))
  }
  if (!name %in% c("nbinom2", "nbinom1", "poisson", "beta")) {
    stop("internal error: extended_response() does not handle the ", name,
         " family", call. = FALSE)
  }
  label <- if (name == "beta") "beta" else name
  if (is.matrix(y)) {
    stop(what, " has ", ncol(y), " columns; a two-column ",
         "cbind(successes, failures) response is for the binomial and ",
         "betabinomial families, not ", label, ": use a single numeric ",
         "response", call. = FALSE)
  }
  if (is.factor(y) || is.logical(y) || !is.numeric(y)) {
    stop("response must be numeric for the ", label, " family: ", what, " is ",
         if (is.factor(y)) "a factor" else class(y)[1L], call. = FALSE)
  }
  y <- as.double(unname(y))
  stop_if_nonfinite(y, what)
  if (name == "beta") {
    check_beta_values(y, what)
  } else {
    check_counts(y, what, label)
  }
  list(y = y, n_trials = rep(1, n), weights = weights)
}

# Counts must be non-negative whole numbers.
check_counts <- function(y, what, label) {
  bad <- y < 0
  if (any(bad)) {
    stop(what, " has ", n_values(bad, "negative value"), " (e.g. ",
         format(y[bad][1L]), " in row ", which(bad)[1L], "); the ", label,
         " family is for counts: non-negative whole numbers", call. = FALSE)
  }
  bad <- not_whole(y)
  if (any(bad)) {
    stop(what, " has ", n_values(bad, "non-integer value"), " (e.g. ",
         format(y[bad][1L]), " in row ", which(bad)[1L], "); the ", label,
         " family is for counts: non-negative whole numbers", call. = FALSE)
  }
}

# Beta responses must lie strictly between 0 and 1.
check_beta_values <- function(y, what) {
  outside <- y < 0 | y > 1
  if (any(outside)) {
    stop(what, " has ", n_values(outside, "value"), " outside [0, 1] (e.g. ",
         format(y[outside][1L]), " in row ", which(outside)[1L], "); the ",
         "beta family is for proportions strictly between 0 and 1",
         call. = FALSE)
  }
  zeros <- sum(y == 0)
  ones <- sum(y == 1)
  if (zeros + ones > 0L) {
    counted <- c(if (zeros) paste0(zeros, " zero", if (zeros > 1L) "s"),
                 if (ones) paste0(ones, " one", if (ones > 1L) "s"))
    stop(what, " has ", paste(counted, collapse = " and "), "; the beta ",
         "family needs values strictly between 0 and 1 (its density is 0 or ",
         "infinite at the ends). glmmTMB's ordered-beta family (ordbeta) is ",
         "the usual route for proportions that include 0 and 1; mixedrs does ",
         "not support it yet. Users commonly squeeze the data into (0, 1) ",
         "instead, e.g. (y * (n - 1) + 0.5) / n for n observations",
         call. = FALSE)
  }
}

# The betabinomial response. y (as fitted) is the number of successes and
# n_trials the number of trials, from
# * cbind(successes, failures): y = successes, n_trials = successes +
#   failures, weights = the prior weights;
# * 0/1 values (numbers, logical, or a two-level factor whose first level is
#   failure): one trial each, weights = the prior weights (glmmTMB treats
#   0/1 data so even when weights are given);
# * proportions with the number of trials as weights: y = proportion *
#   trials, n_trials = weights, and prior weights 1 (as glmmTMB does).
betabinomial_response <- function(y, weights, has_weights, what) {
  n <- NROW(y)
  if (is.matrix(y)) {
    if (ncol(y) != 2L || !is.numeric(y)) {
      stop(what, " is a ", if (is.numeric(y)) "numeric" else typeof(y),
           " matrix with ", ncol(y), " columns; a betabinomial response ",
           "with counts must have two numeric columns, ",
           "cbind(successes, failures)", call. = FALSE)
    }
    s <- as.double(y[, 1L])
    f <- as.double(y[, 2L])
    stop_if_nonfinite(c(s, f), what)
    for (k in 1:2) {
      v <- if (k == 1L) s else f
      col <- c("successes", "failures")[k]
      bad <- v < 0 | not_whole(v)
      if (any(bad)) {
        stop(what, " has ", n_values(bad, "negative or non-integer count"),
             " in column ", k, " (", col, ", e.g. ", format(v[bad][1L]),
             " in row ", which(bad)[1L], "); cbind(successes, failures) ",
             "must hold whole numbers >= 0", call. = FALSE)
      }
    }
    # (a row of zero trials has probability 1 whatever the parameters: it adds
    # nothing, as in glmmTMB)
    return(list(y = s, n_trials = s + f, weights = weights))
  }
  if (is.factor(y)) {
    if (nlevels(y) != 2L) {
      stop(what, " is a factor with ", nlevels(y), " levels; a betabinomial ",
           "response factor must have two levels (the first counts as ",
           "failure)", call. = FALSE)
    }
    y <- as.double(y != levels(y)[1L])
  }
  if (is.logical(y)) y <- as.double(y)
  if (!is.numeric(y)) {
    stop(what, " must be cbind(successes, failures), proportions with the ",
         "number of trials as 'weights', or 0/1 values for the betabinomial ",
         "family, not ", class(y)[1L], call. = FALSE)
  }
  y <- as.double(unname(y))
  stop_if_nonfinite(y, what)
  outside <- y < 0 | y > 1
  if (any(outside)) {
    stop(what, " has ", n_values(outside, "value"), " outside [0, 1] (e.g. ",
         format(y[outside][1L]), " in row ", which(outside)[1L], "); for ",
         "counts of successes use cbind(successes, failures) with the ",
         "betabinomial family", call. = FALSE)
  }
  if (all(y == 0 | y == 1)) {
    return(list(y = y, n_trials = rep(1, n), weights = weights))
  }
  if (!has_weights) {
    stop(what, " has ", n_values(y > 0 & y < 1, "value"), " strictly ",
         "between 0 and 1 but no 'weights': for proportions give the number ",
         "of trials as 'weights', or use cbind(successes, failures)",
         call. = FALSE)
  }
  bad <- not_whole(weights)
  if (any(bad)) {
    stop("'weights' (the numbers of trials of the proportions in ", what,
         ") has ", n_values(bad, "non-integer value"), " (e.g. ",
         format(weights[bad][1L]), " in row ", which(bad)[1L], ")",
         call. = FALSE)
  }
  successes <- y * weights
  bad <- not_whole(successes)
  if (any(bad)) {
    i <- which(bad)[1L]
    stop("'weights' times ", what, " (the number of successes) must be ",
         "whole numbers for the betabinomial family; ",
         n_values(bad, "value"), " not (e.g. row ", i, ": ",
         format(weights[i]), " x ", format(y[i]), ")", call. = FALSE)
  }
  list(y = round(successes), n_trials = round(weights), weights = rep(1, n))
}

#' Which families may carry a zero-inflation or a dispersion model
#'
#' `check_zi_family()` stops unless the family (by name) is poisson, nbinom1
#' or nbinom2; `check_disp_family()` stops unless a dispersion model may be
#' given for it (nbinom1, nbinom2, beta, betabinomial, gaussian, Gamma).
#' @param family_name the family's name as in `family$family`.
#' @return `family_name`, invisibly.
#' @noRd
check_zi_family <- function(family_name) {
  if (!family_name %in% c("poisson", "nbinom1", "nbinom2")) {
    stop("'ziformula' (zero-inflation) needs a count family: poisson, ",
         "nbinom1 or nbinom2; the ", family_name, " family cannot carry it ",
         "in glmm()", call. = FALSE)
  }
  invisible(family_name)
}

#' @rdname check_zi_family
#' @noRd
check_disp_family <- function(family_name) {
  allowed <- c("nbinom1", "nbinom2", "beta", "betabinomial", "gaussian", "Gamma")
  if (family_name %in% c("binomial", "poisson")) {
    stop("'dispformula' cannot be used with the ", family_name, " family: ",
         "it has no dispersion parameter (use nbinom1 or nbinom2 for ",
         "overdispersed counts, betabinomial for overdispersed binomial ",
         "data)", call. = FALSE)
  }
  if (!family_name %in% allowed) {
    stop("'dispformula' is not supported for the ", family_name, " family; ",
         "a dispersion model can be given for: ",
         paste(allowed, collapse = ", "), call. = FALSE)
  }
  invisible(family_name)
}
