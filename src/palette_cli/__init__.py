"""palette-cli: Palette-style image-to-image diffusion for photo restoration and editing."""

__version__ = "0.1.0"
