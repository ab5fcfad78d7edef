"""fp8 matrix multiplies (`acceleration.fp8`): numerics of the scaled product against the bf16 upcast path on the
CPU (torch's `_scaled_mm` runs there too), and which layers take the fast path."""

from __future__ import annotations

import torch

from ltx_core.acceleration import can_use_fp8_matmul, scaled_fp8_linear, supports_fp8_matmul
from ltx_core.models.ops import fp8_matmul, manual_cast

pytest_plugins = ["support.comfy_host"]


def _layer(out_features: int = 64, in_features: int = 96, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    weight = (torch.randn(out_features, in_features, generator=g) / in_features ** 0.5).to(torch.float8_e4m3fn)
    bias = torch.randn(out_features, generator=g).to(torch.bfloat16)
    return weight, bias


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0).item()


def test_scaled_fp8_product_matches_the_upcast_product():
    weight, bias = _layer()
    x = (torch.randn(2, 40, 96) * 3000).to(torch.bfloat16)  # far beyond ±448: per-tensor scaling keeps them
    reference = torch.nn.functional.linear(x.float(), weight.float(), bias.float())
    fast = scaled_fp8_linear(x, weight, bias)
    assert fast.dtype == torch.bfloat16 and fast.shape == (2, 40, 64)
    relative = ((fast.float() - reference).norm() / reference.norm()).item()
    assert relative < 0.05 and _cosine(fast, reference) > 0.999
    # a wrong activation scale (e.g. forgetting to divide by it) is far off
    broken = torch._scaled_mm(x.reshape(-1, 96).float().clamp(-448, 448).to(torch.float8_e4m3fn), weight.t(),
                              scale_a=torch.ones(()), scale_b=torch.ones(()), out_dtype=torch.bfloat16)
    assert ((broken.float() - reference.reshape(-1, 64)).norm() / reference.norm()).item() > 10 * relative


def test_weight_scale_is_applied():
    weight, bias = _layer()
    x = torch.randn(8, 96, dtype=torch.bfloat16)
    plain, scaled = scaled_fp8_linear(x, weight), scaled_fp8_linear(x, weight, weight_scale=torch.tensor(2.0))
    assert torch.allclose(scaled.float(), 2 * plain.float(), rtol=0.02, atol=1e-2)


def test_only_aligned_e4m3_products_take_the_fast_path():
    weight, _ = _layer()
    x = torch.randn(4, 96, dtype=torch.bfloat16)
    assert can_use_fp8_matmul(x, weight)
    assert not can_use_fp8_matmul(x, weight.to(torch.float8_e5m2))
    assert not can_use_fp8_matmul(x, weight.to(torch.bfloat16))
    assert not can_use_fp8_matmul(torch.randn(4, 90), _layer(64, 90)[0])
    assert not supports_fp8_matmul("cpu")


def _fp8_layer(namespace, weight: torch.Tensor, bias: torch.Tensor) -> torch.nn.Linear:
    layer = namespace.Linear(weight.shape[1], weight.shape[0], dtype=torch.bfloat16)
    layer.weight = torch.nn.Parameter(weight.clone(), requires_grad=False)
    layer.bias = torch.nn.Parameter(bias.clone(), requires_grad=False)
    return layer


def test_fp8_matmul_layers_agree_with_manual_cast_and_fall_back_when_they_must():
    weight, bias = _layer()
    fast, cast = _fp8_layer(fp8_matmul, weight, bias), _fp8_layer(manual_cast, weight, bias)
    x = torch.randn(3, 12, 96, dtype=torch.bfloat16)
    with torch.no_grad():
        assert _cosine(fast(x), cast(x)) > 0.999 and not torch.equal(fast(x), cast(x))
        narrow_weight, narrow_bias = _layer(64, 90)
        narrow_fast = _fp8_layer(fp8_matmul, narrow_weight, narrow_bias)
        narrow_cast = _fp8_layer(manual_cast, narrow_weight, narrow_bias)
        odd = torch.randn(3, 12, 90, dtype=torch.bfloat16)
        assert torch.equal(narrow_fast(odd), narrow_cast(odd))  # unaligned: the upcast path, bit for bit


# ------------------------------------------------------------------------------------------------------------------
# Inside ComfyUI: the pack's layer ops


def test_comfy_fp8_matmul_ops_use_fp8_unless_a_patch_applies_at_use(ltx_pack):
    common = ltx_pack.nodes.common
    import comfy.ops

    weight, bias = _layer()
    fast = _fp8_layer(common.fp8_matmul_ops, weight, bias)
    cast = _fp8_layer(comfy.ops.manual_cast, weight, bias)
    x = torch.randn(2, 10, 96, dtype=torch.bfloat16)
    with torch.no_grad():
        assert _cosine(fast(x), cast(x)) > 0.999 and not torch.equal(fast(x), cast(x))
        assert torch.equal(fast(x), scaled_fp8_linear(x, weight, bias))

        def lora(w: torch.Tensor) -> torch.Tensor:  # what an fp8 LoRA patch does at use, in the compute dtype
            assert w.dtype == torch.bfloat16
            return w + 0.01

        fast.weight_function, cast.weight_function = [lora], [lora]
        assert torch.equal(fast(x), cast(x))


def test_fp8_matmul_ops_are_chosen_only_where_comfyui_has_fp8_compute(ltx_pack):
    common = ltx_pack.nodes.common
    import comfy.ops

    assert common.operations_for(torch.float8_e4m3fn, torch.bfloat16, torch.device("cpu")) is comfy.ops.manual_cast
    assert common.operations_for(torch.bfloat16, torch.bfloat16, torch.device("cpu")) is \
        comfy.ops.disable_weight_init
