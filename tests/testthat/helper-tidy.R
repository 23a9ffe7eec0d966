# Helpers of the broom-style tests: broom.mixed's results for lme4/lmerTest
# fits side by side with ours.

skip_if_no_broom <- function() {
  skip_if_not_installed("lme4")
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("broom.mixed")
  skip_if_not_installed("generics")
}

# Same columns in the same order; character columns identical (NA where
# the reference has NA); numeric columns equal to relative tolerance `tol`
# (testthat's mean relative difference; `col_tol` gives other tolerances for
# named columns), with NA in the same places.
expect_tidy_equal <- function(ours, ref, tol, cols = names(ref), col_tol = NULL) {
  ours <- as.data.frame(ours)
  ref <- as.data.frame(ref)
  expect_identical(names(ours), names(ref))
  expect_identical(nrow(ours), nrow(ref))
  for (cn in cols) {
    a <- ours[[cn]]
    b <- ref[[cn]]
    if (is.numeric(b) && !is.matrix(b)) {
      expect_identical(is.na(a), is.na(b), label = paste("NA pattern of", cn))
      ok <- !is.na(b)
      if (any(ok)) {
        expect_equal(unname(as.numeric(a[ok])), unname(as.numeric(b[ok])),
                     tolerance = if (cn %in% names(col_tol)) col_tol[[cn]] else tol,
                     label = paste("column", cn))
      }
    } else if (!is.matrix(b)) {
      expect_identical(as.character(a), as.character(b), label = paste("column", cn))
    }
  }
}

# broom.mixed's augment() columns (beyond the data) of an lme4 fit; lme4
# warns that the hat matrix may not make sense for GLMMs.
ref_augment <- function(ref, ...) {
  suppressWarnings(broom.mixed::augment(ref, ...))
}

all_effects <- c("ran_pars", "fixed", "ran_vals", "ran_coefs")
