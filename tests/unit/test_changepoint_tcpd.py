"""Issue 38: reading TCPD-format folders (series JSON + annotations.json) and scoring them like TCPDBench.

The fixture is written here by hand (a few points); the real TCPD series are never part of the repository.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from wirewatch.changepoint import ChangepointConfig
from wirewatch.changepoint.evaluate import main, score_corpus, tcpd_f1
from wirewatch.changepoint.tcpd import read_annotations, read_folder, read_series
from wirewatch.errors import InputError


def _series(name: str, *dims: tuple[str, list]) -> dict:
    n = len(dims[0][1])
    return {"name": name, "longname": name, "n_obs": n, "n_dim": len(dims),
            "time": {"format": "%Y", "index": list(range(n)), "raw": [str(2000 + i) for i in range(n)]},
            "series": [{"label": label, "type": "float", "raw": raw} for label, raw in dims]}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """TCPD's layout: datasets/<name>/<name>.json, annotations.json at the top; one series only fetched
    by a script in TCPD (annotated, no file) and one file nobody annotated."""
    data = tmp_path / "datasets"
    step = _series("step", ("V1", [1.0, 1.1, None, 0.9, 5.0, 5.2, 4.9, 5.1]))
    two = _series("two_dim", ("pace", [3, 3, 3, 1, 1, 1]), ("distance", [0, 1, 2, 3, 4, 5]))
    for doc in (step, two, _series("orphan", ("V1", [1, 2, 3]))):
        (data / doc["name"]).mkdir(parents=True)
        (data / doc["name"] / f"{doc['name']}.json").write_text(json.dumps(doc))
    (tmp_path / "annotations.json").write_text(json.dumps({
        "step": {"6": [4], "7": [4, 5], "8": []},
        "two_dim": {"6": [3]},
        "apple": {"6": [10]},  # TCPD fetches this one with a script: no file here
    }))
    (tmp_path / "checksums.json").write_text("{}")
    return tmp_path


def test_the_folder_reads_every_annotated_series_with_nulls_as_nan_and_all_annotators(folder: Path) -> None:
    streams = {s.name: s for s in read_folder(folder)}
    assert sorted(streams) == ["step", "two_dim"]  # orphan (no annotations) and apple (no file) left out
    step = streams["step"]
    assert list(step.frames) == list(range(8))
    assert list(step.stats) == ["V1"]
    assert math.isnan(step.stats["V1"][2]) and step.stats["V1"][4] == 5.0
    assert step.annotations == ((4,), (4, 5), ())
    assert step.annotators() == [[4], [4, 5], []]
    two = streams["two_dim"]
    assert list(two.stats) == ["pace", "distance"] and two.annotators() == [[3]]


def test_tcpdbench_f1_on_the_fixture(folder: Path) -> None:
    step = {s.name: s for s in read_folder(folder)}["step"]
    # precision against the union {0, 4, 5}, recall averaged over the three annotators, start counted
    # as a change for both: a detection at 4 -> P = 2/2, R = mean(2/2, 2/3, 1/1) = 8/9
    assert tcpd_f1(step.annotators(), [4]) == pytest.approx(2 * 1 * (8 / 9) / (1 + 8 / 9))
    # no detection: P = 1/1, R = mean(1/2, 1/3, 1) = 11/18
    assert tcpd_f1(step.annotators(), []) == pytest.approx(2 * (11 / 18) / (1 + 11 / 18))


def test_score_corpus_scores_against_every_annotator_with_the_zero_baseline(folder: Path) -> None:
    streams = read_folder(folder)
    score = score_corpus("tcpd", "default", streams, ChangepointConfig())
    # 8 and 6 points: the 50-frame warm-up reports nothing, so every score equals the zero baseline
    assert score.detections == 0
    assert score.f1 == pytest.approx(score.zero_f1)
    assert score.zero_f1 == pytest.approx((2 * (11 / 18) / (1 + 11 / 18) + 2 * 0.5 / 1.5) / 2)
    assert score.true_changes == 2 + 1  # union per series: {4, 5} and {3}
    assert [s["name"] for s in score.streams] == ["step", "two_dim"]


def test_the_evaluate_command_scores_a_tcpd_folder(folder: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rows.json"
    main(["--no-corpus", "--tcpd", str(folder), "--per-series", "--json", str(out),
          "--detectors", "default (binseg/linear + trend CUSUM)"])
    printed = capsys.readouterr().out
    assert "TCPD (real annotated series)" in printed and "step" in printed
    rows = json.loads(out.read_text())
    assert rows[0]["family"] == "TCPD (real annotated series)"
    assert {s["name"] for s in rows[0]["streams"]} == {"step", "two_dim"}
    assert rows[0]["zero_f1"] == pytest.approx(rows[0]["f1"])


@pytest.mark.parametrize(("doc", "message"), [
    ({"series": []}, "non-empty 'series'"),
    ({"series": [{"label": "V1", "raw": [1, "x"]}]}, "numbers or null"),
    ({"n_obs": 3, "series": [{"label": "V1", "raw": [1, 2]}]}, "n_obs is 3"),
    ({"series": [{"raw": [1, 2]}, {"raw": [1]}]}, "different lengths"),
])
def test_a_malformed_series_file_is_an_error_naming_the_problem(tmp_path: Path, doc: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=message):
        read_series(path)


def test_bad_annotations_and_missing_folders_are_errors(tmp_path: Path) -> None:
    (tmp_path / "annotations.json").write_text(json.dumps({"s": {"6": [-1]}}))
    with pytest.raises(InputError, match="indices >= 0"):
        read_annotations(tmp_path / "annotations.json")
    (tmp_path / "datasets").mkdir()
    with pytest.raises(InputError, match=r"no annotations\.json"):
        read_folder(tmp_path / "datasets")
    with pytest.raises(InputError, match="does not exist"):
        read_folder(tmp_path / "nowhere")
    path = tmp_path / "s.json"
    path.write_text(json.dumps(_series("s", ("V1", [1, 2, 3]))))
    with pytest.raises(InputError, match="beyond the series"):
        read_series(path, ((5,),))
