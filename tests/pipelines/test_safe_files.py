import hashlib
import os
import socket

import pytest

import schemas.files

from pipelines.hashing import sha256_file
from pipelines.safe_files import open_regular, read_regular
from schemas.files import check_regular
from schemas.errors import BodyModelError, InputError


def _specials(tmp_path):
    fifo = tmp_path / "fifo_poses.npz"
    os.mkfifo(fifo)
    zero = tmp_path / "zero_poses.npz"
    os.symlink("/dev/zero", zero)
    sock = tmp_path / "s.npz"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()
    dangling = tmp_path / "gone.npz"
    os.symlink(tmp_path / "nothing", dangling)
    return {"FIFO": fifo, "character device": zero, "socket": sock, "directory": tmp_path, "dangling": dangling}


@pytest.mark.timeout(60)  # a FIFO opened for reading would block forever
def test_special_files_are_refused_by_kind_without_reading(tmp_path):
    for kind, path in _specials(tmp_path).items():
        for fn in (check_regular, lambda p: read_regular(p, 1 << 20), sha256_file):
            with pytest.raises(InputError) as info:
                fn(path)
            assert str(path) in str(info.value) and kind in str(info.value)


def test_error_type_and_hash_of_a_regular_file(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"x" * 3_000_000)
    assert sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    with pytest.raises(BodyModelError):
        check_regular(tmp_path / "missing.npz", BodyModelError)
    with pytest.raises(InputError, match="over the 1000-byte limit"):
        read_regular(p, 1000)


def test_a_path_swapped_after_the_check_is_refused(tmp_path, monkeypatch):
    real, other = tmp_path / "real.npz", tmp_path / "other.npz"
    real.write_bytes(b"a")
    other.write_bytes(b"b")
    # the check saw another file than the one opened (a rename race): refused, not read
    monkeypatch.setattr(schemas.files, "check_regular", lambda p, e=InputError: os.stat(other))
    with pytest.raises(InputError, match="changed while being opened"):
        with open_regular(real):
            pass
