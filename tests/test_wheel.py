"""The wheel `pip install` gets: the data files the package reads at run time are in it."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_weights_cards_samples_and_recipes(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("zoo", "training", "export"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("keras_zoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for pattern in ("zoo/weights/*.h5", "zoo/weights/*.json",
                                                         "zoo/data/*.npz", "training/recipes/*.json")
                for p in ROOT.glob(pattern)}
    assert len(expected) > 30 and expected <= names, sorted(expected - names)
    assert {"zoo/_cards.json", "zoo/py.typed", "zoo/cli.py", "training/loop.py", "export/tflite.py"} <= names
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]
