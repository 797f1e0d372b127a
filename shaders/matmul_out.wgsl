// matmul_out.wgsl — how every matmul kernel (float, int8-activation and W8A8) writes its result:
// OUT_MODE, store2 and store4. The kernel declares `out` (array<u32>, read_write).

override OUT_MODE: u32 = 0u; // 0: packed activations, 1: f32, 2: f32 accumulated (out += result)

// Writes results v.x to output element o (= t * out_stride + out_offset + column) and, if `both`,
// v.y to o + 1: packed activations take the pair as one word (o even), f32 outputs each value,
// added to what is there for OUT_MODE 2.
fn store2(o: u32, v: vec2<f32>, both: bool) {
    if OUT_MODE == 0u {
        out[o / 2u] = pack_act(v);
        return;
    }
    out[o] = bitcast<u32>(select(0.0, bitcast<f32>(out[o]), OUT_MODE == 2u) + v.x);
    if both {
        out[o + 1u] = bitcast<u32>(select(0.0, bitcast<f32>(out[o + 1u]), OUT_MODE == 2u) + v.y);
    }
}

// Writes the results v of columns col..col + 3 (col < n, col even) from output element o on, those
// before column n (N is even for packed outputs, so a pair is wholly inside or outside).
fn store4(o: u32, v: vec4<f32>, col: u32, n: u32) {
    store2(o, v.xy, col + 1u < n);
    if col + 2u < n {
        store2(o + 2u, v.zw, col + 3u < n);
    }
}
