"""`ltx_core.models.grid`: the one owner of the model's grid, and the load-time check of a VAE against it."""

import pytest

from ltx_core import load_checkpoint
from ltx_core.models import grid
from support import tiny


def test_padded_and_latent_frame_counts_follow_8k_plus_1():
    assert [grid.padded_frame_count(n) for n in (1, 2, 9, 10, 89, 90)] == [1, 9, 9, 17, 89, 97]
    assert [grid.latent_frame_count(n) for n in (1, 9, 10, 97)] == [1, 2, 3, 13]


@pytest.mark.parametrize("temporal, spatial", [(4, 32), (8, 16), (8, 64)])
def test_a_vae_on_another_grid_is_refused_naming_both_grids(temporal, spatial):
    with pytest.raises(ValueError, match=rf"compresses {temporal} frames and {spatial}×{spatial} px.*8 frames and "
                                         r"32×32 px"):
        grid.check_vae_grid(temporal, spatial, "'x.safetensors'")
    grid.check_vae_grid(grid.FRAMES_PER_LATENT, grid.PIXELS_PER_LATENT, "'x.safetensors'")


def test_loading_a_vae_that_compresses_16_px_is_refused_with_the_file_named(tmp_path):
    config = tiny.vae_config(patch_size=2)  # 2 × 2**3 = 16 px per latent cell
    path = tiny.save_single_file(tmp_path / "odd-vae.safetensors", vae=tiny.reference_vae(config), vae_config_=config)
    with pytest.raises(ValueError, match=r"odd-vae\.safetensors.*compresses 8 frames and 16×16 px"):
        load_checkpoint(path)
