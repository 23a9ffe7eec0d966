# refit(), refitML(), extractAIC(), family(), terms(), getData(), the
# isREML()/isLMM()/isGLMM()/isNLMM() predicates and isNested(), side by side
# with lme4 on the same models (references run to full precision,
# helper-reference.R and helper-glmm.R).

test_that("refit() of an LMM gives the fit of the new response, as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  sim <- simulate(fit, seed = 1)
  new <- refit(fit, sim)
  expect_s3_class(new, c("lmm", "mixedrs_fit"))
  expect_identical(new$call, fit$call)
  # the same model fitted from scratch to the new response by lme4 (lme4's
  # own refit() of a REML fit uses the wrong REML degrees of freedom when
  # p > 1, so it is compared on the ML fit below)
  d <- sleepstudy
  d$Reaction <- sim[[1L]]
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), d)
  expect_equal(new$theta, lme4::getME(ref, "theta"), tolerance = 1e-5)
  expect_equal(fixef(new), lme4::fixef(ref), tolerance = 1e-6)
  expect_equal(REMLcrit(new), lme4::REMLcrit(ref), tolerance = 1e-8)
  expect_equal(as.vector(new$frame$Reaction), sim[[1L]])
  # a vector works as the one-column data frame does
  expect_equal(refit(fit, sim[[1L]])$theta, new$theta, tolerance = 1e-10)

  # ML fits: as lme4::refit()
  ml <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
  ml_ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
  new_ml <- refit(ml, sim)
  ref_ml <- lme4::refit(ml_ref, sim, control = lmer_full_control())
  expect_equal(new_ml$theta, lme4::getME(ref_ml, "theta"), tolerance = 1e-5)
  expect_equal(fixef(new_ml), lme4::fixef(ref_ml), tolerance = 1e-6)
  expect_equal(as.numeric(logLik(new_ml)), as.numeric(logLik(ref_ml)), tolerance = 1e-8)
})

test_that("refit() drops the rows the fit omitted, renames, and checks its input", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  d$Reaction[c(3, 50)] <- NA
  fit <- lmm(Reaction ~ Days + (1 | Subject), d)
  set.seed(3)
  y <- lme4::sleepstudy$Reaction + rnorm(180)
  # one value per data row: the omitted rows are dropped (lme4's rule)
  new <- refit(fit, y)
  d2 <- d
  d2$Reaction <- y
  d2$Reaction[c(3, 50)] <- NA
  ref <- lmer_full(Reaction ~ Days + (1 | Subject), d2)
  expect_equal(new$theta, lme4::getME(ref, "theta"), tolerance = 1e-5)
  expect_equal(nobs(new), 178L)
  # or one per observation used
  expect_equal(refit(fit, y[-c(3, 50)])$theta, new$theta, tolerance = 1e-10)
  expect_error(refit(fit, y[1:100]), "has 100 values but the model was fitted to 178")
  expect_error(refit(fit, data.frame(a = y, b = y)), "not a list of 2")
  expect_error(refit(fit, as.character(y)), "must be numeric")
  expect_error(refit(fit, y, maxit = 5), "'maxit'")
  expect_error(refit(fit, y, foo = 1), "does not use")
  yy <- y
  ren <- refit(fit, yy, rename.response = TRUE)
  expect_identical(names(ren$frame)[1L], "yy")
  expect_identical(deparse(ren$formula[[2L]]), "yy")
  # without newresp: the same fit again
  expect_equal(refit(fit)$theta, fit$theta, tolerance = 1e-6)
})

test_that("refit() of a GLMM agrees with lme4::refit()", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = cbpp)))
  sim <- simulate(pair$fit, seed = 2)
  new <- refit(pair$fit, sim)
  ref <- lme4::refit(pair$ref, sim)
  expect_s3_class(new, c("glmm", "mixedrs_fit"))
  # glmer's refit runs its (tight) bobyqa from the fit's estimates
  expect_equal(new$theta, lme4::getME(ref, "theta"), tolerance = 1e-5)
  expect_equal(fixef(new), lme4::fixef(ref), tolerance = 1e-5)
  expect_equal(as.numeric(logLik(new)), as.numeric(logLik(ref)), tolerance = 1e-7)
  # proportions are taken with the model's numbers of trials
  props <- sim[[1L]][, 1L] / rowSums(sim[[1L]])
  expect_equal(refit(pair$fit, props)$theta, new$theta, tolerance = 1e-8)
  expect_error(refit(pair$fit, props / 3), "not whole numbers of successes")
})

test_that("refitML() and extractAIC() agree with lme4's", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy)
  ml <- refitML(fit)
  ml_ref <- lme4::refitML(ref)
  expect_false(isREML(ml))
  expect_identical(ml$call$REML, FALSE)
  expect_equal(ml$theta, lme4::getME(ml_ref, "theta"), tolerance = 1e-5)
  expect_equal(as.numeric(logLik(ml)), as.numeric(logLik(ml_ref)), tolerance = 1e-8)
  expect_identical(refitML(ml), ml)
  # another optimizer, as lme4's refitML(optimizer = ) takes it
  nm <- refitML(fit, optimizer = "Nelder_Mead")
  expect_identical(nm$optinfo$optimizer, "Nelder_Mead")
  expect_equal(as.numeric(logLik(nm)), as.numeric(logLik(ml_ref)), tolerance = 1e-7)
  expect_error(refitML(fit, optimizer = "no_such_optimizer"), "nor a function that can be found")
  expect_equal(extractAIC(fit), stats::extractAIC(ref), tolerance = 1e-8)
  expect_equal(extractAIC(fit, k = log(180)), stats::extractAIC(ref, k = log(180)),
               tolerance = 1e-8)
  expect_error(extractAIC(fit, scale = 2), "'scale'")

  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = cbpp)))
  expect_identical(refitML(pair$fit), pair$fit)
  expect_equal(extractAIC(pair$fit), stats::extractAIC(pair$ref), tolerance = 1e-7)
})

test_that("family(), terms() and getData() are lme4's", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ poly(Days, 2) + (Days | Subject), sleepstudy)
  ref <- lmer_full(Reaction ~ poly(Days, 2) + (Days | Subject), sleepstudy)
  expect_equal(family(fit), stats::family(ref))
  expect_equal(terms(fit), stats::terms(ref))
  expect_equal(terms(fit, random.only = TRUE), stats::terms(ref, random.only = TRUE))
  expect_equal(terms(fit, fixed.only = FALSE), stats::terms(ref, fixed.only = FALSE),
               ignore_attr = c("varnames.fixed", "predvars.random", "predvars.fixed"))
  expect_error(terms(fit, fixed.only = TRUE, random.only = TRUE), "can't specify")
  expect_identical(getData(fit), lme4::getData(ref))
  react <- sleepstudy$Reaction
  days <- sleepstudy$Days
  subj <- sleepstudy$Subject
  nodata <- lmm(react ~ days + (1 | subj))
  expect_error(getData(nodata), "without 'data'")
})

test_that("isREML(), isLMM(), isGLMM(), isNLMM() and isNested() are lme4's", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  cbpp <- lme4::cbpp
  fits <- list(
    list(lmm(Reaction ~ Days + (1 | Subject), sleepstudy),
         lme4::lmer(Reaction ~ Days + (1 | Subject), sleepstudy)),
    list(lmm(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE),
         lme4::lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE)),
    list(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = binomial, data = cbpp),
         lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                     family = binomial, data = cbpp))
  )
  for (f in fits) {
    expect_identical(isREML(f[[1]]), lme4::isREML(f[[2]]))
    expect_identical(isLMM(f[[1]]), lme4::isLMM(f[[2]]))
    expect_identical(isGLMM(f[[1]]), lme4::isGLMM(f[[2]]))
    expect_identical(isNLMM(f[[1]]), lme4::isNLMM(f[[2]]))
    # mixedrs' generics hand lme4 fits to lme4
    expect_identical(isREML(f[[2]]), lme4::isREML(f[[2]]))
  }
  expect_error(isREML(fits[[1]][[1]], 1), "does not use")
  cake <- lme4::cake
  pairs <- list(list(cake$replicate, cake$recipe),
                list(interaction(cake$recipe, cake$replicate), cake$recipe),
                list(cake$recipe, interaction(cake$recipe, cake$replicate)),
                list(as.character(lme4::Pastes$sample), lme4::Pastes$batch))
  for (p in pairs) {
    expect_identical(isNested(p[[1]], p[[2]]), lme4::isNested(p[[1]], p[[2]]))
  }
  expect_error(isNested(1:3, 1:2), "same length")
})

test_that("refit() runs the fit's own optimizer, also a function or none", {
  skip_if_no_glmm()
  data("cbpp", package = "lme4")
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  fit <- glmm(f, cbpp, family = binomial, control = glmmControl(optimizer = "nlminbwrap"))
  sim <- simulate(fit, seed = 3)
  new <- refit(fit, sim)
  expect_identical(new$optinfo$optimizer, c("nlminbwrap", "nlminbwrap"))
  ref <- lme4::refit(lme4::glmer(f, cbpp, family = binomial,
                                 control = lme4::glmerControl(optimizer = "nlminbwrap")), sim)
  expect_gt(as.numeric(logLik(new)), as.numeric(logLik(ref)) - 1e-6)
  expect_equal(unname(new$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-3)
  data("sleepstudy", package = "lme4")
  lfit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy,
              control = lmmControl(optimizer = "Nelder_Mead"))
  ysim <- simulate(lfit, seed = 4)[[1L]]
  lnew <- refit(lfit, ysim)
  expect_identical(lnew$optinfo$optimizer, "Nelder_Mead")
  lref <- lmer_full(ysim ~ Days + (Days | Subject), cbind(sleepstudy, ysim = ysim))
  expect_equal(as.numeric(logLik(lnew)), as.numeric(logLik(lref)), tolerance = 1e-7)
  # refits inside the engine cannot run an R function: they say so
  expect_warning(b <- bootmm(fit, fixef, nsim = 2, seed = 1),
                 "refits run in the engine with BOBYQA, not with the fit's optimizer \"nlminbwrap\"")
  expect_equal(dim(b$t), c(2L, 4L))
})
