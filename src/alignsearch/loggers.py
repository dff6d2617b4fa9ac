"""Experiment loggers that work without a network."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any


def wandb_credentials_present() -> bool:
    """True when W&B could log online: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(**kwargs: Any):
    """A Lightning ``WandbLogger``; offline (say so in one line) unless W&B can reach its server.

    ``WANDB_MODE`` wins when set. Offline runs are uploaded later with ``wandb sync <run folder>``.
    """
    from lightning.pytorch.loggers import WandbLogger

    mode = os.environ.get("WANDB_MODE")
    offline = mode in ("offline", "dryrun") if mode else not wandb_credentials_present()
    if offline and not mode:
        print("wandb: no credentials found, logging offline (upload later with `wandb sync`)", flush=True)
    Path(kwargs.get("save_dir", ".")).mkdir(parents=True, exist_ok=True)
    return WandbLogger(offline=offline, **kwargs)
