"""The Brownian bridge and its chroma-bin colorizer (see :mod:`palette_cli.diffusion.process` for what a process owns).

- ``bridge``: a Brownian bridge from the degraded image to the clean one (InDI / I2SB style):
  ``x_t = (1−t)·y0 + t·d + σ·√(t(1−t))·ε`` for t in [0, 1], where d is the task's starting image (the
  JPEG, the gray photo, a classical fill). The network sees ``(x_t, t, cond)`` and its output is a
  residual on ``x_t``: ``ŷ0 = x_t + net(...)``. Sampling starts at t = 1, i.e. *at the degraded image*;
  one step is the regression baseline, more steps add the diversity the noise σ allows.
- ``chroma-bins`` (:class:`ChromaBridgeProcess`): the same bridge from the gray photo, but the network
  classifies each p×p block's colour into a grid of chroma bins; the clean estimate is the input's luma
  with the distribution's annealed-mean chroma (colorization only).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from . import sampling
from .chroma import (ChromaGrid, coherent_gumbel, joint_bilateral_upsample, rgb_to_ycc, segment_gumbel,
                     ycc_to_rgb)
from .process import (
    Impose,
    Process,
    SamplerSettings,
    StepCallback,
    X0Denoiser,
    bcast,
    masked_loss,
    number,
    run_net,
    text,
    whole,
)

class BridgeProcess(Process):
    """A Brownian bridge from the task's starting image d (t = 1) to the clean image (t = 0).

    ``x_t = (1−t)·y0 + t·d + σ·√(t(1−t))·ε``; the network output is a residual on x_t (zero-initialised
    last layer: an untrained network returns its input). Training draws t uniformly in (0, 1], with
    probability ``p_start`` exactly 1 (the first sampling step, which decides most of the result).
    """

    objective: ClassVar[str] = "bridge"
    prediction: ClassVar[str] = "residual"
    legacy_predictions: ClassVar[tuple[str, ...]] = ("eps", "v")
    kind: ClassVar[str] = "bridge"
    #: a loss on the clean estimate may be added (``training.feature_loss``, ``adversarial_loss``)
    feature_loss: ClassVar[bool] = True
    settings: ClassVar[dict[str, tuple[str, Any]]] = {
        "sigma": ("sigma", number), "p_start": ("p_start", number), "start": ("start", text),
        "steps": ("steps", whole), "time_power": ("time_power", number), "guess": ("guess", text),
        "guess_time": ("guess_time", number), "eta": ("eta", number), "marginal": ("marginal", whole)}
    #: Settings that the files of the first bridge models did not record: written only when one differs
    #: from its default, so those files' metadata stays as it was.
    LATER_SETTINGS: ClassVar[dict[str, Any]] = {"start": "mirror", "steps": 1, "time_power": 1.0, "guess": "none",
                                                "guess_time": 1.0, "eta": 1.0, "marginal": 0}
    #: Sampling defaults chosen after training (``palette export --decode``), the fill's start among them.
    decoding_keys: ClassVar[tuple[str, ...]] = ("steps", "time_power", "start", "guess", "guess_time", "eta",
                                                "marginal")

    #: The starts a fill may take (``tasks.starts.FILL_STARTS``): ``mirror`` (the known part reflected into the
    #: unknown one: the model refines a copy), ``smooth`` (local mean colours only: the model must make every
    #: detail) or ``exemplar`` (patches of the known part laid out anew: real texture, not a mirror).
    FILL_STARTS = ("mirror", "smooth", "exemplar")
    #: The guesses sampling may start from part-way: any start, or ``coarse``: the sample of the model file's
    #: coarse stage (a second network that lays the unknown part out at a low resolution,
    #: :mod:`palette_cli.tasks.coarse`).
    FILL_GUESSES = (*FILL_STARTS, "coarse")

    def __init__(self, sigma: float = 0.1, p_start: float = 0.25, start: str = "mirror", steps: int = 1,
                 time_power: float = 1.0, guess: str = "none", guess_time: float = 1.0, eta: float = 1.0,
                 marginal: int = 0):
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"bridge sigma must be a finite number >= 0, got {sigma!r}")
        if not 0 <= p_start <= 1:
            raise ValueError(f"bridge p_start must be in [0, 1], got {p_start!r}")
        if start not in self.FILL_STARTS:
            raise ValueError(f"bridge start must be one of {', '.join(self.FILL_STARTS)}, got {start!r}")
        if isinstance(steps, bool) or not float(steps).is_integer() or steps < 1:
            raise ValueError(f"bridge steps must be a whole number >= 1, got {steps!r}")
        if not (math.isfinite(time_power) and time_power > 0):
            raise ValueError(f"bridge time_power must be a finite number > 0, got {time_power!r}")
        if guess != "none" and guess not in self.FILL_GUESSES:
            raise ValueError(f"bridge guess must be none or one of {', '.join(self.FILL_GUESSES)}, got {guess!r}")
        if not (math.isfinite(guess_time) and 0 < guess_time <= 1):
            raise ValueError(f"bridge guess_time must be in (0, 1], got {guess_time!r}")
        self.sigma, self.p_start = float(sigma), float(p_start)
        self.start, self.steps, self.time_power = start, int(steps), float(time_power)
        self.guess, self.guess_time = guess, float(guess_time)
        if not (math.isfinite(eta) and 0 <= eta <= 1):
            raise ValueError(f"bridge eta must be in [0, 1], got {eta!r}")
        #: The fresh noise of each step when the user gives none (``--eta``): 1 the ancestral bridge sampler,
        #: 0 none after the first state (the deterministic path, each sample's spread from its start).
        self.eta = float(eta)
        if isinstance(marginal, bool) or marginal not in (0, 1):
            raise ValueError(f"bridge marginal must be 0 or 1, got {marginal!r}")
        #: 1: below η = 1 the noise a state carries is kept at the bridge's own level σ·√(t(1−t)) (the
        #: implicit sampler of Zheng et al. 2024, DDIM's rule on the bridge); 0: it shrinks by t/s each step
        #: (the posterior mean, I2SB's ``ot_ode``), so at η < 1 the network sees states less noisy than any it
        #: trained on. Both are the ancestral sampler at η = 1.
        self.marginal = int(marginal)

    @property
    def fill_start(self) -> str:  # type: ignore[override]
        return self.start

    @property
    def fill_guess(self) -> str | None:  # type: ignore[override]
        """The fill that sampling starts from part-way, at ``guess_time`` (SDEdit's trick, Meng et al. 2022,
        on the bridge): the state there is the bridge between the guess, taken for the photo, and the start,
        with its noise; the steps after it keep the guess's layout and texture where the model agrees with
        them and remake them where it does not. None: sampling starts at the start (t = 1)."""
        return None if self.guess == "none" or self.guess_time >= 1 else self.guess

    @property
    def one_level(self) -> bool:  # type: ignore[override]
        """Trained at the bridge's start only: the network is called at t = 1 (in one-step sampling too)."""
        return self.p_start == 1.0

    def metadata(self) -> dict[str, Any]:
        meta = super().metadata()
        spec = meta["process"]
        if all(spec.get(key, default) == default for key, default in self.LATER_SETTINGS.items()):
            for key in self.LATER_SETTINGS:
                spec.pop(key, None)
        return meta

    def check_network(self, net: Any) -> None:
        """A network without a level input must train at the start only (``p_start = 1``); one with a level
        input embeds the bridge time t (``gamma_embedding = "time"``)."""
        if not getattr(net, "uses_level", True):
            if not self.one_level:
                raise ValueError(f"the {net.arch} network takes no level, so it trains at the bridge's start only: "
                                 "set process.p_start = 1")
        elif getattr(net, "gamma_embedding", None) != "time":
            raise ValueError('a bridge model needs gamma_embedding = "time" (its level is the bridge time t)')
        self.check_head(net)

    def samplers(self) -> tuple[str, ...]:
        return ("bridge",)

    def default_steps(self, sampler: str) -> int:
        """The model's own default (chosen by measurement when it was exported; 1 for the first models)."""
        return self.steps

    def describe(self, settings):
        s = self.resolve(settings)
        described = {"sampler": "bridge", "sampling_steps": str(s.steps),
                     "spacing": "uniform" if self.time_power == 1 else f"t = u^{self.time_power:g}",
                     "bridge_sigma": f"{self.sigma:g}"}
        if self.fill_guess:
            described["bridge_guess"] = f"{self.fill_guess} from t = {self.guess_time:g}"
        if s.eta != 1:
            described["bridge_eta"] = f"{s.eta:g}"
            if self.marginal:
                described["bridge_noise"] = "marginal"
        return described

    def resolve(self, settings):
        # the bridge's own time spacing (levels), and the file's fresh-noise default where the user gives none
        return replace(super().resolve(settings), spacing="uniform",
                       eta=self.eta if settings.eta is None else float(settings.eta))

    def is_deterministic(self, settings):
        """One step returns the network's estimate at the start; more steps add noise σ (scaled by η). A fill
        that starts part-way from a guess starts from a noisy bridge state there, so its samples differ
        whatever the steps and η."""
        s = self.resolve(settings)
        if self.sigma == 0:
            return True
        # with the marginal rule the first step from the start draws the bridge's noise whatever η
        return self.fill_guess is None and (s.steps == 1 or (s.eta == 0 and not self.marginal))

    def keeps_start_detail(self, settings: SamplerSettings) -> bool:
        """Yes for one step. That step is the conditional mean E[photo | start]: the right local colours,
        but the reflected texture of the start averaged away where the model is unsure. Chosen on training
        photos, where it lowered the perceptual distance of centre holes, free-form holes and uncropping
        (docs/RESULTS.md, Study 6). The same for the patch synthesis, whose detail is the photo's own texture.
        Never for a smooth start: it has no detail, the model makes it."""
        return self.start in ("mirror", "exemplar") and self.resolve(settings).steps == 1

    def noisy(self, y0: Tensor, start: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """``x_t`` for clean images ``y0``, starting images ``start`` and times ``t`` of shape (B,)."""
        tt = bcast(t, y0)
        return (1 - tt) * y0 + tt * start + self.sigma * (tt * (1 - tt)).clamp(min=0).sqrt() * noise

    def draw_times(self, batch: int, generator: torch.Generator) -> Tensor:
        """t in (0, 1]: uniform, or exactly 1 with probability ``p_start`` (float32, shape (B,))."""
        u = 1 - torch.rand(batch, generator=generator, dtype=torch.float64)  # (0, 1]
        at_start = torch.rand(batch, generator=generator, dtype=torch.float64) < self.p_start
        return torch.where(at_start, torch.ones_like(u), u).float()

    def training_state(self, batch: dict[str, Tensor], generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A random time t (B,) and the state x_t of a training batch (known pixels kept clean)."""
        cond, target, mask = batch["cond"], batch["target"], batch["mask"]
        start = batch.get("start", cond)
        t = self.draw_times(target.shape[0], generator).to(target.device)
        noise = torch.randn(target.shape, generator=generator, dtype=target.dtype).to(target.device)
        # layout training (training/layout_guess.py): some states start from a guess at t <= its guess_time
        source = batch.get("guess", target)
        if "guess_time" in batch:
            t = t * batch["guess_time"].to(t)
        return t, mask * self.noisy(source, start, t, noise) + (1 - mask) * target

    def loss(self, net, batch, generator, *, loss="l2", autocast=False, feature=None, adversarial=None):
        """The masked L2 (L1) error of the clean estimate ``x_t + net``; with ``feature = (weight, fn)`` plus
        ``weight × fn(estimate, photo, mask)`` (``training.feature_loss``), and the same for ``adversarial``."""
        t, x_t = self.training_state(batch, generator)
        pred = x_t + run_net(net, x_t, t, batch["cond"], autocast)
        value = masked_loss(pred, batch["target"], batch["mask"], loss)
        return with_estimate_terms(value, lambda: pred, batch, (feature, adversarial), autocast)

    def levels(self, settings):
        """Times from 1 (the starting image) down to 0 (clean): ``t = u^time_power`` for ``u`` evenly spaced,
        ``steps`` model calls. A power above 1 puts more steps near the clean end, where the bridge's noise
        (σ·√(t(1−t))) falls fastest and the finest detail is made."""
        steps = self.resolve(settings).steps
        return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64) ** self.time_power

    def initial_state(self, cond, start, generator):
        return start.to(cond.device).clone()

    def sampling_path(self, cond: Tensor, start: Tensor, settings: SamplerSettings, generator: torch.Generator,
                      guess: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The first state and the times of the sampler: the start at t = 1, or with a guess (the fill
        :attr:`fill_guess` names) the bridge state between it and the start at ``guess_time``, fresh noise
        included, with the levels squeezed into [0, guess_time]."""
        times = self.levels(settings)
        if guess is None or self.fill_guess is None:
            return self.initial_state(cond, start, generator), times
        start = start.to(cond.device)
        t0 = torch.full((start.shape[0],), self.guess_time, dtype=start.dtype, device=start.device)
        noise = sampling.noise_like(start, generator)
        return self.noisy(guess.to(start), start, t0, noise), times * self.guess_time

    def denoiser(self, net, cond, settings: SamplerSettings | None = None):
        return lambda x, t: x + net(x, t, cond)

    def sample(self, net, cond, start, settings, generator, *, impose=None, on_step=None, samples_of_one=False,
               guess=None):
        x, times = self.sampling_path(cond, start, settings, generator, guess)
        return sample_bridge(self.denoiser(net, cond, settings), x, start.to(cond.device), times, self.sigma,
                             generator=generator, impose=impose, on_step=on_step,
                             eta=self.resolve(settings).eta, marginal=bool(self.marginal))


class ChromaBridgeProcess(BridgeProcess):
    """The gray→colour bridge with a classifying network (``prediction = "chroma-bins"``).

    The network (``num_classes`` = bins²) gives logits over a :class:`~palette_cli.diffusion.chroma.ChromaGrid` per
    p×p block of x_t. Training minimises the soft cross-entropy against the clean image's block-mean
    chroma; the clean estimate is the condition's luma (exact) with the annealed-mean chroma at
    ``temperature``, upsampled bilinearly. An L1/L2 regressor predicts a median/mean colour, muted where
    an object could have several; the annealed mean keeps the likeliest colours' saturation.
    ``rebalance`` (0: none, 0.5: Zhang et al.'s) weighs each pixel by the rarity of its colour in the
    batch: without it the likeliest colour is mostly the commonest (gray-brown) and the annealed mean
    moves *towards* gray.
    """

    prediction: ClassVar[str] = "chroma-bins"
    legacy_predictions: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "chroma-bins"
    settings: ClassVar[dict[str, tuple[str, Any]]] = {
        "sigma": ("sigma", number), "p_start": ("p_start", number), "chroma_bins": ("bins", whole),
        "chroma_extent": ("extent", number), "temperature": ("temperature", number),
        "rebalance": ("rebalance", number), "draw_strength": ("draw_strength", number),
        "draw_cells": ("draw_cells", whole), "guide_radius": ("guide_radius", whole),
        "chroma_gain": ("chroma_gain", number), "draw_temperature": ("draw_temperature", number),
        "draw_segments": ("draw_segments", whole), "flip_average": ("flip_average", whole)}
    #: Written only when they differ from their defaults, so the files made before them stay as they were.
    LATER_SETTINGS: ClassVar[dict[str, Any]] = {"chroma_gain": 1.0, "draw_temperature": 0.0, "draw_segments": 0,
                                                "flip_average": 0}
    tasks: ClassVar[tuple[str, ...] | None] = ("colorize",)
    losses: ClassVar[tuple[str, ...]] = ("ce",)
    class_loss: ClassVar[bool] = True
    feature_loss: ClassVar[bool] = False  # its estimate is a colour decoded from bins, not a residual
    #: Chosen after training on validation photos (``palette export --anneal / --decode``).
    decoding_keys: ClassVar[tuple[str, ...]] = ("temperature", "draw_strength", "draw_cells", "guide_radius",
                                                "chroma_gain", "draw_temperature", "draw_segments", "flip_average")

    def __init__(self, sigma: float = 0.25, p_start: float = 0.5, bins: int = 17, extent: float = 0.8,
                 temperature: float = 0.38, rebalance: float = 0.0, draw_strength: float = 0.5,
                 draw_cells: int = 2, guide_radius: int = 0, chroma_gain: float = 1.0,
                 draw_temperature: float = 0.0, draw_segments: int = 0, flip_average: int = 0):
        super().__init__(sigma, p_start)
        if int(flip_average) not in (0, 1):
            raise ValueError(f"chroma flip_average must be 0 or 1, got {flip_average!r}")
        #: 1: the colour distributions are the average of the photo's and its mirror image's (mirrored back), a
        #: test-time ensemble of two views that costs a second network call.
        self.flip_average = int(flip_average)
        if not 0 <= int(draw_segments) <= 64:
            raise ValueError(f"chroma draw_segments must be in [0, 64] (0: draws over a lattice), "
                             f"got {draw_segments!r}")
        #: Draws shared within this many segments of the predicted colour distributions (0: a smooth noise
        #: field over a ``draw_cells``² lattice instead).
        self.draw_segments = int(draw_segments)
        if not (math.isfinite(draw_temperature) and 0 <= draw_temperature <= 10):
            raise ValueError(f"chroma draw_temperature must be in [0, 10] (0: the annealing temperature), "
                             f"got {draw_temperature!r}")
        #: The draws' own annealing temperature (0: the same as the first sample's). A draw decoded at a
        #: low temperature commits to its drawn colours, where at the mean's temperature it stays near the mean.
        self.draw_temperature = float(draw_temperature)
        if not (math.isfinite(chroma_gain) and 0 < chroma_gain <= 3):
            raise ValueError(f"chroma_gain must be in (0, 3], got {chroma_gain!r}")
        self.chroma_gain = float(chroma_gain)
        if not (math.isfinite(draw_strength) and 0 <= draw_strength <= 4):
            raise ValueError(f"chroma draw_strength must be in [0, 4], got {draw_strength!r}")
        if not 1 <= int(draw_cells) <= 64:
            raise ValueError(f"chroma draw_cells must be in [1, 64], got {draw_cells!r}")
        self.draw_strength, self.draw_cells = float(draw_strength), int(draw_cells)
        if not 0 <= int(guide_radius) <= 64:
            raise ValueError(f"chroma guide_radius must be in [0, 64], got {guide_radius!r}")
        self.guide_radius = int(guide_radius)
        self.bins, self.extent = int(bins), float(extent)
        self.grid = ChromaGrid(self.bins, self.extent)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"chroma temperature must be a finite number > 0, got {temperature!r}")
        if not 0 <= rebalance < 1:
            raise ValueError(f"chroma rebalance must be in [0, 1) (0: none), got {rebalance!r}")
        self.temperature, self.rebalance = float(temperature), float(rebalance)

    def output_classes(self) -> tuple[int, str]:
        return self.grid.classes, f"the chroma grid's {self.bins}² bins"

    def describe(self, settings):
        return {**super().describe(settings), "temperature": f"{self._temperature(settings):g}"}

    def resolve(self, settings):
        t = settings.temperature
        if t is not None and not (math.isfinite(t) and t > 0):
            raise ValueError(f"the annealing temperature must be a number > 0, got {t!r}")
        if self.one_level and (settings.steps or 1) != 1:
            raise ValueError("this model was trained at the bridge's start only: it samples in one step "
                             "(leave out --sampling-steps)")
        return replace(super().resolve(replace(settings, temperature=None)), temperature=t)

    def _temperature(self, settings: SamplerSettings | None) -> float:
        t = self.resolve(settings).temperature if settings is not None else None
        return self.temperature if t is None else float(t)

    def loss(self, net, batch, generator, *, loss="ce", autocast=False, classes=None):
        """The soft cross-entropy of the chroma logits; with ``classes = (weight, fn)`` plus
        ``weight × fn(estimate, photo, mask)`` on the clean estimate the sampler would make (the annealed mean at
        ``temperature``, times ``chroma_gain``, on the condition's luma): a class-consistency loss
        (``training.class_loss``)."""
        target, mask = batch["target"], batch["mask"]
        t, x_t = self.training_state(batch, generator)
        logits = run_net(net, x_t, t, batch["cond"], autocast)
        factor = target.shape[-1] // logits.shape[-1]
        small = F.avg_pool2d(target.float(), factor) if factor > 1 else target.float()
        weight = F.avg_pool2d(mask.float(), factor) if factor > 1 else mask.float()
        value = self.grid.cross_entropy(logits, rgb_to_ycc(small)[1], weight[:, :1], rebalance=self.rebalance)
        if classes is not None:
            w, fn = classes
            estimate = self.colour(logits.float(), batch["cond"].float())
            with torch.autocast(x_t.device.type, dtype=torch.bfloat16, enabled=autocast):
                value = value + w * fn(estimate, target, mask)
        return value

    def colour(self, logits: Tensor, cond: Tensor, temperature: float | None = None) -> Tensor:
        """RGB clean estimate (B,3,H,W): ``cond``'s luma with the logits' annealed-mean chroma."""
        chroma = self.grid.decode(logits, self.temperature if temperature is None else temperature)
        return self._on_luma(chroma, cond)

    def _on_luma(self, chroma: Tensor, cond: Tensor) -> Tensor:
        """``cond``'s luma with ``chroma`` (times ``chroma_gain``: the annealed mean of a distribution spread
        over several hues is less saturated than any of them) upsampled to its size: bilinearly, or with
        ``guide_radius`` > 0 guided by the luma's edges
        (:func:`~palette_cli.diffusion.chroma.joint_bilateral_upsample`), as RGB."""
        luma = rgb_to_ycc(cond.float())[0]
        if self.chroma_gain != 1:
            chroma = chroma * self.chroma_gain
        if chroma.shape[-2:] != cond.shape[-2:]:
            if self.guide_radius:
                chroma = joint_bilateral_upsample(chroma, luma, radius=self.guide_radius)
            else:
                chroma = F.interpolate(chroma, size=cond.shape[-2:], mode="bilinear", align_corners=False)
        return ycc_to_rgb(luma, chroma).to(cond.dtype)

    def logits(self, net, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """The network's chroma logits (float32); with ``flip_average`` the log of the mean of the photo's and
        the mirrored photo's distributions (the second mirrored back)."""
        logits = net(x, t, cond).float()
        if not self.flip_average:
            return logits
        mirrored = net(x.flip(-1), t, cond.flip(-1)).float().flip(-1)
        return torch.logaddexp(logits.log_softmax(1), mirrored.log_softmax(1)) - math.log(2)

    def denoiser(self, net, cond, settings: SamplerSettings | None = None):
        temperature = self._temperature(settings)
        return lambda x, t: self.colour(self.logits(net, x, t, cond), cond, temperature)

    def is_deterministic(self, settings):
        return self.draw_strength == 0 and super().is_deterministic(settings)

    def sample(self, net, cond, start, settings, generator, *, impose=None, on_step=None, samples_of_one=False,
               guess=None):
        """One step: the network's colour distribution at the start, decoded per sample. Each sample is the
        annealed mean, except with ``samples_of_one``, where all but the first are spatially coherent draws
        (:func:`~palette_cli.diffusion.chroma.coherent_gumbel` noise on the logits, times ``draw_strength``, over a
        ``draw_cells``² lattice, or :func:`~palette_cli.diffusion.chroma.segment_gumbel` noise shared within
        ``draw_segments`` segments), decoded at ``draw_temperature`` where it is set. More steps (models trained
        at every t) run the bridge sampler instead."""
        s = self.resolve(settings)
        if s.steps > 1 or self.draw_strength == 0:
            return super().sample(net, cond, start, settings, generator, impose=impose, on_step=on_step)
        x = self.initial_state(cond, start, generator)
        if impose is not None:
            x = impose(x, 1.0)
        logits = self.logits(net, x, torch.ones(x.shape[0], device=x.device), cond)
        temperature = self._temperature(settings)
        chroma = self.grid.decode(logits[:1], temperature)  # the first sample is always the annealed mean
        if logits.shape[0] > 1:
            if samples_of_one:
                if self.draw_segments:
                    noise = segment_gumbel(logits[:1], generator, self.draw_segments, samples=logits.shape[0] - 1)
                else:  # drawn for the whole batch, as before draw_temperature, so a seed gives the same draws
                    noise = coherent_gumbel(tuple(logits.shape), generator, self.draw_cells, logits.device)[1:]
                noise = noise * self.draw_strength
                draws = self.grid.decode(logits[1:], self.draw_temperature or temperature, noise)
            else:
                draws = self.grid.decode(logits[1:], temperature)
            chroma = torch.cat([chroma, draws])
        out = self._on_luma(chroma, cond)
        if impose is not None:
            out = impose(out, 0.0)
        if on_step is not None:
            on_step(1, 1)
        return out.clamp(-1, 1)


def with_estimate_terms(value: Tensor, estimate: Callable[[], Tensor], batch: dict[str, Tensor],
                        terms: tuple[tuple[float, Callable[..., Tensor]] | None, ...], autocast: bool) -> Tensor:
    """``value`` plus ``weight × fn(estimate, photo, mask)`` for each ``(weight, fn)`` of ``terms`` that is given
    (``training.feature_loss``, ``adversarial_loss``), under bf16 autocast where training uses it; ``estimate``
    (the clean estimate) is made only when a term is given."""
    given = [term for term in terms if term is not None]
    if not given:
        return value
    target = batch["target"]
    with torch.autocast(target.device.type, dtype=torch.bfloat16, enabled=autocast):
        made = estimate()
        for weight, fn in given:
            value = value + weight * fn(made, target, batch["mask"])
    return value


@torch.no_grad()
def sample_bridge(denoiser: X0Denoiser, x: Tensor, start: Tensor, times: Tensor, sigma: float, *,
                  generator: torch.Generator | None = None, impose: Impose | None = None,
                  on_step: StepCallback | None = None, eta: float = 1.0, clip: float = 1.0,
                  marginal: bool = False) -> Tensor:
    """Ancestral sampling of a Brownian bridge, from t = times[0] (= 1) down to times[-1] (= 0).

    The bridge's noise part ``b_s = x_s − (1−s)·ŷ0 − s·d`` (d the starting image) is a Brownian bridge
    pinned to 0 at both ends, so given ``b_s`` its value at t < s is ``N((t/s)·b_s, σ²·t(s−t)/s)``; the
    step puts that around the new mean ``(1−t)·ŷ0 + t·d``. ``eta`` scales the fresh noise (0: the
    deterministic mean path). The last step (t = 0) returns ŷ0.

    ``marginal``: the noise part is instead ``√(σ²t(1−t) − ρ²)·ε̂ + ρ·z`` with ``ε̂ = b_s / (σ√(s(1−s)))`` the
    state's own noise, ``ρ = η·σ·√(t(s−t)/s)`` the fresh part and z fresh noise, so every state holds the
    bridge's marginal noise level whatever η (Zheng et al. 2024's implicit bridge sampler; the same step at
    η = 1). A state that holds no noise (the start, t = 1) draws its ε̂ fresh.
    """
    seq = [float(v) for v in times]
    if len(seq) < 2 or seq[0] > 1.0 or seq[-1] != 0.0 or any(b >= a for a, b in zip(seq, seq[1:])):
        raise ValueError("bridge times must decrease strictly from at most 1 to 0")
    n = len(seq) - 1
    if impose is not None:
        x = impose(x, seq[0])
    for i, (s, t) in enumerate(zip(seq, seq[1:])):
        level = torch.full((x.shape[0],), s, dtype=torch.float32, device=x.device)
        y0 = denoiser(x, level).to(x.dtype)
        if clip is not None:
            y0 = y0.clamp(-clip, clip)
        if t == 0.0:
            x = y0
        else:
            b = x - (1 - s) * y0 - s * start
            x = (1 - t) * y0 + t * start
            var = sigma ** 2 * t * (s - t) / s  # the posterior spread of the noise part, squared
            if marginal:
                fresh2 = eta ** 2 * sigma ** 2 * t * (s - t) / s  # η² × var, in the order first measured
                kept = math.sqrt(max(sigma ** 2 * t * (1 - t) - fresh2, 0.0))
                level = sigma * math.sqrt(s * (1 - s))
                if kept > 0:
                    x = x + kept * (b / level if level > 0 else sampling.noise_like(x, generator))
                if fresh2 > 0:
                    x = x + math.sqrt(fresh2) * sampling.noise_like(x, generator)
            else:
                x = x + (t / s) * b
                if eta > 0 and var > 0:
                    x = x + eta * math.sqrt(var) * sampling.noise_like(x, generator)
        if impose is not None:
            x = impose(x, t)
        if on_step is not None:
            on_step(i + 1, n)
    return x
