"""The LTX-Video 3-D transformer (official `Transformer3DModel`, parameter names kept for checkpoint parity).

The transformer predicts the flow velocity of a video given its noisy latent tokens, their pixel-space
positions, the T5 text context and σ. Spatio-temporal guidance (STG) is built in: `skip_layers` perturbs the chosen
blocks for the chosen batch entries, so one batched forward can return unconditional, conditional and perturbed
predictions together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import TimestepEmbedder
from .ops import AttentionFn, default_attention
from .positions import apply_rope, rope_frequencies

STG_MODES = ("attention_values", "attention_skip", "residual", "transformer_block")
"""How STG perturbs the skipped blocks (the recipe key `stg_mode`; 0.9.7 uses attention_values)."""


class SkipLayers(NamedTuple):
    """Blocks to perturb for STG and which batch entries (`[B]` bool) get the perturbation."""

    blocks: Sequence[int]
    perturbed: torch.Tensor


def _param(p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bring a raw parameter to the activations' device and dtype (fp8 storage, low-VRAM offload)."""
    return p.to(device=like.device, dtype=like.dtype)


class RMSNorm(nn.Module):
    """RMS norm computed in float32, as diffusers' `RMSNorm` that the reference uses."""

    def __init__(self, dim: int, eps: float, affine: bool, *, dtype=None, device=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype, device=device)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        x_normed = (x * torch.rsqrt(variance + self.eps)).to(x.dtype)
        return x_normed if self.weight is None else x_normed * _param(self.weight, x_normed)


def _make_norm(kind: str, dim: int, eps: float, affine: bool, *, dtype, device, operations) -> nn.Module:
    if kind == "rms_norm":
        return RMSNorm(dim, eps, affine, dtype=dtype, device=device)
    if kind == "layer_norm":
        return operations.LayerNorm(dim, eps=eps, elementwise_affine=affine, dtype=dtype, device=device)
    raise ValueError(f"transformer config: norm '{kind}' is not supported (allowed: rms_norm, layer_norm)")


class Attention(nn.Module):
    """Multi-head attention with q/k normalised across all heads; RoPE only for self-attention."""

    def __init__(self, dim: int, context_dim: int, heads: int, qk_norm: str | None, *, dtype, device,
                 operations, attention: AttentionFn):
        super().__init__()
        self.heads = heads
        self.attention = attention
        self.to_q = operations.Linear(dim, dim, bias=True, dtype=dtype, device=device)
        self.to_k = operations.Linear(context_dim, dim, bias=True, dtype=dtype, device=device)
        self.to_v = operations.Linear(context_dim, dim, bias=True, dtype=dtype, device=device)
        if qk_norm is None:
            self.q_norm, self.k_norm = nn.Identity(), nn.Identity()
        else:
            self.q_norm = _make_norm(qk_norm, dim, 1e-5, True, dtype=dtype, device=device, operations=operations)
            self.k_norm = _make_norm(qk_norm, dim, 1e-5, True, dtype=dtype, device=device, operations=operations)
        self.to_out = nn.ModuleList([operations.Linear(dim, dim, bias=True, dtype=dtype, device=device)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                skip: tuple[torch.Tensor, str] | None = None) -> torch.Tensor:
        source = x if context is None else context
        q = self.q_norm(self.to_q(x))
        k = self.k_norm(self.to_k(source))
        v = self.to_v(source)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        batch = x.shape[0]
        heads = [t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v)]
        out = self.attention(*heads, attn_mask=mask).transpose(1, 2).flatten(2).to(q.dtype)
        if skip is not None:
            perturbed, strategy = skip
            if strategy == "attention_values":
                out = torch.where(perturbed.view(batch, 1, 1), v, out)
            elif strategy == "attention_skip":
                out = torch.where(perturbed.view(batch, 1, 1), x, out)
        return self.to_out[0](out)


class _GeluProjection(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, *, dtype, device, operations):
        super().__init__()
        self.proj = operations.Linear(dim_in, dim_out, bias=True, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """`Linear → GELU(tanh) → Linear`, laid out as `net.0.proj` / `net.2` like the checkpoints."""

    def __init__(self, dim: int, *, dtype, device, operations, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([
            _GeluProjection(dim, dim * mult, dtype=dtype, device=device, operations=operations),
            nn.Identity(),
            operations.Linear(dim * mult, dim, bias=True, dtype=dtype, device=device),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class TransformerBlock(nn.Module):
    """Self-attention and feed-forward under adaLN modulation; cross-attention is plain (no norm, no gate)."""

    def __init__(self, dim: int, heads: int, context_dim: int, cfg: dict, *, dtype, device, operations, attention):
        super().__init__()
        kind, eps, affine = cfg["standardization_norm"], cfg["norm_eps"], cfg["norm_elementwise_affine"]
        common = dict(dtype=dtype, device=device, operations=operations)
        self.norm1 = _make_norm(kind, dim, eps, affine, **common)
        self.attn1 = Attention(dim, dim, heads, cfg["qk_norm"], attention=attention, **common)
        self.attn2 = Attention(dim, context_dim, heads, cfg["qk_norm"], attention=attention, **common)
        self.norm2 = _make_norm(kind, dim, eps, affine, **common)
        self.ff = FeedForward(dim, **common)
        self.num_ada = 6 if cfg["adaptive_norm"] == "single_scale_shift" else 4
        self.scale_shift_table = nn.Parameter(torch.empty(self.num_ada, dim, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor, *, context: torch.Tensor, context_bias: torch.Tensor | None,
                timestep: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                skip: tuple[torch.Tensor, str] | None) -> torch.Tensor:
        batch = x.shape[0]
        ada = _param(self.scale_shift_table, x)[None, None] + timestep.reshape(batch, timestep.shape[1],
                                                                                self.num_ada, -1)
        if self.num_ada == 6:
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = ada.unbind(dim=2)
        else:
            scale_msa, gate_msa, scale_mlp, gate_mlp = ada.unbind(dim=2)
            shift_msa = shift_mlp = 0.0

        h = self.norm1(x) * (1 + scale_msa) + shift_msa
        attn_skip = skip if skip is not None and skip[1] in ("attention_values", "attention_skip") else None
        out = x + gate_msa * self.attn1(h, rope=rope, skip=attn_skip)
        out = out + self.attn2(out, context=context, mask=context_bias)
        h = self.norm2(out) * (1 + scale_mlp) + shift_mlp
        out = out + gate_mlp * self.ff(h)
        if skip is not None and skip[1] == "transformer_block":
            out = torch.where(skip[0].view(batch, 1, 1), x, out)
        return out


class AdaLayerNormSingle(nn.Module):
    """σ → (per-block modulation `[·, k·D]`, embedded timestep `[·, D]`), PixArt-α style."""

    def __init__(self, dim: int, num_ada: int, *, dtype, device, operations):
        super().__init__()
        self.emb = nn.Module()
        self.emb.timestep_embedder = TimestepEmbedder(dim, dtype=dtype, device=device, operations=operations)
        self.linear = operations.Linear(dim, num_ada * dim, bias=True, dtype=dtype, device=device)

    def forward(self, timestep: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.emb.timestep_embedder(timestep, dtype)
        return self.linear(F.silu(embedded)), embedded


class CaptionProjection(nn.Module):
    def __init__(self, in_features: int, dim: int, *, dtype, device, operations):
        super().__init__()
        self.linear_1 = operations.Linear(in_features, dim, bias=True, dtype=dtype, device=device)
        self.linear_2 = operations.Linear(dim, dim, bias=True, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x), approximate="tanh"))


@dataclass
class BlockInputs:
    """What every transformer block of one forward reads besides the hidden states."""

    context: torch.Tensor
    context_bias: torch.Tensor | None
    modulation: torch.Tensor
    rope: tuple[torch.Tensor, torch.Tensor]
    perturbed: torch.Tensor | None
    skipped: set[int]
    strategy: str

    def skip(self, index: int) -> tuple[torch.Tensor, str] | None:
        if index in self.skipped and self.strategy != "residual":
            return self.perturbed, self.strategy
        return None

    def rows(self, rows: torch.Tensor | None) -> BlockInputs:
        """The inputs of some batch rows only (all when `rows` is None)."""
        if rows is None:
            return self

        def pick(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor[rows]

        return BlockInputs(self.context[rows], pick(self.context_bias), self.modulation[rows],
                           (self.rope[0][rows], self.rope[1][rows]), pick(self.perturbed), self.skipped,
                           self.strategy)


class Transformer3D(nn.Module):
    """LTX-Video transformer; `config` is the checkpoint's `transformer` config section."""

    def __init__(self, config: dict, *, dtype=None, device=None, compute_dtype: torch.dtype | None = None,
                 operations=nn, attention: AttentionFn = default_attention):
        super().__init__()
        cfg = transformer_settings(config)
        self.config = config
        heads, dim = cfg["num_attention_heads"], cfg["num_attention_heads"] * cfg["attention_head_dim"]
        self.inner_dim = dim
        self.compute_dtype = compute_dtype or dtype or torch.float32
        self.causal_temporal_positioning = cfg["causal_temporal_positioning"]
        self.rope_theta = cfg["positional_embedding_theta"]
        self.rope_max_pos = cfg["positional_embedding_max_pos"]
        self.timestep_scale = cfg["timestep_scale_multiplier"]
        common = dict(dtype=dtype, device=device, operations=operations)
        self.patchify_proj = operations.Linear(cfg["in_channels"], dim, bias=True, dtype=dtype, device=device)
        num_ada = 6 if cfg["adaptive_norm"] == "single_scale_shift" else 4
        self.adaln_single = AdaLayerNormSingle(dim, num_ada, **common)
        self.caption_projection = CaptionProjection(cfg["caption_channels"], dim, **common)
        self.transformer_blocks = nn.ModuleList([
            TransformerBlock(dim, heads, cfg["cross_attention_dim"], cfg, attention=attention, **common)
            for _ in range(cfg["num_layers"])
        ])
        self.scale_shift_table = nn.Parameter(torch.empty(2, dim, dtype=dtype, device=device))
        self.proj_out = operations.Linear(dim, cfg["out_channels"], bias=True, dtype=dtype, device=device)

    def forward(self, tokens: torch.Tensor, *, positions: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor | None, timestep: torch.Tensor,
                skip_layers: SkipLayers | tuple | None = None,
                skip_strategy: str = "attention_values", block_cache=None) -> torch.Tensor:
        """Velocity `[B, N, C]` for latent tokens `[B, N, C]` at σ `timestep` (`[B]` or per token `[B, N]`).

        `block_cache` (an `acceleration.BranchCache`) may replace the blocks after the first with a cached
        residual for some batch rows (step caching).
        """
        if skip_strategy not in STG_MODES:
            raise ValueError(f"skip_strategy '{skip_strategy}' is not one of {', '.join(STG_MODES)}")
        dtype = self.compute_dtype
        batch = tokens.shape[0]
        x = self.patchify_proj(tokens.to(dtype))
        context_bias = None
        if context_mask is not None:
            context_bias = ((1 - context_mask.to(dtype)) * -10000.0)[:, None, None, :]

        sigma = timestep.to(tokens.device).reshape(batch, -1)
        if self.timestep_scale:
            sigma = self.timestep_scale * sigma
        modulation, embedded = self.adaln_single(sigma.flatten(), dtype)
        modulation = modulation.view(batch, -1, modulation.shape[-1])
        embedded = embedded.view(batch, -1, embedded.shape[-1])
        rope = rope_frequencies(positions, self.inner_dim, self.rope_theta, self.rope_max_pos, dtype)
        context = self.caption_projection(context.to(dtype)).view(batch, -1, self.inner_dim)

        skipped, perturbed = self._skip_plan(skip_layers, batch, tokens.device)
        inputs = BlockInputs(context, context_bias, modulation, rope, perturbed, skipped, skip_strategy)
        if block_cache is None:
            x = self.run_blocks(x, inputs, 0, len(self.transformer_blocks))
        else:
            x = block_cache.run(x, lambda h: self.run_blocks(h, inputs, 0, 1),
                                lambda h, rows: self.run_blocks(h, inputs.rows(rows), 1,
                                                                len(self.transformer_blocks)))

        shift, scale = (_param(self.scale_shift_table, x)[None, None] + embedded[:, :, None]).unbind(dim=2)
        x = F.layer_norm(x, (self.inner_dim,), eps=1e-6) * (1 + scale) + shift
        return self.proj_out(x)

    def run_blocks(self, x: torch.Tensor, inputs: BlockInputs, start: int, stop: int) -> torch.Tensor:
        """Blocks `start` to `stop - 1` on hidden states `x` `[B, N, D]`."""
        for index in range(start, stop):
            skip = inputs.skip(index)
            x = self.transformer_blocks[index](x, context=inputs.context, context_bias=inputs.context_bias,
                                               timestep=inputs.modulation, rope=inputs.rope, skip=skip)
        return x

    def _skip_plan(self, skip_layers, batch: int, device) -> tuple[set[int], torch.Tensor | None]:
        if skip_layers is None:
            return set(), None
        blocks, perturbed = skip_layers
        num_layers = len(self.transformer_blocks)
        bad = [b for b in blocks if not 0 <= int(b) < num_layers]
        if bad:
            raise ValueError(f"skip_layers: block indices {bad} are out of range (the model has {num_layers} blocks)")
        perturbed = torch.as_tensor(perturbed, dtype=torch.bool, device=device).reshape(-1)
        if perturbed.numel() != batch:
            raise ValueError(f"skip_layers: the perturbed mask has {perturbed.numel()} entries for batch {batch}")
        return {int(b) for b in blocks}, perturbed


_DEFAULTS = {
    "adaptive_norm": "single_scale_shift",
    "standardization_norm": "layer_norm",
    "norm_elementwise_affine": True,
    "norm_eps": 1e-5,
    "qk_norm": None,
    "causal_temporal_positioning": False,
    "timestep_scale_multiplier": None,
    "activation_fn": "gelu-approximate",
    "positional_embedding_type": "rope",
}
_REQUIRED = ("num_attention_heads", "attention_head_dim", "num_layers", "in_channels", "caption_channels",
             "positional_embedding_theta", "positional_embedding_max_pos")


def transformer_settings(config: dict) -> dict:
    """Validate a checkpoint's transformer config and fill the reference's defaults."""
    missing = [k for k in _REQUIRED if config.get(k) is None]
    if missing:
        raise ValueError(f"transformer config: missing {', '.join(missing)}")
    cfg = {**_DEFAULTS, **{k: v for k, v in config.items() if v is not None or k not in _DEFAULTS}}
    allowed = {"adaptive_norm": ("single_scale_shift", "single_scale"), "activation_fn": ("gelu-approximate",),
               "positional_embedding_type": ("rope",), "qk_norm": (None, "rms_norm", "layer_norm")}
    for key, values in allowed.items():
        if cfg[key] not in values:
            raise ValueError(f"transformer config: {key}={cfg[key]!r} is not supported (allowed: {values})")
    cfg.setdefault("out_channels", cfg["in_channels"])
    cfg["out_channels"] = cfg["out_channels"] or cfg["in_channels"]
    dim = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    cfg["cross_attention_dim"] = cfg.get("cross_attention_dim") or dim
    if cfg["cross_attention_dim"] != dim:
        raise ValueError(f"transformer config: cross_attention_dim={cfg['cross_attention_dim']} must equal the "
                         f"inner dim {dim} (captions are projected to it)")
    return cfg
