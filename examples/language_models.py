"""Language models in alignsearch, end to end and offline (31 s on a 2-core machine with one torch thread,
``OMP_NUM_THREADS=1``, while other work kept the load average near 2.5; longer on a busier machine).

Builds two tiny causal LMs that count (``apple pear apple . how many ? three``: a GPT-2 trained on that
text, and a copy fine-tuned on terser text, ``apple pear apple = three``), saves them as ``save_pretrained``
folders, then runs the three things a researcher does with their own language models:

1. DAS on a pairs file, from the command line: is the count a variable at ``layer.0``?
2. DAS on rows a Python function produces (a causal model written in Python), from the API.
3. Behavioural MAS between the two LMs on a corpus: does the fine-tuned model share the original's state?

    python examples/language_models.py [--out FOLDER]    (default: a temporary folder, removed at the end)

Needs the ``hf`` extra (``pip install -e ".[hf]"``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alignsearch import api
from alignsearch.text import toy

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["alignment.max_steps=200", "alignment.val_every=50", "hardware.progress_bar=false"]
MAS_NOTE = (
    "0>0 and 1>1 swap a model's own vectors on the same text: trivially 1.0. 0>1 and 1>0 near 0 are what to\n"
    "expect here: the terse fine-tune answers in another format ('= three', not 'how many ? three'), so no\n"
    "swap of one model's state makes the other predict the first one's next tokens."
)


def align_command(*args: str, cwd: Path) -> None:
    """``alignsearch-align <args>`` (``python run_alignment.py`` in a source checkout)."""
    script = shutil.which("alignsearch-align")
    command = [script] if script else [sys.executable, str(ROOT / "run_alignment.py")]
    print("$ alignsearch-align", " ".join(args), flush=True)
    subprocess.run([*command, *args], cwd=cwd, check=True)


def count_rows(n: int, seed: int):
    """A causal model of counting as a Python function: each row swaps the count of the base prompt
    for the source prompt's, so the intervened model should answer with the source's number."""
    yield from toy.count_pair_rows(n, seed)


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    lm_a = toy.build_toy_lm(work / "counter").folder
    lm_b = toy.finetune_toy_lm(lm_a, work / "counter_terse", style="terse").folder

    # 1. a pairs file: {"base": ..., "source": ..., "target": " three"} per line
    pairs_file = work / "count_pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(row) + "\n" for row in count_rows(600, seed=0)))
    align_command(
        "model=lm", f"model.path={lm_a}", "data=pairs", f"data.path={pairs_file}", "layer=0", "n_units=8",
        *QUICK, cwd=work,
    )  # fmt: skip

    # 2. the same variable from Python rows
    lm = api.language_model(lm_a)
    pairs = api.text_pairs(count_rows(600, seed=1), lm.tokenizer)
    result = api.align(lm, data=pairs, variables=["count"], layer=0, n_units=8, max_steps=200)
    print(result.table())

    # 3. behavioural MAS between the two models on a corpus (a text per line)
    corpus = work / "texts.txt"
    corpus.write_text("\n".join(toy.count_sentences(400, seed=2)) + "\n")
    align_command(
        "model=lm", f"model.path={lm_a}", "alignment=mas", f"+partner.model_settings.path={lm_b}",
        "data=corpus", f"data.path={corpus}", "layer=1", "n_units=32", *QUICK, cwd=work,
    )  # fmt: skip
    print(MAS_NOTE)


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the folder for the models, data and runs (kept)")
    return parser.parse_args(argv)


def work_folder(argv: list[str]) -> Path:
    """``--out FOLDER``, or a new temporary folder: the example never writes into the working directory."""
    out = options(argv).out
    return (out or Path(tempfile.mkdtemp(prefix="alignsearch-lm-example-"))).resolve()


def run(argv: list[str]) -> None:
    """:func:`main` in ``--out FOLDER`` (kept), or in a temporary folder removed at the end."""
    kept = options(argv).out is not None
    work = work_folder(argv)
    try:
        main(work)
    finally:
        if not kept:  # a temporary folder: nothing is left behind
            shutil.rmtree(work, ignore_errors=True)
    print(f"everything is in {work}" if kept else "(a temporary folder, now removed: --out FOLDER keeps it)")


if __name__ == "__main__":
    run(sys.argv[1:])
