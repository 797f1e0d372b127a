// embedding.wgsl — out[t] = W[ids[t]] for the ids that fall in this chunk of rows.
//   ids (T)             token ids (checked < vocab on the host)
//   W   (R, C)          rows [row0, row0 + R) of the embedding table, in W_DTYPE (weights.wgsl)
//   out (T, C)          f32: the residual stream
// One thread per output word; a table split into chunks runs once per chunk.

struct Params {
    c: u32,     // row length (elements, even)
    tokens: u32,
    row0: u32,  // first row held by this chunk
    rows: u32,  // rows in this chunk
    d_off: u32, // block formats: word offset of the scales in W
    m_off: u32, // block formats: word offset of the minimums in W
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
// @binding(2) w: the table chunk, declared in weights.wgsl
@group(0) @binding(3) var<storage, read_write> out: array<vec2<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let pairs = p.c / 2u;
    if i >= p.tokens * pairs {
        return;
    }
    w_d_off = p.d_off;
    w_m_off = p.m_off;
    let id = ids[i / pairs];
    if id < p.row0 || id >= p.row0 + p.rows {
        return;
    }
    out[i] = load_w2((id - p.row0) * p.c + 2u * (i % pairs));
}
