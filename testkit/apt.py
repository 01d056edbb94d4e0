"""Debian packages the tests need, installed by the test set-up (never by ds2stream itself)."""
from __future__ import annotations


def apt_install(*packages: str) -> None:
    """Debian packages a test needs (as root), from the package lists as they are or, failing
    that, after an update. Another process of the suite may be installing too: wait for dpkg's
    lock rather than fail on it."""
    import os
    import subprocess

    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=900", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=900", "update"], env=env, capture_output=True,
                       check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
