# drop1() side by side with lmerTest's F tests (Satterthwaite, Kenward-Roger)
# and lme4's AIC / likelihood-ratio tables on the same models (references run
# to full precision, helper-reference.R and helper-glmm.R).

test_that("drop1() of an LMM gives lmerTest's F tests", {
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("pbkrtest")
  cake <- lme4::cake
  fit <- lmm(angle ~ recipe + temperature + (1 | recipe:replicate), cake)
  ref <- lmerTest_full(angle ~ recipe + temperature + (1 | recipe:replicate), cake)
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    ours <- drop1(fit, ddf = ddf)
    theirs <- drop1(ref, ddf = ddf)
    expect_s3_class(ours, c("anova", "data.frame"))
    expect_identical(rownames(ours), rownames(theirs))
    expect_identical(names(ours), names(theirs))
    expect_identical(ours$NumDF, theirs$NumDF)
    # the fits agree to ~1e-7; F, df and p-values are smooth in them
    expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = 1e-5)
    expect_identical(attr(ours, "heading"), attr(theirs, "heading"))
    expect_equal(attr(ours, "hypotheses"), attr(theirs, "hypotheses"))
  }
  # a model with an interaction: only the marginal term can be dropped
  fit2 <- lmm(angle ~ recipe * temperature + (1 | recipe:replicate), cake)
  ref2 <- lmerTest_full(angle ~ recipe * temperature + (1 | recipe:replicate), cake)
  expect_equal(as.matrix(drop1(fit2)), as.matrix(drop1(ref2)), tolerance = 1e-5)
  expect_identical(rownames(drop1(fit2)), "recipe:temperature")
  expect_error(drop1(fit2, scope = "recipe"), "only marginal terms")
  expect_error(drop1(fit2, scope = 1), "character vector")
  expect_error(drop1(fit, k = 3), "belong to lme4's table")
  # one term: lmerTest's type I hypothesis
  sleepstudy <- lme4::sleepstudy
  fit3 <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ref3 <- lmerTest_full(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_equal(as.matrix(drop1(fit3)), as.matrix(drop1(ref3)), tolerance = 1e-5)
})

test_that("drop1() of a rank-deficient LMM (a missing cell) gives lmerTest's F tests", {
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("pbkrtest")
  set.seed(2)
  d <- expand.grid(A = factor(letters[1:3]), B = factor(c("u", "v")), rep = 1:4, g = factor(1:8))
  d$x <- stats::runif(nrow(d), 1, 5)
  d$y <- stats::rnorm(8)[d$g] + as.numeric(d$A) + d$x + stats::rnorm(nrow(d))
  d <- d[!(d$A == "c" & d$B == "v"), ]
  for (form in list(y ~ A * B + x + (1 | g), y ~ A:B + x + (1 | g), y ~ A * B * x + (1 | g),
                    y ~ A + B + A:B:x + (1 | g))) {
    fit <- suppressMessages(lmm(form, d))
    expect_gt(length(attr(fit$X, "col.dropped")), 0L)
    ref <- suppressMessages(eval(bquote(lmerTest_full(.(form), .(d)))))
    for (ddf in c("Satterthwaite", "Kenward-Roger")) {
      ours <- drop1(fit, ddf = ddf)
      theirs <- drop1(ref, ddf = ddf)
      expect_identical(rownames(ours), rownames(theirs))
      expect_identical(ours$NumDF, theirs$NumDF)
      expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = 1e-6)
    }
  }
})

test_that("drop1() of a model with an aliased term: lmerTest's NA row, lme4's NA p-value", {
  skip_if_not_installed("lmerTest")
  cake <- lme4::cake
  form <- angle ~ recipe + temp + temperature + (1 | recipe:replicate)
  fit <- suppressMessages(lmm(form, cake))
  ref <- suppressMessages(lmerTest_full(form, cake))
  ours <- drop1(fit)
  theirs <- drop1(ref)
  expect_identical(rownames(ours), rownames(theirs))
  expect_true(all(is.na(ours["temp", ])))
  expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = 1e-6)
  ours <- suppressMessages(drop1(fit, test = "Chisq"))
  theirs <- suppressMessages(lme4:::drop1.merMod(lmer_full(form, cake), test = "Chisq"))
  expect_identical(ours$npar, theirs$npar)
  expect_identical(ours$npar[rownames(ours) == "temp"], 0)
  expect_identical(is.na(ours$`Pr(Chi)`), is.na(theirs$`Pr(Chi)`))
  expect_equal(ours$LRT, theirs$LRT, tolerance = 1e-6)
})

test_that("drop1() with test = \"Chisq\" or ddf = \"lme4\" gives lme4's table", {
  skip_if_not_installed("lme4")
  cake <- lme4::cake
  fit <- lmm(angle ~ recipe + temperature + (1 | recipe:replicate), cake)
  ref <- lmer_full(angle ~ recipe + temperature + (1 | recipe:replicate), cake)
  ours <- drop1(fit, test = "Chisq")
  theirs <- drop1(ref, test = "Chisq")
  expect_identical(dimnames(ours), dimnames(theirs))
  # AIC and LRT of ML refits that agree to ~1e-8 in the deviance
  expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = 1e-6)
  expect_identical(attr(ours, "heading"), attr(theirs, "heading"))
  none <- drop1(fit, ddf = "lme4")
  expect_equal(as.matrix(none), as.matrix(drop1(ref)), tolerance = 1e-6)
  expect_identical(names(none), c("npar", "AIC"))
  expect_equal(as.matrix(drop1(fit, scope = "temperature", test = "Chisq")),
               as.matrix(drop1(ref, scope = "temperature", test = "Chisq")),
               tolerance = 1e-6)
  expect_error(drop1(fit, scope = "nonsense", test = "Chisq"), "not a subset")
  # test = "user" with lme4's calling convention
  dev_diff <- function(object, newfit, scale = 0, k = 2, ...) {
    if (missing(newfit)) return(c(dev = 0))
    c(dev = deviance(refitML(newfit)) - deviance(refitML(object)))
  }
  user <- drop1(fit, test = "user", sumFun = dev_diff)
  expect_identical(rownames(user), c("<none>", "recipe", "temperature"))
  expect_equal(user$dev[-1L], theirs$LRT[-1L], tolerance = 1e-6)
  expect_error(drop1(fit, test = "user"), "'sumFun' must be given")
  # a "method" attribute of sumFun's value is shown in the heading, as lme4's
  with_method <- function(object, newfit, scale = 0, k = 2, ...) {
    structure(dev_diff(object, newfit), method = "deviance difference")
  }
  expect_identical(attr(drop1(fit, test = "user", sumFun = with_method), "heading"),
                   attr(drop1(ref, test = "user", sumFun = with_method), "heading"))
})

test_that("drop1() of a GLMM gives lme4's likelihood-ratio table", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  cbpp$x <- as.numeric(cbpp$herd) %% 3
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + x + (1 | herd),
                                   family = binomial, data = cbpp)))
  ours <- drop1(pair$fit, test = "Chisq")
  # lme4's refits use glmer's default control; compare with the tight
  # control passed through update()
  theirs <- suppressWarnings(drop1(update(pair$ref, control = glmer_reference_control()),
                                   test = "Chisq"))
  expect_identical(dimnames(ours), dimnames(theirs))
  # Laplace deviances of the refits agree to ~1e-6
  expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = 1e-5)
  expect_error(drop1(pair$fit, ddf = "Satterthwaite"), "unused|does not use")
})
