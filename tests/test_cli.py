import subprocess

from click.testing import CliRunner

from ds2stream import __version__
from ds2stream.cli import cli


def test_console_script_lists_commands_and_version():
    out = subprocess.run(["ds2stream", "--help"], capture_output=True, text=True, check=True).stdout
    assert "demo" in out
    version = subprocess.run(["ds2stream", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in version.stdout


def test_unknown_command_exits_non_zero():
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code != 0 and "No such command" in result.output
