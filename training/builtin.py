"""Built-in training datasets: real public files shipped in the repository's ``data/``.

Standard library only. Sources, licenses and row counts are those of ``data/README.md``.
Paths are relative to the built-in data folder, ``settings.ARENA_BUILTIN_DATA_DIR``
(``ARENA_BUILTIN_DATA_DIR``, default ``<repo>/data``); callers pass it to ``resolve``.
Each file parses with ``training.formats.parse_dataset(path, fmt)`` without errors
(checked by ``training/tests/test_formats.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from training.formats import FORMATS


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    path: str  # relative to the built-in data folder
    format: str  # a training.formats format name
    license: str
    commercial_use: bool
    source: str
    rows: int  # rows in the file (normalised rows may differ, see notes)
    notes: str = ""

    @property
    def kind(self) -> str:
        return FORMATS[self.format]

    def resolve(self, data_dir: str | Path) -> Path:
        return Path(data_dir) / self.path


BUILTIN_DATASETS: tuple[BuiltinDataset, ...] = (
    BuiltinDataset(
        name="hh-rlhf-helpful-base-test",
        path="hh_rlhf/helpful-base_test.jsonl.gz",
        format="hh-rlhf",
        license="MIT",
        commercial_use=True,
        source="anthropics/hh-rlhf@354e5c3:helpful-base/test.jsonl.gz "
        "(copy from DaehanKim/EasyRLHF@45eccb7:data/helpful-base/test.jsonl.gz, byte-identical)",
        rows=2354,
        notes="16 rows have consecutive same-speaker turns (merged), 1 an empty mid-conversation "
        "turn (dropped), 4 an empty chosen or rejected reply (kept).",
    ),
    BuiltinDataset(
        name="hh-rlhf-harmless-base-test",
        path="hh_rlhf/harmless-base_test.jsonl.gz",
        format="hh-rlhf",
        license="MIT",
        commercial_use=True,
        source="anthropics/hh-rlhf@354e5c3:harmless-base/test.jsonl.gz",
        rows=2312,
        notes="9 rows have consecutive same-speaker turns (merged), 4 an empty chosen or "
        "rejected reply (kept).",
    ),
    BuiltinDataset(
        name="oasst-en-messages",
        path="sft_chat/oasst_en_messages.jsonl",
        format="messages",
        license="Apache-2.0",
        commercial_use=True,
        source="derived from LAION-AI/Open-Assistant@f1e6ed9:model/model_eval/manual/data/"
        "en_100_tree.jsonl (best-ranked path through 80 of the 100 trees)",
        rows=80,
        notes="Human-written; 46 rows with 2 turns, 34 with 4.",
    ),
    BuiltinDataset(
        name="ultrachat-200k-test-gen-5rows",
        path="sft_chat/ultrachat_200k_test_gen_5rows.jsonl",
        format="messages",
        license="MIT",
        commercial_use=True,
        source="phgelado/L-AbbeFaria-@d751082:ultrachat_chunk_eval.jsonl "
        "(real UltraChat-200k test_gen rows; that repo has no license, UltraChat is MIT)",
        rows=5,
        notes="test_gen rows end on a user turn; the parser drops that trailing turn.",
    ),
    BuiltinDataset(
        name="lima-train",
        path="non_commercial/lima_train.json.gz",
        format="alpaca",
        license="CC BY-NC-SA 4.0",
        commercial_use=False,
        source="hiyouga/LLaMA-Factory@b9cdff4:data/lima.json (829 of the 1,029 rows, random split, seed 7)",
        rows=829,
        notes="LIMA: non-commercial use only (CC BY-NC-SA 4.0); adapters trained on it inherit "
        "that restriction.",
    ),
)

BUILTIN_BY_NAME: dict[str, BuiltinDataset] = {d.name: d for d in BUILTIN_DATASETS}


def get_builtin(name: str) -> BuiltinDataset:
    try:
        return BUILTIN_BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"unknown built-in dataset {name!r}; expected one of {', '.join(BUILTIN_BY_NAME)}"
        ) from None
