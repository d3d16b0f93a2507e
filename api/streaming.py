"""Request bodies streamed to disk with a size limit, refused before they are read whole."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import Request

from api.errors import ApiError


async def body_to_file(request: Request, limit: int, folder: Path,
                       suffix: str = ".pdf") -> Path:
    """Write the request body to a temporary file in ``folder``; 413 past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"文件过大（上限 {limit} 字节）",
                       f"the file is too large (limit {limit} bytes)")
    folder.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=folder, suffix=suffix, delete=False)
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", f"文件过大（上限 {limit} 字节）",
                               f"the file is too large (limit {limit} bytes)")
            handle.write(chunk)
    except BaseException:
        handle.close()
        Path(handle.name).unlink(missing_ok=True)
        raise
    handle.close()
    return Path(handle.name)
