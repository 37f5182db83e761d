"""The agent's durable files on a disk that fills mid-write: the old state stays whole, nothing torn is left.

A real full disk needs a mount (root, a test host: tests/integration/test_host_live.py fills the agent's
state directory there). Here the same short write comes from the kernel's file-size limit (RLIMIT_FSIZE, in
a child process with SIGXFSZ ignored): write() stores what fits and returns less than it was given, the
next call fails with EFBIG, exactly the shape of ENOSPC on a disk with a few blocks left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

LIMIT = 4096  # bytes a file may reach in the child


def _with_file_size_limit(script: str, directory: Path) -> subprocess.CompletedProcess:
    prelude = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        def limited():
            resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, hard))
        def unlimited():
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        directory = Path(sys.argv[1])
        """
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script), str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_state_file_that_does_not_fit_leaves_the_old_one_and_no_temporary(tmp_path: Path) -> None:
    run = _with_file_size_limit(
        """
        from mevagent.risk.durable import read_json, write_json
        path = directory / "control.json"
        write_json(path, {"emergency_stop": {"engaged": True, "reason": "before"}, "paused": []})
        limited()
        try:
            write_json(path, {"emergency_stop": {"engaged": False, "reason": ""}, "paused": ["x" * 8000]})
        except OSError as exc:
            print("refused", exc.errno)
        """,
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("refused"), run.stdout
    assert json.loads((tmp_path / "control.json").read_text())["emergency_stop"]["reason"] == "before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["control.json"]


def test_a_spool_batch_that_does_not_fit_is_cut_off_and_the_retry_appends_whole_lines(tmp_path: Path) -> None:
    run = _with_file_size_limit(
        """
        import json
        from mevagent.bus.spool import Spool
        spool = Spool(directory)
        spool.append([b'{"n":0}'])
        limited()
        batch = [json.dumps({"n": i, "pad": "x" * 1000}).encode() for i in range(1, 9)]
        try:
            spool.append(batch)
        except OSError as exc:
            print("refused", exc.errno)
        unlimited()
        spool.append(batch)  # the publisher keeps the batch in memory and retries it
        for item in spool.pending():
            print(json.loads(item.raw)["n"], item.end)
        """,
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    refused, *lines = run.stdout.splitlines()
    assert refused.startswith("refused"), run.stdout
    assert [int(line.split()[0]) for line in lines] == list(range(9))
    # Each line's offset is where it really ends in the file: the delivered offset never lands mid-line.
    data = (tmp_path / "bus-spool.jsonl").read_bytes()
    assert [int(line.split()[1]) for line in lines][-1] == len(data)
    assert all(data[int(line.split()[1]) - 1 : int(line.split()[1])] == b"\n" for line in lines)
