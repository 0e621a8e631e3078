"""Tests of python/shardnet/preprocessing/image.py: load_img gives, bit for bit, the pixels of
Keras' load_img, which is Pillow: Image.open(f).convert("RGB" or "L") then, for another size,
resize((w, h), NEAREST or BILINEAR) (Debian's python3-pil); from paths, bytes and file objects;
img_to_array's shapes; bad files raise the library's errors naming the file."""
import io
import os
import unittest

import numpy as np

from shardnet import errors
from shardnet.preprocessing import image
from sn_testutil import TempDirTest

try:
    from PIL import Image as PILImage
except ImportError:  # jobs/test.sh installs python3-pil
    PILImage = None


def photo_like(h, w, seed):
    """Smooth random RGB (so that JPEG keeps detail) with some noise."""
    rs = np.random.RandomState(seed)
    walk = np.cumsum(rs.randint(-4, 5, size=(h, w, 3)), axis=1) + 128
    return np.clip(walk + rs.randint(-8, 9, size=(h, w, 3)), 0, 255).astype(np.uint8)


def keras_load_img(data, color_mode, target_size, interpolation):
    """keras.preprocessing.image.load_img, written out (Keras 2.x, without its PIL import)."""
    img = PILImage.open(io.BytesIO(data))
    mode = "L" if color_mode == "grayscale" else "RGB"
    if img.mode != mode:
        img = img.convert(mode)
    if target_size is not None:
        wh = (target_size[1], target_size[0])
        if img.size != wh:
            img = img.resize(wh, {"nearest": PILImage.NEAREST,
                                  "bilinear": PILImage.BILINEAR}[interpolation])
    return img


@unittest.skipIf(PILImage is None, "Pillow (python3-pil) missing")
class LoadImgEqualsKeras(TempDirTest):

    def encoded(self, fmt, pixels, mode="RGB"):
        buf = io.BytesIO()
        PILImage.fromarray(pixels if mode == "RGB" else pixels[..., 0], mode).save(
            buf, format=fmt, quality=90)
        return buf.getvalue()

    def test_jpeg_png_modes_sizes_interpolations(self):
        pix = photo_like(61, 83, 1)
        for fmt in ("JPEG", "PNG"):
            for src_mode in ("RGB", "L"):
                data = self.encoded(fmt, pix, src_mode)
                path = self.path("img." + fmt.lower())
                with open(path, "wb") as f:
                    f.write(data)
                for color_mode in ("rgb", "grayscale"):
                    for size in (None, (61, 83), (224, 224), (40, 31)):
                        for interp in ("nearest", "bilinear"):
                            what = "%s %s->%s %s %s" % (fmt, src_mode, color_mode, size, interp)
                            ref = np.asarray(keras_load_img(data, color_mode, size, interp))
                            img = image.load_img(path, color_mode=color_mode, target_size=size,
                                                 interpolation=interp)
                            self.assertEqual(img.mode, "RGB" if color_mode == "rgb" else "L")
                            self.assertEqual(img.size, (ref.shape[1], ref.shape[0]), what)
                            got = np.asarray(img)
                            self.assertEqual(got.shape, ref.shape, what)
                            np.testing.assert_array_equal(got, ref, what)

    def test_bytes_file_objects_and_paths_agree(self):
        data = self.encoded("PNG", photo_like(20, 30, 2))
        path = self.path("a.png")
        with open(path, "wb") as f:
            f.write(data)
        a = np.asarray(image.load_img(path, target_size=(10, 10)))
        b = np.asarray(image.load_img(data, target_size=(10, 10)))
        with open(path, "rb") as f:
            c = np.asarray(image.load_img(f, target_size=(10, 10)))
        d = np.asarray(image.load_img(io.BytesIO(data), target_size=(10, 10)))
        import pathlib
        e = np.asarray(image.load_img(pathlib.Path(path), target_size=(10, 10)))
        for o in (b, c, d, e):
            np.testing.assert_array_equal(a, o)

    def test_grayscale_flag_and_resize_shorter(self):
        data = self.encoded("PNG", photo_like(50, 80, 3))
        g = image.load_img(data, grayscale=True)
        self.assertEqual(g.mode, "L")
        np.testing.assert_array_equal(np.asarray(g),
                                      np.asarray(keras_load_img(data, "grayscale", None, None)))
        # torchvision's Resize(S) + CenterCrop: shorter side 40 -> 40x64, crop 32x32 at (4, 16)
        t = np.asarray(image.load_img(data, target_size=(32, 32), interpolation="bilinear",
                                      resize_shorter=40))
        r = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB").resize(
            (64, 40), PILImage.BILINEAR))[4:36, 16:48]
        np.testing.assert_array_equal(t, r)


class ImgToArray(unittest.TestCase):

    def test_shapes_and_dtype(self):
        rgb = image.Image(np.zeros((4, 6, 3), np.uint8) + 7, "RGB")
        grey = image.Image(np.zeros((4, 6), np.uint8) + 9, "L")
        x = image.img_to_array(rgb)
        self.assertEqual((x.shape, x.dtype), ((4, 6, 3), np.float32))
        self.assertEqual(image.img_to_array(rgb, data_format="channels_first").shape, (3, 4, 6))
        self.assertEqual(image.img_to_array(grey).shape, (4, 6, 1))
        self.assertEqual(image.img_to_array(grey, data_format="channels_first").shape, (1, 4, 6))
        self.assertEqual(image.img_to_array(grey, dtype="uint8").dtype, np.uint8)
        self.assertEqual(float(image.img_to_array(grey)[0, 0, 0]), 9.0)
        with self.assertRaises(ValueError):
            image.img_to_array(rgb, data_format="nhwc")


class BadFiles(TempDirTest):

    def test_errors_name_the_file(self):
        missing = self.path("missing.jpg")
        with self.assertRaises(errors.FileError) as e:
            image.load_img(missing)
        self.assertIn(missing, str(e.exception))
        self.assertIsInstance(e.exception, OSError)
        text = self.path("notes.jpg")
        with open(text, "w") as f:
            f.write("hello")
        with self.assertRaises(errors.FormatError) as e:
            image.load_img(text)
        self.assertIn(text, str(e.exception))
        self.assertIn("not an image", str(e.exception))
        with open(text, "rb") as f:
            with self.assertRaises(errors.FormatError) as e:
                image.load_img(f)
        self.assertIn(text, str(e.exception))
        with self.assertRaises(errors.FormatError) as e:
            image.load_img(b"\xff\xd8\xff\xe0 truncated")
        self.assertIn("image bytes", str(e.exception))

    def test_bad_arguments(self):
        with self.assertRaises(ValueError) as e:
            image.load_img(b"", interpolation="lanczos")
        self.assertIn("nearest", str(e.exception))
        with self.assertRaises(ValueError):
            image.load_img(b"", color_mode="rgba")
        with self.assertRaises(TypeError):
            image.load_img(5)
        with self.assertRaises(ValueError):
            image.load_img(b"", target_size=(1, 2, 3))
        with self.assertRaises(errors.InvalidArgumentError):  # crop larger than the shorter side
            image.load_img(os.devnull, target_size=(40, 40), resize_shorter=32)


if __name__ == "__main__":
    unittest.main()
