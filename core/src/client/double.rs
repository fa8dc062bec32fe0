//! Reads a RESP3 double (`,1.5`, `,-inf`, `,nan`, `,1e300`) exactly as `str::parse::<f64>`
//! does, correctly rounded, without the standard parser: its tables alone are 10 KB that the
//! browser's module cannot compress, for a reply a fencelock server never sends.
//!
//! Short inputs take the exact fast path (at most 15 digits times a power of ten up to 1e22,
//! one correctly rounded operation); any other input is computed exactly with big integers:
//! the 64 leading bits of the value and whether anything is left below them decide the
//! rounding. Past 800 significant digits the rest only says "more" (as in the standard parser,
//! 767 digits are the most that can matter).

use alloc::vec::Vec;

/// Significant digits kept; any further nonzero digit only makes the value a little larger.
const MAX_DIGITS: usize = 800;

/// Exactly representable powers of ten, for the fast path.
const POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses `text` with the grammar and the result of `str::parse::<f64>`: an optional sign,
/// then `inf`, `infinity` or `nan` (any case), or digits with an optional `.` and an optional
/// exponent (`e` or `E`, optional sign, digits).
pub(crate) fn parse_double(text: &[u8]) -> Option<f64> {
    let (negative, rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let magnitude = if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        f64::INFINITY
    } else if rest.eq_ignore_ascii_case(b"nan") {
        f64::NAN
    } else {
        let (digits, exponent) = decimal(rest)?;
        value(&digits, exponent)
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Splits a decimal into its significant digits (no leading or trailing zeros, at most
/// [`MAX_DIGITS`], then a last `1` standing for any nonzero digits dropped) and the power of
/// ten they are multiplied by.
fn decimal(text: &[u8]) -> Option<(Vec<u8>, i64)> {
    let (mantissa, exponent_text) = match text.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (text.get(..at)?, Some(text.get(at + 1..)?)),
        None => (text, None),
    };
    let (whole, fraction) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (mantissa.get(..at)?, mantissa.get(at + 1..)?),
        None => (mantissa, &b""[..]),
    };
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if whole.is_empty() && fraction.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let mut exponent = match exponent_text {
        Some(text) => exponent_value(text)?,
        None => 0,
    };
    // The digits of whole and fraction in order, the point sitting before the fraction.
    exponent -= i64::try_from(fraction.len()).unwrap_or(i64::MAX / 2);
    let mut digits = Vec::new();
    let mut dropped = false;
    for &byte in whole.iter().chain(fraction) {
        let digit = byte - b'0';
        if digits.is_empty() && digit == 0 {
            continue;
        }
        if digits.len() < MAX_DIGITS {
            digits.push(digit);
        } else {
            exponent += 1;
            dropped |= digit != 0;
        }
    }
    if dropped {
        // One more digit, below every kept one: "more than the digits say", never a tie.
        digits.push(1);
        exponent -= 1;
    } else {
        while digits.last() == Some(&0) {
            digits.pop();
            exponent += 1;
        }
    }
    Some((digits, exponent))
}

/// Reads an exponent: optional sign, at least one digit; huge ones saturate (the value is
/// then 0 or infinite anyway).
fn exponent_value(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |value, &digit| {
        (value * 10 + i64::from(digit - b'0')).min(1 << 40)
    });
    Some(if negative { -magnitude } else { magnitude })
}

/// Returns the double nearest to `digits` x 10^`exponent` (ties to even).
fn value(digits: &[u8], exponent: i64) -> f64 {
    let count = i64::try_from(digits.len()).unwrap_or(i64::MAX / 2);
    if digits.is_empty() || count + exponent < -324 {
        // Below 1e-324, under half the smallest double.
        return 0.0;
    }
    if count + exponent > 310 {
        // At least 1e310, past the largest double.
        return f64::INFINITY;
    }
    if count <= 15 {
        let whole = digits
            .iter()
            .fold(0u64, |value, &digit| value * 10 + u64::from(digit));
        // Below 2^53, so exact.
        #[allow(clippy::cast_precision_loss)]
        let whole = whole as f64;
        let power = |at: i64| {
            usize::try_from(at)
                .ok()
                .and_then(|at| POWERS.get(at))
                .copied()
        };
        if let Some(power) = power(exponent) {
            return whole * power;
        }
        if let Some(power) = power(-exponent) {
            return whole / power;
        }
    }
    let mut number = Big::from_digits(digits);
    if exponent >= 0 {
        number.mul_pow10(exponent.unsigned_abs());
        let (top, sticky, shift) = number.top64();
        round(top, sticky, shift)
    } else {
        // digits / 10^k: shift the side that is shorter so the quotient has 60 to 62 bits.
        let mut divisor = Big::from_digits(&[1]);
        divisor.mul_pow10(exponent.unsigned_abs());
        let scale = 61 + i64::from(divisor.bits()) - i64::from(number.bits());
        if scale >= 0 {
            number.shl(scale.unsigned_abs());
        } else {
            divisor.shl(scale.unsigned_abs());
        }
        let (quotient, rest_nonzero) = number.divide(&divisor);
        let zeros = quotient.leading_zeros();
        round(quotient << zeros, rest_nonzero, -scale - i64::from(zeros))
    }
}

/// Returns the double nearest to `top` x 2^`shift` (plus a little more when `sticky`), where
/// `top` has its highest bit set.
fn round(top: u64, sticky: bool, shift: i64) -> f64 {
    // The value is in [2^(shift+63), 2^(shift+64)): a normal double keeps 53 bits, a smaller
    // one as many as reach down to 2^-1074.
    let exponent = shift + 63;
    if exponent > 1023 {
        return f64::INFINITY;
    }
    let dropped_bits = if exponent >= -1022 {
        11
    } else {
        11 + (-1022 - exponent)
    };
    if dropped_bits > 64 {
        // Below half the smallest double.
        return 0.0;
    }
    let top = u128::from(top);
    let kept = top >> dropped_bits;
    let rest = top & ((1u128 << dropped_bits) - 1);
    let half = 1u128 << (dropped_bits - 1);
    let up = rest > half || rest == half && (sticky || kept & 1 == 1);
    let mantissa = kept + u128::from(up);
    // Adding the mantissa to the exponent field lets a carry (2^53, or 2^52 for a subnormal)
    // move into the next exponent, and past the largest one into infinity's bits.
    let bits = if exponent >= -1022 {
        // In range: 1 <= exponent + 1023 <= 2046.
        let field = u128::from(u16::try_from(exponent + 1022).unwrap_or(0));
        (field << 52) + mantissa
    } else {
        mantissa
    };
    f64::from_bits(u64::try_from(bits).unwrap_or(0x7ff0_0000_0000_0000))
}

/// A non-negative big integer, 32-bit limbs, least significant first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big {
    limbs: Vec<u32>,
}

impl Big {
    fn from_digits(digits: &[u8]) -> Big {
        let mut number = Big { limbs: Vec::new() };
        for chunk in digits.chunks(9) {
            let mut scale = 1;
            let mut part = 0;
            for &digit in chunk {
                scale *= 10;
                part = part * 10 + u32::from(digit);
            }
            number.mul_add(scale, part);
        }
        number
    }

    fn mul_pow10(&mut self, mut power: u64) {
        while power > 0 {
            let step = power.min(9);
            self.mul_add(10u32.pow(u32::try_from(step).unwrap_or(9)), 0);
            power -= step;
        }
    }

    /// self = self * factor + add.
    fn mul_add(&mut self, factor: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.limbs {
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry > 0 {
            self.limbs.push(carry as u32);
        }
    }

    fn bits(&self) -> u32 {
        let Some(&last) = self.limbs.last() else {
            return 0;
        };
        let whole = u32::try_from(self.limbs.len() - 1).unwrap_or(u32::MAX / 64);
        whole * 32 + (32 - last.leading_zeros())
    }

    fn bit(&self, at: u32) -> bool {
        let limb = self.limbs.get(at as usize / 32).copied().unwrap_or(0);
        (limb >> (at % 32)) & 1 == 1
    }

    /// Returns the highest 64 bits (highest bit set), whether any bit below them is set, and
    /// the power of two they are multiplied by.
    fn top64(&self) -> (u64, bool, i64) {
        let bits = self.bits();
        let mut top = 0u64;
        for at in (bits.saturating_sub(64)..bits).rev() {
            top = (top << 1) | u64::from(self.bit(at));
        }
        let below = bits.saturating_sub(64);
        let sticky = (0..below).any(|at| self.bit(at));
        let shift = i64::from(bits) - 64;
        (top << (64 - bits.min(64)), sticky, shift)
    }

    fn shl(&mut self, count: u64) {
        let limbs = usize::try_from(count / 32).unwrap_or(0);
        let bits = (count % 32) as u32;
        if bits > 0 {
            let mut carry = 0;
            for limb in &mut self.limbs {
                let next = *limb >> (32 - bits);
                *limb = (*limb << bits) | carry;
                carry = next;
            }
            if carry > 0 {
                self.limbs.push(carry);
            }
        }
        self.limbs.splice(0..0, core::iter::repeat(0).take(limbs));
    }

    /// Divides by `divisor` when the quotient is below 2^64: the quotient, and whether a
    /// remainder is left.
    fn divide(mut self, divisor: &Big) -> (u64, bool) {
        let mut quotient = 0u64;
        for at in (0..64).rev() {
            let mut shifted = divisor.clone();
            shifted.shl(at);
            if self.at_least(&shifted) {
                self.subtract(&shifted);
                quotient |= 1 << at;
            }
        }
        (quotient, self.limbs.iter().any(|&limb| limb != 0))
    }

    fn at_least(&self, other: &Big) -> bool {
        let length = self.limbs.len().max(other.limbs.len());
        for at in (0..length).rev() {
            let mine = self.limbs.get(at).copied().unwrap_or(0);
            let theirs = other.limbs.get(at).copied().unwrap_or(0);
            if mine != theirs {
                return mine > theirs;
            }
        }
        true
    }

    /// self -= other, where self >= other.
    fn subtract(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (at, limb) in self.limbs.iter_mut().enumerate() {
            let difference =
                i64::from(*limb) - i64::from(other.limbs.get(at).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(difference < 0);
            *limb = (difference + (borrow << 32)) as u32;
        }
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use proptest::prelude::*;

    fn same(text: &str) {
        let ours = parse_double(text.as_bytes());
        let standard = text.parse::<f64>().ok();
        match (ours, standard) {
            (Some(a), Some(b)) if a.is_nan() && b.is_nan() => {
                assert_eq!(a.is_sign_negative(), b.is_sign_negative(), "{text}");
            }
            (a, b) => assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits), "{text}"),
        }
    }

    #[test]
    fn reads_what_the_standard_parser_reads() {
        for text in [
            "1.5",
            "-1.5",
            "+2",
            "0",
            "-0",
            "0.0",
            ".5",
            "5.",
            "1e3",
            "1E-3",
            "1e+3",
            "inf",
            "-Infinity",
            "NaN",
            "-nan",
            "INF",
            "infinity",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "2.2250738585072014e-308",
            "2.2250738585072011e-308",
            "4.9406564584124654e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1e-400",
            "1e400",
            "123456789012345678901234567890",
            "0.1",
            "0.30000000000000004",
            "9007199254740993",
            "9007199254740992.5",
            "1e22",
            "1e23",
            "123456789012345e-22",
            "00000.000001",
            "1e99999999999999999999",
            "1e-99999999999999999999",
            "",
            ".",
            "e5",
            "1e",
            "1e+",
            "-",
            "+",
            "1.2.3",
            "1e5.5",
            " 1",
            "1 ",
            "0x10",
            "1_000",
            "in",
            "infinit",
            "nana",
            "--1",
            "+-1",
        ] {
            same(text);
        }
        let long = format!("0.{}1", "0".repeat(900));
        same(&long);
        let ties = format!("9007199254740993{}", "0".repeat(900));
        same(&ties);
        let above = format!("9007199254740993{}1", "0".repeat(900));
        same(&above);
    }

    proptest! {
        #[test]
        fn agrees_with_the_standard_parser(
            whole in "[0-9]{0,25}",
            fraction in proptest::option::of("[0-9]{0,25}"),
            exponent in proptest::option::of(-350i32..350),
            sign in "[+-]?",
        ) {
            let mut text = String::from(&sign);
            text.push_str(&whole);
            if let Some(fraction) = fraction {
                text.push('.');
                text.push_str(&fraction);
            }
            if let Some(exponent) = exponent {
                text.push_str(&format!("e{exponent}"));
            }
            same(&text);
        }

        #[test]
        fn breaks_exact_ties_to_even(below in (1u64 << 53)..(1u64 << 63)) {
            // Between 2^53 and 2^64 doubles are whole numbers: their midpoints are exact
            // decimals, ties that the rounding must break to the even neighbour.
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let low = (below as f64) as u128;
            let high = f64::from_bits((low as f64).to_bits() + 1) as u128;
            let doubled = low + high;
            let tie = if doubled % 2 == 0 {
                format!("{}", doubled / 2)
            } else {
                format!("{}.5", doubled / 2)
            };
            same(&tie);
            same(&format!("{}e-3", (low + high) * 500));
        }

        #[test]
        fn agrees_on_every_double_printed(bits in any::<u64>()) {
            let value = f64::from_bits(bits);
            same(&format!("{value:e}"));
            same(&format!("{value:?}"));
            same(&format!("{:.30e}", value));
        }
    }
}
