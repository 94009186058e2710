"""A camera's frames: the images of a MOTChallenge `img1/` folder, or a video file decoded with OpenCV (optional)."""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from acan_tf.data.datasets.layout import image_names
from acan_tf.data.ingest.errors import IngestError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")


class ImageFolder:
    """Frames `<folder>/000001.jpg ...`: frame n is the image whose name, without extension, is the number n."""

    def __init__(self, folder: str):
        self.path = folder
        self.files: dict[int, str] = {}
        for name in image_names(folder):
            stem = os.path.splitext(name)[0]
            if stem.isdigit():
                self.files.setdefault(int(stem), os.path.join(folder, name))
        if not self.files:
            raise IngestError(f"{folder} holds no frames; expected images named by their 1-based frame number "
                              "(000001.jpg, ...)")
        first = self.files[min(self.files)]
        self.size = _image(first).size

    def describe(self) -> str:
        """How messages name the frames: the folder and its frame range."""
        return f"{self.path} (frames {min(self.files)}..{max(self.files)}, {len(self.files)} images)"

    def has(self, frame: int) -> bool:
        """Whether frame `frame` exists."""
        return frame in self.files

    def source(self, frame: int) -> str:
        """The file frame `frame` is read from."""
        return self.files[frame]

    def read(self, frames: Sequence[int]) -> Iterator[tuple[int, Image.Image]]:
        """(frame, RGB image) of each of `frames`, in ascending order."""
        for frame in sorted(frames):
            yield frame, _image(self.files[frame])


class VideoFile:
    """The frames of a video, numbered from 1 as MOT track files number them; needs opencv-python-headless."""

    def __init__(self, path: str):
        # OpenCV's and FFmpeg's own warnings about a damaged file would break our one-line message; set before
        # OpenCV is imported, and only where the user has not chosen.
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        try:
            import cv2  # an optional dependency: pip install -e ".[video]"
        except ImportError as error:
            raise IngestError(f"{path}: reading a video needs OpenCV; pip install -e \".[video]\" (or give the "
                              "frames as img1/000001.jpg ...)") from error
        self.path, self.cv2 = path, cv2
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        try:
            self.num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            readable = capture.isOpened() and self.num_frames > 0 and min(self.size) > 0 and capture.read()[0]
        finally:
            capture.release()
        if not readable:
            raise IngestError(f"{path} cannot be read as a video (not a video, damaged, or a codec OpenCV lacks)")

    def describe(self) -> str:
        """How messages name the frames: the file and its frame count."""
        return f"{self.path} ({self.num_frames} frames)"

    def has(self, frame: int) -> bool:
        """Whether frame `frame` exists, by the video's own frame count."""
        return 1 <= frame <= self.num_frames

    def source(self, frame: int) -> str:
        """The file frame `frame` is read from."""
        return self.path

    def read(self, frames: Sequence[int]) -> Iterator[tuple[int, Image.Image]]:
        """(frame, RGB image) of each of `frames`, in ascending order, decoding the video once from its start."""
        wanted = sorted(set(frames))
        capture = self.cv2.VideoCapture(self.path, self.cv2.CAP_FFMPEG)
        try:
            current = 0
            for frame in wanted:
                while current < frame:
                    ok, pixels = capture.read()
                    if not ok:
                        raise IngestError(f"{self.path} ends after frame {current}, but the track file needs frame "
                                          f"{frame} (a truncated or damaged video?)")
                    current += 1
                yield frame, Image.fromarray(np.ascontiguousarray(pixels[:, :, ::-1]))
        finally:
            capture.release()


def camera_frames(camera_dir: str) -> ImageFolder | VideoFile:
    """The frames of one camera's folder: its `img1/` folder, or its one video file."""
    videos = sorted(name for name in os.listdir(camera_dir)
                    if not name.startswith(".") and name.lower().endswith(VIDEO_EXTENSIONS))
    images = os.path.join(camera_dir, "img1")
    if os.path.isdir(images) and videos:
        raise IngestError(f"{camera_dir} holds img1/ and the video {videos[0]}; expected one source of frames")
    if os.path.isdir(images):
        return ImageFolder(images)
    if len(videos) == 1:
        return VideoFile(os.path.join(camera_dir, videos[0]))
    found = f"the videos {', '.join(videos)}" if videos else "neither"
    raise IngestError(f"{camera_dir}: expected its frames as img1/000001.jpg ... or one video file "
                      f"({', '.join(VIDEO_EXTENSIONS)}); found {found}")


def _image(path: str) -> Image.Image:
    """The RGB pixels of a frame file; an IngestError naming it if it cannot be decoded."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise IngestError(f"{path} cannot be decoded as an image: {error}") from error
