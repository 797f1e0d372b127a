// gather_rows.wgsl — out[j] = src[idx[j]]: rows of `words` 32-bit words picked by index (the
// rows whose logits a step computes: each sequence's last token), so a recorded graph serves
// every step with the same counts whatever rows they pick.
//   idx (R)           row indices into src (checked < the source's rows on the host)
//   src (T, words)    any 32-bit words (packed activations)
//   out (R, words)
// One thread per output word.

struct Params {
    words: u32, // words per row
    rows: u32,  // R
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= p.rows * p.words {
        return;
    }
    out[i] = src[idx[i / p.words] * p.words + i % p.words];
}
