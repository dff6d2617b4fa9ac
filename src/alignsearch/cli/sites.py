"""``python -m alignsearch.sites``: a model's sites and their widths, by the names ``site=`` takes.

    python -m alignsearch.sites path/to/lm                         # a language model's folder
    python -m alignsearch.sites model=lm model.path=path/to/lm     # the same, as run_alignment.py picks it
    python -m alignsearch.sites model=hf model.architecture=llama  # a task model (built, not trained)
    python -m alignsearch.sites path/to/lm --json                  # {"embedding": 768, "layer.0": 768, ...}

For a language model only the folder's ``config.json`` is read (the model is built on the meta device: no
weights are loaded), so a large model lists at once. Its sites, in order: ``embedding`` (the input to the
first block), then for each block ``layer.<i>`` (the residual stream after it), ``layer.<i>.attn`` and
``layer.<i>.mlp`` (the outputs of its attention and MLP) and ``layer.<i>.head.<j>`` (head ``j``'s output
before the attention output projection, head-size wide); see :mod:`alignsearch.models.hf`. From Python:
``api.sites(model)``. A folder that holds no model, or overrides that pick none, is one line
(``error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from alignsearch.cli.exits import EXIT_OK, EXIT_USAGE, failed
from alignsearch.errors import ConfigError, ZooError


def model_sites(args: Sequence[str]) -> tuple[str, dict[str, int]]:
    """What the command's arguments name, and its sites: a language model's folder, or the overrides of
    ``run_alignment.py`` that pick a model (``model=lm model.path=<folder>``, ``model=gru``)."""
    from alignsearch.models.hf_sites import folder_sites

    overrides = [a for a in args if "=" in a]
    if not overrides:
        if len(args) != 1:
            raise ConfigError(
                "arguments", " ".join(args), "one model folder, or overrides that pick a model (model=...)"
            )
        return args[0], folder_sites(args[0])
    if len(overrides) != len(args):
        others = " ".join(a for a in args if "=" not in a)
        raise ConfigError(
            "arguments", others, "a model folder or overrides that pick a model (model=...), not both"
        )
    import torch

    from alignsearch.components import build_model, build_task, compose_checked
    from alignsearch.models.lm import TEXT_MODEL

    cfg = compose_checked("run_alignment", overrides)
    if str(cfg.model.get("_target_")) == TEXT_MODEL:
        path = cfg.model.get("path")
        if not path:
            raise ConfigError("model.path", path, "a folder written by save_pretrained (model and tokenizer)")
        return str(path), folder_sites(str(path))
    if cfg.get("task") is None:
        raise ConfigError("task", None, "a task for the task model (task=multiobject), or model=lm")
    with torch.random.fork_rng(devices=[]):  # random weights: the sites do not depend on them
        model = build_model(cfg.model, build_task(cfg.task).vocab.size)
    return model.name, dict(model.sites)


def describe(site: str) -> str:
    """What a site is, in words.

    >>> describe("layer.2.head.5")
    "head 5's output in block 2 (before the attention output projection)"
    """
    from alignsearch.models.hf_sites import site_parts

    parts = site_parts(site)
    if parts is None:
        return ""
    kind, layer, head = parts
    return {
        "embedding": "the input to the first layer",
        "layer": f"the output of layer {layer} (for a transformer, the residual stream after block {layer})",
        "attn": f"the attention's output in block {layer}",
        "mlp": f"the MLP's output in block {layer}",
        "head": f"head {head}'s output in block {layer} (before the attention output projection)",
    }[kind]


def sites_table(sites: dict[str, int]) -> str:
    """The sites as a table: name, width and what each is."""
    from alignsearch.tables import markdown_table

    return markdown_table(["site", "width", "what"], [[s, w, describe(s)] for s, w in sites.items()])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alignsearch.sites",
        description="List a model's sites (what site= takes) and their widths.",
        epilog="e.g. python -m alignsearch.sites path/to/lm; python -m alignsearch.sites model=lm "
        "model.path=path/to/lm; python -m alignsearch.sites model=gru",
    )
    parser.add_argument(
        "model",
        nargs="+",
        help="a language model's folder (save_pretrained), or run_alignment.py overrides that pick a model",
    )
    parser.add_argument("--json", action="store_true", help="print the sites as one JSON object")
    args = parser.parse_args(argv)
    try:
        label, sites = model_sites(args.model)
    except (ConfigError, ZooError, OSError) as e:
        return failed(e, EXIT_USAGE)
    if args.json:
        print(json.dumps(sites))
        return EXIT_OK
    print(f"{label}: {len(sites)} sites (site=<name>; layer=<i> for layer.<i>)")
    print(sites_table(sites))
    return EXIT_OK


if __name__ == "__main__":  # python -m alignsearch.cli.sites <args>
    from alignsearch.cli.exits import finish

    finish(main())
