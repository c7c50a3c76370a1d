//! Branch-free `f32` approximations of `exp` and `erf` that the compiler vectorizes (libm's are
//! scalar calls). Errors against `f64` references are tested below.

/// `e^x`, relative error under 2e-7 on `[-87, 88]`; 0 below, +inf above (via the exponent).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    // `shifted`'s low mantissa bits hold the integer n (its ulp is 1), which also gives 2^n
    // below by integer arithmetic alone (a float-to-int cast is a saturating, scalar branch).
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor polynomial of degree 7 on |r| <= ln(2)/2.
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // bits(shifted) = bits(1.5 * 2^23) + n; shifting by 23 drops everything but n + 127.
    let scale = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    p * scale
}

/// The error function, absolute error under 3e-7.
///
/// A Maclaurin series below |x| = 0.5 (where `erf(x) ~ x` needs relative accuracy) and
/// Abramowitz & Stegun 7.1.26 (`1 - poly(t) e^{-x^2}`, `t = 1 / (1 + p|x|)`) above.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    erf_and_gaussian(x).0
}

/// `(erf(x), e^{-x^2})`: [`erf`] and the Gaussian factor it computes on the way, which GELU's
/// derivative needs too.
#[inline(always)]
pub fn erf_and_gaussian(x: f32) -> (f32, f32) {
    let a = x.abs();
    let x2 = x * x;
    // 2/sqrt(pi) * (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320)
    let s = -1.0 / 1320.0;
    let s = s * x2 + 1.0 / 216.0;
    let s = s * x2 - 1.0 / 42.0;
    let s = s * x2 + 1.0 / 10.0;
    let s = s * x2 - 1.0 / 3.0;
    let s = s * x2 + 1.0;
    let small = std::f32::consts::FRAC_2_SQRT_PI * x * s;
    let gaussian = exp(-x2);
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let q = 1.061_405_4;
    let q = q * t - 1.453_152;
    let q = q * t + 1.421_413_8;
    let q = q * t - 0.284_496_74;
    let q = q * t + 0.254_829_6;
    let large = (1.0 - q * t * gaussian).copysign(x);
    (if a < 0.5 { small } else { large }, gaussian)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf64(x: f64) -> f64 {
        // erf by its Maclaurin series in f64, exact enough on |x| <= 4 for a 1e-7 check.
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    }

    #[test]
    fn exp_is_accurate_to_two_ulp_scale() {
        let mut worst = 0.0f64;
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert!((0.0..1e-37).contains(&exp(-200.0)));
    }

    #[test]
    fn erf_is_accurate_to_3e7_absolute() {
        let mut worst = 0.0f64;
        for i in -4000..=4000 {
            let x = i as f32 * 0.001;
            worst = worst.max((erf(x) as f64 - erf64(x as f64)).abs());
        }
        assert!(worst < 3e-7, "worst absolute error {worst}");
        assert_eq!(erf(9.0), 1.0);
        assert_eq!(erf(-9.0), -1.0);
        // Relative accuracy near zero, where GELU's slope lives.
        assert!(((erf(1e-4) as f64) / erf64(1e-4) - 1.0).abs() < 1e-6);
    }
}
