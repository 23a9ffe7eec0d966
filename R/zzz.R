# Package load hook: registers the emmeans methods (R/emmeans.R) with
# emmeans when emmeans is loaded -- now if it already is, otherwise when it
# gets loaded -- without loading emmeans ourselves.
.onLoad <- function(libname, pkgname) {
  if (isNamespaceLoaded("emmeans")) {
    register_emmeans()
  } else {
    setHook(packageEvent("emmeans", "onLoad"), function(...) register_emmeans(),
            action = "append")
  }
  invisible(NULL)
}
