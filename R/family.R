# Family and response stage of glmm(): which response distributions and link
# functions the engine fits, and the response processing glmer() does before
# fitting. The family's own `initialize` expression (the one glm() runs) turns
# the response into what is fitted: a factor or a cbind(successes, failures)
# response into proportions, the trials into prior weights, and starting
# values `mustart`. Before it runs, the response is checked here, so that
# data the likelihood cannot describe stop with an error that names the
# response (where glm() and glmer() only warn or stop deep inside a fit).

# The families glmm() fits, each with the links it supports (names as the
# family objects of package stats spell them).
glmm_families <- list(
  binomial = c("logit", "probit", "cloglog", "cauchit", "log"),
  poisson = c("log", "sqrt", "identity"),
  Gamma = c("inverse", "log", "identity"),
  inverse.gaussian = c("1/mu^2", "log", "inverse"),
  gaussian = c("log", "inverse", "logit", "probit", "cloglog", "cauchit")
)

# "binomial (logit, probit, ...), poisson (...), ..." for messages.
supported_families_text <- function() {
  paste0(names(glmm_families), " (",
         vapply(glmm_families, paste, "", collapse = ", "), ")",
         collapse = ", ")
}

#' Resolve the `family` argument of glmm()
#'
#' Accepts what `lme4::glmer()` accepts: a family object such as
#' `binomial(link = "probit")`, a family function such as `poisson` (called
#' without arguments, so with its default link) or the name of one, such as
#' `"poisson"` (looked up as a function from `env`). The result must be one of
#' the families and links in `glmm_families`; everything else (quasi
#' families, `gaussian` with the identity link, negative binomial, unknown
#' names, other objects) is an error that says what is supported.
#'
#' @param family a family object, a family function or its name.
#' @param env environment where a family given by name is looked up.
#' @return The family object (class `"family"`).
#' @noRd
resolve_family <- function(family, env = parent.frame()) {
  if (is.character(family)) family <- family_from_name(family, env)
  if (is.function(family)) family <- family_from_function(family)
  if (!inherits(family, "family")) {
    stop("'family' must be a family object such as binomial() or ",
         "poisson(link = \"sqrt\"), a family function such as binomial, or ",
         "the name of one such as \"poisson\"; not ", describe_class(family),
         call. = FALSE)
  }
  check_family(family)
  family
}

# The family functions of package stats that may be named in 'family'
# (the quasi ones only to be turned down with a clear message).
stats_family_names <- c("binomial", "poisson", "Gamma", "inverse.gaussian",
                        "gaussian", "quasi", "quasibinomial", "quasipoisson")

# The family function named `name`: one of package stats' family functions,
# found from `env` as glmer() finds it (so a masking definition is used),
# else from stats. Other names are not looked up, so no arbitrary function is
# ever called.
family_from_name <- function(name, env) {
  if (length(name) != 1L || is.na(name)) {
    stop("'family' given as a name must be a single string such as ",
         "\"binomial\" or \"poisson\", not a character vector of length ",
         length(name), call. = FALSE)
  }
  if (name %in% stats_family_names) {
    fun <- get0(name, envir = env, mode = "function", inherits = TRUE)
    if (is.null(fun)) fun <- get(name, envir = asNamespace("stats"), mode = "function")
    return(fun)
  }
  if (grepl("negative.?binomial|^nb", name, ignore.case = TRUE)) {
    stop("family \"", name, "\" (negative binomial) needs its theta: give ",
         "MASS::negative.binomial(theta) to hold theta fixed, or use glmm.nb() or ",
         "family = nbinom2 to estimate it", call. = FALSE)
  }
  alike <- names(glmm_families)[tolower(names(glmm_families)) == tolower(name)]
  hint <- if (length(alike)) paste0(" (did you mean \"", alike, "\"?)") else ""
  stop("unknown family \"", name, "\"", hint, "; 'family' must name one of ",
       "the supported families (links): ", supported_families_text(),
       call. = FALSE)
}

# Calls a family function without arguments (its default link).
family_from_function <- function(fun) {
  tryCatch(fun(), error = function(e) {
    what <- if ("theta" %in% names(formals(fun)))
      paste0(" (a negative binomial family needs 'theta': give MASS::negative.binomial(theta) ",
             "to hold theta fixed, or use glmm.nb() or family = nbinom2 to estimate it)") else ""
    stop("'family' is a function that could not be called without ",
         "arguments", what, ": ", conditionMessage(e), ". Give a family ",
         "object such as binomial(link = \"probit\"); supported families ",
         "(links): ", supported_families_text(), call. = FALSE)
  })
}

# Stops unless `family` is a complete family object of a supported family
# and link.
check_family <- function(family) {
  name <- family$family
  link <- family$link
  if (!is.character(name) || length(name) != 1L ||
      !is.character(link) || length(link) != 1L) {
    stop("'family' is not a valid family object: its 'family' and 'link' ",
         "components must be single strings", call. = FALSE)
  }
  # A supported family and link (the common case) needs no reason why not.
  if (!link %in% glmm_families[[name]]) stop_unsupported_family_link(name, link)
  parts <- c("linkfun", "linkinv", "mu.eta", "variance", "dev.resids", "aic")
  bad <- parts[!vapply(unclass(family)[parts], is.function, NA)]
  if (length(bad) || !is.language(family$initialize)) {
    stop("'family' (", name, ") is not a valid family object: it lacks ",
         quote_names(c(bad, if (!is.language(family$initialize)) "initialize")),
         "; build it with ", name, "()", call. = FALSE)
  }
  invisible(family)
}

# Stops with the reason why glmm() cannot fit family `name` with `link`.
stop_unsupported_family_link <- function(name, link) {
  if (name %in% c("quasi", "quasibinomial", "quasipoisson")) {
    stop("quasi families (here ", name, ") cannot be used in glmm(): they ",
         "have no likelihood, so the Laplace approximation is undefined; use ",
         "one of the supported families (links): ", supported_families_text(),
         call. = FALSE)
  }
  if (grepl("^negative binomial", name, ignore.case = TRUE)) {
    stop("the negative binomial family object (", name, ") is not one glmm() ",
         "can read: give MASS::negative.binomial(theta) to hold theta fixed, or ",
         "use glmm.nb() or family = nbinom2 to estimate it", call. = FALSE)
  }
  if (name == "gaussian" && link == "identity") {
    stop("family gaussian with the identity link is a linear mixed model: ",
         "use lmm() to fit it (glmm() takes gaussian with another link: ",
         paste(glmm_families$gaussian, collapse = ", "), ")", call. = FALSE)
  }
  if (!name %in% names(glmm_families)) {
    stop("family '", name, "' is not supported by glmm(); supported ",
         "families (links): ", supported_families_text(), call. = FALSE)
  }
  links <- glmm_families[[name]]
  stop("link '", link, "' is not supported for the ", name, " family; ",
       "use one of: ", paste0("\"", links, "\"", collapse = ", "),
       " (e.g. ", name, "(link = \"", links[1L], "\"))", call. = FALSE)
}

#' Process the response of a GLMM as glmer() does
#'
#' Checks the response of the model frame against the family and then runs
#' the family's `initialize` expression, as `glm()` and lme4 do, in a local
#' environment holding `y`, `weights`, `nobs`, `etastart = NULL`,
#' `mustart = NULL`, `start = NULL` and `family`.
#'
#' For the binomial family the response may be 0/1 numbers, logical, a
#' two-level factor (the first level is failure), proportions with the number
#' of trials as `weights`, or `cbind(successes, failures)` (fitted as
#' proportions, the trials multiplying the prior weights and giving `n`).
#' Counts must be whole numbers (glm() only warns); Poisson responses must be
#' non-negative whole numbers (glmer accepts non-integer counts and reports a
#' log-likelihood of -Inf);
#' Gamma and inverse Gaussian responses must be positive.
#'
#' @param frame the model frame (its response is used).
#' @param family a family object accepted by [resolve_family()].
#' @param weights prior weights (positive, finite) or `NULL` for ones.
#' @param check.response.not.const what to do when the response (as fitted)
#'   is constant: `"stop"` (glmer's default), `"warning"`, `"message"` or
#'   `"ignore"`.
#' @return A list of double vectors without names: `y` (the response as
#'   fitted), `weights` (prior weights after `initialize`, e.g. times the
#'   trials), `n` (binomial trials as glm's `initialize` sets them; ones
#'   otherwise), `mustart` and `etastart = family$linkfun(mustart)`.
#' @noRd
glmm_response <- function(frame, family, weights = NULL,
                          check.response.not.const = "stop",
                          mustart = NULL, etastart = NULL) {
  check_family(family)
  name <- response_name(frame)
  what <- paste0("response '", name, "'")
  nobs <- nrow(frame)
  has_weights <- !is.null(weights)
  weights <- response_weights(weights, nobs)
  y <- response_values(frame)
  if (length(dim(y)) == 1L) y <- as.vector(y)
  if (is.matrix(y) && ncol(y) == 1L) y <- y[, 1L]
  y <- if (family$family == "binomial")
    binomial_response(y, weights, has_weights, frame, what) else
      other_response(y, family, what,
                     has_start = !is.null(mustart) || !is.null(etastart))
  init <- run_initialize(family, unname(y), weights, nobs, what, mustart, etastart)
  if (!is.null(check.response.not.const) &&
      check.response.not.const != "ignore" && !any(init$y != init$y[1L])) {
    signal_check(check.response.not.const, paste0(
      "Response is constant: ", what, " is ", format(init$y[1L]),
      " in all ", nobs, " observations (as fitted by the ", family$family,
      " family), so there is nothing to model"))
  }
  init
}

# The response's name as the model frame spells it.
response_name <- function(frame) {
  idx <- attr(attr(frame, "terms"), "response")
  if (is.null(idx) || idx == 0L) {
    stop("the model has no response: write the formula as ",
         "response ~ terms", call. = FALSE)
  }
  names(frame)[idx]
}

# Prior weights as a double vector (ones when NULL), checked: non-negative
# (a row of weight 0 adds nothing to a GLMM's likelihood, as in glm() and
# glmer(); frame_weights() has checked them for a model frame's weights).
response_weights <- function(weights, nobs) {
  if (is.null(weights)) return(rep.int(1, nobs))
  if (!is.numeric(weights) || length(weights) != nobs) {
    stop("'weights' must be a numeric vector with one value per observation (",
         nobs, ")", call. = FALSE)
  }
  weights <- as.double(weights)
  stop_if_nonfinite(weights, "'weights'")
  if (any(weights < 0)) {
    stop("'weights' must not be negative (", n_values(weights < 0, "negative value"),
         ")", call. = FALSE)
  }
  weights
}

# TRUE where `x` is not a whole number, with glm's tolerance (it warns about
# non-integer counts beyond 0.001; here they are an error).
not_whole <- function(x) abs(x - round(x)) > 1e-3

# The response values checked for the binomial family: a double vector, or
# a two-column double matrix of successes and failures. `weights` are the
# prior weights (ones when `has_weights` is FALSE).
binomial_response <- function(y, weights, has_weights, frame, what) {
  if (is.matrix(y)) {
    if (ncol(y) != 2L || !is.numeric(y)) {
      stop(what, " is a ", if (is.numeric(y)) "numeric" else typeof(y),
           " matrix with ", ncol(y), " columns; a binomial response with ",
           "counts must have two numeric columns, cbind(successes, failures)",
           call. = FALSE)
    }
    storage.mode(y) <- "double"
    stop_if_nonfinite(y, what)
    for (k in 1:2) {
      bad <- which(y[, k] < 0)
      if (length(bad)) {
        stop(what, " has ", length(bad), " negative count",
             if (length(bad) > 1L) "s", " in column ", k, " (", count_column_names(frame)[k],
             ", e.g. ", format(y[bad[1L], k]), " in row ",
             rownames(frame)[bad[1L]], "); successes and failures must be ",
             ">= 0", call. = FALSE)
      }
      bad <- which(not_whole(y[, k]))
      if (length(bad)) {
        stop(what, " has ", length(bad), " non-integer count",
             if (length(bad) > 1L) "s", " in column ", k, " (", count_column_names(frame)[k],
             ", e.g. ", format(y[bad[1L], k]), " in row ",
             rownames(frame)[bad[1L]], "); cbind(successes, failures) ",
             "must hold whole numbers of successes and failures",
             call. = FALSE)
      }
    }
    return(unname(y))
  }
  if (is.factor(y)) {
    if (nlevels(y) > 2L) {
      stop(what, " is a factor with ", nlevels(y), " levels (",
           paste(utils::head(levels(y), 5L), collapse = ", "),
           if (nlevels(y) > 5L) ", ...", "); a binomial response factor ",
           "must have two levels (the first counts as failure): combine ",
           "levels or use a 0/1 variable", call. = FALSE)
    }
    y <- as.double(y != levels(y)[1L])
    stop_if_nonfinite(y, what)
    return(y)
  }
  if (is.logical(y)) y <- as.double(y)
  if (!is.numeric(y)) {
    stop("response must be numeric or factor for the binomial family (0/1 ",
         "numbers, proportions with the number of trials as 'weights', ",
         "logical, a two-level factor or cbind(successes, failures)): ", what,
         " is ", class(y)[1L], call. = FALSE)
  }
  y <- as.double(y)
  stop_if_nonfinite(y, what)
  bad <- which(y < 0 | y > 1)
  if (length(bad)) {
    stop(what, " has ", length(bad), " value", if (length(bad) > 1L) "s",
         " outside [0, 1] (e.g. ", format(y[bad[1L]]), " in row ",
         rownames(frame)[bad[1L]], "); a binomial response must be 0/1 or ",
         "proportions in [0, 1]; for counts of successes use ",
         "cbind(successes, failures)", call. = FALSE)
  }
  bad <- which(not_whole(weights * y))
  if (length(bad)) {
    if (!has_weights) {
      stop(what, " has ", length(bad), " value", if (length(bad) > 1L) "s",
           " strictly between 0 and 1 (e.g. ", format(y[bad[1L]]),
           " in row ", rownames(frame)[bad[1L]], ") but no 'weights': for ",
           "proportions give the number of trials as 'weights', or use ",
           "cbind(successes, failures)", call. = FALSE)
    }
    i <- bad[1L]
    stop("'weights' times ", what, " (the number of successes) must be ",
         "whole numbers for the binomial family; ", length(bad), " value",
         if (length(bad) > 1L) "s are" else " is", " not (e.g. row ",
         rownames(frame)[i], ": weights ", format(weights[i]), " x ",
         format(y[i]), " = ", format(weights[i] * y[i]), "); with ",
         "proportions as the response, 'weights' must be the number of trials",
         call. = FALSE)
  }
  y
}

# Labels of the two columns of a cbind() response, from the formula's
# left-hand side ("successes"/"failures" when it is not a cbind() call).
count_column_names <- function(frame) {
  lhs <- attr(attr(frame, "terms"), "variables")[[1L + attr(attr(frame, "terms"), "response")]]
  if (is_call_to(lhs, "cbind") && length(lhs) == 3L) {
    return(vapply(as.list(lhs)[2:3], deparse1, ""))
  }
  c("successes", "failures")
}

# The response values checked for the families other than binomial: a
# double vector (logical converted to 0/1, as glmer does).
other_response <- function(y, family, what, has_start = FALSE) {
  fam <- family$family
  if (is.matrix(y)) {
    stop(what, " has ", ncol(y), " columns; a two-column ",
         "cbind(successes, failures) response is only for the binomial ",
         "family, not ", fam, ": use a single numeric response", call. = FALSE)
  }
  if (is.factor(y)) {
    stop(what, " is a factor; a factor response needs family = binomial ",
         "(two levels), while the ", fam, " family needs a numeric response",
         call. = FALSE)
  }
  if (is.logical(y)) y <- as.double(y)
  if (!is.numeric(y)) {
    stop("response must be numeric for the ", fam, " family: ", what, " is ",
         class(y)[1L], call. = FALSE)
  }
  y <- as.double(y)
  stop_if_nonfinite(y, what)
  if (fam == "poisson") {
    if (any(y < 0)) {
      stop(what, " has ", n_values(y < 0, "negative value"), " (e.g. ",
           format(y[y < 0][1L]), "); the poisson family is for counts >= 0",
           call. = FALSE)
    }
    frac <- not_whole(y)
    if (any(frac)) {
      # glmer accepts them and returns logLik = -Inf: stop instead.
      stop(what, " has ", n_values(frac, "non-integer value"), " (e.g. ",
           format(y[frac][1L]), "); the poisson family is for ",
           "whole-number counts (its likelihood is zero elsewhere)",
           call. = FALSE)
    }
  } else if (fam %in% c("Gamma", "inverse.gaussian")) {
    if (any(y <= 0)) {
      stop(what, " has ", n_values(y <= 0, "zero or negative value"),
           " (e.g. ", format(y[y <= 0][1L]), "); the ", fam, " family needs ",
           "a positive response", call. = FALSE)
    }
  } else if (fam == "gaussian" && !has_start) {
    if (family$link == "log" && any(y <= 0)) {
      stop("cannot find valid starting values: ", what, " has ",
           n_values(y <= 0, "zero or negative value"),
           "; the gaussian family with log link starts from the response, ",
           "so it must be positive, or valid starting values must be given ",
           "('mustart' or 'etastart')", call. = FALSE)
    }
    if (family$link == "inverse" && any(y == 0)) {
      stop("cannot find valid starting values: ", what, " has ",
           n_values(y == 0, "zero value"), "; the gaussian ",
           "family with inverse link starts from the response, so it must ",
           "be non-zero, or valid starting values must be given ('mustart' ",
           "or 'etastart')", call. = FALSE)
    }
  }
  y
}

# "3 negative values" / "1 negative value": the count of TRUEs in `cond`.
n_values <- function(cond, noun) {
  k <- sum(cond)
  paste0(k, " ", noun, if (k != 1L) "s")
}

# Runs family$initialize as glm() does, in a local environment, and returns
# its y, weights, n, mustart and etastart as plain double vectors. A
# user's `mustart` (glmer's argument) is kept over the one initialize sets,
# as glm.fit() keeps it; a user's `etastart` gives the start of the linear
# predictor (and mustart its inverse link).
run_initialize <- function(family, y, weights, nobs, what, mustart = NULL,
                           etastart = NULL) {
  rho <- new.env(parent = asNamespace("stats"))
  rho$y <- y
  rho$weights <- weights
  rho$nobs <- nobs
  rho$etastart <- etastart
  rho$mustart <- mustart
  rho$start <- NULL
  rho$family <- family
  tryCatch(eval(family$initialize, rho), error = function(e) {
    stop("the ", family$family, " family could not use ", what, ": ",
         conditionMessage(e), call. = FALSE)
  })
  if (!is.null(mustart)) rho$mustart <- mustart
  if (!is.null(etastart)) rho$mustart <- family$linkinv(etastart)
  out <- list(y = rho$y, weights = rho$weights, n = rho$n,
              mustart = rho$mustart)
  if (is.null(out$n)) out$n <- rep.int(1, nobs)
  out <- lapply(out, function(v) as.double(unname(v)))
  if (is.null(etastart) && family$family == "gaussian" &&
      family$link %in% c("logit", "probit", "cloglog", "cauchit") &&
      any(out$mustart <= 0 | out$mustart >= 1)) {
    stop("gaussian(link = \"", family$link, "\") models a mean between 0 and 1, and its ",
         "starting means are the response, which has values outside (0, 1) (from ",
         format(min(out$mustart)), " to ", format(max(out$mustart)), "): give 'mustart' or ",
         "'etastart' inside that range, or use another link", call. = FALSE)
  }
  out$etastart <- as.double(if (is.null(etastart)) {
    suppressWarnings(family$linkfun(out$mustart))
  } else {
    etastart
  })
  if (!is.null(mustart) || !is.null(etastart)) {
    arg <- if (is.null(etastart)) "mustart" else "etastart"
    if (length(out$mustart) != nobs || !all(is.finite(out$mustart)) ||
        !all(is.finite(out$etastart)) ||
        (is.function(family$validmu) && !family$validmu(out$mustart)) ||
        (is.function(family$valideta) && !family$valideta(out$etastart))) {
      stop("'", arg, "' must give ", nobs, " valid starting values (one per ",
           "observation used) of the ", family$family, " family's ",
           if (arg == "mustart") "mean" else "linear predictor", call. = FALSE)
    }
  }
  ok <- vapply(out, function(v) length(v) == nobs && all(is.finite(v)), NA)
  if (!all(ok)) {
    stop("the ", family$family, " family's initialization of ", what,
         " gave invalid values for ", quote_names(names(out)[!ok]),
         call. = FALSE)
  }
  out
}
