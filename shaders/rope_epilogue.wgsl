// rope_epilogue.wgsl — RoPE and the KV-cache append as the epilogue of a decode q/k/v GEMV
// (matmul_gemv_norm_sg.wgsl, matmul_gemv_q8.wgsl with ROPE), prepended to those kernels: the
// output pair (col, col + 1) of the q/k/v projection, whose q/k rows hold each rotary pair side
// by side, is not written to `out` but becomes the attention input — rotated by the RoPE table at
// the token's position into q (`out`, (T, H D)) or into the K cache at the token's (slot,
// position); v pairs go to the V cache as they are (what rope.wgsl does after a plain GEMV).
// The kernel's Params has q_cols (H D), kv_cols (Hkv D), head_dim (D) and ctx (cache positions
// per slot); `out` is its packed output.

@group(0) @binding(5) var<storage, read> tok: array<vec2<u32>>;        // ROPE: (slot, position)
@group(0) @binding(6) var<storage, read> freqs: array<vec2<f32>>;      // ROPE: (P, D/2) (cos, sin)
@group(0) @binding(7) var<storage, read_write> k_cache: array<u32>;    // ROPE: (S, ctx, Hkv, D)
@group(0) @binding(8) var<storage, read_write> v_cache: array<u32>;    // ROPE: (S, ctx, Hkv, D)

// ROPE: the attention input of q/k/v output columns (col, col + 1) = y of token t.
fn rope_out(t: u32, col: u32, y: vec2<f32>) {
    let slot = tok[t].x;
    let pos = tok[t].y;
    let cache = (slot * p.ctx + pos) * p.kv_cols; // element offset of the token's cache row
    if col >= p.q_cols + p.kv_cols {
        v_cache[(cache + col - p.q_cols - p.kv_cols) / 2u] = pack_act(y);
        return;
    }
    let cs = freqs[pos * (p.head_dim / 2u) + (col % p.head_dim) / 2u];
    let v = vec2<f32>(y.x * cs.x - y.y * cs.y, y.x * cs.y + y.y * cs.x);
    if col < p.q_cols {
        out[(t * p.q_cols + col) / 2u] = pack_act(v);
    } else {
        k_cache[(cache + col - p.q_cols) / 2u] = pack_act(v);
    }
}
