"""Defaults shared by the library and the CLI (no heavy imports here: the CLI's --help reads them)."""

#: The stochastic second-order sampler: as fast as DPM-Solver++(2M), and the fresh noise at every step
#: corrects errors of an imperfect network that the deterministic solvers carry into the image.
DEFAULT_SAMPLER = "dpmpp_2m_sde"
