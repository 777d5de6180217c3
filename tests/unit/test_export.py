"""`main.py export` / `main.py show` / fine-tuning on an export, on real run folders of every
generator (made with FakeModels in run_folders.py) — issue 23 items 1-5 and 7."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from run_folders import ADS_ROWS, BUILDERS, ads_run

from ads.cli import main
from ads.store import JsonlStore

KINDS = sorted(BUILDERS)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return {k: b(tmp_path_factory.mktemp(k)) for k, b in BUILDERS.items()}


def raw_counts(kind: str, d: Path) -> tuple[int, int, Counter]:
    """(accepted, rejected, first-word reasons) read straight from the generator's own files."""
    if kind == "tool_use":
        recs = JsonlStore(d / "conversations.jsonl", id_field="conversation_id").read()
        return sum(r["passed"] for r in recs), sum(not r["passed"] for r in recs), Counter(
            (r["judge_scores"].get("failed_gates") or ["?"])[0] for r in recs if not r["passed"])
    if kind == "bandit":
        s = JsonlStore(d / "samples.jsonl").read()
        assert sum(x["accepted"] for x in s) == len(JsonlStore(d / "dataset.jsonl").read())
        return sum(x["accepted"] for x in s), sum(not x["accepted"] for x in s), Counter(
            x["failed"][0] for x in s if not x["accepted"])
    if kind == "self_evolving":
        ev = [e for e in JsonlStore(d / "run_logs.jsonl") if "attempt" in e]
        return len(JsonlStore(d / "benchmark.jsonl").read()), sum(e["outcome"] != "accepted" for e in ev), Counter(
            e["reason"] for e in ev if e["outcome"] != "accepted")
    if kind == "perspectives":
        rs = JsonlStore(d / "responses.jsonl").read()
        return sum(r["status"] == "ok" for r in rs), sum(r["status"] != "ok" for r in rs), Counter(
            r["reasons"][-1].split(": ")[0] for r in rs if r["status"] != "ok")
    return len(ADS_ROWS), 0, Counter()


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_every_generator_run_ends_with_an_export(runs):
    for kind, d in runs.items():
        if kind == "ads":
            continue  # ADS writes no export of its own yet (its outputs are being redesigned)
        m = json.loads((d / "export" / "ads_export.json").read_text())
        assert m["generator"] == kind and not m["partial"] and (d / "export" / "hf" / "train").is_dir()
        assert (d / "export" / "parquet" / "train.parquet").is_file() and (d / "export" / "README.md").is_file()


@pytest.mark.parametrize("kind", KINDS)
def test_export_counts_splits_and_typed_features_match_the_records(runs, kind, tmp_path, capsys):
    from datasets import load_from_disk
    from pyarrow import parquet

    d, out = runs[kind], tmp_path / "out"
    assert main(["export", str(d), "--out", str(out), "--include-rejected", "--format", "hf", "--format", "parquet",
                 "--format", "jsonl"]) == 0
    acc, rej, reasons = raw_counts(kind, d)
    ds = load_from_disk(str(out / "hf"))
    assert ds.num_rows == {k: v for k, v in {"train": acc, "rejected": rej}.items() if v}  # 0-row splits: parquet only
    assert all(ds["train"]["accepted"]) and (not rej or not any(ds["rejected"]["accepted"]))
    assert not rej or all(ds["rejected"]["reject_reason"])
    assert parquet.read_table(out / "parquet" / "rejected.parquet").num_rows == rej
    assert parquet.read_table(out / "parquet" / "train.parquet").num_rows == acc
    assert len((out / "jsonl" / "train.jsonl").read_text().splitlines()) == acc
    m = json.loads((out / "ads_export.json").read_text())
    assert m["counts"]["attempted"] == acc + rej and m["counts"]["rejected_by_reason"] == dict(reasons)
    card = (out / "README.md").read_text()
    fm = front_matter(card)
    assert fm["configs"][0]["data_files"][0] == {"split": "train", "path": "parquet/train.parquet"}
    assert f"| attempted | {acc + rej} |" in card and f"| accepted | {acc} |" in card
    for r, n in reasons.items():
        assert f"| {r} | {n} |" in card
    assert "load_from_disk" in card and "seed:" in card
    if kind == "tool_use":  # nested fields typed, not stringified
        import pyarrow as pa

        t = ds["rejected"].data.schema.field("messages").type
        assert pa.types.is_list(t) and pa.types.is_struct(t.value_type)
        calls = t.value_type.field("tool_calls").type
        assert pa.types.is_list(calls) and calls.value_type.field("name").type == pa.string()
        row = ds["rejected"][0]
        assert row["messages"][0]["role"] == "user" and isinstance(row["tool_calls"], list)
    if kind == "self_evolving":
        assert ds["train"].features["judge"]["tags"].feature.dtype == "string"
    assert "exported" in capsys.readouterr().out


def test_the_card_computes_near_duplicates_and_judge_scores_from_the_records(runs, tmp_path):
    from ads.export import export_run

    rows = ADS_ROWS + [{**ADS_ROWS[0], "id": "p2"}, {**ADS_ROWS[0], "id": "p3", "text": "A different passage "
                                                      "about mountains, glaciers and the valleys they carve."}]
    res = export_run(ads_run(tmp_path, rows))
    nd = res["stats"]["near_duplicates"]
    assert (nd["near_duplicates"], nd["n"], nd["rate"]) == (1, 5, 0.2)
    card = (tmp_path / "ads" / "export" / "README.md").read_text()
    assert "near-duplicate rate of the accepted `text`: 0.2 (1 of 5" in card
    assert res["stats"]["models"][0]["name"] == "smollm2-135m"

    d = runs["tool_use"]
    recs = JsonlStore(d / "conversations.jsonl", id_field="conversation_id").read()
    scores = [r["judge_scores"]["mean_score"] for r in recs if r["passed"]]
    js = export_run(d, tmp_path / "tu")["stats"]["judge_scores"]
    assert js["n"] == len(scores) and js["mean"] == pytest.approx(sum(scores) / len(scores), abs=1e-4)


def test_a_killed_run_exports_what_it_has(runs, tmp_path):
    d = tmp_path / "killed"
    shutil.copytree(runs["bandit"], d)
    (d / "summary.json").unlink()
    shutil.rmtree(d / "export")
    lines = (d / "samples.jsonl").read_text().splitlines(keepends=True)
    (d / "samples.jsonl").write_text("".join(lines[:5]) + lines[5][:30])  # a torn last line, as SIGKILL leaves
    assert main(["export", str(d)]) == 0
    m = json.loads((d / "export" / "ads_export.json").read_text())
    assert m["partial"] and m["counts"]["attempted"] == 5
    assert "a partial run" in (d / "export" / "README.md").read_text()


@pytest.mark.parametrize("setup, needle", [
    ("missing", "no such run folder"), ("no_config", "config.yaml"), ("bad_kind", "no export spec for 'nope'"),
    ("no_records", "no records yet"), ("bad_line", "line 1 is not valid JSON")])
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(tmp_path, capsys, setup, needle):
    d = tmp_path / "run"
    if setup != "missing":
        d.mkdir()
    if setup in ("bad_kind", "no_records", "bad_line"):
        (d / "config.yaml").write_text("kind: nope\n" if setup == "bad_kind" else "kind: ads\nname: x\n")
    if setup == "bad_line":
        (d / "training_data.jsonl").write_text("{oops\n" + json.dumps(ADS_ROWS[0]) + "\n")
    assert main(["export", str(d), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and needle in err
    assert not (tmp_path / "out").exists()


def test_a_failed_export_keeps_the_previous_one_and_leaves_no_temp_folder(tmp_path):
    from ads.export import ExportError, export_run

    d = ads_run(tmp_path)
    export_run(d)
    before = (d / "export" / "README.md").read_text()
    (d / "training_data.jsonl").write_text(json.dumps({**ADS_ROWS[0], "cost": "not a number", "iteration": "x"})
                                           + "\n")
    (d / "training_data.jsonl").write_text(json.dumps({**ADS_ROWS[0], "arguments": {"a": 1}, "iteration": 2.0})
                                           + "\n")
    export_run(d, formats=("jsonl",))
    assert (d / "export" / "README.md").read_text() != before and not (d / "export" / "hf").exists()
    with pytest.raises(ExportError):
        export_run(d, formats=("csv",))
    assert sorted(p.name for p in d.iterdir()) == ["config.yaml", "export", "training_data.jsonl"]


def test_push_to_hub_offline_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch):
    d = ads_run(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    assert main(["export", str(d), "--push-to-hub", "me/data"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no Hub token" in err and "HF_TOKEN" in err
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["export", str(d), "--push-to-hub", "me/data"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not reachable" in err and "hf_dummy" not in err
    assert not (d / "export").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_show_prints_accepted_and_rejected_records_with_reasons(runs, kind, capsys):
    from ads.export import load_run

    run = load_run(runs[kind])
    assert main(["show", str(runs[kind]), "--n", "2"]) == 0
    out = capsys.readouterr().out
    for r in run.accepted[:2]:
        assert r["id"] in out
    if run.accepted[2:]:
        assert run.accepted[2]["id"] not in out
    assert f"showed {min(2, len(run.accepted))} of {len(run.accepted)} accepted" in out
    assert main(["show", str(runs[kind]), "--rejected", "--n", "50"]) == 0
    out = capsys.readouterr().out
    assert out.count("REJECTED: ") == len(run.rejected)
    if run.rejected:
        assert "reasons: " in out


def test_show_bad_input_exits_2(tmp_path, capsys):
    assert main(["show", str(tmp_path / "nope")]) == 2
    assert main(["show", str(tmp_path), "--n", "0"]) == 2
    assert capsys.readouterr().err.count("error:") == 2


@pytest.mark.parametrize("kind", KINDS)
def test_finetune_reads_each_generators_export_directly(runs, kind):
    from ads.downstream.data import DataConfig, load_examples
    from ads.export import load_run

    run = load_run(runs[kind])
    want = [r for r in run.accepted if r["instruction"].strip() and r["response"].strip()]
    if kind == "ads":
        from ads.export import export_run

        export_run(runs[kind])
    for path in (runs[kind] / "export", runs[kind]):  # the export folder, or the run folder that holds it
        if not want:
            continue
        ex = load_examples(DataConfig(path=str(path)))
        assert [e.response for e in ex] == [r["response"].strip() for r in want]
        if kind == "self_evolving":
            assert all(r["user_input"] in e.prompt for e, r in zip(ex, want))
    assert want or kind == "tool_use"  # the fake judge may fail every conversation; the others have accepted pairs


def test_wandb_gets_the_artifact_the_sample_table_the_plots_and_flat_summary(runs, tmp_path):
    from ads.export import export_run
    from ads.export.wandb_log import flatten, log_export

    class FakeRun:
        def __init__(self):
            self.artifacts, self.logged, self.summary = [], [], {}

        def log_artifact(self, a):
            self.artifacts.append(a)

        def log(self, d):
            self.logged.append(d)

    d = runs["bandit"]
    res = export_run(d, tmp_path / "x", include_rejected=True)
    fr = FakeRun()
    assert log_export(fr, res, d, {"eval": {"iteration_0": {"mean": 0.5, "by_family": {"gsm8k": 0.25}}}})
    art = fr.artifacts[0]
    assert art.type == "dataset" and "README.md" in art.manifest.entries
    table = fr.logged[0]["export/samples"]
    acc, rej, _ = raw_counts("bandit", d)
    assert len(table.data) == min(acc, 20) + min(rej, 20)
    assert {row[2] for row in table.data if not row[1]} <= {"length", "distinct_n", "novelty", "malformed"}
    assert {k for k in fr.logged[0] if k.startswith("plots/")} == {f"plots/{p.stem}" for p in d.glob("*.png")}
    assert fr.summary["eval/iteration_0/by_family/gsm8k"] == 0.25 and fr.summary["export/counts/accepted"] == acc

    class Broken(FakeRun):
        def log_artifact(self, a):
            raise RuntimeError("disk full")

    assert log_export(Broken(), res, d) is False  # never raises
    assert flatten({"a": {"b": 1, "c": [1]}, "d": "x"}) == {"a/b": 1, "d": "x"}
