"""`ds2stream shard URL` and `ds2stream download` against a real HTTP server on loopback serving an
archive built from real recordings: cut connections, a stall, a server without Range support,
`kill -9` mid-stream, a flipped byte, error statuses, a web page, DNS and TLS failures. Every case
ends with the shards that sharding the archive from disk gives, byte for byte, or with one error
line naming the URL and no shard set marked complete."""
import hashlib
import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from ds2stream.cli import cli
from ds2stream.data.remote import LIBRISPEECH_MD5, Fetch
from ds2stream.data.shards import INDEX_JSON, PROGRESS_JSON, ShardOptions, write_shard_set
from ds2stream.failpoints import ENV as KILL_AT
from testkit.archive_server import ArchiveServer, Behaviour
from testkit.corpora import librispeech_archive, librispeech_tree

OPTIONS = ShardOptions(shard_size_mb=0.2)  # several shards: a kill between two of them
NAME = "dev-sample.tar.gz"


def shard_cli(*args, kill_at=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != KILL_AT}
    if kill_at:
        env[KILL_AT] = kill_at
    return subprocess.run([sys.executable, "-m", "ds2stream.cli", "shard", *map(str, args), "--shard-size", "0.2",
                           "--jobs", "2"], env=env, capture_output=True, text=True, timeout=300)


def arrow_files(shard_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(shard_dir.glob("*.arrow"))}


@pytest.fixture(scope="module")
def archive(tmp_path_factory, sample_dir):
    """A LibriSpeech-layout .tar.gz of real recordings, its SHA-256, and its shards made from disk."""
    root = tmp_path_factory.mktemp("remote")
    path = librispeech_archive(librispeech_tree(sample_dir / "dev", root / "ls"), root / NAME)
    write_shard_set([path], root / "from-disk", OPTIONS, jobs=2)
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), arrow_files(root / "from-disk")


def test_503s_cut_connections_a_stall_and_a_server_without_range_end_with_the_shards_from_disk(archive, tmp_path):
    path, sha256, from_disk = archive
    size = path.stat().st_size
    cuts = sorted(random.Random(0).sample(range(1, size), 6))
    behaviour = Behaviour(cuts=list(cuts), stall_at=size // 2, stall_seconds=3, busy=2)  # 503 twice at first
    with ArchiveServer({NAME: path}, behaviour) as server:
        lines = []
        write_shard_set([server.url(NAME)], tmp_path / "ranges", OPTIONS, jobs=2,
                        fetch=Fetch(sha256=sha256, timeout=1, log=lines.append))
        assert server.cuts_done == len(cuts)
        resumed = [asked for _, asked in server.requests if asked]
        assert len(resumed) >= len(cuts) and all(asked.startswith("bytes=") for asked in resumed)
        assert any("timed out" in line for line in lines), lines  # the stall was noticed, not waited out
        assert sum("HTTP 503" in line for line in lines) == 2
        server.behaviour = Behaviour(ranges=False, cuts=cuts[-2:])
        write_shard_set([server.url(NAME)], tmp_path / "no-ranges", OPTIONS, jobs=1,
                        fetch=Fetch(sha256=sha256, timeout=1, log=lines.append))
        assert any("ignores Range" in line for line in lines)
    assert arrow_files(tmp_path / "ranges") == from_disk
    assert arrow_files(tmp_path / "no-ranges") == from_disk


def test_kill_9_mid_stream_then_the_same_command_finishes_the_same_shards(archive, tmp_path):
    path, sha256, from_disk = archive
    out = tmp_path / "shards"
    with ArchiveServer({NAME: path}) as server:
        killed = shard_cli(server.url(NAME), "--out", out, "--sha256", sha256, kill_at="shard_written:2")
        assert killed.returncode == -9
        assert (out / PROGRESS_JSON).exists() and not (out / INDEX_JSON).exists()
        done = shard_cli(server.url(NAME), "--out", out, "--sha256", sha256)
        assert done.returncode == 0, done.stderr
    assert arrow_files(out) == from_disk
    assert "180 utterances" in done.stdout


def test_a_flipped_byte_is_a_checksum_error_and_nothing_is_marked_complete(archive, tmp_path):
    path, _, _ = archive
    # An uncompressed tar, a transcript letter flipped: only the checksum can tell.
    plain = tmp_path / "dev-sample.tar"
    with tarfile.open(path) as packed, tarfile.open(plain, "w") as tar:
        for member in packed:
            tar.addfile(member, packed.extractfile(member) if member.isfile() else None)
    data = plain.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    flip = data.index(b"ZERO") if b"ZERO" in data else data.index(b".trans.txt") + 600
    with ArchiveServer({plain.name: plain}, Behaviour(corrupt_at=flip)) as server:
        result = CliRunner().invoke(cli, ["shard", server.url(plain.name), "--out", str(tmp_path / "s"),
                                          "--sha256", sha256, "--jobs", "1"])
    assert result.exit_code != 0
    assert f"Error: {server.url(plain.name)}: sha256 is" in result.output and sha256 in result.output
    assert not (tmp_path / "s" / INDEX_JSON).exists()


def test_librispeechs_archives_are_checked_against_their_published_md5_by_name(archive, tmp_path):
    path, _, _ = archive
    with ArchiveServer({"dev-clean.tar.gz": path}) as server:  # not the real dev-clean
        result = CliRunner().invoke(cli, ["shard", server.url("dev-clean.tar.gz"), "--out", str(tmp_path / "s"),
                                          "--jobs", "1"])
        assert result.exit_code != 0 and LIBRISPEECH_MD5["dev-clean"] in result.output
        assert not (tmp_path / "s" / INDEX_JSON).exists()
        fetched = CliRunner().invoke(cli, ["download", "dev-clean", "--out", str(tmp_path / "a"),
                                           "--mirror", server.url("")])
        assert fetched.exit_code != 0 and LIBRISPEECH_MD5["dev-clean"] in fetched.output
        assert not (tmp_path / "a" / "dev-clean.tar.gz").exists()


@pytest.mark.parametrize("case", ["404", "403", "web page", "dns", "tls", "not an archive name"])
def test_what_no_retry_mends_is_one_error_line_naming_the_url(archive, tmp_path, case):
    path, _, _ = archive
    behaviour = Behaviour(status={"gone.tar.gz": 404, "private.tar.gz": 403}, pages={"page.tar.gz"})
    with ArchiveServer({NAME: path}, behaviour) as server:
        url, expected = {
            "404": (server.url("gone.tar.gz"), "HTTP 404"),
            "403": (server.url("private.tar.gz"), "HTTP 403"),
            "web page": (server.url("page.tar.gz"), "text/html page, not an archive"),
            "dns": ("http://archive.invalid/dev-clean.tar.gz", "not found"),
            "tls": (server.url(NAME).replace("http:", "https:"), "TLS failed"),
            "not an archive name": (server.url("notes.txt"), "must name a .tar.gz"),
        }[case]
        result = CliRunner().invoke(cli, ["shard", url, "--out", str(tmp_path / "s"), "--timeout", "5"])
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and url in errors[0] and expected in errors[0], result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert not (tmp_path / "s" / INDEX_JSON).exists()


def test_download_resumes_its_part_file_across_cuts_and_checks_the_archive(archive, tmp_path):
    path, sha256, _ = archive
    data = path.read_bytes()
    out = tmp_path / "archives"
    out.mkdir()
    (out / (NAME + ".part")).write_bytes(data[:1000])  # a download that was interrupted
    with ArchiveServer({NAME: path}, Behaviour(cuts=[5000, len(data) // 2])) as server:
        result = CliRunner().invoke(cli, ["download", server.url(NAME), "--out", str(out), "--sha256", sha256,
                                          "--timeout", "2"])
        assert result.exit_code == 0, result.output
        assert server.requests[0] == (NAME, "bytes=1000-") and server.cuts_done == 2
    assert (out / NAME).read_bytes() == data and not (out / (NAME + ".part")).exists()
    assert "sha256 checked" in result.output


def test_an_archive_read_from_a_url_is_never_written_to_disk(archive, tmp_path):
    path, sha256, _ = archive
    out = tmp_path / "s"
    with ArchiveServer({NAME: path}) as server:
        write_shard_set([server.url(NAME)], out, OPTIONS, jobs=1, fetch=Fetch(sha256=sha256))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(p.parent == out for p in written)
    assert not any(p.suffix in (".gz", ".tar", ".part") for p in written)
