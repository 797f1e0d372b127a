//! GGUF files (llama.cpp): metadata, tensor directory, and the block formats' CPU dequantizers
//! (ggml's definitions). Every read is bounds-checked: a corrupt file is an error, never a panic.

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Any unsigned integer type.
    U(u64),
    /// Any signed integer type.
    I(i64),
    /// f32 or f64.
    F(f64),
    /// bool.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
    /// Array of values.
    Array(Vec<Value>),
}

impl Value {
    /// As an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U(x) => Some(x),
            Value::I(x) if x >= 0 => Some(x as u64),
            _ => None,
        }
    }
    /// As a float, if numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::U(x) => Some(x as f64),
            Value::I(x) => Some(x as f64),
            Value::F(x) => Some(x),
            _ => None,
        }
    }
    /// As a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// As an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// ggml tensor types this engine reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// f32.
    F32,
    /// f16.
    F16,
    /// bf16.
    Bf16,
    /// 32 x 4-bit, scale: `(q - 8) * d`.
    Q4_0,
    /// 32 x 4-bit, scale and min: `q * d + m`.
    Q4_1,
    /// 32 x 8-bit, scale: `q * d`.
    Q8_0,
    /// K-quant super-blocks of 256: 4-bit with 6-bit sub-block scales and minimums.
    Q4K,
    /// K-quant super-blocks of 256: 6-bit with 8-bit sub-block scales.
    Q6K,
    /// 32 x 5-bit, scale: `(q - 16) * d`.
    Q5_0,
    /// 32 x 5-bit, scale and min: `q * d + m`.
    Q5_1,
    /// K-quant super-blocks of 256: 2-bit with 4-bit scales and minimums per 16.
    Q2K,
    /// K-quant super-blocks of 256: 3-bit with 6-bit scales per 16.
    Q3K,
    /// K-quant super-blocks of 256: 5-bit with 6-bit scales and minimums per 32.
    Q5K,
    /// 32 x 4-bit indices into a fixed non-linear table, one f16 scale.
    Iq4Nl,
    /// Super-blocks of 256 of IQ4_NL values with 6-bit scales per 32.
    Iq4Xs,
    /// Super-blocks of 256: 8-value groups from a 256-entry grid, 7-bit sign patterns, 4-bit scales
    /// per 32 (2.06 bits a weight).
    Iq2Xxs,
    /// As IQ2_XXS with a 512-entry grid and 4-bit scales per 16 (2.31 bits).
    Iq2Xs,
    /// A 1024-entry grid, explicit sign bytes, 4-bit scales per 16 (2.56 bits).
    Iq2S,
    /// 4-value groups from a 256-entry grid, 7-bit sign patterns, 4-bit scales per 32 (3.06 bits).
    Iq3Xxs,
    /// A 512-entry grid of 4 values, explicit sign bits, 4-bit scales per 32 (3.44 bits).
    Iq3S,
    /// 8-value groups from a 2048-entry grid of -1/0/1 with a +-1/8 shift, 3-bit scales per 32
    /// (1.56 bits).
    Iq1S,
    /// IQ1_S's grid with 3-bit scales per 16 and the f16 scale spread over their spare bits (1.75 bits).
    Iq1M,
    /// Ternary super-blocks of 256: codes -1/0/1 packed five to a byte in base 3, one f16 scale
    /// (1.69 bits).
    Tq1_0,
    /// Ternary super-blocks of 256: 2-bit codes -1/0/1, one f16 scale (2.06 bits).
    Tq2_0,
    /// OCP microscaling FP4: 32 E2M1 values with one E8M0 power-of-two scale (4.25 bits).
    Mxfp4,
    /// NVIDIA FP4: 64 E2M1 values with an unsigned E4M3 scale per 16 (4.5 bits).
    Nvfp4,
}

impl GgmlType {
    /// Every type this engine reads: floats, the repacked block types, then [`STORED_TYPES`].
    const ALL: [GgmlType; 26] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Bf16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q6K,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q5K,
        GgmlType::Iq4Nl,
        GgmlType::Iq4Xs,
        GgmlType::Iq2Xxs,
        GgmlType::Iq2Xs,
        GgmlType::Iq2S,
        GgmlType::Iq3Xxs,
        GgmlType::Iq3S,
        GgmlType::Iq1S,
        GgmlType::Iq1M,
        GgmlType::Tq1_0,
        GgmlType::Tq2_0,
        GgmlType::Mxfp4,
        GgmlType::Nvfp4,
    ];

    /// The type named `name` (ggml's names in any case: "q4_k", "BF16").
    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The type of a GGUF type id (the inverse of [`GgmlType::id`]).
    fn from_id(id: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }
    /// (elements per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::Bf16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q4K => (256, 144),
            GgmlType::Q6K => (256, 210),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q2K => (256, 84),
            GgmlType::Q3K => (256, 110),
            GgmlType::Q5K => (256, 176),
            GgmlType::Iq4Nl => (32, 18),
            GgmlType::Iq4Xs => (256, 136),
            GgmlType::Iq2Xxs => (256, 66),
            GgmlType::Iq2Xs => (256, 74),
            GgmlType::Iq2S => (256, 82),
            GgmlType::Iq3Xxs => (256, 98),
            GgmlType::Iq3S => (256, 110),
            GgmlType::Iq1S => (256, 50),
            GgmlType::Iq1M => (256, 56),
            GgmlType::Tq1_0 => (256, 54),
            GgmlType::Tq2_0 => (256, 66),
            GgmlType::Mxfp4 => (32, 17),
            GgmlType::Nvfp4 => (64, 36),
        }
    }

    /// ggml's type id (the GGUF tensor type field).
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q2K => 10,
            GgmlType::Q3K => 11,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::Iq4Nl => 20,
            GgmlType::Iq4Xs => 23,
            GgmlType::Iq2Xxs => 16,
            GgmlType::Iq2Xs => 17,
            GgmlType::Iq3Xxs => 18,
            GgmlType::Iq1S => 19,
            GgmlType::Iq3S => 21,
            GgmlType::Iq2S => 22,
            GgmlType::Iq1M => 29,
            GgmlType::Bf16 => 30,
            GgmlType::Tq1_0 => 34,
            GgmlType::Tq2_0 => 35,
            GgmlType::Mxfp4 => 39,
            GgmlType::Nvfp4 => 40,
        }
    }

    /// ggml's name of the type (`Q4_K`, `IQ4_XS` ...).
    pub fn name(self) -> &'static str {
        GGML_NAMES.get(self.id() as usize).copied().unwrap_or("?")
    }
}

impl GgmlType {
    /// Byte offsets of the f16 scale fields inside one block (d, and dmin/m where the type has
    /// one): what `--check-tensors` validates in block formats.
    pub fn f16_scale_offsets(self) -> &'static [usize] {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => &[],
            GgmlType::Q4_0 | GgmlType::Q8_0 => &[0],
            GgmlType::Q4_1 | GgmlType::Q4K | GgmlType::Q5_1 | GgmlType::Q5K => &[0, 2],
            GgmlType::Q6K => &[208],
            GgmlType::Q5_0 | GgmlType::Iq4Nl | GgmlType::Iq4Xs => &[0],
            GgmlType::Iq2Xxs
            | GgmlType::Iq2Xs
            | GgmlType::Iq2S
            | GgmlType::Iq3Xxs
            | GgmlType::Iq3S
            | GgmlType::Iq1S => &[0],
            GgmlType::Iq1M => &[], // its f16 scale is spread over four fields: iq1m_d
            GgmlType::Tq1_0 => &[52],
            GgmlType::Tq2_0 => &[64],
            GgmlType::Mxfp4 | GgmlType::Nvfp4 => &[], // 8-bit scales, every one finite
            GgmlType::Q2K => &[80, 82],
            GgmlType::Q3K => &[108],
        }
    }

    /// The first block of `data` whose scale fields hold a NaN or an infinity.
    pub fn first_non_finite_block(self, data: &[u8]) -> Option<usize> {
        let offs = self.f16_scale_offsets();
        let (_, bytes) = self.block();
        data.chunks_exact(bytes).position(|b| {
            offs.iter().any(|&o| !half::f16::from_le_bytes([b[o], b[o + 1]]).is_finite())
                || (self == GgmlType::Iq1M && !iq1m_d(b).is_finite())
        })
    }
}

/// ggml's type names by id.
const GGML_NAMES: [&str; 42] = [
    "F32",
    "F16",
    "Q4_0",
    "Q4_1",
    "Q4_2",
    "Q4_3",
    "Q5_0",
    "Q5_1",
    "Q8_0",
    "Q8_1",
    "Q2_K",
    "Q3_K",
    "Q4_K",
    "Q5_K",
    "Q6_K",
    "Q8_K",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ3_XXS",
    "IQ1_S",
    "IQ4_NL",
    "IQ3_S",
    "IQ2_S",
    "IQ4_XS",
    "I8",
    "I16",
    "I32",
    "I64",
    "F64",
    "IQ1_M",
    "BF16",
    "Q4_0_4_4",
    "Q4_0_4_8",
    "Q4_0_8_8",
    "TQ1_0",
    "TQ2_0",
    "IQ4_NL_4_4",
    "IQ4_NL_4_8",
    "IQ4_NL_8_8",
    "MXFP4",
    "NVFP4",
    "Q1_0",
];

fn ggml_type_name(id: u32) -> String {
    GGML_NAMES.get(id as usize).map_or(format!("ggml type {id}"), |s| s.to_string())
}

/// One tensor's directory entry.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// GGUF name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// PyTorch-order shape (GGUF stores it reversed).
    pub shape: Vec<usize>,
    /// Element type.
    pub ty: GgmlType,
    /// Byte range inside the file.
    pub range: std::ops::Range<usize>,
}

/// A parsed GGUF header: metadata and tensor directory (the data stays in the caller's bytes).
#[derive(Clone, Debug)]
pub struct Gguf {
    /// Metadata key/values.
    pub metadata: BTreeMap<String, Value>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    file: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| {
            Error::loader(
                self.file,
                format!("truncated GGUF header: needs {n} bytes at offset {}, file has {}", self.pos, self.b.len()),
            )
        })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn len(&mut self, what: &str) -> Result<usize> {
        let n = self.u64()?;
        // every element takes at least one byte, so a count past the file's end is corrupt
        if n > (self.b.len() - self.pos) as u64 {
            return Err(Error::loader(
                self.file,
                format!("{what} length {n} at offset {} runs past the end of the file", self.pos),
            ));
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> Result<String> {
        let n = self.len("string")?;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec())
            .map_err(|_| Error::loader(self.file, format!("invalid UTF-8 string at offset {}", self.pos - n)))
    }
    fn value(&mut self, ty: u32, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U(self.take(1)?[0] as u64),
            1 => Value::I(self.take(1)?[0] as i8 as i64),
            2 => Value::U(u16::from_le_bytes(self.array()?) as u64),
            3 => Value::I(i16::from_le_bytes(self.array()?) as i64),
            4 => Value::U(self.u32()? as u64),
            5 => Value::I(self.u32()? as i32 as i64),
            6 => Value::F(f32::from_bits(self.u32()?) as f64),
            7 => Value::Bool(self.take(1)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 if depth < 4 => {
                let ety = self.u32()?;
                let n = self.len("array")?;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(ety, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U(self.u64()?),
            11 => Value::I(self.u64()? as i64),
            12 => Value::F(f64::from_bits(self.u64()?)),
            other => {
                return Err(Error::loader(
                    self.file,
                    format!("unknown metadata value type {other} at offset {}", self.pos),
                ))
            }
        })
    }
}

impl Gguf {
    /// Parses the header of a GGUF file held in `bytes`; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self> {
        let mut r = Reader { b: bytes, pos: 0, file };
        if r.take(4)? != b"GGUF" {
            return Err(Error::loader(file, "not a GGUF file (bad magic)"));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(Error::loader(file, format!("GGUF version {version} is not supported (2 and 3 are)")));
        }
        let n_tensors = r.len("tensor count")?;
        let n_kv = r.len("metadata count")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let v = r.value(ty, 0)?;
            metadata.insert(key, v);
        }
        let mut raw = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims == 0 || n_dims > 4 {
                return Err(Error::loader(file, format!("tensor {name}: {n_dims} dimensions")));
            }
            let mut dims = Vec::new();
            for _ in 0..n_dims {
                dims.push(r.u64()? as usize);
            }
            let ty_id = r.u32()?;
            let offset = r.u64()? as usize;
            raw.push((name, dims, ty_id, offset));
        }
        let align = metadata.get("general.alignment").and_then(Value::as_u64).unwrap_or(32) as usize;
        if align == 0 || !align.is_power_of_two() {
            return Err(Error::loader(file, format!("general.alignment {align} is not a power of two")));
        }
        let data_start = r.pos.div_ceil(align) * align;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, ty_id, offset) in raw {
            let ty = GgmlType::from_id(ty_id).ok_or_else(|| Error::UnsupportedDtype {
                what: format!("{file}: tensor {name}"),
                dtype: ggml_type_name(ty_id),
            })?;
            let n: usize = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| Error::loader(file, format!("tensor {name}: shape overflows")))?;
            let (be, bb) = ty.block();
            if dims[0] % be != 0 {
                return Err(Error::loader(
                    file,
                    format!("tensor {name}: row of {} is not a whole number of {be}-element blocks", dims[0]),
                ));
            }
            let size = (n / be)
                .checked_mul(bb)
                .ok_or_else(|| Error::loader(file, format!("tensor {name}: size overflows")))?;
            let start = data_start
                .checked_add(offset)
                .ok_or_else(|| Error::loader(file, format!("tensor {name}: offset overflows")))?;
            let end = start.checked_add(size).filter(|&e| e <= bytes.len()).ok_or_else(|| {
                Error::loader(
                    file,
                    format!(
                        "tensor {name}: data [{start}, {}) runs past the end of the file ({} bytes)",
                        start.saturating_add(size),
                        bytes.len()
                    ),
                )
            })?;
            tensors.push(TensorInfo { name, shape: dims.into_iter().rev().collect(), ty, range: start..end });
        }
        let mut sorted: Vec<&TensorInfo> = tensors.iter().collect();
        sorted.sort_by_key(|t| t.range.start);
        for w in sorted.windows(2) {
            if w[1].range.start < w[0].range.end {
                return Err(Error::loader(file, format!("tensors {} and {} overlap", w[0].name, w[1].name)));
            }
        }
        Ok(Gguf { metadata, tensors })
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A tensor's directory entry.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Dequantizes `data` (whole blocks of `ty`) to f32, following ggml's reference definitions.
pub fn dequantize(ty: GgmlType, data: &[u8]) -> Vec<f32> {
    let f16 = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    let (_, bb) = ty.block();
    let mut out = Vec::with_capacity(data.len() / bb * 32);
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => {
            let d = match ty {
                GgmlType::F32 => crate::WeightDtype::F32,
                GgmlType::F16 => crate::WeightDtype::F16,
                _ => crate::WeightDtype::Bf16,
            };
            return d.decode(data);
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            for blk in data.chunks_exact(bb) {
                let d = f16(&blk[0..2]);
                let (m, qs) =
                    if ty == GgmlType::Q4_1 { (f16(&blk[2..4]), &blk[4..20]) } else { (-8.0 * d, &blk[2..18]) };
                let base = out.len();
                out.resize(base + 32, 0.0);
                for (j, &q) in qs.iter().enumerate() {
                    out[base + j] = (q & 0xf) as f32 * d + m;
                    out[base + j + 16] = (q >> 4) as f32 * d + m;
                }
            }
        }
        GgmlType::Q8_0 => {
            for blk in data.chunks_exact(bb) {
                let d = f16(&blk[0..2]);
                out.extend(blk[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        GgmlType::Q4K => {
            for blk in data.chunks_exact(bb) {
                let (d, dmin, scales, qs) = (f16(&blk[0..2]), f16(&blk[2..4]), &blk[4..16], &blk[16..144]);
                let sm = |j: usize| -> (f32, f32) {
                    let (sc, m) = k_scale_min(scales, j);
                    (d * sc as f32, dmin * m as f32)
                };
                for (c, q) in qs.chunks_exact(32).enumerate() {
                    let ((d1, m1), (d2, m2)) = (sm(2 * c), sm(2 * c + 1));
                    out.extend(q.iter().map(|&b| d1 * (b & 0xf) as f32 - m1));
                    out.extend(q.iter().map(|&b| d2 * (b >> 4) as f32 - m2));
                }
            }
        }
        GgmlType::Q6K => {
            for blk in data.chunks_exact(bb) {
                let (ql, qh, sc, d) = (&blk[0..128], &blk[128..192], &blk[192..208], f16(&blk[208..210]));
                for n in 0..2 {
                    let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
                    let base = out.len();
                    out.resize(base + 128, 0.0);
                    for l in 0..32 {
                        let is = l / 16;
                        let q = |lo: u8, shift: u32| ((lo | (((qh[l] >> shift) & 3) << 4)) as i32 - 32) as f32;
                        out[base + l] = d * sc[is] as i8 as f32 * q(ql[l] & 0xf, 0);
                        out[base + l + 32] = d * sc[is + 2] as i8 as f32 * q(ql[l + 32] & 0xf, 2);
                        out[base + l + 64] = d * sc[is + 4] as i8 as f32 * q(ql[l] >> 4, 4);
                        out[base + l + 96] = d * sc[is + 6] as i8 as f32 * q(ql[l + 32] >> 4, 6);
                    }
                }
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            for blk in data.chunks_exact(bb) {
                let d = f16(&blk[0..2]);
                let (m, rest) =
                    if ty == GgmlType::Q5_1 { (f16(&blk[2..4]), &blk[4..]) } else { (-16.0 * d, &blk[2..]) };
                let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let qs = &rest[4..20];
                let q = |j: usize| {
                    let nib = if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 };
                    (nib as u32 | (((qh >> j) & 1) << 4)) as f32
                };
                out.extend((0..32).map(|j| q(j) * d + m));
            }
        }
        GgmlType::Q2K => {
            for blk in data.chunks_exact(bb) {
                let (scales, qs, d, dmin) = (&blk[0..16], &blk[16..80], f16(&blk[80..82]), f16(&blk[82..84]));
                for i in 0..256 {
                    let (n, g, l) = (i / 128, (i % 128) / 32, i % 32);
                    let sc = scales[8 * n + 2 * g + l / 16];
                    let q = (qs[32 * n + l] >> (2 * g)) & 3;
                    out.push(d * (sc & 15) as f32 * q as f32 - dmin * (sc >> 4) as f32);
                }
            }
        }
        GgmlType::Q3K => {
            for blk in data.chunks_exact(bb) {
                let (hmask, qs, s, d) = (&blk[0..32], &blk[32..96], &blk[96..108], f16(&blk[108..110]));
                // 16 6-bit scales: low 4 bits from bytes 0..8, high 2 from bytes 8..12
                let scale = |k: usize| {
                    let lo = (s[k % 8] >> (4 * (k / 8))) & 15;
                    let hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
                    (lo | (hi << 4)) as i32 - 32
                };
                for i in 0..256 {
                    let (n, g, l) = (i / 128, (i % 128) / 32, i % 32);
                    let q = ((qs[32 * n + l] >> (2 * g)) & 3) as i32;
                    let high = (hmask[l] >> (4 * n + g)) & 1;
                    out.push(d * scale(8 * n + 2 * g + l / 16) as f32 * (q - if high == 1 { 0 } else { 4 }) as f32);
                }
            }
        }
        GgmlType::Q5K => {
            for blk in data.chunks_exact(bb) {
                let (d, dmin, scales, qh, qs) =
                    (f16(&blk[0..2]), f16(&blk[2..4]), &blk[4..16], &blk[16..48], &blk[48..176]);
                for i in 0..256 {
                    let (c, half, l) = (i / 64, (i % 64) / 32, i % 32);
                    let (sc, m) = k_scale_min(scales, i / 32);
                    let q =
                        ((qs[32 * c + l] >> (4 * half)) & 15) as u32 | ((((qh[l] >> (2 * c + half)) & 1) as u32) << 4);
                    out.push(d * sc as f32 * q as f32 - dmin * m as f32);
                }
            }
        }
        GgmlType::Iq4Nl => {
            for blk in data.chunks_exact(bb) {
                let (d, qs) = (f16(&blk[0..2]), &blk[2..18]);
                out.extend((0..32).map(|j| {
                    let nib = if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 };
                    d * IQ4NL_VALUES[nib as usize] as f32
                }));
            }
        }
        GgmlType::Iq2Xxs
        | GgmlType::Iq2Xs
        | GgmlType::Iq2S
        | GgmlType::Iq3Xxs
        | GgmlType::Iq3S
        | GgmlType::Iq1S
        | GgmlType::Iq1M => {
            for blk in data.chunks_exact(bb) {
                dequantize_iq(ty, blk, &mut out);
            }
        }
        GgmlType::Tq1_0 => {
            // bytes 0..48 hold five codes each, bytes 48..52 four: code j of byte q is the top
            // trit of q * 3^j (mod 256), i.e. ((q * 3^j) % 256 * 3) >> 8; value (code - 1) * d
            for blk in data.chunks_exact(bb) {
                let d = f16(&blk[52..54]);
                let trit = |q: u8, j: usize| (((q.wrapping_mul(3u8.pow(j as u32)) as u32 * 3) >> 8) as f32 - 1.0) * d;
                for (lo, hi, width, trits) in [(0, 32, 32, 5), (32, 48, 16, 5), (48, 52, 4, 4)] {
                    let qs = &blk[lo..hi];
                    out.extend((0..trits).flat_map(|j| (0..width).map(move |l| (qs[l], j))).map(|(q, j)| trit(q, j)));
                }
            }
        }
        GgmlType::Tq2_0 => {
            // element 128g + 32j + l: bits 2j of byte 32g + l; value (code - 1) * d
            for blk in data.chunks_exact(bb) {
                let d = f16(&blk[64..66]);
                for i in 0..256 {
                    let (g, j, l) = (i / 128, (i % 128) / 32, i % 32);
                    out.push((((blk[32 * g + l] >> (2 * j)) & 3) as f32 - 1.0) * d);
                }
            }
        }
        GgmlType::Mxfp4 => {
            // element 16h + l: nibble h of byte 1 + l, an E2M1 value (doubled) times half the
            // E8M0 scale 2^(e - 127)
            for blk in data.chunks_exact(bb) {
                let d = e8m0_half(blk[0]);
                out.extend((0..32).map(|i| d * FP4_VALUES[((blk[1 + i % 16] >> (4 * (i / 16))) & 15) as usize] as f32));
            }
        }
        GgmlType::Nvfp4 => {
            // sub-block s of 16: element m is the low nibble of byte 4 + 8s + m (m < 8), else the
            // high nibble of byte 4 + 8s + m - 8; E2M1 (doubled) times half the E4M3 scale byte s
            for blk in data.chunks_exact(bb) {
                for s in 0..4 {
                    let d = ue4m3_half(blk[s]);
                    let q = &blk[4 + 8 * s..12 + 8 * s];
                    out.extend((0..16).map(|m| d * FP4_VALUES[((q[m % 8] >> (4 * (m / 8))) & 15) as usize] as f32));
                }
            }
        }
        GgmlType::Iq4Xs => {
            for blk in data.chunks_exact(bb) {
                let (d, sh, sl, qs) = (f16(&blk[0..2]), u16::from_le_bytes([blk[2], blk[3]]), &blk[4..8], &blk[8..136]);
                for ib in 0..8 {
                    let ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 15) as i32 | ((((sh >> (2 * ib)) & 3) as i32) << 4);
                    let dl = d * (ls - 32) as f32;
                    let q = &qs[16 * ib..16 * ib + 16];
                    out.extend((0..32).map(|j| {
                        let nib = if j < 16 { q[j] & 15 } else { q[j - 16] >> 4 };
                        dl * IQ4NL_VALUES[nib as usize] as f32
                    }));
                }
            }
        }
    }
    out
}

/// The i-quants with a lookup grid (ggml's dequantize_row_iq*), one block of 256 into `out`.
fn dequantize_iq(ty: GgmlType, blk: &[u8], out: &mut Vec<f32>) {
    use super::iq_grids as g;
    let f16 = |o: usize| half::f16::from_le_bytes([blk[o], blk[o + 1]]).to_f32();
    let u16_at = |o: usize| u16::from_le_bytes([blk[o], blk[o + 1]]) as u32;
    let u32_at = |o: usize| u32::from_le_bytes([blk[o], blk[o + 1], blk[o + 2], blk[o + 3]]);
    // 8 values of a grid entry times `scale`, signs from the bits of `signs` (1 = negative)
    let mut push8 = |entry: u64, scale: f32, signs: u32, shift: f32| {
        for k in 0..8 {
            let sign = if (signs >> k) & 1 == 1 { -1.0 } else { 1.0 };
            out.push(scale * sign * (grid_value(entry, k) + shift));
        }
    };
    match ty {
        GgmlType::Iq2Xxs => {
            let d = f16(0);
            for ib in 0..8 {
                let (aux0, aux1) = (u32_at(2 + 8 * ib), u32_at(6 + 8 * ib));
                let db = d * (0.5 + (aux1 >> 28) as f32) * 0.25;
                for l in 0..4 {
                    push8(g::IQ2XXS[((aux0 >> (8 * l)) & 255) as usize], db, ksigns((aux1 >> (7 * l)) & 127), 0.0);
                }
            }
        }
        GgmlType::Iq2Xs => {
            let d = f16(0);
            for grp in 0..32 {
                let q = u16_at(2 + 2 * grp);
                let s = (blk[66 + grp / 4] >> (4 * ((grp / 2) % 2))) & 15;
                push8(g::IQ2XS[(q & 511) as usize], d * (0.5 + s as f32) * 0.25, ksigns(q >> 9), 0.0);
            }
        }
        GgmlType::Iq2S => {
            let d = f16(0);
            for grp in 0..32 {
                let idx = blk[2 + grp] as usize | ((((blk[66 + grp / 4] >> (2 * (grp % 4))) & 3) as usize) << 8);
                let s = (blk[74 + grp / 4] >> (4 * ((grp / 2) % 2))) & 15;
                push8(g::IQ2S[idx], d * (0.5 + s as f32) * 0.25, blk[34 + grp] as u32, 0.0);
            }
        }
        GgmlType::Iq3Xxs => {
            let d = f16(0);
            for ib in 0..8 {
                let aux = u32_at(66 + 4 * ib);
                let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
                for l in 0..4 {
                    let pair = g::IQ3XXS[blk[2 + 8 * ib + 2 * l] as usize] as u64
                        | ((g::IQ3XXS[blk[3 + 8 * ib + 2 * l] as usize] as u64) << 32);
                    push8(pair, db, ksigns((aux >> (7 * l)) & 127), 0.0);
                }
            }
        }
        GgmlType::Iq3S => {
            let d = f16(0);
            for grp in 0..32 {
                let idx = |k: usize| blk[2 + k] as usize | ((((blk[66 + k / 8] >> (k % 8)) & 1) as usize) << 8);
                let pair = g::IQ3S[idx(2 * grp)] as u64 | ((g::IQ3S[idx(2 * grp + 1)] as u64) << 32);
                let s = (blk[106 + grp / 8] >> (4 * ((grp / 4) % 2))) & 15;
                push8(pair, d * (1.0 + 2.0 * s as f32), blk[74 + grp] as u32, 0.0);
            }
        }
        GgmlType::Iq1S => {
            let d = f16(0);
            for ib in 0..8 {
                let qh = u16_at(34 + 2 * ib);
                let dl = d * (2 * ((qh >> 12) & 7) + 1) as f32;
                let delta = if qh & 0x8000 != 0 { -0.125 } else { 0.125 };
                for l in 0..4 {
                    let idx = blk[2 + 4 * ib + l] as usize | ((((qh >> (3 * l)) & 7) as usize) << 8);
                    push8(g::IQ1S[idx], dl, 0, delta);
                }
            }
        }
        GgmlType::Iq1M => {
            let sc: Vec<u32> = (0..4).map(|i| u16_at(48 + 2 * i)).collect();
            let d = iq1m_d(blk);
            for grp in 0..32 {
                let s = (sc[grp / 8] >> (3 * ((grp / 2) % 4))) & 7;
                let nib = (blk[32 + grp / 2] >> (4 * (grp % 2))) & 15;
                let idx = blk[grp] as usize | (((nib & 7) as usize) << 8);
                let delta = if nib & 8 != 0 { -0.125 } else { 0.125 };
                push8(g::IQ1S[idx], d * (2 * s + 1) as f32, 0, delta);
            }
        }
        _ => {}
    }
}

/// The GGUF types kept on the GPU exactly as stored, each decoded by its own function in
/// shaders/weights.wgsl (`W_DTYPE` = 100 + id); the other block types are repacked at load.
pub const STORED_TYPES: &[GgmlType] = GgmlType::ALL.split_at(8).1; // ALL lists them after the repacked ones

/// The f16 scale of an IQ1_M block: the top nibbles of its four u16 scale fields (byte 48 on).
fn iq1m_d(blk: &[u8]) -> f32 {
    let top = |i: usize| (u16::from_le_bytes([blk[48 + 2 * i], blk[49 + 2 * i]]) >> 12) << (4 * i);
    half::f16::from_bits(top(0) | top(1) | top(2) | top(3)).to_f32()
}

/// Writes `d` as an IQ1_M block's f16 scale (the inverse of how the loader reads it: the top
/// nibbles of its four u16 scale fields, the 3-bit scales below them kept), for generated weights.
pub fn set_iq1m_d(blk: &mut [u8], d: half::f16) {
    for i in 0..4 {
        let o = 48 + 2 * i;
        let top = (d.to_bits() >> (4 * i)) & 15;
        let w = u16::from_le_bytes([blk[o], blk[o + 1]]) & 0x0fff | top << 12;
        blk[o..o + 2].copy_from_slice(&w.to_le_bytes());
    }
}

/// The lookup grid an i-quant type reads, as the bytes appended to each of its GPU buffers (one
/// little-endian integer per entry, see `iq_grids`); empty for the other types.
pub fn grid_bytes(ty: GgmlType) -> Vec<u8> {
    use super::iq_grids as g;
    match ty {
        GgmlType::Iq2Xxs => g::IQ2XXS.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::Iq2Xs => g::IQ2XS.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::Iq2S => g::IQ2S.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::Iq3Xxs => g::IQ3XXS.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::Iq3S => g::IQ3S.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::Iq1S | GgmlType::Iq1M => g::IQ1S.iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => vec![],
    }
}

/// ggml's sign pattern of a 7-bit index: its 7 bits, and an eighth that makes the count even.
fn ksigns(i: u32) -> u32 {
    i | ((i.count_ones() & 1) << 7)
}

/// Value k of grid entry `entry` (one byte per value).
fn grid_value(entry: u64, k: usize) -> f32 {
    ((entry >> (8 * k)) & 0xff) as u8 as i8 as f32
}

/// The 16 E2M1 (FP4) values a nibble selects, doubled (ggml's `kvalues_mxfp4`).
const FP4_VALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Half of the E8M0 scale 2^(e - 127) (ggml's `ggml_e8m0_to_fp32_half`: 0 and 1 as subnormals).
fn e8m0_half(e: u8) -> f32 {
    f32::from_bits(if e < 2 { 0x0020_0000 << e } else { (e as u32 - 1) << 23 })
}

/// Half of an unsigned E4M3 scale (bias 7, no sign; 0 and 0x7F are zero), as gguf-py decodes
/// NVFP4's scales.
fn ue4m3_half(x: u8) -> f32 {
    let (exp, man) = ((x >> 3) & 15, (x & 7) as f32);
    if x == 0 || x == 0x7f {
        return 0.0;
    }
    let raw = if exp == 0 { man * (-9f32).exp2() } else { (1.0 + man / 8.0) * (exp as f32 - 7.0).exp2() };
    raw * 0.5
}

/// The 16 values a 4-bit IQ4_NL / IQ4_XS index selects (ggml's `kvalues_iq4nl`).
pub const IQ4NL_VALUES: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// The 6-bit (scale, min) of sub-block `j` (0..8) from the 12 packed bytes of a Q4_K / Q5_K
/// super-block (ggml's `get_scale_min_k4`).
fn k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Dequantizes a block-format weight (`WeightDtype::Q8_0` / `Q4_0` / `Q4_1` / `Q4K` / `Q6K`) in
/// GGUF layout.
pub fn dequantize_weight(dtype: crate::WeightDtype, data: &[u8]) -> Vec<f32> {
    let ty = match dtype {
        crate::WeightDtype::Q8_0 => GgmlType::Q8_0,
        crate::WeightDtype::Q4_0 => GgmlType::Q4_0,
        crate::WeightDtype::Q4_1 => GgmlType::Q4_1,
        crate::WeightDtype::Q4K => GgmlType::Q4K,
        crate::WeightDtype::Q6K => GgmlType::Q6K,
        crate::WeightDtype::Stored(t) => t,
        other => return other.decode(data),
    };
    dequantize(ty, data)
}

/// Quantizes f32 values to GGUF blocks: Q8_0/Q4_0/Q4_1 as ggml's reference quantizers do (a
/// multiple of 32 values), Q4_K/Q6_K with a plain scale choice (a multiple of 256; the layout is
/// ggml's, the scale search is not).
pub fn quantize(dtype: crate::WeightDtype, values: &[f32]) -> Vec<u8> {
    let f16 = |x: f32| half::f16::from_f32(x).to_le_bytes();
    match dtype {
        crate::WeightDtype::Q4K => return values.chunks_exact(256).flat_map(quantize_q4k).collect(),
        crate::WeightDtype::Q6K => return values.chunks_exact(256).flat_map(quantize_q6k).collect(),
        _ => {}
    }
    let mut out = Vec::new();
    for blk in values.chunks_exact(32) {
        match dtype {
            crate::WeightDtype::Q8_0 => {
                let amax = blk.iter().fold(0.0f32, |a, x| a.max(x.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16(d));
                out.extend(blk.iter().map(|x| (x * id).round() as i8 as u8));
            }
            crate::WeightDtype::Q4_0 => {
                let max = blk.iter().fold(0.0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16(d));
                let q = |x: f32| ((x * id + 8.5) as i32).clamp(0, 15) as u8;
                out.extend((0..16).map(|j| q(blk[j]) | (q(blk[j + 16]) << 4)));
            }
            crate::WeightDtype::Q4_1 => {
                let (min, max) = blk.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16(d));
                out.extend(f16(min));
                let q = |x: f32| (((x - min) * id + 0.5) as i32).clamp(0, 15) as u8;
                out.extend((0..16).map(|j| q(blk[j]) | (q(blk[j + 16]) << 4)));
            }
            _ => return dtype.encode(values),
        }
    }
    out
}

/// One Q4_K super-block: per sub-block of 32, `x ~ d*sc*q - dmin*m` with q in 0..16 and 6-bit
/// sc, m (packed as ggml's get_scale_min_k4 reads them).
fn quantize_q4k(x: &[f32]) -> Vec<u8> {
    let (mut scale, mut min) = ([0f32; 8], [0f32; 8]);
    for (j, sub) in x.chunks_exact(32).enumerate() {
        let (lo, hi) = sub.iter().fold((0f32, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        scale[j] = (hi - lo) / 15.0;
        min[j] = -lo;
    }
    let d = scale.iter().fold(0f32, |a, &v| a.max(v)) / 63.0;
    let dmin = min.iter().fold(0f32, |a, &v| a.max(v)) / 63.0;
    let (d, dmin) = (half::f16::from_f32(d).to_f32(), half::f16::from_f32(dmin).to_f32());
    let q6 = |v: f32, unit: f32| if unit > 0.0 { (v / unit).round().clamp(0.0, 63.0) as u8 } else { 0 };
    let sc: Vec<u8> = scale.iter().map(|&v| q6(v, d)).collect();
    let m: Vec<u8> = min.iter().map(|&v| q6(v, dmin)).collect();
    let mut scales = [0u8; 12];
    for j in 0..4 {
        scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        scales[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        scales[j + 8] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4);
    }
    let mut out = Vec::with_capacity(144);
    out.extend(half::f16::from_f32(d).to_le_bytes());
    out.extend(half::f16::from_f32(dmin).to_le_bytes());
    out.extend(scales);
    let q = |i: usize| -> u8 {
        let (j, unit) = (i / 32, d * sc[i / 32] as f32);
        if unit > 0.0 {
            ((x[i] + dmin * m[j] as f32) / unit).round().clamp(0.0, 15.0) as u8
        } else {
            0
        }
    };
    // byte l of chunk c: element 64c + l (low nibble), 64c + 32 + l (high nibble)
    for c in 0..4 {
        out.extend((0..32).map(|l| q(64 * c + l) | (q(64 * c + 32 + l) << 4)));
    }
    out
}

/// One Q6_K super-block: per 16 values an int8 scale, `x ~ d*sc*(q - 32)` with q in 0..64.
fn quantize_q6k(x: &[f32]) -> Vec<u8> {
    let amax: Vec<f32> = x.chunks_exact(16).map(|g| g.iter().fold(0f32, |a, v| a.max(v.abs())) / 31.0).collect();
    let d = half::f16::from_f32(amax.iter().fold(0f32, |a, &v| a.max(v)) / 127.0).to_f32();
    let sc: Vec<i8> =
        amax.iter().map(|&v| if d > 0.0 { (v / d).round().clamp(-128.0, 127.0) as i8 } else { 0 }).collect();
    let q: Vec<u8> = (0..256)
        .map(|i| {
            let unit = d * sc[i / 16] as f32;
            let v = if unit != 0.0 { (x[i] / unit).round().clamp(-32.0, 31.0) } else { 0.0 };
            (v as i32 + 32) as u8
        })
        .collect();
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    // half n, l in 0..32: elements 128n + l + 32g (g = 0..3) as ggml's dequantize_row_q6_K reads them
    for n in 0..2 {
        for l in 0..32 {
            let e = |g: usize| q[128 * n + l + 32 * g];
            ql[64 * n + l] = (e(0) & 15) | ((e(2) & 15) << 4);
            ql[64 * n + l + 32] = (e(1) & 15) | ((e(3) & 15) << 4);
            qh[32 * n + l] = (e(0) >> 4) | ((e(1) >> 4) << 2) | ((e(2) >> 4) << 4) | ((e(3) >> 4) << 6);
        }
    }
    let mut out = Vec::with_capacity(210);
    out.extend(ql);
    out.extend(qh);
    out.extend(sc.iter().map(|&v| v as u8));
    out.extend(half::f16::from_f32(d).to_le_bytes());
    out
}

/// The byte length of `data_len` bytes of `dtype` blocks once repacked (with the padding that
/// aligns each part to a word), and the word offsets `d_off`, `m_off` of their scale parts.
pub fn repacked_len(dtype: crate::WeightDtype, data_len: usize) -> (usize, u32, u32) {
    let lay = layout(dtype, data_len);
    (lay.len, lay.d_off, lay.m_off)
}

/// How a block dtype is repacked: the block size, each part's (byte offset, bytes per block), the
/// total length and the word offsets the kernels take.
struct Layout {
    block: usize,
    parts: Vec<(usize, usize)>,
    len: usize,
    d_off: u32,
    m_off: u32,
}

fn layout(dtype: crate::WeightDtype, data_len: usize) -> Layout {
    let w4 = |n: usize| n.div_ceil(4) * 4;
    let (block, per): (usize, &[usize]) = match dtype {
        crate::WeightDtype::Q4K => (144, &[128, 16]),
        crate::WeightDtype::Q6K => (210, &[128, 64, 16, 2]),
        crate::WeightDtype::Q8_0 => (34, &[32, 2]),
        crate::WeightDtype::Q4_0 => (18, &[16, 2]),
        crate::WeightDtype::Q4_1 => (20, &[16, 2, 2]),
        _ => {
            // stored as they are (no parts), then an i-quant's lookup grid at a word
            let grid = if let crate::WeightDtype::Stored(ty) = dtype { grid_bytes(ty).len() } else { 0 };
            let (d_off, len) = if grid == 0 { (0, data_len) } else { (w4(data_len) / 4, w4(data_len) + grid) };
            return Layout { block: 1, parts: Vec::new(), len, d_off: d_off as u32, m_off: 0 };
        }
    };
    // each part starts on a word
    let blocks = data_len / block;
    let mut parts = Vec::new();
    let mut at = 0;
    for &p in per {
        at = w4(at);
        parts.push((at, p));
        at += p * blocks;
    }
    let (d_off, m_off, len) = match dtype {
        crate::WeightDtype::Q4K => (parts[1].0 / 4, 0, at),
        crate::WeightDtype::Q6K => (parts[3].0 / 4, parts[2].0 / 4, w4(at)),
        crate::WeightDtype::Q4_1 => (parts[1].0 / 4, parts[2].0 / 4, at),
        _ => (parts[1].0 / 4, w4(at) / 4, w4(at)), // Q8_0, Q4_0: no minimums
    };
    Layout { block, parts, len, d_off: d_off as u32, m_off: m_off as u32 }
}

/// Writes `rows` rows of whole `dtype` blocks (`row(r)`, all of one length) repacked for the GPU
/// kernels through `write(offset, bytes)`, a few hundred KB at a time: a load streams them into
/// the mapped upload buffer, gathering rows from several tensors without a host copy. The layout:
/// - Q8_0/Q4_0/Q4_1: the quants of every block in element order (int8, or 4-bit with element
///   `8i + j` in bits `4j` of word `i`), then the f16 scales `d` (at `d_off`), then (Q4_1) the f16
///   minimums `m` (at `m_off`);
/// - Q4_K: the 4-bit quants in element order, then per super-block its 16 header bytes (d, dmin,
///   the 12 packed scale bytes) at `d_off`;
/// - Q6_K: the low 4 bits in element order, then the high 2 bits (element `16i + j` in bits `2j`
///   of word `i`), then the int8 scales (one per 16 elements, at `m_off`), then the f16 `d` per
///   super-block (at `d_off`);
/// - the [`STORED_TYPES`]: the blocks as they are, then for an i-quant its lookup grid (at `d_off`;
///   a few KB per buffer, see [`grid_bytes`]).
pub fn repack_into<'a>(
    dtype: crate::WeightDtype,
    rows: usize,
    row: &(dyn Fn(usize) -> &'a [u8] + Sync),
    write: &mut dyn FnMut(usize, &[u8]),
) {
    let row_len = if rows == 0 { 0 } else { row(0).len() };
    let lay = layout(dtype, rows * row_len);
    fan_out(rows, load_threads(lay.len), &|range, emit| repack_rows(&lay, dtype, row_len, range, row, emit), write);
    if let (true, crate::WeightDtype::Stored(ty)) = (lay.parts.is_empty(), dtype) {
        write(lay.d_off as usize * 4, &grid_bytes(ty));
    }
}

/// Where a worker hands its output: `(byte offset in the buffer, bytes)`.
type Emit<'e> = &'e mut dyn FnMut(usize, &[u8]);

/// Output bytes below which [`fan_out`] runs on the calling thread.
const PARALLEL_MIN_BYTES: usize = 8 << 20;

/// Threads for a load's CPU work on `bytes` of output: one on wasm and for small weights, else
/// up to 8.
fn load_threads(bytes: usize) -> usize {
    if cfg!(target_arch = "wasm32") || bytes < PARALLEL_MIN_BYTES {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
    }
}

/// Calls `work(rows, emit)` on row ranges that split `0..rows` among `threads` worker threads (a
/// load's CPU work: reading the mapped file, repacking blocks), handing what they emit to `write`
/// on this thread, which owns the mapped upload buffer. One thread runs one range here.
fn fan_out(
    rows: usize,
    threads: usize,
    work: &(dyn Fn(std::ops::Range<usize>, Emit) + Sync),
    write: &mut dyn FnMut(usize, &[u8]),
) {
    if threads <= 1 || rows < threads {
        return work(0..rows, write);
    }
    let per = rows.div_ceil(threads);
    // a few batches in flight per worker bound the memory
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(2 * threads);
    std::thread::scope(|s| {
        for i in 0..threads {
            let tx = tx.clone();
            let range = (i * per).min(rows)..((i + 1) * per).min(rows);
            s.spawn(move || {
                // consecutive pieces (rows stored as they are, a part's blocks) are gathered
                // into batches of ~1 MB; the receiver only stops early if the scope unwinds
                const BATCH: usize = 1 << 20;
                let (mut at0, mut batch) = (0, Vec::new());
                work(range, &mut |at, b| {
                    if !batch.is_empty() && (at != at0 + batch.len() || batch.len() + b.len() > BATCH) {
                        let _ = tx.send((at0, std::mem::take(&mut batch)));
                    }
                    if batch.is_empty() {
                        at0 = at;
                    }
                    batch.extend_from_slice(b);
                });
                if !batch.is_empty() {
                    let _ = tx.send((at0, batch));
                }
            });
        }
        drop(tx);
        for (at, b) in rx {
            write(at, &b);
        }
    });
}

/// Emits rows `range` (of `row_len` bytes each) repacked in layout `lay`, at their offsets in the
/// whole weight's buffer: rows stored as they are one by one, repacked blocks 4096 at a time.
fn repack_rows<'a>(
    lay: &Layout,
    dtype: crate::WeightDtype,
    row_len: usize,
    range: std::ops::Range<usize>,
    row: &(dyn Fn(usize) -> &'a [u8] + Sync),
    emit: Emit,
) {
    if lay.parts.is_empty() {
        range.for_each(|r| emit(r * row_len, row(r)));
        return;
    }
    const BATCH: usize = 4096; // blocks per emit
    let mut scratch = vec![0u8; BATCH * 128];
    let first_block = range.start * (row_len / lay.block);
    for (part, &(at, per)) in lay.parts.iter().enumerate() {
        let mut blocks = range.clone().flat_map(|r| row(r).chunks_exact(lay.block));
        let mut done = first_block;
        loop {
            // scratch first: zip stops on a full batch without taking a block from the next one
            let n =
                scratch.chunks_exact_mut(per).zip(blocks.by_ref()).map(|(o, b)| repack_part(dtype, part, b, o)).count();
            if n == 0 {
                break;
            }
            emit(at + done * per, &scratch[..n * per]);
            done += n;
        }
    }
}

/// Part `part` of one block's repacked bytes (see [`repack_into`]). Two 4-bit elements (2b,
/// 2b + 1) make one output byte, taken from the block's bytes directly.
fn repack_part(dtype: crate::WeightDtype, part: usize, blk: &[u8], out: &mut [u8]) {
    // n bytes whose low nibbles are n elements and high nibbles the next n -> n output bytes,
    // 8 input bytes at a time as one u64 (byte i at bits 8i): output byte k of a half is nibble
    // 2k | nibble 2k + 1 << 4, then the even bytes are gathered
    let nibbles = |qs: &[u8], out: &mut [u8]| {
        let (lo, hi) = out.split_at_mut(qs.len() / 2);
        let even_bytes = |v: u64| {
            let v = (v | (v >> 4)) & 0x00ff_00ff_00ff_00ff;
            let v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
            ((v | (v >> 16)) as u32).to_le_bytes()
        };
        for ((q, l), h) in qs.as_chunks::<8>().0.iter().zip(lo.chunks_exact_mut(4)).zip(hi.chunks_exact_mut(4)) {
            let v = u64::from_le_bytes(*q);
            l.copy_from_slice(&even_bytes(v & 0x0f0f_0f0f_0f0f_0f0f));
            h.copy_from_slice(&even_bytes((v >> 4) & 0x0f0f_0f0f_0f0f_0f0f));
        }
    };
    match (dtype, part) {
        // Q4_K qs: 4 groups of 32 bytes; elements 64g..64g+31 are the low nibbles of group g
        (crate::WeightDtype::Q4K, 0) => {
            for (qs, o) in blk[16..144].chunks_exact(32).zip(out.chunks_exact_mut(32)) {
                nibbles(qs, o);
            }
        }
        (crate::WeightDtype::Q4K, _) => out.copy_from_slice(&blk[0..16]),
        // Q6_K element e = 128n + 32g + l (as dequantize_row_q6_K reads it): low 4 bits in the
        // low (g < 2) or high nibble of ql[64n + 32(g % 2) + l], high 2 bits at bit 2g of
        // qh[32n + l]
        (crate::WeightDtype::Q6K, 0) => {
            for n in 0..2 {
                let ql = &blk[64 * n..][..64];
                let (a, b) = out[64 * n..][..64].split_at_mut(32);
                // groups 0, 1 (low nibbles of ql[0..32], ql[32..64]) then 2, 3 (high nibbles)
                let mut tmp = [0u8; 32];
                nibbles(&ql[..32], &mut tmp);
                a[..16].copy_from_slice(&tmp[..16]);
                b[..16].copy_from_slice(&tmp[16..]);
                nibbles(&ql[32..], &mut tmp);
                a[16..].copy_from_slice(&tmp[..16]);
                b[16..].copy_from_slice(&tmp[16..]);
            }
        }
        (crate::WeightDtype::Q6K, 1) => {
            for n in 0..2 {
                let qh = &blk[128 + 32 * n..][..32];
                for g in 0..4 {
                    // bits 2g of 4 bytes -> bits 2j of one byte
                    for (h, o) in qh.as_chunks::<4>().0.iter().zip(&mut out[32 * n + 8 * g..][..8]) {
                        let t = (u32::from_le_bytes(*h) >> (2 * g)) & 0x0303_0303;
                        *o = (t | (t >> 6) | (t >> 12) | (t >> 18)) as u8;
                    }
                }
            }
        }
        (crate::WeightDtype::Q6K, 2) => out.copy_from_slice(&blk[192..208]),
        (crate::WeightDtype::Q6K, _) => out.copy_from_slice(&blk[208..210]),
        (crate::WeightDtype::Q8_0, 0) => out.copy_from_slice(&blk[2..34]),
        (crate::WeightDtype::Q4_0, 0) => nibbles(&blk[2..18], out),
        (crate::WeightDtype::Q4_1, 0) => nibbles(&blk[4..20], out),
        (crate::WeightDtype::Q4_1, 2) => out.copy_from_slice(&blk[2..4]),
        (_, _) => out.copy_from_slice(&blk[0..2]), // the f16 scale d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A weight repacked on three worker threads: every byte lands where the one-thread repack
    /// puts it (Q6_K's four parts, Q4_K, and rows stored as they are).
    #[test]
    fn parallel_repack_equals_one_thread() {
        for (dtype, block) in
            [(crate::WeightDtype::Q6K, 210), (crate::WeightDtype::Q4K, 144), (crate::WeightDtype::Bf16, 2)]
        {
            let (rows, row_len): (usize, usize) = (300, block * 256);
            let data: Vec<u8> = (0..rows * row_len).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
            let row = |r: usize| &data[r * row_len..(r + 1) * row_len];
            let lay = layout(dtype, data.len());
            let mut one = vec![0u8; lay.len];
            repack_rows(&lay, dtype, row_len, 0..rows, &row, &mut |at, b| one[at..at + b.len()].copy_from_slice(b));
            let mut many = vec![0xAAu8; lay.len];
            let mut writes = 0;
            let work = |range, emit: Emit| repack_rows(&lay, dtype, row_len, range, &row, emit);
            fan_out(rows, 3, &work, &mut |at, b| {
                many[at..at + b.len()].copy_from_slice(b);
                writes += 1;
            });
            assert!(one == many, "{dtype:?}");
            assert!(writes >= 3, "{dtype:?}");
        }
    }

    /// The repacked bytes and word offsets `d_off`, `m_off` of `data` (what `repack_into` writes
    /// into a mapped buffer, gathered in a Vec).
    fn repack_blocks(dtype: crate::WeightDtype, data: &[u8]) -> (Vec<u8>, u32, u32) {
        let (len, d_off, m_off) = repacked_len(dtype, data.len());
        let mut out = vec![0u8; len];
        repack_into(dtype, 1, &|_| data, &mut |at, bytes| out[at..at + bytes.len()].copy_from_slice(bytes));
        (out, d_off, m_off)
    }

    /// The repacked layouts defined element by element (the form `repack_blocks` documents): the
    /// reference its byte loops are tested against.
    fn repack_by_element(dtype: crate::WeightDtype, data: &[u8]) -> (Vec<u8>, u32, u32) {
        let pad4 = |v: &mut Vec<u8>| v.resize(v.len().div_ceil(4) * 4, 0);
        let nibbles = |el: &dyn Fn(usize) -> u8, n: usize, out: &mut Vec<u8>| {
            out.extend((0..n / 2).map(|b| el(2 * b) | (el(2 * b + 1) << 4)));
        };
        match dtype {
            crate::WeightDtype::Q4K => {
                let mut out = Vec::with_capacity(data.len());
                for blk in data.chunks_exact(144) {
                    let qs = &blk[16..144];
                    let el = |e: usize| {
                        let b = qs[32 * (e / 64) + e % 32];
                        if e % 64 < 32 {
                            b & 15
                        } else {
                            b >> 4
                        }
                    };
                    nibbles(&el, 256, &mut out);
                }
                let d_off = (out.len() / 4) as u32;
                for blk in data.chunks_exact(144) {
                    out.extend_from_slice(&blk[0..16]);
                }
                return (out, d_off, 0);
            }
            crate::WeightDtype::Q6K => {
                let blocks: Vec<&[u8]> = data.chunks_exact(210).collect();
                // the 6-bit value of element e (0..256) of a super-block, as dequantize_row_q6_K reads it
                let q6 = |blk: &[u8], e: usize| -> u8 {
                    let (n, i) = (e / 128, e % 128);
                    let (g, l) = (i / 32, i % 32);
                    let ql = blk[64 * n + l + 32 * (g % 2)];
                    let lo = if g < 2 { ql & 15 } else { ql >> 4 };
                    let hi = (blk[128 + 32 * n + l] >> (2 * g)) & 3;
                    lo | (hi << 4)
                };
                let mut out = Vec::with_capacity(data.len());
                for blk in &blocks {
                    nibbles(&|e| q6(blk, e) & 15, 256, &mut out);
                }
                for blk in &blocks {
                    out.extend(
                        (0..64).map(|w| (0..4).fold(0u8, |acc, j| acc | ((q6(blk, 4 * w + j) >> 4) << (2 * j)))),
                    );
                }
                let m_off = (out.len() / 4) as u32;
                for blk in &blocks {
                    out.extend_from_slice(&blk[192..208]);
                }
                let d_off = (out.len() / 4) as u32;
                for blk in &blocks {
                    out.extend_from_slice(&blk[208..210]);
                }
                pad4(&mut out);
                return (out, d_off, m_off);
            }
            _ => {}
        }
        let (bb, quant_bytes) = match dtype {
            crate::WeightDtype::Q8_0 => (34, 32),
            crate::WeightDtype::Q4_0 => (18, 16),
            _ => (20, 16),
        };
        let blocks = data.len() / bb;
        let mut quants = Vec::with_capacity(blocks * quant_bytes);
        let mut d = Vec::with_capacity(blocks * 2);
        let mut m = Vec::new();
        for blk in data.chunks_exact(bb) {
            d.extend_from_slice(&blk[0..2]);
            match dtype {
                crate::WeightDtype::Q8_0 => quants.extend_from_slice(&blk[2..34]),
                _ => {
                    let qs = if dtype == crate::WeightDtype::Q4_1 {
                        m.extend_from_slice(&blk[2..4]);
                        &blk[4..20]
                    } else {
                        &blk[2..18]
                    };
                    // element j is the low nibble of qs[j], element j + 16 the high nibble
                    let el = |e: usize| if e < 16 { qs[e] & 15 } else { qs[e - 16] >> 4 };
                    quants.extend((0..16).map(|b| el(2 * b) | (el(2 * b + 1) << 4)));
                }
            }
        }
        let pad4 = |v: &mut Vec<u8>| v.resize(v.len().div_ceil(4) * 4, 0);
        let mut out = quants;
        pad4(&mut out);
        let d_off = (out.len() / 4) as u32;
        out.extend_from_slice(&d);
        pad4(&mut out);
        let m_off = (out.len() / 4) as u32;
        out.extend_from_slice(&m);
        (out, d_off, m_off)
    }

    /// `repack_blocks` writes what the element-by-element definition says, for every repacked
    /// type, on random blocks.
    #[test]
    fn repack_matches_its_definition() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let bytes: Vec<u8> = (0..210 * 144 * 34 * 3)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        for dtype in [
            crate::WeightDtype::Q8_0,
            crate::WeightDtype::Q4_0,
            crate::WeightDtype::Q4_1,
            crate::WeightDtype::Q4K,
            crate::WeightDtype::Q6K,
        ] {
            // odd block counts (unaligned parts), one block, and several write batches
            for blocks in [1, 3, 4097, 9001] {
                let data = &bytes[..blocks * dtype.row_bytes(dtype.block_len())];
                assert_eq!(repack_blocks(dtype, data), repack_by_element(dtype, data), "{dtype:?} x {blocks}");
            }
        }
        // stored as they are, an i-quant's grid after them at a word
        for (ty, blocks) in [(GgmlType::Q5K, 3), (GgmlType::Iq2Xxs, 3)] {
            let data = &bytes[..blocks * ty.block().1];
            let grid = grid_bytes(ty);
            let (out, d_off, _) = repack_blocks(crate::WeightDtype::Stored(ty), data);
            assert_eq!(&out[..data.len()], data);
            if grid.is_empty() {
                assert_eq!((out.len(), d_off), (data.len(), 0));
            } else {
                assert_eq!(&out[d_off as usize * 4..], &grid[..]);
            }
        }
    }

    /// Our K-quant quantizers write blocks that dequantize close to the input.
    #[test]
    fn k_quant_round_trip() {
        let values: Vec<f32> =
            (0..1024).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i / 256) as f32)).collect();
        for (dtype, ty, tol) in
            [(crate::WeightDtype::Q4K, GgmlType::Q4K, 0.1), (crate::WeightDtype::Q6K, GgmlType::Q6K, 0.04)]
        {
            let bytes = quantize(dtype, &values);
            assert_eq!(bytes.len(), dtype.row_bytes(values.len()));
            let back = dequantize(ty, &bytes);
            for (i, (a, b)) in values.iter().zip(&back).enumerate() {
                let scale = 1.0 + (i / 256) as f32;
                assert!((a - b).abs() <= tol * scale, "{dtype:?} element {i}: {a} -> {b}");
            }
        }
    }

    /// Every block type against gguf-py's dequantizer (tests/data/quants.json: random blocks
    /// with sane scales, made by tests/golden/make_quant_fixtures.py).
    #[test]
    fn block_types_match_gguf_py() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/quants.json")).unwrap();
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        let types = [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4K, GgmlType::Q6K];
        for ty in types.iter().chain(STORED_TYPES) {
            let name = ty.name();
            let hex = j[name]["bytes"].as_str().unwrap_or_else(|| panic!("{name} missing from quants.json"));
            let bytes: Vec<u8> =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            let want: Vec<f32> =
                j[name]["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let got = dequantize(*ty, &bytes);
            assert_eq!(got.len(), want.len(), "{name}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{name} element {i}: {g} vs {w}");
            }
        }
    }
}
