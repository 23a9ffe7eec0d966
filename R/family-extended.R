# PROVISIONAL (replaced by helper famdefs' R/family-extended.R): the minimal
# resolution of glmmTMB's family names and their response checks.

extended_family <- function(family, env = parent.frame()) {
  if (is.function(family)) family <- tryCatch(family(), error = function(e) NULL)
  name <- if (is.character(family)) family else if (inherits(family, "family")) family$family else NULL
  if (is.null(name) || length(name) != 1L) return(NULL)
  if (identical(name, "beta_family")) name <- "beta"
  if (!name %in% c("nbinom2", "nbinom1", "beta", "betabinomial")) return(NULL)
  link <- if (inherits(family, "family")) family$link else
    if (name %in% c("beta", "betabinomial")) "logit" else "log"
  lk <- stats::make.link(link)
  structure(list(family = name, link = link, linkfun = lk$linkfun,
                 linkinv = lk$linkinv, mu.eta = lk$mu.eta,
                 valideta = lk$valideta), class = "family")
}

extended_response <- function(y, family, weights, what) {
  n <- NROW(y)
  if (is.null(weights)) weights <- rep(1, n)
  if (family$family == "betabinomial") {
    if (is.matrix(y)) return(list(y = y[, 1], n_trials = y[, 1] + y[, 2], weights = weights))
    return(list(y = round(y * weights), n_trials = weights, weights = rep(1, n)))
  }
  list(y = as.double(y), n_trials = rep(1, n), weights = weights)
}

check_zi_family <- function(name) {
  if (!name %in% c("poisson", "nbinom1", "nbinom2")) stop("ziformula needs a count family, not ", name, call. = FALSE)
}

check_disp_family <- function(name) {
  stop("the ", name, " family has no dispersion parameter", call. = FALSE)
}
