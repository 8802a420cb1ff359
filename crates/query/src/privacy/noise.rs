//! Exact, integer-only noise samplers for differentially private answers.
//!
//! Two mechanisms, both sampled exactly with integer arithmetic following Canonne, Kamath &
//! Steinke, "The Discrete Gaussian for Differential Privacy" (NeurIPS 2020, "CKS20"),
//! Algorithms 1–3:
//!
//! - **Discrete Laplace** with scale `t`: `P[k] ∝ exp(-|k|/t)` over the integers. Added to a
//!   query of sensitivity `Δ` with `t = Δ/ε`, it gives `ε`-differential privacy (pure DP).
//! - **Discrete Gaussian** with parameter `σ`: `P[k] ∝ exp(-k²/(2σ²))` over the integers.
//!   Added to a query of sensitivity `Δ` it gives `ρ`-zero-concentrated DP with
//!   `ρ = Δ²/(2σ²)` (CKS20), hence `(ε, δ)`-DP for every `δ > 0` with
//!   `ε = ρ + 2·sqrt(ρ·ln(1/δ))` (Bun & Steinke 2016; CKS20 also give a tighter direct
//!   conversion). Its variance is below `σ²`, and for `σ ≥ 1` equal to it up to a term
//!   exponentially small in `σ²` (CKS20).
//!
//! Why integers: the textbook `scale · ln(U)` Laplace sampler over `f64` does not produce a
//! Laplace distribution. Floating-point values are unevenly spaced, so the set of outputs
//! `answer + noise` that can occur at all depends on `answer`, and looking at the low-order
//! bits of one released number can tell neighbouring databases apart with certainty — no
//! privacy at all (Mironov, "On Significance of the Least Significant Bits for Differential
//! Privacy", CCS 2012). Here every random decision is a comparison of uniformly random
//! integers with exact rational thresholds; no float is touched while sampling.
//!
//! Real-valued noise ([`NoiseSource::laplace`], [`NoiseSource::gaussian`]) is an integer
//! sample times a power-of-two step `g` (see [`grid_step`]): `g` is the largest power of two
//! not above `scale / 2^20`, so the scale measured in steps, `scale/g ∈ [2^20, 2^21)`, is an
//! exactly representable rational and the noise is exactly `g·k` with `k` discrete
//! Laplace/Gaussian of scale `scale/g`. The grid is about a million steps per scale unit, so
//! the distribution is the continuous one to within about 10⁻⁶ of the scale — while every
//! output is an exact multiple of `g`. To keep the guarantee when the *sum* `answer + noise`
//! is published, round the answer to a multiple of `g` first (that moves neighbouring
//! answers by at most one more step, so calibrate `scale` for sensitivity `Δ + g`); and
//! keep `|answer|/g` below `2^53` so that the `f64` addition is exact.
//!
//! Count noise ([`NoiseSource::count_laplace`], [`NoiseSource::count_gaussian`]) is the plain
//! integer sample; its scale is rounded *up* to a multiple of `2^-20`, which can only add
//! noise and so never weakens the guarantee.
//!
//! Randomness comes from one ChaCha20 stream per [`NoiseSource`], seeded from the operating
//! system in production.

use std::fmt;
use std::sync::Mutex;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// How many grid steps a unit of scale spans, as a power of two: `scale/g ∈ [2^20, 2^21)`.
const GRID_BITS: i32 = 20;

/// Count-noise scales are rounded up to a multiple of `2^-COUNT_SCALE_BITS`.
const COUNT_SCALE_BITS: u32 = 20;

/// Largest scale or σ accepted for count noise. Noise this large makes a count meaningless
/// anyway; the cap keeps every intermediate product of the samplers inside `u128`/256 bits.
const COUNT_MAX_SCALE: f64 = 4_294_967_296.0; // 2^32

/// A source of differentially private noise: a cryptographic random stream behind a lock,
/// so one source can be shared by concurrent queries.
pub(crate) struct NoiseSource {
    rng: Mutex<ChaCha20Rng>,
}

impl fmt::Debug for NoiseSource {
    // The generator's state *is* the future noise: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoiseSource").finish_non_exhaustive()
    }
}

impl NoiseSource {
    /// A source seeded from the operating system's randomness: the production default.
    ///
    /// Panics (inside `rand`, like `rand::rng()`) if the operating system cannot provide
    /// randomness at all: there is no safe fallback, since predictable noise is no privacy.
    pub(crate) fn from_entropy() -> Self {
        Self {
            rng: Mutex::new(ChaCha20Rng::from_os_rng()),
        }
    }

    /// A source with a fixed seed, **for tests only**.
    ///
    /// Anyone who knows the seed can recompute every noise value and subtract it from the
    /// released answers, so a known seed destroys the privacy guarantee completely. Never
    /// use it for answers that leave the process.
    pub(crate) fn seeded(seed: u64) -> Self {
        Self {
            rng: Mutex::new(ChaCha20Rng::seed_from_u64(seed)),
        }
    }

    /// Real-valued noise for a query of sensitivity `Δ` released with `ε`-DP when
    /// `scale = Δ/ε`: `g·k` with `k` discrete Laplace of scale `scale/g` and `g =`
    /// [`grid_step`]`(scale)` (see the module documentation). Its variance is `2·scale²` up
    /// to a relative `10⁻¹²`.
    ///
    /// Errors if `scale` is not a positive finite number, or is so small (below `2^-1054`)
    /// that its grid step is not representable.
    pub(crate) fn laplace(&self, scale: f64) -> Result<f64, String> {
        let grid = Grid::new(scale, "Laplace scale")?;
        let k = discrete_laplace(&mut self.lock(), grid.num, grid.den)?;
        grid.point(k)
    }

    /// Real-valued noise for `ρ`-zCDP with `ρ = Δ²/(2σ²)`: `g·k` with `k` discrete Gaussian
    /// of parameter `σ/g` and `g =` [`grid_step`]`(sigma)`. Its variance is `σ²`.
    ///
    /// Errors like [`NoiseSource::laplace`] for a bad `sigma`.
    pub(crate) fn gaussian(&self, sigma: f64) -> Result<f64, String> {
        let grid = Grid::new(sigma, "Gaussian sigma")?;
        // σ/g = num/den with num < 2^53, den ≤ 2^32, so σ² = num²/den² fits comfortably.
        let params = GaussianParams::new(grid.num * grid.num, grid.den * grid.den)?;
        let k = discrete_gaussian(&mut self.lock(), &params)?;
        grid.point(k)
    }

    /// Integer noise for counts: discrete Laplace with `scale` rounded up to a multiple of
    /// `2^-20`; `ε`-DP for sensitivity `Δ` when `scale = Δ/ε`.
    ///
    /// Errors if `scale` is not positive and finite, or is above `2^32`.
    pub(crate) fn count_laplace(&self, scale: f64) -> Result<i64, String> {
        let (num, den) = count_scale(scale, "count Laplace scale")?;
        let k = discrete_laplace(&mut self.lock(), num, den)?;
        to_i64(k)
    }

    /// Integer noise for counts: discrete Gaussian with `sigma` rounded up to a multiple of
    /// `2^-20`; `ρ`-zCDP with `ρ = Δ²/(2σ²)`.
    ///
    /// Errors if `sigma` is not positive and finite, or is above `2^32`.
    pub(crate) fn count_gaussian(&self, sigma: f64) -> Result<i64, String> {
        let (num, den) = count_scale(sigma, "count Gaussian sigma")?;
        // num ≤ 2^52 and den ≤ 2^20, so σ² = num²/den² fits in u128.
        let params = GaussianParams::new(num * num, den * den)?;
        let k = discrete_gaussian(&mut self.lock(), &params)?;
        to_i64(k)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChaCha20Rng> {
        // A panic while sampling leaves the generator in a valid (merely advanced) state, but
        // a poisoned lock means something already went badly wrong: stop rather than guess.
        self.rng.lock().expect("noise source lock")
    }
}

/// The step `g` of the grid that [`NoiseSource::laplace`] and [`NoiseSource::gaussian`] put
/// noise of this `scale` (or σ) on: the largest power of two `≤ scale / 2^20`. Callers that
/// publish `answer + noise` should round `answer` to a multiple of it first.
pub(crate) fn grid_step(scale: f64) -> Result<f64, String> {
    Grid::new(scale, "noise scale").map(|grid| grid.step)
}

/// A positive finite `f64` as `mantissa · 2^exponent` with an odd mantissa.
fn decompose(value: f64, what: &str) -> Result<(u128, i32), String> {
    // NaN is not finite, so it is refused here too.
    if !value.is_finite() || value <= 0.0 {
        return Err(format!(
            "{what} must be a positive finite number, got {value}"
        ));
    }
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = u128::from(bits & ((1u64 << 52) - 1));
    let (mantissa, exponent) = if biased == 0 {
        (fraction, -1074) // subnormal: no implicit leading one
    } else {
        (fraction | (1u128 << 52), biased - 1075)
    };
    // value > 0, so the mantissa is not zero.
    let zeros = mantissa.trailing_zeros();
    Ok((mantissa >> zeros, exponent + zeros as i32))
}

/// `2^exponent` as an `f64`, built from its bits so that it is exact down to subnormals.
fn pow2(exponent: i32) -> Option<f64> {
    if !(-1074..=1023).contains(&exponent) {
        None
    } else if exponent >= -1022 {
        Some(f64::from_bits(((exponent + 1023) as u64) << 52))
    } else {
        Some(f64::from_bits(1u64 << (exponent + 1074)))
    }
}

/// A real scale on its power-of-two grid: `scale = step · num/den` exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Grid {
    step: f64,
    num: u128,
    den: u128,
}

impl Grid {
    fn new(scale: f64, what: &str) -> Result<Self, String> {
        let (mantissa, exponent) = decompose(scale, what)?;
        // floor(log2(scale)); the mantissa is below 2^53 so its bit length fits in i32.
        let log2 = exponent + (127 - mantissa.leading_zeros()) as i32;
        let step_exponent = log2 - GRID_BITS;
        let step = pow2(step_exponent)
            .ok_or_else(|| format!("{what} {scale} is too small to put noise on a grid"))?;
        // scale/step = mantissa · 2^(exponent - step_exponent), a dyadic rational in
        // [2^20, 2^21); the shift lies in [-32, 20] because the mantissa has at most 53 bits.
        let shift = exponent - step_exponent;
        let (num, den) = if shift >= 0 {
            (mantissa << shift, 1)
        } else {
            (mantissa, 1u128 << -shift)
        };
        Ok(Self { step, num, den })
    }

    /// `k · step`; exact whenever `|k| < 2^53` (always, in practice), since `step` is a power
    /// of two.
    fn point(&self, k: i128) -> Result<f64, String> {
        let value = k as f64 * self.step;
        if value.is_finite() {
            Ok(value)
        } else {
            Err("noise overflowed the f64 range".to_owned())
        }
    }
}

/// A count scale rounded up to `num/den` with `den` dividing `2^20`.
fn count_scale(scale: f64, what: &str) -> Result<(u128, u128), String> {
    let (mantissa, exponent) = decompose(scale, what)?;
    if scale > COUNT_MAX_SCALE {
        return Err(format!(
            "{what} {scale} is above the maximum {COUNT_MAX_SCALE}"
        ));
    }
    // scale · 2^20 = mantissa · 2^shift; take its ceiling with integer shifts only.
    let shift = exponent + COUNT_SCALE_BITS as i32;
    let num = if shift >= 0 {
        mantissa << shift // ≤ 2^52: scale ≤ 2^32
    } else if shift <= -128 {
        1 // 0 < mantissa < 2^53 ≤ 2^-shift: the ceiling of a number in (0, 1)
    } else {
        let drop = -shift as u32;
        let floor = mantissa >> drop;
        let remainder = mantissa & ((1u128 << drop) - 1);
        floor + u128::from(remainder != 0)
    };
    let den = 1u128 << COUNT_SCALE_BITS;
    // Cancel common powers of two so the samplers work with the smallest numbers.
    let common = num.trailing_zeros().min(COUNT_SCALE_BITS);
    Ok((num >> common, den >> common))
}

fn to_i64(k: i128) -> Result<i64, String> {
    i64::try_from(k).map_err(|_| format!("count noise {k} does not fit in i64"))
}

/// An unsigned 256-bit integer, just enough for the discrete Gaussian's acceptance test,
/// whose exact numerator and denominator need about 2·(53 + 32 + 21) bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct U256 {
    // Field order matters: the derived `Ord` compares `hi` first.
    hi: u128,
    lo: u128,
}

impl U256 {
    const ONE: Self = Self::from_u128(1);

    const fn from_u128(lo: u128) -> Self {
        Self { hi: 0, lo }
    }

    /// The full product of two `u128`s (it always fits in 256 bits).
    fn mul(a: u128, b: u128) -> Self {
        const LOW: u128 = u64::MAX as u128;
        let (a1, a0) = (a >> 64, a & LOW);
        let (b1, b0) = (b >> 64, b & LOW);
        let low = a0 * b0;
        let cross1 = a0 * b1;
        let cross2 = a1 * b0;
        let high = a1 * b1;
        // Three values below 2^64 each: no overflow.
        let middle = (low >> 64) + (cross1 & LOW) + (cross2 & LOW);
        Self {
            hi: high + (cross1 >> 64) + (cross2 >> 64) + (middle >> 64),
            lo: (low & LOW) | (middle << 64),
        }
    }

    fn checked_double(self) -> Option<Self> {
        if self.hi >> 127 != 0 {
            return None;
        }
        Some(Self {
            hi: (self.hi << 1) | (self.lo >> 127),
            lo: self.lo << 1,
        })
    }

    /// `self - other` for `self ≥ other`.
    fn sub(self, other: Self) -> Self {
        debug_assert!(self >= other);
        let (lo, borrow) = self.lo.overflowing_sub(other.lo);
        Self {
            hi: self.hi - other.hi - u128::from(borrow),
            lo,
        }
    }

    fn bits(self) -> u32 {
        if self.hi != 0 {
            256 - self.hi.leading_zeros()
        } else {
            128 - self.lo.leading_zeros()
        }
    }

    fn is_zero(self) -> bool {
        self.hi == 0 && self.lo == 0
    }
}

/// `bits` (≤ 128) uniformly random bits.
fn random_bits(rng: &mut ChaCha20Rng, bits: u32) -> u128 {
    match bits {
        0 => 0,
        1..=64 => u128::from(rng.next_u64() >> (64 - bits)),
        _ => {
            let word = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            word >> (128 - bits)
        }
    }
}

/// Uniform on `[0, bound)`, `bound > 0`: rejection from the smallest covering power of two,
/// which is exactly uniform (no modulo bias) and accepts with probability above 1/2.
fn uniform_below(rng: &mut ChaCha20Rng, bound: U256) -> U256 {
    debug_assert!(!bound.is_zero());
    let bits = bound.bits();
    loop {
        let candidate = if bits > 128 {
            let hi = random_bits(rng, bits - 128);
            U256 {
                hi,
                lo: random_bits(rng, 128),
            }
        } else {
            U256::from_u128(random_bits(rng, bits))
        };
        if candidate < bound {
            return candidate;
        }
    }
}

fn uniform_below_u128(rng: &mut ChaCha20Rng, bound: u128) -> u128 {
    uniform_below(rng, U256::from_u128(bound)).lo
}

/// Bernoulli(`num/den`) for `0 ≤ num ≤ den`, `den > 0`.
fn bernoulli(rng: &mut ChaCha20Rng, num: U256, den: U256) -> bool {
    uniform_below(rng, den) < num
}

/// Bernoulli(`exp(-num/den)`) for `num/den ∈ [0, 1]`: CKS20 Algorithm 1, first case.
///
/// Draws `A_K ~ Bernoulli(γ/K)` for `K = 1, 2, …` until one is 0; the stopping `K` is odd
/// with probability `Σ (-γ)^j / j! = exp(-γ)`. `Bernoulli(γ/K)` is sampled as the product of
/// the independent `Bernoulli(γ)` and `Bernoulli(1/K)`, so `den` is never multiplied by `K`.
fn bernoulli_exp_neg_at_most_one(rng: &mut ChaCha20Rng, num: U256, den: U256) -> bool {
    let mut k: u128 = 1;
    while bernoulli(rng, num, den) && uniform_below_u128(rng, k) == 0 {
        // P[K ≥ k] = γ^(k-1)/(k-1)!: K stays tiny, the increment cannot overflow.
        k += 1;
    }
    k % 2 == 1
}

/// Bernoulli(`exp(-num/den)`) for any `num/den ≥ 0`, `den > 0`: CKS20 Algorithm 1.
///
/// `exp(-γ) = exp(-1)^⌊γ⌋ · exp(-(γ - ⌊γ⌋))`: one Bernoulli(exp(-1)) per whole unit of `γ`,
/// stopping at the first failure, then the fractional part. Peeling units off by subtraction
/// avoids a 256-bit division and ends after about 1.6 units even for an enormous `γ`.
fn bernoulli_exp_neg(rng: &mut ChaCha20Rng, mut num: U256, den: U256) -> bool {
    while num >= den {
        num = num.sub(den);
        if !bernoulli_exp_neg_at_most_one(rng, U256::ONE, U256::ONE) {
            return false;
        }
    }
    bernoulli_exp_neg_at_most_one(rng, num, den)
}

/// Discrete Laplace with scale `t = num/den` (`P[k] ∝ exp(-|k|/t)`): CKS20 Algorithm 2 with
/// their `t = num`, `s = den`.
///
/// `X = U + num·V` with `U` uniform on `[0, num)` accepted with probability `exp(-U/num)` and
/// `V` geometric with ratio `exp(-1)` is geometric with ratio `exp(-1/num)`; dividing by
/// `den` makes it geometric with ratio `exp(-den/num)`, and a random sign (rejecting "-0" so
/// that zero is not counted twice) makes it two-sided.
fn discrete_laplace(rng: &mut ChaCha20Rng, num: u128, den: u128) -> Result<i128, String> {
    if num == 0 || den == 0 {
        return Err("discrete Laplace scale must be a positive rational".to_owned());
    }
    let t = U256::from_u128(num);
    loop {
        let u = uniform_below_u128(rng, num);
        if !bernoulli_exp_neg(rng, U256::from_u128(u), t) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp_neg_at_most_one(rng, U256::ONE, U256::ONE) {
            v += 1; // P[V ≥ v] = exp(-v): cannot overflow
        }
        // Overflow needs V ≥ 2^128/num, an event of probability exp(-2^75) for our scales;
        // refuse rather than return something that is not the distribution.
        let x = num
            .checked_mul(v)
            .and_then(|tv| tv.checked_add(u))
            .ok_or("discrete Laplace sample overflowed")?;
        let y = x / den;
        let negative = random_bits(rng, 1) == 1;
        if negative && y == 0 {
            continue;
        }
        let y = i128::try_from(y).map_err(|_| "discrete Laplace sample overflowed".to_owned())?;
        return Ok(if negative { -y } else { y });
    }
}

/// Precomputed parameters for the discrete Gaussian with `σ² = num/den`.
#[derive(Debug, Clone, Copy)]
struct GaussianParams {
    /// `σ²` numerator, in lowest terms with `den`.
    num: u128,
    /// `⌊σ⌋ + 1`: the Laplace proposal's scale.
    t: u128,
    /// `t · den`.
    t_den: u128,
    /// `2 · num · den · t²`: the acceptance exponent's denominator.
    exponent_den: U256,
}

impl GaussianParams {
    fn new(num: u128, den: u128) -> Result<Self, String> {
        if num == 0 || den == 0 {
            return Err("discrete Gaussian σ² must be a positive rational".to_owned());
        }
        let common = gcd(num, den);
        let (num, den) = (num / common, den / common);
        // ⌊sqrt(n/d)⌋ = ⌊sqrt(⌊n/d⌋)⌋, so this is exact.
        let t = (num / den).isqrt() + 1;
        let too_precise = || "discrete Gaussian σ² is too large or too precise".to_owned();
        let t_den = t.checked_mul(den).ok_or_else(too_precise)?;
        let den_t2 = t_den.checked_mul(t).ok_or_else(too_precise)?;
        // At sampling time |Y|·t·den must fit in u128. Requiring den·t² ≤ 2^108 makes
        // overflow need |Y| ≥ 2^20·t, which the Laplace(t) proposal draws with probability
        // about exp(-2^20): never.
        if den_t2 > 1u128 << 108 {
            return Err(too_precise());
        }
        let exponent_den = U256::mul(num, den_t2)
            .checked_double()
            .ok_or_else(too_precise)?;
        Ok(Self {
            num,
            t,
            t_den,
            exponent_den,
        })
    }
}

/// Discrete Gaussian with `σ² = num/den` (`P[k] ∝ exp(-k²/(2σ²))`): CKS20 Algorithm 3.
///
/// Proposes `Y ~` discrete Laplace with integer scale `t = ⌊σ⌋ + 1` and accepts it with
/// probability `exp(-(|Y| - σ²/t)² / (2σ²))`. In integers that exponent is
/// `(|Y|·t·den - num)² / (2·num·den·t²)`.
fn discrete_gaussian(rng: &mut ChaCha20Rng, params: &GaussianParams) -> Result<i128, String> {
    loop {
        let y = discrete_laplace(rng, params.t, 1)?;
        let scaled = y
            .unsigned_abs()
            .checked_mul(params.t_den)
            .ok_or("discrete Gaussian proposal overflowed")?;
        let diff = scaled.abs_diff(params.num);
        if bernoulli_exp_neg(rng, U256::mul(diff, diff), params.exponent_den) {
            return Ok(y);
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRAWS: usize = 20_000;
    const SEED: u64 = 0x5eed_d1ff_5eed;

    /// Mean and (unbiased) variance.
    fn moments(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    /// Mean within 4 standard errors of 0 and variance within 10% of `expected_var`.
    fn assert_moments(values: &[f64], expected_var: f64, label: &str) {
        let (mean, var) = moments(values);
        let standard_error = (expected_var / values.len() as f64).sqrt();
        assert!(
            mean.abs() <= 4.0 * standard_error,
            "{label}: mean {mean} is more than 4 standard errors ({standard_error}) from 0"
        );
        assert!(
            (var - expected_var).abs() <= 0.1 * expected_var,
            "{label}: variance {var} is not within 10% of {expected_var}"
        );
    }

    /// An empirical frequency within 4 standard errors of `p`.
    fn assert_frequency(hits: usize, trials: usize, p: f64, label: &str) {
        let freq = hits as f64 / trials as f64;
        let standard_error = (p * (1.0 - p) / trials as f64).sqrt();
        assert!(
            (freq - p).abs() <= 4.0 * standard_error,
            "{label}: frequency {freq} is more than 4 standard errors ({standard_error}) from {p}"
        );
    }

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(SEED)
    }

    #[test]
    fn noise_u256_arithmetic() {
        let max = U256::mul(u128::MAX, u128::MAX); // 2^256 - 2^129 + 1
        assert_eq!(
            max,
            U256 {
                hi: u128::MAX - 1,
                lo: 1
            }
        );
        assert_eq!(U256::mul(1 << 64, 1 << 64), U256 { hi: 1, lo: 0 });
        assert_eq!(U256::mul(3, 5), U256::from_u128(15));
        assert_eq!(
            U256 { hi: 1, lo: 0 }.sub(U256::ONE),
            U256::from_u128(u128::MAX)
        );
        assert_eq!(
            U256::from_u128(u128::MAX).checked_double(),
            Some(U256 {
                hi: 1,
                lo: u128::MAX - 1
            })
        );
        assert_eq!(
            U256 {
                hi: 1 << 127,
                lo: 0
            }
            .checked_double(),
            None
        );
        assert_eq!(max.bits(), 256);
        assert_eq!(U256::ONE.bits(), 1);
        assert!(U256 { hi: 1, lo: 0 } > U256::from_u128(u128::MAX));
    }

    #[test]
    fn noise_uniform_below_is_uniform_and_in_range() {
        let mut rng = rng();
        let mut counts = [0usize; 6];
        for _ in 0..60_000 {
            counts[uniform_below_u128(&mut rng, 6) as usize] += 1;
        }
        for (value, &count) in counts.iter().enumerate() {
            assert_frequency(count, 60_000, 1.0 / 6.0, &format!("uniform value {value}"));
        }
        let wide = U256 { hi: 3, lo: 7 };
        for _ in 0..1_000 {
            assert!(uniform_below(&mut rng, wide) < wide);
        }
    }

    #[test]
    fn noise_bernoulli_exp_matches_exp() {
        let mut rng = rng();
        // γ = 0, 1/3, 1, 5/2 and 7/3 (exercising both the whole and the fractional part).
        for (num, den) in [(0u128, 1u128), (1, 3), (1, 1), (5, 2), (7, 3)] {
            let hits = (0..DRAWS)
                .filter(|_| bernoulli_exp_neg(&mut rng, U256::from_u128(num), U256::from_u128(den)))
                .count();
            let p = (-(num as f64) / den as f64).exp();
            assert_frequency(hits, DRAWS, p, &format!("Bernoulli(exp(-{num}/{den}))"));
        }
        // An astronomically large γ terminates at once and (essentially) never succeeds.
        let huge = U256 {
            hi: 1 << 100,
            lo: 0,
        };
        assert!((0..100).all(|_| !bernoulli_exp_neg(&mut rng, huge, U256::ONE)));
    }

    #[test]
    fn noise_discrete_laplace_pmf() {
        // Scale 3/2: P[0] = (1-p)/(1+p), P[k] = P[0]·p^|k| with p = exp(-2/3).
        let mut rng = rng();
        let samples: Vec<i128> = (0..DRAWS)
            .map(|_| discrete_laplace(&mut rng, 3, 2).unwrap())
            .collect();
        let p = (-2.0f64 / 3.0).exp();
        let p0 = (1.0 - p) / (1.0 + p);
        for k in [-2i128, -1, 0, 1, 2, 3] {
            let hits = samples.iter().filter(|&&s| s == k).count();
            assert_frequency(
                hits,
                DRAWS,
                p0 * p.powi(k.unsigned_abs() as i32),
                &format!("P[{k}]"),
            );
        }
    }

    #[test]
    fn noise_discrete_gaussian_pmf() {
        // σ² = 9/4: P[k] = exp(-k²/(2σ²)) / Σ_j exp(-j²/(2σ²)).
        let mut rng = rng();
        let params = GaussianParams::new(9, 4).unwrap();
        assert_eq!(params.t, 2);
        let samples: Vec<i128> = (0..DRAWS)
            .map(|_| discrete_gaussian(&mut rng, &params).unwrap())
            .collect();
        let weight = |k: i128| (-((k * k) as f64) / 4.5).exp();
        let total: f64 = (-60..=60).map(weight).sum();
        for k in [-3i128, -1, 0, 1, 2, 4] {
            let hits = samples.iter().filter(|&&s| s == k).count();
            assert_frequency(hits, DRAWS, weight(k) / total, &format!("P[{k}]"));
        }
    }

    #[test]
    fn noise_grid_is_exact() {
        for scale in [
            0.5,
            2.0,
            37.5,
            0.1,
            1e-300,
            3e300,
            f64::MIN_POSITIVE,
            1.0 / 3.0,
        ] {
            let grid = Grid::new(scale, "scale").unwrap();
            assert!(grid.step <= scale / 1_048_576.0 && scale / 1_048_576.0 < 2.0 * grid.step);
            assert_eq!(
                decompose(grid.step, "step").unwrap().0,
                1,
                "{scale}: step is a power of two"
            );
            assert!(
                grid.num >= grid.den << 20 && grid.num < grid.den << 21,
                "{scale}: {grid:?}"
            );
            // num/den is exact (num < 2^53, den a power of two), and so is scaling by a power
            // of two: this checks scale = step · num/den exactly.
            assert_eq!(
                grid.num as f64 / grid.den as f64 * grid.step,
                scale,
                "{scale}: {grid:?}"
            );
        }
        assert_eq!(
            Grid::new(37.5, "scale").unwrap(),
            Grid {
                step: 2f64.powi(-15),
                num: 1_228_800,
                den: 1
            }
        );
        // 2^-1054 has step 2^-1074, the smallest subnormal; anything below has none.
        assert!(Grid::new(pow2(-1054).unwrap(), "scale").is_ok());
        assert!(Grid::new(pow2(-1055).unwrap(), "scale").is_err());
    }

    #[test]
    fn noise_laplace_moments_and_grid() {
        let source = NoiseSource::seeded(SEED);
        for scale in [0.5, 2.0, 37.5] {
            let step = grid_step(scale).unwrap();
            let values: Vec<f64> = (0..DRAWS).map(|_| source.laplace(scale).unwrap()).collect();
            assert!(
                values.iter().all(|v| (v / step).fract() == 0.0),
                "{scale}: off the grid"
            );
            assert_moments(&values, 2.0 * scale * scale, &format!("Laplace({scale})"));
        }
    }

    #[test]
    fn noise_gaussian_moments_and_grid() {
        let source = NoiseSource::seeded(SEED);
        for sigma in [0.5, 2.0, 37.5] {
            let step = grid_step(sigma).unwrap();
            let values: Vec<f64> = (0..DRAWS)
                .map(|_| source.gaussian(sigma).unwrap())
                .collect();
            assert!(
                values.iter().all(|v| (v / step).fract() == 0.0),
                "{sigma}: off the grid"
            );
            assert_moments(&values, sigma * sigma, &format!("Gaussian({sigma})"));
        }
    }

    #[test]
    fn noise_count_moments() {
        let source = NoiseSource::seeded(SEED);
        for scale in [0.5, 2.0, 37.5] {
            let values: Vec<f64> = (0..DRAWS)
                .map(|_| source.count_laplace(scale).unwrap() as f64)
                .collect();
            // The discrete Laplace's exact variance: 2p/(1-p)² with p = exp(-1/scale).
            let p = (-1.0 / scale).exp();
            assert_moments(
                &values,
                2.0 * p / (1.0 - p).powi(2),
                &format!("count Laplace({scale})"),
            );

            let values: Vec<f64> = (0..DRAWS)
                .map(|_| source.count_gaussian(scale).unwrap() as f64)
                .collect();
            // The discrete Gaussian's exact variance (σ² itself for σ ≥ 1, less below).
            let weight = |k: f64| (-k * k / (2.0 * scale * scale)).exp();
            let ks = (-2_000..=2_000).map(f64::from);
            let total: f64 = ks.clone().map(weight).sum();
            let var: f64 = ks.map(|k| k * k * weight(k)).sum::<f64>() / total;
            assert_moments(&values, var, &format!("count Gaussian({scale})"));
        }
    }

    #[test]
    fn noise_count_scale_rounds_up() {
        assert_eq!(count_scale(2.0, "s"), Ok((2, 1)));
        assert_eq!(count_scale(0.5, "s"), Ok((1, 2)));
        // 0.1·2^20 = 104857.6 → 104858 / 2^20 = 52429 / 2^19.
        assert_eq!(count_scale(0.1, "s"), Ok((52_429, 1 << 19)));
        assert_eq!(count_scale(1e-300, "s"), Ok((1, 1 << 20)));
        assert_eq!(count_scale(f64::from_bits(1), "s"), Ok((1, 1 << 20)));
        assert_eq!(count_scale(COUNT_MAX_SCALE, "s"), Ok((1 << 32, 1)));
        // A tiny scale is almost always 0 but still works.
        let source = NoiseSource::seeded(SEED);
        assert!((0..100).all(|_| source.count_laplace(1e-12).unwrap() == 0));
        assert!((0..100).all(|_| source.count_gaussian(1e-12).unwrap() == 0));
        assert!(source.count_gaussian(COUNT_MAX_SCALE).is_ok());
    }

    #[test]
    fn noise_same_seed_same_sequence() {
        let draw = |source: &NoiseSource| -> Vec<String> {
            (0..50)
                .map(|_| {
                    format!(
                        "{} {} {} {}",
                        source.laplace(3.0).unwrap(),
                        source.gaussian(3.0).unwrap(),
                        source.count_laplace(3.0).unwrap(),
                        source.count_gaussian(3.0).unwrap()
                    )
                })
                .collect()
        };
        let first = draw(&NoiseSource::seeded(7));
        assert_eq!(first, draw(&NoiseSource::seeded(7)));
        assert_ne!(first, draw(&NoiseSource::seeded(8)));
        let entropy = NoiseSource::from_entropy();
        assert_ne!(first, draw(&entropy));
        assert_eq!(format!("{entropy:?}"), "NoiseSource { .. }");
    }

    #[test]
    fn noise_bad_scales_are_errors() {
        let source = NoiseSource::seeded(SEED);
        for bad in [
            0.0,
            -0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-320,
        ] {
            assert!(source.laplace(bad).is_err(), "laplace({bad})");
            assert!(source.gaussian(bad).is_err(), "gaussian({bad})");
            assert!(grid_step(bad).is_err(), "grid_step({bad})");
        }
        for bad in [
            0.0,
            -0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e10,
        ] {
            assert!(source.count_laplace(bad).is_err(), "count_laplace({bad})");
            assert!(source.count_gaussian(bad).is_err(), "count_gaussian({bad})");
        }
        // Extreme but valid scales work (or report overflow instead of returning ±∞).
        assert!(source.laplace(pow2(-1054).unwrap()).is_ok());
        assert!(source.gaussian(f64::MIN_POSITIVE).is_ok());
        for _ in 0..20 {
            if let Ok(value) = source.laplace(f64::MAX) {
                assert!(value.is_finite());
            }
        }
        assert!(GaussianParams::new(1, 0).is_err());
        assert!(GaussianParams::new(1, 1u128 << 120).is_err());
        assert!(discrete_laplace(&mut rng(), 0, 1).is_err());
    }
}
