"""Guard from the sampled mutation run of issue 18 (tvdim.data): the fallback crop is centred vertically too."""
from __future__ import annotations

import torch

from tvdim.data import device_aug as D


def test_fallback_crop_of_a_tall_image_is_centred():
    # crops of more than the whole area never fit: every row is the fallback, the whole width and a height
    # clipped to the ratio range (10 / 0.75 = 13), centred: top (40 - 13) // 2 = 13
    boxes = D.sample_resized_crops(5, 40, 10, torch.Generator().manual_seed(0), scale=(2.0, 3.0),
                                   ratio=(0.75, 4 / 3))
    assert boxes.tolist() == [[13, 0, 13, 10]] * 5
    wide = D.sample_resized_crops(3, 10, 40, torch.Generator().manual_seed(0), scale=(2.0, 3.0),
                                  ratio=(0.75, 4 / 3))
    assert wide.tolist() == [[0, 13, 10, 13]] * 3  # 10 * 4 / 3 = 13 wide, left (40 - 13) // 2 = 13
