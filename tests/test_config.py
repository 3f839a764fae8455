"""``watchkeeper.toml`` and ``WATCHKEEPER_*``: precedence, and one line naming the file and the
key for every mistake (in-process here, and once over the real CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from watchkeeper.config import Settings
from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.spec import declared_monitors
from watchkeeper.retraining.spec import RetrainSpec, declared_retraining


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watchkeeper.toml"
    path.write_text(text)
    return path


def test_file_then_environment_then_arguments(tmp_path: Path) -> None:
    path = _file(tmp_path, '[watchkeeper]\nhome = "from-file"\nuser = "file-user"\n'
                           'logbook_url = "memory://book"\n')  # fmt: skip
    env = {"WATCHKEEPER_USER": "env-user", "WATCHKEEPER_HOME": ""}  # empty: not set
    settings = Settings.load(env=env, config_file=path, home="argument")
    assert (settings.home, settings.user) == (Path("argument"), "env-user")
    assert settings.logbook_url == "memory://book"
    assert settings.source == path


def test_settings_may_stand_at_the_top_of_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, 'home = "top"\n[monitors.churn]\nwindow = "2h"\n')
    settings = Settings.load(env={}, config_file=path)
    assert settings.home == Path("top")
    assert declared_monitors(settings)["churn"].window == timedelta(hours=2)


def test_no_file_is_no_source(tmp_path: Path) -> None:
    settings = Settings.load(env={}, config_file=tmp_path / "absent.toml")
    assert settings.source is None
    assert "WATCHKEEPER_CONFIG" not in settings.to_env()


def test_to_env_gives_another_process_the_same_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path.resolve() / "h", database_url="sqlite:///x.db",
                        logbook_url="memory://book", user="u", retention="10d")  # fmt: skip
    again = Settings.load(env=settings.to_env(), config_file=tmp_path / "absent.toml")
    assert again == settings


def test_another_process_sees_the_same_file(tmp_path: Path) -> None:
    """``to_env`` names the file, so a child started elsewhere reads the same tables."""
    path = _file(tmp_path, '[retraining.churn]\nentrypoint = "train:fit"\ncooldown = "2h"\n')
    env = Settings.load(env={}, config_file=path).to_env()
    assert env["WATCHKEEPER_CONFIG"] == str(path.resolve())
    child = Settings.load(env=env)  # no config_file: found through the variable
    assert declared_retraining(child)["churn"].cooldown == timedelta(hours=2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[monitors.churn]\nmax_error_rate = "a lot"\n',
         "monitors.churn.max_error_rate: Input should be a valid number"),
        ('[monitors.churn]\nevery = "often"\n',
         "monitors.churn.every: 'often' is not a duration: use e.g. 90d, 12h, 30m"),
        ('[monitors.churn.drift]\nmethod = { tenure = 3 }\n',
         "monitors.churn.drift.method.tenure: Input should be a valid string"),
        ('[monitors.churn]\nwindow = "0s"\n',
         "monitors.churn: the window must be longer than zero"),
        ('[retraining.churn]\nentrypoint = "t:f"\ntriggers = [{ kind = "hourly" }]\n',
         "retraining.churn.triggers[0].kind: Input should be 'schedule', 'drift', 'performance'"
         " or 'manual'"),
        ('[retraining.churn]\nentrypoint = "t:f"\n[retraining.churn.gate]\ntolerance = "1%"\n',
         "retraining.churn.gate.tolerance: Input should be a valid number"),
        ('[retraining.churn]\nentrypoint = "t:f"\nstrategy = "yolo"\n',
         "retraining.churn.strategy: Input should be 'shadow-canary', 'canary', 'bluegreen'"
         " or 'none'"),
        ('[retraining.churn]\nentrypoint = "t:f"\nwindow = "30d"\nwindw = "1d"\n',
         "retraining.churn.windw: unknown key; known: command, cooldown, entrypoint"),
        ('[retraining.churn]\nparams = { C = 1.0 }\n',
         "retraining.churn: declare exactly one of entrypoint = 'module:function' or command"),
    ],
)  # fmt: skip
def test_a_bad_table_is_one_line_naming_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _file(tmp_path, text)
    settings = Settings.load(env={}, config_file=path)  # per-model tables: checked when read
    declared = declared_monitors if text.startswith("[monitors") else declared_retraining
    with pytest.raises(InvalidInput) as caught:
        declared(settings)
    assert caught.value.message.startswith(f"{path}: {message}")
    assert "\n" not in caught.value.message
    assert caught.value.details[0].field == message.split(":")[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[watchkeeper]\nhome = 3\n", "watchkeeper.home: Input is not a valid path"),
        ('[watchkeeper]\nhome = "h"\nhomme = "h"\n',
         "watchkeeper.homme: unknown key; known: artifact_url, database_url, home"),
        ('[watchkeeper]\nretention = "forever"\n',
         "watchkeeper: retention: 'forever' is not a duration"),
        ('[monitor.churn]\nwindow = "1h"\n', "monitor: unknown key; known: artifact_url"),
        ('[watchkeeper]\nuser = "me"\n[monitor.churn]\n',
         "monitor: unknown key; known: monitors, retraining"),
        ('monitors = "all"\n', "monitors: Input should be a valid dictionary"),
        ("[monitors]\nchurn = 1\n", "monitors.churn: Input should be a valid dictionary"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_refused_when_loading(tmp_path: Path, text: str, message: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(InvalidInput) as caught:
        Settings.load(env={}, config_file=path)
    assert caught.value.message.startswith(f"{path}: {message}")


def test_an_unreadable_file_names_itself(tmp_path: Path) -> None:
    path = _file(tmp_path, "[monitors.churn\n")
    with pytest.raises(InvalidInput, match=f"cannot read {path}: "):
        Settings.load(env={}, config_file=path)


def test_a_python_table_is_checked_alike() -> None:
    with pytest.raises(InvalidInput, match=r"^retraining.m.timeout: '30' is not a duration"):
        RetrainSpec.from_dict("m", {"entrypoint": "t:f", "timeout": 30})
    spec = RetrainSpec.from_dict("m", {"entrypoint": "t:f", "gate": {"minimums": {"auc": 1}}})
    assert spec.gate.minimums == {"auc": 1.0}


def _python(code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    return done.stdout.strip()


def test_loading_config_stays_cheap(tmp_path: Path) -> None:
    """Importing the module never imports pydantic (about 0.1 s), and neither does loading a
    file whose values need no conversion (every CLI command loads the settings)."""
    _file(tmp_path, '[watchkeeper]\nuser = "me"\nretention = "2w"\n[monitors.churn]\n'
                    'window = "1h"\n[retraining.churn]\nentrypoint = "t:f"\n')  # fmt: skip
    code = (
        "import sys; from watchkeeper.config import Settings; s = Settings.load(); "
        "print(s.user, s.retention, sorted(s.monitors), 'pydantic' in sys.modules)"
    )
    assert _python(code, tmp_path) == "me 2w ['churn'] False"


def test_the_cli_prints_one_line_naming_file_and_key(tmp_path: Path) -> None:
    _file(tmp_path, '[monitors.churn]\nwindow = "1h"\nmax_error_rate = "a lot"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env["WATCHKEEPER_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-m", "watchkeeper", "monitor", "list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip() == (
        "error: watchkeeper.toml: monitors.churn.max_error_rate: "
        "Input should be a valid number, unable to parse string as a number"
    )
    assert done.stdout == ""
