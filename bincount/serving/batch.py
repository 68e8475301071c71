"""Counting many photos (``bincount batch``, docs/design.md §11): with a local model artifact, the endpoint, or the API.

Every photo becomes one :class:`bincount.serving.reconcile.CountRow`; a photo that cannot be read or counted gets its
error and the others go on. With a local model (:class:`LocalCounter`) the photos go through the network in batches:
decoded and transformed in a thread pool by the handler's own ``input_fn`` and ``prepare``, forwarded together, and
answered by its ``probabilities`` and ``output_fn``, so each answer is the one ``bincount serve`` gives for that photo
alone (tests/functional/serving/test_batch.py compares them). Remote counters send one request per photo, a few at
once.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from bincount.serving.client import Call, CountError, read_image
from bincount.serving.media import MAX_PAYLOAD_BYTES
from bincount.serving.reconcile import CountRow, photo_id

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
DEFAULT_BATCH_SIZE = 16
DEFAULT_WORKERS = 4


def list_photos(inputs: Iterable[str | Path]) -> list[Path]:
    """The photos of the inputs, in order: a file as given, a folder's JPEG and PNG files (recursively, sorted).

    Raises:
        FileNotFoundError: an input does not exist.
    """
    photos: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            photos += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.exists():
            photos.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return photos


class Progress:
    """A one-line progress bar on a stream (stderr), redrawn with ``\\r`` at most every ``interval`` seconds."""

    def __init__(self, total: int, stream: TextIO | None = None, *, width: int = 30, interval: float = 0.1) -> None:
        self.total, self.done, self.width, self.interval = total, 0, width, interval
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.perf_counter()
        self._drawn = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._drawn >= self.interval or self.done >= self.total:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        filled = self.width * self.done // max(1, self.total)
        rate = self.done / max(now - self.started, 1e-9)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} photos, {rate:.1f}/s")
        self.stream.flush()

    def close(self) -> None:
        if self.total:
            self.stream.write("\n")
            self.stream.flush()


def _error_text(e: Exception) -> str:
    return str(getattr(e, "message", None) or e) or type(e).__name__


class LocalCounter:
    """Counts with a model artifact on this machine, through the inference handler's own functions, in batches."""

    def __init__(
        self, model_dir: str | Path, *, batch_size: int = DEFAULT_BATCH_SIZE, workers: int = DEFAULT_WORKERS
    ) -> None:
        from bincount.serving.server import load_handler

        if batch_size < 1 or workers < 1:
            raise ValueError(f"batch size and workers must be >= 1, got {batch_size} and {workers}")
        self.handler = load_handler()
        self.model = self.handler.model_fn(str(model_dir))
        self.batch_size, self.workers = batch_size, workers

    def _prepare(self, path: Path) -> Any:
        """The network input of one photo, or the exception that prevents it."""
        try:
            body, content_type = read_image(path, MAX_PAYLOAD_BYTES)
            return self.handler.prepare(self.handler.input_fn(body, content_type), self.model)
        except Exception as e:  # reported in the photo's row: the run goes on
            return e

    def count_one(self, path: Path) -> CountRow:
        """One photo through ``input_fn -> predict_fn -> output_fn``, as ``bincount serve`` answers it."""
        try:
            body, content_type = read_image(path, MAX_PAYLOAD_BYTES)
            h = self.handler
            answer = json.loads(h.output_fn(h.predict_fn(h.input_fn(body, content_type), self.model)))
            return CountRow.from_answer(photo_id(path.name), answer)
        except Exception as e:
            return CountRow(photo_id(path.name), error=_error_text(e))

    def count(self, paths: Sequence[Path]) -> Iterator[CountRow]:
        """Rows in the order of ``paths``; decoding of the next batch overlaps the forward pass of this one."""
        import torch

        device = next(self.model.network.parameters()).device
        chunks = [paths[i : i + self.batch_size] for i in range(0, len(paths), self.batch_size)]
        with ThreadPoolExecutor(self.workers) as pool:
            pending = [pool.map(self._prepare, chunk) for chunk in chunks[:2]]
            for index, chunk in enumerate(chunks):
                prepared = list(pending[index])
                if index + 2 < len(chunks):
                    pending.append(pool.map(self._prepare, chunks[index + 2]))
                good = [i for i, item in enumerate(prepared) if not isinstance(item, Exception)]
                rows: dict[int, CountRow] = {
                    i: CountRow(photo_id(chunk[i].name), error=_error_text(item))
                    for i, item in enumerate(prepared)
                    if isinstance(item, Exception)
                }
                if good:
                    batch = torch.cat([prepared[i] for i in good]).to(device)
                    with torch.inference_mode():
                        answers = self.handler.probabilities(self.model.network(batch), self.model)
                    for i, probabilities in zip(good, answers, strict=True):
                        answer = json.loads(self.handler.output_fn(probabilities))
                        rows[i] = CountRow.from_answer(photo_id(chunk[i].name), answer)
                yield from (rows[i] for i in range(len(chunk)))


class RemoteCounter:
    """Counts through a ``call(body, content_type) -> answer`` (the endpoint or the API), a few requests at once."""

    def __init__(self, call: Call, *, max_bytes: int, workers: int = DEFAULT_WORKERS) -> None:
        self.call, self.max_bytes, self.workers = call, max_bytes, workers

    def count_one(self, path: Path) -> CountRow:
        pid = photo_id(path.name)
        try:
            body, content_type = read_image(path, self.max_bytes)
            return CountRow.from_answer(pid, self.call(body, content_type))
        except CountError as e:
            return CountRow(pid, error=f"{e.status} {e}" if e.status else str(e))
        except ValueError as e:
            return CountRow(pid, error=str(e))

    def count(self, paths: Sequence[Path]) -> Iterator[CountRow]:
        with ThreadPoolExecutor(self.workers) as pool:
            yield from pool.map(self.count_one, paths)


def count_photos(
    counter: LocalCounter | RemoteCounter, paths: Sequence[Path], progress: Callable[[int], None] | None = None
) -> list[CountRow]:
    """Every photo's row, in order, reporting each one to ``progress``."""
    rows = []
    for row in counter.count(paths):
        rows.append(row)
        if progress is not None:
            progress(1)
    return rows
