"""The Brownian bridge with a preconditioned network (``prediction = "preconditioned"``): the generating fill.

The bridge is :class:`~palette_cli.diffusion.bridge.BridgeProcess`'s, ``x_t = (1−t)·y0 + t·d + σ·√(t(1−t))·ε``,
but the clean estimate is built around the best *linear* guess of the photo from ``x_t`` (as EDM's
preconditioning, Karras et al. 2022, builds it around the noisy input). With ``z = y0 − d`` of spread ``s``
per pixel and ``w = x_t − d``:

    ŷ0 = d + g(t)·w + c(t)·F(x_t, t, cond),   g = s² / ((1−t)·s² + σ²·t),   c² = s²·σ²·t / ((1−t)·s² + σ²·t)

``g·w`` is E[z | w] for a Gaussian z (a Wiener shrinkage of the noisy state towards the start), ``c`` the
spread of what it leaves unexplained, so the network's target ``(z − g·w) / c`` has unit spread at every t
and the loss weighs every t alike. An untrained network (zero last layer) returns the start at t = 1 and
the state shrunk towards the start at t < 1 (less noisy than the plain residual bridge's untrained output,
its input, but still noisy: the shrinkage is per pixel, not spatial); training has to add what the linear
guess misses: spatial denoising, and the layout and texture of the unknown region.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import Tensor

from .bridge import BridgeProcess, sample_bridge, with_estimate_terms
from .process import bcast, masked_loss, number, run_net


class PreconditionedBridgeProcess(BridgeProcess):
    """A bridge whose network output is a scaled correction to the Wiener estimate of the photo (above)."""

    prediction: ClassVar[str] = "preconditioned"
    legacy_predictions: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "preconditioned-bridge"
    settings: ClassVar[dict[str, tuple[str, Any]]] = {
        **BridgeProcess.settings, "spread": ("spread", number)}
    #: a newer kind: every setting is written, except the sampler's noise rule when it is the first one
    LATER_SETTINGS: ClassVar[dict[str, Any]] = {"marginal": 0}
    feature_loss: ClassVar[bool] = True

    def __init__(self, sigma: float = 1.0, p_start: float = 0.1, start: str = "smooth", steps: int = 8,
                 time_power: float = 1.0, spread: float = 0.5, guess: str = "none", guess_time: float = 1.0,
                 eta: float = 1.0, marginal: int = 0):
        super().__init__(sigma, p_start, start, steps, time_power, guess, guess_time, eta, marginal)
        if not self.sigma > 0:
            raise ValueError(f"a preconditioned bridge needs sigma > 0, got {sigma!r}")
        if not (math.isfinite(spread) and spread > 0):
            raise ValueError(f"preconditioned bridge spread must be a finite number > 0, got {spread!r}")
        self.spread = float(spread)

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(g, c)`` of the module docstring for times ``t`` (any shape), float64."""
        t = t.double()
        s2, v = self.spread ** 2, self.sigma ** 2
        denom = (1 - t) * s2 + v * t
        return s2 / denom, (s2 * v * t / denom).clamp(min=0).sqrt()

    def _scales(self, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(g, c)`` for times ``t`` of shape (B,), broadcast against ``like`` (B,C,H,W) in its dtype."""
        g, c = self.coefficients(t)
        return bcast(g.to(like.dtype), like), bcast(c.to(like.dtype), like)

    def _estimate(self, out: Tensor, x: Tensor, start: Tensor, t: Tensor) -> Tensor:
        g, c = self._scales(t, x)
        return start + g * (x - start) + c * out

    def loss(self, net, batch, generator, *, loss="l2", autocast=False, feature=None, adversarial=None):
        """The masked L2 (L1) error of the network's scaled correction; with ``feature = (weight, fn)`` plus
        ``weight × fn(estimate, photo, mask)``, a feature loss on the clean estimate (``training.feature_loss``),
        and the same for ``adversarial`` (``training.adversarial_loss``: a patch critic's generator term)."""
        t, x_t = self.training_state(batch, generator)
        start = batch.get("start", batch["cond"])
        g, c = self._scales(t, x_t)
        target = (batch["target"] - start - g * (x_t - start)) / c
        out = run_net(net, x_t, t, batch["cond"], autocast)
        value = masked_loss(out, target, batch["mask"], loss)
        return with_estimate_terms(value, lambda: self._estimate(out, x_t, start, t), batch, (feature, adversarial),
                                   autocast)

    def sample(self, net, cond, start, settings, generator, *, impose=None, on_step=None, samples_of_one=False,
               guess=None):
        start = start.to(cond.device)

        def denoise(x: Tensor, t: Tensor) -> Tensor:
            return self._estimate(net(x, t, cond), x, start, t)

        x, times = self.sampling_path(cond, start, settings, generator, guess)
        return sample_bridge(denoise, x, start, times, self.sigma, generator=generator, impose=impose, on_step=on_step,
                             eta=self.resolve(settings).eta, marginal=bool(self.marginal))

    def denoiser(self, net, cond, settings=None):
        raise NotImplementedError("the preconditioned bridge's estimate needs the start: use sample()")

