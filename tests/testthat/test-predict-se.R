# predict(se.fit = TRUE) with random effects: the standard deviation of
# z'b + x'beta under the joint conditional covariance of (b, beta), checked
# against the same quantity built densely from the lme4 fit's own pieces
# (getME: X, Z, Lambda, weights, sigma), since lme4 1.1-31 has no se.fit.

# C = sigma^2 [Lambda 0; 0 I] M^-1 [Lambda' 0; 0 I] from an lme4 fit, dense,
# with W the prior weights (lmer) or PIRLS working weights (glmer).
lme4_joint_cov <- function(fm) {
  X <- lme4::getME(fm, "X")
  Z <- as.matrix(lme4::getME(fm, "Z"))
  Lam <- as.matrix(lme4::getME(fm, "Lambda"))
  w <- if (lme4::isGLMM(fm)) fm@resp$sqrtWrkWt()^2 else weights(fm)
  A <- cbind(Z %*% Lam, X)
  M <- crossprod(A * sqrt(w))
  q <- ncol(Z)
  M[seq_len(q), seq_len(q)] <- M[seq_len(q), seq_len(q)] + diag(q)
  Tm <- as.matrix(Matrix::bdiag(Lam, diag(ncol(X))))
  sigma(fm)^2 * Tm %*% solve(M) %*% t(Tm)
}

se_of <- function(C, A) sqrt(rowSums((A %*% C) * A))

test_that("se.fit with all random effects matches the joint covariance from lme4's fit", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss, control = lmmControl(rhoend = 1e-10))
  fm <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  C <- lme4_joint_cov(fm)
  A <- cbind(as.matrix(lme4::getME(fm, "Z")), lme4::getME(fm, "X"))
  ref <- se_of(C, A)
  p <- predict(fit, se.fit = TRUE)
  # Same estimates to ~1e-7 (both at full precision): 1e-6 on the SEs.
  expect_equal(unname(p$se.fit), unname(ref), tolerance = 1e-6)
  expect_equal(p$fit, predict(fit))
  expect_identical(names(p$se.fit), names(p$fit))
  # New data: rows of subjects 309 and 335, and a new subject (its term adds
  # neither a mode nor variance: the SE of the population-level prediction).
  nd <- ss[c(11, 15, 170), ]
  nd2 <- rbind(nd, data.frame(Reaction = NA, Days = 4, Subject = "new"))
  pn <- predict(fit, nd2, se.fit = TRUE, allow.new.levels = TRUE)
  expect_equal(unname(pn$se.fit[1:3]), unname(ref[c(11, 15, 170)]), tolerance = 1e-6)
  x_new <- c(1, 4)
  expect_equal(unname(pn$se.fit[4]), sqrt(drop(x_new %*% as.matrix(vcov(fm)) %*% x_new)),
               tolerance = 1e-6)
  expect_error(predict(fit, nd2, se.fit = TRUE), "new level")
  # random.only: the random part alone (fixed-effects columns zero).
  pr <- predict(fit, se.fit = TRUE, random.only = TRUE)
  Ar <- cbind(as.matrix(lme4::getME(fm, "Z")), 0 * lme4::getME(fm, "X"))
  expect_equal(unname(pr$se.fit), unname(se_of(C, Ar)), tolerance = 1e-6)
  # re.form = NA keeps the fixed-effects-only SEs, which the joint covariance's
  # beta block reproduces.
  p0 <- predict(fit, se.fit = TRUE, re.form = NA)
  A0 <- cbind(0 * as.matrix(lme4::getME(fm, "Z")), lme4::getME(fm, "X"))
  expect_equal(unname(p0$se.fit), unname(se_of(C, A0)), tolerance = 1e-6)
})

test_that("se.fit with re.form selecting some terms (crossed factors, weights)", {
  skip_if_not_installed("lme4")
  pen <- lme4::Penicillin
  pen$w <- rep(c(1, 2, 0.5), length.out = nrow(pen))
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen, weights = w,
             control = lmmControl(rhoend = 1e-10))
  fm <- lmer_full(diameter ~ 1 + (1 | plate) + (1 | sample), pen, weights = w)
  C <- lme4_joint_cov(fm)
  Z <- as.matrix(lme4::getME(fm, "Z"))
  X <- lme4::getME(fm, "X")
  # lme4's Z has the plate columns (24 levels) first, then sample (6): zero
  # the sample columns for re.form = ~ (1 | plate).
  is_sample <- colnames(Z) %in% levels(pen$sample)
  expect_identical(sum(is_sample), 6L)
  Zp <- Z
  Zp[, is_sample] <- 0
  nd <- pen[c(1, 40, 100), ]
  p <- predict(fit, nd, re.form = ~ (1 | plate), se.fit = TRUE)
  expect_equal(unname(p$se.fit), unname(se_of(C, cbind(Zp, X))[c(1, 40, 100)]),
               tolerance = 1e-6)
  pall <- predict(fit, nd, se.fit = TRUE)
  expect_equal(unname(pall$se.fit), unname(se_of(C, cbind(Z, X))[c(1, 40, 100)]),
               tolerance = 1e-6)
})

test_that("GLMM se.fit with random effects on the link and response scales", {
  skip_if_not_installed("lme4")
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   lme4::cbpp, family = binomial)))
  fit <- pair$fit
  fm <- pair$ref
  C <- lme4_joint_cov(fm)
  A <- cbind(as.matrix(lme4::getME(fm, "Z")), lme4::getME(fm, "X"))
  ref <- se_of(C, A)
  p <- predict(fit, se.fit = TRUE)
  # glmer at full precision (helper-glmm.R): same modes and weights to ~1e-6.
  expect_equal(unname(p$se.fit), unname(ref), tolerance = 1e-5)
  pr <- predict(fit, se.fit = TRUE, type = "response")
  eta <- predict(fm)
  expect_equal(unname(pr$se.fit), unname(ref * binomial()$mu.eta(eta)), tolerance = 1e-5)
  expect_equal(unname(pr$fit), unname(predict(fm, type = "response")), tolerance = 1e-5)
})

test_that("se.fit still refuses newparams, naming the reason", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_error(predict(fit, se.fit = TRUE, newparams = list(beta = c(250, 10))),
               "newparams")
})
