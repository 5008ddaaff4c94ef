"""A short, seeded nemesis run (tests/kafka/nemesis.py): processes killed, PostgreSQL
restarted, object-store faults switched, compaction passes, then every acknowledged
record checked to be there exactly once."""

from nemesis import run


def test_nemesis_short_seeded_run(tmp_path):
    summary, problems = run(duration=45, seed=20261126, work=str(tmp_path))
    print(summary)
    assert summary["acknowledged"] > 1000, summary
    assert summary["node kills"] + summary["metadata kills"] > 0, summary
    assert summary["transactions committed"] > 10, summary
    assert not problems, f"{problems}\n{summary}"
