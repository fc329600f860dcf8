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
