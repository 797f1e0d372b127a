// i8_codes.wgsl — int8 values (4 per word, element 4i + j in byte j of word i) rewritten as 16-bit
// floats of the same integers (exact: |q| <= 128 needs 8 bits of mantissa), two per word: W8A8's
// activation codes (quant_act.wgsl's output) and weight codes for the f16 GEMMs, whose products
// of codes are exact in f32 and whose f32 sums are the int8 GEMM's i32 sums while they stay below
// 2^24 (W8A8 prompts on matrix cores; the scales come after, in matmul_split_sum.wgsl).
//   src (words)      int8 x4 words from src_off
//   dst (2 words)    from dst_off: activation pairs (MODE 0: pack_act, f16 or bf16 as the
//                    context stores them) or f16 weight pairs (MODE 1)
// One thread per source word; grid folded into y.

struct Params {
    words: u32,
    src_off: u32,
    dst_off: u32,
    _pad: u32,
}

override MODE: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn pack_codes(v: vec2<f32>) -> u32 {
    if MODE == 1u {
        return pack2x16float(v);
    }
    return pack_act(v);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= p.words {
        return;
    }
    let w = src[p.src_off + i];
    let s = vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u), bitcast<i32>(w));
    let b = vec4<f32>(s >> vec4<u32>(24u));
    dst[p.dst_off + 2u * i] = pack_codes(b.xy);
    dst[p.dst_off + 2u * i + 1u] = pack_codes(b.zw);
}
