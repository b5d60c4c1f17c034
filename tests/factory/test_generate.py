"""envsim scenarios generate: deterministic bytes, splits, holdout families, atomic writes under kill, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from envsim.cli import app
from envsim.factory.generate import MANIFEST, generate_suite, parse_split, split_of, suite_digest
from envsim.loader import load_scenario

FAMILIES = Path(__file__).parent / "families"
REFUND = FAMILIES / "retail" / "refund_damaged_unit.yaml"
REFUSAL = FAMILIES / "retail" / "cancel_shipped_refusal.yaml"
REPO = Path(__file__).resolve().parents[2]


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.yaml"))


def test_the_same_arguments_give_byte_identical_files_whatever_the_workers(tmp_path: Path) -> None:
    splits = parse_split("train=0.8,dev=0.1,test=0.1")
    one = generate_suite([REFUND, REFUSAL], count=12, seed=4, out=tmp_path / "a", splits=splits)
    generate_suite([REFUND, REFUSAL], count=12, seed=4, out=tmp_path / "b", splits=splits)
    generate_suite([REFUND, REFUSAL], count=12, seed=4, out=tmp_path / "c", splits=splits, workers=2)
    assert one.manifest["counts"]["total"] == 24
    assert suite_digest(tmp_path / "a") == suite_digest(tmp_path / "b") == suite_digest(tmp_path / "c")
    other = generate_suite([REFUND, REFUSAL], count=12, seed=5, out=tmp_path / "d", splits=splits)
    assert suite_digest(tmp_path / "d") != suite_digest(tmp_path / "a")
    assert other.manifest["counts"]["total"] == 24


def test_a_rerun_leaves_every_file_as_it_was(tmp_path: Path) -> None:
    first = generate_suite([REFUND], count=5, seed=1, out=tmp_path)
    times = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    again = generate_suite([REFUND], count=5, seed=1, out=tmp_path)
    assert (first.written, first.unchanged) == (5, 0)
    assert (again.written, again.unchanged) == (0, 5)
    assert times == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}


def test_each_file_is_an_ordinary_scenario_with_its_source(tmp_path: Path) -> None:
    result = generate_suite([REFUND, REFUSAL], count=4, seed=2, out=tmp_path)
    files = _yaml_files(tmp_path)
    assert len(files) == 8 == result.manifest["counts"]["total"]
    for path in files:
        scenario = load_scenario(path)
        assert path.stem == scenario.id and path.parent.name == "retail" and path.parents[1].name == "train"
        assert scenario.source is not None and scenario.source.family in scenario.id
        assert scenario.source.seed == 2 and scenario.source.generator == "envsim-factory/1"
        assert set(scenario.source.parameters) == {"world_seed", "bindings", "choices"}
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert data == scenario.model_dump(mode="json", exclude_unset=True)
    manifest = json.loads((tmp_path / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["splits"] == {"train": 8}
    assert manifest["families"]["TestRetailCancelShippedRefusal"]["kind"] == "refusal"
    assert set(manifest["drops"]) >= {"invalid", "unsolvable", "do_nothing_passes", "trap_passes", "near_duplicate"}


def test_instances_sharing_their_records_never_straddle_splits(tmp_path: Path) -> None:
    splits = parse_split("train=0.5,dev=0.25,test=0.25")
    generate_suite([REFUND], count=60, seed=0, out=tmp_path, splits=splits)
    where: dict[str, set[str]] = defaultdict(set)
    for path in _yaml_files(tmp_path):
        scenario = load_scenario(path, lint=False)
        assert scenario.source is not None
        params = scenario.source.parameters
        where[json.dumps([params["world_seed"], params["bindings"]], sort_keys=True)].add(path.parents[1].name)
    assert all(len(found) == 1 for found in where.values())
    assert len(where) < 60  # some records drew twice (another reason): the check bites
    assert {s for found in where.values() for s in found} == {"train", "dev", "test"}


def test_holdout_families_go_whole_to_the_holdout_split(tmp_path: Path) -> None:
    result = generate_suite(
        [REFUND, REFUSAL],
        count=6,
        seed=0,
        out=tmp_path,
        splits=parse_split("train=0.5,test=0.5"),
        holdout=["TestRetailCancelShippedRefusal"],
    )
    holdout = {p.stem for p in (tmp_path / "holdout").rglob("*.yaml")}
    assert len(holdout) == 6 and all(s.startswith("TestRetailCancelShippedRefusal") for s in holdout)
    others = {p.stem for p in tmp_path.rglob("*.yaml")} - holdout
    assert len(others) == 6 and all(s.startswith("TestRetailRefundDamagedUnit") for s in others)
    assert result.manifest["holdout_families"] == ["TestRetailCancelShippedRefusal"]
    with pytest.raises(ValueError, match="names no family given: Nope"):
        generate_suite([REFUND], count=1, seed=0, out=tmp_path / "x", holdout=["Nope"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train=0.8,dev", "'dev' is not NAME=SHARE"),
        ("train=x", "'x' is not a number"),
        ("train=2", "must be within [0, 1]"),
        ("train=0.5,train=0.5", "given twice"),
        ("holdout=1", "reserved"),
        ("train=0,dev=0", "must not all be 0"),
    ],
)
def test_a_bad_split_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_split(text)


def test_split_buckets_follow_the_shares() -> None:
    splits = [("train", 0.8), ("dev", 0.1), ("test", 0.1)]
    assert split_of("0" * 64, splits) == "train"
    assert split_of("f" * 64, splits) == "test"
    assert split_of("e" + "0" * 63, splits) == "dev"  # 0.875 of the way: past train's 0.8, within dev's 0.9


def _generate_command(out: Path, count: int) -> list[str]:
    code = "import sys; from envsim.cli import main; sys.argv[0] = 'envsim'; main()"
    return [sys.executable, "-c", code, "scenarios", "generate", str(REFUND), "--count", str(count), "--seed", "9",
            "--out", str(out)]  # fmt: skip


def test_a_killed_run_leaves_only_whole_files_and_a_rerun_completes_it(tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    killed = tmp_path / "killed"
    count = 150
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(_generate_command(killed, count), cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(_yaml_files(killed)) < 5 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = _yaml_files(killed)
    assert 5 <= len(partial) < count, "the run was not killed mid-way"
    assert not (killed / MANIFEST).exists()  # the manifest is written last
    subprocess.run(_generate_command(clean, count), cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    for path in partial:  # every file the killed run left is whole: the same bytes as the clean run's
        assert path.read_bytes() == (clean / path.relative_to(killed)).read_bytes()
    subprocess.run(_generate_command(killed, count), cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    assert not [p for p in killed.rglob("*") if p.name.endswith(".tmp")]
    assert suite_digest(killed) == suite_digest(clean)


def test_the_command_ends_with_its_json_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["scenarios", "generate", str(FAMILIES), "--count", "3", "--seed", "1", "--out", str(tmp_path), "--json"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert payload["total"] == 6 and payload["written"] == 6
    assert payload["per_toolkit"] == {"retail": 6}
    assert payload["per_family"] == {"TestRetailCancelShippedRefusal": 3, "TestRetailRefundDamagedUnit": 3}
    assert set(payload["drops"]) >= {"invalid", "unsolvable", "near_duplicate", "duplicate_parameters"}


def test_bad_input_exits_2_with_located_problems_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(REFUND.read_text(encoding="utf-8").replace("refund_items", "refund_itemz"), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["scenarios", "generate", str(REFUND), str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert f"{bad}:50:15: scenario.expected.actions.2.name: unknown tool 'refund_itemz'" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    unknown = CliRunner().invoke(app, ["scenarios", "generate", "TestRetailRefundDamagedUnt", "--out", str(out)])
    assert unknown.exit_code == 2
    assert "is no family file, folder, toolkit or family name" in unknown.output


def test_yaml_out_is_what_the_safe_dumper_writes_and_reads_back() -> None:
    from envsim.factory.generate import dump_yaml

    class Reference(yaml.SafeDumper):
        pass

    Reference.add_representer(
        str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None)
    )
    data = {
        "floats": [1.5, 1e20, float("inf"), -0.0],
        "empty": [[], {}],
        "words": ["é ü 中", "yes", "null", "a: b", "#W0001", "0042", "  lead\ntrail  \n", "", "~", "- x"],
        "nested": {"n": None, "b": False, "i": -7},
        "keys": {"yes": "yes", "null": [{"null": None}], "two\nlines": "words", "#W0001": {"words": ["#W0001"]}},
    }
    text = dump_yaml(data)
    assert text == yaml.dump(data, Dumper=Reference, sort_keys=False, width=100, allow_unicode=True)
    assert yaml.safe_load(text) == data
    assert dump_yaml(data) == text  # the shared events of keys and constants write the same the second time


def test_names_resolve_to_family_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from envsim.factory.generate import resolve_families

    extra = tmp_path / "scenarios"
    (extra / "families" / "retail").mkdir(parents=True)
    mine = extra / "families" / "retail" / "mine.yaml"
    mine.write_text(REFUND.read_text(encoding="utf-8").replace("TestRetailRefundDamagedUnit", "MineRefund"), "utf-8")
    monkeypatch.setenv("ENVSIM_SCENARIOS", str(extra))
    assert resolve_families(["MineRefund"]) == [mine]
    assert mine in resolve_families(["retail"])  # a toolkit: every family folder's families/retail/
    assert resolve_families([str(FAMILIES), str(REFUND)]) == [REFUSAL, REFUND]  # a folder, then a file (once)
    with pytest.raises(
        ValueError,
        match=r"'MineRefnd' is no family file, folder, toolkit or family name \(did you mean 'MineRefund'\?\)",
    ):
        resolve_families(["MineRefnd"])
