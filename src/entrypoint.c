// Registers the routines of the Rust static library with R and silences Rust's panic printer
// (a panic still reaches R as an ordinary error).
void R_init_mixedrs_extendr(void *dll);
void mixedrs_quiet_panics(void);

void R_init_mixedrs(void *dll) {
    R_init_mixedrs_extendr(dll);
    mixedrs_quiet_panics();
}
