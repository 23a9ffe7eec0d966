# Structured covariance terms (lme4 2.x's us/diag/cs/ar1, glmmTMB's toep) in
# lmm(), side by side with glmmTMB fits of the same models (REML = TRUE for
# REML fits), with lme4 1.1 on equivalent unstructured models, and with a
# dense re-implementation of the REML criterion for Satterthwaite's df.

skip_if_not_installed("glmmTMB")
skip_if_not_installed("lme4")

data("sleepstudy", package = "lme4")
orthodont <- as.data.frame(nlme::Orthodont)
bodyweight <- as.data.frame(nlme::BodyWeight)

# Repeated measures with replicates per subject and time (so that the
# time-specific variances are identified beside the residual), correlated
# over time; an item factor crossed with subjects.
sim_repeated <- function(seed, n_subj = 30, n_time = 4, reps = 3) {
  set.seed(seed)
  d <- expand.grid(rep = seq_len(reps), t = factor(seq_len(n_time)),
                   s = factor(seq_len(n_subj)))
  lagcor <- c(1, 0.6, 0.3, 0.1, 0, 0, 0)[seq_len(n_time)]
  S <- outer(seq_len(n_time), seq_len(n_time), function(i, j) lagcor[abs(i - j) + 1])
  S <- S * tcrossprod(seq(0.7, 1, length.out = n_time))
  b <- t(t(chol(S)) %*% matrix(rnorm(n_time * n_subj), n_time))
  d$item <- factor(sample(12, nrow(d), replace = TRUE))
  u <- rnorm(12, sd = 0.4)
  d$x <- rnorm(nrow(d))
  d$y <- 1 + 0.3 * d$x + b[cbind(as.integer(d$s), as.integer(d$t))] +
    u[as.integer(d$item)] + rnorm(nrow(d), sd = 0.5)
  d
}

tmb_models <- list(
  list(f = Reaction ~ Days + cs(Days | Subject), data = "sleepstudy", REML = TRUE),
  list(f = Reaction ~ Days + diag(Days | Subject), data = "sleepstudy", REML = FALSE),
  list(f = Reaction ~ Days + ar1(0 + factor(Days) | Subject), data = "sleepstudy", REML = TRUE),
  list(f = distance ~ age + Sex + ar1(0 + factor(age) | Subject), data = "orthodont", REML = FALSE),
  list(f = distance ~ age + Sex + ar1(0 + factor(age) | Subject), data = "orthodont", REML = TRUE),
  list(f = y ~ x + toep(0 + t | s), data = "rep1", REML = TRUE),
  list(f = y ~ x + toep(0 + t | s), data = "rep1", REML = FALSE),
  list(f = y ~ x + cs(0 + t | s), data = "rep1", REML = TRUE),
  list(f = y ~ x + cs(0 + t | s) + (1 | item), data = "rep2", REML = FALSE),
  list(f = y ~ x + diag(0 + t | s) + (x | item), data = "rep2", REML = TRUE),
  list(f = y ~ x + ar1(0 + t | s) + (1 | item), data = "rep2", REML = TRUE)
)

datasets <- list(sleepstudy = sleepstudy, orthodont = orthodont,
                 rep1 = sim_repeated(1), rep2 = sim_repeated(2, n_time = 5, reps = 2))

test_that("structured LMMs reach glmmTMB's optimum or a better one", {
  for (m in tmb_models) {
    d <- datasets[[m$data]]
    label <- paste(deparse1(m$f), "REML =", m$REML)
    ours <- lmm(m$f, d, REML = m$REML)
    ref <- suppressWarnings(glmmTMB::glmmTMB(m$f, d, REML = m$REML))
    ll_ours <- as.numeric(logLik(ours))
    ll_ref <- as.numeric(logLik(ref))
    expect_equal(attr(logLik(ours), "df"), attr(logLik(ref), "df"), info = label)
    expect_true(is.na(ll_ref) || ll_ours >= ll_ref - 1e-3, info = label)
    # Where glmmTMB found the same optimum, the estimates agree. (On
    # sleepstudy's ar1 model glmmTMB stops at a worse optimum with sigma ~ 0.)
    if (is.na(ll_ref) || abs(ll_ours - ll_ref) > 1e-4) next
    expect_equal(unname(fixef(ours)), unname(glmmTMB::fixef(ref)$cond),
                 tolerance = 1e-4, info = label)
    vo <- VarCorr(ours)
    vr <- glmmTMB::VarCorr(ref)$cond
    for (g in names(vr)) {
      expect_equal(unname(attr(vo[[g]], "stddev")), unname(attr(vr[[g]], "stddev")),
                   tolerance = 1e-3, info = paste(label, g))
      cr <- attr(vr[[g]], "correlation")
      if (length(cr) > 1L) {
        expect_equal(unname(attr(vo[[g]], "correlation")), unname(cr),
                     tolerance = 1e-3, info = paste(label, g))
      }
    }
    expect_equal(sigma(ours), sigma(ref), tolerance = 1e-4, info = label)
    # glmmTMB's standard errors come from the joint Hessian of beta and the
    # variance parameters (its sdreport); lme4's and ours from R_X at the
    # variance estimates. On lme4 1.1's own unstructured models the two
    # differ by up to ~3 %, so only agreement to 5 % is asked here; the exact
    # SEs are checked against lme4 on the equivalent models below.
    expect_equal(unname(sqrt(diag(as.matrix(vcov(ours))))),
                 unname(sqrt(diag(vcov(ref)$cond))), tolerance = 0.05, info = label)
  }
})

test_that("a residual sd tending to 0 is followed to the limit glmmTMB reaches", {
  # One observation per subject and time: the time-specific variances of a
  # cs()/ar1() term can absorb the residual, and the likelihood rises towards
  # sigma = 0, where glmmTMB (sigma is its parameter) ends at ~1e-4. The
  # profiled criterion falls like c / s^2 along the ray s * par; the
  # optimizer alone stopped at sigma ~0.02, up to 4.6e-4 below glmmTMB's
  # logLik. What is left (< 1e-5) is the criterion's rounding at that scale.
  cases <- list(list(seed = 2, st = "cs"), list(seed = 2, st = "ar1"),
                list(seed = 6, st = "ar1"), list(seed = 7, st = "cs"),
                list(seed = 10, st = "ar1"))
  for (case in cases) {
    d <- sim_repeated(case$seed, n_subj = 25, reps = 1)
    f <- stats::as.formula(sprintf("y ~ x + %s(0 + t | s)", case$st))
    label <- paste(case$seed, case$st)
    ours <- lmm(f, d, REML = FALSE)
    ref <- suppressWarnings(glmmTMB::glmmTMB(f, d, REML = FALSE))
    expect_lt(sigma(ref), 1e-3)
    expect_lt(sigma(ours), 5e-3)
    expect_gte(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-5)
    expect_equal(unname(fixef(ours)), unname(glmmTMB::fixef(ref)$cond), tolerance = 1e-4,
                 info = label)
    expect_equal(unname(attr(VarCorr(ours)$s, "stddev")),
                 unname(attr(glmmTMB::VarCorr(ref)$cond$s, "stddev")), tolerance = 1e-3,
                 info = label)
  }
})

test_that("ar1 on nlme's BodyWeight reaches glmmTMB's optimum without a false warning", {
  f <- weight ~ Time * Diet + ar1(0 + factor(Time) | Rat)
  # The AR(1) correlation is 0.993 here: near its bound the criterion curves
  # so sharply that a plain finite-difference gradient check cried wolf.
  expect_no_warning(ours <- lmm(f, bodyweight))
  ref <- suppressWarnings(glmmTMB::glmmTMB(f, bodyweight, REML = TRUE,
                                           start = list(theta = c(log(30), 2))))
  expect_gte(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-3)
  expect_equal(unname(attr(VarCorr(ours)$Rat, "correlation")[2, 1]),
               unname(attr(glmmTMB::VarCorr(ref)$cond$Rat, "correlation")[2, 1]),
               tolerance = 1e-3)
})

test_that("us() is the plain term and diag() equals (x || g), as in lme4 1.1", {
  plain <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  us <- lmm(Reaction ~ Days + us(Days | Subject), sleepstudy)
  expect_identical(us$theta, plain$theta)
  expect_identical(logLik(us), logLik(plain))

  f_ref <- Reaction ~ Days + (Days || Subject)
  dg <- lmm(Reaction ~ Days + diag(Days | Subject), sleepstudy)
  ref <- lmerTest_full(f_ref, sleepstudy)
  expect_equal(as.numeric(logLik(dg)), as.numeric(logLik(ref)), tolerance = 1e-10)
  expect_equal(unname(as.matrix(vcov(dg))), unname(as.matrix(vcov(ref))), tolerance = 1e-6)
  expect_equal(unname(attr(VarCorr(dg)$Subject, "stddev")),
               unname(c(attr(lme4::VarCorr(ref)[[1]], "stddev"),
                        attr(lme4::VarCorr(ref)[[2]], "stddev"))), tolerance = 1e-6)
  # Satterthwaite's df in the structure's own parameters equal lmerTest's on
  # the equivalent model (lmerTest on lme4 2.x fails on diag()).
  ours_df <- summary(dg)$coefficients[, "df"]
  ref_df <- summary(ref)$coefficients[, "df"]
  expect_equal(unname(ours_df), unname(ref_df), tolerance = 1e-5)
  expect_equal(anova(dg)[["DenDF"]], anova(ref)[["DenDF"]], tolerance = 1e-5)
})

test_that("cs(0 + f | g, hom = TRUE) with rho >= 0 equals (1 | g) + (1 | g:f)", {
  d <- sim_repeated(3)
  cs <- lmm(y ~ x + cs(0 + t | s, hom = TRUE), d)
  ref <- lmerTest_full(y ~ x + (1 | s) + (1 | s:t), d)
  expect_gte(cs$par[["s.rho"]], 0)
  expect_equal(as.numeric(logLik(cs)), as.numeric(logLik(ref)), tolerance = 1e-10)
  expect_equal(unname(fixef(cs)), unname(lme4::fixef(ref)), tolerance = 1e-7)
  expect_equal(unname(as.matrix(vcov(cs))), unname(as.matrix(vcov(ref))), tolerance = 1e-6)
  # sd^2 = var(s) + var(s:t), rho = var(s) / sd^2.
  vs <- as.data.frame(lme4::VarCorr(ref))
  v_s <- vs$vcov[vs$grp == "s"]
  v_st <- vs$vcov[vs$grp == "s:t"]
  vc <- VarCorr(cs)$s
  expect_equal(unname(attr(vc, "stddev")[1]), sqrt(v_s + v_st), tolerance = 1e-6)
  expect_equal(unname(attr(vc, "correlation")[2, 1]), v_s / (v_s + v_st), tolerance = 1e-6)
  expect_equal(unname(summary(cs)$coefficients[, "df"]),
               unname(summary(ref)$coefficients[, "df"]), tolerance = 1e-5)
  expect_equal(attr(logLik(cs), "df"), attr(logLik(ref), "df"))
})

test_that("diag(0 + f | g, hom = TRUE) equals (1 | g:f)", {
  d <- sim_repeated(4)
  dg <- lmm(y ~ x + diag(0 + t | s, hom = TRUE), d, REML = FALSE)
  ref <- lmer_full(y ~ x + (1 | s:t), d, REML = FALSE)
  expect_equal(as.numeric(logLik(dg)), as.numeric(logLik(ref)), tolerance = 1e-10)
  expect_equal(unname(as.matrix(vcov(dg))), unname(as.matrix(vcov(ref))), tolerance = 1e-6)
})

# Satterthwaite's df of a dense, independent REML criterion in the
# parameters (sd, rho, sigma) of an ar1() term: V = sigma^2 I + Z (I (x) S) Z'.
dense_ar1_df <- function(y, X, subject, time, par) {
  n_t <- nlevels(time)
  Z <- stats::model.matrix(~ 0 + time:subject)
  reml <- function(psi) {
    s <- psi[1]; rho <- psi[2]; sig <- psi[3]
    S <- s^2 * rho^abs(outer(seq_len(n_t), seq_len(n_t), "-"))
    G <- kronecker(diag(nlevels(subject)), S)
    V <- sig^2 * diag(length(y)) + Z %*% G %*% t(Z)
    Vi <- solve(V)
    XVX <- t(X) %*% Vi %*% X
    beta <- solve(XVX, t(X) %*% Vi %*% y)
    r <- y - X %*% beta
    as.numeric(determinant(V)$modulus + determinant(XVX)$modulus + t(r) %*% Vi %*% r)
  }
  cvar <- function(psi, l) {
    s <- psi[1]; rho <- psi[2]; sig <- psi[3]
    S <- s^2 * rho^abs(outer(seq_len(n_t), seq_len(n_t), "-"))
    V <- sig^2 * diag(length(y)) + Z %*% kronecker(diag(nlevels(subject)), S) %*% t(Z)
    as.numeric(t(l) %*% solve(t(X) %*% solve(V) %*% X) %*% l)
  }
  H <- numDeriv::hessian(reml, par)
  A <- 2 * solve(H)
  vapply(seq_len(ncol(X)), function(j) {
    l <- diag(ncol(X))[, j]
    g <- numDeriv::grad(cvar, par, l = l)
    2 * cvar(par, l)^2 / as.numeric(t(g) %*% A %*% g)
  }, 0)
}

test_that("Satterthwaite's df of an ar1() term equal those of a dense REML criterion", {
  skip_if_not_installed("numDeriv")
  d <- orthodont
  d$tf <- factor(d$age)
  fit <- lmm(distance ~ age + Sex + ar1(0 + tf | Subject), d)
  vc <- VarCorr(fit)$Subject
  par <- c(unname(attr(vc, "stddev")[1]), unname(attr(vc, "correlation")[2, 1]), sigma(fit))
  ref <- dense_ar1_df(d$distance, fit$X, factor(d$Subject), d$tf, par)
  expect_equal(unname(summary(fit)$coefficients[, "df"]), ref, tolerance = 1e-4)
})

test_that("structured terms print as lme4 2.x prints them", {
  fit <- lmm(Reaction ~ Days + cs(Days | Subject), sleepstudy)
  ref <- glmmTMB::glmmTMB(Reaction ~ Days + cs(Days | Subject), sleepstudy, REML = TRUE)
  rho <- attr(glmmTMB::VarCorr(ref)$cond$Subject, "correlation")[2, 1]
  out <- capture.output(print(VarCorr(fit)))
  expect_match(out[1], "Groups +Name +Std.Dev. +Corr")
  expect_match(out[2], paste0(format(round(rho, 3), nsmall = 3), " \\(cs\\)$"))
  expect_false(grepl("\\(cs\\)", out[3]))
  ar <- lmm(Reaction ~ Days + ar1(0 + factor(Days) | Subject), sleepstudy)
  out <- capture.output(print(ar))
  # A homogeneous ar1() term shows one row: its sd and its correlation.
  re <- out[grep("^Random effects", out) + 1:3]
  expect_match(re[2], "^ Subject +factor\\(Days\\)0 +[0-9.]+ +0\\.[0-9]+ \\(ar1\\)")
  expect_match(re[3], "^ Residual")
  dg <- lmm(Reaction ~ Days + diag(Days | Subject), sleepstudy)
  expect_false(any(grepl("Corr", capture.output(print(VarCorr(dg))))))
  expect_named(ar$par, c("Subject.*", "Subject.rho"))
})

test_that("anova() compares structures by likelihood-ratio tests as lme4 does", {
  dg <- lmm(Reaction ~ Days + diag(Days | Subject), sleepstudy)
  us <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ours <- suppressMessages(anova(dg, us))
  ref <- suppressMessages(anova(lmer_full(Reaction ~ Days + (Days || Subject), sleepstudy),
                                lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy)))
  expect_equal(ours$npar, ref$npar)
  expect_equal(ours$Chisq, ref$Chisq, tolerance = 1e-6)
})

test_that("start takes lme4 2.x's par for structured terms", {
  f <- Reaction ~ Days + ar1(0 + factor(Days) | Subject)
  a <- lmm(f, sleepstudy)
  b <- lmm(f, sleepstudy, start = list(par = c(2, 0.5)))
  expect_equal(as.numeric(logLik(b)), as.numeric(logLik(a)), tolerance = 1e-8)
  expect_error(lmm(f, sleepstudy, start = list(theta = c(1, 0))), "list\\(par = \\)")
  expect_error(lmm(f, sleepstudy, start = c(1, 1.5)), "upper bound 1")
  expect_error(lmm(f, sleepstudy, start = c(1, 0, 0)), "length 2")
})

test_that("bad structured terms give errors naming the term", {
  expect_error(lmm(Reaction ~ Days + ar1(1 | Subject), sleepstudy),
               "ar1\\(1 \\| Subject\\).*at least two")
  expect_error(lmm(Reaction ~ Days + cs(1 | Subject), sleepstudy),
               "cs\\(1 \\| Subject\\).*at least two")
  expect_error(lmm(Reaction ~ Days + cs(Days | Subject, hom = "yes"), sleepstudy),
               "'hom' must be TRUE or FALSE")
  expect_error(lmm(Reaction ~ Days + us(Days | Subject, hom = TRUE), sleepstudy),
               "us\\(\\) has no 'hom'")
  expect_error(lmm(Reaction ~ Days + cs(Days | Subject, rho = 1), sleepstudy),
               "unknown argument 'rho'")
  expect_error(lmm(Reaction ~ Days + diag(Days || Subject), sleepstudy),
               "'\\|\\|' cannot be used inside diag")
  expect_error(lmm(Reaction ~ Days + foo(Days | Subject), sleepstudy),
               "unknown covariance structure foo\\(\\)")
})

test_that("isSingular() sees a structured term on its boundary", {
  set.seed(11)
  d <- data.frame(g = factor(rep(1:10, each = 6)), x = rep(0:5, 10))
  d$y <- rnorm(10)[d$g] + rnorm(60)
  dg <- suppressMessages(lmm(y ~ x + diag(x | g), d))
  ref <- suppressMessages(lmer_full(y ~ x + (x || g), d))
  expect_equal(isSingular(dg), lme4::isSingular(ref))
  expect_equal(as.numeric(logLik(dg)), as.numeric(logLik(ref)), tolerance = 1e-8)
})

test_that("profile intervals of structured terms: sd and rho within their bounds", {
  dg <- lmm(Reaction ~ Days + diag(Days | Subject), sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days || Subject), sleepstudy)
  ours <- confint(dg, oldNames = FALSE, quiet = TRUE)
  expect_equal(rownames(ours)[1:3], c("sd_(Intercept)|Subject", "sd_Days|Subject", "sigma"))
  expect_equal(unname(ours), unname(confint(ref, quiet = TRUE)), tolerance = 1e-4)

  # The AR(1) correlation's profile against the ML deviance minimized over
  # the other parameters at fixed rho (the engine's criterion through
  # lmm_deviance_rs, the profile walker and spline bypassed).
  d <- orthodont
  d$tf <- factor(d$age)
  fit <- lmm(distance ~ age + Sex + ar1(0 + tf | Subject), d)
  ci <- suppressWarnings(confint(fit, parm = 2, oldNames = FALSE, quiet = TRUE))
  expect_equal(rownames(ci), "cor_rho|Subject")
  inp <- mixedrs:::fit_engine_inputs(fit)
  dev <- function(par) mixedrs:::lmm_deviance_rs(inp$y, inp$X, inp$p, inp$weights,
                                                 inp$offset, inp$terms, FALSE, par)
  prof <- function(rho) stats::optimize(function(s) dev(c(s, rho)), c(0.01, 10), tol = 1e-10)$objective
  best <- stats::optim(c(1, 0.9), dev, method = "L-BFGS-B", lower = c(0, -1), upper = c(10, 1))
  cut <- best$value + stats::qchisq(0.95, 1)
  lo <- stats::uniroot(function(r) prof(r) - cut, c(0.5, best$par[2]), tol = 1e-10)$root
  # The interval end comes from the natural spline through the profile's points, which below
  # rho = 0.5 enter another regime (sigma goes to 0 and the AR(1) term takes the residual
  # variation; the reference above keeps theta <= 10, so it does not follow it there): the
  # spline's kink there moves the end by about 1.5e-4 relatively. The points within the regime
  # of the end agree with the reference to 1e-6.
  expect_equal(ci[1, 1], lo, tolerance = 3e-4)
  pr <- as.data.frame(profile(fit, which = 2))
  near <- pr[pr$.sig02 > 0.6 & pr$.sig02 < 0.999 & pr$.zeta != 0, ]
  expect_gt(nrow(near), 3)
  exact <- sign(near$.zeta) * sqrt(vapply(near$.sig02, prof, 0) - best$value)
  expect_equal(near$.zeta, exact, tolerance = 1e-6)
  # The upper end is the bound: rho = 1 is within the 95 % region.
  expect_equal(ci[1, 2], 1)
})

test_that("bootstrap refits of structured LMMs start from par and keep the structure", {
  fit <- lmm(Reaction ~ Days + ar1(0 + factor(Days) | Subject), sleepstudy)
  bb <- bootmm(fit, function(x) c(logLik = as.numeric(logLik(x)), rho = x$par[[2]]),
               nsim = 5, seed = 3)
  expect_true(all(is.finite(bb$t)))
  expect_true(all(bb$t[, "rho"] >= -1 & bb$t[, "rho"] <= 1))
  ci <- suppressWarnings(confint(fit, method = "boot", nsim = 20, seed = 1, oldNames = FALSE,
                                 quiet = TRUE))
  expect_equal(rownames(ci)[1:3], c("sd_*|Subject", "cor_rho|Subject", "sigma"))
})

test_that("Kenward-Roger on linear structures equals pbkrtest on the equivalent lme4 model", {
  skip_if_not_installed("pbkrtest")
  dg <- lmm(Reaction ~ Days + diag(Days | Subject), sleepstudy)
  ref <- lmerTest_full(Reaction ~ Days + (Days || Subject), sleepstudy)
  ours <- summary(dg, ddf = "Kenward-Roger")$coefficients
  theirs <- summary(ref, ddf = "Kenward-Roger")$coefficients
  expect_equal(unname(ours[, "df"]), unname(theirs[, "df"]), tolerance = 1e-5)
  expect_equal(unname(ours[, "Std. Error"]), unname(theirs[, "Std. Error"]), tolerance = 1e-6)

  d <- sim_repeated(3)
  cs <- lmm(y ~ x + cs(0 + t | s, hom = TRUE), d)
  ref <- lmerTest_full(y ~ x + (1 | s) + (1 | s:t), d)
  ours <- summary(cs, ddf = "Kenward-Roger")$coefficients
  theirs <- summary(ref, ddf = "Kenward-Roger")$coefficients
  expect_equal(unname(ours[, "df"]), unname(theirs[, "df"]), tolerance = 1e-5)
  expect_equal(unname(ours[, "Std. Error"]), unname(theirs[, "Std. Error"]), tolerance = 1e-6)
})

# Kenward and Roger's (1997) adjusted standard error and df of one contrast,
# with the second-derivative term, from a dense V(psi) differentiated
# numerically: an implementation independent of the engine's.
dense_kr <- function(Vfun, psi, X, l) {
  n <- nrow(X)
  k <- length(psi)
  V <- Vfun(psi)
  J <- numDeriv::jacobian(function(p) as.vector(Vfun(p)), psi)
  Vd <- lapply(seq_len(k), function(r) matrix(J[, r], n, n))
  Vdd <- lapply(seq_len(k), function(r) lapply(seq_len(k), function(s) {
    h <- 1e-4 * max(abs(psi[s]), 1e-2)
    up <- psi; up[s] <- up[s] + h
    dn <- psi; dn[s] <- dn[s] - h
    (matrix(numDeriv::jacobian(function(p) as.vector(Vfun(p)), up)[, r], n, n) -
       matrix(numDeriv::jacobian(function(p) as.vector(Vfun(p)), dn)[, r], n, n)) / (2 * h)
  }))
  Vi <- solve(V)
  Phi <- solve(t(X) %*% Vi %*% X)
  PR <- Vi - Vi %*% X %*% Phi %*% t(X) %*% Vi
  P <- lapply(Vd, function(G) -t(X) %*% Vi %*% G %*% Vi %*% X)
  info <- matrix(0, k, k)
  for (r in seq_len(k)) for (s in seq_len(k)) {
    info[r, s] <- sum(diag(PR %*% Vd[[r]] %*% PR %*% Vd[[s]])) / 2
  }
  W <- solve(info)
  U <- matrix(0, ncol(X), ncol(X))
  for (r in seq_len(k)) for (s in seq_len(k)) {
    Q <- t(X) %*% Vi %*% Vd[[r]] %*% Vi %*% Vd[[s]] %*% Vi %*% X
    R <- t(X) %*% Vi %*% Vdd[[r]][[s]] %*% Vi %*% X
    U <- U + W[r, s] * (Q - P[[r]] %*% Phi %*% P[[s]] - R / 4)
  }
  PhiA <- Phi + 2 * Phi %*% U %*% Phi
  L <- matrix(l, 1L)
  Theta <- t(L) %*% solve(L %*% Phi %*% t(L)) %*% L
  A1 <- A2 <- 0
  for (r in seq_len(k)) for (s in seq_len(k)) {
    ur <- Theta %*% Phi %*% P[[r]] %*% Phi
    us <- Theta %*% Phi %*% P[[s]] %*% Phi
    A1 <- A1 + W[r, s] * sum(diag(ur)) * sum(diag(us))
    A2 <- A2 + W[r, s] * sum(diag(ur %*% us))
  }
  q <- 1
  B <- (A1 + 6 * A2) / (2 * q)
  g <- ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
  den <- 3 * q + 2 * (1 - g)
  c1 <- g / den; c2 <- (q - g) / den; c3 <- (q + 2 - g) / den
  Vstar <- 2 / q * (1 + c1 * B) / ((1 - c2 * B)^2 * (1 - c3 * B))
  Estar <- 1 / (1 - A2 / q)
  rho <- Vstar / (2 * Estar^2)
  c(se = sqrt(drop(L %*% PhiA %*% t(L))), df = 4 + (q + 2) / (q * rho - 1))
}

test_that("Kenward-Roger on an ar1() term (nonlinear) equals a dense computation", {
  skip_if_not_installed("numDeriv")
  d <- orthodont
  d$tf <- factor(d$age)
  fit <- lmm(distance ~ age + Sex + ar1(0 + tf | Subject), d)
  Z <- stats::model.matrix(~ 0 + tf:Subject, transform(d, Subject = factor(Subject, ordered = FALSE)))
  n_s <- nlevels(factor(d$Subject))
  Vfun <- function(psi) {
    S <- psi[1] * psi[2]^abs(outer(1:4, 1:4, "-"))
    psi[3] * diag(nrow(d)) + Z %*% kronecker(diag(n_s), S) %*% t(Z)
  }
  vc <- VarCorr(fit)$Subject
  psi <- c(unname(attr(vc, "stddev")[1])^2, unname(attr(vc, "correlation")[2, 1]), sigma(fit)^2)
  ours <- summary(fit, ddf = "Kenward-Roger")$coefficients
  for (j in seq_len(ncol(fit$X))) {
    ref <- dense_kr(Vfun, psi, fit$X, diag(ncol(fit$X))[j, ])
    expect_equal(unname(ours[j, "Std. Error"]), unname(ref[["se"]]), tolerance = 1e-5)
    expect_equal(unname(ours[j, "df"]), unname(ref[["df"]]), tolerance = 1e-4)
  }
})

test_that("conditional modes and predictions of a structured LMM equal glmmTMB's", {
  d <- orthodont
  d$tf <- factor(d$age)
  f <- distance ~ age + Sex + ar1(0 + tf | Subject)
  ours <- lmm(f, d, REML = FALSE)
  ref <- glmmTMB::glmmTMB(f, d)
  ro <- ranef(ours, condVar = TRUE)$Subject
  rr <- glmmTMB::ranef(ref)$cond$Subject
  expect_equal(unname(as.matrix(ro)), unname(as.matrix(rr[rownames(ro), ])), tolerance = 1e-4)
  expect_equal(unname(predict(ours)), unname(predict(ref)), tolerance = 1e-6)
  expect_equal(unname(predict(ours, re.form = NA)), unname(predict(ref, re.form = NA)),
               tolerance = 1e-6)
  # The conditional covariance of a subject's effects has the AR(1) pattern's
  # symmetry (persymmetric: equal along each diagonal's ends).
  pv <- attr(ro, "postVar")[, , 1]
  expect_equal(pv[1, 1], pv[4, 4], tolerance = 1e-8)
  expect_equal(pv[1, 2], pv[3, 4], tolerance = 1e-8)
  expect_equal(dim(simulate(ours, nsim = 2, seed = 1)), c(nrow(d), 2L))
})

# A structured fit `ours` of a term by subject `s` at glmmTMB's optimum `ref`
# (run to rel.tol 1e-12): no lower log-likelihood, the same fixed effects and
# standard deviations.
expect_tmb_optimum <- function(ours, ref, fixef_tolerance, label) {
  expect_gt(as.numeric(logLik(ours)), -ref$fit$objective - 1e-8)
  expect_equal(unname(fixef(ours)), unname(glmmTMB::fixef(ref)$cond),
               tolerance = fixef_tolerance, info = label)
  expect_equal(unname(attr(VarCorr(ours)$s, "stddev")),
               unname(attr(glmmTMB::VarCorr(ref)$cond$s, "stddev")), tolerance = 1e-5,
               info = label)
}

test_that("structured LMMs take Newton steps with the exact gradient to glmmTMB's optimum", {
  # The exact gradient over θ and the average information, carried to the
  # structures' parameters by the chain rule: a few Newton steps instead of
  # BOBYQA's hundreds of evaluations (20,000 rows with a cs() term: 9
  # instead of 279). Each model against glmmTMB run to rel.tol 1e-12. (A
  # homogeneous ar1() has two parameters, which BOBYQA finds faster.)
  tmb_control <- glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12, eval.max = 1e4,
                                                        iter.max = 1e4))
  d <- sim_repeated(3, n_subj = 200, n_time = 5, reps = 2)
  for (term in c("diag", "cs", "toep")) {
    for (reml in c(TRUE, FALSE)) {
      f <- stats::as.formula(sprintf("y ~ x + %s(0 + t | s)", term))
      label <- paste(term, "REML =", reml)
      ours <- lmm(f, d, REML = reml)
      # nlminb warns of a NaN evaluation along its way on one of these.
      ref <- suppressWarnings(glmmTMB::glmmTMB(f, d, REML = reml, control = tmb_control))
      expect_match(ours$optinfo$message, "^Newton steps", info = label)
      expect_tmb_optimum(ours, ref, fixef_tolerance = 1e-6, label)
    }
  }
})

test_that("structured LMMs whose Newton steps stop short take quasi-Newton steps to glmmTMB's optimum", {
  # Far from the optimum the average information is a poor model of a
  # structured term's criterion and a Newton step overshoots onto a bound:
  # the quasi-Newton search with the same exact gradient (correlations over an
  # angle) then finishes in about 50 evaluations, where BOBYQA took 350 to 470
  # on these models. Each against glmmTMB run to rel.tol 1e-12.
  tmb_control <- glmmTMB::glmmTMBControl(optCtrl = list(rel.tol = 1e-12, eval.max = 1e4,
                                                        iter.max = 1e4))
  for (case in list(list(seed = 1, term = "cs"), list(seed = 3, term = "toep"))) {
    d <- sim_repeated(case$seed, n_subj = 40, n_time = 6, reps = 2)
    f <- stats::as.formula(sprintf("y ~ x + %s(0 + t | s) + (1 | item)", case$term))
    for (reml in c(TRUE, FALSE)) {
      label <- paste(case$term, "REML =", reml)
      ours <- lmm(f, d, REML = reml)
      ref <- suppressWarnings(glmmTMB::glmmTMB(f, d, REML = reml, control = tmb_control))
      expect_match(ours$optinfo$message, "^quasi-Newton", info = label)
      expect_lt(ours$optinfo$feval, 150)
      expect_tmb_optimum(ours, ref, fixef_tolerance = 1e-5, label)
    }
  }
})

# A random structured LMM as the randomized comparisons with glmmTMB draw them
# (kind, columns, subjects, observations per cell, correlation and standard
# deviations, residual sd, a crossed intercept in 30%, REML in 70%, all from
# `seed`): list(formula, data, REML).
random_structured_lmm <- function(seed) {
  set.seed(seed)
  q <- sample(2:6, 1)
  ng <- sample(10:200, 1)
  kind <- sample(c("diag", "cs", "ar1", "toep", "hdiag", "hcs", "xar1", "htoep"), 1)
  d <- expand.grid(t = factor(1:q), g = factor(1:ng), rep = 1:sample(1:3, 1))
  rho <- runif(1, -0.3, 0.99)
  sds <- runif(q, 0, 1.5)
  if (runif(1) < 0.2) sds[1] <- 0
  S <- rho^abs(outer(1:q, 1:q, "-")) * outer(sds, sds)
  b <- t(chol(S + diag(1e-10, q))) %*% matrix(rnorm(q * ng), q)
  d$x <- rnorm(nrow(d))
  d$y <- 0.3 + 0.3 * d$x + b[cbind(as.integer(d$t), as.integer(d$g))] +
    rnorm(nrow(d), sd = runif(1, 0.2, 1))
  if (runif(1) < 0.3) d$h <- factor(sample(1:sample(5:30, 1), nrow(d), TRUE))
  structure <- sub("^[hx]", "", kind)
  hom <- switch(substr(kind, 1, 1), h = ", hom = TRUE", x = ", hom = FALSE", "")
  f <- sprintf("y ~ x + %s(t + 0 | g%s)%s", structure, hom,
               if (is.null(d$h)) "" else " + (1 | h)")
  list(formula = stats::as.formula(f), data = d, REML = runif(1) < 0.7)
}

test_that("BOBYQA goes on from where an unfinished quasi-Newton search ended", {
  # A toep() of three columns, one observation per cell, whose optimum has the
  # first standard deviation near 0 and the lag-2 correlation at 1 (glmmTMB:
  # sd 0.0114). The quasi-Newton search gets there slowly and runs out of
  # evaluations; BOBYQA started again from the start ended in the other basin
  # (that sd at 0, its correlations undefined), 0.021 log-likelihood units below
  # glmmTMB's optimum. Going on from the search's end, it reaches glmmTMB's.
  m <- random_structured_lmm(176)
  expect_identical(deparse(m$formula), "y ~ x + toep(t + 0 | g)")
  expect_identical(nrow(m$data), 366L)
  expect_true(m$REML)
  ours <- lmm(m$formula, m$data, REML = m$REML)
  ref <- tmb_tight(glmmTMB::glmmTMB(m$formula, m$data, REML = m$REML,
                                    control = tmb_tight_control()))
  expect_gt(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-6)
  expect_equal(unname(fixef(ours)), unname(glmmTMB::fixef(ref)$cond), tolerance = 1e-5)
  expect_equal(unname(attr(VarCorr(ours)$g, "stddev")),
               unname(attr(glmmTMB::VarCorr(ref)$cond$g, "stddev")), tolerance = 1e-3)
})

test_that("an optimum just beyond a relative sd of 10 is not lost to the sigma -> 0 limit", {
  # A cs() term whose optimum lies at a relative sd of 10.1 (glmmTMB: sigma
  # 0.138). A restart's BOBYQA search passes a relative sd of 10 at once and
  # stops there, heading for sigma -> 0 as far as it can tell; the ray from
  # that point leads into the limit's basin, 0.0029 log-likelihood units below
  # the optimum. Polishing at the stopping point's own scale first finds it.
  m <- random_structured_lmm(607)
  expect_identical(deparse(m$formula), "y ~ x + cs(t + 0 | g)")
  ours <- lmm(m$formula, m$data, REML = m$REML)
  ref <- tmb_tight(glmmTMB::glmmTMB(m$formula, m$data, REML = m$REML,
                                    control = tmb_tight_control()))
  expect_gt(sigma(ref), 0.1)
  expect_false(ours$optinfo$residual_limit)
  expect_gt(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-7)
  expect_equal(sigma(ours), sigma(ref), tolerance = 1e-4)
  expect_equal(unname(fixef(ours)), unname(glmmTMB::fixef(ref)$cond), tolerance = 1e-6)
  expect_equal(unname(attr(VarCorr(ours)$g, "stddev")),
               unname(attr(glmmTMB::VarCorr(ref)$cond$g, "stddev")), tolerance = 1e-4)
})

test_that("fits towards sigma -> 0 polish their shape along the ray to glmmTMB's optimum", {
  # ar1() terms with a crossed intercept whose likelihood rises as the residual
  # sd goes to 0 (glmmTMB ends at sigma 0.0022 and 0.001). BOBYQA stopped at
  # relative sds of 25 and 380 with the other parameters 5.4e-5 and 1.1e-4
  # log-likelihood units short: its one trust radius cannot move parameters of
  # order 400 and a correlation of order 0.05 together. A search over the
  # parameters divided by the largest relative sd, alternating with the ray,
  # reaches glmmTMB's optimum.
  for (seed in c(288, 26)) {
    m <- random_structured_lmm(seed)
    expect_identical(deparse(m$formula), "y ~ x + ar1(t + 0 | g) + (1 | h)")
    ours <- lmm(m$formula, m$data, REML = m$REML)
    ref <- tmb_tight(glmmTMB::glmmTMB(m$formula, m$data, REML = m$REML,
                                      control = tmb_tight_control()))
    expect_gt(sigma(ref) / attr(VarCorr(ref)$cond$g, "stddev")[[1]], 1e-4)
    expect_lt(sigma(ours), 0.01 * attr(VarCorr(ours)$g, "stddev")[[1]])
    expect_gt(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-5, label = seed)
    expect_equal(unname(fixef(ours)), unname(glmmTMB::fixef(ref)$cond), tolerance = 1e-5)
    expect_equal(unname(attr(VarCorr(ours)$h, "stddev")),
                 unname(attr(glmmTMB::VarCorr(ref)$cond$h, "stddev")), tolerance = 1e-2)
  }
})

# Longitudinal data as a trial has them (an MMRM-like design): 3-6 visits,
# 30-120 subjects in two arms, a tenth of the visits missing, a small residual
# sd, and a toep(), heterogeneous ar1() or heterogeneous cs() term over the
# visits, all drawn from `seed`: list(formula, data, REML).
random_repeated_measures <- function(seed) {
  set.seed(seed)
  nt <- sample(3:6, 1)
  ns <- sample(30:120, 1)
  d <- expand.grid(time = factor(1:nt), subj = factor(1:ns))
  d$trt <- factor(sample(c("A", "B"), ns, TRUE)[as.integer(d$subj)])
  rho <- runif(1, 0.2, 0.9)
  sds <- runif(nt, 0.5, 2)
  S <- rho^abs(outer(1:nt, 1:nt, "-")) * outer(sds, sds)
  b <- t(chol(S)) %*% matrix(rnorm(nt * ns), nt)
  d$y <- 1 + 0.2 * as.integer(d$time) + 0.5 * (d$trt == "B") +
    b[cbind(as.integer(d$time), as.integer(d$subj))] + rnorm(nrow(d), sd = runif(1, 0, 0.3))
  d <- d[runif(nrow(d)) > 0.1, ]
  term <- sample(c("toep(0 + time | subj)", "ar1(0 + time | subj, hom = FALSE)",
                   "cs(0 + time | subj, hom = FALSE)"), 1)
  list(formula = stats::as.formula(paste("y ~ time * trt +", term)), data = d,
       REML = runif(1) < 0.5)
}

test_that("a search heading for sigma -> 0 keeps the quasi-Newton end and stops BOBYQA's crawl", {
  # A heterogeneous cs() over four visits whose likelihood rises towards
  # sigma = 0 (glmmTMB: sigma 1e-5). The quasi-Newton search reached the
  # relative-sd limit of its range below BOBYQA's optimum from the start
  # (sigma 0.76, correlation 0.99), which was kept: 0.94 log-likelihood units
  # short. Now the search's end is kept where it is the better, and the ray
  # and the polishing take it to glmmTMB's optimum.
  m <- random_repeated_measures(17)
  expect_identical(deparse(m$formula), "y ~ time * trt + cs(0 + time | subj, hom = FALSE)")
  expect_false(m$REML)
  ours <- lmm(m$formula, m$data, REML = m$REML)
  ref <- tmb_tight(glmmTMB::glmmTMB(m$formula, m$data, REML = m$REML,
                                    control = tmb_tight_control()))
  expect_lt(sigma(ref), 1e-3)
  expect_lt(sigma(ours), 0.01)
  expect_gt(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-4)
  expect_equal(unname(fixef(ours)), unname(glmmTMB::fixef(ref)$cond), tolerance = 1e-4)
  expect_equal(unname(attr(VarCorr(ours)$subj, "correlation")[2, 1]),
               unname(attr(glmmTMB::VarCorr(ref)$cond$subj, "correlation")[2, 1]),
               tolerance = 1e-3)

  # sleepstudy's toep() over the ten days, one observation per subject and
  # day: the quasi-Newton search reaches the limit of its range in 120
  # gradients, where BOBYQA crawled along the sigma -> 0 tail to its limit of
  # 10,000 evaluations (a false maxfun warning, 1 s). glmmTMB's default fit
  # fails here (its Hessian is not finite); its fit with sigma = 0 is the
  # limit compared with. (nlminb reports "false convergence" on it.)
  for (reml in c(TRUE, FALSE)) {
    f <- Reaction ~ Days + toep(0 + factor(Days) | Subject)
    expect_no_warning(expect_message(ours <- lmm(f, sleepstudy, REML = reml),
                                     "residual standard deviation goes to 0"))
    expect_true(ours$optinfo$residual_limit)
    expect_lt(ours$optinfo$feval, 10000)
    ref <- suppressWarnings(glmmTMB::glmmTMB(f, sleepstudy, REML = reml, dispformula = ~0,
                                             control = tmb_tight_control()))
    expect_gt(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 5e-4, label = reml)
    expect_lt(sigma(ours), 0.2)
    expect_equal(unname(fixef(ours)), unname(glmmTMB::fixef(ref)$cond), tolerance = 1e-4)
  }
})

test_that("BOBYQA's exploratory steps out past a relative sd of 10 do not end its search", {
  # Two ar1() terms on 44 rows; a restart off the boundary searches by BOBYQA,
  # whose first steps passed a relative sd of 12.8 on the way to the optimum
  # at 6.4. Stopping the search at the first best point out there (as though
  # it headed for sigma -> 0) ended 1.2e-3 log-likelihood units below
  # glmmTMB; it stops only after ten best points in a row out there.
  set.seed(229)
  q <- sample(2:4, 1); ng <- sample(15:80, 1); nh <- sample(5:20, 1)
  d <- expand.grid(t = factor(1:q), g = factor(1:ng), rep = 1:sample(1:2, 1))
  d$h <- factor(sample(1:nh, nrow(d), TRUE))
  d$z <- factor(sample(1:3, nrow(d), TRUE))
  rho <- runif(1, -0.3, 0.95); sds <- runif(q, 0, 1.5)
  S <- rho^abs(outer(1:q, 1:q, "-")) * outer(sds, sds)
  b <- t(chol(S + diag(1e-10, q))) %*% matrix(rnorm(q * ng), q)
  bh <- matrix(rnorm(nh * 3, sd = runif(1, 0, 1)), nh)
  d$x <- rnorm(nrow(d))
  d$y <- 0.3 * d$x + b[cbind(as.integer(d$t), as.integer(d$g))] +
    bh[cbind(as.integer(d$h), as.integer(d$z))] + rnorm(nrow(d), sd = runif(1, 0.02, 0.8))
  f <- y ~ x + ar1(t + 0 | g) + ar1(z + 0 | h)
  expect_identical(nrow(d), 44L)
  ours <- suppressMessages(lmm(f, d))
  ref <- tmb_tight(glmmTMB::glmmTMB(f, d, REML = TRUE, control = tmb_tight_control()))
  expect_gt(as.numeric(logLik(ours)), as.numeric(logLik(ref)) - 1e-6)
  expect_equal(unname(fixef(ours)), unname(glmmTMB::fixef(ref)$cond), tolerance = 1e-3)
})
