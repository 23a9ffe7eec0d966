# ranef(fit, condVar = TRUE): conditional variances of the random effects
# against lme4, side by side.
#
# At each package's own optimum (lme4's run to full precision,
# helper-reference.R) the "postVar" arrays must agree within 1e-4 relative to
# each array's largest entry (small off-diagonal covariances move with the
# estimates of theta, which the two optimizers find to ~1e-6), and
# the condsd column of as.data.frame() within 1e-4 relative, entry by entry.
# At a common theta the arrays must agree with lme4's sparse Cholesky to
# 1e-8. The layout (names, dims, lists for factors shared by several terms,
# drop = TRUE vectors) must be identical.

skip_if_not_installed("lme4")

postvar_list <- function(pv) if (is.list(pv)) pv else list(pv)

expect_condvar_like_lme4 <- function(fit, ref, label, tol = 1e-4) {
  ours <- ranef(fit, condVar = TRUE)
  theirs <- lme4::ranef(ref, condVar = TRUE)
  expect_identical(names(ours), names(theirs), label = label)
  for (g in names(theirs)) {
    info <- paste(label, g)
    a <- attr(ours[[g]], "postVar")
    b <- attr(theirs[[g]], "postVar")
    expect_false(is.null(a), label = info)
    expect_identical(is.list(a), is.list(b), label = paste(info, "list or array"))
    expect_identical(names(a), names(b), label = paste(info, "names"))
    a <- postvar_list(a)
    b <- postvar_list(b)
    for (k in seq_along(b)) {
      expect_identical(dim(a[[k]]), dim(b[[k]]), label = paste(info, "dim"))
      expect_identical(attributes(a[[k]]), attributes(b[[k]]),
                       label = paste(info, "attributes"))
      rel <- max(abs(a[[k]] - b[[k]])) / max(abs(b[[k]]))
      expect_lte(rel, tol, label = paste(info, "postVar", k))
    }
  }
  da <- as.data.frame(ours)
  db <- as.data.frame(theirs)
  expect_identical(names(da), names(db), label = paste(label, "data frame columns"))
  expect_identical(as.character(da$grpvar), as.character(db$grpvar), label = label)
  expect_identical(as.character(da$term), as.character(db$term), label = label)
  expect_identical(as.character(da$grp), as.character(db$grp), label = label)
  expect_lte(max(abs(da$condsd / db$condsd - 1)), tol, label = paste(label, "condsd"))
}

lmm_pair <- function(formula, data, ...) {
  list(fit = suppressMessages(lmm(formula, data, ...)),
       ref = suppressMessages(lmer_full(formula, data, ...)))
}

machines <- function() {
  data.frame(score = nlme::Machines$score,
             Machine = factor(as.character(nlme::Machines$Machine)),
             Worker = factor(as.character(nlme::Machines$Worker)))
}

insteval_subset <- function() {
  data("InstEval", package = "lme4", envir = environment())
  droplevels(subset(InstEval, as.integer(d) <= 400 & as.integer(s) <= 1500))
}

test_that("linear mixed models match lme4's postVar and condsd", {
  data("sleepstudy", "Penicillin", "Pastes", package = "lme4", envir = environment())
  ie <- insteval_subset()
  models <- list(
    slopes = list(Reaction ~ Days + (Days | Subject), sleepstudy),
    slopes_ML = list(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE),
    uncorrelated = list(Reaction ~ Days + (Days || Subject), sleepstudy),
    crossed = list(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
    nested = list(strength ~ 1 + (1 | batch / cask), Pastes),
    insteval = list(y ~ service + (1 | s) + (1 | d) + (1 | dept:service), ie),
    factor_slope = list(score ~ Machine + (0 + Machine | Worker), machines())
  )
  for (name in names(models)) {
    m <- models[[name]]
    pair <- do.call(lmm_pair, c(list(m[[1]], m[[2]]), m[-(1:2)]))
    expect_condvar_like_lme4(pair$fit, pair$ref, name)
  }
})

test_that("generalized linear mixed models match lme4's postVar and condsd", {
  data("cbpp", package = "lme4", envir = environment())
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = cbpp)))
  expect_condvar_like_lme4(pair$fit, pair$ref, "cbpp")

  pair <- fit_glmm_pair(quote(glmm(incidence / size ~ period + (1 | herd), weights = size,
                                   family = binomial, data = cbpp)))
  expect_condvar_like_lme4(pair$fit, pair$ref, "cbpp proportions with weights")

  set.seed(3)
  pd <- expand.grid(a = factor(1:20), b = factor(1:12), rep = 1:2)
  pd$x <- rnorm(nrow(pd))
  pd$y <- rpois(nrow(pd), exp(0.5 + 0.3 * pd$x + rnorm(20, sd = 0.5)[pd$a] +
                                rnorm(12, sd = 0.3)[pd$b]))
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (1 | a) + (1 | b), family = poisson, data = pd)))
  expect_condvar_like_lme4(pair$fit, pair$ref, "poisson crossed")

  sd <- slope_data()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (x | g), family = binomial, data = sd)))
  expect_condvar_like_lme4(pair$fit, pair$ref, "binomial slopes")

  gd <- gamma_data()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (1 | g), family = Gamma(link = "log"), data = gd)))
  expect_condvar_like_lme4(pair$fit, pair$ref, "Gamma (sigma^2 scaling)")
})

test_that("terms sharing a grouping factor give lme4's per-term list", {
  data("sleepstudy", package = "lme4", envir = environment())
  set.seed(1)
  d <- sleepstudy
  d$x <- rnorm(nrow(d))
  d$z <- rnorm(nrow(d))
  d$site <- factor(rep(1:9, length.out = nrow(d)))
  d$Reaction <- d$Reaction + stats::rnorm(9, sd = 25)[d$site]
  f <- Reaction ~ Days + (1 | Subject) + (0 + Days | Subject) + (1 | site)
  pair <- lmm_pair(f, d)
  expect_condvar_like_lme4(pair$fit, pair$ref, "shared factor")
  pv <- attr(ranef(pair$fit, condVar = TRUE)$Subject, "postVar")
  expect_true(is.list(pv))
  expect_identical(names(pv), c("(Intercept)", "Days"))
  expect_identical(dim(pv[[1]]), c(1L, 1L, 18L))

  # A vector term next to a scalar one: lme4 names it by deparsing its columns.
  f2 <- Reaction ~ Days + (0 + x + z | Subject) + (1 | Subject)
  ours <- ranef(suppressMessages(lmm(f2, d)), condVar = TRUE)
  theirs <- lme4::ranef(suppressMessages(lmer_full(f2, d)), condVar = TRUE)
  expect_identical(names(attr(ours$Subject, "postVar")),
                   names(attr(theirs$Subject, "postVar")))
  expect_identical(lapply(attr(ours$Subject, "postVar"), dim),
                   lapply(attr(theirs$Subject, "postVar"), dim))
})

test_that("conditional variances equal lme4's at a common theta", {
  data("sleepstudy", "Pastes", package = "lme4", envir = environment())
  set.seed(7)
  d <- sleepstudy
  d$x <- rnorm(nrow(d))
  d$site <- factor(rep(1:6, length.out = nrow(d)))
  cases <- list(
    list(Reaction ~ Days + (Days | Subject) + (1 + x | site), d),
    list(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject) + (1 | site), d),
    list(strength ~ 1 + (1 | batch / cask), Pastes)
  )
  for (cs in cases) {
    fit <- suppressMessages(lmm(cs[[1]], cs[[2]]))
    devfun <- lme4::lmer(cs[[1]], cs[[2]], devFunOnly = TRUE)
    rho <- environment(devfun)
    lower <- fit$lower
    theta <- ifelse(lower == 0, stats::runif(length(lower), 0.2, 1.5),
                    stats::runif(length(lower), -0.5, 0.5))
    devfun(theta)
    # lme4's condVar: sigma^2 Lambda (L L')^-1 Lambda', with REML's sigma at theta.
    Lt <- rho$pp$Lambdat
    cc <- as.matrix(Matrix::crossprod(Lt, Matrix::solve(rho$pp$L(), Lt, system = "A")))
    n <- nrow(cs[[2]])
    p <- ncol(rho$pp$X)
    sigma2 <- (rho$resp$wrss() + rho$pp$sqrL(1)) / (n - p)
    fit$theta[] <- theta
    arrays <- term_condvar(fit)
    offset <- 0
    for (k in seq_along(fit$reterms)) {
      q <- length(fit$reterms[[k]]$cnms)
      nl <- nlevels(fit$reterms[[k]]$factor)
      ref <- vapply(seq_len(nl), function(j) {
        idx <- offset + (j - 1) * q + seq_len(q)
        sigma2 * cc[idx, idx]
      }, numeric(q * q))
      expect_equal(as.vector(arrays[[k]]), as.vector(ref), tolerance = 1e-8,
                   label = paste(deparse1(cs[[1]]), "term", k))
      offset <- offset + q * nl
    }
  }
})

test_that("drop, whichel, the default and the data frame layout follow lme4", {
  data("Penicillin", "sleepstudy", package = "lme4", envir = environment())
  pair <- lmm_pair(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)
  ours <- ranef(pair$fit, condVar = TRUE, drop = TRUE)
  theirs <- lme4::ranef(pair$ref, condVar = TRUE, drop = TRUE)
  for (g in names(theirs)) {
    expect_identical(names(attributes(ours[[g]])), names(attributes(theirs[[g]])))
    expect_null(dim(attr(ours[[g]], "postVar")))
    expect_equal(attr(ours[[g]], "postVar"), attr(theirs[[g]], "postVar"),
                 tolerance = 1e-4)
  }
  one <- ranef(pair$fit, condVar = TRUE, whichel = "sample")
  expect_identical(names(one), "sample")
  expect_equal(attr(one$sample, "postVar"),
               attr(lme4::ranef(pair$ref, condVar = TRUE, whichel = "sample")$sample,
                    "postVar"), tolerance = 1e-4)

  # The default is lme4's: with the conditional variances.
  expect_equal(attr(ranef(pair$fit)$plate, "postVar"),
               attr(lme4::ranef(pair$ref)$plate, "postVar"), tolerance = 1e-4)
  expect_identical(names(as.data.frame(ranef(pair$fit))),
                   names(as.data.frame(lme4::ranef(pair$ref))))
  # Without condVar: no attribute and no condsd column.
  plain <- ranef(pair$fit, condVar = FALSE)
  expect_null(attr(plain$plate, "postVar"))
  expect_identical(names(as.data.frame(plain)), c("grpvar", "term", "grp", "condval"))

  # Vector terms: one row per level and column, condsd from the diagonal.
  fit <- suppressMessages(lmm(Reaction ~ Days + (Days | Subject), sleepstudy))
  re <- ranef(fit, condVar = TRUE)
  pv <- attr(re$Subject, "postVar")
  expect_identical(dim(pv), c(2L, 2L, 18L))
  expect_equal(pv[1, 2, ], pv[2, 1, ])
  df <- as.data.frame(re)
  expect_identical(names(df), c("grpvar", "term", "grp", "condval", "condsd"))
  expect_equal(df$condsd, c(sqrt(pv[1, 1, ]), sqrt(pv[2, 2, ])))
  # Printing is unchanged by the attribute.
  expect_identical(capture.output(print(re)), capture.output(print(ranef(fit))))
})

test_that("glmm conditional variances use sigma = 1 for binomial and the stored modes", {
  data("cbpp", package = "lme4", envir = environment())
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = binomial, data = cbpp)
  pv <- attr(ranef(fit, condVar = TRUE)$herd, "postVar")
  expect_identical(dim(pv), c(1L, 1L, 15L))
  expect_true(all(pv > 0 & pv < fit$theta[[1]]^2))
  # nAGQ = 0 fits work too.
  fit0 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
               family = binomial, data = cbpp, nAGQ = 0)
  ref0 <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                      family = binomial, data = cbpp, nAGQ = 0,
                      control = glmer_reference_control())
  expect_condvar_like_lme4(fit0, ref0, "nAGQ = 0")
})
