"""The native transformer equals the official `Transformer3DModel` (fp32, same weights, same inputs)."""

import pytest
import torch

from ltx_core import SkipLayers, latent_positions, load_checkpoint
from support import tiny

TOL = 1e-5


def _reference_strategy(name):
    from ltx_video.utils.skip_layer_strategy import SkipLayerStrategy

    return {"attention_values": SkipLayerStrategy.AttentionValues, "attention_skip": SkipLayerStrategy.AttentionSkip,
            "transformer_block": SkipLayerStrategy.TransformerBlock, "residual": SkipLayerStrategy.Residual}[name]


@pytest.fixture(scope="module", params=[(2, 32), (2, 24)], ids=["dim64-not-div-6", "dim48-div-6"])
def models(request, tmp_path_factory):
    from ltx_video.models.transformers.transformer3d import Transformer3DModel

    heads, head_dim = request.param
    config = tiny.transformer_config(heads=heads, head_dim=head_dim, num_layers=3)
    path = tmp_path_factory.mktemp("ckpt") / "tiny-transformer.safetensors"
    tiny.save_single_file(path, transformer=tiny.reference_transformer(config, responsive=True),
                          transformer_config_=config)
    reference = Transformer3DModel.from_pretrained(path).eval()
    ours = load_checkpoint(path).transformer
    return reference, ours, config


def _inputs(config, batch=2, frames=3, height=2, width=3, text_len=7, frame_rate=25.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, frames * height * width, 128, generator=g)
    positions = latent_positions((batch, 128, frames, height, width), frame_rate)
    context = torch.randn(batch, text_len, config["caption_channels"], generator=g)
    mask = torch.ones(batch, text_len, dtype=torch.long)
    mask[-1, 4:] = 0  # padding in the last prompt
    return tokens, positions, context, mask


def _reference(reference, tokens, positions, context, mask, timestep, **kwargs):
    with torch.no_grad():
        return reference(tokens, positions, encoder_hidden_states=context, timestep=timestep,
                         encoder_attention_mask=mask, return_dict=False, **kwargs)[0]


def _ours(ours, tokens, positions, context, mask, timestep, **kwargs):
    with torch.no_grad():
        return ours(tokens, positions=positions, context=context, context_mask=mask, timestep=timestep, **kwargs)


@pytest.mark.parametrize("per_token", [False, True], ids=["global-sigma", "per-token-sigma"])
def test_forward_matches_reference(models, per_token):
    reference, ours, config = models
    tokens, positions, context, mask = _inputs(config)
    g = torch.Generator().manual_seed(1)
    timestep = torch.rand(2, tokens.shape[1], generator=g) if per_token else torch.rand(2, 1, generator=g)
    expected = _reference(reference, tokens, positions, context, mask, timestep)
    got = _ours(ours, tokens, positions, context, mask, timestep)
    assert got.shape == (2, tokens.shape[1], 128)
    assert (got - expected).abs().max().item() <= TOL


def test_timestep_shape_b_equals_b1(models):
    _, ours, config = models
    tokens, positions, context, mask = _inputs(config)
    sigma = torch.tensor([0.3, 0.9])
    a = _ours(ours, tokens, positions, context, mask, sigma)
    b = _ours(ours, tokens, positions, context, mask, sigma[:, None])
    assert torch.equal(a, b)


def test_text_padding_is_masked(models):
    """Changing the context under a zero mask must not change the output (and it must under a one)."""
    _, ours, config = models
    tokens, positions, context, mask = _inputs(config)
    sigma = torch.tensor([0.5, 0.5])
    changed = context.clone()
    changed[1, 4:] += 5.0
    base = _ours(ours, tokens, positions, context, mask, sigma)
    assert (base[1] - _ours(ours, tokens, positions, changed, mask, sigma)[1]).abs().max() < 1e-3
    changed[1, :4] += 5.0
    assert (base[1] - _ours(ours, tokens, positions, changed, mask, sigma)[1]).abs().max() > 1e-3


@pytest.mark.parametrize("strategy", ["attention_values", "attention_skip", "transformer_block", "residual"])
def test_skip_strategies_match_reference_batch1(models, strategy):
    """The official [uncond, cond, perturbed] layout for batch 1, perturbing blocks 0 and 2."""
    reference, ours, config = models
    tokens, positions, context, mask = _inputs(config, batch=1)
    timestep = torch.full((3, 1), 0.7)
    batch3 = [torch.cat([t] * 3) for t in (tokens, positions, context, mask)]
    skip_mask = reference.create_skip_layer_mask(1, 3, 2, [0, 2])
    expected = _reference(reference, *batch3, timestep, skip_layer_mask=skip_mask,
                          skip_layer_strategy=_reference_strategy(strategy))
    got = _ours(ours, *batch3, timestep, skip_layers=SkipLayers([0, 2], torch.tensor([False, False, True])),
                skip_strategy=strategy)
    assert (got - expected).abs().max().item() <= TOL
    perturbation = (got[2] - got[1]).abs().max().item()
    assert perturbation < 1e-6 if strategy == "residual" else perturbation > 1e-4


@pytest.mark.parametrize("strategy", ["attention_values", "attention_skip", "transformer_block"])
def test_skip_strategies_batch2_perturb_only_flagged_entries(models, strategy):
    """For batch > 1 (where the official mask indexing is wrong) each entry is perturbed iff flagged, and a
    perturbed entry equals what the reference gives for that entry alone at batch 1."""
    reference, ours, config = models
    tokens, positions, context, mask = _inputs(config, batch=2)
    timestep = torch.tensor([[0.4], [0.8]])
    perturbed = torch.tensor([False, True])
    got = _ours(ours, tokens, positions, context, mask, timestep, skip_layers=([1], perturbed),
                skip_strategy=strategy)
    plain = _ours(ours, tokens, positions, context, mask, timestep)
    assert torch.equal(got[0], plain[0])
    one = [t[1:] for t in (tokens, positions, context, mask)]
    skip_mask = torch.zeros(len(reference.transformer_blocks), 1) + 1
    skip_mask[1, 0] = 0
    expected = _reference(reference, *one, timestep[1:], skip_layer_mask=skip_mask,
                          skip_layer_strategy=_reference_strategy(strategy))
    assert (got[1:] - expected).abs().max().item() <= TOL


def test_bad_skip_arguments_are_sentences(models):
    _, ours, config = models
    tokens, positions, context, mask = _inputs(config)
    sigma = torch.tensor([0.5, 0.5])
    with pytest.raises(ValueError, match="out of range"):
        _ours(ours, tokens, positions, context, mask, sigma, skip_layers=([99], torch.tensor([True, True])))
    with pytest.raises(ValueError, match="skip_strategy"):
        _ours(ours, tokens, positions, context, mask, sigma, skip_strategy="nope")


def test_positions_match_reference_pipeline():
    """Causal fix (frames 0, 1, 9, 17, ...) and time in seconds, as the official pipeline builds indices_grid."""
    from ltx_video.models.autoencoders.vae_encode import latent_to_pixel_coords_from_factors
    from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier

    latents = torch.zeros(2, 128, 4, 3, 5)
    _, coords = SymmetricPatchifier(patch_size=1).patchify(latents)
    pixel = latent_to_pixel_coords_from_factors(coords, (8, 32, 32), causal_fix=True).to(torch.float32)
    pixel[:, 0] = pixel[:, 0] * (1.0 / 24.0)
    ours = latent_positions(latents.shape, 24.0)
    assert torch.equal(ours, pixel)
    assert ours[0, 0].unique().mul(24).round().tolist() == [0.0, 1.0, 9.0, 17.0]


def test_bf16_compute_follows_reference_bf16(tmp_path):
    """In bf16 both implementations round the same way (RoPE cos/sin cast to bf16 as the reference does)."""
    from ltx_video.models.transformers.transformer3d import Transformer3DModel

    config = tiny.transformer_config()
    path = tiny.save_single_file(tmp_path / "t.safetensors", transformer=tiny.reference_transformer(config),
                                 transformer_config_=config)
    reference = Transformer3DModel.from_pretrained(path).to(torch.bfloat16).eval()
    ours = load_checkpoint(path, dtype=torch.bfloat16).transformer
    tokens, positions, context, mask = _inputs(config)
    timestep = torch.tensor([[0.3], [0.6]])
    bf = [tokens.bfloat16(), positions, context.bfloat16(), mask]
    expected = _reference(reference, *bf, timestep)
    got = _ours(ours, *bf, timestep)
    assert got.dtype == torch.bfloat16
    assert (got.float() - expected.float()).abs().max().item() <= 1e-2 * expected.float().abs().max().item()


@pytest.mark.parametrize("overrides", [
    {"standardization_norm": "layer_norm", "norm_elementwise_affine": True},
    {"adaptive_norm": "single_scale"},
    {"qk_norm": "layer_norm"},
    {"qk_norm": None},
], ids=["layer-norm-affine", "single-scale-adaln", "qk-layer-norm", "no-qk-norm"])
def test_other_block_configs_match_reference(tmp_path, overrides):
    """Config variants the reference supports besides the released 0.9.x settings."""
    from ltx_video.models.transformers.transformer3d import Transformer3DModel

    config = tiny.transformer_config(**overrides)
    path = tiny.save_single_file(tmp_path / "v.safetensors", transformer=tiny.reference_transformer(config),
                                 transformer_config_=config)
    reference = Transformer3DModel.from_pretrained(path).eval()
    ours = load_checkpoint(path).transformer
    tokens, positions, context, mask = _inputs(config)
    timestep = torch.tensor([[0.2], [0.9]])
    expected = _reference(reference, tokens, positions, context, mask, timestep)
    assert (_ours(ours, tokens, positions, context, mask, timestep) - expected).abs().max().item() <= TOL
