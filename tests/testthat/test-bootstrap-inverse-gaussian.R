# bootmm() of an inverse Gaussian GLMM: the parametric bootstrap draws with
# statmod's generator (as simulate() does); the spread of the refitted fixed
# effects is compared with lme4's standard errors of the same model.

test_that("bootmm() simulates inverse Gaussian responses and refits them", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("statmod")
  set.seed(11)
  d <- data.frame(g = factor(rep(1:25, each = 12)), x = rnorm(300))
  d$y <- statmod::rinvgauss(300, mean = exp(1 + 0.3 * d$x + rnorm(25, sd = 0.3)[d$g]),
                            shape = 6)
  fit <- glmm(y ~ x + (1 | g), family = inverse.gaussian(link = "log"), data = d)
  ref <- lme4::glmer(y ~ x + (1 | g), family = inverse.gaussian(link = "log"), data = d)
  b <- bootmm(fit, fixef, nsim = 300, seed = 5)
  expect_s3_class(b, "boot")
  expect_identical(dim(b$t), c(300L, 2L))
  expect_true(all(is.finite(b$t)))
  se_ref <- sqrt(diag(as.matrix(vcov(ref))))
  # The bootstrap's spread estimates the standard errors (sampling error of
  # an sd from 300 draws: about 4%).
  expect_equal(unname(apply(b$t, 2, sd)), unname(se_ref), tolerance = 0.2)
  # Its centre is the estimate, within sampling error.
  expect_true(all(abs(colMeans(b$t) - fixef(fit)) < 4 * se_ref / sqrt(300) + 0.02))
})
