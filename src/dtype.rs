//! Element types of weights (as stored in the checkpoint) and of activations (as stored on the GPU).

use crate::error::{Error, Result};
use crate::model::gguf::GgmlType;

/// How a weight tensor's elements are stored, byte for byte as in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightDtype {
    /// IEEE f32.
    F32,
    /// IEEE f16.
    F16,
    /// bfloat16.
    Bf16,
    /// GGUF Q8_0: blocks of 32 int8 with an f16 scale (34 bytes).
    Q8_0,
    /// GGUF Q4_0: blocks of 32 4-bit values `(q - 8) * d` (18 bytes).
    Q4_0,
    /// GGUF Q4_1: blocks of 32 4-bit values `q * d + m` (20 bytes).
    Q4_1,
    /// int8 with a per-row scale (compressed-tensors W8A8; only the W8A8 kernel reads it).
    I8,
    /// GGUF Q4_K: super-blocks of 256 4-bit values `d*sc*q - dmin*m`, 6-bit sub-block scales and
    /// minimums (144 bytes).
    Q4K,
    /// GGUF Q6_K: super-blocks of 256 6-bit values `d*sc*(q - 32)`, int8 scales per 16 (210 bytes).
    Q6K,
    /// Any other GGUF block type (Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, IQ4_NL, IQ4_XS ...), kept on the GPU
    /// exactly as stored (no repacking) and decoded by its own function in weights.wgsl.
    Stored(GgmlType),
}

impl WeightDtype {
    /// Plain floating point elements (f32, f16, bf16).
    pub fn is_float(self) -> bool {
        matches!(self, WeightDtype::F32 | WeightDtype::F16 | WeightDtype::Bf16)
    }

    /// GGUF block formats (kept in their blocks on the GPU).
    pub fn is_block(self) -> bool {
        matches!(
            self,
            WeightDtype::Q8_0
                | WeightDtype::Q4_0
                | WeightDtype::Q4_1
                | WeightDtype::Q4K
                | WeightDtype::Q6K
                | WeightDtype::Stored(_)
        )
    }

    /// Elements per block of a block format (1 otherwise): columns must be a multiple of it.
    pub fn block_len(self) -> usize {
        match self {
            WeightDtype::Q8_0 | WeightDtype::Q4_0 | WeightDtype::Q4_1 => 32,
            WeightDtype::Q4K | WeightDtype::Q6K => 256,
            WeightDtype::Stored(t) => t.block().0,
            _ => 1,
        }
    }

    /// Bytes of one row of `cols` elements in the file's layout (`cols` a multiple of
    /// [`WeightDtype::block_len`]).
    pub fn row_bytes(self, cols: usize) -> usize {
        match self {
            WeightDtype::F32 => cols * 4,
            WeightDtype::F16 | WeightDtype::Bf16 => cols * 2,
            WeightDtype::Q8_0 => cols / 32 * 34,
            WeightDtype::Q4_0 => cols / 32 * 18,
            WeightDtype::Q4_1 => cols / 32 * 20,
            WeightDtype::I8 => cols,
            WeightDtype::Q4K => cols / 256 * 144,
            WeightDtype::Q6K => cols / 256 * 210,
            WeightDtype::Stored(t) => cols / t.block().0 * t.block().1,
        }
    }

    /// The value of the WGSL override constant `W_DTYPE` (see shaders/weights.wgsl).
    pub fn wgsl_id(self) -> f64 {
        match self {
            WeightDtype::F32 => 0.0,
            WeightDtype::F16 => 1.0,
            WeightDtype::Bf16 => 2.0,
            WeightDtype::Q8_0 => 3.0,
            WeightDtype::Q4_0 => 4.0,
            WeightDtype::Q4_1 => 5.0,
            WeightDtype::I8 => 6.0,
            WeightDtype::Q4K => 7.0,
            WeightDtype::Q6K => 8.0,
            WeightDtype::Stored(t) => 100.0 + t.id() as f64,
        }
    }

    /// Name as safetensors (or GGUF, for block formats) writes it.
    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "F32",
            WeightDtype::F16 => "F16",
            WeightDtype::Bf16 => "BF16",
            WeightDtype::Q8_0 => "Q8_0",
            WeightDtype::Q4_0 => "Q4_0",
            WeightDtype::Q4_1 => "Q4_1",
            WeightDtype::I8 => "I8",
            WeightDtype::Q4K => "Q4_K",
            WeightDtype::Q6K => "Q6_K",
            WeightDtype::Stored(t) => t.name(),
        }
    }

    /// Parses a safetensors dtype name; `what` names the tensor for the error.
    pub fn from_name(name: &str, what: &str) -> Result<Self> {
        match name {
            "F32" => Ok(WeightDtype::F32),
            "F16" => Ok(WeightDtype::F16),
            "BF16" => Ok(WeightDtype::Bf16),
            "I8" => Ok(WeightDtype::I8),
            other => Err(Error::UnsupportedDtype { what: what.to_string(), dtype: other.to_string() }),
        }
    }

    /// Encodes f32 values into this dtype's little-endian bytes (tests and conversions); block
    /// formats Q8_0/Q4_0/Q4_1 quantize as ggml's reference quantizers do, K-quants with a plain
    /// absmax/min-max scale choice (`values.len()` a multiple of the block length). The
    /// [`WeightDtype::Stored`] types are only read by this engine: they encode to nothing.
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            WeightDtype::Stored(_) => vec![],
            WeightDtype::Q8_0 | WeightDtype::Q4_0 | WeightDtype::Q4_1 | WeightDtype::Q4K | WeightDtype::Q6K => {
                crate::model::gguf::quantize(self, values)
            }
            WeightDtype::I8 => values.iter().map(|&v| v.round().clamp(-128.0, 127.0) as i8 as u8).collect(),
            WeightDtype::F32 => bytemuck::cast_slice(values).to_vec(),
            WeightDtype::F16 => values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
            WeightDtype::Bf16 => values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
        }
    }

    /// Decodes this dtype's little-endian bytes (GGUF block layout for block formats) to f32.
    pub fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            WeightDtype::Q8_0
            | WeightDtype::Q4_0
            | WeightDtype::Q4_1
            | WeightDtype::Q4K
            | WeightDtype::Q6K
            | WeightDtype::Stored(_) => crate::model::gguf::dequantize_weight(self, bytes),
            WeightDtype::I8 => bytes.iter().map(|&b| b as i8 as f32).collect(),
            WeightDtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            WeightDtype::F16 => {
                bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
            }
            WeightDtype::Bf16 => {
                bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
            }
        }
    }
}

/// How activations and the KV cache are stored on the GPU: 16-bit values packed two per `u32`.
/// Arithmetic is always f32; only storage is 16-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActDtype {
    /// IEEE half (chosen where the adapter has `shader-f16`).
    F16,
    /// bfloat16 (the fallback, and a switch forces it anywhere).
    Bf16,
}

impl ActDtype {
    /// Rounds an f32 to this storage precision and back (what a GPU store then load does).
    pub fn round(self, v: f32) -> f32 {
        self.value(self.bits(v) as u16)
    }

    /// Packs f32 values (even count, or padded with a zero) into u32 words.
    pub fn pack(self, values: &[f32]) -> Vec<u32> {
        values
            .chunks(2)
            .map(|p| {
                let lo = self.bits(p[0]);
                let hi = p.get(1).map_or(0, |&v| self.bits(v));
                lo | (hi << 16)
            })
            .collect()
    }

    /// Unpacks `n` values from packed words.
    pub fn unpack(self, words: &[u32], n: usize) -> Vec<f32> {
        (0..n).map(|i| self.value(((words[i / 2] >> (16 * (i % 2))) & 0xffff) as u16)).collect()
    }

    fn value(self, bits: u16) -> f32 {
        match self {
            ActDtype::F16 => half::f16::from_bits(bits).to_f32(),
            ActDtype::Bf16 => half::bf16::from_bits(bits).to_f32(),
        }
    }

    fn bits(self, v: f32) -> u32 {
        match self {
            ActDtype::F16 => half::f16::from_f32(v.clamp(-65504.0, 65504.0)).to_bits() as u32,
            ActDtype::Bf16 => half::bf16::from_f32(v).to_bits() as u32,
        }
    }

    /// The value of the WGSL override constant `ACT_F16`.
    pub fn wgsl_is_f16(self) -> f64 {
        match self {
            ActDtype::F16 => 1.0,
            ActDtype::Bf16 => 0.0,
        }
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            ActDtype::F16 => "f16",
            ActDtype::Bf16 => "packed-bf16",
        }
    }
}
