"""The native latent upsampler equals the official `LatentUpsampler`."""

import pytest
import torch

from ltx_core import load_latent_upsampler
from support import tiny


@pytest.mark.parametrize("variant", [
    {"spatial_upsample": True, "temporal_upsample": False},
    {"spatial_upsample": False, "temporal_upsample": True},
    {"spatial_upsample": True, "temporal_upsample": True},
    {"dims": 2},
], ids=["spatial", "temporal", "spatiotemporal", "dims2"])
def test_upsampler_matches_reference(tmp_path, variant):
    from ltx_video.models.autoencoders.latent_upsampler import LatentUpsampler

    config = tiny.upsampler_config(**variant)
    path = tiny.save_upsampler(tmp_path / "up.safetensors", tiny.reference_upsampler(config), config)
    reference = LatentUpsampler.from_pretrained(path).eval()
    ours = load_latent_upsampler(path)
    latents = torch.randn(1, 128, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(latents), ours(latents)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5


def test_upsampler_without_config_uses_released_architecture(tmp_path):
    """A file without metadata is accepted only when it has the released 0.9.7 shapes."""
    from safetensors.torch import save_file

    config = tiny.upsampler_config()
    model = tiny.reference_upsampler(config)
    path = tmp_path / "noconfig.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with pytest.raises(ValueError, match="not an LTX-Video latent upsampler"):
        load_latent_upsampler(path)


def test_not_an_upsampler_is_a_sentence(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"foo.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValueError, match="not an LTX-Video latent upsampler"):
        load_latent_upsampler(path)
