// attention_coop.wgsl — causal GQA attention of a prompt on matrix cores (cooperative matrices,
// 16x16x16 f16 multiply-adds into f32), for one sequence whose tokens sit at ascending positions
// of one cache slot (a prompt chunk; the session records this kernel only for such forwards).
//   q      (T, H, D)        f16, RoPE applied
//   tok    (T)              (slot, position) per token
//   kcache (S, ctx, Hkv, D) f16, RoPE applied;  vcache likewise
//   out    (T, H, D)        packed f16: softmax(q k^T * scale) v
// Workgroup = one subgroup of 32 = 16 query tokens of one head (H200, 8B pp512: 6.8 ms of
// attention vs 8.7 with 4 subgroups = 64 tokens); grid x = token tiles, y = heads. One pass over
// the keys in tiles of 64, an online softmax whose reference maximum m moves lazily: P = exp(S -
// m) is formed against each row's current m, which is raised only where a tile's maximum passes
// m + TAU (so P <= e^TAU, well inside f16), and only then do the O accumulators — which cannot be
// scaled element-wise — go through workgroup memory to be rescaled by exp(m_old - m_new). Q
// fragments stay in registers; K and V fragments are read from the cache directly (rows past the
// cache end read the padding the session allocates after it).
// D = HEAD_DIM, a multiple of 16 up to 128 (ND = D / 16 fragment columns).

override HEAD_DIM: u32 = 128u;
override ND: u32 = HEAD_DIM / 16u;

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
@group(0) @binding(3) var<storage, read> kc: array<f16>;
@group(0) @binding(4) var<storage, read> vc: array<f16>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

const BQ: u32 = 16u;   // query tokens per workgroup
const BKEY: u32 = 64u; // keys per tile
const PL: u32 = 72u;   // row stride of the P tile (f16), padded
const NEG: f32 = -3.0e38;
const TAU: f32 = 8.0;  // how far a row's scores may pass its reference maximum: P <= e^8

// (each a multiple of 16 bytes: a driver may place them in any order, and the matrix loads and
// stores need 16-byte aligned tiles — a 4-byte flag of its own broke them on the H200)
var<workgroup> sw: array<f32, 16u * BKEY>; // S (16 x 64), then O slices to emit
var<workgroup> pw: array<f16, 16u * PL>;   // P (16 x 64) as f16
var<workgroup> ow: array<f32, 260u>;       // an O slice being rescaled (S is still in use); [256]:
                                           // whether some row's maximum moves this tile

// S (16 rows x 64 keys from key0) = Q K^T, stored row-major in `sw`.
fn scores(q0: coop_mat16x16<f16, A>, q1: coop_mat16x16<f16, A>, q2: coop_mat16x16<f16, A>,
          q3: coop_mat16x16<f16, A>, q4: coop_mat16x16<f16, A>, q5: coop_mat16x16<f16, A>,
          q6: coop_mat16x16<f16, A>, q7: coop_mat16x16<f16, A>, kbase: u32, key0: u32) {
    let ks = p.kv_heads * HEAD_DIM; // f16 between cache positions
    for (var j = 0u; j < 4u; j++) {
        var s: coop_mat16x16<f32, C>;
        let kb = kbase + (key0 + 16u * j) * ks;
        s = coopMultiplyAdd(q0, coopLoad<coop_mat16x16<f16, B>>(&kc[kb], ks), s);
        if ND > 1u { let o = kb + 16u; s = coopMultiplyAdd(q1, coopLoad<coop_mat16x16<f16, B>>(&kc[o], ks), s); }
        if ND > 2u { let o = kb + 32u; s = coopMultiplyAdd(q2, coopLoad<coop_mat16x16<f16, B>>(&kc[o], ks), s); }
        if ND > 3u { let o = kb + 48u; s = coopMultiplyAdd(q3, coopLoad<coop_mat16x16<f16, B>>(&kc[o], ks), s); }
        if ND > 4u { let o = kb + 64u; s = coopMultiplyAdd(q4, coopLoad<coop_mat16x16<f16, B>>(&kc[o], ks), s); }
        if ND > 5u { let o = kb + 80u; s = coopMultiplyAdd(q5, coopLoad<coop_mat16x16<f16, B>>(&kc[o], ks), s); }
        if ND > 6u { let o = kb + 96u; s = coopMultiplyAdd(q6, coopLoad<coop_mat16x16<f16, B>>(&kc[o], ks), s); }
        if ND > 7u { let o = kb + 112u; s = coopMultiplyAdd(q7, coopLoad<coop_mat16x16<f16, B>>(&kc[o], ks), s); }
        coopStoreT(s, &sw[16u * j], BKEY);
    }
}

// O slice j (16 x 16) += P (16 x 64 keys from key0) V[key0.., 16 j..].
fn pv(o: coop_mat16x16<f32, C>, vbase: u32, key0: u32, j: u32) -> coop_mat16x16<f32, C> {
    let ks = p.kv_heads * HEAD_DIM;
    var acc = o;
    for (var kk = 0u; kk < 4u; kk++) {
        let po = 16u * kk;
        let vo = vbase + (key0 + 16u * kk) * ks + 16u * j;
        acc = coopMultiplyAdd(coopLoadT<coop_mat16x16<f16, A>>(&pw[po], PL),
            coopLoadT<coop_mat16x16<f16, B>>(&vc[vo], ks), acc);
    }
    return acc;
}

// O slice (16 x 16) with this lane's row scaled by alpha (lane: row lane / 2, 8 columns).
fn rescale(o: coop_mat16x16<f32, C>, lane: u32, alpha: f32) -> coop_mat16x16<f32, C> {
    coopStoreT(o, &ow[0], 16u);
    workgroupBarrier();
    let b = 16u * (lane / 2u) + 8u * (lane % 2u);
    for (var i = 0u; i < 8u; i++) {
        ow[b + i] *= alpha;
    }
    workgroupBarrier();
    let scaled = coopLoadT<coop_mat16x16<f32, C>>(&ow[0], 16u);
    workgroupBarrier();
    return scaled;
}

// Writes O slice j / l for this lane's row (lane: row lane / 2, 8 columns).
fn emit(o: coop_mat16x16<f32, C>, j: u32, lane: u32, t: u32, h: u32, l: f32) {
    coopStoreT(o, &sw[0], 16u);
    workgroupBarrier();
    let r = lane / 2u;
    let c = 8u * (lane % 2u);
    if t < p.tokens {
        let base = 16u * r + c;
        let ob = ((t * p.heads + h) * HEAD_DIM + 16u * j + c) / 2u;
        for (var i = 0u; i < 4u; i++) {
            out[ob + i] = pack_act(vec2<f32>(sw[base + 2u * i], sw[base + 2u * i + 1u]) / l);
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(32)
fn main(@builtin(subgroup_invocation_id) lane: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
    let h = wid.y;
    let t0 = wid.x * BQ;
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
    let so = r * BKEY + half;
    let po = r * PL + half;
    for (var kt = 0u; kt < n_tiles; kt++) {
        let key0 = kt * BKEY;
        scores(q0, q1, q2, q3, q4, q5, q6, q7, base, key0);
        workgroupBarrier();
        var mt = NEG;
        for (var i = 0u; i < 32u; i++) {
            if key0 + half + i <= pos {
                mt = max(mt, sw[so + i] * p.scale);
            }
        }
        mt = max(mt, subgroupShuffleXor(mt, 1u));
        let up = mt > m + TAU;
        let any_up = subgroupAny(up);
        if lane == 0u {
            ow[256] = select(0.0, 1.0, any_up);
        }
        if workgroupUniformLoad(&ow[256]) != 0.0 {
            // (the first tile raises every row from NEG: O is still zero then)
            let m_new = select(m, mt, up);
            let alpha = exp(m - m_new);
            l *= alpha;
            m = m_new;
            if kt > 0u {
                o0 = rescale(o0, lane, alpha);
                if ND > 1u { o1 = rescale(o1, lane, alpha); }
                if ND > 2u { o2 = rescale(o2, lane, alpha); }
                if ND > 3u { o3 = rescale(o3, lane, alpha); }
                if ND > 4u { o4 = rescale(o4, lane, alpha); }
                if ND > 5u { o5 = rescale(o5, lane, alpha); }
                if ND > 6u { o6 = rescale(o6, lane, alpha); }
                if ND > 7u { o7 = rescale(o7, lane, alpha); }
            }
        }
        for (var i = 0u; i < 32u; i++) {
            var e = 0.0;
            if valid && key0 + half + i <= pos {
                e = exp(sw[so + i] * p.scale - m);
            }
            l += e;
            pw[po + i] = f16(e);
        }
        workgroupBarrier();
        o0 = pv(o0, base, key0, 0u);
        if ND > 1u { o1 = pv(o1, base, key0, 1u); }
        if ND > 2u { o2 = pv(o2, base, key0, 2u); }
        if ND > 3u { o3 = pv(o3, base, key0, 3u); }
        if ND > 4u { o4 = pv(o4, base, key0, 4u); }
        if ND > 5u { o5 = pv(o5, base, key0, 5u); }
        if ND > 6u { o6 = pv(o6, base, key0, 6u); }
        if ND > 7u { o7 = pv(o7, base, key0, 7u); }
        workgroupBarrier();
    }
    l = max(l + subgroupShuffleXor(l, 1u), 1e-30);

    emit(o0, 0u, lane, t, h, l);
    if ND > 1u { emit(o1, 1u, lane, t, h, l); }
    if ND > 2u { emit(o2, 2u, lane, t, h, l); }
    if ND > 3u { emit(o3, 3u, lane, t, h, l); }
    if ND > 4u { emit(o4, 4u, lane, t, h, l); }
    if ND > 5u { emit(o5, 5u, lane, t, h, l); }
    if ND > 6u { emit(o6, 6u, lane, t, h, l); }
    if ND > 7u { emit(o7, 7u, lane, t, h, l); }
}
