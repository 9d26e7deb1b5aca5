"""Unit tests of torchfix_mod.config: discovery, parsing and validation, rule selection,
per-file ignores, excludes and the settings fingerprint."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from torchfix_mod.config import (
    Config,
    ConfigError,
    effective_codes,
    find_config,
    load_config,
    resolve,
)
from torchfix_mod.rule import load_rules

CODES = ("TFM101", "TFM102", "TFM103", "TFM201", "TFM301", "TFM302", "TFM401")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def project(root: Path, body: str = "") -> Path:
    """A pyproject.toml in ``root`` with a [tool.torchfix-mod] table holding ``body``."""
    return write(root / "pyproject.toml", "[tool.torchfix-mod]\n" + textwrap.dedent(body))


def error_of(root: Path, body: str, codes=CODES) -> str:
    path = project(root, body)
    with pytest.raises(ConfigError) as info:
        load_config(path, codes)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- discovery


def test_nearest_config_wins_from_nested_directories(tmp_path):
    outer = project(tmp_path, 'select = ["TFM1"]\n')
    inner = project(tmp_path / "pkg", 'select = ["TFM2"]\n')
    write(tmp_path / "pkg" / "sub" / "deep" / "m.py", "x = 1\n")
    write(tmp_path / "other" / "m.py", "x = 1\n")

    assert find_config([tmp_path / "pkg" / "sub" / "deep" / "m.py"]) == inner
    assert find_config([tmp_path / "pkg" / "sub"]) == inner
    assert find_config([tmp_path / "pkg"]) == inner  # a directory starts from itself
    assert find_config([tmp_path / "other" / "m.py"]) == outer
    assert find_config([tmp_path]) == outer
    assert resolve([tmp_path / "pkg" / "sub"], CODES).select == ("TFM2",)
    assert resolve([tmp_path / "other"], CODES).select == ("TFM1",)


def test_pyproject_without_the_table_is_skipped(tmp_path):
    outer = project(tmp_path, "unsafe-fixes = true\n")
    write(tmp_path / "pkg" / "pyproject.toml", '[project]\nname = "pkg"\n\n[tool.black]\nline-length = 99\n')
    (tmp_path / "pkg" / "src").mkdir()

    assert find_config([tmp_path / "pkg" / "src"]) == outer
    config = resolve([tmp_path / "pkg" / "src"], CODES)
    assert config.path == outer and config.root == tmp_path and config.unsafe_fixes is True


def test_an_empty_table_still_counts_as_configuration(tmp_path):
    outer = project(tmp_path, "unsafe-fixes = true\n")
    inner = project(tmp_path / "pkg")
    assert find_config([tmp_path / "pkg"]) == inner
    assert find_config([tmp_path]) == outer
    assert resolve([tmp_path / "pkg"], CODES) == Config(path=inner, root=tmp_path / "pkg")


def test_no_config_anywhere_gives_defaults(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.ruff]\nline-length = 100\n")
    (tmp_path / "src").mkdir()
    assert find_config([tmp_path / "src"]) is None
    assert resolve([tmp_path / "src"], CODES) == Config()


def test_several_paths_use_the_config_of_their_common_parent(tmp_path):
    top = project(tmp_path, 'select = ["TFM1"]\n')
    project(tmp_path / "a", 'select = ["TFM2"]\n')
    write(tmp_path / "a" / "x.py", "x = 1\n")
    write(tmp_path / "b" / "y.py", "y = 1\n")

    assert find_config([tmp_path / "a" / "x.py", tmp_path / "b" / "y.py"]) == top
    assert find_config([tmp_path / "b" / "y.py", tmp_path / "a" / "x.py"]) == top
    assert find_config([tmp_path / "a" / "x.py", tmp_path / "a"]) == tmp_path / "a" / "pyproject.toml"


def test_relative_paths_start_from_the_current_directory(tmp_path, monkeypatch):
    config = project(tmp_path, "")
    write(tmp_path / "pkg" / "m.py", "x = 1\n")
    monkeypatch.chdir(tmp_path / "pkg")
    assert find_config([Path("m.py")]) == config
    assert find_config([Path(".")]) == config
    assert find_config([]) == config  # no paths: the current directory


def test_a_missing_path_starts_from_its_parent(tmp_path):
    config = project(tmp_path / "pkg")
    assert find_config([tmp_path / "pkg" / "gone.py"]) == config


def test_invalid_pyproject_on_the_way_up_is_an_error(tmp_path):
    write(tmp_path / "pkg" / "pyproject.toml", "[tool.black\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml: invalid TOML"):
        find_config([tmp_path / "pkg"])


# --------------------------------------------------------------------------- parsing


def test_every_key_is_parsed(tmp_path):
    path = project(
        tmp_path,
        """
        select = ["TFM1", "TFM301"]
        ignore = ["TFM102"]
        extend-select = ["TFM401"]
        unsafe-fixes = true
        buffer-persistent = false
        exclude = ["generated/", "/scratch"]
        extend-exclude = ["*_pb2.py"]

        [tool.torchfix-mod.per-file-ignores]
        "tests/*" = ["TFM201"]
        "**/legacy_*.py" = ["TFM1", "TFM302"]
        """,
    )
    assert load_config(path, CODES) == Config(
        path=path,
        root=tmp_path,
        select=("TFM1", "TFM301"),
        ignore=("TFM102",),
        extend_select=("TFM401",),
        unsafe_fixes=True,
        buffer_persistent=False,
        exclude=("generated/", "/scratch"),
        extend_exclude=("*_pb2.py",),
        per_file_ignores=(("tests/*", ("TFM201",)), ("**/legacy_*.py", ("TFM1", "TFM302"))),
    )


def test_unset_keys_keep_their_defaults(tmp_path):
    path = project(tmp_path, "buffer-persistent = true\n")
    config = load_config(path, CODES)
    assert config == Config(path=path, root=tmp_path, buffer_persistent=True)
    assert config.select is None and config.exclude is None and config.unsafe_fixes is None


def test_codes_are_normalised_and_deduplicated(tmp_path):
    path = project(tmp_path, 'select = ["tfm1", " TFM301 ", "TFM1"]\n')
    assert load_config(path, CODES).select == ("TFM1", "TFM301")


def test_empty_select_is_kept_distinct_from_unset(tmp_path):
    path = project(tmp_path, "select = []\nexclude = []\n")
    config = load_config(path, CODES)
    assert config.select == () and config.exclude == ()


def test_inline_table_form_is_accepted(tmp_path):
    path = write(
        tmp_path / "pyproject.toml",
        '[tool]\ntorchfix-mod = { ignore = ["TFM2"], per-file-ignores = { "a.py" = ["TFM3"] } }\n',
    )
    config = load_config(path, CODES)
    assert config.ignore == ("TFM2",) and config.per_file_ignores == (("a.py", ("TFM3",)),)


def test_real_rule_codes_validate(tmp_path):
    known = [rule.code for rule in load_rules()]
    path = project(tmp_path, 'select = ["TFM1", "TFM5"]\n')
    assert load_config(path, known).select == ("TFM1", "TFM5")
    project(tmp_path, 'select = ["TFM9"]\n')
    with pytest.raises(ConfigError, match="TFM9"):
        load_config(path, known)


# --------------------------------------------------------------------------- errors


def test_unknown_key_names_the_file_and_suggests_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = error_of(tmp_path, 'selct = ["TFM1"]\n')
    assert message == "pyproject.toml: [tool.torchfix-mod] unknown key 'selct' (did you mean 'select'?)"


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("unsafe_fixes", "unsafe-fixes"),
        ("extend-ignore", "ignore"),
        ("per-file-ignore", "per-file-ignores"),
        ("extendexclude", "extend-exclude"),
    ],
)
def test_unknown_key_suggestions(tmp_path, key, suggestion):
    message = error_of(tmp_path, f"{key} = true\n")
    assert f"unknown key '{key}' (did you mean '{suggestion}'?)" in message


def test_unknown_key_without_a_close_match_has_no_hint(tmp_path):
    message = error_of(tmp_path, "colour = true\n")
    assert message.endswith("unknown key 'colour'")


def test_error_names_the_file_outside_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    message = error_of(tmp_path / "proj", "unsafe-fixes = 1\n")
    assert message.startswith(str(tmp_path / "proj" / "pyproject.toml") + ": [tool.torchfix-mod] ")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('unsafe-fixes = "yes"', "'unsafe-fixes' must be true or false, got 'yes'"),
        ("unsafe-fixes = 1", "'unsafe-fixes' must be true or false, got 1"),
        ('buffer-persistent = "false"', "'buffer-persistent' must be true or false, got 'false'"),
        ("buffer-persistent = [true]", "'buffer-persistent' must be true or false, got [true]"),
        ('select = "TFM1"', "'select' must be a list of strings, got 'TFM1'"),
        ('select = ["TFM1", 3]', "'select' must be a list of strings, got ['TFM1', 3]"),
        ("ignore = true", "'ignore' must be a list of strings, got true"),
        ('extend-select = { a = "TFM1" }', "'extend-select' must be a list of strings, got {a = 'TFM1'}"),
        ('exclude = "build"', "'exclude' must be a list of strings, got 'build'"),
        ("extend-exclude = [1.5]", "'extend-exclude' must be a list of strings, got [1.5]"),
        ('per-file-ignores = ["tests/*"]', "'per-file-ignores' must be a table of glob = [codes], got ['tests/*']"),
        (
            'per-file-ignores = { "tests/*" = "TFM201" }',
            "'per-file-ignores' entry 'tests/*' must be a list of strings, got 'TFM201'",
        ),
    ],
)
def test_bad_value_types_say_what_was_expected(tmp_path, monkeypatch, body, expected):
    monkeypatch.chdir(tmp_path)
    assert error_of(tmp_path, body + "\n") == f"pyproject.toml: [tool.torchfix-mod] {expected}"


def test_table_that_is_not_a_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "pyproject.toml", '[tool]\ntorchfix-mod = "on"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, CODES)
    assert str(info.value) == "pyproject.toml: [tool.torchfix-mod] must be a table, got 'on'"
    # discovery still stops there, so the mistake is reported rather than skipped
    assert find_config([tmp_path]) == path


def test_long_values_are_shortened_in_messages(tmp_path):
    message = error_of(tmp_path, "select = " + json.dumps(["TFM1"] * 40 + [1]) + "\n")
    assert message.endswith("...") and len(message) < 200


def test_bad_toml_says_so_with_the_parser_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "pyproject.toml", '[tool.torchfix-mod]\nselect = = ["TFM1"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, CODES)
    message = str(info.value)
    assert message.startswith("pyproject.toml: invalid TOML: ")
    assert message.endswith("(at line 2, column 10)") and "\n" not in message


def test_non_utf8_file_is_an_error(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_bytes(b'[tool.torchfix-mod]\nselect = ["\xff"]\n')
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path, CODES)


@pytest.mark.parametrize("key", ["select", "ignore", "extend-select"])
def test_unknown_code_is_an_error(tmp_path, key):
    message = error_of(tmp_path, f'{key} = ["TFM1", "TFM9"]\n')
    assert message.endswith(f"'{key}' has 'TFM9', which matches no rule code")


def test_unknown_code_suggests_a_close_one(tmp_path):
    message = error_of(tmp_path, 'ignore = ["TFM3011"]\n')
    assert message.endswith("'ignore' has 'TFM3011', which matches no rule code (did you mean 'TFM301'?)")


def test_a_prefix_must_match_some_rule(tmp_path):
    assert load_config(project(tmp_path, 'select = ["TFM", "TFM3", "TFM30"]\n'), CODES).select
    message = error_of(tmp_path, 'select = ["TFM303"]\n')
    assert "'TFM303', which matches no rule code" in message


def test_all_is_the_least_specific_pattern(tmp_path):
    """`select = ["ALL"]` enables every rule, off-by-default ones too; any prefix beats it."""
    config = load_config(project(tmp_path, 'select = ["ALL"]\nignore = ["TFM1"]\n'), CODES)
    assert config.select == ("",)
    codes = effective_codes(config, [], [], [], CODES, default_codes=[])
    assert codes == [c for c in CODES if not c.startswith("TFM1")] and codes


def test_codes_are_checked_against_the_codes_passed_in(tmp_path):
    path = project(tmp_path, 'select = ["ABC1"]\n')
    assert load_config(path, ["ABC123"]).select == ("ABC1",)
    with pytest.raises(ConfigError, match="'ABC1', which matches no rule code"):
        load_config(path, CODES)


def test_empty_code_is_an_error(tmp_path):
    assert "'select' has an empty rule code" in error_of(tmp_path, 'select = [""]\n')


def test_unknown_code_in_per_file_ignores(tmp_path):
    message = error_of(tmp_path, '[tool.torchfix-mod.per-file-ignores]\n"tests/*" = ["TFM201", "XYZ"]\n')
    assert message.endswith("'per-file-ignores' entry 'tests/*' has 'XYZ', which matches no rule code")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('exclude = [""]', "'exclude' has an empty pattern"),
        ('extend-exclude = ["ok/", "!"]', "'extend-exclude' has an invalid pattern '!'"),
        ('extend-exclude = ["a\\\\"]', "'extend-exclude' has an invalid pattern"),
        ('per-file-ignores = { "!" = ["TFM1"] }', "'per-file-ignores' has an empty pattern"),
    ],
)
def test_bad_patterns_are_errors(tmp_path, body, expected):
    assert expected in error_of(tmp_path, body + "\n")


# --------------------------------------------------------------------------- --config, --isolated


def test_config_option_reads_another_file(tmp_path):
    project(tmp_path / "proj", 'select = ["TFM1"]\n')
    chosen = project(tmp_path / "conf", 'select = ["TFM3"]\nextend-exclude = ["gen/"]\n')
    config = resolve([tmp_path / "proj"], CODES, config_path=chosen)
    assert config.path == chosen and config.root == tmp_path / "conf"
    assert config.select == ("TFM3",)


def test_config_option_file_without_the_table_gives_defaults(tmp_path):
    project(tmp_path / "proj", 'select = ["TFM1"]\n')
    chosen = write(tmp_path / "other.toml", "[tool.black]\nline-length = 1\n")
    config = resolve([tmp_path / "proj"], CODES, config_path=chosen)
    assert config == Config(path=chosen, root=tmp_path)


def test_config_option_relative_path_is_made_absolute(tmp_path, monkeypatch):
    chosen = project(tmp_path / "conf", "unsafe-fixes = false\n")
    monkeypatch.chdir(tmp_path)
    config = resolve([tmp_path], CODES, config_path=Path("conf/pyproject.toml"))
    assert config.path == chosen and config.root == tmp_path / "conf" and config.unsafe_fixes is False


def test_config_option_missing_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project(tmp_path, 'select = ["TFM1"]\n')
    with pytest.raises(ConfigError) as info:
        resolve([tmp_path], CODES, config_path=Path("nope.toml"))
    assert str(info.value) == "nope.toml: cannot read: No such file or directory"


def test_config_option_invalid_toml_is_an_error(tmp_path):
    chosen = write(tmp_path / "bad.toml", "= 1\n")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        resolve([tmp_path], CODES, config_path=chosen)


def test_config_option_directory_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        resolve([tmp_path], CODES, config_path=tmp_path)


def test_isolated_reads_nothing(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.torchfix-mod\n")  # would be an error if read
    missing = tmp_path / "missing.toml"
    assert resolve([tmp_path], CODES, isolated=True) == Config()
    assert resolve([tmp_path], CODES, config_path=missing, isolated=True) == Config()
    with pytest.raises(ConfigError):
        resolve([tmp_path], CODES)


# --------------------------------------------------------------------------- rule selection


ALL = ("TFM101", "TFM102", "TFM201", "TFM301", "TFM302")


@pytest.mark.parametrize(
    ("config", "cli", "expected"),
    [
        # nothing anywhere: every rule
        (Config(), {}, ALL),
        # config select
        (Config(select=("TFM1",)), {}, ("TFM101", "TFM102")),
        # config select = [] selects nothing
        (Config(select=()), {}, ()),
        (Config(select=()), {"extend_select": ["TFM2"]}, ("TFM201",)),
        # CLI select replaces the config's
        (Config(select=("TFM1",)), {"select": ["TFM3"]}, ("TFM301", "TFM302")),
        (Config(select=()), {"select": ["TFM201"]}, ("TFM201",)),
        # extend-select adds, from the config and from the CLI
        (Config(select=("TFM1",), extend_select=("TFM201",)), {}, ("TFM101", "TFM102", "TFM201")),
        (Config(select=("TFM1",)), {"extend_select": ["TFM302"]}, ("TFM101", "TFM102", "TFM302")),
        (Config(extend_select=("TFM201",)), {"select": ["TFM3"]}, ("TFM201", "TFM301", "TFM302")),
        # ignore removes, from the config and from the CLI
        (Config(ignore=("TFM3",)), {}, ("TFM101", "TFM102", "TFM201")),
        (Config(), {"ignore": ["TFM1"]}, ("TFM201", "TFM301", "TFM302")),
        (Config(ignore=("TFM2",)), {"ignore": ["TFM1"]}, ("TFM301", "TFM302")),
        (Config(ignore=("TFM101",)), {"select": ["TFM1"]}, ("TFM102",)),
        # the more specific pattern wins
        (Config(select=("TFM1",), ignore=("TFM101",)), {}, ("TFM102",)),
        (Config(select=("TFM101",), ignore=("TFM1",)), {}, ("TFM101",)),
        (Config(ignore=("TFM1",)), {"extend_select": ["TFM102"]}, ("TFM102", "TFM201", "TFM301", "TFM302")),
        (Config(extend_select=("TFM1",)), {"ignore": ["TFM10"]}, ("TFM201", "TFM301", "TFM302")),
        (Config(select=("TFM",), ignore=("TFM3",)), {"extend_select": ["TFM30"]}, ALL),
        # a tie goes to ignore
        (Config(select=("TFM1",), ignore=("TFM1",)), {}, ()),
        (Config(), {"select": ["TFM301"], "ignore": ["TFM301"]}, ()),
        (Config(ignore=("TFM201",)), {"extend_select": ["TFM201"]}, ("TFM101", "TFM102", "TFM301", "TFM302")),
        # every rule by default is the least specific selection
        (Config(ignore=("T",)), {}, ()),
    ],
)
def test_effective_codes_precedence(config, cli, expected):
    codes = effective_codes(
        config,
        cli.get("select", []),
        cli.get("ignore", []),
        cli.get("extend_select", []),
        ALL,
    )
    assert codes == list(expected)


def test_effective_codes_keep_the_order_of_all_codes():
    order = ["TFM301", "TFM101", "TFM201"]
    assert effective_codes(Config(select=("TFM1", "TFM3")), [], [], [], order) == ["TFM301", "TFM101"]


def test_effective_codes_from_a_loaded_file(tmp_path):
    path = project(tmp_path, 'select = ["TFM1"]\nignore = ["TFM102"]\nextend-select = ["TFM302"]\n')
    config = load_config(path, CODES)
    assert effective_codes(config, [], [], [], ALL) == ["TFM101", "TFM302"]
    assert effective_codes(config, ["TFM2"], ["TFM302"], [], ALL) == ["TFM201"]


# --------------------------------------------------------------------------- per-file-ignores


@pytest.fixture
def per_file(tmp_path) -> Config:
    path = project(
        tmp_path,
        """
        [tool.torchfix-mod.per-file-ignores]
        "tests/*" = ["TFM201"]
        "**/x.py" = ["TFM1"]
        "**/legacy_*.py" = ["TFM3", "TFM201"]
        "!src/**" = ["TFM401"]
        """,
    )
    return load_config(path, CODES)


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("tests/test_a.py", {"TFM201", "TFM401"}),
        ("tests/sub/test_b.py", {"TFM201", "TFM401"}),  # gitignore: tests/sub matches tests/*
        ("pkg/tests/test_a.py", {"TFM401"}),  # "tests/*" has a slash, so it is anchored to the root
        ("x.py", {"TFM1", "TFM401"}),
        ("src/pkg/deep/x.py", {"TFM1"}),
        ("src/pkg/xx.py", set()),
        ("src/legacy_model.py", {"TFM3", "TFM201"}),
        ("tests/legacy_model.py", {"TFM3", "TFM201", "TFM401"}),
        ("src/model.py", set()),
    ],
)
def test_per_file_ignores_globs(per_file, tmp_path, relpath, expected):
    assert per_file.ignored_codes(tmp_path / relpath) == frozenset(expected)


def test_per_file_ignores_accept_paths_relative_to_the_current_directory(per_file, tmp_path, monkeypatch):
    write(tmp_path / "tests" / "test_a.py", "x = 1\n")
    monkeypatch.chdir(tmp_path / "tests")
    assert per_file.ignored_codes(Path("test_a.py")) == {"TFM201", "TFM401"}
    assert per_file.ignored_codes(Path("../src/x.py")) == {"TFM1"}


def test_per_file_ignores_do_not_apply_outside_the_root(per_file, tmp_path):
    assert per_file.root == tmp_path
    assert per_file.ignored_codes(tmp_path.parent / "tests" / "x.py") == frozenset()
    assert per_file.ignored_codes(tmp_path) == frozenset()


def test_per_file_ignores_follow_the_config_directory_not_the_cwd(tmp_path, monkeypatch):
    path = project(tmp_path / "proj", '[tool.torchfix-mod.per-file-ignores]\n"/tests/*" = ["TFM2"]\n')
    config = load_config(path, CODES)
    monkeypatch.chdir(tmp_path)
    assert config.ignored_codes(Path("proj/tests/a.py")) == {"TFM2"}
    assert config.ignored_codes(Path("tests/a.py")) == frozenset()


def test_no_per_file_ignores_and_default_config():
    assert Config().ignored_codes(Path("tests/a.py")) == frozenset()
    assert Config(per_file_ignores=(("*", ("TFM1",)),)).ignored_codes(Path("a.py")) == frozenset()  # no root


# --------------------------------------------------------------------------- exclude


@pytest.fixture
def tree(tmp_path) -> Path:
    for rel in [
        "src/pkg/a.py",
        "src/pkg/gen/b.py",
        "src/pkg/api_pb2.py",
        "scratch/c.py",
        "src/scratch/d.py",
        "legacy/old.py",
        "legacy/keep.py",
    ]:
        write(tmp_path / rel, "x = 1\n")
    return tmp_path


def test_exclude_patterns_are_relative_to_the_root(tree):
    path = project(tree, 'exclude = ["gen/", "/scratch", "*_pb2.py"]\n')
    config = load_config(path, CODES)
    assert config.exclude is not None  # replaces the default skipped directories
    assert config.excluded(tree / "src/pkg/gen")
    assert config.excluded(tree / "src/pkg/gen/b.py")  # inside an excluded directory
    assert config.excluded(tree / "src/pkg/api_pb2.py")
    assert config.excluded(tree / "scratch")
    assert config.excluded(tree / "scratch/c.py")
    assert not config.excluded(tree / "src/scratch")  # "/scratch" is anchored at the root
    assert not config.excluded(tree / "src/scratch/d.py")
    assert not config.excluded(tree / "src/pkg/a.py")
    assert not config.excluded(tree / "src/pkg")


def test_directory_only_pattern_does_not_match_a_file(tree):
    write(tree / "src" / "gen", "not a directory\n")
    config = load_config(project(tree, 'exclude = ["gen/"]\n'), CODES)
    assert not config.excluded(tree / "src" / "gen")
    assert config.excluded(tree / "src/pkg/gen")


def test_extend_exclude_is_checked_and_exclude_stays_unset(tree):
    config = load_config(project(tree, 'extend-exclude = ["legacy/"]\n'), CODES)
    assert config.exclude is None  # the default skipped directories still apply
    assert config.extend_exclude == ("legacy/",)
    assert config.excluded(tree / "legacy")
    assert config.excluded(tree / "legacy/old.py")
    assert not config.excluded(tree / "src/pkg/a.py")


def test_exclude_and_extend_exclude_combine(tree):
    config = load_config(project(tree, 'exclude = ["scratch/"]\nextend-exclude = ["legacy/old.py"]\n'), CODES)
    assert config.excluded(tree / "scratch/c.py")
    assert config.excluded(tree / "src/scratch/d.py")
    assert config.excluded(tree / "legacy/old.py")
    assert not config.excluded(tree / "legacy/keep.py")


def test_a_file_in_an_excluded_directory_cannot_be_reincluded(tree):
    config = load_config(project(tree, 'extend-exclude = ["legacy/", "!legacy/keep.py"]\n'), CODES)
    assert config.excluded(tree / "legacy/keep.py")  # as git: the directory itself is excluded
    assert config.excluded(tree / "legacy/old.py")


def test_a_later_negation_reincludes_a_file(tree):
    config = load_config(project(tree, 'extend-exclude = ["*.py", "!a.py"]\n'), CODES)
    assert not config.excluded(tree / "src/pkg/a.py")
    assert config.excluded(tree / "src/pkg/api_pb2.py")


def test_exclude_accepts_paths_relative_to_the_current_directory(tree, monkeypatch):
    config = load_config(project(tree, 'extend-exclude = ["/src/pkg/gen"]\n'), CODES)
    monkeypatch.chdir(tree / "src")
    assert config.excluded(Path("pkg/gen"))
    assert config.excluded(Path("pkg/gen/b.py"))
    assert not config.excluded(Path("pkg/a.py"))


def test_exclude_never_matches_outside_the_root_or_the_root_itself(tree):
    config = load_config(project(tree / "src", 'extend-exclude = ["*"]\n'), CODES)
    assert config.excluded(tree / "src/pkg/a.py")
    assert not config.excluded(tree / "src")
    assert not config.excluded(tree / "scratch/c.py")
    assert not config.excluded(tree.parent)


def test_default_config_excludes_nothing(tree):
    assert not Config().excluded(tree / "src/pkg/gen")
    assert not Config(extend_exclude=("*",)).excluded(tree / "src")  # no root


def test_symlinked_root_still_matches(tree, tmp_path_factory):
    link = tmp_path_factory.mktemp("links") / "proj"
    link.symlink_to(tree, target_is_directory=True)
    config = load_config(project(tree, 'extend-exclude = ["gen/"]\nper-file-ignores = { "src/*" = ["TFM1"] }\n'), CODES)
    assert config.excluded(link / "src/pkg/gen/b.py")
    assert config.ignored_codes(link / "src/pkg/a.py") == {"TFM1"}


# --------------------------------------------------------------------------- fingerprint


FULL = """
select = ["TFM1", "TFM301"]
ignore = ["TFM102"]
extend-select = ["TFM401"]
unsafe-fixes = true
buffer-persistent = false
exclude = ["gen/", "!gen/keep.py"]
extend-exclude = ["*_pb2.py"]
per-file-ignores = { "tests/*" = ["TFM201"], "**/x.py" = ["TFM1"] }
"""


def test_fingerprint_is_equal_for_equal_settings(tmp_path):
    one = load_config(project(tmp_path / "one", FULL), CODES)
    two = load_config(project(tmp_path / "two", FULL), CODES)
    assert one.path != two.path
    assert one.fingerprint() == two.fingerprint()
    assert one.fingerprint() == one.fingerprint()
    assert Config().fingerprint() == Config().fingerprint()
    # the order of codes, and of per-file-ignores entries, changes nothing
    reordered = (
        FULL.replace('"TFM1", "TFM301"', '"TFM301", "tfm1"')
        .replace('"tests/*" = ["TFM201"], "**/x.py" = ["TFM1"]', '"**/x.py" = ["TFM1"], "tests/*" = ["TFM201"]')
    )
    three = load_config(project(tmp_path / "three", reordered), CODES)
    assert three.fingerprint() == one.fingerprint()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('select = ["TFM1", "TFM301"]', 'select = ["TFM1"]'),
        ('select = ["TFM1", "TFM301"]', ""),
        ('ignore = ["TFM102"]', 'ignore = ["TFM101"]'),
        ('extend-select = ["TFM401"]', 'extend-select = ["TFM4"]'),
        ("unsafe-fixes = true", "unsafe-fixes = false"),
        ("unsafe-fixes = true", ""),
        ("buffer-persistent = false", "buffer-persistent = true"),
        ("buffer-persistent = false", ""),
        ('exclude = ["gen/", "!gen/keep.py"]', 'exclude = ["!gen/keep.py", "gen/"]'),
        ('exclude = ["gen/", "!gen/keep.py"]', ""),
        ('exclude = ["gen/", "!gen/keep.py"]', "exclude = []"),
        ('extend-exclude = ["*_pb2.py"]', 'extend-exclude = ["*_pb3.py"]'),
        ('"tests/*" = ["TFM201"]', '"tests/*" = ["TFM2"]'),
        ('"tests/*" = ["TFM201"]', '"test/*" = ["TFM201"]'),
    ],
)
def test_fingerprint_changes_when_a_setting_changes(tmp_path, old, new):
    assert old in FULL
    base = load_config(project(tmp_path / "a", FULL), CODES)
    changed = load_config(project(tmp_path / "b", FULL.replace(old, new)), CODES)
    assert changed != Config(path=base.path, root=base.root)
    assert base.fingerprint() != changed.fingerprint()


def test_fingerprint_tells_unset_from_empty():
    assert Config(select=None).fingerprint() != Config(select=()).fingerprint()
    assert Config(exclude=None).fingerprint() != Config(exclude=()).fingerprint()
    assert Config(unsafe_fixes=None).fingerprint() != Config(unsafe_fixes=False).fingerprint()
