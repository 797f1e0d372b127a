// argmax_finish.wgsl — each row's argmax from argmax.wgsl's per-chunk partials (first index on
// ties; 0 for a row with no finite number), so the id stays on the GPU — the next decode step can
// read it without a round trip through the host — and 4 bytes per row come back. A row that holds
// a NaN or an infinity anywhere gets the BAD bit in its id: the host turns it into an error
// instead of a token (a silent wrong answer).
//   part (T, chunks) of (index | BAD, f32 bits); index NONE marks a chunk with no finite number
//   ids  (T) u32: index | BAD
// One 64-thread workgroup per row (grid y = row, as in argmax.wgsl).

struct Params {
    v: u32,
    t: u32,
    chunks: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;

const WG: u32 = 64u;
const NONE: u32 = 0x7fffffffu;
const BAD: u32 = 0x80000000u;
var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;
var<workgroup> bad: atomic<u32>;

// Whether (ov, oi) beats (bv, bi): a number beats none, a larger one wins, the first index on ties.
fn beats(ov: f32, oi: u32, bv: f32, bi: u32) -> bool {
    return oi != NONE && (bi == NONE || ov > bv || (ov == bv && oi < bi));
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let row = wid.y;
    if lid == 0u {
        atomicStore(&bad, 0u);
    }
    workgroupBarrier();
    var bv = 0.0;
    var bi = NONE;
    for (var c = lid; c < p.chunks; c += WG) {
        let e = part[row * p.chunks + c];
        atomicOr(&bad, e.x & BAD);
        let oi = e.x & ~BAD;
        let ov = bitcast<f32>(e.y);
        if beats(ov, oi, bv, bi) {
            bv = ov;
            bi = oi;
        }
    }
    best_v[lid] = bv;
    best_i[lid] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s && beats(best_v[lid + s], best_i[lid + s], best_v[lid], best_i[lid]) {
            best_v[lid] = best_v[lid + s];
            best_i[lid] = best_i[lid + s];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        ids[row] = select(best_i[0], 0u, best_i[0] == NONE) | atomicLoad(&bad);
    }
}
