// attention_coop.wgsl — causal GQA attention of a prompt on matrix cores (cooperative matrices,
// 16x16x16 f16 multiply-adds into f32), for one sequence whose tokens sit at ascending positions
// of one cache slot (a prompt chunk; the session records this kernel only for such forwards).
//   q      (T, H, D)        f16, RoPE applied
//   tok    (T)              (slot, position) per token
//   kcache (S, ctx, Hkv, D) f16, RoPE applied;  vcache likewise
//   out    (T, H, D)        packed f16: softmax(q k^T * scale) v
// Workgroup = two subgroups of 32 = 16 query tokens of one head, subgroup s taking key tiles s,
// s + 2, ... with its own softmax state, the two combined as the output is written (H200,
// 2026-12-04, attention of the pp512 batch: 1B bf16 2.06 -> 1.86 ms, 8B 5.67 -> 5.21 ms against
// one subgroup; 8B pp512 earlier: one subgroup 6.8 ms vs 8.7 with 4 subgroups = 64 tokens).
// Grid x = heads, y = token tiles, the last (most keys) first so that the longest workgroups
// start first (pp512, both changes: 1B bf16 46,624 -> 48,163 / 49,615 tok/s, 8B bf16 10,358 ->
// 10,616 / 10,658). One pass over
// the keys in tiles of 64, an online softmax whose reference maximum m moves lazily: P = exp(S -
// m) is formed against each row's current m, which is raised only where a tile's maximum passes
// m + TAU (so P <= e^TAU, well inside f16), and only then do the O accumulators — which cannot be
// scaled element-wise — go through workgroup memory to be rescaled by exp(m_old - m_new). Q
// fragments stay in registers; K and V fragments are read from the cache directly (rows past the
// cache end read the padding the session allocates after it). The caches and the S and P tiles are
// declared as arrays of vec4, so that the matrix loads and stores see 8- or 16-byte elements and
// the softmax reads and writes 4 values at a time (H200, 2026-12-04, against scalar arrays: the
// attention of the pp512 batch 1B bf16 1.509 -> 1.319 ms, 8B 4.25 -> 3.82; 1B pp2048 37,370 ->
// 39,962 tok/s).
// D = HEAD_DIM, a multiple of 16 up to 128 (ND = D / 16 fragment columns).

override HEAD_DIM: u32 = 128u;
override ND: u32 = HEAD_DIM / 16u;
const KSPLIT: u32 = 2u; // subgroups per workgroup, each taking every other key tile
const_assert KSPLIT == 2u; // emit combines exactly two subgroups' slices (and ml's halves)

struct Params {
    heads: u32,
    kv_heads: u32,
    _pad: u32,
    tokens: u32,
    ctx: u32,
    scale: f32,
    splits: u32, // unused (1)
    chunk: u32,  // unused
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f16>;
@group(0) @binding(2) var<storage, read> tok: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> kc: array<vec4<f16>>; // (vec4: the matrix loads see 8-byte alignment)
@group(0) @binding(4) var<storage, read> vc: array<vec4<f16>>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

const BQ: u32 = 16u;   // query tokens per workgroup
const BKEY: u32 = 64u; // keys per tile
const PL: u32 = 72u;   // row stride of the P tile (f16), padded
const NEG: f32 = -3.0e38;
const TAU: f32 = 8.0;  // how far a row's scores may pass its reference maximum: P <= e^8

// (each a multiple of 16 bytes: a driver may place them in any order, and the matrix loads and
// stores need 16-byte aligned tiles — a 4-byte flag of its own broke them on the H200)
var<workgroup> sw: array<vec4<f32>, KSPLIT * 16u * BKEY / 4u>; // per subgroup: S (16 x 64), then O slices
var<workgroup> pw: array<vec4<f16>, KSPLIT * 16u * PL / 4u>; // per subgroup: P (16 x 64) as f16
var<workgroup> ow: array<f32, 516u>;       // per subgroup an O slice being rescaled (S is still in
                                           // use); [512 + s]: whether some row's maximum moves
                                           // this tile in subgroup s, [514]: in either
var<workgroup> ml: array<f32, 64u>;        // per subgroup and row: m, l

// S (16 rows x 64 keys from key0) = Q K^T, stored row-major in `sw` from `so`.
fn scores(q0: coop_mat16x16<f16, A>, q1: coop_mat16x16<f16, A>, q2: coop_mat16x16<f16, A>,
          q3: coop_mat16x16<f16, A>, q4: coop_mat16x16<f16, A>, q5: coop_mat16x16<f16, A>,
          q6: coop_mat16x16<f16, A>, q7: coop_mat16x16<f16, A>, kbase: u32, key0: u32, so: u32) {
    let ks = p.kv_heads * HEAD_DIM; // f16 between cache positions
    for (var j = 0u; j < 4u; j++) {
        var s: coop_mat16x16<f32, C>;
        let kb = kbase + (key0 + 16u * j) * ks;
        s = coopMultiplyAdd(q0, coopLoad<coop_mat16x16<f16, B>>(&kc[kb / 4u], ks / 4u), s);
        if ND > 1u { let o = kb + 16u; s = coopMultiplyAdd(q1, coopLoad<coop_mat16x16<f16, B>>(&kc[o / 4u], ks / 4u), s); }
        if ND > 2u { let o = kb + 32u; s = coopMultiplyAdd(q2, coopLoad<coop_mat16x16<f16, B>>(&kc[o / 4u], ks / 4u), s); }
        if ND > 3u { let o = kb + 48u; s = coopMultiplyAdd(q3, coopLoad<coop_mat16x16<f16, B>>(&kc[o / 4u], ks / 4u), s); }
        if ND > 4u { let o = kb + 64u; s = coopMultiplyAdd(q4, coopLoad<coop_mat16x16<f16, B>>(&kc[o / 4u], ks / 4u), s); }
        if ND > 5u { let o = kb + 80u; s = coopMultiplyAdd(q5, coopLoad<coop_mat16x16<f16, B>>(&kc[o / 4u], ks / 4u), s); }
        if ND > 6u { let o = kb + 96u; s = coopMultiplyAdd(q6, coopLoad<coop_mat16x16<f16, B>>(&kc[o / 4u], ks / 4u), s); }
        if ND > 7u { let o = kb + 112u; s = coopMultiplyAdd(q7, coopLoad<coop_mat16x16<f16, B>>(&kc[o / 4u], ks / 4u), s); }
        coopStoreT(s, &sw[(so + 16u * j) / 4u], BKEY / 4u);
    }
}

// O slice j (16 x 16) += P (16 x 64 keys from key0, in `pw` from `pbase`) V[key0.., 16 j..].
fn pv(o: coop_mat16x16<f32, C>, vbase: u32, key0: u32, j: u32,
      pbase: u32) -> coop_mat16x16<f32, C> {
    let ks = p.kv_heads * HEAD_DIM;
    var acc = o;
    for (var kk = 0u; kk < 4u; kk++) {
        let po = pbase + 16u * kk;
        let vo = vbase + (key0 + 16u * kk) * ks + 16u * j;
        acc = coopMultiplyAdd(coopLoadT<coop_mat16x16<f16, A>>(&pw[po / 4u], PL / 4u),
            coopLoadT<coop_mat16x16<f16, B>>(&vc[vo / 4u], ks / 4u), acc);
    }
    return acc;
}

// O slice (16 x 16) with this lane's row scaled by alpha (lane: row lane / 2, 8 columns).
fn rescale(o: coop_mat16x16<f32, C>, lane: u32, alpha: f32, ob: u32) -> coop_mat16x16<f32, C> {
    coopStoreT(o, &ow[ob], 16u);
    workgroupBarrier();
    let b = ob + 16u * (lane / 2u) + 8u * (lane % 2u);
    for (var i = 0u; i < 8u; i++) {
        ow[b + i] *= alpha;
    }
    workgroupBarrier();
    let scaled = coopLoadT<coop_mat16x16<f32, C>>(&ow[ob], 16u);
    workgroupBarrier();
    return scaled;
}

// Writes O slice j of this workgroup's rows: both subgroups' slices weighed by exp(m_s - m) and
// divided by their weighed sums l (ml holds each subgroup's m, l per row), 4 values per thread.
fn emit(o: coop_mat16x16<f32, C>, j: u32, lid: u32, sg: u32, t0: u32, h: u32) {
    coopStoreT(o, &sw[sg * 16u * BKEY / 4u], 4u);
    workgroupBarrier();
    let e = 4u * lid; // 64 threads x 4 values of the 16 x 16 slice
    let r = e / 16u;
    let c = e % 16u;
    let t = t0 + r;
    if t < p.tokens {
        let m0 = ml[2u * r];
        let m1 = ml[32u + 2u * r];
        let mx = max(m0, m1);
        let w0 = exp(m0 - mx);
        let w1 = exp(m1 - mx);
        let den = max(ml[2u * r + 1u] * w0 + ml[32u + 2u * r + 1u] * w1, 1e-30);
        let a = 16u * r + c;
        let b = 16u * BKEY + a;
        let ob = ((t * p.heads + h) * HEAD_DIM + 16u * j + c) / 2u;
        let v = (sw[a / 4u] * w0 + sw[b / 4u] * w1) / den;
        out[ob] = pack_act(v.xy);
        out[ob + 1u] = pack_act(v.zw);
    }
    workgroupBarrier();
}

@compute @workgroup_size(32u * KSPLIT)
fn main(@builtin(subgroup_invocation_id) lane: u32,
        @builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let sg = lid / 32u; // this subgroup: key tiles sg, sg + KSPLIT, ...
    let h = wid.x;
    let t0 = (nwg.y - 1u - wid.y) * BQ; // the tiles with the most keys first, every head's
    let kvh = h / (p.heads / p.kv_heads);
    let last = min(t0 + BQ, p.tokens) - 1u;
    let slot = tok[t0].x;
    let n_tiles = (tok[last].y + BKEY) / BKEY; // keys 0..=max position of the tile
    let base = slot * p.ctx * p.kv_heads * HEAD_DIM + kvh * HEAD_DIM; // (slot, position 0, kvh)
    // this lane's row (two lanes per row, 32 keys each) and its causal limit
    let r = lane / 2u;
    let half = 32u * (lane % 2u);
    let t = t0 + r;
    let pos = select(0u, tok[min(t, p.tokens - 1u)].y, t < p.tokens);
    let valid = t < p.tokens;

    // Q fragments of rows t0 .. t0 + 16, D columns
    let qs = p.heads * HEAD_DIM;
    let qb = t0 * qs + h * HEAD_DIM;
    var q0: coop_mat16x16<f16, A>; var q1: coop_mat16x16<f16, A>;
    var q2: coop_mat16x16<f16, A>; var q3: coop_mat16x16<f16, A>;
    var q4: coop_mat16x16<f16, A>; var q5: coop_mat16x16<f16, A>;
    var q6: coop_mat16x16<f16, A>; var q7: coop_mat16x16<f16, A>;
    q0 = coopLoadT<coop_mat16x16<f16, A>>(&q[qb], qs);
    if ND > 1u { let o = qb + 16u; q1 = coopLoadT<coop_mat16x16<f16, A>>(&q[o], qs); }
    if ND > 2u { let o = qb + 32u; q2 = coopLoadT<coop_mat16x16<f16, A>>(&q[o], qs); }
    if ND > 3u { let o = qb + 48u; q3 = coopLoadT<coop_mat16x16<f16, A>>(&q[o], qs); }
    if ND > 4u { let o = qb + 64u; q4 = coopLoadT<coop_mat16x16<f16, A>>(&q[o], qs); }
    if ND > 5u { let o = qb + 80u; q5 = coopLoadT<coop_mat16x16<f16, A>>(&q[o], qs); }
    if ND > 6u { let o = qb + 96u; q6 = coopLoadT<coop_mat16x16<f16, A>>(&q[o], qs); }
    if ND > 7u { let o = qb + 112u; q7 = coopLoadT<coop_mat16x16<f16, A>>(&q[o], qs); }

    // per tile: S, its row maxima (raising m where they pass m + TAU), P = exp(S - m) as f16,
    // the row sums l, O += P V
    var m = NEG;
    var l = 0.0;
    var o0: coop_mat16x16<f32, C>; var o1: coop_mat16x16<f32, C>;
    var o2: coop_mat16x16<f32, C>; var o3: coop_mat16x16<f32, C>;
    var o4: coop_mat16x16<f32, C>; var o5: coop_mat16x16<f32, C>;
    var o6: coop_mat16x16<f32, C>; var o7: coop_mat16x16<f32, C>;
    let sbase = sg * 16u * BKEY;
    let pbase = sg * 16u * PL;
    let obase = sg * 256u;
    let so = sbase + r * BKEY + half;
    let po = pbase + r * PL + half;
    let iters = (n_tiles + KSPLIT - 1u) / KSPLIT; // the same for every subgroup (barriers)
    for (var it = 0u; it < iters; it++) {
        // a subgroup past the last tile recomputes it with every key masked
        let kt = min(it * KSPLIT + sg, n_tiles - 1u);
        let live = it * KSPLIT + sg < n_tiles;
        let key0 = kt * BKEY;
        scores(q0, q1, q2, q3, q4, q5, q6, q7, base, key0, sbase);
        workgroupBarrier();
        var mt = NEG;
        for (var i = 0u; i < 32u; i++) {
            if live && key0 + half + i <= pos {
                mt = max(mt, sw[(so + i) / 4u][i % 4u] * p.scale);
            }
        }
        mt = max(mt, subgroupShuffleXor(mt, 1u));
        let up = mt > m + TAU;
        let any_up = subgroupAny(up);
        if lane == 0u {
            ow[512u + sg] = select(0.0, 1.0, any_up);
        }
        workgroupBarrier();
        if lid == 0u {
            ow[514] = ow[512] + ow[513];
        }
        if workgroupUniformLoad(&ow[514]) != 0.0 {
            // (both subgroups rescale when either moves: alpha = 1 where m stays)
            // (the first tile raises every row from NEG: O is still zero then)
            let m_new = select(m, mt, up);
            let alpha = exp(m - m_new);
            l *= alpha;
            m = m_new;
            if it > 0u {
                o0 = rescale(o0, lane, alpha, obase);
                if ND > 1u { o1 = rescale(o1, lane, alpha, obase); }
                if ND > 2u { o2 = rescale(o2, lane, alpha, obase); }
                if ND > 3u { o3 = rescale(o3, lane, alpha, obase); }
                if ND > 4u { o4 = rescale(o4, lane, alpha, obase); }
                if ND > 5u { o5 = rescale(o5, lane, alpha, obase); }
                if ND > 6u { o6 = rescale(o6, lane, alpha, obase); }
                if ND > 7u { o7 = rescale(o7, lane, alpha, obase); }
            }
        }
        for (var i4 = 0u; i4 < 8u; i4++) {
            let sv = sw[(so + 4u * i4) / 4u];
            var pv4: vec4<f16>;
            for (var c = 0u; c < 4u; c++) {
                var e = 0.0;
                if valid && live && key0 + half + 4u * i4 + c <= pos {
                    e = exp(sv[c] * p.scale - m);
                }
                l += e;
                pv4[c] = f16(e);
            }
            pw[(po + 4u * i4) / 4u] = pv4;
        }
        workgroupBarrier();
        o0 = pv(o0, base, key0, 0u, pbase);
        if ND > 1u { o1 = pv(o1, base, key0, 1u, pbase); }
        if ND > 2u { o2 = pv(o2, base, key0, 2u, pbase); }
        if ND > 3u { o3 = pv(o3, base, key0, 3u, pbase); }
        if ND > 4u { o4 = pv(o4, base, key0, 4u, pbase); }
        if ND > 5u { o5 = pv(o5, base, key0, 5u, pbase); }
        if ND > 6u { o6 = pv(o6, base, key0, 6u, pbase); }
        if ND > 7u { o7 = pv(o7, base, key0, 7u, pbase); }
        workgroupBarrier();
    }
    l = l + subgroupShuffleXor(l, 1u);
    if lane % 2u == 0u {
        ml[sg * 32u + 2u * r] = m;
        ml[sg * 32u + 2u * r + 1u] = l;
    }

    emit(o0, 0u, lid, sg, t0, h);
    if ND > 1u { emit(o1, 1u, lid, sg, t0, h); }
    if ND > 2u { emit(o2, 2u, lid, sg, t0, h); }
    if ND > 3u { emit(o3, 3u, lid, sg, t0, h); }
    if ND > 4u { emit(o4, 4u, lid, sg, t0, h); }
    if ND > 5u { emit(o5, 5u, lid, sg, t0, h); }
    if ND > 6u { emit(o6, 6u, lid, sg, t0, h); }
    if ND > 7u { emit(o7, 7u, lid, sg, t0, h); }
}
