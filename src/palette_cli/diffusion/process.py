"""What a network predicts and how its output becomes an image: the interface every process implements.

A process is one class that owns, for its kind, everything that depends on what the network's output
means (as diffusers' ``ConfigMixin`` classes and k-diffusion's config ``type`` own theirs):

- what a model file records of it: ``objective`` and ``prediction`` (its key in
  :data:`~palette_cli.diffusion.registry.PROCESSES`) and its settings table (``settings``: the schema,
  :meth:`Process.from_spec` to read it with the constructor's defaults, :meth:`Process.metadata` to write it);
- what it asks of a network config (:meth:`Process.check_network`) and of a training config
  (:meth:`Process.check_training`: the losses it trains with, the tasks it can run at all), and the
  settings an export may choose after training (``decoding_keys``);
- the training target and its loss (:meth:`Process.loss`);
- the clean-image estimate from a network output (:meth:`Process.denoiser`), the state sampling starts
  from (:meth:`Process.initial_state`), the levels a sampler setting visits (:meth:`Process.levels`) and
  the sampling loop itself; whether a setting is deterministic and whether a fill keeps its start's detail.

The processes: :mod:`.gaussian` (ε and v diffusion, the regression baseline) and :mod:`.bridge` (the
Brownian bridge and its chroma-bin colorizer); the registry that rebuilds one from a model file:
:mod:`.registry`. :func:`sample_known` is the one sampling path with known pixels, taken by the pipeline
and by training validation alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import Tensor

from . import sampling
from .detail import lock_low_frequencies

#: ``net(y, level, cond) -> output``: the network with its condition and precision settings bound.
NetFn = Callable[[Tensor, Tensor, Tensor], Tensor]
#: ``denoise(state, level) -> clean-image estimate`` (level of shape (B,)): what every sampler takes.
X0Denoiser = sampling.Denoiser
StepCallback = Callable[[int, int], None]
Impose = Callable[[Tensor, float], Tensor]
#: ``read(value, name) -> value``: how one setting of a process table is read (one-line ``ValueError``).
Reader = Callable[[Any, str], Any]

#: What each training loss is, for messages.
LOSS_NAMES = {"l2": "squared error", "l1": "absolute error", "ce": "cross-entropy"}


def masked_loss(pred: Tensor, target: Tensor, mask: Tensor, kind: str = "l2") -> Tensor:
    """Mean L2 / L1 error over the masked elements (mask 1 = unknown pixels, where the loss counts)."""
    err = (pred.float() - target.float())
    err = err.square() if kind == "l2" else err.abs()
    mask = mask.float().expand_as(err)
    return (err * mask).sum() / mask.sum().clamp(min=1.0)


def number(value: Any, name: str) -> float:
    """A numeric setting."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"process setting {name} must be a number, got {value!r}") from None


def whole(value: Any, name: str) -> int:
    """An integer setting that a file or config may write as 4 or 4.0, never 4.5."""
    number_ = number(value, name)
    if not number_.is_integer():
        raise ValueError(f"process setting {name} must be a whole number, got {value!r}")
    return int(number_)


def text(value: Any, name: str) -> str:
    """A named choice."""
    if not isinstance(value, str):
        raise ValueError(f"process setting {name} must be a name, got {value!r}")
    return value


def bcast(x: Tensor, like: Tensor) -> Tensor:
    """Per-sample values (B,) shaped to broadcast over ``like`` (B, ...)."""
    return x.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def run_net(net: NetFn, y: Tensor, level: Tensor, cond: Tensor, autocast: bool) -> Tensor:
    """The network's output in float32, under bf16 autocast when asked (training)."""
    with torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=autocast):
        return net(y, level, cond).float()


@dataclass(frozen=True)
class SamplerSettings:
    """Which sampler, how many model calls, which level spacing, how much fresh noise per step (η: DDIM's,
    default 0; the bridge's, default 1). None: the model's / sampler's default."""

    sampler: str | None = None
    steps: int | None = None
    spacing: str | None = None
    eta: float | None = None
    temperature: float | None = None  # the chroma-bin colorizer's annealed-mean temperature


class Process:
    """The shared interface and its defaults; see the module docstring."""

    #: What a model file records as ``objective`` and ``prediction``: the process's registry key.
    objective: ClassVar[str] = ""
    prediction: ClassVar[str] = ""
    #: Predictions that older files and training configs record for this process (the training config's
    #: former default ``eps`` under every objective); read as this process, never written.
    legacy_predictions: ClassVar[tuple[str, ...]] = ()
    #: Its name in messages.
    kind: ClassVar[str] = ""
    #: The settings table: its key in files and configs → (constructor argument and attribute, reader).
    #: Defaults are the constructor's; a file or config may leave any setting out.
    settings: ClassVar[dict[str, tuple[str, Reader]]] = {}
    #: The tasks this kind of process can run at all; None: any image-to-image task.
    tasks: ClassVar[tuple[str, ...] | None] = None
    #: The training losses it accepts (``loss`` of a training config).
    losses: ClassVar[tuple[str, ...]] = ("l2", "l1")
    #: Whether its ``loss`` takes a feature loss on its clean estimate (``feature = (weight, fn)``).
    feature_loss: ClassVar[bool] = False
    #: Whether its ``loss`` takes a class-consistency loss on its clean estimate (``classes = (weight, fn)``).
    class_loss: ClassVar[bool] = False
    #: The settings ``palette export --decode KEY=VALUE`` may record as the model file's sampling defaults.
    decoding_keys: ClassVar[tuple[str, ...]] = ()
    #: Whether training and sampling call the network at one level only (a network without a level
    #: input can serve it).
    one_level: bool = False
    #: Where a fill (inpainting, uncropping) starts: a name in :data:`palette_cli.tasks.starts.FILL_STARTS`.
    fill_start: str = "mirror"
    #: A second fill the sampler may start from part-way (a bridge's ``guess``: a name in ``FILL_STARTS``),
    #: or None.
    fill_guess: str | None = None

    # -- what a file records
    @classmethod
    def read_spec(cls, spec: Mapping[str, Any] | None, *, strict: bool = False) -> dict[str, Any]:
        """The constructor arguments a settings table gives (missing settings keep their defaults).
        ``strict`` (training configs) refuses a setting this process does not have."""
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping):
            raise ValueError("the process settings must be a table")
        unknown = sorted(set(spec) - set(cls.settings) - {"kind"})
        if strict and unknown:
            known = f"known: {', '.join(cls.settings)}" if cls.settings else "it has none"
            raise ValueError(f"unknown setting(s) {', '.join(unknown)} of the {cls.kind} process ({known})")
        return {arg: read(spec[key], key) for key, (arg, read) in cls.settings.items() if key in spec}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None = None, schedule: Any = None, *,
                  strict: bool = False) -> "Process":
        """This process with a settings table's values; ``schedule`` matters to diffusion only."""
        return cls(**cls.read_spec(spec, strict=strict))

    def metadata(self) -> dict[str, Any]:
        """What a model file records in ``extra`` so that the registry rebuilds this process."""
        meta: dict[str, Any] = {"objective": self.objective, "prediction": self.prediction}
        if self.settings:
            meta["process"] = {"kind": self.objective,
                               **{key: getattr(self, arg) for key, (arg, _) in self.settings.items()}}
        return meta

    @classmethod
    def check_decoding(cls, decoding: Mapping[str, Any]) -> None:
        """Refuse (one line) export settings that this process does not choose after training."""
        if decoding and not cls.decoding_keys:
            raise ValueError(f"decoding settings (--anneal, --decode) apply to bridge models and chroma-bin "
                             f"colorizers; a {cls.kind} model has none")
        unknown = sorted(set(decoding) - set(cls.decoding_keys))
        if unknown:
            raise ValueError(f"unknown decoding setting(s) {', '.join(unknown)} for this model; known: "
                             f"{', '.join(cls.decoding_keys)}")

    # -- what it asks of a network and of training
    def check_network(self, net: Any) -> None:
        """Refuse (``ValueError``, one line) a network config that cannot serve this process: one without a
        level input where the process calls it at several levels, or an output head of the wrong kind."""
        if not getattr(net, "uses_level", True) and not self.one_level:
            raise ValueError(f"the {net.arch} network takes no level, and the {self.kind} process calls it at "
                             "several: choose a network with a level input")
        self.check_head(net)

    def output_classes(self) -> tuple[int, str]:
        """How many logits per block the network gives (0: it outputs pixels), and why."""
        return 0, "its network outputs pixels"

    def check_head(self, net: Any) -> None:
        classes, why = self.output_classes()
        if getattr(net, "num_classes", 0) != classes:
            raise ValueError(f"num_classes must be {classes} for the {self.kind} process ({why})")

    def check_training(self, tasks: Sequence[str], loss: str) -> None:
        """Refuse (``ValueError``, one line) a loss this process does not train with, or a task it cannot run."""
        if loss not in self.losses:
            allowed = " or ".join(f'"{name}" ({LOSS_NAMES.get(name, name)})' for name in self.losses)
            raise ValueError(f"the {self.kind} process trains with loss = {allowed}, not {loss!r}")
        other = [t for t in tasks if self.tasks is not None and t not in self.tasks]
        if other:
            raise ValueError(f"the {self.kind} process runs {', '.join(self.tasks or ())} only, not "
                             f"{', '.join(other)}: set task = \"{'+'.join(self.tasks or ())}\"")

    # -- description of a sampler setting
    def samplers(self) -> tuple[str, ...]:
        """The sampler names this process can run (the first is its default)."""
        from ..defaults import DEFAULT_SAMPLER

        return (DEFAULT_SAMPLER, *(name for name in sampling.SAMPLERS if name != DEFAULT_SAMPLER))

    def default_steps(self, sampler: str) -> int:
        return sampling.DEFAULT_STEPS[sampler]

    def check_temperature(self, settings: SamplerSettings) -> None:
        """Refuse an annealing temperature: only a process that decodes a distribution takes one."""
        if settings.temperature is not None:
            raise ValueError("this model does not decode a colour distribution: an annealing temperature "
                             "(--anneal) applies to chroma-bin colorization models only")

    def resolve(self, settings: SamplerSettings) -> SamplerSettings:
        """Fill in the defaults of a sampler setting and check it; ``ValueError`` names what is wrong."""
        sampler = settings.sampler or self.samplers()[0]
        if sampler not in self.samplers():
            raise ValueError(f"this model samples with {', '.join(self.samplers())}, not {sampler!r}")
        steps = settings.steps or self.default_steps(sampler)
        if steps < 1:
            raise ValueError("steps must be at least 1")
        self.check_temperature(settings)
        return SamplerSettings(sampler, steps, settings.spacing, settings.eta)

    def describe(self, settings: SamplerSettings) -> dict[str, str]:
        s = self.resolve(settings)
        return {"sampler": s.sampler, "sampling_steps": str(s.steps),
                "spacing": s.spacing or sampling.DEFAULT_SPACING.get(s.sampler, "uniform")}

    def model_calls(self, settings: SamplerSettings) -> int:
        """Network evaluations per sample (per window or tile)."""
        return self.resolve(settings).steps

    def keeps_start_detail(self, settings: SamplerSettings) -> bool:
        """Whether a fill (an example with known pixels) takes its start's detail on the sampled local
        means (:func:`sample_known`); no by default."""
        return False

    def is_deterministic(self, settings: SamplerSettings) -> bool:
        """Whether every sample of one input is the same under ``settings`` (then ``-n`` would give copies)."""
        return False

    # -- training
    def loss(self, net: NetFn, batch: dict[str, Tensor], generator: torch.Generator, *, loss: str = "l2",
             autocast: bool = False) -> Tensor:
        raise NotImplementedError

    # -- sampling
    def levels(self, settings: SamplerSettings) -> Tensor:
        raise NotImplementedError

    def initial_state(self, cond: Tensor, start: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def denoiser(self, net: NetFn, cond: Tensor) -> X0Denoiser:
        raise NotImplementedError

    def sample(self, net: NetFn, cond: Tensor, start: Tensor, settings: SamplerSettings,
               generator: torch.Generator, *, impose: Impose | None = None,
               on_step: StepCallback | None = None, samples_of_one: bool = False,
               guess: Tensor | None = None) -> Tensor:
        """Sample targets for a (B,C,h,w) condition; ``start`` is the task's starting image (bridge) and
        ``impose`` re-imposes known pixels after every step. ``guess``: the :attr:`fill_guess` fill, for a
        process that names one (others ignore it). ``samples_of_one``: the batch holds several
        samples of one input (``-n``); a process with a point estimate (the chroma process's annealed
        mean) gives it as the first and draws the others, and gives it for every item otherwise. Returns
        values clamped to [-1, 1]."""
        raise NotImplementedError


DETAIL_SIZE = 8  # the blur (at the working resolution) that splits a fill's local means from its detail


def sample_known(process: Process, net: NetFn, cond: Tensor, start: Tensor, settings: SamplerSettings,
                 generator: torch.Generator, *, known: Tensor | None = None, mask: Tensor | None = None,
                 on_step: StepCallback | None = None, samples_of_one: bool = False,
                 guess: Tensor | None = None) -> Tensor:
    """Sample with the known pixels (``mask`` 0) of ``known`` imposed after every step, and where the
    process keeps its start's detail, give the unknown pixels of every fill (an example with known pixels)
    the start's detail (what a ``DETAIL_SIZE``-pixel blur removes) on the sampled local means. The one
    sampling path of the pipeline and of training validation, so that a validation grid shows what the
    commands produce."""
    impose = None
    if mask is not None:
        def impose(y: Tensor, _level: float) -> Tensor:
            return y * mask + known * (1 - mask)

    out = process.sample(net, cond, start, settings, generator, impose=impose, on_step=on_step,
                         samples_of_one=samples_of_one, guess=guess)
    if mask is not None and process.keeps_start_detail(settings):
        fills = (mask < 0.5).flatten(1).any(1).view(-1, 1, 1, 1)
        kept = torch.where(mask.bool(), lock_low_frequencies(start, out, DETAIL_SIZE), out)
        out = torch.where(fills, kept, out)
    return out
