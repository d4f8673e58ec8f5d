"""Defaults shared by the library and the CLI (no heavy imports here: the CLI's --help reads them)."""

#: The stochastic second-order sampler: as fast as DPM-Solver++(2M), and the fresh noise at every step
#: corrects errors of an imperfect network that the deterministic solvers carry into the image.
DEFAULT_SAMPLER = "dpmpp_2m_sde"

#: Every sampler name a model may use: the diffusion samplers of ``palette_cli.sampling`` and the bridge
#: process's own (a test checks this list against the registries).
SAMPLER_NAMES = ("dpmpp_2m_sde", "dpmpp_2m", "ddim", "ddpm", "bridge")
