"""`palette study make` (the static 2AFC page) and `palette study score` (merged fool rates)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palette_cli.cli.app import app
from palette_cli.study import ANSWERS_FORMAT, score_answers, task_label, wilson_interval

from .conftest import make_photo
from .test_features import needs_effnet

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def make_eval_run(root: Path, task: str = "inpaint", methods=("identity", "telea"), photos: int = 2) -> Path:
    """A small comparison run folder of `palette eval` with baseline methods only (no model needed)."""
    refs = root / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    for i in range(photos):
        make_photo(40 + 8 * i, 36, seed=i).save(refs / f"photo{i}.png")
    out = root / f"eval-{task}"
    args = [a for m in methods for a in ("--method", m)]
    r = run("eval", "--task", task, *args, "--references", refs, "--size", 32, "--device", "cpu", "--threads", 1,
            "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    return out


def answers_file(path: Path, manifest: dict, choices: dict[str, bool], participant: str = "p", seed: int = 1,
                 **changes) -> Path:
    """An answers file as the page writes it: ``choices`` maps trial ids to whether the participant was fooled."""
    answers = []
    for k, trial in enumerate(t for t in manifest["trials"] if t["id"] in choices):
        side = "left" if k % 2 else "right"
        fooled = choices[trial["id"]]
        choice = side if fooled else ("right" if side == "left" else "left")
        answers.append({"trial": trial["id"], "task": trial["task"], "method": trial["method"],
                        "photo": trial["photo"], "generated_side": side, "choice": choice, "fooled": fooled,
                        "response_ms": 800})
    data = {"format": ANSWERS_FORMAT, "version": 1, "study_id": manifest["study_id"], "participant": participant,
            "seed": seed, "display_seconds": manifest["display_seconds"], "trials_total": len(manifest["trials"]),
            "answers": answers, **changes}
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    runs = root / "runs"
    make_eval_run(runs, "inpaint", ("identity", "telea"))
    make_eval_run(runs, "uncrop", ("mirror",))
    out = root / "page"
    r = run("study", "make", runs, "-o", out, "--seconds", 2.5)
    assert r.exit_code == 0, r.output
    return out, json.loads((out / "study.json").read_text()), runs


@needs_effnet
def test_study_page_is_self_contained(study):
    out, manifest, runs = study
    trials = manifest["trials"]
    assert len(trials) == 6 and manifest["display_seconds"] == 2.5
    assert [(t["task"], t["method"], t["photo"]) for t in trials] == [
        ("inpaint free_form_20_30", "identity", "photo0"), ("inpaint free_form_20_30", "identity", "photo1"),
        ("inpaint free_form_20_30", "telea", "photo0"), ("inpaint free_form_20_30", "telea", "photo1"),
        ("uncrop right", "mirror", "photo0"), ("uncrop right", "mirror", "photo1")]
    html = (out / "index.html").read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", html) and "http://" not in html
    assert "<link" not in html and "<script src" not in html and "@import" not in html
    embedded = json.loads(re.search(r'<script id="study-data" type="application/json">(.*?)</script>', html,
                                    re.S).group(1))
    assert embedded == manifest
    # images: named by content (nothing in a name tells original from generated), one copy each
    for t in trials:
        for role in ("original", "generated"):
            assert re.fullmatch(r"images/[0-9a-f]{20}\.png", t[role])
        run_dir = runs / ("eval-inpaint" if t["task"].startswith("inpaint") else "eval-uncrop")
        assert (out / t["original"]).read_bytes() == (run_dir / "references" / f"{t['photo']}.png").read_bytes()
        own = run_dir / "methods" / t["method"] if t["method"] != "mirror" else run_dir  # one method: a plain run
        generated = own / "outputs" / f"{t['photo']}_s0.png"
        assert (out / t["generated"]).read_bytes() == generated.read_bytes()
    files = {t[r] for t in trials for r in ("original", "generated")}
    assert len(files) == 8  # 6 outputs + the 2 originals (both runs share them), each copied once
    assert sorted(f"images/{p.name}" for p in (out / "images").iterdir()) == sorted(files)


@needs_effnet
def test_study_make_selects_and_refuses(study, tmp_path):
    out, manifest, runs = study
    r = run("study", "make", runs / "eval-inpaint", "-o", tmp_path / "one", "--method", "telea", "--photos", 1)
    assert r.exit_code == 0, r.output
    only = json.loads((tmp_path / "one" / "study.json").read_text())
    assert [(t["method"], t["photo"]) for t in only["trials"]] == [("telea", "photo0")]
    assert only["study_id"] != manifest["study_id"] and only["display_seconds"] == 3.0

    def one_line_error(*args, expect):
        r = run("study", "make", *args)
        assert r.exit_code != 0
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and expect in lines[0], r.output

    one_line_error(runs, "-o", out, expect="not empty")
    one_line_error(runs, "-o", tmp_path / "x", "--method", "ns", expect="no method ns")
    one_line_error(tmp_path / "nowhere", "-o", tmp_path / "y", expect="no such folder")
    (tmp_path / "empty").mkdir()
    one_line_error(tmp_path / "empty", "-o", tmp_path / "z", expect="neither a run folder")
    # overwriting a study leaves none of the old images behind
    r = run("study", "make", runs / "eval-uncrop", "-o", tmp_path / "one", "--overwrite")
    assert r.exit_code == 0, r.output
    again = json.loads((tmp_path / "one" / "study.json").read_text())
    assert len(list((tmp_path / "one" / "images").iterdir())) == len(
        {t[r] for t in again["trials"] for r in ("original", "generated")})


def test_wilson_interval_known_values():
    low, high = wilson_interval(3, 10)
    assert (round(low, 4), round(high, 4)) == (0.1078, 0.6032)
    assert wilson_interval(0, 20)[0] == 0 and wilson_interval(20, 20)[1] == 1
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(1 - high) and round(low, 4) == 0.4038
    assert task_label({"task": "jpeg", "jpeg_quality": 10}) == "jpeg q10"
    assert task_label({"task": "colorize"}) == "colorize"


@needs_effnet
def test_score_merges_participants(study, tmp_path):
    out, manifest, _ = study
    ids = [t["id"] for t in manifest["trials"]]
    # identity: 0 of 4 fooled; telea: 1 of 4; mirror: 3 of 4 (two participants, every trial each)
    a = answers_file(tmp_path / "a.json", manifest, dict(zip(ids, [False, False, True, False, True, True])), "ann")
    b = answers_file(tmp_path / "b.json", manifest, dict(zip(ids, [False, False, False, False, True, False])), "bob")
    report = tmp_path / "rates.json"
    r = run("study", "score", a, b, "--study", out, "-o", report)
    assert r.exit_code == 0, r.output
    data = json.loads(report.read_text())
    rates = {(x["task"], x["method"]): x for x in data["rates"]}
    assert {k: (v["fooled"], v["answers"], v["participants"]) for k, v in rates.items()} == {
        ("inpaint free_form_20_30", "identity"): (0, 4, 2), ("inpaint free_form_20_30", "telea"): (1, 4, 2),
        ("uncrop right", "mirror"): (3, 4, 2)}
    mirror = rates[("uncrop right", "mirror")]
    assert mirror["fool_rate"] == 0.75 and mirror["ci95"] == pytest.approx(list(wilson_interval(3, 4)))
    assert "| uncrop right | mirror | 2 | 4 | 3 | 75.0% |" in r.output
    assert data["study_id"] == manifest["study_id"] and data["refused"] == []

    # partial answers count for what they answered
    c = answers_file(tmp_path / "c.json", manifest, {ids[4]: True}, "cy")
    result, refused = score_answers([a, b, c])
    assert not refused and [x["answers"] for x in result["rates"]] == [4, 4, 5]


@needs_effnet
def test_score_refuses_bad_files_one_line_each(study, tmp_path):
    out, manifest, _ = study
    ids = [t["id"] for t in manifest["trials"]]
    good = answers_file(tmp_path / "good.json", manifest, {i: False for i in ids}, "ann")
    (tmp_path / "notjson.json").write_text("{oops")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    answers_file(tmp_path / "copy.json", manifest, {ids[0]: True}, "ann")  # same participant and seed as good
    answers_file(tmp_path / "study.json", manifest, {ids[0]: True}, "eve", study_id="0123456789abcdef")
    answers_file(tmp_path / "liar.json", manifest, {ids[0]: True}, "lia")
    liar = json.loads((tmp_path / "liar.json").read_text())
    liar["answers"][0]["fooled"] = False
    (tmp_path / "liar.json").write_text(json.dumps(liar))
    answers_file(tmp_path / "twice.json", manifest, {ids[0]: True}, "tom")
    twice = json.loads((tmp_path / "twice.json").read_text())
    twice["answers"].append(twice["answers"][0])
    (tmp_path / "twice.json").write_text(json.dumps(twice))
    answers_file(tmp_path / "empty.json", manifest, {}, "em")
    answers_file(tmp_path / "renamed.json", manifest, {ids[0]: True}, "ren")
    renamed = json.loads((tmp_path / "renamed.json").read_text())
    renamed["answers"][0]["method"] = "ns"
    (tmp_path / "renamed.json").write_text(json.dumps(renamed))

    expected = {"notjson.json": "not JSON", "other.json": "not an answers file",
                "copy.json": "same participant and seed as", "study.json": "answers to another study",
                "liar.json": "'fooled' contradicts", "twice.json": "answered twice", "empty.json": "no answers",
                "renamed.json": "is inpaint free_form_20_30/ns/photo0 here"}
    files = [good] + [tmp_path / name for name in expected]
    r = run("study", "score", *files, "-o", tmp_path / "rates.json")
    assert r.exit_code == 1
    refused = [line for line in r.output.splitlines() if line.startswith("Refused:")]
    assert len(refused) == len(expected)
    for name, reason in expected.items():
        [line] = [line for line in refused if f"{name}:" in line]
        assert reason in line, line
    scored = json.loads((tmp_path / "rates.json").read_text())
    assert scored["files"] == [str(good)] and sum(x["answers"] for x in scored["rates"]) == 6

    # against the manifest: a trial it does not hold is refused; nothing valid left is an error
    answers_file(tmp_path / "ghost.json", manifest, {ids[0]: True}, "gho")
    ghost = json.loads((tmp_path / "ghost.json").read_text())
    ghost["answers"][0]["trial"] = "t9999"
    (tmp_path / "ghost.json").write_text(json.dumps(ghost))
    r = run("study", "score", tmp_path / "ghost.json", "--study", out, "-o", tmp_path / "r2.json")
    assert r.exit_code == 1 and "t9999 is not in the study" in r.output and "no answers to score" in r.output
    assert not (tmp_path / "r2.json").exists()
