"""``ds2stream download``: LibriSpeech's archives (or any archive's URL) to disk, resumable, checksummed."""
from pathlib import Path

import click

from ..errors import Ds2streamError
from .base import cli, download_options, note_above_progress


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder the archives go into (created).")
@click.option("--mirror", default=None, help="Base URL of LibriSpeech's archives (default: openslr.org's "
                                             "resources/12/); a mirror serves the same files.")
@download_options
def download(names, out_dir, mirror, md5, sha256, timeout, retries):
    """Download LibriSpeech subsets by NAME (dev-clean, train-clean-100, ...) or archives by URL
    into --out. A download goes into NAME.part first and is resumed from there by a re-run (or
    after a dropped connection, with a Range request); it takes its name once its checksum
    matches. `ds2stream shard URL` shards an archive as it downloads, with no copy on disk."""
    from tqdm import tqdm

    from ..data.remote import LIBRISPEECH_MIRROR, checksums_for, download, is_url, librispeech_url

    if (md5 or sha256) and len(names) != 1:
        raise click.UsageError(f"--md5/--sha256 check one download; {len(names)} given")
    try:
        urls = [name if is_url(name) else librispeech_url(name, mirror or LIBRISPEECH_MIRROR) for name in names]
    except Ds2streamError as err:
        raise click.BadParameter(str(err), param_hint="NAMES") from None
    for url in urls:
        checksums = checksums_for(url, md5, sha256)
        with tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=url.rsplit("/", 1)[-1],
                  dynamic_ncols=True) as bar:
            def on_bytes(position, total, bar=bar):
                bar.total = total
                bar.update(position - bar.n)
            path = download(url, out_dir, checksums, timeout=timeout, retries=retries, log=note_above_progress,
                            on_bytes=on_bytes)
        checked = (" and ".join(sorted(checksums.expected)) + " checked" if checksums.expected
                   else "no checksum known: give --md5 or --sha256 to check one")
        click.echo(f"{path}: {path.stat().st_size} bytes ({checked})")
