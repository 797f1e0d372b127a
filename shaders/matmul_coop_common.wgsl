// matmul_coop_common.wgsl — what the matrix-core matmuls (matmul_gemm_coop, matmul_skinny_coop)
// share beyond matmul_common.wgsl: converting stored pairs to f16, and decoding a weight job (its
// words loaded by weights.wgsl's stage_raw) for the kernel's staged tile. Prepended after
// matmul_common.wgsl.

// Two stored values -> f16: f16 as is; bf16 exactly in f16's range (rounded to nearest even
// below 2^-14, clamped to +-65504 above; NaN stays NaN).
fn to_f16(v: u32, bf16: bool) -> vec2<f16> {
    if !bf16 {
        return vec2<f16>(unpack2x16float(v));
    }
    let f = bf16x2_to_f32(v);
    return vec2<f16>(select(clamp(f, vec2<f32>(-65504.0), vec2<f32>(65504.0)), f, f != f));
}

// Four stored values (two words) -> f16, for one 8-byte store into a staged tile.
fn to_f16x4(a: u32, b: u32, bf16: bool) -> vec4<f16> {
    return vec4<f16>(to_f16(a, bf16), to_f16(b, bf16));
}

// Job r = stage_raw(e) (STAGE_JOB weights of one column from element e) as f16, 4 weights per
// element (the first STAGE_JOB / 4 used): decoded 8 at a time, the scales once (stage_scale).
// (It returns them rather than storing into the kernel's tile: naga cannot specialize a prelude
// function that uses a workgroup array sized by the kernel's overrides.)
fn dec_job(e: u32, r: RawJob) -> array<vec4<f16>, 8> {
    var out: array<vec4<f16>, 8>;
    if W_DTYPE == 6u { // W8A8 codes: exact in f16
        for (var j = 0u; j < 4u; j++) {
            out[j] = vec4<f16>(i8x4(r.q[j]));
        }
        return out;
    }
    let sc = stage_scale(r, e);
    for (var j = 0u; j < STAGE_JOB / 8u; j++) {
        let v = stage_dec(r, sc, e, j);
        out[2u * j] = to_f16x4(v.x, v.y, W_DTYPE == 2u);
        out[2u * j + 1u] = to_f16x4(v.z, v.w, W_DTYPE == 2u);
    }
    return out;
}
