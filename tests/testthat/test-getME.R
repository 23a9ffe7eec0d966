# getME() on lmm() and glmm() fits side by side with lme4's getME() on the
# lmer()/glmer() fit of the same model (run to full precision,
# helper-reference.R / helper-glmm.R): every name lme4 documents, with lme4's
# classes, for scalar, vector, uncorrelated, crossed and nested terms,
# weights and offsets, and a GLMM.

# Compares every getME() component of `fit` with lme4's on `ref`. `tol`: the
# relative agreement of the two fits' estimates (the components are smooth
# functions of them).
expect_getME_like_lme4 <- function(fit, ref, tol) {
  names_lme4 <- setdiff(eval(formals(lme4:::getME.merMod)$name), "devfun")
  for (nm in names_lme4) {
    ours <- getME(fit, nm)
    theirs <- lme4::getME(ref, nm)
    label <- paste0("getME(, \"", nm, "\")")
    # lme4's classes (Matrix classes for the sparse matrices, L a CHMfactor)
    expect_identical(class(ours), class(theirs), label = label)
    if (nm == "L") {
      # the factored matrix P'LL'P (lme4's fill-reducing permutation can
      # depend on CHOLMOD's state left by earlier calls in the session)
      expect_equal(as.matrix(factored_matrix(ours)), as.matrix(factored_matrix(theirs)),
                   tolerance = tol, label = label)
      # and the factor itself when the permutations agree (as they do with
      # CHOLMOD's default settings)
      if (identical(ours@perm, theirs@perm)) {
        expect_equal(as(ours, "sparseMatrix"), as(theirs, "sparseMatrix"),
                     tolerance = tol, label = label)
      }
    } else if (nm == "mmList") {
      # values and dimnames (lme4's also carry model.matrix's "assign")
      expect_equal(lapply(ours, unclass), lapply(theirs, function(m) {
        attr(m, "assign") <- NULL
        attr(m, "contrasts") <- NULL
        unclass(m)
      }), tolerance = tol, label = label)
    } else if (nm == "X") {
      expect_equal(ours, theirs, tolerance = tol, label = label,
                   ignore_attr = "contrasts")
    } else if (nm %in% c("RZX", "u", "b")) {
      # random effects: absolute agreement on the scale of the largest one
      scale <- max(abs(as.matrix(theirs)))
      expect_equal(as.matrix(ours) / scale, as.matrix(theirs) / scale,
                   tolerance = tol, label = label)
      if (nm == "b") expect_identical(dim(ours), dim(theirs))
    } else {
      expect_equal(ours, theirs, tolerance = tol, label = label)
    }
  }
  # sparse matrices: the same pattern of stored entries as lme4's
  for (nm in c("Zt", "Lambdat")) {
    expect_identical(getME(fit, nm)@i, lme4::getME(ref, nm)@i)
    expect_identical(getME(fit, nm)@p, lme4::getME(ref, nm)@p)
  }
}

# The matrix a CHMfactor factors: P' L L' P.
factored_matrix <- function(L) {
  e <- Matrix::expand(L)
  Matrix::crossprod(e$P, Matrix::tcrossprod(e$L)) %*% e$P
}

test_that("getME() of linear mixed models agrees with lme4's on the same models", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  Penicillin <- lme4::Penicillin
  Pastes <- lme4::Pastes
  sleep_w <- transform(sleepstudy, w = 1 + (as.integer(Subject) %% 3) / 2,
                       off = Days / 10)
  models <- list(
    vector = quote(lmm(Reaction ~ Days + (Days | Subject), sleepstudy)),
    uncorrelated_ml = quote(lmm(Reaction ~ Days + (Days || Subject), sleepstudy,
                                REML = FALSE)),
    crossed = quote(lmm(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)),
    nested = quote(lmm(strength ~ 1 + (1 | batch/cask), Pastes)),
    weights_offset = quote(lmm(Reaction ~ Days + (1 | Subject), sleep_w,
                               weights = w, offset = off))
  )
  for (m in names(models)) {
    fit <- eval(models[[m]])
    ref <- eval(as_lmer_full_call(models[[m]]))
    # the fits agree to ~1e-7 in theta; 1e-5 leaves room for the
    # components' conditioning
    expect_getME_like_lme4(fit, ref, tol = 1e-5)
  }
})

test_that("getME() of a GLMM agrees with lme4's on the same model", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = cbpp)))
  # glmer to full precision and glmm() agree to ~1e-6 in theta and beta;
  # L, RX and RZX also depend on the PIRLS weights at the modes
  expect_getME_like_lme4(pair$fit, pair$ref, tol = 1e-4)
  grouse <- lme4::grouseticks
  gpair <- fit_glmm_pair(quote(glmm(TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION),
                                    family = poisson, data = grouse)))
  expect_getME_like_lme4(gpair$fit, gpair$ref, tol = 1e-4)
})

test_that("getME() devfun evaluates lme4's criterion, and names work as in lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy)
  ours <- getME(fit, "devfun")
  theirs <- lme4::getME(ref, "devfun")
  for (th in list(c(1, 0, 1), c(0.5, 0.1, 0.2), unname(fit$theta))) {
    expect_equal(ours(th), theirs(th), tolerance = 1e-10)
  }
  ml <- update(fit, REML = FALSE)
  ml_ref <- update(ref, REML = FALSE)
  expect_equal(getME(ml, "devfun")(c(0.7, 0.05, 0.3)),
               lme4::getME(ml_ref, "devfun")(c(0.7, 0.05, 0.3)), tolerance = 1e-10)
  expect_error(getME(fit, "devfun")(1), "takes 3 covariance parameters, not 1")

  # several names give a named list; "ALL" every name
  several <- getME(fit, c("theta", "beta", "sigma"))
  expect_identical(names(several), c("theta", "beta", "sigma"))
  expect_equal(several, lme4::getME(ref, c("theta", "beta", "sigma")), tolerance = 1e-5)
  all <- getME(fit, "ALL")
  expect_true(all(names(lme4::getME(ref, "ALL")) %in% names(all)))
  expect_equal(all$Gp, lme4::getME(ref, "Gp"))
  # abbreviations as match.arg() allows them; unknown names: match.arg's error
  expect_identical(getME(fit, "is_R"), TRUE)
  expect_error(getME(fit, "foo"), "'arg' should be one of")
  expect_error(lme4::getME(ref, "foo"), "'arg' should be one of")
  expect_error(getME(fit), "'name' must not be missing")
  expect_error(getME(fit, "theta", 1), "does not use")
  # mixedrs' additions: prior weights, upper bounds, par
  expect_identical(getME(fit, "weights"), rep(1, 180))
  expect_identical(unname(getME(fit, "upper")), rep(Inf, 3))
  expect_identical(getME(fit, "par"), fit$theta)
  expect_identical(getME(fit, "glmer.nb.theta"), lme4::getME(ref, "glmer.nb.theta"))

  # a GLMM: the deviance function of c(theta, beta), glmer's devFunOnly one
  cbpp <- lme4::cbpp
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  gfit <- glmm(f, family = binomial, data = cbpp)
  gdev <- getME(gfit, "devfun")
  gref <- lme4::glmer(f, family = binomial, data = cbpp, devFunOnly = TRUE,
                      control = lme4::glmerControl(tolPwrss = 1e-12))
  for (p in list(c(gfit$theta, fixef(gfit)), c(0.3, -1.5, -0.8, -1, -1.2))) {
    expect_equal(gdev(p), gref(p), tolerance = 1e-9)
  }
  expect_true("devfun" %in% names(getME(gfit, "ALL")))
  expect_identical(getME(gfit, "par"), gfit$theta)
})

test_that("getME() of structured terms gives lme4 2.x's par and Lambda from theta", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + cs(0 + factor(Days) | Subject), sleepstudy)
  expect_identical(getME(fit, "par"), fit$par)
  # Lambda's block for a subject is the term's relative factor T, so
  # sigma^2 Lambda Lambda' restricted to one subject is the term's covariance
  lam <- as.matrix(getME(fit, "Lambda"))[1:10, 1:10]
  vc <- VarCorr(fit)[[1L]]
  expect_equal(unname(sigma(fit)^2 * tcrossprod(lam)), unname(vc[, ]),
               tolerance = 1e-10)
  # the deviance function takes par (its value at the estimates is the
  # criterion of the fit)
  expect_equal(getME(fit, "devfun")(fit$par), REMLcrit(fit), tolerance = 1e-8)
})

# lme4's function with each `a@b` replaced by mixedrs's slot reader: what R
# >= 4.3.0 runs when `@` dispatches to the S3 method .onLoad registers.
with_slot_reader <- function(fun) {
  swap <- function(e) {
    if (is.call(e)) {
      if (identical(e[[1L]], as.name("@"))) {
        return(call("mer_slot", swap(e[[2L]]), as.character(e[[3L]])))
      }
      for (i in seq_along(e)[-1L]) if (!is.null(e[[i]])) e[[i]] <- swap(e[[i]])
    }
    e
  }
  body(fun) <- swap(body(fun))
  env <- new.env(parent = environment(fun))
  env$mer_slot <- mixedrs:::mer_slot
  environment(fun) <- env
  fun
}

test_that("lme4's slot-reading criteria run on mixedrs fits through the `@` method", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  dev_crit <- with_slot_reader(lme4:::devCrit)
  for (reml in c(TRUE, FALSE)) {
    fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = reml)
    ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy, REML = reml)
    for (crit in c(TRUE, FALSE)) {
      expect_equal(dev_crit(fit, REML = crit), lme4:::devCrit(ref, REML = crit), tolerance = 1e-8)
    }
  }
  expect_error(mixedrs:::mer_slot(fit, "pp"), "no slot \"pp\"")
  expect_identical(mixedrs:::mer_slot(fit, "beta"), unname(lme4::fixef(fit)))
  if (getRversion() >= "4.3.0") {
    expect_equal(lme4::REMLcrit(fit), dev_crit(fit, REML = TRUE))
  }
})
