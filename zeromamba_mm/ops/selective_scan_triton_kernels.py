"""The Triton kernels of the selective scan (launched by
:mod:`.selective_scan_triton`): GPUs without compiling any extension.

One program handles ``BLOCK_D`` channels of one sequence and walks along
L in tiles of ``BLOCK_L`` steps. Inside a tile the recurrence
``h_t = a_t h_{t-1} + b_t`` is a ``tl.associative_scan`` over the pairs
``(a_t, b_t)`` (composition ``(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2)``:
products of decays <= 1, no division, no positive exponent), and the state
is carried from tile to tile. Everything accumulates in float32 (float64
for float64 inputs); loads are masked at the sequence end and the channel
edge.

Backward: a second kernel walks the tiles in reverse. It recomputes each
tile's states from the state saved at the tile's start by the forward
(``B * D * N * ceil(L / BLOCK_L)`` floats), obtaining ``h_{t-1}`` exactly by
scanning the tile shifted by one step, and runs the adjoint recurrence
``lam_t = C_t g_t + a_{t+1} lam_{t+1}`` with a reverse associative scan.
Per-(batch, channel, step) gradients are written directly; the sums over
channels (dB, dC) and over steps (dA, dD) are written as per-program
partials and reduced by PyTorch, which keeps the result deterministic.

Without a GPU, the kernels run on CPU tensors under ``TRITON_INTERPRET=1``
(the variable must be set before ``triton`` is first imported).
"""
from typing import Optional

try:
    import triton
    import triton.language as tl
except ImportError as e:  # pragma: no cover - triton ships with torch
    triton = None
    tl = None
    TRITON_IMPORT_ERROR: Optional[str] = f'{type(e).__name__}: {e}'
else:
    TRITON_IMPORT_ERROR = None


def triton_interpreted() -> bool:
    """Whether the kernels run in the Triton interpreter (CPU tensors)."""
    if triton is None:
        return False
    return not isinstance(_fwd_kernel, triton.runtime.JITFunction)


if triton is not None:

    @triton.jit
    def _combine(a1, b1, a2, b2):
        # (a2, b2) after (a1, b1): h -> a2 (a1 h + b1) + b2.
        return a1 * a2, a2 * b1 + b2

    @triton.jit
    def _softplus(x):
        # max(x, 0) + log1p(exp(-|x|)); log1p(e) = log(w) * e / (w - 1) with
        # w = 1 + e (Goldberg), exact for tiny e without libdevice's log1p.
        e = tl.exp(-tl.abs(x))
        w = 1.0 + e
        den = w - 1.0
        ratio = tl.where(den == 0.0, 1.0,
                         tl.log(w) / tl.where(den == 0.0, 1.0, den))
        return tl.maximum(x, 0.0) + ratio * e

    @triton.jit
    def _load_dt(dt_ptrs, mask, bias, HAS_BIAS: tl.constexpr,
                 SOFTPLUS: tl.constexpr, ACC: tl.constexpr):
        dt = tl.load(dt_ptrs, mask=mask, other=0.0).to(ACC)
        if HAS_BIAS:
            dt = dt + bias[:, None]
        if SOFTPLUS:
            dt = _softplus(dt)
        return dt

    @triton.jit
    def _prologue(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, CH,
                  CH_PER_GROUP, s_ub, s_ud, s_db, s_dd, s_ad, s_an, s_bb,
                  s_bg, s_bn, s_cb, s_cg, s_cn, N: tl.constexpr,
                  BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
                  HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr,
                  ACC: tl.constexpr):
        # What both kernels set up before walking the tiles: this program's
        # channels and states, its per-channel parameters, row pointers.
        pid_b = tl.program_id(0).to(tl.int64)
        pid_d = tl.program_id(1)
        offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
        offs_n = tl.arange(0, BLOCK_N)
        mask_d = offs_d < CH
        mask_n = offs_n < N
        # BLOCK_D divides the channels per group: one group per program.
        group = (pid_d * BLOCK_D) // CH_PER_GROUP
        mask_dn = mask_d[:, None] & mask_n[None, :]
        A = tl.load(
            A_ptr + offs_d[:, None] * s_ad + offs_n[None, :] * s_an,
            mask=mask_dn,
            other=0.0).to(ACC)
        bias = tl.zeros([BLOCK_D], dtype=ACC)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)
        Dv = tl.zeros([BLOCK_D], dtype=ACC)
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)
        u_base = u_ptr + pid_b * s_ub + offs_d[:, None] * s_ud
        dt_base = dt_ptr + pid_b * s_db + offs_d[:, None] * s_dd
        b_base = B_ptr + pid_b * s_bb + group * s_bg + offs_n[:, None] * s_bn
        c_base = C_ptr + pid_b * s_cb + group * s_cg + offs_n[:, None] * s_cn
        state_rows = (pid_b * CH + offs_d[:, None]) * N + offs_n[None, :]
        return (pid_b, pid_d, offs_d, mask_d, mask_n, mask_dn, A, bias, Dv,
                u_base, dt_base, b_base, c_base, state_rows)

    @triton.jit
    def _load_tile(u_base, dt_base, b_base, c_base, offs_l, L, mask_d, mask_n,
                   A, bias, s_ul, s_dl, s_bl, s_cl, HAS_BIAS: tl.constexpr,
                   SOFTPLUS: tl.constexpr, ACC: tl.constexpr):
        # One tile's inputs and its scan pairs (a_t, b_t). Padding steps get
        # a = 1, b = 0, which carries the state through.
        mask_l = offs_l < L
        m2 = mask_d[:, None] & mask_l[None, :]
        mnl = mask_n[:, None] & mask_l[None, :]
        u = tl.load(
            u_base + offs_l[None, :] * s_ul, mask=m2, other=0.0).to(ACC)
        raw = tl.load(
            dt_base + offs_l[None, :] * s_dl, mask=m2, other=0.0).to(ACC)
        if HAS_BIAS:
            raw = raw + bias[:, None]
        dt = raw
        if SOFTPLUS:
            dt = _softplus(raw)
        Bt = tl.load(
            b_base + offs_l[None, :] * s_bl, mask=mnl, other=0.0).to(ACC)
        Ct = tl.load(
            c_base + offs_l[None, :] * s_cl, mask=mnl, other=0.0).to(ACC)
        m3 = m2[:, None, :] & mask_n[None, :, None]
        a = tl.where(m3, tl.exp(dt[:, None, :] * A[:, :, None]), 1.0)
        b = (dt * u)[:, None, :] * Bt[None, :, :]
        return m2, raw, u, dt, Bt, Ct, a, b

    @triton.jit
    def _fwd_kernel(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, y_ptr,
                    states_ptr, last_ptr, L, CH, CH_PER_GROUP, N_TILES, s_ub,
                    s_ud, s_ul, s_db, s_dd, s_dl, s_ad, s_an, s_bb, s_bg, s_bn,
                    s_bl, s_cb, s_cg, s_cn, s_cl, s_yb, s_yd, s_yl,
                    N: tl.constexpr, BLOCK_D: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
                    HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, SAVE_STATES: tl.constexpr,
                    ACC: tl.constexpr):
        (pid_b, pid_d, offs_d, mask_d, mask_n, mask_dn, A, bias, Dv, u_base,
         dt_base, b_base, c_base, state_rows) = _prologue(
             u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, CH,
             CH_PER_GROUP, s_ub, s_ud, s_db, s_dd, s_ad, s_an, s_bb, s_bg,
             s_bn, s_cb, s_cg, s_cn, N, BLOCK_D, BLOCK_N, HAS_D, HAS_BIAS,
             ACC)
        y_base = y_ptr + pid_b * s_yb + offs_d[:, None] * s_yd
        is_last = (tl.arange(0, BLOCK_L) == BLOCK_L - 1)[None, None, :]
        h = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)
        for k in range(0, N_TILES):
            if SAVE_STATES:
                tl.store(
                    states_ptr + state_rows * N_TILES + k, h, mask=mask_dn)
            offs_l = k * BLOCK_L + tl.arange(0, BLOCK_L)
            m2, _, u, _, _, Ct, a, b = _load_tile(
                u_base, dt_base, b_base, c_base, offs_l, L, mask_d, mask_n,
                A, bias, s_ul, s_dl, s_bl, s_cl, HAS_BIAS, SOFTPLUS, ACC)
            pa, pb = tl.associative_scan((a, b), axis=2, combine_fn=_combine)
            hs = pa * h[:, :, None] + pb
            y = tl.sum(hs * Ct[None, :, :], axis=1)
            if HAS_D:
                y = y + Dv[:, None] * u
            tl.store(y_base + offs_l[None, :] * s_yl, y, mask=m2)
            h = tl.sum(tl.where(is_last, hs, 0.0), axis=2)
        tl.store(last_ptr + state_rows, h, mask=mask_dn)

    @triton.jit
    def _bwd_kernel(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr,
                    gy_ptr, glast_ptr, states_ptr, du_ptr, ddt_ptr, dA_ptr,
                    dD_ptr, dB_ptr, dC_ptr, L, CH, CH_PER_GROUP, N_TILES,
                    N_DBLOCKS, s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_ad, s_an,
                    s_bb, s_bg, s_bn, s_bl, s_cb, s_cg, s_cn, s_cl, s_gb, s_gd,
                    s_gl, N: tl.constexpr, BLOCK_D: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
                    HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, HAS_GLAST: tl.constexpr,
                    ACC: tl.constexpr):
        (pid_b, pid_d, offs_d, mask_d, mask_n, mask_dn, A, bias, Dv, u_base,
         dt_base, b_base, c_base, state_rows) = _prologue(
             u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, CH,
             CH_PER_GROUP, s_ub, s_ud, s_db, s_dd, s_ad, s_an, s_bb, s_bg,
             s_bn, s_cb, s_cg, s_cn, N, BLOCK_D, BLOCK_N, HAS_D, HAS_BIAS,
             ACC)
        offs_n = tl.arange(0, BLOCK_N)
        g_base = gy_ptr + pid_b * s_gb + offs_d[:, None] * s_gd
        # du / ddelta are contiguous (batch, CH, L) buffers.
        out_base = (pid_b * CH + offs_d[:, None]) * L
        # dB / dC partials: contiguous (batch, N_DBLOCKS, N, L).
        part_base = ((pid_b * N_DBLOCKS + pid_d) * N + offs_n[:, None]) * L
        glast = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)
        if HAS_GLAST:
            glast = tl.load(
                glast_ptr + state_rows, mask=mask_dn, other=0.0).to(ACC)
        ar = tl.arange(0, BLOCK_L)
        is_first = (ar == 0)[None, None, :]
        lam_next = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)  # lam at tile end+1
        dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)
        dD_acc = tl.zeros([BLOCK_D], dtype=ACC)
        for kk in range(0, N_TILES):
            k = N_TILES - 1 - kk
            offs_l = k * BLOCK_L + ar
            m2, raw, u, dt, Bt, Ct, a, b = _load_tile(
                u_base, dt_base, b_base, c_base, offs_l, L, mask_d, mask_n,
                A, bias, s_ul, s_dl, s_bl, s_cl, HAS_BIAS, SOFTPLUS, ACC)
            mnl = mask_n[:, None] & (offs_l < L)[None, :]
            m3 = m2[:, None, :] & mask_n[None, :, None]
            g = tl.load(
                g_base + offs_l[None, :] * s_gl, mask=m2, other=0.0).to(ACC)
            # h_{t-1}: scan the tile shifted right by one step, whose first
            # element is the saved state at the tile start (a = 0 there).
            offs_p = offs_l - 1
            m2p = mask_d[:, None] & ((offs_p >= 0) & (offs_p < L))[None, :]
            mnlp = mask_n[:, None] & ((offs_p >= 0) & (offs_p < L))[None, :]
            u_p = tl.load(
                u_base + offs_p[None, :] * s_ul, mask=m2p, other=0.0).to(ACC)
            dt_p = _load_dt(dt_base + offs_p[None, :] * s_dl, m2p, bias,
                            HAS_BIAS, SOFTPLUS, ACC)
            B_p = tl.load(
                b_base + offs_p[None, :] * s_bl, mask=mnlp, other=0.0).to(ACC)
            a_p = tl.exp(dt_p[:, None, :] * A[:, :, None])
            b_p = (dt_p * u_p)[:, None, :] * B_p[None, :, :]
            h_in = tl.load(
                states_ptr + state_rows * N_TILES + k, mask=mask_dn,
                other=0.0).to(ACC)
            a_p = tl.where(is_first, 0.0, a_p)
            b_p = tl.where(is_first, h_in[:, :, None], b_p)
            _, h_prev = tl.associative_scan((a_p, b_p),
                                            axis=2,
                                            combine_fn=_combine)
            q = a * h_prev  # a_t h_{t-1}
            hs = q + b
            # Adjoint: lam_t = C_t g_t + a_{t+1} lam_{t+1}, reverse scan.
            offs_x = offs_l + 1
            m2x = mask_d[:, None] & (offs_x < L)[None, :]
            m3x = m2x[:, None, :] & mask_n[None, :, None]
            dt_x = _load_dt(dt_base + offs_x[None, :] * s_dl, m2x, bias,
                            HAS_BIAS, SOFTPLUS, ACC)
            a_x = tl.where(m3x, tl.exp(dt_x[:, None, :] * A[:, :, None]), 0.0)
            gc = Ct[None, :, :] * g[:, None, :]
            if HAS_GLAST:
                gc = gc + tl.where(
                    (offs_l == L - 1)[None, None, :], glast[:, :, None], 0.0)
            pa, pb = tl.associative_scan((a_x, gc),
                                         axis=2,
                                         combine_fn=_combine,
                                         reverse=True)
            lam = pa * lam_next[:, :, None] + pb
            lam = tl.where(m3, lam, 0.0)
            lam_next = tl.sum(tl.where(is_first, lam, 0.0), axis=2)
            # Gradients.
            lq = lam * q
            dA_acc += tl.sum(lq * dt[:, None, :], axis=2)
            s = tl.sum(lam * Bt[None, :, :], axis=1)
            du = dt * s
            if HAS_D:
                du = du + Dv[:, None] * g
                dD_acc += tl.sum(g * u, axis=1)
            ddt = tl.sum(lq * A[:, :, None], axis=1) + u * s
            if SOFTPLUS:
                ddt = ddt / (1.0 + tl.exp(-raw))  # * sigmoid(raw)
            tl.store(du_ptr + out_base + offs_l[None, :], du, mask=m2)
            tl.store(ddt_ptr + out_base + offs_l[None, :], ddt, mask=m2)
            dB_part = tl.sum(lam * (dt * u)[:, None, :], axis=0)
            dC_part = tl.sum(hs * g[:, None, :], axis=0)
            tl.store(dB_ptr + part_base + offs_l[None, :], dB_part, mask=mnl)
            tl.store(dC_ptr + part_base + offs_l[None, :], dC_part, mask=mnl)
        tl.store(dA_ptr + state_rows, dA_acc, mask=mask_dn)
        if HAS_D:
            tl.store(dD_ptr + pid_b * CH + offs_d, dD_acc, mask=mask_d)
