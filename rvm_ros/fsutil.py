"""File helpers shared by every command that writes: content hashes, atomic writes, and
the one output discipline (:func:`plan_output` / :func:`staged_output`).

The output discipline, used by every ``rvm-ros`` command that writes a file or folder:

1. Before anything is read or written, :func:`check_output` refuses an output that is,
   contains, or lies inside any input (paths compared after resolving symlinks), the
   current directory or a folder holding it, and an existing output without ``force``.
2. The new output is built in a temporary sibling (same folder, so the final rename is
   atomic), never in place.
3. Only once the new output is complete does :meth:`OutputPlan.commit` swap it in; a
   previous output (``force``) is removed after that, never before. A failure or an
   interrupt removes the temporary sibling and leaves any previous output untouched.

Typical use::

    with staged_output(out, inputs=[src], force=args.force) as tmp:
        write_everything_to(tmp)  # a file or a folder at `tmp`
    # here `out` holds the new output; on an exception nothing changed

Commands that keep an incomplete result on purpose (``replay``'s ``DIR.partial``) call
:func:`plan_output` with ``work=`` and decide themselves whether to :meth:`OutputPlan.commit`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rvm_ros.errors import RvmRosError

__all__ = [
    "OutputError",
    "OutputPlan",
    "atomic_write",
    "available_memory",
    "check_output",
    "file_sha256",
    "plan_output",
    "staged_output",
]


class OutputError(RvmRosError):
    """An output path is refused (exists, is or overlaps an input) or cannot be written.

    ``cause`` is ``output_exists``, ``output_is_input`` (usage errors, exit code 2) or
    ``output_unwritable`` (exit code 1).
    """

    cause = "output_refused"
    exit_code = 2

    def __init__(self, message: str, cause: str, exit_code: int | None = None) -> None:
        super().__init__(message, cause=cause)
        if exit_code is not None:
            self.exit_code = exit_code


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve(strict=False)


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or child.is_relative_to(parent)


def check_output(
    out: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str]] = (),
    force: bool = False,
    what: str = "output",
) -> Path:
    """Refuse an output path that would destroy or overlap an input; returns it as a Path.

    Args:
        out: The output file or folder.
        inputs: Every path the command reads (files or folders; checkpoints like
            ``random:tiny`` that are no path may be passed, they are ignored if absent).
        force: Whether an existing ``out`` may be replaced (after the new one is complete).
        what: How messages name ``out`` (e.g. ``"--out"``).

    Raises:
        OutputError: ``out`` exists without ``force`` (``output_exists``); ``out`` is,
            contains or lies inside an input, or is / contains the current directory
            (``output_is_input``); its parent is not a folder (``output_unwritable``).
    """
    path = Path(out)
    target = _resolved(path)
    if str(path).strip() == "" or target == Path(target.anchor):
        raise OutputError(f"{what} {str(path)!r} is not a usable path", cause="output_is_input")
    cwd = _resolved(os.getcwd())
    if _inside(cwd, target):
        raise OutputError(
            f"{what} {path} is or contains the current directory; choose a new path",
            cause="output_is_input",
        )
    for given in inputs:
        src = Path(given)
        if not os.path.lexists(src):
            continue
        src_r = _resolved(src)
        same = src_r == target
        if not same and path.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(src, path)
        if same:
            raise OutputError(f"{what} {path} is the input {src}", cause="output_is_input")
        if _inside(src_r, target):
            raise OutputError(
                f"{what} {path} contains the input {src}; choose a path outside it",
                cause="output_is_input",
            )
        if _inside(target, src_r):
            raise OutputError(
                f"{what} {path} lies inside the input {src}; choose a path outside it",
                cause="output_is_input",
            )
    if os.path.lexists(path) and not force:
        raise OutputError(
            f"{what} {path} exists; pass --force to replace it", cause="output_exists"
        )
    parent = target.parent
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(
            f"cannot write {what} {path}: {probe} is not a folder",
            cause="output_unwritable",
            exit_code=1,
        )
    return path


@dataclass
class OutputPlan:
    """Where a command builds its output and how it is swapped in (see the module doc).

    Attributes:
        final: The output path the user asked for.
        work: The temporary sibling the command writes (a file or a folder, not created).
        force: Whether a previous ``final`` is replaced on :meth:`commit`.
        holder: A hidden folder holding ``work`` (``keep_name``), removed after commit.
    """

    final: Path
    work: Path
    force: bool
    holder: Path | None = None

    def commit(self) -> Path:
        """Swap the complete ``work`` in as ``final``; only then remove a previous output.

        Returns:
            ``final``.

        Raises:
            OutputError: ``final`` appeared meanwhile and ``force`` is off (``work`` is
                left in place and named in the message), or the rename failed.
        """
        work = self.work
        try:
            return self._swap()
        finally:
            if self.holder is not None and not os.path.lexists(work):
                _remove(self.holder)

    def _swap(self) -> Path:
        final, work = self.final, self.work
        if not os.path.lexists(final):
            try:
                os.rename(work, final)
            except OSError as exc:
                raise _unwritable(final, exc) from exc
            return final
        if not self.force:
            raise OutputError(
                f"{final} appeared while writing; the new output is in {work}",
                cause="output_exists",
            )
        if not final.is_dir() and not work.is_dir():
            try:
                os.replace(work, final)  # atomic for two files
            except OSError as exc:
                raise _unwritable(final, exc) from exc
            return final
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(final, old)
            os.rename(work, final)
        except OSError as exc:
            if os.path.lexists(old) and not os.path.lexists(final):
                os.rename(old, final)  # put the previous output back
            raise _unwritable(final, exc) from exc
        _remove(old)
        return final

    def discard(self) -> None:
        """Remove ``work`` (whatever was written of it); ``final`` is untouched."""
        _remove(self.work)
        if self.holder is not None:
            _remove(self.holder)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _unwritable(path: Path, exc: OSError) -> OutputError:
    return OutputError(
        f"cannot write {path}: {exc.strerror or exc}", cause="output_unwritable", exit_code=1
    )


def plan_output(
    out: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str]] = (),
    force: bool = False,
    work: str | os.PathLike[str] | None = None,
    what: str = "output",
    keep_name: bool = False,
) -> OutputPlan:
    """Check ``out`` (:func:`check_output`), create its parent, and pick the work path.

    Args:
        out: The output file or folder.
        inputs: Every path the command reads.
        force: Replace an existing ``out`` on commit.
        work: The sibling to build in (default: a hidden unique ``.<name>.tmp-<id>``
            beside ``out``, keeping the suffix so writers that look at it still work). It
            is checked against the inputs like ``out``; an existing one is removed.
        what: How messages name ``out``.
        keep_name: Build at ``.<name>.tmp-<id>/<name>`` (same base name as ``out``), for
            writers that name inner files after their folder (rosbag2).

    Raises:
        OutputError: See :func:`check_output`; also when the parent cannot be created.
    """
    path = check_output(out, inputs, force, what)
    inputs = list(inputs)
    holder = None
    if work is None and keep_name:
        holder = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        work_path = holder / path.name
    elif work is None:
        work_path = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    else:
        work_path = Path(work)
        check_output(work_path, inputs, force=True, what=f"{what} work folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    probe = path.parent / f".{path.name}.probe-{uuid.uuid4().hex[:8]}"
    try:  # can a file be created there at all (read-only mounts, /proc, permissions)?
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: {path.parent} does not take new files ({exc.strerror})",
            cause="output_unwritable",
            exit_code=1,
        ) from exc
    if os.path.lexists(work_path):
        _remove(work_path)
    if holder is not None:
        try:
            holder.mkdir()
        except OSError as exc:
            raise _unwritable(path, exc) from exc
    return OutputPlan(path, work_path, force, holder)


@contextlib.contextmanager
def staged_output(
    out: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str]] = (),
    force: bool = False,
    what: str = "output",
    keep_name: bool = False,
) -> Iterator[Path]:
    """Build an output in a temporary sibling and swap it in when the block succeeds.

    Yields the work path (not created: write a file there or create a folder). On an
    exception (KeyboardInterrupt included) the work path is removed and ``out``, if it
    existed, is untouched; an OSError in the block becomes an :class:`OutputError`
    (``output_unwritable``, one line). See :func:`plan_output` for the arguments.
    """
    plan = plan_output(out, inputs, force, what=what, keep_name=keep_name)
    try:
        yield plan.work
    except OSError as exc:  # the disk is full, a folder is read-only, ...
        plan.discard()
        where = f" ({exc.filename})" if exc.filename else ""
        raise OutputError(
            f"writing {plan.final} failed: {exc.strerror or exc}{where}",
            cause="output_unwritable",
            exit_code=1,
        ) from exc
    except BaseException:
        plan.discard()
        raise
    if not os.path.lexists(plan.work):
        raise OutputError(
            f"nothing was written to {plan.final}", cause="output_unwritable", exit_code=1
        )
    try:
        plan.commit()
    except BaseException:
        if plan.force:
            plan.discard()
        raise


def available_memory() -> int | None:
    """Bytes of memory available for new allocations (``MemAvailable``), None if unknown.

    Commands check their memory estimate against it before allocating.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(tmp)`` on a sibling, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def not_a_file(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is no regular file to read (``no such file``, ``a symlink loop``, ...),
    or None when it is one. Never opens the path (a FIFO would block)."""
    import stat

    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return "a broken symlink" if os.path.islink(p) else "no such file"
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            return "a symlink loop"
        return f"not accessible ({exc.strerror or exc})"
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(st.st_mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(st.st_mode):
        return "a socket, not a regular file"
    return "a device, not a regular file"
