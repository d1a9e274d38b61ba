"""The package: a wheel built from the checkout installs and runs its console scripts on its own."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
    return result


@pytest.mark.slow
def test_a_wheel_installs_into_a_fresh_environment_and_its_commands_run(tmp_path):
    # Built from a copy, so that the build leaves nothing in the checkout.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "exports", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    wheels = tmp_path / "wheels"
    # No build isolation: the build uses this environment's setuptools, so nothing is downloaded.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(wheels),
         str(source)])
    (wheel,) = wheels.glob("tfode-*.whl")
    environment = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(environment)])
    python = environment / "bin" / "python"
    # The TensorFlow stack comes from this environment's site-packages (a path, not a site
    # directory: no editable install of the checkout comes with it); tfode from the wheel.
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    with open(os.path.join(site, "stack.pth"), "w") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")
    run([str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)])
    work = tmp_path / "elsewhere"
    work.mkdir()
    environ = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import zipfile

    # Only names of this project's own: no top-level training or serving for a user's folder to clash with.
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/")[0] for name in archive.namelist()}
    assert {name for name in top if not name.endswith(".dist-info")} == {"tfode", "tfode_training", "tfode_serving"}
    where = run([str(python), "-c", "import importlib.util as u, tfode, tfode_training, tfode_serving; "
                 "print(tfode.__version__, tfode.__file__, u.find_spec('training'), u.find_spec('serving'))"],
                cwd=work, env=environ).stdout.split()
    assert where[1].startswith(str(environment)), where  # the wheel's copy, not the checkout
    assert where[2:] == ["None", "None"], where
    bin_dir = environment / "bin"
    for script in ("tfode-train", "tfode-evaluate", "tfode-export", "tfode-serve", "tfode-client", "tfode-loadtest",
                   "tfode-explore"):
        assert "usage:" in run([str(bin_dir / script), "--help"], cwd=work, env=environ).stdout
    # The explorer's page travels in the wheel.
    static = run([str(python), "-c", "import tfode_serving.explorer.app as app, os; print(sorted(os.listdir(app.STATIC_DIR)))"],
                 cwd=work, env=environ).stdout
    assert "'explorer.js'" in static and "'index.html'" in static
    run([str(bin_dir / "tfode-train"), "--preset", "tiny", "--epochs", "1", "--run-dir", "run", "--quiet"],
        cwd=work, env=environ)
    assert (work / "run" / "model.keras").exists()


COMMANDS = sorted(
    f"{package}.{name[:-3]}"
    for package in ("training", "training.benchmarks", "serving", "serving.benchmarks", "serving.explorer")
    for name in os.listdir(os.path.join(ROOT, *package.split(".")))
    if name.endswith(".py")
    and 'if __name__ == "__main__"' in open(os.path.join(ROOT, *package.split("."), name)).read()
)

# Runs a command's `--help` in a fresh process, keeping the parser it built (and its subcommands'
# parsers), and prints what a user would miss: flags whose help hides their default, flags whose
# help states it twice or states "None", and whether TensorFlow was imported to answer.
HELP_PROBE = """
import argparse, json, runpy, sys
parsers = []
def keep(self, args=None, namespace=None):
    parsers.append(self)
    raise SystemExit(0)
argparse.ArgumentParser.parse_args = keep
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_module(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
hidden, noisy, queue = [], [], list(parsers)
while queue:
    parser = queue.pop()
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            queue.extend(action.choices.values())
            continue
        if action.option_strings and action.help not in (None, argparse.SUPPRESS):
            shown = formatter._expand_help(action)
            if shown.count("(default") > 1 or "(default: None)" in shown:
                noisy.append(action.option_strings[-1])
        unset = action.default in (None, argparse.SUPPRESS, "") or action.default is False
        if not action.option_strings or unset or action.help is argparse.SUPPRESS:
            continue
        if not action.help or "default" not in formatter._expand_help(action):
            hidden.append(action.option_strings[-1])
print(json.dumps({"parsers": len(parsers), "hidden": hidden, "noisy": noisy,
                  "tensorflow": "tensorflow" in sys.modules}))
"""


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_help_without_tensorflow_and_shows_each_default(command):
    result = run([sys.executable, "-c", HELP_PROBE, command], cwd=ROOT)
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["parsers"] == 1, f"{command} did not reach its argument parser"
    assert probe["hidden"] == [], f"{command} --help hides the default of {probe['hidden']}"
    assert probe["noisy"] == [], f"{command} --help repeats the default of {probe['noisy']}, or shows None"
    assert not probe["tensorflow"], f"{command} imports TensorFlow before reading its arguments"


@pytest.mark.parametrize("package, extra", [("training", "train"), ("serving", "serve")])
def test_each_command_package_names_its_extra_as_pyproject_does_and_says_what_is_missing(package, extra):
    import importlib
    import re
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        extras = tomllib.load(handle)["project"]["optional-dependencies"]
    declared = {re.match(r"[A-Za-z0-9_.-]+", requirement).group(0) for requirement in extras[extra]}
    checked = importlib.import_module(package)._EXTRA  # import name → distribution
    assert set(checked.values()) == declared
    module, distribution = sorted(checked.items())[0]
    probe = f"import sys; sys.modules[{module!r}] = None; import {package}"  # as if not installed
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"need {distribution}: pip install 'tfode[{extra}]'" in result.stderr.splitlines()[-1]
