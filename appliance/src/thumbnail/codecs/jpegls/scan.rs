//! The JPEG-LS scan of one grey component (ITU-T T.87 Annex A), lossless or near-lossless,
//! decoded into the samples of the frame: context modelling, the MED predictor, bias
//! correction, limited-length Golomb codes, run mode and run interruption samples.
//!
//! Written by hand: `pure_jpegls`, the one pure-Rust decoder, took 1.2 s for a 27 MB
//! mammogram — twice dcmtk — reading its Golomb codes bit by bit and quantizing gradients
//! through nine comparisons each. This one counts a code's leading zeros in one instruction,
//! quantizes through a table, and keeps a context's four counters side by side. The names
//! (`Ra`, `A[Q]`, `RUNindex`, …) are the standard's, so the code can be read beside it.

use super::Parameters;

/// J[RUNindex]: the run-length order for each run index (T.87 A.7.1.1).
const J: [u32; 32] = [
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13,
    14, 15,
];

/// The bias correction's bounds (T.87 A.6.2).
const MIN_C: i32 = -128;
const MAX_C: i32 = 127;

/// One context's counters (T.87 A.2.1): error magnitudes, bias, correction, occurrences.
#[derive(Debug, Clone, Copy)]
struct Context {
    a: i32,
    b: i32,
    c: i32,
    n: i32,
}

impl Context {
    /// The Golomb parameter: the least k with N·2^k ≥ A (A.5.1).
    #[inline(always)]
    fn k(&self) -> u32 {
        let mut k = 0;
        while (self.n << k) < self.a && k < 24 {
            k += 1;
        }
        k
    }
}

/// A run interruption context (A.7.2): its counters and its type.
#[derive(Debug, Clone, Copy)]
struct RunContext {
    a: i32,
    n: i32,
    nn: i32,
    ri_type: i32,
}

/// The coding parameters derived from the headers (A.2.1).
#[derive(Debug, Clone, Copy)]
struct Coding {
    near: i32,
    maxval: i32,
    range: i32,
    qbpp: u32,
    limit: u32,
    reset: i32,
}

/// The scan's entropy-coded data, bit by bit. After a 0xFF byte the next byte carries 7 bits
/// (its top bit is a stuffed 0); 0xFF followed by a byte of 0x80 or more is a marker and ends
/// the data (A.1). Past the end the reader gives zeros, and [`Bits::overrun`] tells.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    /// Left-aligned: the next bit is the top one; `count` of them are valid.
    buffer: u64,
    count: u32,
    after_ff: bool,
    /// Zeros from past the data among the buffered bits (always the last ones).
    past_end: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            at: 0,
            buffer: 0,
            count: 0,
            after_ff: false,
            past_end: 0,
        }
    }

    /// Tops the buffer up to at least 57 bits.
    #[inline(always)]
    fn refill(&mut self) {
        while self.count <= 56 {
            let (byte, bits) = match self.data.get(self.at) {
                Some(&byte) if self.after_ff => {
                    // Only a byte under 0x80 can follow a data 0xFF (see below).
                    self.at += 1;
                    self.after_ff = false;
                    (u64::from(byte & 0x7F), 7)
                }
                Some(&0xFF) => match self.data.get(self.at + 1) {
                    Some(&next) if next < 0x80 => {
                        self.at += 1;
                        self.after_ff = true;
                        (0xFF, 8)
                    }
                    _ => {
                        self.past_end += 8; // a marker: zeros from here
                        (0, 8)
                    }
                },
                Some(&byte) => {
                    self.at += 1;
                    (u64::from(byte), 8)
                }
                None => {
                    self.past_end += 8;
                    (0, 8)
                }
            };
            self.buffer |= byte << (64 - bits - self.count);
            self.count += bits;
        }
    }

    /// The next `bits` (0–24) bits as a number.
    #[inline(always)]
    fn take(&mut self, bits: u32) -> u32 {
        if bits == 0 {
            return 0;
        }
        if self.count < bits {
            self.refill();
        }
        let value = (self.buffer >> (64 - bits)) as u32;
        self.buffer <<= bits;
        self.count -= bits;
        value
    }

    /// The zeros before the next 1, which is consumed; `None` past `most` zeros.
    #[inline(always)]
    fn unary(&mut self, most: u32) -> Option<u32> {
        let mut zeros = 0;
        loop {
            if self.count < 32 {
                self.refill();
            }
            let run = self.buffer.leading_zeros().min(self.count);
            if run < self.count {
                zeros += run;
                self.buffer = self.buffer.checked_shl(run + 1).unwrap_or(0);
                self.count -= run + 1;
                return (zeros <= most).then_some(zeros);
            }
            zeros += run;
            self.buffer = 0;
            self.count = 0;
            if zeros > most {
                return None;
            }
        }
    }

    /// A limited-length Golomb code (A.5.3) of parameter `k` within `limit` bits.
    #[inline(always)]
    fn golomb(&mut self, k: u32, limit: u32, qbpp: u32) -> Result<u32, String> {
        let escape = limit - qbpp - 1;
        let zeros = self
            .unary(escape)
            .ok_or("a Golomb code longer than its limit")?;
        Ok(if zeros < escape {
            (zeros << k) | self.take(k)
        } else {
            self.take(qbpp) + 1
        })
    }

    fn overrun(&self) -> bool {
        self.count < self.past_end
    }
}

/// Decodes the scan `data` (from just after the SOS segment) of a `rows` × `columns` frame.
pub fn decode(
    data: &[u8],
    rows: usize,
    columns: usize,
    parameters: &Parameters,
) -> Result<Vec<u16>, String> {
    let near = i32::from(parameters.near);
    let maxval = i32::from(parameters.maxval);
    let range = (maxval + 2 * near) / (2 * near + 1) + 1;
    let bits_of = |value: i32| 32 - (value.max(1) as u32 - 1).leading_zeros();
    let qbpp = bits_of(range);
    let bpp = bits_of(maxval + 1).max(2);
    let coding = Coding {
        near,
        maxval,
        range,
        qbpp,
        limit: 2 * (bpp + bpp.max(8)),
        reset: i32::from(parameters.reset),
    };
    let initial_a = ((range + 32) / 64).max(2);
    let mut contexts = vec![
        Context {
            a: initial_a,
            b: 0,
            c: 0,
            n: 1
        };
        365
    ];
    let mut run_contexts = [0, 1].map(|ri_type| RunContext {
        a: initial_a,
        n: 1,
        nn: 0,
        ri_type,
    });
    // The quantized gradient of every difference −MAXVAL..MAXVAL (A.3.3), by difference + MAXVAL.
    let quantized: Vec<i8> = (-maxval..=maxval)
        .map(|d| quantize(d, near, parameters.thresholds))
        .collect();
    let q = |d: i32| i32::from(quantized[(d + maxval) as usize]);

    let mut samples = vec![0u16; rows * columns];
    let mut bits = Bits::new(data);
    let mut run_index = 0usize;
    // The line above and this line, with one sample either side: [0] is Ra's (and, above, Rc's)
    // stand-in at the line start, [columns + 1] Rd's at its end.
    let mut above = vec![0i32; columns + 2];
    let mut line = vec![0i32; columns + 2];
    for y in 0..rows {
        line[0] = above[1];
        above[columns + 1] = above[columns];
        let mut x = 1;
        while x <= columns {
            let (ra, rb, rc, rd) = (line[x - 1], above[x], above[x - 1], above[x + 1]);
            let context = 81 * q(rd - rb) + 9 * q(rb - rc) + q(rc - ra);
            if context == 0 {
                x = run(
                    &mut bits,
                    &coding,
                    &mut run_contexts,
                    &mut run_index,
                    &above,
                    &mut line,
                    x,
                    columns,
                )?;
                continue;
            }
            // The context and its sign: the sign of the first non-zero gradient (A.3.4).
            let sign = if context < 0 { -1 } else { 1 };
            let ctx = &mut contexts[context.unsigned_abs() as usize];
            let predicted = (med(ra, rb, rc) + sign * ctx.c).clamp(0, maxval);
            let k = ctx.k();
            let mapped = bits.golomb(k, coding.limit, coding.qbpp)? as i32;
            // The error mapping (A.5.2), inverted; flipped when the bias says so.
            let flipped = near == 0 && k == 0 && 2 * ctx.b <= -ctx.n;
            let error = match (mapped & 1 == 1, flipped) {
                (false, false) => mapped >> 1,
                (true, false) => -((mapped + 1) >> 1),
                (true, true) => mapped >> 1,
                (false, true) => -(mapped >> 1) - 1,
            };
            // Counters (A.6.1) and bias (A.6.2).
            ctx.b += error * (2 * near + 1);
            ctx.a += error.abs();
            if ctx.n == coding.reset {
                ctx.a >>= 1;
                ctx.b >>= 1;
                ctx.n >>= 1;
            }
            ctx.n += 1;
            if ctx.b <= -ctx.n {
                ctx.b += ctx.n;
                ctx.c = (ctx.c - 1).max(MIN_C);
                if ctx.b <= -ctx.n {
                    ctx.b = -ctx.n + 1;
                }
            } else if ctx.b > 0 {
                ctx.b -= ctx.n;
                ctx.c = (ctx.c + 1).min(MAX_C);
                if ctx.b > 0 {
                    ctx.b = 0;
                }
            }
            line[x] = reconstruct(predicted + sign * error * (2 * near + 1), &coding);
            x += 1;
        }
        let out = &mut samples[y * columns..(y + 1) * columns];
        for (sample, &value) in out.iter_mut().zip(&line[1..=columns]) {
            *sample = value as u16; // within 0..=MAXVAL
        }
        std::mem::swap(&mut above, &mut line);
    }
    if bits.overrun() {
        return Err("the scan ends before the frame does".into());
    }
    Ok(samples)
}

/// Run mode (A.7), entered at `x` (1-based in `line`): the run of Ra, then, unless the run
/// reached the line's end, the run interruption sample. Returns where the line goes on.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn run(
    bits: &mut Bits,
    coding: &Coding,
    run_contexts: &mut [RunContext; 2],
    run_index: &mut usize,
    above: &[i32],
    line: &mut [i32],
    x: usize,
    columns: usize,
) -> Result<usize, String> {
    let ra = line[x - 1];
    let left = columns + 1 - x;
    // A.7.1.2: each 1 is a full segment of 2^J[RUNindex] samples (or the rest of the line);
    // a 0 ends the run with its remainder in J[RUNindex] bits.
    let mut length = 0;
    loop {
        if bits.take(1) == 1 {
            let segment = 1usize << J[*run_index];
            let count = segment.min(left - length);
            length += count;
            if count == segment {
                *run_index = (*run_index + 1).min(31);
            }
            if length == left {
                break;
            }
        } else {
            length += bits.take(J[*run_index]) as usize;
            if length > left {
                return Err("a run past the end of its line".into());
            }
            break;
        }
    }
    line[x..x + length].fill(ra);
    let x = x + length;
    if x > columns {
        return Ok(x);
    }
    // The run interruption sample (A.7.2).
    let rb = above[x];
    let ri_type = usize::from((ra - rb).abs() <= coding.near);
    let ctx = &mut run_contexts[ri_type];
    let temp = if ri_type == 1 {
        ctx.a + (ctx.n >> 1)
    } else {
        ctx.a
    };
    let mut k = 0;
    while (ctx.n << k) < temp && k < 24 {
        k += 1;
    }
    let limit = coding.limit - J[*run_index] - 1;
    let mapped = bits.golomb(k, limit, coding.qbpp)? as i32;
    // The error from its mapping (A.7.2.2, inverted).
    let temp = mapped + ctx.ri_type;
    let map = temp & 1 == 1;
    let magnitude = (temp + i32::from(map)) >> 1;
    // The encoder set `map` for a negative error exactly when k ≠ 0 or 2·Nn ≥ N.
    let error = if (k != 0 || 2 * ctx.nn >= ctx.n) == map {
        -magnitude
    } else {
        magnitude
    };
    // Counters (A.7.2.3).
    if error < 0 {
        ctx.nn += 1;
    }
    ctx.a += (mapped + 1 - ctx.ri_type) >> 1;
    if ctx.n == coding.reset {
        ctx.a >>= 1;
        ctx.n >>= 1;
        ctx.nn >>= 1;
    }
    ctx.n += 1;
    let dequantized = error * (2 * coding.near + 1);
    line[x] = if ri_type == 1 {
        reconstruct(ra + dequantized, coding)
    } else {
        let sign = if rb - ra < 0 { -1 } else { 1 };
        reconstruct(rb + sign * dequantized, coding)
    };
    *run_index = run_index.saturating_sub(1);
    Ok(x + 1)
}

/// The median edge detector (A.4.1).
#[inline(always)]
fn med(ra: i32, rb: i32, rc: i32) -> i32 {
    if rc >= ra.max(rb) {
        ra.min(rb)
    } else if rc <= ra.min(rb) {
        ra.max(rb)
    } else {
        ra + rb - rc
    }
}

/// A reconstructed value brought back into 0..=MAXVAL: modulo the range first, as the encoder
/// reduced the error (A.4.4), then clamped.
#[inline(always)]
fn reconstruct(value: i32, coding: &Coding) -> i32 {
    let step = coding.range * (2 * coding.near + 1);
    let value = if value < -coding.near {
        value + step
    } else if value > coding.maxval + coding.near {
        value - step
    } else {
        value
    };
    value.clamp(0, coding.maxval)
}

/// A gradient's region, −4 to 4 (A.3.3).
fn quantize(d: i32, near: i32, [t1, t2, t3]: [u16; 3]) -> i8 {
    let (t1, t2, t3) = (i32::from(t1), i32::from(t2), i32::from(t3));
    match d {
        _ if d <= -t3 => -4,
        _ if d <= -t2 => -3,
        _ if d <= -t1 => -2,
        _ if d < -near => -1,
        _ if d <= near => 0,
        _ if d < t1 => 1,
        _ if d < t2 => 2,
        _ if d < t3 => 3,
        _ => 4,
    }
}
