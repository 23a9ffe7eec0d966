//! Kernels for the tiny dense blocks of the blocked Cholesky factor.
//!
//! Random-effects blocks are `q × q` with `q` the number of columns of a grouping factor's terms
//! (usually 1 to 4). A general dense library call costs more in dispatch than the arithmetic at
//! these sizes and runs once per level per θ, so these loops are hand-written; they work for any
//! `q`. All matrices are column-major slices.

/// In-place lower Cholesky of the `q × q` matrix `a` (lower triangle read, upper zeroed).
/// Returns `Σ log L_ii`, or `None` if `a` is not positive definite.
pub fn chol_lower(a: &mut [f64], q: usize) -> Option<f64> {
    let mut logdet = 0.0;
    for j in 0..q {
        let mut d = a[j * q + j];
        for k in 0..j {
            d -= a[k * q + j] * a[k * q + j];
        }
        if d.is_nan() || d <= 0.0 || !d.is_finite() {
            return None;
        }
        let ljj = d.sqrt();
        a[j * q + j] = ljj;
        logdet += ljj.ln();
        for i in j + 1..q {
            let mut s = a[j * q + i];
            for k in 0..j {
                s -= a[k * q + i] * a[k * q + j];
            }
            a[j * q + i] = s / ljj;
        }
        for i in 0..j {
            a[j * q + i] = 0.0;
        }
    }
    Some(logdet)
}

/// `out = T_r' A T_c` for `A` (`q_r × q_c`) and lower-triangular `T_r` (`q_r × q_r`),
/// `T_c` (`q_c × q_c`). `tmp` needs `q_r · q_c` values.
pub fn congruence(
    out: &mut [f64],
    t_r: &[f64],
    a: &[f64],
    t_c: &[f64],
    q_r: usize,
    q_c: usize,
    tmp: &mut [f64],
) {
    // tmp = A T_c
    for j in 0..q_c {
        for i in 0..q_r {
            let mut s = 0.0;
            for k in j..q_c {
                s += a[k * q_r + i] * t_c[j * q_c + k];
            }
            tmp[j * q_r + i] = s;
        }
    }
    // out = T_r' tmp
    for j in 0..q_c {
        for i in 0..q_r {
            let mut s = 0.0;
            for k in i..q_r {
                s += t_r[i * q_r + k] * tmp[j * q_r + k];
            }
            out[j * q_r + i] = s;
        }
    }
}

/// [`congruence`] with `q_r = 1` (`t_r` the scalar `t`) followed by [`right_solve_lower_t`]
/// with one row: `out = t · a T_c L⁻ᵀ` for a row `a` of `q` values, with the same operations
/// in the same order as the two general kernels.
#[inline]
pub fn row_congruence_solve(out: &mut [f64], t: f64, a: &[f64], t_c: &[f64], l: &[f64], q: usize) {
    for j in 0..q {
        let mut s = 0.0;
        for k in j..q {
            s += a[k] * t_c[j * q + k];
        }
        let mut r = 0.0;
        r += t * s;
        out[j] = r;
    }
    for j in 0..q {
        for k in 0..j {
            let ljk = l[k * q + j];
            if ljk != 0.0 {
                out[j] -= out[k] * ljk;
            }
        }
        out[j] /= l[j * q + j];
    }
}

/// `B ← B L⁻ᵀ` for `B` (`rows × q`) and lower-triangular `L` (`q × q`): solves `X L' = B`.
pub fn right_solve_lower_t(b: &mut [f64], rows: usize, l: &[f64], q: usize) {
    for j in 0..q {
        for k in 0..j {
            let ljk = l[k * q + j];
            if ljk != 0.0 {
                for i in 0..rows {
                    b[j * rows + i] -= b[k * rows + i] * ljk;
                }
            }
        }
        let d = l[j * q + j];
        for i in 0..rows {
            b[j * rows + i] /= d;
        }
    }
}

/// `x ← L⁻ᵀ x` for lower-triangular `L` (`q × q`): solves `L' y = x`.
pub fn solve_lower_t(l: &[f64], q: usize, x: &mut [f64]) {
    for j in (0..q).rev() {
        let mut s = x[j];
        for k in j + 1..q {
            s -= l[j * q + k] * x[k];
        }
        x[j] = s / l[j * q + j];
    }
}

/// `x ← L⁻¹ x` for lower-triangular `L` (`q × q`).
pub fn solve_lower(l: &[f64], q: usize, x: &mut [f64]) {
    for j in 0..q {
        let mut s = x[j];
        for k in 0..j {
            s -= l[k * q + j] * x[k];
        }
        x[j] = s / l[j * q + j];
    }
}

/// `C −= A B'` for `A` (`r × k`), `B` (`c × k`), `C` (`r × c`), all column-major.
pub fn sub_abt(cm: &mut [f64], a: &[f64], b: &[f64], r: usize, c: usize, k: usize) {
    for l in 0..k {
        for j in 0..c {
            let bjl = b[l * c + j];
            if bjl == 0.0 {
                continue;
            }
            for i in 0..r {
                cm[j * r + i] -= a[l * r + i] * bjl;
            }
        }
    }
}

/// `C −= A'B` for `A`, `B` (`m × k`, column-major) when `A'B` is known to be symmetric (as
/// `G'S⁻¹G` is): only the lower triangle is computed and then mirrored into `C` (`k × k`).
pub fn sub_symmetric_atb(cm: &mut [f64], a: &[f64], b: &[f64], m: usize, k: usize) {
    for i in 0..k {
        let ai = &a[i * m..(i + 1) * m];
        for j in 0..=i {
            let bj = &b[j * m..(j + 1) * m];
            let v: f64 = ai.iter().zip(bj).map(|(x, y)| x * y).sum();
            cm[j * k + i] -= v;
            if i != j {
                cm[i * k + j] -= v;
            }
        }
    }
}

/// `y = T x` for lower-triangular `T` (`q × q`).
pub fn lower_mul(t: &[f64], q: usize, x: &[f64], y: &mut [f64]) {
    for i in 0..q {
        let mut s = 0.0;
        for k in 0..=i {
            s += t[k * q + i] * x[k];
        }
        y[i] = s;
    }
}

/// `out = L⁻¹` for a lower-triangular `q × q` column-major `L` with a nonzero diagonal.
pub fn lower_inverse(l: &[f64], q: usize, out: &mut [f64]) {
    out.fill(0.0);
    for c in 0..q {
        let col = &mut out[c * q..(c + 1) * q];
        col[c] = 1.0;
        solve_lower(l, q, col);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_of_small_spd_matrix() {
        // A = L L' with L = [[2,0,0],[1,3,0],[0.5,-1,1.5]]
        let l = [2.0, 1.0, 0.5, 0.0, 3.0, -1.0, 0.0, 0.0, 1.5];
        let mut a = vec![0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                a[j * 3 + i] = (0..3).map(|k| l[k * 3 + i] * l[k * 3 + j]).sum();
            }
        }
        let logdet = chol_lower(&mut a, 3).expect("positive definite");
        for (x, y) in a.iter().zip(l.iter()) {
            assert!((x - y).abs() < 1e-12);
        }
        assert!((logdet - (2.0f64 * 3.0 * 1.5).ln()).abs() < 1e-12);
        let mut bad = vec![1.0, 2.0, 2.0, 1.0];
        assert!(chol_lower(&mut bad, 2).is_none());
    }

    #[test]
    fn triangular_solves_invert_products() {
        let l = [2.0, 1.0, 0.0, 3.0];
        let x = [1.0, -2.0];
        let mut y = [0.0; 2];
        lower_mul(&l, 2, &x, &mut y);
        solve_lower(&l, 2, &mut y);
        assert!((y[0] - x[0]).abs() < 1e-14 && (y[1] - x[1]).abs() < 1e-14);
        // L' x then solve_lower_t
        let mut z = [l[0] * x[0] + l[1] * x[1], l[3] * x[1]];
        solve_lower_t(&l, 2, &mut z);
        assert!((z[0] - x[0]).abs() < 1e-14 && (z[1] - x[1]).abs() < 1e-14);
        // B L^{-T}: B = X L' for X 1×2
        let mut b = [x[0] * l[0], x[0] * l[1] + x[1] * l[3]];
        right_solve_lower_t(&mut b, 1, &l, 2);
        assert!((b[0] - x[0]).abs() < 1e-14 && (b[1] - x[1]).abs() < 1e-14);
    }
}
