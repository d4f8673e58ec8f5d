"""The photos taken from packages that credit each file: which files, their licence, author and source.

Every entry was checked by eye on a contact sheet (real photographs only: drawings, cartoons, digits,
paintings, renders and greyscale pictures were left out) and has a short side of at least 200 px.

* palapeli-data: the five puzzle photos. The package's copyright file covers them with ``Files: *``
  (GPL-2+); each puzzle's ``.desktop`` file names the photographer, the Wikimedia Commons page and the
  upstream licence, recorded in the credit.
* gcompris-qt-data: photos inside the Qt resource bundles ``/usr/share/gcompris-qt/rcc/ACTIVITY.rcc``.
  Licence, author and source are those of the upstream ``README`` that sits beside each image in the
  same bundle (Wikimedia Commons and publicdomainpictures.net photos: public domain, CC0, CC-BY, CC-BY-SA,
  and GPL for a few). The package's copyright file lists per-file entries for ``categorization`` that
  were written for older images of the same names and no longer match the shipped pictures; the
  in-bundle READMEs describe the current files. Three photos shipped twice (the same source in two
  activities) are listed once. Left out: ``lang`` (cartoons), ``paintings``, ``details`` paintings,
  ``babyshapes``/``leftright`` cut-outs, ``solar_system`` (space imagery), ``chronos`` (drawings),
  the alphabet and number blocks, one screwdriver whose README entry is missing, and the
  greyscale ``castleClinton``.
* ukui-wallpapers, gnome-backgrounds (43) and sway-backgrounds were checked too: every image in them is
  a render or a logo, so none is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import PurePosixPath

KINDS = ("animal", "object", "food", "building", "people", "landscape")


@dataclass(frozen=True)
class CreditedPhoto:
    """One photo: ``path`` under its source's root (for a bundled photo, the path inside ``bundle``)."""

    path: str
    label: str
    kind: str      # one of KINDS
    licence: str
    author: str
    source: str    # the upstream page of the original photo
    bundle: str = ""  # the .rcc file under the source's root that holds ``path``; "" for a plain file

    @property
    def credit(self) -> str:
        return f"{self.author}, {self.source}" if self.source else self.author


@dataclass(frozen=True)
class CreditedSource:
    """Photos inside one Debian package whose licence and credit are stated per file."""

    package: str
    root: str
    prefix: str
    photos: tuple[CreditedPhoto, ...]

    def outputs(self) -> list[tuple[str, str]]:
        """(path inside the package, output file name) pairs; a bundled photo's path is
        ``ROOT/BUNDLE.rcc!/PATH``."""
        return [(f"{self.root}/{p.bundle}!/{p.path}" if p.bundle else f"{self.root}/{p.path}",
                 f"{self.prefix}-{p.label}{PurePosixPath(p.path).suffix.lower()}") for p in self.photos]


_COMMONS = "https://commons.wikimedia.org/wiki/Image:"

PALAPELI = CreditedSource("palapeli-data", "usr/share/palapeli/collection", "palapeli", tuple(
    CreditedPhoto(f"{label}.jpg", label, kind, "GPL-2+", author, _COMMONS + page) for label, kind, author, page in (
        ("castle-maintenon", "building", "Eric Pouhier (upstream: FDL)", "EPO_2432_wiki.jpg"),
        ("cincinnati-bridge", "building", "Derek Jensen (upstream: public domain)",
         "Cincinnati-roebling-suspension-bridge.jpg"),
        ("citrus-fruits", "food", "US Department of Agriculture (upstream: public domain)", "Citrus_fruits.jpg"),
        ("european-honey-bee", "animal", "John Severns (upstream: public domain)",
         "European_honey_bee_extracts_nectar.jpg"),
        ("panther-chameleon-female", "animal", "B. Navez and others (upstream: GNU FDL)",
         "FurciferPardalisFemale.JPG"),
    )))

# (path under gcompris/src/activities/ in the bundle ACTIVITY.rcc, label, kind, licence, author, source), one
# tab-separated line each in the package data file photo_credits.tsv; an empty last field may lose its tab
_FIELDS = 6
_GCOMPRIS_TABLE: tuple[tuple[str, ...], ...] = tuple(
    tuple((line.split("\t") + [""] * _FIELDS)[:_FIELDS])
    for line in files(__package__).joinpath("photo_credits.tsv").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#"))


GCOMPRIS = CreditedSource("gcompris-qt-data", "usr/share/gcompris-qt/rcc", "gcompris", tuple(
    CreditedPhoto("gcompris/src/activities/" + path, label, kind, licence, author, source,
                  bundle=path.split("/", 1)[0] + ".rcc")
    for path, label, kind, licence, author, source in _GCOMPRIS_TABLE))

CREDITED_PHOTOS: tuple[CreditedSource, ...] = (PALAPELI, GCOMPRIS)

# Held out of training, chosen by hand across kinds, each the only photo of its subject in the set
# (output file names). The split adds them to the held-out wallpaper photos.
HELDOUT_PHOTOS: tuple[str, ...] = (
    # animals
    "gcompris-erase-red_panda.webp", "gcompris-erase-kingfisher.webp", "gcompris-erase-meerkats.webp",
    "gcompris-wild-koala.webp", "gcompris-farm-sheep.webp", "gcompris-fishes-fish9.webp",
    # objects and food
    "palapeli-citrus-fruits.jpg", "gcompris-others-cup.webp", "gcompris-others-bulb.webp",
    "gcompris-others-pan.webp", "gcompris-tools-plier4.webp", "gcompris-tools-spray.webp",
    # buildings and monuments
    "palapeli-castle-maintenon.jpg", "gcompris-monument-france-montStMichel.webp",
    "gcompris-monument-india-hawaMahal.webp", "gcompris-monument-usa-lincolnMemorial.webp",
    "gcompris-renewable-windmill13.webp", "gcompris-details-Nagoya.webp",
    # people
    "gcompris-music-italy.webp", "gcompris-music-mexico.webp", "gcompris-music-ireland.webp",
    # landscapes
    "gcompris-sea-5.webp", "gcompris-monument-usa-canyondeChelly.webp", "gcompris-renewable-geothermal.webp",
)
