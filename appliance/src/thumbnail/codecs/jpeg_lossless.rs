//! JPEG lossless (ITU-T T.81 process 14: DICOM `1.2.840.10008.1.2.4.57`, any predictor, and
//! `.70`, predictor 1) for one grey component of 2 to 16 bits, Huffman coded, with or without
//! restart intervals, with or without a point transform: what mammography modalities write.
//!
//! Written by hand: jpeg-decoder, the one pure-Rust decoder of process 14, keeps the frame five
//! times over (an `i32` per difference, the samples, two byte copies, then dicom-rs' own copy:
//! a 27 MB mammogram took a 148 MB render child) and decoded slower than dcmtk. This one writes
//! each sample once into the frame it returns, with a 9-bit Huffman lookup and a 64-bit bit
//! buffer. Anything else a stream may be (colour, arithmetic coding, hierarchical, a restart
//! interval that is not whole rows) is left to jpeg-decoder: [`decode`] says `Ok(None)`.

/// Why a stream could not be decoded.
pub type Refusal = String;

/// Frame 0's samples, row by row; `Ok(None)` when the stream is a JPEG this decoder does not
/// take (see the module comment), an error when it is malformed or is not the `rows` ×
/// `columns` frame the object describes.
pub fn decode(stream: &[u8], rows: u32, columns: u32) -> Result<Option<Vec<u16>>, Refusal> {
    let mut reader = Segments { stream, at: 0 };
    if stream.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err("the stream does not start with SOI".into());
    }
    reader.at = 2;
    let mut frame: Option<FrameHeader> = None;
    let mut tables: [Option<Table>; 4] = [None, None, None, None];
    let mut restart_interval = 0usize;
    loop {
        let marker = reader.next_marker()?;
        match marker {
            0xC3 => frame = Some(FrameHeader::parse(reader.segment()?)?),
            // Other frame types: baseline, extended, progressive, hierarchical, arithmetic.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => return Ok(None),
            0xCC => return Ok(None),
            0xC4 => Table::parse_all(reader.segment()?, &mut tables)?,
            0xDD => {
                let segment = reader.segment()?;
                let &[a, b] = segment else {
                    return Err("a DRI segment that is not 2 bytes".into());
                };
                restart_interval = usize::from(u16::from_be_bytes([a, b]));
            }
            0xDA => {
                let Some(frame) = frame else {
                    return Err("a scan (SOS) before the frame header (SOF3)".into());
                };
                if frame.components != 1 {
                    return Ok(None);
                }
                if (u32::from(frame.rows), u32::from(frame.columns)) != (rows, columns) {
                    return Err(format!(
                        "the stream is {} × {}; the object says {columns} × {rows}",
                        frame.columns, frame.rows
                    ));
                }
                let scan = ScanHeader::parse(reader.segment()?, &frame)?;
                let table = tables
                    .get(usize::from(scan.table))
                    .and_then(Option::as_ref)
                    .ok_or_else(|| {
                        format!("the scan uses Huffman table {}, never defined", scan.table)
                    })?;
                let columns = usize::from(frame.columns);
                if !restart_interval.is_multiple_of(columns) {
                    return Ok(None); // restarts inside rows: jpeg-decoder's case
                }
                let data = stream.get(reader.at..).unwrap_or_default();
                let scan = Scan {
                    precision: frame.precision,
                    predictor: scan.predictor,
                    point_transform: scan.point_transform,
                    rows: usize::from(frame.rows),
                    columns,
                    rows_per_interval: restart_interval / columns,
                };
                return scan.decode(data, table).map(Some);
            }
            0xD9 => return Err("the stream ends (EOI) before its scan".into()),
            0xD0..=0xD7 => return Err("a restart marker before the scan".into()),
            // APPn, COM, DQT, DNL and the rest: skipped.
            _ => {
                reader.segment()?;
            }
        }
    }
}

/// The marker segments before the scan.
struct Segments<'a> {
    stream: &'a [u8],
    at: usize,
}

impl<'a> Segments<'a> {
    /// The next marker's code, after any fill bytes (0xFF) before it.
    fn next_marker(&mut self) -> Result<u8, Refusal> {
        if self.at >= self.stream.len() {
            return Err("the stream ends before its scan".into());
        }
        if self.stream.get(self.at) != Some(&0xFF) {
            return Err(format!("no marker at byte {}", self.at));
        }
        while self.stream.get(self.at) == Some(&0xFF) {
            self.at += 1;
        }
        let marker = *self
            .stream
            .get(self.at)
            .ok_or("the stream ends before its scan")?;
        self.at += 1;
        Ok(marker)
    }

    /// The current marker's segment (its 2-byte length counts itself), consumed.
    fn segment(&mut self) -> Result<&'a [u8], Refusal> {
        let length = self
            .stream
            .get(self.at..self.at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .filter(|&l| l >= 2)
            .ok_or("a marker segment without a valid length")?;
        let segment = self
            .stream
            .get(self.at + 2..self.at + length)
            .ok_or("a marker segment longer than the stream")?;
        self.at += length;
        Ok(segment)
    }
}

#[derive(Debug, Clone, Copy)]
struct FrameHeader {
    precision: u8,
    rows: u16,
    columns: u16,
    components: u8,
    component_id: u8,
}

impl FrameHeader {
    fn parse(segment: &[u8]) -> Result<Self, Refusal> {
        let &[precision, r1, r2, c1, c2, components, component_id, ..] = segment else {
            return Err("the frame header (SOF3) is cut short".into());
        };
        if !(2..=16).contains(&precision) {
            return Err(format!("sample precision {precision} (2 to 16 allowed)"));
        }
        let (rows, columns) = (u16::from_be_bytes([r1, r2]), u16::from_be_bytes([c1, c2]));
        if rows == 0 || columns == 0 {
            return Err(format!(
                "a {columns} × {rows} frame (its height in a DNL: not taken)"
            ));
        }
        Ok(FrameHeader {
            precision,
            rows,
            columns,
            components,
            component_id,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct ScanHeader {
    table: u8,
    predictor: u8,
    point_transform: u8,
}

impl ScanHeader {
    fn parse(segment: &[u8], frame: &FrameHeader) -> Result<Self, Refusal> {
        let &[1, component, tables, predictor, _end, approximation] = segment else {
            return Err("a scan header (SOS) that is not one component's".into());
        };
        if component != frame.component_id {
            return Err(format!(
                "the scan codes component {component}; the frame has {}",
                frame.component_id
            ));
        }
        let point_transform = approximation & 0x0F;
        if !(1..=7).contains(&predictor) || point_transform >= frame.precision {
            return Err(format!(
                "predictor {predictor} with point transform {point_transform} (1 to 7, and \
                 under the precision {})",
                frame.precision
            ));
        }
        Ok(ScanHeader {
            table: tables >> 4,
            predictor,
            point_transform,
        })
    }
}

/// Bits of the fast Huffman lookup: most lossless codes are shorter.
const FAST_BITS: u32 = 9;

/// A Huffman table of difference categories (T.81 C, F.2.2.3).
#[derive(Debug, Clone)]
struct Table {
    /// By the next [`FAST_BITS`] bits: (code length, category), length 0 when longer.
    fast: Vec<(u8, u8)>,
    /// For each length 1–16: the largest code of that length + 1 (0 when none), the first
    /// code, and the index of its category in `categories`.
    by_length: [(u32, u32, usize); 17],
    categories: Vec<u8>,
}

impl Table {
    /// Every table of a DHT segment into its slot.
    fn parse_all(mut segment: &[u8], slots: &mut [Option<Table>; 4]) -> Result<(), Refusal> {
        while let Some((&class_and_slot, rest)) = segment.split_first() {
            let counts = rest.get(..16).ok_or("a Huffman table cut short")?;
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            let categories = rest
                .get(16..16 + total)
                .ok_or("a Huffman table cut short")?;
            let slot = slots
                .get_mut(usize::from(class_and_slot & 0x0F))
                .ok_or("a Huffman table slot over 3")?;
            // Class 0 holds the difference tables; an AC table (class 1) has no use here.
            if class_and_slot >> 4 == 0 {
                *slot = Some(Table::new(counts, categories)?);
            }
            segment = rest.get(16 + total..).unwrap_or_default();
        }
        Ok(())
    }

    /// The canonical code (T.81 C.2) of `counts[l - 1]` codes of each length `l`.
    fn new(counts: &[u8], categories: &[u8]) -> Result<Self, Refusal> {
        if let Some(bad) = categories.iter().find(|&&c| c > 16) {
            return Err(format!(
                "a Huffman table with difference category {bad} (0 to 16)"
            ));
        }
        let mut fast = vec![(0u8, 0u8); 1 << FAST_BITS];
        let mut by_length = [(0u32, 0u32, 0usize); 17];
        let (mut code, mut index) = (0u32, 0usize);
        for length in 1..=16u32 {
            let count = usize::from(counts[length as usize - 1]);
            by_length[length as usize] = (code + count as u32, code, index);
            for &category in &categories[index..index + count] {
                if code >= 1 << length {
                    return Err("a Huffman table with more codes than its lengths allow".into());
                }
                if length <= FAST_BITS {
                    let spare = FAST_BITS - length;
                    let first = (code << spare) as usize;
                    fast[first..first + (1 << spare)].fill((length as u8, category));
                }
                code += 1;
            }
            index += count;
            code <<= 1;
        }
        Ok(Table {
            fast,
            by_length,
            categories: categories.to_vec(),
        })
    }

    /// The code at the top of `bits` (16 bits, left-aligned): its length and category.
    #[inline(always)]
    fn lookup(&self, bits: u32) -> Option<(u32, u8)> {
        let (length, category) = self.fast[(bits >> (16 - FAST_BITS)) as usize];
        if length != 0 {
            return Some((u32::from(length), category));
        }
        (FAST_BITS + 1..=16).find_map(|length| {
            let code = bits >> (16 - length);
            let (end, first, index) = self.by_length[length as usize];
            (code < end && code >= first)
                .then(|| self.categories.get(index + (code - first) as usize))
                .flatten()
                .map(|&category| (length, category))
        })
    }
}

/// The entropy-coded data of the scan, bit by bit: bytes 0xFF 0x00 stand for 0xFF, and a
/// marker (0xFF then anything else) ends the data; past it the reader gives zeros, and
/// [`Bits::overrun`] says whether any of those were used.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    /// Left-aligned: the next bit is the top one.
    buffer: u64,
    count: u32,
    /// How many of the buffered bits, all at its low end, are zeros from past the data.
    past_end: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            at: 0,
            buffer: 0,
            count: 0,
            past_end: 0,
        }
    }

    #[inline(always)]
    fn refill(&mut self) {
        while self.count <= 56 {
            let byte = match self.data.get(self.at) {
                Some(&0xFF) if self.data.get(self.at + 1) == Some(&0x00) => {
                    self.at += 2;
                    0xFF
                }
                Some(&0xFF) | None => {
                    self.past_end += 8; // a marker (or the end): zeros from here
                    0
                }
                Some(&byte) => {
                    self.at += 1;
                    byte
                }
            };
            self.buffer |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
    }

    /// The next 16 bits, not consumed (at least 32 are buffered after a refill).
    #[inline(always)]
    fn peek16(&self) -> u32 {
        (self.buffer >> 48) as u32
    }

    #[inline(always)]
    fn consume(&mut self, bits: u32) {
        self.buffer <<= bits;
        self.count -= bits;
    }

    /// The next `bits` (1–16) bits as a number.
    #[inline(always)]
    fn take(&mut self, bits: u32) -> u32 {
        let value = (self.buffer >> (64 - bits)) as u32;
        self.consume(bits);
        value
    }

    /// One difference (T.81 F.2.2.1, H.1.2.2): its category's code, then that many bits.
    #[inline(always)]
    fn difference(&mut self, table: &Table) -> Result<i32, Refusal> {
        if self.count < 32 {
            self.refill();
        }
        let (length, category) = table
            .lookup(self.peek16())
            .ok_or("a code missing from the Huffman table")?;
        self.consume(length);
        Ok(match category {
            0 => 0,
            16 => 32768,
            bits => {
                let bits = u32::from(bits);
                let value = self.take(bits) as i32;
                // EXTEND (F.12): the top bit clear means a negative difference.
                if value < 1 << (bits - 1) {
                    value - (1 << bits) + 1
                } else {
                    value
                }
            }
        })
    }

    /// Whether more bits were handed out than the data held (the scan was cut short): the
    /// zeros from past its end are always the last buffered bits.
    fn overrun(&self) -> bool {
        self.count < self.past_end
    }

    /// Skips to the restart marker `RSTn` that must follow and starts afresh after it.
    fn restart(&mut self, n: u8) -> Result<(), Refusal> {
        if self.overrun() {
            return Err("a restart interval ends before its samples".into());
        }
        // Whatever is still buffered or unread is the interval's padding to a byte.
        loop {
            match self.data.get(self.at..self.at + 2) {
                Some(&[0xFF, 0x00]) => self.at += 2,
                Some(&[0xFF, 0xFF]) => self.at += 1, // fill bytes before the marker
                Some(&[0xFF, marker]) if marker == 0xD0 + n => break,
                Some(&[0xFF, _]) | None => {
                    return Err(format!("no RST{n} marker where a restart interval ends"));
                }
                Some(_) => self.at += 1,
            }
        }
        self.at += 2;
        (self.buffer, self.count, self.past_end) = (0, 0, 0);
        Ok(())
    }
}

/// What decoding a scan needs from its headers.
struct Scan {
    precision: u8,
    predictor: u8,
    point_transform: u8,
    rows: usize,
    columns: usize,
    /// 0: no restart intervals.
    rows_per_interval: usize,
}

impl Scan {
    fn decode(&self, data: &[u8], table: &Table) -> Result<Vec<u16>, Refusal> {
        match self.predictor {
            1 => self.decode_with(data, table, |a, _, _| a),
            2 => self.decode_with(data, table, |_, b, _| b),
            3 => self.decode_with(data, table, |_, _, c| c),
            4 => self.decode_with(data, table, |a, b, c| a + b - c),
            5 => self.decode_with(data, table, |a, b, c| a + ((b - c) >> 1)),
            6 => self.decode_with(data, table, |a, b, c| b + ((a - c) >> 1)),
            _ => self.decode_with(data, table, |a, b, _| (a + b) >> 1),
        }
    }

    /// Decodes with the predictor `predict(Ra, Rb, Rc)` (T.81 Table H.1), one function per
    /// predictor so that the choice is not made again for every sample.
    #[inline(always)]
    fn decode_with(
        &self,
        data: &[u8],
        table: &Table,
        predict: impl Fn(i32, i32, i32) -> i32,
    ) -> Result<Vec<u16>, Refusal> {
        let (rows, columns) = (self.rows, self.columns);
        let mut samples = vec![0u16; rows * columns];
        let mut bits = Bits::new(data);
        let initial = 1i32 << (self.precision - self.point_transform - 1);
        let mut restarts = 0u8;
        for y in 0..rows {
            let interval_starts =
                self.rows_per_interval > 0 && y.is_multiple_of(self.rows_per_interval);
            if interval_starts && y > 0 {
                bits.restart(restarts % 8)?;
                restarts = restarts.wrapping_add(1);
            }
            let (above, here) = samples.split_at_mut(y * columns);
            let here = &mut here[..columns];
            // The first line, of the image or of a restart interval, predicts from the left
            // only, its first sample from the middle of the range (H.1.2.1).
            if y == 0 || interval_starts {
                let mut left = initial;
                for sample in here.iter_mut() {
                    let value = (left + bits.difference(table)?) & 0xFFFF;
                    *sample = value as u16;
                    left = value;
                }
                continue;
            }
            let above = &above[(y - 1) * columns..];
            let mut left = (i32::from(above[0]) + bits.difference(table)?) & 0xFFFF;
            here[0] = left as u16;
            for x in 1..columns {
                let (b, c) = (i32::from(above[x]), i32::from(above[x - 1]));
                let value = (predict(left, b, c) + bits.difference(table)?) & 0xFFFF;
                here[x] = value as u16;
                left = value;
            }
        }
        if bits.overrun() {
            return Err("the scan ends before the frame does".into());
        }
        if self.point_transform > 0 {
            for sample in &mut samples {
                *sample <<= self.point_transform;
            }
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Code lengths of a table for all 17 categories: 0 in 2 bits, 1–5 in 3, then one code
    /// each of 4 to 14 bits for 6–16.
    const COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];

    /// Bits out, most significant first, with 0xFF followed by a stuffed 0x00.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        byte: u32,
        used: u32,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, bits: u32) {
            for i in (0..bits).rev() {
                self.byte = (self.byte << 1) | ((value >> i) & 1);
                self.used += 1;
                if self.used == 8 {
                    self.flush_byte();
                }
            }
        }
        fn flush_byte(&mut self) {
            self.bytes.push(self.byte as u8);
            if self.byte == 0xFF {
                self.bytes.push(0x00);
            }
            (self.byte, self.used) = (0, 0);
        }
        /// Pads with 1-bits to a byte boundary (T.81 F.1.2.3).
        fn pad(&mut self) {
            while self.used != 0 {
                self.put(1, 1);
            }
        }
    }

    /// A test encoder of one grey component: the same prediction rules, written from T.81
    /// H.1.2.1 for this test, with a restart marker every `rows_per_interval` rows.
    fn encode(
        samples: &[u16],
        (rows, columns): (usize, usize),
        precision: u8,
        predictor: u8,
        rows_per_interval: usize,
        restart_numbers: impl Fn(usize) -> u8,
    ) -> Vec<u8> {
        let table = Table::new(&COUNTS, &(0..=16).collect::<Vec<u8>>()).unwrap();
        // Each category's code, from the decoder's own table (its lookup is what is tested).
        let code_of = |category: u8| {
            (1..=16u32)
                .find_map(|length| {
                    let (end, first, index) = table.by_length[length as usize];
                    (first..end)
                        .find(|&code| table.categories[index + (code - first) as usize] == category)
                        .map(|code| (code, length))
                })
                .unwrap()
        };
        let mut out = BitWriter::default();
        let value = |x: usize, y: usize| i32::from(samples[y * columns + x]);
        let mut restarts = 0;
        for y in 0..rows {
            let starts = rows_per_interval > 0 && y % rows_per_interval == 0;
            if starts && y > 0 {
                out.pad();
                out.bytes.extend([0xFF, 0xD0 + restart_numbers(restarts)]);
                restarts += 1;
            }
            for x in 0..columns {
                let prediction = if y == 0 || starts {
                    if x == 0 {
                        1 << (precision - 1)
                    } else {
                        value(x - 1, y)
                    }
                } else if x == 0 {
                    value(0, y - 1)
                } else {
                    let (a, b, c) = (value(x - 1, y), value(x, y - 1), value(x - 1, y - 1));
                    match predictor {
                        1 => a,
                        4 => a + b - c,
                        7 => (a + b) >> 1,
                        _ => unreachable!(),
                    }
                };
                let difference = (value(x, y) - prediction).rem_euclid(65536);
                let difference = if difference >= 32768 {
                    difference - 65536
                } else {
                    difference
                };
                let category = if difference == -32768 {
                    16
                } else {
                    32 - difference.unsigned_abs().leading_zeros()
                };
                let (code, length) = code_of(category as u8);
                out.put(code, length);
                if (1..16).contains(&category) {
                    let bits = if difference < 0 {
                        difference - 1
                    } else {
                        difference
                    };
                    out.put(bits as u32 & ((1 << category) - 1), category);
                }
            }
        }
        out.pad();
        let mut stream = vec![0xFF, 0xD8];
        let mut segment = |marker: u8, body: &[u8]| {
            stream.extend([0xFF, marker]);
            stream.extend(((body.len() + 2) as u16).to_be_bytes());
            stream.extend(body);
        };
        let mut dht = vec![0x00];
        dht.extend(COUNTS);
        dht.extend(0..=16u8);
        segment(0xC4, &dht);
        let mut sof = vec![precision];
        sof.extend((rows as u16).to_be_bytes());
        sof.extend((columns as u16).to_be_bytes());
        sof.extend([1, 7, 0x11, 0]);
        segment(0xC3, &sof);
        let interval = (rows_per_interval * columns) as u16;
        segment(0xDD, &interval.to_be_bytes());
        segment(0xDA, &[1, 7, 0x00, predictor, 0, 0]);
        stream.extend(out.bytes);
        stream.extend([0xFF, 0xD9]);
        stream
    }

    /// A 16-bit test frame with jumps of every size, 32768 included.
    fn frame(rows: usize, columns: usize) -> Vec<u16> {
        (0..rows * columns)
            .map(|i| match i % 7 {
                0 => 0,
                1 => 32768,
                2 => 65535,
                _ => (i * 2654435761 % 65536) as u16,
            })
            .collect()
    }

    #[test]
    fn restart_intervals_of_whole_rows_are_decoded_and_others_left_to_jpeg_decoder() {
        let (rows, columns) = (9, 11);
        let samples = frame(rows, columns);
        // (predictor, rows per interval, RST numbering) → the samples, None, or the refusal
        type Case = (u8, usize, fn(usize) -> u8, Result<(), &'static str>);
        let cases: [Case; 7] = [
            (1, 0, |n| (n % 8) as u8, Ok(())),
            (7, 0, |n| (n % 8) as u8, Ok(())),
            (1, 1, |n| (n % 8) as u8, Ok(())),
            (7, 2, |n| (n % 8) as u8, Ok(())),
            (4, 3, |n| (n % 8) as u8, Ok(())),
            (7, 4, |n| (n % 8) as u8, Ok(())),
            (1, 1, |n| ((n + 1) % 8) as u8, Err("no RST0 marker")),
        ];
        for (predictor, interval, numbering, expected) in cases {
            let stream = encode(
                &samples,
                (rows, columns),
                16,
                predictor,
                interval,
                numbering,
            );
            let result = decode(&stream, rows as u32, columns as u32);
            match (result, expected) {
                (Ok(Some(decoded)), Ok(())) => {
                    assert!(
                        decoded == samples,
                        "predictor {predictor}, every {interval} rows"
                    )
                }
                (Err(why), Err(part)) => assert!(why.contains(part), "{why}"),
                (result, expected) => panic!("{predictor}/{interval}: {result:?} vs {expected:?}"),
            }
        }
        // A restart interval inside rows: jpeg-decoder's case.
        let mut stream = encode(&samples, (rows, columns), 16, 1, 0, |n| n as u8);
        let dri = stream.windows(2).position(|w| w == [0xFF, 0xDD]).unwrap();
        stream[dri + 4..dri + 6].copy_from_slice(&5u16.to_be_bytes());
        assert_eq!(decode(&stream, rows as u32, columns as u32), Ok(None));
    }

    #[test]
    fn headers_are_checked_before_any_sample_is_decoded() {
        let (rows, columns) = (3, 4);
        let samples = frame(rows, columns);
        let good = encode(&samples, (rows, columns), 16, 1, 0, |n| n as u8);
        let sof = good.windows(2).position(|w| w == [0xFF, 0xC3]).unwrap();
        let sos = good.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let with = |at: usize, byte: u8| {
            let mut stream = good.clone();
            stream[at] = byte;
            stream
        };
        // (stream, rows, columns) → a part of the refusal ("" : decoded, "None": not taken)
        let cases: Vec<(Vec<u8>, u32, &str)> = vec![
            (good.clone(), 3, ""),
            (good.clone(), 4, "the object says 4 × 4"),
            (with(sof + 4, 17), 3, "precision 17"),
            (with(sof + 4, 1), 3, "precision 1"),
            (with(sof + 9, 3), 3, "None"),
            (with(sof + 1, 0xC1), 3, "None"),
            (with(sos + 7, 8), 3, "predictor 8"),
            (with(sos + 7, 0), 3, "predictor 0"),
            (with(sos + 6, 0x20), 3, "Huffman table 2, never defined"),
            (with(sos + 5, 9), 3, "the scan codes component 9"),
            (with(0, 0), 3, "SOI"),
            (good[..sos].to_vec(), 3, "ends before its scan"),
            (good[..good.len() - 6].to_vec(), 3, "ends before the frame"),
        ];
        for (stream, stream_rows, part) in cases {
            let result = decode(&stream, stream_rows, columns as u32);
            match (result, part) {
                (Ok(Some(decoded)), "") => assert_eq!(decoded, samples),
                (Ok(None), "None") => {}
                (Err(why), part) if !part.is_empty() => assert!(why.contains(part), "{why}"),
                (result, part) => panic!("{part}: {result:?}"),
            }
        }
    }
}
