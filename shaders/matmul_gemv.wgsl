// matmul_gemv.wgsl — out = x @ W^T for few tokens (decode): one weight row per 64 lanes.
//
//   x   (T, K)        packed activations, K even
//   W   (N, K)        this chunk's rows of the weight, checkpoint dtype W_DTYPE
//   out (T, N_total)  packed activations, or f32 when OUT_F32 (logits); this chunk writes
//                     columns [out_offset, out_offset + N)
// Workgroup = 4 rows x 64 lanes; lanes stride over K, then reduce in workgroup memory.
// With VEC (K % 8 == 0) every step loads 8 activations and 8 weights with 16-byte loads;
// otherwise pairs. Grid: x/y = row groups (folded), z = token.

override W_DTYPE: u32 = 2u;
override OUT_F32: bool = false;
override VEC: bool = true;

struct Params {
    k: u32,          // inner dimension (elements, even)
    n: u32,          // rows of W in this chunk
    out_stride: u32, // columns of out (N_total)
    out_offset: u32, // first column written by this chunk (even)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;   // (T, K/2) words
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;   // (N, K) in W_DTYPE
@group(0) @binding(3) var<storage, read_write> out: array<u32>; // (T, N_total/2) or (T, N_total) f32

const LANES: u32 = 64u;
const ROWS: u32 = 4u;

var<workgroup> partial: array<array<f32, LANES>, ROWS>;

fn w_word(i: u32) -> u32 {
    return w[i / 4u][i % 4u];
}

// Two consecutive weight elements starting at even element index e.
fn load_w2(e: u32) -> vec2<f32> {
    if W_DTYPE == 0u {
        return vec2<f32>(bitcast<f32>(w_word(e)), bitcast<f32>(w_word(e + 1u)));
    }
    return unpack_w16(w_word(e / 2u), W_DTYPE);
}

// Dot of 8 activations (one vec4 of packed words) with the 8 weights from element e (e % 8 == 0).
fn dot8(xv: vec4<u32>, e: u32) -> f32 {
    if W_DTYPE == 0u {
        let a = w[e / 4u];
        let b = w[e / 4u + 1u];
        return dot(unpack_act(xv.x), bitcast<vec2<f32>>(a.xy)) + dot(unpack_act(xv.y), bitcast<vec2<f32>>(a.zw))
             + dot(unpack_act(xv.z), bitcast<vec2<f32>>(b.xy)) + dot(unpack_act(xv.w), bitcast<vec2<f32>>(b.zw));
    }
    let wv = w[e / 8u];
    return dot(unpack_act(xv.x), unpack_w16(wv.x, W_DTYPE)) + dot(unpack_act(xv.y), unpack_w16(wv.y, W_DTYPE))
         + dot(unpack_act(xv.z), unpack_w16(wv.z, W_DTYPE)) + dot(unpack_act(xv.w), unpack_w16(wv.w, W_DTYPE));
}

@compute @workgroup_size(64, 4)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    if group * ROWS >= p.n {
        return;
    }
    let t = wid.z;
    let lane = lid.x;
    let r = lid.y;
    let row = group * ROWS + r;
    var acc = 0.0;
    if row < p.n {
        let wbase = row * p.k;
        if VEC {
            let groups = p.k / 8u;
            for (var i = lane; i < groups; i += LANES) {
                acc += dot8(x[t * groups + i], wbase + 8u * i);
            }
        } else {
            let pairs = p.k / 2u;
            for (var i = lane; i < pairs; i += LANES) {
                let xw = t * pairs + i;
                acc += dot(unpack_act(x[xw / 4u][xw % 4u]), load_w2(wbase + 2u * i));
            }
        }
    }
    partial[r][lane] = acc;
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if lane < s {
            partial[r][lane] += partial[r][lane + s];
        }
        workgroupBarrier();
    }
    if lane != 0u || row >= p.n {
        return;
    }
    let col = t * p.out_stride + p.out_offset + row;
    if OUT_F32 {
        out[col] = bitcast<u32>(partial[r][0]);
    } else if r % 2u == 0u {
        out[col / 2u] = pack_act(vec2<f32>(partial[r][0], partial[r + 1u][0]));
    }
}
