"""Atomic file writes (tts_fast._io): every results file, image and weight file of tts_fast goes
through them, so an interrupt leaves the old file or the new one, never half of one.

Each test names the broken variant it is written against.
"""

from __future__ import annotations

import glob
import json
import os
import stat

import numpy as np
import pytest

from tts_fast import _io


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- atomic_path -----------------------------------------------------------------------------------


def test_atomic_path_replaces_the_file_only_on_success(tmp_path):
    """Broken variants: the temporary file never moved into place, moved on failure too, or left
    behind (either way)."""
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with _io.atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]
    with _io.atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
        assert path.read_text() == "old"  # not yet: the old file stays readable while the new one is written
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]


def test_atomic_path_is_a_hidden_file_beside_the_target_with_its_extension(tmp_path):
    """Broken variants: the temporary file made in the system's temp folder (os.replace across file
    systems fails, and a crash leaves it there), not hidden (a reader globbing '*.json' in the folder
    would pick up a half-written file), or without the target's extension (np.savez appends '.npz'
    to a name without it, matplotlib picks the format from it)."""
    target = tmp_path / "runs" / "record.json"
    with _io.atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path / "runs")
        assert os.path.basename(tmp).startswith(".") and tmp.endswith(".json")
        assert glob.glob(str(tmp_path / "runs" / "*.json")) == []  # invisible to a glob while written
        open(tmp, "w").close()
    with _io.atomic_path(tmp_path / "weights", ".pt") as tmp:
        assert tmp.endswith(".pt")
        open(tmp, "w").close()
    with _io.atomic_path(tmp_path / "fig.png", ".svg") as tmp:  # a given suffix wins
        assert tmp.endswith(".svg")
        open(tmp, "w").close()
    assert sorted(os.listdir(tmp_path)) == ["fig.png", "runs", "weights"]


def test_atomic_path_with_numpy_savez_writes_the_named_file(tmp_path):
    """Broken variant: the temporary name without '.npz' (np.savez then writes NAME.npz beside it
    and an empty file replaces the target): how the RL replay buffer is saved."""
    path = tmp_path / "replay.npz"
    with _io.atomic_path(path) as tmp:
        np.savez(tmp, a=np.arange(3))
    assert np.load(path)["a"].tolist() == [0, 1, 2] and os.listdir(tmp_path) == ["replay.npz"]


def test_atomic_path_creates_missing_folders_and_accepts_existing_ones(tmp_path):
    """Broken variants: missing parent folders not created, or an existing folder refused."""
    deep = tmp_path / "a" / "b" / "c.txt"
    for text in ("one", "two"):
        with _io.atomic_path(deep) as tmp:
            with open(tmp, "w") as f:
                f.write(text)
        assert deep.read_text() == text
    rel = "rel_out.txt"  # a bare file name: the current folder
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        with _io.atomic_path(rel) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path)
            open(tmp, "w").close()
    finally:
        os.chdir(cwd)
    assert (tmp_path / rel).exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_usual_permissions(tmp_path, umask):
    """Broken variants: the file left at mkstemp's 0600 (other users of a shared results folder
    cannot read it), or a mode other than 0666 less the umask."""
    old = os.umask(umask)
    try:
        path = _io.atomic_write_text(tmp_path / "r.txt", "x")
        assert _mode(path) == 0o666 & ~umask
        assert os.umask(umask) == umask  # the process's umask is left as it was
    finally:
        os.umask(old)


def test_atomic_path_leaks_no_file_descriptor(tmp_path):
    """Broken variant: mkstemp's descriptor left open (a long prompt-set run writes thousands of
    records and would run out of descriptors)."""
    _io.atomic_write_text(tmp_path / "warm.txt", "x")
    before = _open_fds()
    for i in range(20):
        with _io.atomic_path(tmp_path / f"f{i}.txt") as tmp:
            open(tmp, "w").close()
    assert _open_fds() == before


# -- atomic_write_* --------------------------------------------------------------------------------


def test_atomic_write_bytes_syncs_the_full_data_before_the_rename(tmp_path, monkeypatch):
    """Broken variants: no fsync, or fsync before the buffered data reached the file (a power cut
    after the rename could then leave an empty or partial file under the final name)."""
    path = tmp_path / "w.bin"
    path.write_bytes(b"old")
    data = os.urandom(5000)
    seen = []
    real = os.fsync

    def fsync(fd):
        seen.append((os.fstat(fd).st_size, path.read_bytes()))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = _io.atomic_write_bytes(path, data)
    assert seen == [(len(data), b"old")]  # the whole file synced, while the old one is still in place
    assert out == path and isinstance(out, type(path)) and path.read_bytes() == data


def test_atomic_write_text_is_utf8_and_returns_the_path(tmp_path):
    """Broken variants: another encoding, or no path returned."""
    path = tmp_path / "t.txt"
    assert _io.atomic_write_text(str(path), "naïve – ✓\n") == path
    assert path.read_bytes() == "naïve – ✓\n".encode("utf-8")


def test_atomic_write_json_layout(tmp_path):
    """Broken variants: keys sorted (records keep their field order), another indent, no final
    newline, no path returned."""
    path = tmp_path / "r.json"
    assert _io.atomic_write_json(path, {"b": 1, "a": [1, 2]}) == path
    assert path.read_text() == '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'
    _io.atomic_write_json(path, {"z": 0, "y": 1}, indent=None)
    assert path.read_text() == '{"z": 0, "y": 1}\n'
    assert json.loads(path.read_text()) == {"z": 0, "y": 1}


def test_a_failed_json_write_leaves_the_old_file(tmp_path):
    """Broken variant: the target truncated before serialising (an unserialisable value leaves an
    empty file)."""
    path = tmp_path / "r.json"
    _io.atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        _io.atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["r.json"]


# -- check_writable_dir ----------------------------------------------------------------------------


def test_check_writable_dir_creates_and_returns_the_absolute_folder(tmp_path):
    """Broken variants: the folder not created, an existing one refused, a relative path returned,
    the probe file left behind."""
    new = tmp_path / "x" / "y"
    assert _io.check_writable_dir(new) == str(new) and new.is_dir()
    assert _io.check_writable_dir(str(new)) == str(new)  # exists already: fine
    assert os.listdir(new) == []
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert _io.check_writable_dir("rel") == str(tmp_path / "rel")
    finally:
        os.chdir(cwd)


def test_check_writable_dir_refuses_a_file_and_an_unwritable_place(tmp_path):
    """Broken variants: a file accepted as the output folder; the folder or the reason left out of
    the message; the raw OSError (with its traceback chain) in place of one line."""
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(OSError, match=r"^output folder .*file\.txt exists and is not a folder$"):
        _io.check_writable_dir(f)
    with pytest.raises(OSError) as e:
        _io.check_writable_dir(f / "sub")  # a folder below a file cannot be made
    msg = str(e.value)
    assert msg.startswith(f"cannot write to output folder {f / 'sub'}: ") and "Not a directory" in msg
    assert "Errno" not in msg and e.value.__cause__ is None and e.value.__suppress_context__
