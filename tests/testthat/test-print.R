# Printed output of lmm() fits against lme4's, line by line.
#
# Each model is fitted with lmm() and with lme4::lmer() on the same call; the
# printed lines must agree after the class tag (['lmm'] vs ['lmerMod']) and
# the optimizer name are aligned. Numbers may differ in the last printed
# digit (or by a small relative amount): the two fits come from different
# optimizers.

# --- helpers ----------------------------------------------------------------

# Fits the quoted lmm() call and the same call with lme4::lmer(), both
# evaluated in `env`, with messages (e.g. singular fit) silenced.
fit_pair <- function(call, env = parent.frame()) {
  ref_call <- call
  ref_call[[1L]] <- quote(lme4::lmer)
  list(fit = suppressMessages(eval(call, env)),
       ref = suppressMessages(eval(ref_call, env)))
}

# Printed lines and messages of print(x, ...). The object is always called
# `x` here, so messages naming it agree between the two fits.
printed <- function(x, ...) {
  msgs <- character()
  out <- withCallingHandlers(
    utils::capture.output(print(x, ...)),
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  list(out = out, msgs = msgs)
}

# Tags that legitimately differ between the two packages.
align_tags <- function(lines) {
  lines <- gsub("['lmm']", "['lmerMod']", lines, fixed = TRUE)
  gsub("optimizer (bobyqa)", "optimizer (nloptwrap)", lines, fixed = TRUE)
}

number_regex <- "(?<![A-Za-z0-9._])-?(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][-+]?[0-9]+)?"

# Size of one unit in the last printed digit of a number token.
last_digit_unit <- function(tok) {
  parts <- strsplit(tolower(tok), "e", fixed = TRUE)[[1L]]
  mant <- parts[1L]
  expo <- if (length(parts) > 1L) as.numeric(parts[2L]) else 0
  decimals <- if (grepl(".", mant, fixed = TRUE)) nchar(sub("^[^.]*\\.", "", mant)) else 0
  10^(expo - decimals)
}

squeeze <- function(s) gsub("[[:space:]]+", " ", trimws(s))

# Differences between two printed lines (character(0) when they agree): the
# text between numbers must match (up to spacing), and numbers must agree
# within `rel_tol` relatively or one unit in their last printed digit.
line_problems <- function(ours, ref, rel_tol) {
  if (identical(ours, ref)) return(character())
  m_o <- gregexpr(number_regex, ours, perl = TRUE)
  m_r <- gregexpr(number_regex, ref, perl = TRUE)
  txt_o <- squeeze(regmatches(ours, m_o, invert = TRUE)[[1L]])
  txt_r <- squeeze(regmatches(ref, m_r, invert = TRUE)[[1L]])
  num_o <- regmatches(ours, m_o)[[1L]]
  num_r <- regmatches(ref, m_r)[[1L]]
  if (length(num_o) != length(num_r) || !identical(txt_o, txt_r)) {
    return(sprintf("text differs:\n  lmm:  %s\n  lme4: %s", ours, ref))
  }
  x <- as.numeric(num_o)
  y <- as.numeric(num_r)
  unit <- pmax(vapply(num_o, last_digit_unit, 0), vapply(num_r, last_digit_unit, 0))
  allowed <- pmax(rel_tol * pmax(abs(x), abs(y)), unit * (1 + 1e-8))
  bad <- abs(x - y) > allowed
  if (any(bad)) {
    return(sprintf("numbers differ (%s vs %s):\n  lmm:  %s\n  lme4: %s",
                   paste(num_o[bad], collapse = " "), paste(num_r[bad], collapse = " "),
                   ours, ref))
  }
  character()
}

expect_same_print <- function(ours, ref, rel_tol = 1e-3) {
  ours <- align_tags(ours)
  if (length(ours) != length(ref)) {
    fail(paste0("different number of lines (", length(ours), " vs ", length(ref),
                ")\n--- lmm:\n", paste(ours, collapse = "\n"),
                "\n--- lme4:\n", paste(ref, collapse = "\n")))
    return(invisible())
  }
  problems <- unlist(Map(line_problems, ours, ref, MoreArgs = list(rel_tol = rel_tol)),
                     use.names = FALSE)
  expect(length(problems) == 0L,
         paste(c("printed output differs from lme4:", problems), collapse = "\n"))
}

# print(fit), print(summary(fit)) (also their messages) and print(VarCorr(fit))
# against lme4.
expect_print_parity <- function(pair) {
  p_fit <- printed(pair$fit)
  p_ref <- printed(pair$ref)
  expect_same_print(p_fit$out, p_ref$out)
  s_fit <- printed(summary(pair$fit))
  s_ref <- printed(summary(pair$ref))
  expect_same_print(s_fit$out, s_ref$out)
  expect_identical(s_fit$msgs, s_ref$msgs)
  expect_same_print(printed(VarCorr(pair$fit))$out, printed(VarCorr(pair$ref))$out)
}

# --- models -----------------------------------------------------------------

test_that("sleepstudy REML fit prints as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), sleepstudy)))
  expect_print_parity(pair)
  out <- printed(pair$fit)$out
  expect_identical(out[1L], "Linear mixed model fit by REML ['lmm']")
  expect_true(any(startsWith(out, "REML criterion at convergence: ")))
  # other print options
  expect_same_print(printed(summary(pair$fit), show.resids = FALSE, ranef.comp = "Std.Dev.")$out,
                    printed(summary(pair$ref), show.resids = FALSE, ranef.comp = "Std.Dev.")$out)
  expect_same_print(printed(summary(pair$fit), correlation = FALSE)$out,
                    printed(summary(pair$ref), correlation = FALSE)$out)
  expect_same_print(printed(summary(pair$fit), symbolic.cor = TRUE)$out,
                    printed(summary(pair$ref), symbolic.cor = TRUE)$out)
  expect_same_print(printed(pair$fit, ranef.comp = c("Variance", "Std.Dev."))$out,
                    printed(pair$ref, ranef.comp = c("Variance", "Std.Dev."))$out)
  expect_same_print(printed(VarCorr(pair$fit), comp = c("Variance", "Std.Dev."))$out,
                    printed(VarCorr(pair$ref), comp = c("Variance", "Std.Dev."))$out)
  expect_same_print(printed(VarCorr(pair$fit), comp = "Variance", digits = 3)$out,
                    printed(VarCorr(pair$ref), comp = "Variance", digits = 3)$out)
  expect_same_print(printed(ranef(pair$fit))$out,
                    printed(lme4::ranef(pair$ref, condVar = FALSE))$out)
})

test_that("sleepstudy ML fit prints the AIC table as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)))
  expect_print_parity(pair)
  expect_identical(printed(pair$fit)$out[1L],
                   "Linear mixed model fit by maximum likelihood  ['lmm']")
})

test_that("uncorrelated terms (||) print as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  expect_print_parity(fit_pair(quote(lmm(Reaction ~ Days + (Days || Subject), sleepstudy))))
})

test_that("crossed random effects (Penicillin) print as lme4", {
  skip_if_not_installed("lme4")
  Penicillin <- lme4::Penicillin
  expect_print_parity(fit_pair(quote(lmm(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin))))
})

test_that("nested random effects (Pastes) print as lme4", {
  skip_if_not_installed("lme4")
  Pastes <- lme4::Pastes
  expect_print_parity(fit_pair(quote(lmm(strength ~ 1 + (1 | batch/cask), Pastes))))
})

test_that("weights and offset lines print as lme4", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  ss$w <- 1 + as.integer(ss$Subject) %% 3
  ss$off <- ss$Days / 10
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (1 | Subject), ss, weights = w, offset = off)))
  expect_print_parity(pair)
  out <- printed(summary(pair$fit))$out
  expect_true("Weights: w" %in% out)
  expect_true(" Offset: off" %in% out)
})

test_that("subset line prints as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), sleepstudy, subset = Days > 0)))
  expect_print_parity(pair)
  expect_true(" Subset: Days > 0" %in% printed(summary(pair$fit))$out)
})

test_that("factor slopes with a wide correlation block print as lme4", {
  skip_if_not_installed("lme4")
  mach <- data.frame(score = nlme::Machines$score,
                     Machine = factor(as.character(nlme::Machines$Machine)),
                     Worker = factor(as.character(nlme::Machines$Worker)))
  expect_print_parity(fit_pair(quote(lmm(score ~ Machine + (0 + Machine | Worker), mach))))
})

test_that("several terms on one factor print as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  expect_print_parity(fit_pair(quote(
    lmm(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy))))
})

test_that("singular fit prints the convergence message as lme4", {
  skip_if_not_installed("lme4")
  Dyestuff2 <- lme4::Dyestuff2
  pair <- fit_pair(quote(lmm(Yield ~ 1 + (1 | Batch), Dyestuff2)))
  expect_print_parity(pair)
  expect_true(any(grepl("boundary (singular) fit", printed(summary(pair$fit))$out, fixed = TRUE)))
  expect_true(any(grepl("1 lme4 warnings", printed(pair$fit)$out, fixed = TRUE)))
})

test_that("rank-deficient X prints the fit warning as lme4", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  ss$Days2 <- 2 * ss$Days
  pair <- fit_pair(quote(lmm(Reaction ~ Days + Days2 + (1 | Subject), ss)))
  expect_print_parity(pair)
})

test_that("correlation of many fixed effects follows lme4's rule", {
  skip_if_not_installed("lme4")
  cake <- lme4::cake
  pair <- fit_pair(quote(lmm(angle ~ recipe * temperature + (1 | recipe:replicate), cake)))
  expect_gt(length(fixef(pair$fit)), getOption("lme4.summary.cor.max", 12))
  expect_print_parity(pair)
  s_fit <- printed(summary(pair$fit))
  expect_false(any(grepl("Correlation of Fixed Effects", s_fit$out)))
  expect_true(any(grepl("Correlation matrix not shown by default", s_fit$msgs)))
  # asked for explicitly, the (wide, abbreviated) matrix is printed
  expect_same_print(printed(summary(pair$fit), correlation = TRUE)$out,
                    printed(summary(pair$ref), correlation = TRUE)$out)
  expect_same_print(printed(summary(pair$fit, correlation = TRUE), correlation = TRUE)$out,
                    printed(summary(pair$ref, correlation = TRUE), correlation = TRUE)$out)
})

test_that("the ddf argument gives clear errors for methods not yet available", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_error(summary(fit, ddf = "Satterthwaite"), "not supported yet")
  expect_error(summary(fit, ddf = "Kenward-Roger"), "not supported yet")
  expect_s3_class(summary(fit, ddf = "lme4"), "summary.lmm")
})
