// i8_codes.wgsl — W8A8 prompts on the f16 GEMMs: the activations' int8 codes (quant_act.wgsl's
// output, 4 per word, element 4i + j in byte j of word i) rewritten as 16-bit activations of the
// same integers (exact in f16 and bf16: |q| <= 128), for the GEMM that multiplies them with the
// weight's codes (weights.wgsl's W_DTYPE 6); products of codes are exact in f32 and their f32
// sums are the int8 GEMM's i32 sums while they stay below 2^24 (the GEMM's epilogue, or the split
// sum, applies the scales). (The GEMM staging these int8 words itself was slower.)
//   src (words)      int8 x4 words
//   dst (2 words)    pack_act pairs (f16 or bf16 as the context stores activations)
// One thread per source word; grid folded into y.

struct Params {
    words: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= p.words {
        return;
    }
    let w = src[i];
    let s = vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u), bitcast<i32>(w));
    let b = vec4<f32>(s >> vec4<u32>(24u));
    dst[2u * i] = pack_act(b.xy);
    dst[2u * i + 1u] = pack_act(b.zw);
}
