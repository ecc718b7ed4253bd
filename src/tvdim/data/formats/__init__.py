"""Readers for every supported on-disk data format.

Each reader yields :class:`~tvdim.data.sample.Sample` or, for one unusable sample, a
:class:`~tvdim.data.sample.BadSample` (never an exception); structural problems (missing column, wrong
WebDataset text key, empty dataset) raise :class:`~tvdim.errors.DataError` naming the file and what was found.
Image decoding and caption cleaning live in one place: :mod:`tvdim.data.formats.images`.
"""
from .images import IMAGE_EXTS, MAX_CAPTION_CHARS, clean_caption, clean_captions, decode_image, decode_text

__all__ = ["IMAGE_EXTS", "MAX_CAPTION_CHARS", "clean_caption", "clean_captions", "decode_image", "decode_text"]
