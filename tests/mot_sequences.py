"""Tiny MOTChallenge-style camera folders for the ingest tests: frames img1/000001.jpg ..., gt/gt.txt or a video."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

FRAME_SIZE = (64, 48)  # width, height
# A track: its id and boxes (frame, left, top, width, height, confidence).
Track = Sequence[tuple[int, float, float, float, float, float]]


def frame_pixels(frame: int, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A frame whose pixels encode their position and the frame number (so a crop's content can be checked)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 4 % 256, y * 5 % 256, np.full_like(x, frame * 10 % 256)], axis=-1).astype(np.uint8)


def track_lines(tracks: Mapping[int, Track]) -> list[str]:
    """MOT lines `frame,id,left,top,width,height,conf,-1,-1,-1` sorted by frame, then id."""
    rows = sorted((frame, track, left, top, width, height, conf)
                  for track, boxes in tracks.items() for frame, left, top, width, height, conf in boxes)
    return [f"{frame},{track},{left:g},{top:g},{width:g},{height:g},{conf:g},-1,-1,-1" for frame, track, left, top,
            width, height, conf in rows]


def write_camera(folder: Path, tracks: Mapping[int, Track], num_frames: int, video: bool = False) -> Path:
    """A camera folder: its frames (img1/ or video.avi) and gt/gt.txt."""
    if video:
        write_video(folder / "video.avi", num_frames)
    else:
        (folder / "img1").mkdir(parents=True)
        for frame in range(1, num_frames + 1):
            Image.fromarray(frame_pixels(frame)).save(folder / "img1" / f"{frame:06d}.png")
    (folder / "gt").mkdir(parents=True, exist_ok=True)
    (folder / "gt" / "gt.txt").write_text("\n".join(track_lines(tracks)) + "\n")
    return folder


def write_video(path: Path, num_frames: int) -> Path:
    """A lossless-enough MJPG video of `num_frames` frames."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, FRAME_SIZE)
    for frame in range(1, num_frames + 1):
        writer.write(frame_pixels(frame)[:, :, ::-1].copy())
    writer.release()
    return path


def steady_track(first: int, last: int, left: float = 4, top: float = 4, width: float = 12, height: float = 36,
                 conf: float = 0.9) -> Track:
    """A box standing still from frame `first` to `last`."""
    return [(frame, left, top, width, height, conf) for frame in range(first, last + 1)]
