# Ctrl-C during long engine calls (a fit's optimizer, a profile, bootstrap refits,
# Kenward-Roger): the engine polls for a user interrupt, the call ends with an ordinary R error,
# and the session goes on to fit the next model correctly. A child R process runs the call and
# is sent SIGINT, as Ctrl-C sends it, once it is inside the engine.

# Runs `setup` and then `call` (R code lines) in a child R process, sends it SIGINT `wait`
# seconds after its output has a line matching `ready` ("ready" is printed once `setup` has
# finished; a progress line shows an engine call running), and returns what the call gave (`out`: its error message, "R-level interrupt"
# where R itself took the interrupt, between engine calls, or "finished" where the call ran to
# its end) and `crit`, the REML criterion of sleepstudy fitted next in the same session.
interrupt_child <- function(setup, call, wait, ready = "^ready") {
  dir <- tempfile("interrupt-")
  dir.create(dir)
  script <- file.path(dir, "child.R")
  log <- file.path(dir, "log.txt")
  result <- file.path(dir, "result.rds")
  writeLines(c(
    "suppressPackageStartupMessages(library(mixedrs))",
    setup,
    "cat('ready\\n')",
    "out <- tryCatch({",
    call,
    "  'finished'",
    "}, error = function(e) conditionMessage(e), interrupt = function(e) 'R-level interrupt')",
    "second <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)",
    sprintf("saveRDS(list(out = out, crit = REMLcrit(second)), %s)",
            deparse(paste0(result, ".part"))),
    sprintf("file.rename(%s, %s)", deparse(paste0(result, ".part")), deparse(result))
  ), script)
  rscript <- file.path(R.home("bin"), "Rscript")
  pid_file <- file.path(dir, "pid")
  system2("sh", c("-c", shQuote(sprintf("echo $$ > %s; exec %s %s > %s 2>&1",
                                        pid_file, rscript, script, log))), wait = FALSE)
  deadline <- Sys.time() + 300
  while (Sys.time() < deadline && !file.exists(result) &&
         !(file.exists(log) && any(grepl(ready, readLines(log, warn = FALSE))))) {
    Sys.sleep(0.02)
  }
  Sys.sleep(wait)
  tools::pskill(as.integer(readLines(pid_file)), tools::SIGINT)
  while (Sys.time() < deadline && !file.exists(result)) Sys.sleep(0.05)
  expect_true(file.exists(result), info = paste(readLines(log, warn = FALSE), collapse = "\n"))
  readRDS(result)
}

test_that("an interrupted fit is an R error and the session fits the next model", {
  skip_on_os("windows")
  # A long fit with verbose = TRUE: once it prints its first iteration it is inside the
  # optimizer.
  out <- interrupt_child(c(
    "set.seed(1)",
    "n <- 60000",
    "d <- data.frame(s = factor(sample.int(800, n, TRUE)), i = factor(sample.int(300, n, TRUE)),",
    "                x1 = rnorm(n), x2 = rnorm(n), x3 = rnorm(n))",
    "d$y <- d$x1 + rnorm(800)[d$s] + rnorm(300)[d$i] + rnorm(800)[d$s] * d$x2 + rnorm(n)"),
    "  lmm(y ~ x1 + x2 + x3 + (x1 + x2 + x3 | s) + (x1 | i), d, verbose = TRUE)",
    wait = 0, ready = "iteration:")
  expect_match(out$out, "interrupted")
  expect_equal(out$crit, lme4::REMLcrit(lmer_full(Reaction ~ Days + (Days | Subject),
                                                  lme4::sleepstudy)), tolerance = 1e-8)
})

test_that("Ctrl-C stops a profile on its threads with an R error", {
  # The whole profile is one engine call (about 7 s here on 2 cores); before the engine polled R's
  # interrupt during profiles, R took the interrupt only after it had finished. The signal
  # comes once the call's progress line shows it running (after 2 s).
  skip_on_os("windows")
  out <- interrupt_child(c(
    "set.seed(2)",
    "n <- 50000",
    "d <- data.frame(s = factor(sample.int(1000, n, TRUE)), i = factor(sample.int(600, n, TRUE)),",
    "                x = rnorm(n))",
    "d$y <- d$x + rnorm(1000)[d$s] + rnorm(600)[d$i] + rnorm(1000)[d$s] * d$x + rnorm(n)",
    "fit <- lmm(y ~ x + (x | s) + (1 | i), d)",
    "options(mixedrs.progress = TRUE)"),
    "  profile(fit)", wait = 0, ready = "profile: points")
  expect_match(out$out, "interrupted by the user")
  expect_equal(out$crit, lme4::REMLcrit(lmer_full(Reaction ~ Days + (Days | Subject),
                                                  lme4::sleepstudy)), tolerance = 1e-8)
})

test_that("Ctrl-C stops a bootstrap's refits on their threads with an R error", {
  # 100000 refits of cbpp come in chunks of about 75000 responses: R draws a chunk's
  # responses (a few seconds), then one engine call refits them (about a minute here). R used
  # to take the interrupt only after that call; the signal comes once its progress line shows
  # it running.
  skip_on_os("windows")
  out <- interrupt_child(c(
    "data(cbpp, package = 'lme4')",
    "g <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)",
    "options(mixedrs.progress = TRUE)"),
    "  bootmm(g, function(m) fixef(m), nsim = 100000)", wait = 0, ready = "bootstrap: refits")
  expect_match(out$out, "interrupted by the user")
  expect_equal(out$crit, lme4::REMLcrit(lmer_full(Reaction ~ Days + (Days | Subject),
                                                  lme4::sleepstudy)), tolerance = 1e-8)
})

test_that("Ctrl-C stops the Kenward-Roger computation with an R error", {
  # A fit with a variance at 0 (the term of k, which has no effect) takes the route of dense
  # q x q products (Lambda is singular); on 4200 random effects that is about 8 s here in one
  # engine call. The signal comes once its progress line shows it running (after 2 s).
  skip_on_os("windows")
  out <- interrupt_child(c(
    "set.seed(3)",
    "n <- 30000",
    "d <- data.frame(s = factor(sample.int(3000, n, TRUE)), i = factor(sample.int(1200, n, TRUE)),",
    "                k = factor(sample.int(8, n, TRUE)), x = rnorm(n))",
    "d$y <- d$x + rnorm(3000)[d$s] + rnorm(1200)[d$i] + rnorm(n)",
    "fit <- suppressMessages(lmm(y ~ x + (1 | s) + (1 | i) + (1 | k), d))",
    "stopifnot(getME(fit, 'theta')[[3]] == 0)",
    "options(mixedrs.progress = TRUE)"),
    "  summary(fit, ddf = 'Kenward-Roger')", wait = 0, ready = "Kenward-Roger: dense steps")
  expect_match(out$out, "interrupted by the user")
  expect_equal(out$crit, lme4::REMLcrit(lmer_full(Reaction ~ Days + (Days | Subject),
                                                  lme4::sleepstudy)), tolerance = 1e-8)
})

test_that("a long bootstrap shows a progress line when asked to", {
  # getOption("mixedrs.progress", interactive()): a child R process with the option set
  # writes the line to stderr once the engine's refits have run two seconds.
  skip_on_os("windows")
  dir <- tempfile("progress-")
  dir.create(dir)
  script <- file.path(dir, "child.R")
  log <- file.path(dir, "log.txt")
  writeLines(c(
    "suppressPackageStartupMessages(library(mixedrs))",
    "options(mixedrs.progress = TRUE)",
    # About 40 ms a refit here (5 s in all): 8,000 refits of cbpp had come to take less than
    # the two seconds after which the line appears.
    "data(VerbAgg, package = 'lme4')",
    "g <- glmm(r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), VerbAgg,",
    "          family = binomial)",
    "b <- suppressWarnings(bootmm(g, function(m) fixef(m), nsim = 120, threads = 1))",
    "cat('replicates', nrow(b$t), '\\n')"
  ), script)
  status <- system2(file.path(R.home("bin"), "Rscript"), script, stdout = log, stderr = log)
  out <- readLines(log, warn = FALSE)
  expect_equal(status, 0L, info = paste(out, collapse = "\n"))
  expect_true(any(grepl("replicates 120", out)), info = paste(out, collapse = "\n"))
  expect_true(any(grepl("bootstrap: refits: [0-9]+ of 120 \\([0-9]+ s\\)", out)),
              info = paste(out, collapse = "\n"))
})

test_that("options(mixedrs.progress = ) that is not TRUE or FALSE is an error naming it", {
  fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  old <- options(mixedrs.progress = "yes")
  on.exit(options(old))
  expect_error(bootmm(fit, function(m) fixef(m), nsim = 2, seed = 1),
               "options\\(mixedrs.progress = \\) must be TRUE or FALSE")
  options(mixedrs.progress = FALSE)
  expect_equal(nrow(bootmm(fit, function(m) fixef(m), nsim = 2, seed = 1)$t), 2L)
})
