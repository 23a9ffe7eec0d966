//! R binding of likelihood profiles and parametric-bootstrap refits (`confint()`, `bootmm()`).
use extendr_api::prelude::*;

extendr_module! {
    mod rbind_resample;
}
