"""Triton kernels of cross-shaped window attention; the registry entry in
python/prismkit/ops/cswin/__init__.py registers them for CUDA tensors. Semantics: that module's
docstring.

Each program owns a block of query positions of one window, one head, one batch item, and reads
the window's tokens straight from the [B, H*W, 3C] qkv layout with index arithmetic (no permute,
no padding copy): a position p of a win_h x win_w window sits at padded (wy*win_h + p // win_w,
wx*win_w + p % win_w); minus the top/left padding that is the token, or no token. Scores and
softmax are fp32 (online softmax over key blocks, so any window size works); LePE is added in the
epilogue from the window's V; both branches write their channels of the [B, H*W, C] output in place.

Backward, three kernels per branch: (1) per query block, recompute the softmax statistics (log-sum-
exp) and D = rowsum(dO * O_attention); (2) per key block, dK and dV (plus LePE's share of dV);
(3) per query block, dQ and the LePE weight and bias partial sums.

Kernels run on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (the tests).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from prismkit.ops.cswin.checks import check_cswin_args, check_cswin_attention_backward_args
from prismkit.triton_kernels.launch import input_precision, on_device

__all__ = ["cswin_attention", "cswin_attention_backward"]


@triton.jit
def _window_positions(p, L_pad, wy, wx, win_h, win_w, top, left, H, W):
    """Token index and validity of window positions p (padded window, row-major)."""
    y = wy * win_h + p // win_w - top
    x = wx * win_w + p % win_w - left
    real = (p < L_pad) & (y >= 0) & (y < H) & (x >= 0) & (x < W)
    return y * W + x, real


@triton.jit
def _program_window(pid_w, pid_h, n_win, n_wx, head0, head_dim):
    """(batch item, window row, window column, head, first channel) of a program."""
    b = pid_w // n_win
    w_idx = pid_w % n_win
    head = head0 + pid_h
    return b, w_idx // n_wx, w_idx % n_wx, head, head * head_dim


@triton.jit
def _item_base(ptr, b, H, W, row_width):
    """Batch item b's first element in a [B, H*W, row_width] tensor (int64: large batches overflow)."""
    return ptr + b.to(tl.int64) * H * W * row_width


@triton.jit
def _load_rows(base, tokens, real, stride_t, chan, HD: tl.constexpr, head_dim):
    cols = tl.arange(0, HD)
    ptrs = base + tokens.to(tl.int64)[:, None] * stride_t + chan + cols[None, :]
    return tl.load(ptrs, mask=real[:, None] & (cols[None, :] < head_dim), other=0.0)


@triton.jit
def _lepe(base, w_ptr, p, real, L_pad, wy, wx, win_h, win_w, top, left, H, W, stride_t, chan, C,
          HD: tl.constexpr, head_dim, BLOCK: tl.constexpr):  # fmt: skip
    """sum over the 9 taps of w[c, tap] * v[neighbour, c] for the positions p (fp32), the
    neighbour inside the same window and the image; chan is the head's first channel."""
    cols = tl.arange(0, HD)
    cmask = cols < head_dim
    iy = p // win_w
    ix = p % win_w
    acc = tl.zeros((BLOCK, HD), dtype=tl.float32)
    for tap in tl.static_range(9):
        ny = iy + (tap // 3 - 1)
        nx = ix + (tap % 3 - 1)
        inside = (ny >= 0) & (ny < win_h) & (nx >= 0) & (nx < win_w)
        n_tok, n_real = _window_positions(ny * win_w + nx, L_pad, wy, wx, win_h, win_w, top, left, H, W)
        ok = real & inside & n_real
        v = _load_rows(base, n_tok, ok, stride_t, chan + 2 * C, HD, head_dim).to(tl.float32)
        w = tl.load(w_ptr + (chan + cols) * 9 + tap, mask=cmask, other=0.0).to(tl.float32)
        acc += v * w[None, :]
    return acc


@triton.jit
def _forward_kernel(
    qkv_ptr, out_ptr, w_ptr, b_ptr, lse_ptr,
    H, W, C, head_dim, head0, win_h, win_w, top, left, n_wx, n_win, L_pad, scale,
    MASK_PADDING: tl.constexpr, STORE_LSE: tl.constexpr, HD: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, INPUT_PRECISION: tl.constexpr,
):  # fmt: skip
    pid_m, pid_w, pid_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    b, wy, wx, head, chan = _program_window(pid_w, pid_h, n_win, n_wx, head0, head_dim)
    stride_t = 3 * C
    base = _item_base(qkv_ptr, b, H, W, stride_t)
    p = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q_tok, q_real = _window_positions(p, L_pad, wy, wx, win_h, win_w, top, left, H, W)
    q = _load_rows(base, q_tok, q_real, stride_t, chan, HD, head_dim)
    m = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HD), dtype=tl.float32)
    for n0 in range(0, L_pad, BLOCK_N):
        pk = n0 + tl.arange(0, BLOCK_N)
        k_tok, k_real = _window_positions(pk, L_pad, wy, wx, win_h, win_w, top, left, H, W)
        k = _load_rows(base, k_tok, k_real, stride_t, chan + C, HD, head_dim)
        v = _load_rows(base, k_tok, k_real, stride_t, chan + 2 * C, HD, head_dim)
        s = tl.dot(q, tl.trans(k), input_precision=INPUT_PRECISION) * scale
        key_ok = (pk < L_pad) & k_real if MASK_PADDING else pk < L_pad
        s = tl.where(key_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        # A key block of padding only (masked) leaves m_new = -inf; subtract 0 then, not -inf.
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m - m_safe)
        e = tl.exp(s - m_safe[:, None])
        l = l * alpha + tl.sum(e, 1)
        acc = acc * alpha[:, None] + tl.dot(e.to(v.dtype), v, input_precision=INPUT_PRECISION)
        m = m_new
    out = acc / l[:, None]
    out += _lepe(base, w_ptr, p, q_real, L_pad, wy, wx, win_h, win_w, top, left, H, W, stride_t, chan, C,
                 HD, head_dim, BLOCK_M)  # fmt: skip
    cols = tl.arange(0, HD)
    out += tl.load(b_ptr + chan + cols, mask=cols < head_dim, other=0.0).to(tl.float32)[None, :]
    o_ptrs = _item_base(out_ptr, b, H, W, C) + q_tok.to(tl.int64)[:, None] * C + chan + cols[None, :]
    tl.store(o_ptrs, out.to(out_ptr.dtype.element_ty), mask=q_real[:, None] & (cols[None, :] < head_dim))
    if STORE_LSE:
        tl.store(lse_ptr + (b.to(tl.int64) * (H * W) + q_tok) * (C // head_dim) + head, m + tl.log(l), mask=q_real)


@triton.jit
def _backward_dq_kernel(
    qkv_ptr, dout_ptr, lse_ptr, delta_ptr, dqkv_ptr, part_w_ptr, part_b_ptr,
    H, W, C, head_dim, head0, win_h, win_w, top, left, n_wx, n_win, L_pad, scale,
    MASK_PADDING: tl.constexpr, HD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):  # fmt: skip
    """dQ for a block of queries, and the block's partial LePE weight and bias gradients."""
    pid_m, pid_w, pid_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    b, wy, wx, head, chan = _program_window(pid_w, pid_h, n_win, n_wx, head0, head_dim)
    heads = C // head_dim
    stride_t = 3 * C
    base, dbase = _item_base(qkv_ptr, b, H, W, stride_t), _item_base(dout_ptr, b, H, W, C)
    p = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q_tok, q_real = _window_positions(p, L_pad, wy, wx, win_h, win_w, top, left, H, W)
    q = _load_rows(base, q_tok, q_real, stride_t, chan, HD, head_dim)
    do = _load_rows(dbase, q_tok, q_real, C, chan, HD, head_dim)
    stat = (b.to(tl.int64) * (H * W) + q_tok) * heads + head
    lse = tl.load(lse_ptr + stat, mask=q_real, other=0.0)
    delta = tl.load(delta_ptr + stat, mask=q_real, other=0.0)
    dq = tl.zeros((BLOCK_M, HD), dtype=tl.float32)
    for n0 in range(0, L_pad, BLOCK_N):
        pk = n0 + tl.arange(0, BLOCK_N)
        k_tok, k_real = _window_positions(pk, L_pad, wy, wx, win_h, win_w, top, left, H, W)
        k = _load_rows(base, k_tok, k_real, stride_t, chan + C, HD, head_dim)
        v = _load_rows(base, k_tok, k_real, stride_t, chan + 2 * C, HD, head_dim)
        s = tl.dot(q, tl.trans(k), input_precision=INPUT_PRECISION) * scale
        key_ok = (pk < L_pad) & k_real if MASK_PADDING else pk < L_pad
        pr = tl.where(key_ok[None, :] & q_real[:, None], tl.exp(s - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=INPUT_PRECISION)
        ds = pr * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=INPUT_PRECISION)
    cols = tl.arange(0, HD)
    cmask = cols < head_dim
    d_ptrs = _item_base(dqkv_ptr, b, H, W, stride_t) + q_tok.to(tl.int64)[:, None] * stride_t + chan + cols[None, :]
    tl.store(d_ptrs, (dq * scale).to(dqkv_ptr.dtype.element_ty), mask=q_real[:, None] & cmask[None, :])
    # LePE: grad_bias[c] += sum_i dO[i, c]; grad_weight[c, tap] += sum_i dO[i, c] * v[neighbour(i, tap), c]
    program = (pid_h * tl.num_programs(1) + pid_w) * tl.num_programs(0) + pid_m
    dof = do.to(tl.float32)
    tl.store(part_b_ptr + program * HD + cols, tl.sum(dof, 0))
    iy, ix = p // win_w, p % win_w
    for tap in tl.static_range(9):
        ny, nx = iy + (tap // 3 - 1), ix + (tap % 3 - 1)
        inside = (ny >= 0) & (ny < win_h) & (nx >= 0) & (nx < win_w)
        n_tok, n_real = _window_positions(ny * win_w + nx, L_pad, wy, wx, win_h, win_w, top, left, H, W)
        vn = _load_rows(base, n_tok, q_real & inside & n_real, stride_t, chan + 2 * C, HD, head_dim).to(tl.float32)
        tl.store(part_w_ptr + (program * 9 + tap) * HD + cols, tl.sum(dof * vn, 0))


@triton.jit
def _backward_dkdv_kernel(
    qkv_ptr, dout_ptr, lse_ptr, delta_ptr, dqkv_ptr, w_ptr,
    H, W, C, head_dim, head0, win_h, win_w, top, left, n_wx, n_win, L_pad, scale,
    MASK_PADDING: tl.constexpr, HD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):  # fmt: skip
    """dK and dV for a block of keys (dV including LePE's share)."""
    pid_n, pid_w, pid_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    b, wy, wx, head, chan = _program_window(pid_w, pid_h, n_win, n_wx, head0, head_dim)
    heads = C // head_dim
    stride_t = 3 * C
    base, dbase = _item_base(qkv_ptr, b, H, W, stride_t), _item_base(dout_ptr, b, H, W, C)
    pk = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    k_tok, k_real = _window_positions(pk, L_pad, wy, wx, win_h, win_w, top, left, H, W)
    key_ok = (pk < L_pad) & k_real if MASK_PADDING else pk < L_pad
    k = _load_rows(base, k_tok, k_real, stride_t, chan + C, HD, head_dim)
    v = _load_rows(base, k_tok, k_real, stride_t, chan + 2 * C, HD, head_dim)
    dk = tl.zeros((BLOCK_N, HD), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, HD), dtype=tl.float32)
    for m0 in range(0, L_pad, BLOCK_M):
        p = m0 + tl.arange(0, BLOCK_M)
        q_tok, q_real = _window_positions(p, L_pad, wy, wx, win_h, win_w, top, left, H, W)
        q = _load_rows(base, q_tok, q_real, stride_t, chan, HD, head_dim)
        do = _load_rows(dbase, q_tok, q_real, C, chan, HD, head_dim)
        stat = (b.to(tl.int64) * (H * W) + q_tok) * heads + head
        lse = tl.load(lse_ptr + stat, mask=q_real, other=0.0)
        delta = tl.load(delta_ptr + stat, mask=q_real, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=INPUT_PRECISION) * scale
        pr = tl.where(key_ok[None, :] & q_real[:, None], tl.exp(s - lse[:, None]), 0.0)  # [M, N]
        dv += tl.dot(tl.trans(pr).to(do.dtype), do, input_precision=INPUT_PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=INPUT_PRECISION)
        ds = pr * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds).to(q.dtype), q, input_precision=INPUT_PRECISION)
    # LePE's share of dV: key n is neighbour `tap` of the query at n - offset(tap).
    cols = tl.arange(0, HD)
    cmask = cols < head_dim
    iy, ix = pk // win_w, pk % win_w
    for tap in tl.static_range(9):
        sy, sx = iy - (tap // 3 - 1), ix - (tap % 3 - 1)
        inside = (sy >= 0) & (sy < win_h) & (sx >= 0) & (sx < win_w)
        s_tok, s_real = _window_positions(sy * win_w + sx, L_pad, wy, wx, win_h, win_w, top, left, H, W)
        do_s = _load_rows(dbase, s_tok, k_real & inside & s_real, C, chan, HD, head_dim).to(tl.float32)
        w = tl.load(w_ptr + (chan + cols) * 9 + tap, mask=cmask, other=0.0).to(tl.float32)
        dv += do_s * w[None, :]
    d_ptrs = _item_base(dqkv_ptr, b, H, W, stride_t) + k_tok.to(tl.int64)[:, None] * stride_t + chan + cols[None, :]
    smask = k_real[:, None] & cmask[None, :]
    tl.store(d_ptrs + C, (dk * scale).to(dqkv_ptr.dtype.element_ty), mask=smask)
    tl.store(d_ptrs + 2 * C, dv.to(dqkv_ptr.dtype.element_ty), mask=smask)


def _branches(H, W, C, heads, split_size, mode):
    """(first head, head count, win_h, win_w, top, left, n_wy, n_wx) per branch."""
    out = []
    for br in (0,) if mode == "full" else (0, 1):
        win_h, win_w = H, W
        if mode != "full":
            if br == 0:
                win_w = split_size
            else:
                win_h = split_size
        pad_h, pad_w = (win_h - H % win_h) % win_h, (win_w - W % win_w) % win_w
        n_heads = heads if mode == "full" else heads // 2
        out.append(
            (br * n_heads, n_heads, win_h, win_w, pad_h // 2, pad_w // 2, (H + pad_h) // win_h, (W + pad_w) // win_w)
        )
    return out


def _config(qkv, head_dim, L_pad):
    on_gpu = qkv.device.type == "cuda"
    HD = max(16, triton.next_power_of_2(head_dim))
    block = 64 if on_gpu else 16
    block = min(block, max(16, triton.next_power_of_2(L_pad)))
    return dict(HD=HD, BLOCK_M=block, BLOCK_N=block, INPUT_PRECISION=input_precision(qkv))


def _run_forward(qkv, H, W, split_size, num_heads, w, b, scale, mode, padding, lse=None):
    B = qkv.shape[0]
    C = qkv.shape[2] // 3
    head_dim = C // num_heads
    out = torch.empty(B, H * W, C, dtype=qkv.dtype, device=qkv.device)
    if B == 0:
        return out
    with on_device(qkv):
        for head0, n_heads, win_h, win_w, top, left, n_wy, n_wx in _branches(H, W, C, num_heads, split_size, mode):
            L_pad = win_h * win_w
            cfg = _config(qkv, head_dim, L_pad)
            grid = (triton.cdiv(L_pad, cfg["BLOCK_M"]), B * n_wy * n_wx, n_heads)
            _forward_kernel[grid](
                qkv, out, w, b, lse if lse is not None else out, H, W, C, head_dim, head0, win_h, win_w, top, left,
                n_wx, n_wy * n_wx, L_pad, scale, MASK_PADDING=padding == "mask", STORE_LSE=lse is not None, **cfg,
            )  # fmt: skip
    return out


def cswin_attention(qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale, mode="cross", padding="mask"):
    """prismkit::cswin_attention for CUDA tensors."""
    check_cswin_args("cswin_attention", qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, mode, padding)
    qkv, w, b = qkv.contiguous(), lepe_weight.contiguous(), lepe_bias.contiguous()
    return _run_forward(qkv, H, W, split_size, num_heads, w, b, scale, mode, padding)


def cswin_attention_backward(grad_out, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale,
                             mode="cross", padding="mask"):  # fmt: skip
    """prismkit::cswin_attention_backward for CUDA tensors."""
    C = check_cswin_attention_backward_args(grad_out, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, mode,
                                            padding)  # fmt: skip
    B = qkv.shape[0]
    qkv, w, b, g = qkv.contiguous(), lepe_weight.contiguous(), lepe_bias.contiguous(), grad_out.contiguous()
    head_dim = C // num_heads
    grad_qkv = torch.empty_like(qkv)
    grad_w = torch.zeros(C, 9, dtype=torch.float32, device=qkv.device)
    grad_b = torch.zeros(C, dtype=torch.float32, device=qkv.device)
    if B == 0:
        return grad_qkv, grad_w.to(w.dtype).view(C, 1, 3, 3), grad_b.to(b.dtype)
    # Softmax statistics per (token, head), and D = rowsum(dO * O_attention) with
    # O_attention = out - LePE(v) - bias, both from a forward pass.
    lse = torch.empty(B, H * W, num_heads, dtype=torch.float32, device=qkv.device)
    out = _run_forward(qkv, H, W, split_size, num_heads, w, b, scale, mode, padding, lse=lse)
    lepe_only = _lepe_only(qkv, H, W, split_size, num_heads, w, b, mode, padding)
    attention = (out.float() - lepe_only).view(B, H * W, num_heads, head_dim)
    delta = (g.float().view(B, H * W, num_heads, head_dim) * attention).sum(-1).contiguous()
    with on_device(qkv):
        for head0, n_heads, win_h, win_w, top, left, n_wy, n_wx in _branches(H, W, C, num_heads, split_size, mode):
            L_pad = win_h * win_w
            cfg = _config(qkv, head_dim, L_pad)
            HD = cfg["HD"]
            common = (H, W, C, head_dim, head0, win_h, win_w, top, left, n_wx, n_wy * n_wx, L_pad, scale)
            grid_m = (triton.cdiv(L_pad, cfg["BLOCK_M"]), B * n_wy * n_wx, n_heads)
            programs = grid_m[0] * grid_m[1] * grid_m[2]
            part_w = torch.empty(programs, 9, HD, dtype=torch.float32, device=qkv.device)
            part_b = torch.empty(programs, HD, dtype=torch.float32, device=qkv.device)
            _backward_dq_kernel[grid_m](qkv, g, lse, delta, grad_qkv, part_w, part_b, *common,
                                        MASK_PADDING=padding == "mask", **cfg)  # fmt: skip
            grid_n = (triton.cdiv(L_pad, cfg["BLOCK_N"]), B * n_wy * n_wx, n_heads)
            _backward_dkdv_kernel[grid_n](qkv, g, lse, delta, grad_qkv, w, *common,
                                          MASK_PADDING=padding == "mask", **cfg)  # fmt: skip
            # programs are ordered (head, window, query block): sum each head's partials
            per_head = programs // n_heads
            pw = part_w.view(n_heads, per_head, 9, HD).sum(1)[:, :, :head_dim]  # [heads, 9, head_dim]
            pb = part_b.view(n_heads, per_head, HD).sum(1)[:, :head_dim]
            rows = slice(head0 * head_dim, (head0 + n_heads) * head_dim)
            grad_w[rows] = pw.permute(0, 2, 1).reshape(n_heads * head_dim, 9)
            grad_b[rows] = pb.reshape(-1)
    return grad_qkv, grad_w.to(w.dtype).view(C, 1, 3, 3), grad_b.to(b.dtype)


def _lepe_only(qkv, H, W, split_size, num_heads, w, b, mode, padding):
    """LePE(v) + bias alone, as float32 [B, H*W, C], per branch with a depthwise conv over each
    window (the same per-window zero padding)."""
    B = qkv.shape[0]
    C = qkv.shape[2] // 3
    v = qkv[..., 2 * C :].float().reshape(B, H, W, C).permute(0, 3, 1, 2)  # [B, C, H, W]
    out = torch.empty(B, C, H, W, dtype=torch.float32, device=qkv.device)
    head_dim = C // num_heads
    for head0, n_heads, win_h, win_w, top, left, n_wy, n_wx in _branches(H, W, C, num_heads, split_size, mode):
        ch = slice(head0 * head_dim, (head0 + n_heads) * head_dim)
        pad_h, pad_w = n_wy * win_h - H, n_wx * win_w - W
        vb = torch.nn.functional.pad(v[:, ch], (left, pad_w - left, top, pad_h - top))
        c = vb.shape[1]
        win = vb.view(B, c, n_wy, win_h, n_wx, win_w).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, win_h, win_w)
        conv = torch.nn.functional.conv2d(win, w[ch].float(), b[ch].float(), padding=1, groups=c)
        conv = (
            conv.view(B, n_wy, n_wx, c, win_h, win_w)
            .permute(0, 3, 1, 4, 2, 5)
            .reshape(B, c, n_wy * win_h, n_wx * win_w)
        )
        out[:, ch] = conv[:, :, top : top + H, left : left + W]
    return out.permute(0, 2, 3, 1).reshape(B, H * W, C)
