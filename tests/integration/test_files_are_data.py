"""Files from others are data: reading a zoo entry, an alignment file, a language-model folder or a run
folder never resolves, imports or runs what the file says, and anything that is not plain data of the
file's form is refused with one line naming the file and the key.

Each case writes what a colleague's file could hold and checks that the line names it and that the
payload left no trace (its marker file does not exist).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from alignsearch import zoo as model_zoo
from alignsearch.errors import ConfigError, ZooError
from tests.helpers import TINY_ALIGNMENT, TINY_TRAINING, assert_error_line, body_refusal, compose_config
from tests.integration.test_safe_load import ENTRY, alignment_file, migrate, one_line


class LeavesAMarker:
    """Unpickling it calls ``open(marker, "w")``: what a payload file holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def entry(tiny_zoo, in_command_env) -> Path:
    shutil.copytree(tiny_zoo, in_command_env)
    return in_command_env / ENTRY


@pytest.fixture
def payload(tmp_path) -> tuple[Path, Path]:
    """``(payload.pt, marker)``: loading the payload with ``weights_only=False`` writes the marker."""
    marker = tmp_path / "marker"
    path = tmp_path / "payload.pt"
    torch.save({"x": LeavesAMarker(marker)}, path)
    return path, marker


def interpolation(payload: Path, escaped: bool) -> str:
    """A YAML value that, resolved by OmegaConf and instantiated by Hydra, loads ``payload`` as a pickle."""
    node = f"{{_target_: torch.load, _args_: [{payload}], weights_only: false}}"
    return f"'{chr(92) if escaped else ''}${{oc.create:{node}}}'"


def set_setting(entry: Path, line: str, value: str) -> None:
    """Replace the ``config.yaml`` line starting with ``line`` (``  d_model:``) by ``line value``."""
    text = (entry / "config.yaml").read_text().splitlines()
    index = next(i for i, t in enumerate(text) if t.startswith(line))
    text[index] = f"{line} {value}"
    (entry / "config.yaml").write_text("\n".join(text) + "\n")


def assert_refused_everywhere(entry: Path, capsys, *says: str) -> None:
    """``zoo.load``, ``zoo migrate``, ``run_alignment.py`` and ``api.model`` each refuse ``entry`` with
    one line saying ``says``."""
    from alignsearch import api

    with pytest.raises(ZooError) as refused:
        model_zoo.load(entry)
    assert_error_line(f"error: {one_line(refused.value)}", str(entry), *says)
    status, out = migrate(entry.parents[2], capsys)
    assert f"skipped {entry}: " in out and all(s in out for s in says), out
    assert_error_line(body_refusal("run_alignment.py", *TINY_TRAINING, *TINY_ALIGNMENT), *says)
    with pytest.raises(ZooError) as refused:
        api.model("gru", overrides=[o for o in TINY_TRAINING if not o.startswith("hardware")])
    assert_error_line(f"error: {one_line(refused.value)}", *says)


# -- 1. interpolations -------------------------------------------------------------------------------------
@pytest.mark.parametrize("escaped", [True, False], ids=["escaped", "plain"])
def test_an_interpolation_in_a_zoo_setting_is_refused_and_runs_nothing(
    escaped, entry, payload, capsys
) -> None:
    path, marker = payload
    set_setting(entry, "  d_model:", interpolation(path, escaped))
    assert_refused_everywhere(entry, capsys, "config.yaml: model.d_model holds an interpolation")
    assert not marker.exists()


def test_an_interpolation_in_the_training_settings_or_entry_json_is_refused(entry, payload) -> None:
    path, marker = payload
    set_setting(entry, "  lr:", interpolation(path, True))
    with pytest.raises(ZooError, match=r"config.yaml: training.lr holds an interpolation"):
        model_zoo.load(entry)
    set_setting(entry, "  lr:", "0.001")
    info = json.loads((entry / "entry.json").read_text())
    (entry / "entry.json").write_text(json.dumps({**info, "sites": {"${oc.env:HOME}": 32}}))
    with pytest.raises(ZooError, match=r"entry.json: entry.sites.\$\{oc.env:HOME\} holds an interpolation"):
        model_zoo.load(entry)
    assert not marker.exists()


def test_an_interpolation_in_an_alignment_file_is_refused_and_runs_nothing(tmp_path, payload) -> None:
    from alignsearch import api

    path, marker = payload
    node = f"${{oc.create:{{_target_: torch.load, _args_: [{path}], weights_only: false}}}}"
    for nodes, key in (
        ({"function": {"_target_": "alignsearch.alignment.Rotation", "orthogonal_map": node}}, "function"),
        ({"config": {"seed": node}}, "config.seed"),
    ):
        saved = alignment_file(tmp_path / "alignment.pt", **nodes)
        with pytest.raises(ConfigError) as refused:
            api.load_alignment(saved)
        assert f"alignment.pt: {key}" in one_line(refused.value) and "holds an interpolation" in str(
            refused.value
        )
    assert not marker.exists()


# -- 3. what the shipped configs name is not trusted everywhere ------------------------------------------
def test_a_lightning_logger_in_a_zoo_config_is_not_built(entry, tmp_path, capsys) -> None:
    made = tmp_path / "made_by_the_file"
    writer = "lightning.pytorch.loggers.csv_logs.ExperimentWriter"
    set_setting(entry, "  d_model:", f"{{_target_: {writer}, log_dir: {made}}}")
    assert_refused_everywhere(entry, capsys, "config.yaml: model.d_model._target_ is an instruction")
    assert not made.exists()
    set_setting(entry, "  d_model:", "32")
    text = (
        (entry / "config.yaml")
        .read_text()
        .replace("_target_: alignsearch.tasks.NumericTask", f"_target_: {writer}\n  log_dir: {made}")
    )
    (entry / "config.yaml").write_text(text)
    with pytest.raises(
        ZooError, match=f"task._target_ names {writer}, which is not a class with the methods"
    ):
        model_zoo.load(entry)
    assert not made.exists()


# -- 4. _partial_ and other instructions -------------------------------------------------------------------
def test_partial_in_a_zoo_or_alignment_file_is_one_line(entry, tmp_path) -> None:
    from alignsearch import api

    text = (entry / "config.yaml").read_text()
    (entry / "config.yaml").write_text(text.replace("  d_model: 32", "  d_model: 32\n  _partial_: true"))
    with pytest.raises(ZooError) as refused:
        model_zoo.load(entry)
    assert one_line(refused.value).endswith(
        "config.yaml: model._partial_ is an instruction to build or call code, which a file may not hold"
    )
    layout = {"_target_": "alignsearch.alignment.FixedLayout", "_partial_": True}
    with pytest.raises(ConfigError) as refused:
        api.load_alignment(alignment_file(tmp_path / "alignment.pt", layout=layout))
    assert "alignment.pt: layout._partial_ is an instruction" in one_line(refused.value)


def test_unknown_keys_are_refused_naming_the_file_and_key(entry, tmp_path) -> None:
    from alignsearch import api

    text = (entry / "config.yaml").read_text()
    (entry / "config.yaml").write_text(text.replace("  d_model: 32", "  d_model: 32\n  widht: 8"))
    with pytest.raises(
        ZooError, match=r"config.yaml: model.widht is not a setting of alignsearch.models.GRU"
    ):
        model_zoo.load(entry)
    (entry / "config.yaml").write_text(text + "extra: 1\n")
    with pytest.raises(ZooError, match=r"config.yaml: config.extra is not a key of this file"):
        model_zoo.load(entry)
    (entry / "config.yaml").write_text(text)
    info = json.loads((entry / "entry.json").read_text())
    (entry / "entry.json").write_text(json.dumps({**info, "hook": "x"}))
    with pytest.raises(ZooError, match=r"entry.json: entry.hook is not a key of this file"):
        model_zoo.load(entry)
    with pytest.raises(ConfigError, match=r"alignment.pt: alignment.hook is not a key of this file"):
        api.load_alignment(alignment_file(tmp_path / "alignment.pt", hook=1))


# -- 5. a language-model folder that carries code ----------------------------------------------------------
def test_a_language_model_folder_with_its_own_code_is_refused_without_asking(
    toy_lms, tmp_path, monkeypatch
) -> None:
    from alignsearch import api

    folder, marker = tmp_path / "lm", tmp_path / "marker"
    shutil.copytree(toy_lms["gpt2"], folder)
    config = json.loads((folder / "config.json").read_text())
    auto_map = {"AutoConfig": "code.Config", "AutoModelForCausalLM": "code.Model"}
    config |= {"model_type": "not_a_known_type", "auto_map": auto_map}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "code.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")

    def no_question(*args):
        raise AssertionError(f"asked {args}")

    monkeypatch.setattr("builtins.input", no_question)
    for call in (api.sites, api.language_model):
        with pytest.raises(ConfigError) as refused:
            call(folder)
        line = one_line(refused.value)
        assert line.startswith(f"model={str(folder)!r} is not allowed") and "(auto_map)" in line, line
    assert not marker.exists()


# -- 6. symbolic links inside the zoo and the run folder ---------------------------------------------------
def request_for_seed(zoo: Path, seed: int) -> model_zoo.ModelRequest:
    cfg = compose_config("train_task_model", [*TINY_TRAINING, f"seed={seed}", f"paths.zoo_dir={zoo}"])
    return model_zoo.model_request(cfg)


@pytest.mark.parametrize("link", [".partial", ".partial/checkpoints", ".lock"])
def test_a_link_where_the_zoo_writes_is_refused_and_nothing_is_written_through_it(
    link, in_command_env, tmp_path
) -> None:
    req = request_for_seed(in_command_env, 5)
    outside = tmp_path / "outside"
    outside.mkdir()
    req.path.parent.mkdir(parents=True)
    suffix, _, below = link.partition("/")
    place = req.path.with_name(req.path.name + suffix)
    if below:
        place.mkdir()
        place = place / below
    if link == ".lock":
        place.symlink_to(place)  # a loop: opening it fails with "too many levels of symbolic links"
    else:
        place.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ZooError) as refused:
        model_zoo.get_or_train(req, verbose=False)
    line = one_line(refused.value)
    assert f"{place} is a symbolic link" in line and "links inside it are refused" in line, line
    assert list(outside.iterdir()) == [] and not req.path.exists()


def test_an_entry_published_as_a_link_is_refused(entry, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.move(entry, elsewhere)
    entry.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ZooError, match=f"{entry} is a symbolic link"):
        model_zoo.load(entry)
    entry.unlink()
    shutil.move(elsewhere, entry)
    (entry / "checkpoints" / "last.ckpt").unlink()
    (entry / "checkpoints" / "last.ckpt").symlink_to(tmp_path / "x")
    with pytest.raises(ZooError, match="checkpoints/last.ckpt is a symbolic link"):
        model_zoo.load(entry)


@pytest.mark.parametrize("name", ["run.lock", "checkpoints"])
def test_a_link_inside_the_run_folder_is_refused(name, tiny_zoo, in_command_env, tmp_path) -> None:
    shutil.copytree(tiny_zoo, in_command_env)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / name).symlink_to(run_dir / name)
    line = body_refusal("run_alignment.py", *TINY_TRAINING, *TINY_ALIGNMENT, output_dir=run_dir)
    assert_error_line(line, f"paths.output_dir={run_dir} is not allowed", f"({run_dir / name} is one")


# -- 7. values out of their form or range ------------------------------------------------------------------
def test_entry_json_must_say_what_config_yaml_builds(entry) -> None:
    info = json.loads((entry / "entry.json").read_text())
    (entry / "entry.json").write_text(json.dumps({**info, "task": "../../x"}))
    with pytest.raises(ZooError) as refused:
        model_zoo.load(entry)
    assert "entry.json: task=../../x is not what config.yaml builds (multiobject)" in one_line(refused.value)
    (entry / "entry.json").write_text(json.dumps({**info, "vocab": ["D0"] * 2_000_000}))
    with pytest.raises(ZooError, match="entry.json: entry.vocab has 2000000 items"):
        model_zoo.load(entry)
    (entry / "entry.json").write_text(json.dumps({**info, "vocab": ["D0"] * 90_000}))
    with pytest.raises(ZooError) as refused:
        model_zoo.load(entry)
    line = one_line(refused.value)
    assert "entry.json: vocab=['D0', 'D0'," in line and "characters) is not what" in line, line
    assert len(line) < 800, len(line)


def test_a_model_larger_than_its_weights_file_is_never_built(entry) -> None:
    set_setting(entry, "  d_model:", str(2**20))
    started = time.perf_counter()
    with pytest.raises(ZooError) as refused:
        model_zoo.load(entry)
    assert time.perf_counter() - started < 5
    assert "config.yaml: model describes a model of" in one_line(refused.value)
    assert f"but model.pt has {(entry / 'model.pt').stat().st_size}" in str(refused.value)


@pytest.mark.parametrize(
    ("nodes", "says"),
    [
        ({"widths": [10**9]}, "widths is [1000000000]: expected a list of integers in [1, 65536]"),
        ({"widths": [16]}, "widths[0] is 16, which no weights of function 0 in the file have"),
        ({"models": None}, "models is None: expected a list of names"),
        ({"state_dict": {}}, "state_dict is not a non-empty mapping of names to tensors"),
        ({"sizes": [2, 2]}, "n_units=[2,2] is not allowed"),
        ({"keep_target": "yes"}, "keep_target is 'yes': expected true or false"),
    ],
    ids=["a width of 10**9", "a width its weights lack", "models null", "no weights", "sizes", "keep_target"],
)
def test_an_alignment_file_out_of_its_form_is_one_line(nodes, says, tmp_path) -> None:
    from alignsearch import api

    started = time.perf_counter()
    with pytest.raises(ConfigError) as refused:
        api.load_alignment(alignment_file(tmp_path / "alignment.pt", **nodes))
    assert time.perf_counter() - started < 5
    line = one_line(refused.value)
    assert says in line, line
