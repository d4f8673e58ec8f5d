"""Named network configurations.

Parameter counts (3 + 3 input channels, 3 output channels); every layout also attends in its middle
block, at the deepest level:

| preset     | params      | layout                                                                     |
|------------|-------------|----------------------------------------------------------------------------|
| `paper`    | 552,814,083 | ADM-256 without class embedding: 256 ch, mults 1,1,2,2,4,4, attention at 1/8, 1/16, 1/32 (32², 16², 8²) |
| `janspiry` |  62,641,347 | the public re-implementation: 64 ch, mults 1,2,4,8, middle attention only  |
| `base`     |  21,058,115 | 64 ch, mults 1,2,2,4, attention at 1/4 and 1/8                             |
| `small`    |   6,936,291 | 32 ch, mults 1,2,4,4, middle attention only                                |
| `tiny`     |     346,019 | 16 ch, mults 1,2,2, one res block per level, attention at 1/4; for tests   |

The paper reports ≈552M parameters; ADM-256 with Palette's 6 input and 3 output channels has
552.8M. Its ablation variants (``attention=...``) of the `paper` layout: `none_dilated` 617.0M
(paper: 624M), `none_more_res` 786.2M (paper: 603M; the paper does not say where it added blocks).

The public re-implementation's configs ask for ``attn_res: [16]``, a downsample factor its 4-level
network never reaches (1, 2, 4, 8), so only its middle block attends (at 1/8 of the image side); its
62.6M parameters are those of that network, which `janspiry` (and, likewise, `small`) reproduces.
"""

from __future__ import annotations

from .unet import UNetConfig

PRESETS: dict[str, UNetConfig] = {
    "paper": UNetConfig(image_size=256, model_channels=256, channel_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
                        attention_resolutions=(8, 16, 32), num_head_channels=64),
    "janspiry": UNetConfig(image_size=256, model_channels=64, channel_mult=(1, 2, 4, 8), num_res_blocks=2,
                           attention_resolutions=(), num_head_channels=32, dropout=0.2,
                           gamma_embedding="janspiry"),
    "base": UNetConfig(image_size=128, model_channels=64, channel_mult=(1, 2, 2, 4), num_res_blocks=2,
                       attention_resolutions=(4, 8), num_head_channels=32),
    "small": UNetConfig(image_size=64, model_channels=32, channel_mult=(1, 2, 4, 4), num_res_blocks=2,
                        attention_resolutions=(), num_head_channels=32),
    "tiny": UNetConfig(image_size=32, model_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                       attention_resolutions=(4,), num_head_channels=8, num_groups=8),
}


def preset(name: str) -> UNetConfig:
    """The named configuration (see :data:`PRESETS`); unknown names raise ``ValueError``."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown network preset {name!r}; choose from {', '.join(PRESETS)}") from None
