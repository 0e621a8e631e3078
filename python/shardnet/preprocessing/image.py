"""load_img and img_to_array with the semantics of Keras' keras.preprocessing.image, on
libshardnet's own decoders (sn_image_load: libjpeg-turbo and libpng, Pillow-exact resizing), so
no imaging library is needed:

    img = image.load_img("cat.jpg", target_size=(224, 224))    # as Keras: nearest, RGB
    x = image.img_to_array(img)                                 # (224, 224, 3) float32

JPEG and PNG files are read (recognised by their contents); other formats raise FormatError.
"""
import ctypes
import os

import numpy as np

from .. import _lib
from .._lib import check, lib

INTERPOLATIONS = tuple(_lib.RESIZE)


class Image:
    """A decoded image: uint8 pixels (height, width, 3) for mode "RGB", (height, width) for "L".
    np.asarray(img) gives them, as for a PIL image; size is (width, height), as PIL's."""

    def __init__(self, pixels, mode):
        self._pixels = pixels
        self.mode = mode

    @property
    def size(self):
        return (self._pixels.shape[1], self._pixels.shape[0])

    @property
    def width(self):
        return self._pixels.shape[1]

    @property
    def height(self):
        return self._pixels.shape[0]

    def __array__(self, dtype=None):
        return self._pixels if dtype is None else self._pixels.astype(dtype)

    def __repr__(self):
        return "<shardnet.preprocessing.image.Image mode=%s size=%dx%d>" % (
            self.mode, self.width, self.height)


def load_img(path, grayscale=False, color_mode="rgb", target_size=None,
             interpolation="nearest", resize_shorter=None):
    """Loads an image as Keras' load_img does: converted to RGB ("rgb") or to grey with PIL's
    "L" weights ("grayscale"), then, if target_size (height, width) differs from its size,
    resized with interpolation "nearest" (Keras' default) or "bilinear" (Pillow's antialiased).
    path: a file name, a path-like, bytes or a binary file object. resize_shorter=S (shardnet's
    addition) fits as torchvision's evaluation transform instead: shorter side to S, then a
    centre crop to target_size. Returns an Image. Errors: FileError (missing or unreadable
    file), FormatError (not a JPEG or PNG, corrupt, truncated), ValueError (arguments), each
    naming the file."""
    if grayscale:
        color_mode = "grayscale"
    if color_mode not in ("rgb", "grayscale"):
        raise ValueError("color_mode must be 'rgb' or 'grayscale' (shardnet decodes no alpha "
                         "channel), not %r" % (color_mode,))
    if interpolation not in _lib.RESIZE:
        raise ValueError("Invalid interpolation method %r: shardnet supports %s"
                         % (interpolation, ", ".join(INTERPOLATIONS)))
    o = _lib.ImageOptions()
    lib.sn_image_options_init(ctypes.byref(o))
    o.channels = 3 if color_mode == "rgb" else 1
    if target_size is not None:
        if len(target_size) != 2:
            raise ValueError("target_size must be (height, width), not %r" % (target_size,))
        o.height, o.width = (int(v) for v in target_size)
    o.resize = _lib.RESIZE[interpolation]
    if resize_shorter is not None:
        o.resize_shorter = int(resize_shorter)
    pix = _lib.c_uint8_p()
    h, w = ctypes.c_int(), ctypes.c_int()
    if isinstance(path, (str, os.PathLike)):
        check(lib.sn_image_load(os.fsencode(path), ctypes.byref(o), ctypes.byref(pix),
                                ctypes.byref(h), ctypes.byref(w)))
    else:
        if hasattr(path, "read"):
            data = path.read()
        elif isinstance(path, (bytes, bytearray, memoryview)):
            data = path
        else:
            raise TypeError("load_img: path must be a file name, a path-like, bytes or a binary "
                            "file object, not %s" % type(path).__name__)
        data = bytes(data)
        name = getattr(path, "name", None)
        name = ("file %s" % name).encode() if isinstance(name, str) else None
        check(lib.sn_image_load_bytes(data, len(data), name, ctypes.byref(o), ctypes.byref(pix),
                                      ctypes.byref(h), ctypes.byref(w)))
    try:
        shape = (h.value, w.value, 3) if o.channels == 3 else (h.value, w.value)
        n = h.value * w.value * o.channels
        pixels = np.ctypeslib.as_array(pix, shape=(n,)).copy().reshape(shape)
    finally:
        lib.sn_free(pix)
    return Image(pixels, "RGB" if o.channels == 3 else "L")


def img_to_array(img, data_format=None, dtype=None):
    """An Image (or an array of pixels) as a float32 array (height, width, channels), or
    (channels, height, width) for data_format="channels_first", as Keras' img_to_array."""
    if data_format is None:
        data_format = "channels_last"
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError("Unknown data_format: %s" % (data_format,))
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    elif x.ndim == 2:
        x = x.reshape((1,) + x.shape) if data_format == "channels_first" else x.reshape(
            x.shape + (1,))
    else:
        raise ValueError("Unsupported image shape: %s" % (x.shape,))
    return x
