//! R binding of Satterthwaite and Kenward–Roger degrees of freedom (`summary()`, `anova()`).
use extendr_api::prelude::*;

extendr_module! {
    mod rbind_ddf;
}
