"""Reading user images and masks robustly, and writing outputs atomically with provenance.

This is the one place where user files are decoded and results are written. Every problem a
user can cause (a missing, empty, truncated or non-image file, a huge image, an unusable mask,
an unwritable output folder) becomes an :class:`ImageInputError` or :class:`OutputError` whose
message is one line naming the file, so the CLI can print it and carry on with a batch.

The package has one module per concern; every name is re-exported here:

* :mod:`.files`: printable file names, name-length limits, what a path names, the two errors;
* :mod:`.reading`: decoding user images and masks (:func:`load_image`, :func:`load_mask`), size and
  memory checks, images as tensors;
* :mod:`.writing`: atomic writes (:func:`atomic_write`, :func:`save_image_atomic`) with provenance
  metadata, and :func:`read_metadata`;
* :mod:`.paths`: expanding inputs (files, folders, globs) and planning output names.

Code that patches a name for a test patches it in the module that defines it (``imageio.writing.atomic_write``),
since the other modules look it up there.
"""

from __future__ import annotations

from .files import (
    display_name,
    short_name,
    os_reason,
    name_problem,
    path_kind,
    check_regular_file,
    ImageInputError,
    OutputError,
)
from .paths import (
    IMAGE_EXTENSIONS,
    OUTPUT_FORMATS,
    DEFAULT_OUTPUT_EXTENSION,
    is_image_path,
    images_in_folder,
    expand_inputs,
    subfolders_left_out,
    normalise_extension,
    output_extension,
    output_path_for,
    plan_outputs,
)
from .reading import (
    INFO_NOTES,
    INFO_ALPHA_DROPPED,
    INFO_SOURCE_FORMAT,
    INFO_SOURCE_MODE,
    available_memory,
    memory_needed,
    check_fits_memory,
    check_canvas,
    header_pixels,
    header_size,
    load_image,
    image_notes,
    alpha_dropped,
    load_mask,
    pil_to_tensor,
    tensor_to_pil,
)
from .writing import (
    JPEG_QUALITY,
    WEBP_QUALITY,
    sidecar_path,
    atomic_write,
    write_bytes_atomic,
    write_text_atomic,
    save_image_atomic,
    read_metadata,
    _UMASK,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "OUTPUT_FORMATS",
    "DEFAULT_OUTPUT_EXTENSION",
    "JPEG_QUALITY",
    "WEBP_QUALITY",
    "INFO_NOTES",
    "INFO_ALPHA_DROPPED",
    "INFO_SOURCE_FORMAT",
    "INFO_SOURCE_MODE",
    "display_name",
    "short_name",
    "os_reason",
    "name_problem",
    "path_kind",
    "check_regular_file",
    "ImageInputError",
    "OutputError",
    "available_memory",
    "memory_needed",
    "check_fits_memory",
    "check_canvas",
    "header_pixels",
    "header_size",
    "load_image",
    "image_notes",
    "alpha_dropped",
    "load_mask",
    "pil_to_tensor",
    "tensor_to_pil",
    "sidecar_path",
    "atomic_write",
    "write_bytes_atomic",
    "write_text_atomic",
    "save_image_atomic",
    "read_metadata",
    "is_image_path",
    "images_in_folder",
    "expand_inputs",
    "subfolders_left_out",
    "normalise_extension",
    "output_extension",
    "output_path_for",
    "plan_outputs",
]
