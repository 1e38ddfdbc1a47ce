"""The Dockerfile builds and describes the image the README promises (slim Python, non-root user,
`x15g --root /srv/www`), with the first container tool found (podman, buildah, docker).

No container engine runs on every machine: the test skips, with the reason, when no tool is
installed or when the base image cannot be pulled (no network to the registry).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

from tests.support.server import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_dockerfile_says_what_the_readme_says() -> None:
    assert "\nFROM python:3.11-slim\n" in DOCKERFILE
    assert "USER x15g" in DOCKERFILE
    assert 'ENTRYPOINT ["x15g"]' in DOCKERFILE and 'CMD ["--root", "/srv/www"]' in DOCKERFILE
    assert "pip install ." in DOCKERFILE and "[test]" not in DOCKERFILE


def _tool() -> list[str]:
    if shutil.which("podman"):
        return ["podman"]
    if shutil.which("buildah"):
        return ["buildah", "--storage-driver", "vfs"]
    pytest.skip("no container tool (apt-get install -y podman or buildah) to build the Dockerfile")


def test_image_builds_and_runs_as_non_root() -> None:
    tool = _tool()
    base = next(line.split()[1] for line in DOCKERFILE.splitlines() if line.startswith("FROM "))
    pulled = subprocess.run([*tool, "pull", f"docker.io/library/{base}"], capture_output=True, text=True,
                            timeout=300)
    if pulled.returncode != 0:
        pytest.skip(f"cannot pull the base image {base}: {pulled.stderr.strip().splitlines()[-1:]}")
    tag = f"localhost/x15g-test-{uuid.uuid4().hex[:8]}"
    build = ["bud", "--isolation", "chroot"] if tool[0] == "buildah" else ["build"]
    try:
        done = subprocess.run([*tool, *build, "-t", tag, str(REPO)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        info = json.loads(subprocess.run([*tool, "inspect", tag], capture_output=True, text=True,
                                         check=True, timeout=60).stdout)
        config = (info[0] if isinstance(info, list) else info)
        config = config.get("Config") or config.get("OCIv1", {}).get("config", {})
        assert config["User"] == "x15g"
        assert config["Entrypoint"] == ["x15g"] and config["Cmd"] == ["--root", "/srv/www"]
    finally:
        subprocess.run([*tool, "rmi", "-f", tag], capture_output=True, timeout=120)
