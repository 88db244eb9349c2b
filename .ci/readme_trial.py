"""Do exactly what README.md's "Try it locally in five minutes" says, and time it.

Reads the section's code blocks in order and carries them out in a new empty
directory: ``sh`` lines run in bash from that directory (a line commented
``# terminal N`` is started in the background, as a reader would open a
terminal for it), ``python`` blocks whose first line is ``# file: PATH`` (or
``# file: PATH (append)``) are written to that file. The one substitution: the
app and its emulator are installed from the wheels built from this checkout
instead of the package index (``"django-flexcharge[db,emulator]"`` ->
``"<app wheel>[db,emulator]" --find-links <dir of both wheels>``). The last
command is repeated until it prints what the README says it prints.

Prints the wall time from the first command to the rescued order. Needs ports
8000 and 8765 free, like the README. Usage: python .ci/readme_trial.py [--dist DIR]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Try it locally in five minutes"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PORTS = {"flexcharge_emulator": 8765, "runserver": 8000}
REQUIREMENT = '"django-flexcharge[db,emulator]"'


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def steps(text: str) -> list[tuple[str, str]]:
    """(kind, content): ("file", block) / ("run", line) / ("background", line) / ("expect", text)."""
    out: list[tuple[str, str]] = []
    for lang, body in BLOCK.findall(text):
        if lang == "python":
            out.append(("file", body))
            continue
        for line in body.splitlines():
            if line.startswith("# "):
                out.append(("expect", line[2:].strip()))
            elif line.strip():
                command = line.split("  #")[0].strip()
                kind = "background" if re.search(r"#\s*terminal \d", line) else "run"
                out.append((kind, command))
    return out


def build_wheels() -> str:
    """The app's and the emulator's wheels, in a new directory; its path."""
    dist = tempfile.mkdtemp(prefix="readme-trial-dist-")
    for project in (ROOT, ROOT / "emulator"):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, str(project)],
            check=True,
        )
    return dist


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def shell(command: str, cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    # Each line runs as the reader's shell would, with the virtualenv activated once it exists.
    script = f"[ -f .venv/bin/activate ] && . .venv/bin/activate\n{command}"
    return subprocess.run(["bash", "-c", script], cwd=cwd, text=True, **kwargs)  # type: ignore[call-overload]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dist", help="a directory holding both wheels to install (default: build them)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the trial directory")
    options = parser.parse_args()
    busy = [port for port in PORTS.values() if port_open(port)]
    if busy:
        print(f"readme-trial: ports {busy} are in use; the README's steps need them free")
        return 2
    dist = options.dist or build_wheels()
    (wheel,) = glob.glob(os.path.join(dist, "django_flexcharge-*.whl"))
    work = Path(tempfile.mkdtemp(prefix="readme-trial-"))
    background: list[subprocess.Popen[str]] = []
    plan = steps(section())
    assert any(REQUIREMENT in content for _, content in plan), f"README installs no {REQUIREMENT}"
    started = time.monotonic()
    last_run = ""
    try:
        for kind, content in plan:
            if kind == "file":
                first = content.partition("\n")[0]
                match = re.fullmatch(r"# file: (\S+)( \(append\))?", first.strip())
                assert match, f"a python block must start with '# file: PATH': {first!r}"
                path = work / match.group(1)
                with path.open("a" if match.group(2) else "w") as handle:
                    handle.write(("\n" if match.group(2) else "") + content)
            elif kind == "run":
                command = content.replace(
                    REQUIREMENT, f'"{wheel}[db,emulator]" --find-links {dist}'
                )
                print(f"$ {command}", flush=True)
                shell(command, work, check=True)
                last_run = command
            elif kind == "background":
                print(f"$ {content} &", flush=True)
                log = (work / f"{content.split()[2]}.log").open("w")
                script = f". .venv/bin/activate\nexec {content}"
                background.append(
                    subprocess.Popen(
                        ["bash", "-c", script],
                        cwd=work,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        text=True,
                        start_new_session=True,
                    )
                )
                port = next((p for name, p in PORTS.items() if name in content), None)
                deadline = time.monotonic() + 60
                while port and not port_open(port):
                    if background[-1].poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"{content} did not start; see {log.name}")
                    time.sleep(0.1)
            elif kind == "expect":
                deadline = time.monotonic() + 60
                while True:
                    out = shell(last_run, work, capture_output=True).stdout
                    if content in out:
                        print(f"  -> {content}", flush=True)
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{last_run!r} never printed {content!r} (last: {out!r})")
                    time.sleep(0.25)
        elapsed = time.monotonic() - started
        print(
            f"readme-trial: the README's five-minute section took {elapsed:.0f} s "
            "from the first command to the rescued order"
        )
        return 0
    finally:
        for process in background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
