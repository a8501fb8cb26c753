"""Image folders: ``root/train/<class>/*.png`` and ``root/test/<class>/*.png``, read with Pillow.

Layout::

    root/
      train/<class>/<image>.png|jpg|jpeg|bmp|gif
      test/<class>/<image>...
      groups.csv            optional: "path,group" rows, path relative to root (e.g. train/cat/001.png)
      group_attributes.csv  optional: "group,attribute" rows (the 004 study's age, in [0, 1]); with groups.csv

The class list is the sorted names of the sub-folders of ``train``; ``test`` may only use those classes.
Inside a class, images are taken in sorted file-name order, classes in class order, so sample ids (positions in
the split) are stable; ``info["train_files"]`` / ``info["test_files"]`` map each id back to its file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from .base import DatasetError, DatasetSplits, ImageDataset

if TYPE_CHECKING:
    from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_GREY_MODES = frozenset({"1", "L", "LA", "La"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def _list_split(root: Path, split: str, extensions: tuple[str, ...]) -> dict[str, list[Path]]:
    """``{class name: sorted image files}`` for ``root/split`` (hidden files and other extensions skipped)."""
    folder = root / split
    if not folder.is_dir():
        raise DatasetError(
            f"image folder {folder} is missing: expected {root}/train/<class>/<images> and "
            f"{root}/test/<class>/<images> ({', '.join(extensions)})"
        )
    out: dict[str, list[Path]] = {}
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out[class_dir.name] = sorted(
            p
            for p in class_dir.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions
        )
    return out


def _open(path: Path) -> tuple[Image.Image, bool]:
    """Decode one image fully; returns it as an "L" or "RGB" Pillow image and whether it is greyscale."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in _WIDE_MODES:
                raise DatasetError(
                    f"{path}: {mode} images (16-bit or float) are not supported; convert them to 8-bit first"
                )
            if mode in _GREY_MODES:
                return img.convert("L"), True
            rgb = img.convert("RGB")
    except DatasetError:
        raise
    except Image.DecompressionBombError as exc:  # more pixels than Image.MAX_IMAGE_PIXELS: refused, not decoded
        raise DatasetError(
            f"{path}: refused as a possible decompression bomb ({exc}); if the image is genuine, "
            "raise PIL.Image.MAX_IMAGE_PIXELS first"
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    if mode in ("P", "PA"):  # a palette image is greyscale when every palette colour it uses is grey
        arr = np.asarray(rgb)
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
            return rgb.convert("L"), True
    return rgb, False


def _read_groups(path: Path) -> dict[str, str]:
    """``{relative posix path: group}`` from a ``path,group`` CSV (an optional header row is skipped)."""
    table: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise DatasetError(f"{path}:{line_no}: expected 'path,group', got {len(row)} columns: {row}")
            key, group = row[0].strip().replace("\\", "/"), row[1].strip()
            if line_no == 1 and (key.lower(), group.lower()) == ("path", "group"):
                continue
            key = key[2:] if key.startswith("./") else key
            if key in table:
                raise DatasetError(f"{path}:{line_no}: {key} is listed twice")
            table[key] = group
    return table


def _read_group_attributes(path: Path, group_names: tuple[str, ...] | None) -> dict[int, float]:
    """``{group id: attribute}`` from a ``group,attribute`` CSV (optional header); groups named as in groups.csv."""
    index = {n: i for i, n in enumerate(group_names)} if group_names is not None else None
    out: dict[int, float] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise DatasetError(f"{path}:{line_no}: expected 'group,attribute', got {len(row)} columns: {row}")
            group, value = row[0].strip(), row[1].strip()
            if line_no == 1 and (group.lower(), value.lower()) == ("group", "attribute"):
                continue
            try:
                gid = index[group] if index is not None else int(group)
                out[gid] = float(value)
            except (KeyError, ValueError):
                raise DatasetError(
                    f"{path}:{line_no}: unknown group {group!r} or non-numeric attribute {value!r}"
                ) from None
    return out


def _group_ids(table: dict[str, str]) -> tuple[dict[str, int], tuple[str, ...] | None]:
    """Integer group ids: the values themselves when all are integers, else indices into the sorted names."""
    try:
        return {k: int(v) for k, v in table.items()}, None
    except ValueError:
        names = tuple(sorted(set(table.values())))
        index = {n: i for i, n in enumerate(names)}
        return {k: index[v] for k, v in table.items()}, names


def load_image_folder(
    root: str | os.PathLike,
    *,
    mode: Literal["L", "RGB"] | None = None,
    image_size: tuple[int, int] | None = None,
    groups_file: str | None = "groups.csv",
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    name: str | None = None,
) -> DatasetSplits:
    """Load ``root/train/<class>/*`` and ``root/test/<class>/*`` into memory.

    Args:
        root: the dataset folder.
        mode: ``"L"`` (1 channel) or ``"RGB"`` (3 channels); default RGB unless every image is greyscale.
            Colour images become grey with Pillow's ITU-R 601-2 luma; alpha is dropped.
        image_size: ``(H, W)`` to resize every image to (bilinear, with Pillow's antialiasing); without it all
            images must already share one size.
        groups_file: name of the optional ``path,group`` CSV in ``root`` that fills ``ImageDataset.groups``
            (integers are used as given; other values are numbered in sorted order and listed in
            ``info["group_names"]``); ``None`` ignores it.
        extensions: file suffixes read as images (case-insensitive); other files are skipped.
        name: dataset name used in reports (default: the folder's name).

    Returns:
        ``DatasetSplits`` with ``uint8`` images ``[N, C, H, W]`` and ``int64`` labels.

    Raises:
        DatasetError: a folder is missing, test has a class train lacks, an image cannot be decoded, sizes differ
            without ``image_size``, or ``groups.csv`` is inconsistent with the files.

    Example:
        >>> from oblivio.data import load_image_folder
        >>> splits = load_image_folder("~/data/pets", image_size=(64, 64))  # doctest: +SKIP
        >>> splits.image_shape  # doctest: +SKIP
        (3, 64, 64)
    """
    if mode not in (None, "L", "RGB"):
        raise ValueError(f"mode must be None, 'L' or 'RGB', got {mode!r}")
    if image_size is not None:
        if len(image_size) != 2 or any(int(s) <= 0 for s in image_size):
            raise ValueError(f"image_size must be (H, W) with positive sizes, got {image_size!r}")
        image_size = (int(image_size[0]), int(image_size[1]))
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"image folder {root} does not exist (expected {root}/train/<class>/ and {root}/test/<class>/)"
        )
    name = name or root.name or "image-folder"
    exts = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)

    listing = {split: _list_split(root, split, exts) for split in ("train", "test")}
    classes = tuple(listing["train"])
    if not classes:
        raise DatasetError(f"{root / 'train'} has no class sub-folders")
    unknown = sorted(set(listing["test"]) - set(classes))
    if unknown:
        raise DatasetError(f"{root / 'test'} has classes that train lacks: {unknown} (train classes: {list(classes)})")

    files: dict[str, list[Path]] = {}
    labels: dict[str, list[int]] = {}
    decoded: dict[str, list[Image.Image]] = {}
    all_grey = True
    for split in ("train", "test"):
        files[split], labels[split], decoded[split] = [], [], []
        for label, cls in enumerate(classes):
            for path in listing[split].get(cls, []):
                img, grey = _open(path)
                all_grey &= grey
                files[split].append(path)
                labels[split].append(label)
                decoded[split].append(img)
        if not files[split]:
            raise DatasetError(f"{root / split} holds no images with suffix {', '.join(exts)}")

    target = mode or ("L" if all_grey else "RGB")
    first_size: tuple[tuple[int, int], Path] | None = None
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        batch = []
        for path, img in zip(files[split], decoded[split]):
            img = img.convert(target) if img.mode != target else img
            if image_size is not None and img.size != (image_size[1], image_size[0]):
                from PIL.Image import Resampling

                img = img.resize((image_size[1], image_size[0]), Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            if first_size is None:
                first_size = (arr.shape[1:], path)
            elif arr.shape[1:] != first_size[0]:
                raise DatasetError(
                    f"images differ in size: {first_size[1]} is {first_size[0][0]}x{first_size[0][1]} but {path} is "
                    f"{arr.shape[1]}x{arr.shape[2]} (HxW); pass image_size=(H, W) to resize them all"
                )
            batch.append(arr)
        arrays[split] = np.stack(batch)
        decoded[split] = []  # free the Pillow images as soon as the split is stacked

    rel = {split: [p.relative_to(root).as_posix() for p in files[split]] for split in ("train", "test")}
    groups: dict[str, np.ndarray | None] = {"train": None, "test": None}
    info: dict = {
        "root": str(root),
        "format": "image-folder",
        "mode": target,
        "train_files": rel["train"],
        "test_files": rel["test"],
    }
    groups_path = root / groups_file if groups_file else None
    if groups_path is not None and groups_path.is_file():
        table, group_names = _group_ids(_read_groups(groups_path))
        known = set(rel["train"]) | set(rel["test"])
        stray = sorted(set(table) - known)
        if stray:
            raise DatasetError(f"{groups_path}: {len(stray)} paths match no image, e.g. {stray[:3]}")
        for split in ("train", "test"):
            listed = [p in table for p in rel[split]]
            if any(listed) and not all(listed):
                missing = [p for p, ok in zip(rel[split], listed) if not ok]
                raise DatasetError(
                    f"{groups_path}: {len(missing)} {split} images have no group, e.g. {missing[:3]} "
                    "(list every image of a split, or none)"
                )
            if all(listed):
                groups[split] = np.asarray([table[p] for p in rel[split]], dtype=np.int64)
        info["groups_file"] = str(groups_path)
        if group_names is not None:
            info["group_names"] = group_names
        attr_path = root / "group_attributes.csv"
        if attr_path.is_file():
            info["group_attributes"] = _read_group_attributes(attr_path, group_names)

    train, test = (
        ImageDataset(
            torch.from_numpy(arrays[s]),
            torch.tensor(labels[s], dtype=torch.long),
            classes,
            name=f"{name}/{s}",
            groups=groups[s],
        )
        for s in ("train", "test")
    )
    return DatasetSplits(train, test, name=name, info=info)


__all__: list[str] = ["IMAGE_EXTENSIONS", "load_image_folder"]
