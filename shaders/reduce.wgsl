// reduce.wgsl — reductions over a workgroup of WG threads (a power of two; each kernel that takes
// this file declares `const WG`), prepended after common.wgsl to the kernels that reduce with one
// workgroup: rms_norm.wgsl, quant_act.wgsl (256 threads per token row), attention.wgsl (64 per
// key tile). Every thread calls them (uniform control flow) and gets the result; `red` is free
// again on return.

var<workgroup> red: array<f32, WG>;

fn wg_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn wg_max(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
