//! Fits `y = a * x^k` by least squares on log-log axes: the exponent `k` says how wall time
//! grows with what a run is asked to do (1.0 linear, 2.0 quadratic).

/// The fitted exponent over `(x, y)` points, or None when the points cannot define one (fewer
/// than two distinct positive x values, or a non-positive value).
pub fn power_law_exponent(points: &[(f64, f64)]) -> Option<f64> {
    if points.iter().any(|(x, y)| !(x.is_finite() && y.is_finite() && *x > 0.0 && *y > 0.0)) {
        return None;
    }
    let logs: Vec<(f64, f64)> = points.iter().map(|(x, y)| (x.ln(), y.ln())).collect();
    let n = logs.len() as f64;
    if logs.len() < 2 {
        return None;
    }
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    if sxx <= f64::EPSILON {
        return None;
    }
    let k = sxy / sxx;
    assert!(k.is_finite(), "exponent {k} from {points:?}");
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_linear_series_has_exponent_one() {
        let k = power_law_exponent(&[(1.0, 3.0), (2.0, 6.0), (4.0, 12.0), (8.0, 24.0)]).unwrap();
        assert!(close(k, 1.0), "{k}");
    }

    #[test]
    fn a_quadratic_series_has_exponent_two_and_repeated_x_is_averaged() {
        let k = power_law_exponent(&[(3.0, 9.0), (5.0, 25.0), (7.0, 49.0), (3.0, 9.0)]).unwrap();
        assert!(close(k, 2.0), "{k}");
        let k = power_law_exponent(&[(1.0, 1.0), (1.0, 3.0), (2.0, 2.0), (2.0, 6.0)]).unwrap();
        assert!(close(k, 1.0), "{k}");
    }

    #[test]
    fn a_constant_series_has_exponent_zero() {
        let k = power_law_exponent(&[(1.0, 5.0), (2.0, 5.0), (4.0, 5.0)]).unwrap();
        assert!(close(k, 0.0), "{k}");
    }

    #[test]
    fn too_few_or_bad_points_give_no_exponent() {
        assert_eq!(power_law_exponent(&[]), None);
        assert_eq!(power_law_exponent(&[(2.0, 4.0)]), None);
        assert_eq!(power_law_exponent(&[(2.0, 4.0), (2.0, 8.0)]), None);
        assert_eq!(power_law_exponent(&[(0.0, 4.0), (2.0, 8.0)]), None);
        assert_eq!(power_law_exponent(&[(1.0, 4.0), (2.0, f64::NAN)]), None);
    }
}
