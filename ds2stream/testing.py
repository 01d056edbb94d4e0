"""Small LibriSpeech-shaped inputs built from real audio, for tests, tools and benchmarks."""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

# Files the real LibriSpeech archives carry beside the audio; readers must pass over them.
LIBRISPEECH_EXTRA_FILES = ("README.TXT", "CHAPTERS.TXT", "SPEAKERS.TXT", "LICENSE.TXT", "BOOKS.TXT")


def librispeech_tree(split_dir: Path, root: Path, subset: str = "dev-clean", per_chapter: int | None = None) -> Path:
    """Copy a LibriSpeech-layout split (``<spk>/<chap>/...``) to ``root/LibriSpeech/<subset>/``,
    keeping at most ``per_chapter`` utterances of each chapter. Returns ``root/LibriSpeech``."""
    corpus = Path(root) / "LibriSpeech"
    for name in LIBRISPEECH_EXTRA_FILES:
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(f"{name}: not a transcript\n")
    for transcript in sorted(Path(split_dir).glob("*/*/*.trans.txt")):
        chapter_dir = corpus / subset / transcript.parent.relative_to(split_dir)
        chapter_dir.mkdir(parents=True, exist_ok=True)
        lines = transcript.read_text().splitlines(keepends=True)[:per_chapter]
        (chapter_dir / transcript.name).write_text("".join(lines))
        for line in lines:
            utt_id = line.split()[0]
            shutil.copy(transcript.parent / f"{utt_id}.flac", chapter_dir / f"{utt_id}.flac")
    return corpus


def librispeech_archive(corpus: Path, archive: Path) -> Path:
    """Pack a ``LibriSpeech`` folder as the official archives are: members ``LibriSpeech/...``."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(corpus, arcname="LibriSpeech")
    return archive
