// reduce256.wgsl — reductions over a 256-thread workgroup, prepended (after common.wgsl) to the
// kernels that reduce a token row with one workgroup: rms_norm.wgsl, quant_act.wgsl. Every thread
// calls them (uniform control flow) and gets the result; `red` is free again on return.

var<workgroup> red: array<f32, 256>;

fn wg_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
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
    for (var s = 128u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
