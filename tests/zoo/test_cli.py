"""Tests of the ``zoo`` command line (`zoo.cli`) and the text it prints (`zoo._docs`).

The registry-wide tests (`zoo list`, `zoo docs`) read the counts at the default shapes from the
shipped card table (`zoo/_cards.json`, kept current by tests/zoo/test_registry.py), so they build no model.
"""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import zoo
from zoo._docs import format_shape, human_count, models_markdown
from zoo._registry import get_spec
from zoo.cli import main

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "models.md"


def _rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["name", "family", "params", "MACs", "FLOPs", "input", "year"]
    return [line.split() for line in lines[1:]]


def _expected_row(name: str) -> list[str]:
    info = zoo.model_info(name)
    return [
        name,
        info.family,
        human_count(info.params),
        human_count(info.macs),
        human_count(info.flops),
        format_shape(info.default_input_shape),
        str(info.year),
    ]


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    return lines[0]


@pytest.mark.parametrize(
    "count, text",
    [(0, "0"), (999, "999"), (272_474, "272K"), (999_999, "1M"), (11_699_112, "11.7M"), (1_818_558_976, "1.82G")],
)
def test_human_count(count, text):
    assert human_count(count) == text


# -- zoo list ---------------------------------------------------------------------------------------


def test_list_has_a_row_per_model(capsys):
    assert main(["list"]) == 0, capsys.readouterr().err
    rows = _rows(capsys.readouterr().out)
    assert [row[0] for row in rows] == zoo.list_models()
    assert "resnet18" in zoo.list_models()
    for row in rows:
        assert row == _expected_row(row[0])
    resnet18 = next(row for row in rows if row[0] == "resnet18")
    assert resnet18[:3] == ["resnet18", "resnet", "11.7M"] and resnet18[5:] == ["224x224x3", "2015"]


def test_list_filters_by_pattern_and_exclude(capsys):
    argv = ["list", "resnet1*", "vgg*", "--exclude", "*_bn", "--exclude", "resnet1??"]
    assert main(argv) == 0, capsys.readouterr().err
    names = [row[0] for row in _rows(capsys.readouterr().out)]
    assert names == zoo.list_models(["resnet1*", "vgg*"], exclude=["*_bn", "resnet1??"])
    assert "resnet18" in names and "resnet101" not in names
    assert not any(n.endswith("_bn") for n in names)


def test_list_with_no_match_exits_1(capsys):
    assert main(["list", "no_such_model*"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_error_line(err) == "zoo: no models match 'no_such_model*'"


def test_list_pretrained_shows_each_weights_own_architecture(capsys):
    assert main(["list", "resnet*", "resnext*", "--pretrained"]) == 0, capsys.readouterr().err
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["weights", "params", "FLOPs", "input", "top-1", "options"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == ["resnet20.fashion_mnist", "resnext29_8x64d.fashion_mnist"]
    resnext = zoo.get_weights_info("resnext29_8x64d")
    assert resnext.metrics.params == 815_946 < zoo.model_info("resnext29_8x64d").params  # a narrower model
    assert rows[resnext.name].split()[1:5] == ["816K", human_count(resnext.metrics.flops), "28x28x1",
                                               f"{resnext.metrics.top1:.2%}"]
    assert rows[resnext.name].endswith("bottleneck_width=16, cardinality=4, stage_widths=(32, 64, 128)")
    assert rows["resnet20.fashion_mnist"].endswith("the variant's defaults")


# -- zoo info ---------------------------------------------------------------------------------------


def test_info_card_shows_every_field(capsys):
    assert main(["info", "resnet18"]) == 0, capsys.readouterr().err
    card = capsys.readouterr().out
    info = zoo.model_info("resnet18")
    assert card.splitlines()[0] == "resnet18"
    for text in [
        info.family,
        info.task,
        f"{info.paper}, {info.year}",
        info.url,
        "input shape        224x224x3 (default 224x224x3)",
        f"num classes        {info.num_classes}",
        f"params             {info.params:,} (11.7M)",
        f"trainable params   {info.trainable_params:,}",
        f"MACs               {info.macs:,}",
        f"FLOPs              {info.flops:,}",
        f"published params   {info.published_params:,} from {info.params_source}",
        "matches published  ✓ the zoo's trainable count equals the published",
        "pretrained         none yet",
    ]:
        assert text in card
    assert info.published_params == info.trainable_params
    for option, value in info.options:
        assert f"= {value!r}  # set by resnet18" in card and option in card


def test_info_card_describes_the_pretrained_weights(capsys):
    assert main(["info", "resnext29_8x64d"]) == 0, capsys.readouterr().err
    assert ("pretrained         fashion_mnist (default): 815,946 params at 28x28x1, options bottleneck_width=16, "
            "cardinality=4, stage_widths=(32, 64, 128)\n") in capsys.readouterr().out


def test_info_at_another_input_shape(capsys):
    assert main(["info", "resnet18", "--input-shape", "32", "32", "3"]) == 0, capsys.readouterr().err
    card = capsys.readouterr().out
    small = zoo.model_info("resnet18", input_shape=(32, 32, 3))
    assert "32x32x3 (default 224x224x3)" in card
    assert f"MACs               {small.macs:,}" in card
    assert "(at the default input 224x224x3)" in card  # the published count is for the default input


def test_unknown_name_is_one_line_with_close_matches(capsys):
    assert main(["info", "resnet21"]) == 2
    out, err = capsys.readouterr()
    line = _one_error_line(err)
    assert out == ""
    assert line.startswith("zoo: error: unknown model 'resnet21'. Received name='resnet21'. Close matches: ")
    close = line.split("Close matches: ")[1].rstrip(".").split(", ")
    assert close and set(close) <= set(zoo.list_models())
    assert "Traceback" not in err


def test_zoo_debug_raises_the_error_with_its_traceback(monkeypatch):
    monkeypatch.setenv("ZOO_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown model 'resnet21'"):
        main(["info", "resnet21"])


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["list", "--bogus"],
        ["list", "resnet21"],  # a plain name (no wildcard) must exist
        ["info", "resnet18", "--input-shape", "0", "32", "3"],
        ["info", "resnet18", "--input-shape", "32", "32"],
        ["info", "resnet18", "--input-shape", "32", "x", "3"],
        ["docs", "--check"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv):
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("zoo") and "error: " in line


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"    {command} " in out for command in ("list", "info", "docs"))
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"zoo {zoo.__version__}"


# -- zoo docs ---------------------------------------------------------------------------------------


def test_docs_lists_every_model_under_its_family():
    text = models_markdown()
    assert text == models_markdown()  # deterministic
    families = {get_spec(name).family.name: get_spec(name).family for name in zoo.list_models()}
    for family in families.values():
        assert f"\n## {family.name}\n\n[{family.paper}]({family.url}) ({family.year})" in text
    rows = {
        cells[0].strip("`"): cells
        for line in text.splitlines()
        if line.startswith("| `") and (cells := [c.strip() for c in line.strip("|").split("|")])
    }
    assert list(rows) == sorted(rows, key=lambda n: (get_spec(n).family.year, get_spec(n).family.name))
    assert sorted(rows) == sorted(zoo.list_models())
    info = zoo.model_info("resnet18")
    assert rows["resnet18"] == [
        "`resnet18`",
        f"{info.params:,}",
        f"{info.trainable_params:,}",
        human_count(info.macs),
        human_count(info.flops),
        "224x224x3",
        f"{info.published_params:,}",
        info.params_source,
        "✓",
    ]


def test_docs_check_fails_on_a_stale_file(tmp_path, capsys):
    out = tmp_path / "models.md"
    out.write_text("# Models\n\nstale\n", encoding="utf-8")
    assert main(["docs", "--out", str(out), "--check"]) == 1
    err = _one_error_line(capsys.readouterr().err)
    assert "is stale" in err and "make docs" in err
    assert out.read_text(encoding="utf-8") == "# Models\n\nstale\n"  # --check writes nothing

    assert main(["docs", "--out", str(tmp_path / "missing.md"), "--check"]) == 1
    assert "is missing" in capsys.readouterr().err


def test_docs_check_passes_on_a_fresh_file(tmp_path, capsys):
    out = tmp_path / "docs" / "models.md"
    assert main(["docs", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == models_markdown()
    assert main(["docs", "--out", str(out), "--check"]) == 0
    assert capsys.readouterr().err == ""


def test_docs_out_is_written_atomically(tmp_path, monkeypatch, capsys):
    out = tmp_path / "models.md"
    out.write_text("old\n", encoding="utf-8")

    def interrupted(src, dst):
        raise KeyboardInterrupt  # as if killed between writing and renaming

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", interrupted)
        assert main(["docs", "--out", str(out)]) == 130
    assert out.read_text(encoding="utf-8") == "old\n" and os.listdir(tmp_path) == ["models.md"]
    assert main(["docs", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == models_markdown() and os.listdir(tmp_path) == ["models.md"]


def test_repo_docs_are_current():
    current = DOCS.read_text(encoding="utf-8") if DOCS.is_file() else ""
    assert current == models_markdown(), "docs/models.md is stale: run `make docs` and commit the result"


# -- entry points, import cost ----------------------------------------------------------------------


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_import_zoo_and_help_do_not_import_tensorflow():
    result = _python("-c", "import zoo, sys; assert 'tensorflow' not in sys.modules")
    assert result.returncode == 0, result.stderr
    result = _python("-c", "import sys, zoo.cli; assert zoo.cli.main(['--help']) == 0; "
                           "assert 'tensorflow' not in sys.modules")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("touched", [None, "tf.keras.layers", "from tensorflow.keras import layers"])
def test_tensorflow_imported_first_warns_only_once_tf_keras_is_keras_3(touched):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    code = ("import warnings; warnings.simplefilter('error')\n"
            "import tensorflow as tf\n" + (f"{touched}\n" if touched else "") +
            "import zoo, tf_keras\n"
            "assert tf.keras.Model is tf_keras.Model")  # resolved on first use: tf_keras, as zoo set it
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    if touched:  # Keras 3 already: the warning, raised as an error here
        assert result.returncode != 0 and "tf.keras was used before zoo was imported" in result.stderr
    else:
        assert result.returncode == 0, result.stderr[-2000:]


def test_commands_print_none_of_tensorflows_start_up_notices():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # zoo's default level
    result = subprocess.run([sys.executable, "-m", "zoo", "list", "resnet18"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.splitlines()[1].startswith("resnet18 "), result.stderr
    for notice in ("InitializeLog", "oneDNN custom operations", "cuda drivers", "cuInit"):
        assert notice not in result.stderr, result.stderr


def test_console_script_and_python_m_entry_points():
    # Under `make test` the interpreter is .venv/bin/python, so this is .venv/bin/zoo (setup.cfg's entry point).
    script = Path(sysconfig.get_path("scripts")) / "zoo"
    assert script.is_file(), f"{script} missing: reinstall with `pip install -e .`"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout.strip()) == (0, f"zoo {zoo.__version__}"), result.stderr
    for module in ("zoo", "zoo.cli"):
        result = _python("-m", module, "--help")
        assert result.returncode == 0 and result.stdout.startswith("usage: zoo "), result.stderr


def test_info_says_a_pretrained_googlenet_loads_without_its_training_heads(capsys):
    assert main(["info", "googlenet"]) == 0, capsys.readouterr().err
    line = next(l for l in capsys.readouterr().out.splitlines() if l.strip().startswith("pretrained"))
    assert line.endswith("options width_multiplier=0.25 (as trained; loaded with aux_logits=False unless given)")
