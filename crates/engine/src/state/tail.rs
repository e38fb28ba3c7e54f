//! How surprising a count is under an identity's count model: the upper tail of a Poisson
//! distribution, or of a negative binomial where the identity's counts vary more than a
//! Poisson process would (batches, retries, paging through results).
//!
//! Bounds, not sums: `P(X ≥ k) ≤ pmf(k) / (1 − ρ)`, where `ρ` bounds the ratio of
//! successive terms beyond `k`. Constant time whatever the count (a spike of 10,000 calls
//! costs what a spike of 10 does), and an upper bound errs towards "not surprising".

/// `P(X ≥ k)` (an upper bound) for a count with this mean and variance per window. The
/// variance is taken as at least the mean (a Poisson process); 1 when `k` is not above the
/// mean.
pub fn upper_tail(k: f64, mean: f64, var: f64) -> f64 {
    let mean = mean.max(1e-6);
    if k <= mean || !k.is_finite() {
        return 1.0;
    }
    let var = var.max(mean);
    // Within 1 % of the Poisson variance the Poisson form is exact enough, and the negative
    // binomial's shape parameter would be huge.
    let (ln_pmf, ratio) = if var <= mean * 1.01 {
        (k * mean.ln() - mean - ln_gamma(k + 1.0), mean / (k + 1.0))
    } else {
        let r = mean * mean / (var - mean);
        let q = mean / (r + mean);
        let ln_pmf = ln_gamma(k + r) - ln_gamma(r) - ln_gamma(k + 1.0) + r * (r / (r + mean)).ln() + k * q.ln();
        // (j + r) / (j + 1) falls with j when r > 1 and rises towards 1 when r < 1.
        (ln_pmf, q * ((k + r) / (k + 1.0)).max(1.0))
    };
    if ratio >= 1.0 {
        return 1.0;
    }
    (ln_pmf.exp() / (1.0 - ratio)).min(1.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms: about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Γ(x) = Γ(x + 1) / x keeps the series where it is accurate.
        return ln_gamma(x + 1.0) - x.ln();
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let sum = C[1..].iter().enumerate().fold(C[0], |s, (i, c)| s + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact tail by summing the pmf upwards from `k` (no cancellation), for checking the bound.
    fn exact(k: u32, mean: f64, var: f64) -> f64 {
        let var = var.max(mean);
        let pmf = |j: f64| {
            if var <= mean * 1.01 {
                (j * mean.ln() - mean - ln_gamma(j + 1.0)).exp()
            } else {
                let r = mean * mean / (var - mean);
                let q = mean / (r + mean);
                (ln_gamma(j + r) - ln_gamma(r) - ln_gamma(j + 1.0) + r * (1.0 - q).ln() + j * q.ln()).exp()
            }
        };
        (k..k + 20_000).map(|j| pmf(f64::from(j))).sum::<f64>()
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        for n in 1..20u32 {
            let f: f64 = (1..n).map(f64::from).product();
            assert!((ln_gamma(f64::from(n)) - f.ln()).abs() < 1e-9, "{n}");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-9);
    }

    #[test]
    fn the_bound_is_above_the_exact_tail_and_close_to_it() {
        for &(mean, var) in &[(0.3, 0.3), (0.3, 2.0), (5.0, 5.0), (5.0, 40.0), (120.0, 150.0)] {
            for k in [mean as u32 + 2, mean as u32 * 2 + 3, mean as u32 * 4 + 8] {
                let (b, e) = (upper_tail(f64::from(k), mean, var), exact(k, mean, var));
                assert!(b >= e * 0.999_999, "mean {mean} var {var} k {k}: bound {b} < exact {e}");
                assert!(b <= e * 5.0 + 1e-12, "mean {mean} var {var} k {k}: bound {b} far above {e}");
            }
        }
    }

    #[test]
    fn a_quiet_key_reading_at_sixty_times_its_rate_is_a_one_in_a_billion_minute() {
        // One call every three minutes; 18 in one minute.
        assert!(upper_tail(18.0, 0.33, 0.33) < 1e-15);
        // The same key is allowed a few calls together now and then...
        assert!(upper_tail(2.0, 0.33, 0.33) > 1e-2);
        // ...and an identity whose minutes vary widely (batches) is allowed much more.
        assert!(upper_tail(18.0, 0.33, 6.0) > upper_tail(18.0, 0.33, 0.33) * 1e6);
        assert_eq!(upper_tail(0.2, 0.33, 0.33), 1.0);
    }

    #[test]
    fn huge_counts_and_means_stay_finite() {
        assert!(upper_tail(1e7, 1e5, 2e5) < 1e-100);
        assert!(upper_tail(1e5 + 100.0, 1e5, 1e5) > 0.3);
        assert_eq!(upper_tail(f64::INFINITY, 1.0, 1.0), 1.0);
    }
}
