// argmax.wgsl — the largest logit of each chunk of CHUNK logits of each row (first on ties; NaN
// and infinities never win), so a 128K vocabulary is scanned by many workgroups at once;
// argmax_finish.wgsl reduces the few partials per row.
//   logits (T, V) f32
//   out    (T, chunks) of (index | BAD if the chunk holds a NaN or infinity, f32 bits); index
//          NONE marks a chunk with no finite number
// Grid: x = chunk, y = row (folded rows are not needed: rows <= 65535).

struct Params {
    v: u32,
    t: u32,
    chunks: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec2<u32>>;

const WG: u32 = 256u;
const CHUNK: u32 = 4096u;
const NONE: u32 = 0x7fffffffu;
const BAD: u32 = 0x80000000u;
var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;
var<workgroup> bad: atomic<u32>;

// Whether x is NaN or +-infinity (by its exponent bits: no fast-math assumption can fold it away).
fn non_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let chunk = wid.x;
    let row = wid.y;
    let begin = chunk * CHUNK;
    let end = min(begin + CHUNK, p.v);
    if lid == 0u {
        atomicStore(&bad, 0u);
    }
    var bv = -3.4e38;
    var bi = NONE;
    var seen_bad = false;
    for (var i = begin + lid; i < end; i += WG) {
        let x = logits[row * p.v + i];
        if non_finite(x) {
            seen_bad = true;
        } else if x > bv || bi == NONE {
            bv = x;
            bi = i;
        }
    }
    best_v[lid] = bv;
    best_i[lid] = bi;
    workgroupBarrier();
    if seen_bad {
        atomicOr(&bad, BAD);
    }
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            let ov = best_v[lid + s];
            let oi = best_i[lid + s];
            if oi != NONE && (best_i[lid] == NONE || ov > best_v[lid] || (ov == best_v[lid] && oi < best_i[lid])) {
                best_v[lid] = ov;
                best_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    if lid == 0u {
        out[row * p.chunks + chunk] = vec2<u32>(best_i[0] | atomicLoad(&bad), bitcast<u32>(best_v[0]));
    }
}
