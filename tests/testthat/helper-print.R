# Helpers shared by the printing tests: print an object into lines and
# compare our lines with lme4's, text exactly (up to spacing) and numbers
# within a relative tolerance or one unit in their last printed digit.

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
# within `rel_tol` relatively (`rel_tol_exp` for numbers in e-notation) or
# one unit in their last printed digit.
line_problems <- function(ours, ref, rel_tol, rel_tol_exp = rel_tol) {
  if (identical(ours, ref)) return(character())
  m_o <- gregexpr(number_regex, ours, perl = TRUE)
  m_r <- gregexpr(number_regex, ref, perl = TRUE)
  txt_o <- squeeze(regmatches(ours, m_o, invert = TRUE)[[1L]])
  txt_r <- squeeze(regmatches(ref, m_r, invert = TRUE)[[1L]])
  num_o <- regmatches(ours, m_o)[[1L]]
  num_r <- regmatches(ref, m_r)[[1L]]
  if (length(num_o) != length(num_r) || !identical(txt_o, txt_r)) {
    return(sprintf("text differs:\n  ours: %s\n  lme4: %s", ours, ref))
  }
  x <- as.numeric(num_o)
  y <- as.numeric(num_r)
  unit <- pmax(vapply(num_o, last_digit_unit, 0), vapply(num_r, last_digit_unit, 0))
  tol <- ifelse(grepl("e", num_o, ignore.case = TRUE) | grepl("e", num_r, ignore.case = TRUE),
                rel_tol_exp, rel_tol)
  allowed <- pmax(tol * pmax(abs(x), abs(y)), unit * (1 + 1e-8))
  bad <- abs(x - y) > allowed
  if (any(bad)) {
    return(sprintf("numbers differ (%s vs %s):\n  ours: %s\n  lme4: %s",
                   paste(num_o[bad], collapse = " "), paste(num_r[bad], collapse = " "),
                   ours, ref))
  }
  character()
}

# Our printed lines against lme4's after `align` maps the tags that
# legitimately differ (class names, optimizer names) on both.
expect_same_print <- function(ours, ref, align = identity, rel_tol = 1e-3,
                              rel_tol_exp = rel_tol) {
  ours <- align(ours)
  ref <- align(ref)
  if (length(ours) != length(ref)) {
    fail(paste0("different number of lines (", length(ours), " vs ", length(ref),
                ")\n--- ours:\n", paste(ours, collapse = "\n"),
                "\n--- lme4:\n", paste(ref, collapse = "\n")))
    return(invisible())
  }
  problems <- unlist(Map(line_problems, ours, ref,
                         MoreArgs = list(rel_tol = rel_tol, rel_tol_exp = rel_tol_exp)),
                     use.names = FALSE)
  expect(length(problems) == 0L,
         paste(c("printed output differs from lme4:", problems), collapse = "\n"))
}

# print(fit), print(summary(fit)) (also their messages) and print(VarCorr(fit))
# against lme4; the summary against `summary_ref` (e.g. lmerTest's summary of
# the reference fit), whose lines are first mapped by `summary_align`.
expect_print_parity <- function(pair, align = identity, ..., summary_ref = summary(pair$ref),
                                summary_align = identity) {
  p_fit <- printed(pair$fit)
  p_ref <- printed(pair$ref)
  expect_same_print(p_fit$out, p_ref$out, align, ...)
  s_fit <- printed(summary(pair$fit))
  s_ref <- printed(summary_ref)
  s_ref$out <- summary_align(s_ref$out)
  expect_same_print(s_fit$out, s_ref$out, align, ...)
  expect_identical(s_fit$msgs, s_ref$msgs)
  expect_same_print(printed(VarCorr(pair$fit))$out, printed(VarCorr(pair$ref))$out, align, ...)
}
