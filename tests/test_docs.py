"""The README and every page of docs/ say only what works.

For each page: its Python examples run (those that talk to a server, against a real
``watchkeeper serve``, as do its ``curl`` calls to that server); its ``watchkeeper.toml``
examples load as configuration; every ``watchkeeper``/``wk`` line of its shell blocks names a
real command with real options (resolved against the CLI's command tree, not run); and every
relative link leads to a file that exists, and to a heading of it when it names one.
"""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from tests.processes import free_port, wait_for
from tests.security.conftest import Served, serve  # noqa: F401
from watchkeeper.config import Settings
from watchkeeper.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SERVER = "localhost:8080"  # where the examples' clients look for a server
GRPC_SERVER = "localhost:8081"  # and the gRPC ones, for `serve --grpc-port 8081`
SHELLS = {"sh", "bash", "console", "shell"}


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def blocks(page: Path | str, *langs: str) -> list[str]:
    """The fenced blocks of ``page`` (a path, or its text) in one of ``langs``."""
    text = page if isinstance(page, str) else page.read_text()
    found = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
    return [body for lang, body in found if lang in langs]


def python_blocks(page: Path, *, client: bool) -> list[str]:
    """The page's Python blocks that talk to a running server, or the others."""
    return [b for b in blocks(page, "python") if (SERVER in b or GRPC_SERVER in b) == client]


def pages_with(select: object) -> list[Path]:
    return [page for page in PAGES if select(page)]  # type: ignore[operator]


# --- the README opens with the two commands -----------------------------------------------


def test_readme_opens_with_the_two_commands() -> None:
    first = blocks(README, *SHELLS)[0]
    assert [line.split("#")[0].strip() for line in first.splitlines()] == ["make demo", "make test"]
    assert "examples/quickstart.py" in (ROOT / "Makefile").read_text()
    assert (ROOT / "examples" / "quickstart.py").is_file()


def test_the_readme_stays_a_newcomers_page() -> None:
    """Subjects go to docs/ pages; the README keeps the commands, the tour and the links."""
    assert len(README.read_text().splitlines()) <= 200


def test_every_page_is_listed_in_the_index() -> None:
    index = (ROOT / "docs" / "README.md").read_text()
    listed = set(re.findall(r"\]\(([\w.-]+\.md)(?:#[\w-]*)?\)", index))
    pages = {page.name for page in PAGES if page.parent.name == "docs" and page.name != "README.md"}
    assert pages - listed == set(), "pages missing from docs/README.md"


# --- Python and toml examples -------------------------------------------------------------


@pytest.mark.parametrize("page", pages_with(lambda p: python_blocks(p, client=False)), ids=_id)
def test_python_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("WATCHKEEPER_HOME", "WATCHKEEPER_DATABASE_URL", "WATCHKEEPER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    for block in python_blocks(page, client=False):
        exec(compile(block, str(page), "exec"), {})
        if "print(" in block:
            assert capsys.readouterr().out.strip(), f"{_id(page)}: an example printed nothing"


def test_the_readme_registry_example_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's registration example ends as it says: v1 is production again."""
    monkeypatch.chdir(tmp_path)
    for var in ("WATCHKEEPER_HOME", "WATCHKEEPER_DATABASE_URL", "WATCHKEEPER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    (example,) = [b for b in python_blocks(README, client=False) if "registry.rollback" in b]
    exec(compile(example, str(README), "exec"), {})
    assert capsys.readouterr().out.strip().endswith("True")
    assert (tmp_path / ".watchkeeper" / "watchkeeper.db").is_file()


@pytest.mark.parametrize("page", pages_with(lambda p: blocks(p, "toml")), ids=_id)
def test_toml_examples_load_as_configuration(page: Path, tmp_path: Path) -> None:
    from watchkeeper.monitoring.spec import declared_monitors
    from watchkeeper.retraining.spec import declared_retraining

    for i, block in enumerate(blocks(page, "toml")):
        path = tmp_path / f"{i}.toml"
        path.write_text(block)
        settings = Settings.load(env={}, config_file=path)
        monitors, retraining = declared_monitors(settings), declared_retraining(settings)
        # every declared table is read (a misspelt one is refused by Settings.load)
        assert sorted(monitors) == sorted(re.findall(r"^\[monitors\.([\w-]+)\]", block, re.M))
        assert sorted(retraining) == sorted(re.findall(r"^\[retraining\.([\w-]+)\]", block, re.M))


# --- clients against a real server --------------------------------------------------------


def curl_lines(page: Path) -> list[str]:
    """The page's shell commands calling ``curl`` on the example server (lines joined)."""
    out = []
    for block in blocks(page, *SHELLS):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("curl ") and SERVER in line:
                out.append(line.strip())
    return out


def test_client_examples_run_against_a_server(tmp_path: Path, serve: Callable[..., Served]) -> None:  # noqa: F811
    """Every page's client examples (curl, urllib, tritonclient over HTTP and gRPC) work
    against `watchkeeper serve` with the quick start's breast-cancer model, as written but
    for the ports."""
    clients = [(page, b) for page in PAGES for b in python_blocks(page, client=True)]
    curls = [(page, line) for page in PAGES for line in curl_lines(page)]
    assert clients, "the docs show a Python client talking to a server"
    assert any("/v1/models/breast-cancer:predict" in line for _, line in curls)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" ", "_") for c in X.columns]  # as examples/quickstart.py names them
    with Registry(Settings(home=tmp_path / "home", user="tester")) as registry:
        registry.register("breast-cancer", LogisticRegression(max_iter=3000).fit(X, y),
                          input_example=X, stage="production")  # fmt: skip
    grpc_port = free_port()
    served: Served = serve("--without-scheduler", "--grpc-port", str(grpc_port),
                           home=tmp_path / "home")  # fmt: skip
    wait_for(lambda: httpx.get(f"{served.url}/readyz").status_code == 200, 60, "ready")
    here = served.url.removeprefix("http://")
    for page, block in clients:
        code = block.replace(SERVER, here).replace(GRPC_SERVER, f"127.0.0.1:{grpc_port}")
        namespace: dict[str, object] = {}
        exec(compile(code, str(page), "exec"), namespace)
    for page, line in curls:
        command = line.replace(SERVER, here).replace("curl ", "curl --fail-with-body ", 1)
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (_id(page), line, done.stdout, done.stderr)
        assert done.stdout.strip(), (_id(page), line)
        if ":predict" in line:
            assert '"predictions"' in done.stdout, (_id(page), done.stdout)


# --- CLI lines name real commands and options ---------------------------------------------


def cli_lines(page: Path | str) -> Iterator[tuple[str, list[str]]]:
    """(line, arguments) for every ``watchkeeper``/``wk`` command in the page's shell blocks:
    continuation lines joined, comments dropped, pipes and ``&&`` split, ``VAR=value``
    prefixes and a ``$`` prompt removed, ``[optional]`` brackets and ``...`` stripped."""
    for block in blocks(page, *SHELLS):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
            lexer.whitespace_split = True
            try:
                tokens = list(lexer)
            except ValueError:
                tokens = line.split("#", 1)[0].split()
            command: list[str] = []
            for token in [*tokens, ";"]:
                if token and set(token) <= set("|&;"):
                    yield from _as_watchkeeper(line, command)
                    command = []
                else:
                    command.append(token)


def _as_watchkeeper(line: str, tokens: list[str]) -> Iterator[tuple[str, list[str]]]:
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
        tokens = tokens[1:]
    if not tokens or Path(tokens[0]).name not in ("watchkeeper", "wk"):
        return
    args = []
    for token in tokens[1:]:
        token = token.strip("[]").removesuffix("...").removesuffix("…").strip("[]")
        if token:
            args.append(token)
    yield line, args


def _is_group(cmd: Any) -> bool:
    """Duck-typed: typer may carry its own copy of click, whose classes are not ``click``'s."""
    return hasattr(cmd, "get_command") and hasattr(cmd, "list_commands")


def _takes_value(param: Any) -> bool:
    return not (param.param_type_name == "option" and (param.is_flag or param.count))


def _check_options(cmd: Any, ctx: Any, args: list[str]) -> tuple[list[str], list[str]]:
    """Walk ``args`` as ``cmd``'s options: (problems, positional arguments). Stops at the
    first positional argument of a group (its subcommand)."""
    by_name = {o: p for p in cmd.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
    problems, positional = [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positional += args[i + 1 :]
            break
        if arg.startswith("-") and len(arg) > 1 and not re.fullmatch(r"-[\d.]+", arg):
            name, eq, _ = arg.partition("=")
            param = by_name.get(name)
            if param is None:
                problems.append(f"{ctx.command_path}: no option {name}")
            elif _takes_value(param) and not eq:
                if i + 1 >= len(args):
                    problems.append(f"{ctx.command_path}: {name} needs a value")
                i += 1
            elif not _takes_value(param) and eq:
                problems.append(f"{ctx.command_path}: {name} takes no value")
        elif _is_group(cmd):
            return problems, args[i:]
        else:
            positional.append(arg)
        i += 1
    return problems, positional


def resolve(root: Any, args: list[str]) -> list[str]:
    """What is wrong with ``watchkeeper ARGS`` (an empty list when nothing), found by walking
    the command tree as click would parse it, without running anything."""
    ctx = root.context_class(root, info_name="watchkeeper", resilient_parsing=True)
    cmd = root
    if "--help" in args:
        args = args[: args.index("--help")]
    while True:
        problems, rest = _check_options(cmd, ctx, args)
        if problems:
            return problems
        if not _is_group(cmd):
            break
        if not rest:
            return []  # a group alone prints its help
        # let the group rewrite its arguments as it would (`retrain NAME` -> `retrain now NAME`)
        probe = cmd.context_class(cmd, info_name=ctx.info_name, parent=ctx.parent,
                              resilient_parsing=True)  # fmt: skip
        cmd.parse_args(probe, list(rest))
        remaining = [*getattr(probe, "_protected_args", []), *probe.args]
        name = remaining[0]
        sub = cmd.get_command(ctx, name)
        if sub is None:
            return [f"{ctx.command_path}: no command {name!r}"]
        ctx = sub.context_class(sub, info_name=name, parent=ctx, resilient_parsing=True)
        cmd, args = sub, remaining[1:]
    arguments = [p for p in cmd.get_params(ctx) if p.param_type_name == "argument"]
    most = float("inf") if any(p.nargs < 0 for p in arguments) else sum(p.nargs for p in arguments)
    least = sum(max(p.nargs, 1) for p in arguments if p.required)
    if not least <= len(rest) <= most:
        return [f"{ctx.command_path}: {len(rest)} argument(s) given, takes {least} to {most}"]
    return []


@pytest.fixture(scope="module")
def command_tree() -> Any:
    from watchkeeper.cli.main import app

    return typer.main.get_command(app)


def test_the_resolver_finds_mistakes(command_tree: Any) -> None:
    """The check below can fail: unknown commands, options, missing values, extra arguments."""
    assert resolve(command_tree, ["models", "list"]) == []
    assert resolve(command_tree, ["retrain", "churn", "--dry-run"]) == []
    assert resolve(command_tree, ["--home", "x", "deploy", "status", "churn"]) == []
    assert resolve(command_tree, ["models", "lst"]) == ["watchkeeper models: no command 'lst'"]
    assert resolve(command_tree, ["serve", "--prot", "1"]) == [
        "watchkeeper serve: no option --prot"
    ]
    assert resolve(command_tree, ["serve", "--port"]) == ["watchkeeper serve: --port needs a value"]
    assert resolve(command_tree, ["models", "list", "extra"]) != []
    assert resolve(command_tree, ["models", "promote", "churn"]) != []
    (_, args), (_, other) = cli_lines("```sh\nFOO=1 .venv/bin/wk models show x@1 [--json]  # c\n"
                                      "ls | wk db current && echo\n```\n")  # fmt: skip
    assert args == ["models", "show", "x@1", "--json"]
    assert other == ["db", "current"]


@pytest.mark.parametrize("page", pages_with(lambda p: list(cli_lines(p))), ids=_id)
def test_cli_lines_name_real_commands_and_options(page: Path, command_tree: Any) -> None:
    problems = [
        f"{line}\n    {p}" for line, args in cli_lines(page) for p in resolve(command_tree, args)
    ]
    assert problems == [], f"{_id(page)}:\n" + "\n".join(problems)


# --- Python names ---------------------------------------------------------------------------

FILE_SUFFIXES = {"toml", "db", "json", "yaml", "yml", "html", "md", "py", "proto", "parquet", "csv"}


def python_names(page: Path) -> set[str]:
    """Every dotted ``watchkeeper.…`` name the page mentions (``watchkeeper.toml`` and other
    file names aside)."""
    found = re.findall(r"\bwatchkeeper(?:\.[A-Za-z_]\w*)+", page.read_text())
    return {name for name in found if name.rsplit(".", 1)[1] not in FILE_SUFFIXES}


def importable(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        try:
            for attribute in parts[cut:]:
                found = getattr(found, attribute)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("page", pages_with(python_names), ids=_id)
def test_python_names_exist(page: Path) -> None:
    """A module or function moved is a page to update: every name the page gives imports."""
    missing = sorted(name for name in python_names(page) if not importable(name))
    assert missing == [], f"{_id(page)} names what does not exist"


def test_a_moved_name_is_caught() -> None:
    assert importable("watchkeeper.config.Settings")
    assert not importable("watchkeeper.config.NoSuchThing")
    assert not importable("watchkeeper.no_such_module.run")


# --- links ----------------------------------------------------------------------------------


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings."""
    out = set()
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_relative_links_resolve(page: Path) -> None:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert broken == [], f"{_id(page)}: " + "; ".join(broken)
