"""`palette data fetch-people-photos`: the real reading code (Debian tree, wheel, source archive) on small
packages the test makes, turning photos upright, cutting one out, the fixed split and attribution."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from palette_cli.sources import people, photos
from palette_cli.sources.people import PeopleSource, PersonPhoto


def jpeg(width: int, height: int, marker: bool = False) -> bytes:
    """A grey photo; with ``marker``, its top-left 40×40 corner red."""
    im = Image.new("RGB", (width, height), (120, 120, 120))
    if marker:
        im.paste((255, 0, 0), (0, 0, 40, 40))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=95)
    return out.getvalue()


SOURCES = (
    PeopleSource("demo-album", "deb", "", "GPL-2+", "An Author", (
        PersonPhoto("usr/share/album/a.jpg", "album-a.jpg"),
        PersonPhoto("usr/share/album/sideways.jpg", "album-sideways.jpg", rotate=90, validation=True),
        PersonPhoto("usr/share/album/gone.jpg", "album-gone.jpg"),
        PersonPhoto("usr/share/album/tiny.jpg", "album-tiny.jpg"))),
    PeopleSource("screens", "deb", "", "GPL-3+", "Screen Maker", (
        PersonPhoto("usr/share/screens/shot.jpg", "screens-shot.jpg", crop=(100, 50, 400, 300)),)),
    PeopleSource("facelib", "wheel", "1.2", "MIT", "Lib Author", (
        PersonPhoto("facelib/data/me.jpg", "facelib-me.jpg", validation=True),)),
    PeopleSource("stims", "sdist", "3.0", "GPL-3.0-or-later", "", (
        PersonPhoto("stims-3.0/demo/face1.jpg", "stims-face1.jpg", credit="Jane Doe"),)),
)

FILES = {
    "usr/share/album/a.jpg": jpeg(320, 240),
    "usr/share/album/sideways.jpg": jpeg(300, 220, marker=True),
    "usr/share/album/tiny.jpg": jpeg(300, 150),
    "usr/share/screens/shot.jpg": jpeg(640, 480),
    "facelib/data/me.jpg": jpeg(250, 300),
    "stims-3.0/demo/face1.jpg": jpeg(400, 400),
}


@pytest.fixture
def packages(monkeypatch):
    """debian_download and python_download replaced by ones that build small packages locally; the rest
    (reading the tree, the wheel's zip, the source archive's tar) is the real code."""
    calls: list[str] = []

    def fake_deb(package: str, workdir: Path):
        calls.append(package)
        root = workdir / "x"
        for path, data in FILES.items():
            if path.startswith("usr/"):
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                (root / path).write_bytes(data)
        return root, "5.0-1"

    def fake_python(package: str, version: str, kind: str, workdir: Path):
        calls.append(package)
        members = {p: d for p, d in FILES.items() if not p.startswith("usr/")}
        if kind == "wheel":
            archive = workdir / f"{package}-{version}-py3-none-any.whl"
            with zipfile.ZipFile(archive, "w") as z:
                for path, data in members.items():
                    z.writestr(path, data)
        else:
            archive = workdir / f"{package}-{version}.tar.gz"
            with tarfile.open(archive, "w:gz") as t:
                for path, data in members.items():
                    info = tarfile.TarInfo(path)
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
        return archive

    monkeypatch.setattr(people, "debian_download", fake_deb)
    monkeypatch.setattr(people, "python_download", fake_python)
    monkeypatch.setattr(people, "_check_pip", lambda what="": None)
    return calls


def test_fetches_from_each_kind_of_package_turns_upright_cuts_out_and_splits(tmp_path, packages):
    report = people.fetch_people_photos(tmp_path, sources=SOURCES)
    assert sorted(report.fetched) == ["album-a.jpg", "album-sideways.jpg", "facelib-me.jpg", "screens-shot.jpg",
                                      "stims-face1.jpg"]
    assert report.missing == ["demo-album: usr/share/album/gone.jpg",
                              "demo-album: usr/share/album/tiny.jpg (short side 150 px < 200)"]
    # copied byte for byte unless turned or cut
    assert (tmp_path / "album-a.jpg").read_bytes() == FILES["usr/share/album/a.jpg"]
    assert (tmp_path / "facelib-me.jpg").read_bytes() == FILES["facelib/data/me.jpg"]
    assert (tmp_path / "stims-face1.jpg").read_bytes() == FILES["stims-3.0/demo/face1.jpg"]
    # 90° clockwise: 300×220 becomes 220×300 and the red top-left corner goes to the top right
    with Image.open(tmp_path / "album-sideways.jpg") as im:
        upright = np.asarray(im.convert("RGB")).astype(int)
    assert upright.shape == (300, 220, 3)
    assert upright[5:35, -35:-5, 0].mean() > 230 and upright[5:35, -35:-5, 1].mean() < 30
    assert upright[5:35, 5:35].mean() == pytest.approx(120, abs=4)
    with Image.open(tmp_path / "screens-shot.jpg") as im:
        assert im.size == (300, 250)
    split = json.loads((tmp_path / "split.json").read_text())
    assert split == {"train": ["album-a.jpg", "album-gone.jpg", "album-tiny.jpg", "screens-shot.jpg",
                               "stims-face1.jpg"],
                     "validation": ["album-sideways.jpg", "facelib-me.jpg"]}
    assert (tmp_path / "validation.txt").read_text().split() == split["validation"]
    records = {r["file"]: r for r in json.loads((tmp_path / "photos.json").read_text())["photos"]}
    assert records["album-sideways.jpg"]["original_path"] == \
        "/usr/share/album/sideways.jpg; rotated 90° clockwise"
    assert records["screens-shot.jpg"]["original_path"].endswith("cut out: box (100, 50, 400, 300)")
    assert records["album-a.jpg"]["version"] == "5.0-1" and records["album-a.jpg"]["licence"] == "GPL-2+"
    assert records["stims-face1.jpg"] == {
        "file": "stims-face1.jpg", "package": "stims (PyPI)", "version": "3.0",
        "original_path": "stims-3.0/demo/face1.jpg (sdist)", "licence": "GPL-3.0-or-later", "copyright": "Jane Doe"}
    attribution = (tmp_path / "ATTRIBUTION.md").read_text()
    assert "| facelib-me.jpg | facelib (PyPI) 1.2 | facelib/data/me.jpg (wheel) | MIT | Lib Author |" in attribution
    assert "album-gone.jpg" not in attribution


def test_second_run_fetches_only_what_is_missing(tmp_path, packages):
    people.fetch_people_photos(tmp_path, sources=SOURCES)
    packages.clear()
    again = people.fetch_people_photos(tmp_path, sources=SOURCES)
    # the album lacks two photos, so only it is fetched again; the others are kept
    assert packages == ["demo-album"]
    assert sorted(again.kept) == ["facelib-me.jpg", "screens-shot.jpg", "stims-face1.jpg"]
    assert sorted(again.fetched) == ["album-a.jpg", "album-sideways.jpg"]


def test_the_shipped_list_keeps_each_person_on_one_side_of_the_split():
    split = people.people_split()
    assert len(split["train"]) == 16 and len(split["validation"]) == 7
    assert not set(split["train"]) & set(split["validation"])
    names = [p.name for s in people.PEOPLE_SOURCES for p in s.photos]
    assert len(names) == len(set(names))
    # the same person or scene: never split across the two sides
    for group in (["kphotoalbum-bar55.jpg", "kphotoalbum-bar55_2.jpg"], ["kphotoalbum-pool.jpg", "kphotoalbum-pool_2.jpg"],
                  ["kphotoalbum-jesper.jpg", "kphotoalbum-jesper_2.jpg"],
                  ["psychopy-face01.jpg", "psychopy-face02.jpg", "psychopy-face03.jpg"]):
        assert len({name in split["train"] for name in group}) == 1
    # none of them is one of the development or held-out photos that results are reported on
    reserved = {p.name for ps in photos.DEV_PHOTOS.values() for p in ps}
    assert not {n.split("-", 1)[1] for n in names} & reserved


def test_cli_without_pip_or_apt_is_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from palette_cli.cli.app import app

    def no_apt(package, workdir):
        raise photos.PhotoFetchError("apt-get is not available: fetching the training photos needs a Debian-based "
                                     "system (apt-get and dpkg)")

    monkeypatch.setattr(people, "debian_download", no_apt)
    monkeypatch.setattr(people, "_check_pip", lambda what="": None)
    r = CliRunner().invoke(app, ["data", "fetch-people-photos", str(tmp_path / "people")])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert lines == ["kphotoalbum: downloading", "Error: apt-get is not available: fetching the training photos "
                     "needs a Debian-based system (apt-get and dpkg)"]
