"""Real-world DBCs (../shared/corpus/dbc): bench loads what cantools loads and decodes like it.

Every corpus DBC that cantools 45 loads with ``strict=False`` must load in bench (warnings
allowed); every message is decoded on seeded random payloads reaching every multiplexer value
cantools knows, and every signal value must equal cantools' ``decode_message`` (see
tests/dbc_corpus.py). A DBC cantools refuses must be refused with one line. The default run uses
64 payloads per multiplexer branch per file (a few seconds); the ``slow`` one 1,024 (about
25 s here; deselect with ``-m "not slow"``).
"""

from __future__ import annotations

import pytest

from tests.dbc_corpus import CORPUS, check_file, corpus_files

FILES = corpus_files()
needs_corpus = pytest.mark.skipif(
    not FILES, reason=f"no DBC corpus at {CORPUS} (a bare clone; CI has ../shared/corpus)"
)


@needs_corpus
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_dbc_decodes_like_cantools(path):
    check_file(path, per_branch=64)


@needs_corpus
@pytest.mark.slow
def test_corpus_exhaustive():
    outcomes = [check_file(path, per_branch=1024, seed=2026) for path in FILES]
    loaded = sum(o.loaded for o in outcomes)
    values = sum(o.values for o in outcomes)
    print(f"\n{loaded} DBCs loaded, {len(outcomes) - loaded} refused, {values:,} values compared")
    assert loaded >= len(FILES) - 2  # the corpus' two files cantools refuses (issue_199*)


@needs_corpus
def test_bench_dbc_on_every_corpus_file_exits_0_or_2_in_one_line():
    """``bench dbc`` in process (82 subprocesses would take minutes): warnings or one error line,
    never an internal error; exit 2 exactly for the files cantools refuses."""
    import cantools
    from click.testing import CliRunner

    from bench.cli import cli

    runner = CliRunner()
    for path in FILES:
        result = runner.invoke(cli, ["dbc", "--json", "--dbc", str(path)])
        try:
            cantools.database.load_file(str(path), strict=False)
            expected = 0
        except Exception:
            expected = 2
        assert result.exit_code == expected, (path, result.output)
        assert "internal error" not in result.output and "Traceback" not in result.output
        if expected == 2:
            (line,) = result.output.strip().splitlines()
            assert line.startswith(f"bench: error: {path}: ")
