//! Rows whose data agree exactly, grouped so that a model can hold each group once.
//!
//! A likelihood of independent rows, `Σᵢ aᵢ ℓ(yᵢ | xᵢ, zᵢ, …)` with prior weights `aᵢ` that only
//! multiply their row's term, has the same value, derivatives and Laplace approximation when
//! the rows of a group `G` whose data agree are replaced by one row with weight `Σ_{i∈G} aᵢ`.
//! Count data with factor covariates repeat rows often (glmmTMB's Salamanders: 354 distinct of
//! 644), and every pass of a fit over the rows then does the work of the distinct ones alone.
//!
//! Rows agree when every value in every column is the same bit pattern (so `0.0` and `-0.0`
//! differ, which only costs a merge). Groups are numbered in the order of their first rows.
use std::cmp::Ordering;

/// One column of the rows' data: `k` values per row, stored as `n × k` column-major, or a
/// grouping factor's level of each row.
#[derive(Clone, Copy)]
pub enum RowColumn<'a> {
    Reals { values: &'a [f64], k: usize },
    Levels(&'a [u32]),
}

impl RowColumn<'_> {
    /// The bit patterns of row `i` (of `n`) in this column, fed to `f` one at a time.
    #[inline]
    fn each_bits(&self, n: usize, i: usize, mut f: impl FnMut(u64)) {
        match *self {
            RowColumn::Reals { values, k } => (0..k).for_each(|j| f(values[j * n + i].to_bits())),
            RowColumn::Levels(levels) => f(u64::from(levels[i])),
        }
    }

    /// Whether rows `a` and `b` (of `n`) have the same bit patterns in this column.
    #[inline]
    fn agrees(&self, n: usize, a: usize, b: usize) -> bool {
        match *self {
            RowColumn::Reals { values, k } => {
                (0..k).all(|j| values[j * n + a].to_bits() == values[j * n + b].to_bits())
            }
            RowColumn::Levels(levels) => levels[a] == levels[b],
        }
    }
}

/// The grouping of rows `0..n` into groups of rows whose data agree.
#[derive(Debug, Clone)]
pub struct RowGroups {
    /// The group of each row.
    group: Vec<u32>,
    /// The first row of each group, increasing.
    first: Vec<usize>,
}

impl RowGroups {
    /// Groups the `n` rows of `columns` (each with `n` rows). Rows are sorted by a hash of their
    /// values and compared in full only within a run of equal hashes, so the grouping is exact.
    pub fn of_columns(n: usize, columns: &[RowColumn<'_>]) -> Self {
        let hash = |i: usize| {
            // FxHash's multiply-rotate mixing: fast, and collisions only cost a comparison.
            let mut h = 0u64;
            for c in columns {
                c.each_bits(n, i, |b| {
                    h = (h.rotate_left(5) ^ b).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
                });
            }
            h
        };
        let same = |a: usize, b: usize| columns.iter().all(|c| c.agrees(n, a, b));
        let hashes: Vec<u64> = (0..n).map(hash).collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_unstable_by(|&a, &b| match hashes[a].cmp(&hashes[b]) {
            Ordering::Equal => a.cmp(&b),
            o => o,
        });
        // The first row of each row's group, found within its run of equal hashes (a run holds
        // more than one group only where different rows collide).
        let mut leader = vec![0usize; n];
        let mut start = 0;
        while start < n {
            let h = hashes[order[start]];
            let end = start
                + order[start..]
                    .iter()
                    .take_while(|&&r| hashes[r] == h)
                    .count();
            let mut leaders: Vec<usize> = Vec::new();
            for &row in &order[start..end] {
                match leaders.iter().find(|&&l| same(l, row)) {
                    Some(&l) => leader[row] = l,
                    None => {
                        leaders.push(row);
                        leader[row] = row;
                    }
                }
            }
            start = end;
        }
        let mut group = vec![0u32; n];
        let mut first = Vec::new();
        for i in 0..n {
            group[i] = if leader[i] == i {
                first.push(i);
                (first.len() - 1) as u32
            } else {
                group[leader[i]]
            };
        }
        Self { group, first }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.group.len()
    }

    /// Number of groups.
    pub fn n_groups(&self) -> usize {
        self.first.len()
    }

    /// The first row of each group.
    pub fn first_rows(&self) -> &[usize] {
        &self.first
    }

    /// The group of each row.
    pub fn group(&self) -> &[u32] {
        &self.group
    }

    /// A column of `k` values per row (`n × k`, column-major) at the groups' first rows
    /// (`n_groups × k`).
    pub fn take(&self, values: &[f64], k: usize) -> Vec<f64> {
        let n = self.n_rows();
        (0..k)
            .flat_map(|j| self.first.iter().map(move |&i| values[j * n + i]))
            .collect()
    }

    /// A grouping factor's levels at the groups' first rows.
    pub fn take_levels(&self, levels: &[u32]) -> Vec<u32> {
        self.first.iter().map(|&i| levels[i]).collect()
    }

    /// The sum of each group's row weights (of `weights`, or 1 per row).
    pub fn weight_sums(&self, weights: Option<&[f64]>) -> Vec<f64> {
        let mut sums = vec![0.0; self.n_groups()];
        for (i, &g) in self.group.iter().enumerate() {
            sums[g as usize] += weights.map_or(1.0, |w| w[i]);
        }
        sums
    }

    /// A value per group spread to the rows of each group (empty stays empty).
    pub fn spread(&self, per_group: &[f64]) -> Vec<f64> {
        if per_group.is_empty() {
            return Vec::new();
        }
        self.group.iter().map(|&g| per_group[g as usize]).collect()
    }

    /// A sum over each group's rows, `Σ_{i∈G} aᵢ v_G`, shared out to its rows in proportion to
    /// their weights `aᵢ` (of `weights`, or 1 per row; `sums` is [`Self::weight_sums`]).
    pub fn share(&self, per_group: &[f64], weights: Option<&[f64]>, sums: &[f64]) -> Vec<f64> {
        if per_group.is_empty() {
            return Vec::new();
        }
        self.group
            .iter()
            .enumerate()
            .map(|(i, &g)| {
                let g = g as usize;
                per_group[g] * weights.map_or(1.0, |w| w[i]) / sums[g]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_group_by_every_column_in_first_row_order() {
        // Rows 0, 2 and 4 agree; rows 1 and 3 differ only in the levels; row 5 in -0.0.
        let x = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0];
        let y = [0.0, 0.0, 0.0, 0.0, 0.0, -0.0];
        let levels = [0u32, 1, 0, 2, 0, 0];
        let columns = [
            RowColumn::Reals { values: &x, k: 2 },
            RowColumn::Reals { values: &y, k: 1 },
            RowColumn::Levels(&levels),
        ];
        let g = RowGroups::of_columns(6, &columns);
        assert_eq!(g.group(), &[0, 1, 0, 2, 0, 3]);
        assert_eq!(g.n_groups(), 4);
        assert_eq!(g.take(&x, 2), vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]);
        assert_eq!(g.take_levels(&levels), vec![0, 1, 2, 0]);
        let w = [1.0, 2.0, 3.0, 4.0, 4.0, 5.0];
        let sums = g.weight_sums(Some(&w));
        assert_eq!(sums, vec![8.0, 2.0, 4.0, 5.0]);
        assert_eq!(g.weight_sums(None), vec![3.0, 1.0, 1.0, 1.0]);
        assert_eq!(g.spread(&[10.0, 20.0, 30.0, 40.0]).len(), 6);
        let shared = g.share(&[16.0, 2.0, 4.0, 5.0], Some(&w), &sums);
        assert_eq!(shared, vec![2.0, 2.0, 6.0, 4.0, 8.0, 5.0]);
    }

    #[test]
    fn colliding_hashes_still_compare_rows_in_full() {
        // Many distinct rows: whatever the hash does, no two distinct rows share a group.
        let n = 2000;
        let v: Vec<f64> = (0..n).map(|i| (i % 997) as f64).collect();
        let g = RowGroups::of_columns(n, &[RowColumn::Reals { values: &v, k: 1 }]);
        assert_eq!(g.n_groups(), 997);
        for i in 0..n {
            assert_eq!(v[g.first[g.group[i] as usize]], v[i]);
        }
    }
}
