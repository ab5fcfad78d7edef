"""Regional compilation of the transformer blocks: no graph breaks in a block's forward (dynamo's explain), the
same output as eager, and weights patched in place (ComfyUI's LoRA patching) take effect without a recompile.

The numerics run through dynamo + AOT autograd (`aot_eager`), which traces exactly what inductor would compile;
inductor's code generation itself takes minutes on a 2-core CPU, so its speed-up is measured by
`bench/bench_speed.py` and on a GPU by `bench/gpu_check.sh`.
"""

from __future__ import annotations

import pytest
import torch

from ltx_core import SkipLayers
from ltx_core.acceleration import compile_blocks
from ltx_core.models.transformer import Transformer3D
from support import tiny


def _model(seed: int = 0) -> Transformer3D:
    return tiny.randomize_(Transformer3D(tiny.transformer_config(num_layers=3)), seed).eval()


def _inputs(batch: int = 2, tokens: int = 24):
    g = torch.Generator().manual_seed(1)
    return dict(tokens=torch.randn(batch, tokens, 128, generator=g),
                positions=torch.rand(batch, 3, tokens, generator=g) * 10,
                context=torch.randn(batch, 6, 64, generator=g), context_mask=torch.ones(batch, 6),
                timestep=torch.rand(batch, generator=g))


def _block_call(model: Transformer3D, inputs: dict, **extra):
    """The arguments the first block receives in a real forward."""
    captured = {}
    block = model.transformer_blocks[0]
    original = block.forward

    def record(x, **kwargs):
        captured.update(kwargs, x=x)
        return original(x, **kwargs)

    block.forward = record
    try:
        model(inputs["tokens"], **{k: v for k, v in inputs.items() if k != "tokens"}, **extra)
    finally:
        del block.forward
    return captured.pop("x"), captured


@pytest.mark.parametrize("strategy", [None, "attention_values", "attention_skip", "transformer_block"])
def test_a_block_forward_has_no_graph_breaks(strategy):
    model, inputs = _model(), _inputs()
    extra = {} if strategy is None else dict(skip_layers=SkipLayers([0], torch.tensor([False, True])),
                                             skip_strategy=strategy)
    with torch.no_grad():
        x, kwargs = _block_call(model, inputs, **extra)
        explanation = torch._dynamo.explain(model.transformer_blocks[0])(x, **kwargs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_compiled_blocks_equal_eager_and_follow_in_place_weight_patches():
    torch._dynamo.reset()
    model, inputs = _model(), _inputs()
    call = {k: v for k, v in inputs.items() if k != "tokens"}
    with torch.no_grad():
        eager = model(inputs["tokens"], **call)
        compile_blocks(model, backend="aot_eager")
        compiled = model(inputs["tokens"], **call)
        assert (compiled - eager).abs().max().item() <= 1e-5
        frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        weight = model.transformer_blocks[1].ff.net[2].weight
        weight.add_(0.05)  # what a LoRA patch does to a weight in place
        patched = model(inputs["tokens"], **call)
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames  # no recompile
        weight.sub_(0.05)
        eager_patched_model = _model()
        eager_patched_model.transformer_blocks[1].ff.net[2].weight.add_(0.05)
        expected = eager_patched_model(inputs["tokens"], **call)
    assert (patched - expected).abs().max().item() <= 1e-5
    assert (patched - compiled).abs().max().item() > 1e-3
    assert compile_blocks(model) is model  # a second call changes nothing


def test_compiling_twice_leaves_the_compiled_blocks_as_they_are():
    """A second call (a loader run again, a model shared by two nodes) must not wrap the blocks anew: each new
    wrapper would recompile on its first use."""
    model = _model()
    compile_blocks(model, backend="aot_eager")
    wrappers = [block._compiled_call_impl for block in model.transformer_blocks]
    assert all(wrapper is not None for wrapper in wrappers)
    assert compile_blocks(model, backend="eager") is model
    assert [block._compiled_call_impl for block in model.transformer_blocks] == wrappers
