#!/usr/bin/env python3
"""Writes tests/fixtures/cmyk.jpg: a 48x32 CMYK JPEG (Adobe-style, as PIL writes it) whose
pixel (x, y) is C = 5x, M = 7y, Y = 40, K = 10, for the CMYK -> RGB conversion test."""
from PIL import Image

im = Image.new("CMYK", (48, 32))
px = im.load()
for x in range(48):
    for y in range(32):
        px[x, y] = (x * 5, y * 7, 40, 10)
im.save("tests/fixtures/cmyk.jpg", quality=90)
