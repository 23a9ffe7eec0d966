# The catalogue of count and proportion models (negative binomial, zero
# inflation, dispersion models, beta, beta-binomial) shared by the side-by-side
# tests (test-glmm-families.R, test-glmm-nb.R) and by bench/glmm-families.R,
# with their reference fits (glmmTMB or lme4::glmer.nb) made once per session.

# --- data -------------------------------------------------------------------

# Proportions strictly inside (0, 1) from a beta GLMM with crossed groups
# (40 subjects x 8 items, 2 replicates per cell): logit(mu) = -0.4 + 0.6 x +
# u_subject + v_item, precision phi = exp(2 + 0.8 z) when `disp` (z a
# two-level factor), else exp(2.3).
simulate_beta_crossed <- function(seed = 17, disp = FALSE) {
  set.seed(seed)
  d <- expand.grid(item = factor(seq_len(8)), subject = factor(seq_len(40)), rep = 1:2)
  n <- nrow(d)
  d$x <- stats::rnorm(n)
  d$z <- factor(sample(c("a", "b"), n, replace = TRUE))
  eta <- -0.4 + 0.6 * d$x + stats::rnorm(40, sd = 0.5)[d$subject] +
    stats::rnorm(8, sd = 0.3)[d$item]
  mu <- stats::plogis(eta)
  phi <- if (disp) exp(2 + 0.8 * (d$z == "b")) else rep(exp(2.3), n)
  d$prop <- stats::rbeta(n, mu * phi, (1 - mu) * phi)
  d$rep <- NULL
  d
}

# Positive responses from a Gamma GLMM with a log link and a random
# intercept; the shape is 2 in group type "a" and 6 in "b" (a dispersion
# model ~ type recovers it).
simulate_gamma_disp <- function(seed = 18) {
  set.seed(seed)
  d <- data.frame(g = factor(rep(seq_len(30), each = 12)), x = stats::rnorm(360),
                  type = factor(rep(c("a", "b"), 180)))
  shape <- ifelse(d$type == "a", 2, 6)
  mu <- exp(0.8 + 0.4 * d$x + stats::rnorm(30, sd = 0.5)[d$g])
  d$y <- stats::rgamma(360, shape = shape, scale = mu / shape)
  d
}

# The data sets of the catalogue, each made once per session.
family_data_cache <- new.env(parent = emptyenv())

# A data set of a package, loaded without attaching it.
package_data <- function(name, package) {
  e <- new.env()
  utils::data(list = name, package = package, envir = e)
  e[[name]]
}

family_data <- function(name) {
  if (!is.null(family_data_cache[[name]])) return(family_data_cache[[name]])
  d <- switch(name,
    Salamanders = package_data("Salamanders", "glmmTMB"),
    Owls = package_data("Owls", "glmmTMB"),
    grouse = {
      g <- package_data("grouseticks", "lme4")
      g$HEIGHT_s <- as.numeric(scale(g$HEIGHT))
      g
    },
    epil = package_data("epil", "MASS"),
    cbpp = package_data("cbpp", "lme4"),
    sleepstudy = package_data("sleepstudy", "lme4"),
    beta_crossed = simulate_beta_crossed(disp = FALSE),
    beta_disp = simulate_beta_crossed(seed = 23, disp = TRUE),
    gamma_disp = simulate_gamma_disp(),
    stop("unknown data set ", name)
  )
  family_data_cache[[name]] <- d
  d
}

# --- the catalogue ----------------------------------------------------------

# One model: `family` is glmmTMB's family name, `link` its link; `offset` an
# expression passed as the `offset =` argument (NULL: none, or an offset()
# term in the formula); `reference` the package it is compared with.
family_case <- function(name, formula, data, family, link = NULL, ziformula = ~0,
                        dispformula = ~1, offset = NULL, reference = "glmmTMB") {
  list(name = name, formula = formula, data = data, family = family,
       link = if (is.null(link)) default_family_link(family) else link,
       ziformula = ziformula, dispformula = dispformula, offset = offset,
       reference = reference)
}

default_family_link <- function(family) {
  switch(family, nbinom2 = , nbinom1 = , poisson = , Gamma = "log",
         beta = , betabinomial = , binomial = "logit", gaussian = "identity",
         stop("no default link for ", family))
}

family_cases <- function() {
  sal <- count ~ spp + mined + (1 | site)
  owl <- SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest)
  cases <- list(
    family_case("Salamanders poisson", sal, "Salamanders", "poisson"),
    family_case("Salamanders zipoisson ~mined", sal, "Salamanders", "poisson",
                ziformula = ~mined),
    family_case("Salamanders nbinom2", sal, "Salamanders", "nbinom2"),
    family_case("Salamanders nbinom2 zi ~mined", sal, "Salamanders", "nbinom2",
                ziformula = ~mined),
    family_case("Salamanders nbinom1 zi ~1", sal, "Salamanders", "nbinom1", ziformula = ~1),
    family_case("Salamanders nbinom2 zi ~spp", count ~ mined + (1 | site), "Salamanders",
                "nbinom2", ziformula = ~spp),
    family_case("Salamanders nbinom2 crossed", count ~ mined + DOY + (1 | site) + (1 | spp),
                "Salamanders", "nbinom2"),
    family_case("Owls nbinom1 offset()", owl, "Owls", "nbinom1"),
    family_case("Owls nbinom2 offset =",
                SiblingNegotiation ~ FoodTreatment * SexParent + (1 | Nest), "Owls", "nbinom2",
                offset = quote(log(BroodSize))),
    family_case("Owls nbinom2 disp ~FoodTreatment", owl, "Owls", "nbinom2",
                dispformula = ~FoodTreatment),
    family_case("Owls nbinom1 disp ~FoodTreatment zi ~1", owl, "Owls", "nbinom1",
                ziformula = ~1, dispformula = ~FoodTreatment),
    family_case("grouseticks glmer.nb", TICKS ~ YEAR + HEIGHT_s + (1 | BROOD), "grouse",
                "nbinom2", reference = "glmer.nb"),
    family_case("grouseticks nbinom2", TICKS ~ YEAR + HEIGHT_s + (1 | BROOD), "grouse",
                "nbinom2"),
    family_case("epil glmer.nb", y ~ trt + base + age + (1 | subject), "epil", "nbinom2",
                reference = "glmer.nb"),
    family_case("epil nbinom2", y ~ trt + base + age + (1 | subject), "epil", "nbinom2"),
    family_case("Owls glmer.nb offset()", owl, "Owls", "nbinom2", reference = "glmer.nb"),
    family_case("beta crossed", prop ~ x + (1 | subject) + (1 | item), "beta_crossed", "beta"),
    family_case("beta disp ~z", prop ~ x + (1 | subject) + (1 | item), "beta_disp", "beta",
                dispformula = ~z),
    family_case("cbpp betabinomial", cbind(incidence, size - incidence) ~ period + (1 | herd),
                "cbpp", "betabinomial"),
    family_case("sleepstudy gaussian disp ~Days", Reaction ~ Days + (Days | Subject),
                "sleepstudy", "gaussian", dispformula = ~Days),
    family_case("Gamma log disp ~type", y ~ x + (1 | g), "gamma_disp", "Gamma",
                dispformula = ~type),
    family_case("Salamanders zipoisson zi ~mined + (1 | spp)", sal, "Salamanders", "poisson",
                ziformula = ~mined + (1 | spp)),
    family_case("Salamanders nbinom2 zi ~mined + (1 | spp)", sal, "Salamanders", "nbinom2",
                ziformula = ~mined + (1 | spp)),
    family_case("Owls nbinom1 zi ~FoodTreatment + (1 | Nest)", owl, "Owls", "nbinom1",
                ziformula = ~FoodTreatment + (1 | Nest))
  )
  names(cases) <- vapply(cases, `[[`, "", "name")
  cases
}

# (compared as text: formulas made in different places carry different
# environments)
has_zi <- function(case) !identical(deparse(case$ziformula), "~0")
has_disp_model <- function(case) !identical(deparse(case$dispformula), "~1")

# --- calls ------------------------------------------------------------------

# The family argument as an expression: glmmTMB's family object for the
# reference, the family name (or stats' family object) for mixedrs.
family_expr <- function(case, pkg) {
  fam <- case$family
  link <- case$link
  if (fam %in% c("poisson", "gaussian", "Gamma", "binomial")) {
    return(fix_ns_call(call(fam, link = link), "stats", fam))
  }
  if (pkg == "glmmTMB") {
    fun <- if (fam == "beta") "beta_family" else fam
    return(fix_ns_call(call(fun, link = link), "glmmTMB", fun))
  }
  if (link != default_family_link(fam)) stop("only the default link is catalogued for ", fam)
  if (fam == "beta") "beta_family" else fam
}

# call(f, ...) with `pkg::fun` as the function.
fix_ns_call <- function(cl, pkg, fun) {
  cl[[1L]] <- call("::", as.name(pkg), as.name(fun))
  cl
}

# The call fitting `case` with `pkg`: "mixedrs" (glmm(), or glmm.nb() for a
# glmer.nb case), "glmmTMB", or "glmer.nb". The data argument is the data
# set's name, bound in the environment case_env() makes, so printouts show
# "Data: Owls" for both packages.
case_call <- function(case, pkg) {
  nb <- case$reference == "glmer.nb"
  fun <- switch(pkg,
    mixedrs = if (nb) quote(mixedrs::glmm.nb) else quote(mixedrs::glmm),
    glmmTMB = quote(glmmTMB::glmmTMB),
    glmer.nb = quote(lme4::glmer.nb),
    stop("unknown package ", pkg)
  )
  cl <- call("f", case$formula, data = as.name(case$data))
  cl[[1L]] <- fun
  if (pkg == "glmmTMB" || (pkg == "mixedrs" && !nb)) {
    cl$family <- family_expr(case, if (pkg == "glmmTMB") "glmmTMB" else "mixedrs")
    if (has_zi(case)) cl$ziformula <- case$ziformula
    if (has_disp_model(case)) cl$dispformula <- case$dispformula
  }
  if (!is.null(case$offset)) cl$offset <- case$offset
  cl
}

case_env <- function(case) {
  env <- new.env(parent = globalenv())
  assign(case$data, family_data(case$data), envir = env)
  env
}

# References run to their optimum (DESIGN.md section 6). glmmTMB: its
# defaults (nlminb, rel.tol 1e-10); a tighter rel.tol changes no logLik in
# the catalogue by more than 1e-9 but ends in nlminb's "singular convergence
# (7)" on most models, since TMB's inner Newton solves leave gradients of
# ~1e-3. glmer.nb: its glmer fits with bobyqa to rhoend 1e-10 and the
# tightest PIRLS tolerance it reaches (as glmer_tight() in helper-glmm.R);
# its outer search over log(theta) keeps its default tol (lme4 1.1.31 passes
# a `tol =` argument on to glmer(), which rejects it), which leaves theta
# within ~1e-6 relatively of the refined optimum on these data.
glmer_nb_reference_control <- function(tolPwrss) {
  lme4::glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10),
                     tolPwrss = tolPwrss)
}

glmer_nb_tight <- function(case) {
  env <- case_env(case)
  for (tol in c(1e-12, 1e-10, 1e-8)) {
    cl <- case_call(case, "glmer.nb")
    cl$control <- glmer_nb_reference_control(tol)
    ref <- tryCatch(suppressWarnings(suppressMessages(eval(cl, env))),
                    error = function(e) NULL)
    if (!is.null(ref)) return(ref)
  }
  stop("glmer.nb failed at every PIRLS tolerance for ", case$name)
}

# The reference fit of `case`, made once per session (shared by the test
# files). glmer.nb's stored call loses its control argument so that its
# printout compares with glmm.nb's (no "Control:" line).
family_ref_cache <- new.env(parent = emptyenv())

reference_fit <- function(case) {
  key <- case$name
  if (!is.null(family_ref_cache[[key]])) return(family_ref_cache[[key]])
  ref <- if (case$reference == "glmer.nb") {
    r <- glmer_nb_tight(case)
    r@call$control <- NULL
    r
  } else {
    suppressMessages(eval(case_call(case, "glmmTMB"), case_env(case)))
  }
  family_ref_cache[[key]] <- ref
  ref
}

# Our fit of `case` (messages silenced, warnings kept), once per session.
family_fit_cache <- new.env(parent = emptyenv())

mixedrs_fit <- function(case) {
  key <- case$name
  if (!is.null(family_fit_cache[[key]])) return(family_fit_cache[[key]])
  # Salamanders zi ~spp has zero-inflation coefficients that run off to
  # -infinity (species without zero inflation): the curvature along them is
  # below the Hessian's numerical noise, so their standard errors may come out
  # NA with a warning naming them (glmmTMB reports thousands; neither value
  # means anything, and the side-by-side tests do not compare them). Only that
  # warning, and only for the coefficients glmmTMB gives SEs above 100, is let
  # through here; any other warning still reaches the test.
  # The same for zi ~mined + (1 | spp) with nbinom2, whose zi minedno runs off
  # (glmmTMB: -20.1 with an SE of 3464).
  ran_off <- if (grepl("zi ~spp", key, fixed = TRUE)) {
    "zi\\.spp(EC-L|DES-L)(, zi\\.spp(EC-L|DES-L))?"
  } else if (grepl("nbinom2 zi ~mined + (1 | spp)", key, fixed = TRUE)) {
    "zi\\.minedno"
  }
  fit <- muffle_ran_off_se(suppressMessages(eval(case_call(case, "mixedrs"), case_env(case))),
                           ran_off)
  family_fit_cache[[key]] <- fit
  fit
}

# `expr` with the warning that the standard errors of exactly the
# coefficients matched by the regular expression `coefs` (NULL: none) are NA
# muffled; every other warning still reaches the test.
muffle_ran_off_se <- function(expr, coefs) {
  withCallingHandlers(expr, warning = function(w) {
    msg <- conditionMessage(w)
    if (!is.null(coefs) && grepl("^standard errors are not available", msg) &&
        grepl(paste0("\\(NA\\) for ", coefs, ":"), msg)) {
      invokeRestart("muffleWarning")
    }
  })
}

# --- quantities to compare --------------------------------------------------

# Fixed effects of one component ("cond", "zi", "disp") of a glmmTMB-style
# fit of either package (NULL when the component is absent).
component_fixef <- function(fit, component) {
  fe <- if (inherits(fit, "glmmTMB")) glmmTMB::fixef(fit) else nlme::fixef(fit)
  if (!is.list(fe)) return(if (component == "cond") fe else NULL)
  v <- fe[[component]]
  if (length(v) == 0L) NULL else v
}

# The coefficients of one component of our fit as the engine returned them
# (the fit's fields: `beta`, `extended$zi$beta`, `extended$disp$beta`; NULL
# when absent), and its sigma (glmmTMB's sigma(): `extended$sigma`).
fit_component <- function(fit, component) {
  if (component == "cond") return(fit$beta)
  if (is.null(fit$extended)) return(NULL)
  fit$extended[[component]]$beta
}

fit_sigma <- function(fit) {
  if (is.null(fit$extended)) stats::sigma(fit) else fit$extended$sigma
}

# Standard errors of one component's coefficients ("cond", "zi", "disp";
# NULL when absent). glmmTMB's from its sdreport (its vcov() leaves out an
# intercept-only dispersion model); ours from the fit's `extended$vcov`
# (the contract), or vcov() for a fit without the extended layout.
component_se <- function(fit, component) {
  if (inherits(fit, "glmmTMB")) {
    par <- c(cond = "beta", zi = "betazi", disp = "betad")[[component]]
    cf <- fit$sdr$cov.fixed
    keep <- rownames(cf) == par
    if (!any(keep)) return(NULL)
    return(stats::setNames(sqrt(diag(cf)[keep]), names(component_fixef(fit, component))))
  }
  if (inherits(fit, "merMod")) {
    return(if (component == "cond") sqrt(diag(as.matrix(stats::vcov(fit)))) else NULL)
  }
  v <- if (!is.null(fit$extended)) fit$extended$vcov[[component]] else
    if (component == "cond") stats::vcov(fit) else NULL
  if (is.null(v) || length(v) == 0L) return(NULL)
  sqrt(diag(as.matrix(v)))
}

# Standard deviations of the random effects, named "group.term".
random_sds <- function(fit) {
  vc <- if (inherits(fit, "glmmTMB")) glmmTMB::VarCorr(fit)$cond else nlme::VarCorr(fit)
  if (!inherits(fit, "glmmTMB") && is.list(vc) && !is.null(vc$cond)) vc <- vc$cond
  out <- unlist(lapply(names(vc), function(g) {
    s <- attr(vc[[g]], "stddev")
    stats::setNames(unname(s), paste(g, names(s), sep = "."))
  }))
  out
}

# glmmTMB's standard errors of the log standard deviations of the random
# effects (its "theta" parameters of the conditional model, for
# scalar terms), in the order of random_sds(); NA where a term has more than
# one column (its theta then mixes sds and correlations).
glmmTMB_log_sd_se <- function(ref) {
  cov_fixed <- ref$sdr$cov.fixed
  th <- which(rownames(cov_fixed) == "theta")
  se <- sqrt(diag(cov_fixed)[th])
  vc <- glmmTMB::VarCorr(ref)$cond
  sizes <- vapply(vc, function(v) length(attr(v, "stddev")), 1L)
  out <- numeric()
  pos <- 0L
  for (k in seq_along(sizes)) {
    q <- sizes[[k]]
    npar <- q + q * (q - 1L) / 2L
    out <- c(out, if (q == 1L) se[pos + 1L] else rep(NA_real_, q))
    pos <- pos + npar
  }
  unname(out)
}

# glmmTMB's control for a reference fit at full precision.
tmb_tight_control <- function() {
  glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12, eval.max = 1e4, iter.max = 1e4))
}

# A glmmTMB reference fit run with rel.tol = 1e-12: nlminb may stop short of
# that tolerance with "singular convergence (7)", which glmmTMB turns into a
# warning; the fit is at its optimum as far as it can tell, and the tests
# compare against it with their own tolerances. Other warnings get through.
tmb_tight <- function(expr) {
  withCallingHandlers(expr, warning = function(w) {
    if (grepl("^Model convergence problem; singular convergence", conditionMessage(w))) {
      invokeRestart("muffleWarning")
    }
  })
}
