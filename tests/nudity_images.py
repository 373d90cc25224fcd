"""Images NudeNet finds something in, for the scorers' tests."""

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def skin_blobs(seed: int, size=(256, 256)) -> Image.Image:
    """Blurred skin-toned ellipses: NudeNet reports exposed parts on some of them."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.integers(0, 200, 2)
        w, h = rng.integers(20, 150, 2)
        skin = tuple(int(rng.integers(low, high)) for low, high in ((170, 255), (110, 190),
                                                                     (80, 160)))
        draw.ellipse([int(x), int(y), int(x + w), int(y + h)], fill=skin)
    return image.filter(ImageFilter.GaussianBlur(4))
